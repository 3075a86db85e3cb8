use super::*;
use crate::auth::authz::{Authorizer, Mode, forbidden_because};
use berth_api::objects::Pod;
use serde_json::json;

fn node(name: &str) -> UserInfo {
    UserInfo::authenticated(format!("system:node:{name}"), [NODES_GROUP.to_string()])
}

fn on(verb: &str, resource: &str, subresource: &str, namespace: &str, name: &str) -> Attributes {
    Attributes::resource(
        verb,
        ResourceAttributes {
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Default::default()
        },
    )
}

/// A pod `web` on n1 that names the Secret `db` (env), the ConfigMap `settings`
/// (a projected volume), the pull secret `registry`, the claim `data` and the
/// service account `builder`; and a pod `other` on n2 naming the Secret `keys`.
fn graph() -> std::sync::Arc<NodeGraph> {
    let graph = NodeGraph::new();
    let web: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "nodeName": "n1",
            "serviceAccountName": "builder",
            "imagePullSecrets": [{"name": "registry"}],
            "containers": [{"name": "c", "image": "i", "env": [
                {"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
            ]}],
            "volumes": [
                {"name": "conf", "projected": {"sources": [{"configMap": {"name": "settings"}}]}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}
            ]
        }
    }))
    .unwrap();
    let other: Pod = serde_json::from_value(json!({
        "metadata": {"name": "other", "namespace": "default"},
        "spec": {"nodeName": "n2", "containers": [{"name": "c", "image": "i", "envFrom": [
            {"secretRef": {"name": "keys"}}
        ]}]}
    }))
    .unwrap();
    graph.put_pod(&web);
    graph.put_pod(&other);
    graph.put_claim("default", "data", "pv-1");
    graph
}

#[test]
fn only_nodes_are_nodes() {
    assert_eq!(node_name(&node("n1")), Some("n1"));
    let no_group = UserInfo::authenticated("system:node:n1", []);
    assert_eq!(node_name(&no_group), None, "the group is needed too");
    assert_eq!(node_name(&node("")), None);
    let alice = UserInfo::authenticated("alice", [NODES_GROUP.to_string()]);
    assert_eq!(
        decide(&graph(), &alice, &on("get", "secrets", "", "default", "db")),
        Err(String::new())
    );
}

#[test]
fn a_node_writes_its_own_node_only() {
    let g = graph();
    let n1 = node("n1");
    assert_eq!(decide(&g, &n1, &on("get", "nodes", "", "", "n1")), Ok(()));
    assert_eq!(decide(&g, &n1, &on("update", "nodes", "status", "", "n1")), Ok(()));
    assert_eq!(decide(&g, &n1, &on("patch", "nodes", "", "", "n1")), Ok(()));
    assert_eq!(decide(&g, &n1, &on("create", "nodes", "", "", "")), Ok(()));
    assert_eq!(
        decide(&g, &n1, &on("update", "nodes", "status", "", "n2")),
        Err("node \"n1\" is not allowed to modify node \"n2\"".into())
    );
    assert!(decide(&g, &n1, &on("patch", "nodes", "", "", "n2")).is_err());
    assert!(decide(&g, &n1, &on("delete", "nodes", "", "", "n1")).is_err());
    assert_eq!(
        decide(&g, &n1, &on("list", "nodes", "", "", "")),
        Err("node \"n1\" cannot read all nodes, only its own Node object".into()),
        "RBAC's to allow"
    );
}

#[test]
fn a_node_changes_only_the_pods_bound_to_it() {
    let g = graph();
    let (n1, n2) = (node("n1"), node("n2"));
    assert_eq!(
        decide(&g, &n1, &on("update", "pods", "status", "default", "web")),
        Ok(())
    );
    assert_eq!(
        decide(&g, &n1, &on("patch", "pods", "status", "default", "web")),
        Ok(())
    );
    assert_eq!(decide(&g, &n1, &on("delete", "pods", "", "default", "web")), Ok(()));
    assert_eq!(decide(&g, &n1, &on("get", "pods", "", "default", "web")), Ok(()));
    assert_eq!(
        decide(&g, &n2, &on("update", "pods", "status", "default", "web")),
        Err("node \"n2\" can only update pod status for pods with spec.nodeName set to itself".into())
    );
    assert!(decide(&g, &n2, &on("delete", "pods", "", "default", "web")).is_err());
    assert!(decide(&g, &n2, &on("get", "pods", "", "default", "web")).is_err());
    assert!(
        decide(&g, &n1, &on("update", "pods", "status", "default", "gone")).is_err(),
        "a pod not known is not bound"
    );
    assert!(
        decide(&g, &n1, &on("update", "pods", "", "default", "web")).is_err(),
        "the spec is not its"
    );
    assert!(decide(&g, &n1, &on("create", "pods", "", "default", "")).is_err());
}

#[test]
fn a_node_lists_and_watches_its_own_pods_only() {
    let g = graph();
    let n1 = node("n1");
    let mut watch = on("watch", "pods", "", "", "");
    assert_eq!(
        decide(&g, &n1, &watch),
        Err("can only list/watch pods with spec.nodeName field selector".into())
    );
    watch.field_selector = "spec.nodeName=n1".into();
    assert_eq!(decide(&g, &n1, &watch), Ok(()));
    watch.field_selector = "status.phase=Running,spec.nodeName==n1".into();
    assert_eq!(decide(&g, &n1, &watch), Ok(()));
    watch.field_selector = "spec.nodeName=n2".into();
    assert!(decide(&g, &n1, &watch).is_err());
    watch.field_selector = "spec.nodeName!=n1".into();
    assert!(decide(&g, &n1, &watch).is_err());
}

#[test]
fn a_node_reads_what_its_pods_name() {
    let g = graph();
    let (n1, n2) = (node("n1"), node("n2"));
    for (resource, name) in [
        ("secrets", "db"),
        ("secrets", "registry"),
        ("configmaps", "settings"),
        ("persistentvolumeclaims", "data"),
    ] {
        assert_eq!(
            decide(&g, &n1, &on("get", resource, "", "default", name)),
            Ok(()),
            "{name}"
        );
        assert_eq!(
            decide(&g, &n2, &on("get", resource, "", "default", name)),
            Err("no relationship found between node \"n2\" and this object".into()),
            "{name}"
        );
        assert!(
            decide(&g, &n1, &on("get", resource, "", "elsewhere", name)).is_err(),
            "{name}"
        );
    }
    assert_eq!(decide(&g, &n1, &on("get", "persistentvolumes", "", "", "pv-1")), Ok(()));
    assert!(decide(&g, &n2, &on("get", "persistentvolumes", "", "", "pv-1")).is_err());
    assert!(decide(&g, &n1, &on("get", "persistentvolumes", "", "", "pv-2")).is_err());
    assert_eq!(decide(&g, &n2, &on("get", "secrets", "", "default", "keys")), Ok(()));
    assert!(decide(&g, &n1, &on("get", "secrets", "", "default", "keys")).is_err());
    // One Secret watched by name, as the agent watches; never all of them.
    assert_eq!(decide(&g, &n1, &on("watch", "secrets", "", "default", "db")), Ok(()));
    assert_eq!(
        decide(&g, &n1, &on("list", "secrets", "", "default", "")),
        Err("No Object name found".into())
    );
    assert_eq!(
        decide(&g, &n1, &on("update", "secrets", "", "default", "db")),
        Err("can only read resources of this type".into())
    );
}

#[test]
fn the_rest_of_the_node_role_is_every_nodes() {
    let g = graph();
    let n1 = node("n1");
    let class = Attributes::resource(
        "get",
        ResourceAttributes {
            group: "node.k8s.io".into(),
            resource: "runtimeclasses".into(),
            name: "gvisor".into(),
            ..Default::default()
        },
    );
    assert_eq!(decide(&g, &n1, &class), Ok(()));
    assert_eq!(decide(&g, &n1, &on("watch", "services", "", "", "")), Ok(()));
    assert_eq!(
        decide(&g, &n1, &on("delete", "services", "", "default", "web")),
        Err(String::new())
    );
    assert_eq!(
        decide(&g, &n1, &on("get", "namespaces", "", "", "default")),
        Err(String::new())
    );
}

#[test]
fn a_node_asks_tokens_for_its_pods_service_accounts_only() {
    let g = graph();
    let (n1, n2) = (node("n1"), node("n2"));
    assert_eq!(
        decide(&g, &n1, &on("create", "serviceaccounts", "token", "default", "builder")),
        Ok(())
    );
    assert!(decide(&g, &n2, &on("create", "serviceaccounts", "token", "default", "builder")).is_err());
    assert_eq!(
        decide(&g, &n1, &on("get", "serviceaccounts", "", "default", "builder")),
        Err("can only create tokens for individual service accounts".into())
    );
}

#[test]
fn the_node_mode_is_asked_before_rbac_and_its_reason_ends_the_refusal() {
    let authorizer = Authorizer::new(&[Mode::Node, Mode::Rbac]);
    let g = authorizer.node_graph().unwrap();
    let n1 = node("n1");
    let web: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"nodeName": "n2", "containers": [{"name": "c", "image": "i"}]}
    }))
    .unwrap();
    g.put_pod(&web);
    let asks = on("update", "pods", "status", "default", "web");
    let decision = authorizer.authorize(&n1, &asks);
    assert!(!decision.allowed);
    assert_eq!(
        forbidden_because(&n1, &asks, &decision.reason).message,
        "pods \"web\" is forbidden: User \"system:node:n1\" cannot update resource \"pods/status\" in API group \"\" \
         in the namespace \"default\": node \"n1\" can only update pod status for pods with spec.nodeName set to itself"
    );
    assert!(authorizer.authorize(&node("n2"), &asks).allowed);
    let other = UserInfo::authenticated("alice", []);
    assert_eq!(authorizer.authorize(&other, &asks).reason, "", "no reason for others");
}

#[test]
fn a_node_creates_no_other_node() {
    use berth_api::objects::Node;
    let node_object = |name: &str| {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        berth_api::kinds::Object::new(node)
    };
    let with_node = Authorizer::new(&[Mode::Node, Mode::Rbac]);
    let n2 = node("n2");
    assert!(check_write(&with_node, Some(&n2), &node_object("n2")).is_ok());
    let refused = check_write(&with_node, Some(&n2), &node_object("n1")).unwrap_err();
    assert_eq!(
        (refused.code, refused.message.as_str()),
        (
            403,
            "nodes \"n1\" is forbidden: node \"n2\" is not allowed to modify node \"n1\""
        )
    );
    let admin = UserInfo::authenticated("admin", []);
    assert!(check_write(&with_node, Some(&admin), &node_object("n1")).is_ok());
    let rbac_only = Authorizer::new(&[Mode::Rbac]);
    assert!(
        check_write(&rbac_only, Some(&n2), &node_object("n1")).is_ok(),
        "without the Node mode, RBAC alone"
    );
}

#[test]
fn a_refusal_reads_again_the_pods_it_depends_on() {
    assert_eq!(
        pods_concerned(&on("update", "pods", "status", "default", "web")),
        Some(("default", Some("web")))
    );
    assert_eq!(
        pods_concerned(&on("get", "secrets", "", "default", "db")),
        Some(("default", None))
    );
    assert_eq!(pods_concerned(&on("list", "secrets", "", "default", "")), None);
    assert_eq!(pods_concerned(&on("get", "nodes", "", "", "n1")), None);
    assert_eq!(pods_concerned(&on("get", "services", "", "default", "web")), None);
}
