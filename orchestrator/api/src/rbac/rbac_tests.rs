use serde_json::{Value, json};

use super::bootstrap::{self, rule, url_rule};
use super::*;
use crate::validation::parse_value;

fn errors_of(value: Value) -> Vec<String> {
    match parse_value(value) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_rule_matches_verbs_groups_resources_and_names_with_wildcards() {
    let pods = rule(&["get", "list"], &[""], &["pods"]);
    assert!(rule_allows_resource(&pods, "get", "", "pods", "", "p"));
    assert!(rule_allows_resource(&pods, "list", "", "pods", "", ""));
    assert!(!rule_allows_resource(&pods, "delete", "", "pods", "", "p"), "verb");
    assert!(!rule_allows_resource(&pods, "get", "apps", "pods", "", "p"), "group");
    assert!(
        !rule_allows_resource(&pods, "get", "", "pods", "log", "p"),
        "a subresource is its own"
    );
    let logs = rule(&["get"], &[""], &["pods/log"]);
    assert!(rule_allows_resource(&logs, "get", "", "pods", "log", "p"));
    assert!(!rule_allows_resource(&logs, "get", "", "pods", "", "p"));
    let any_scale = rule(&["get"], &["apps"], &["*/scale"]);
    assert!(rule_allows_resource(
        &any_scale,
        "get",
        "apps",
        "deployments",
        "scale",
        "d"
    ));
    assert!(!rule_allows_resource(&any_scale, "get", "apps", "deployments", "", "d"));
    let everything = rule(&["*"], &["*"], &["*"]);
    assert!(rule_allows_resource(
        &everything,
        "deletecollection",
        "apps",
        "deployments",
        "status",
        ""
    ));
    let mut named = rule(&["get", "list"], &[""], &["configmaps"]);
    named.resource_names = Some(vec!["settings".into()]);
    assert!(rule_allows_resource(&named, "get", "", "configmaps", "", "settings"));
    assert!(!rule_allows_resource(&named, "get", "", "configmaps", "", "other"));
    assert!(
        !rule_allows_resource(&named, "list", "", "configmaps", "", ""),
        "a list names nothing, so a rule of names never allows it"
    );
}

#[test]
fn non_resource_urls_match_exactly_or_by_a_trailing_star() {
    let health = url_rule(&["get"], &["/healthz", "/apis/*"]);
    assert!(rule_allows_path(&health, "get", "/healthz"));
    assert!(!rule_allows_path(&health, "get", "/healthz/etcd"));
    assert!(!rule_allows_path(&health, "post", "/healthz"));
    assert!(rule_allows_path(&health, "get", "/apis/apps/v1"));
    assert!(!rule_allows_path(&health, "get", "/apis"), "the star needs the slash");
    assert!(rule_allows_path(&url_rule(&["*"], &["*"]), "put", "/anything"));
    assert!(
        !rule_allows_path(&rule(&["*"], &["*"], &["*"]), "get", "/healthz"),
        "resource rules are not paths"
    );
}

fn role(rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
           "metadata": {"name": "r", "namespace": "dev"}, "rules": rules})
}

#[test]
fn rules_are_validated_as_kubernetes_does() {
    assert!(
        errors_of(role(
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])
        ))
        .is_empty()
    );
    assert_eq!(
        errors_of(role(json!([{"verbs": [], "apiGroups": [""], "resources": ["pods"]}]))),
        ["rules[0].verbs: required: verbs must contain at least one value"]
    );
    assert_eq!(
        errors_of(role(json!([{"verbs": ["get"]}]))),
        [
            "rules[0].apiGroups: required: resource rules must supply at least one api group",
            "rules[0].resources: required: resource rules must supply at least one resource"
        ]
    );
    assert_eq!(
        errors_of(role(json!([{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]))),
        ["rules[0].nonResourceURLs: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs"]
    );
    let both = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "system:mixed"},
        "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"], "resources": ["pods"]}]});
    assert_eq!(
        errors_of(both),
        [
            "rules[0].nonResourceURLs: []string{\"/healthz\"}: rules cannot apply to both regular resources and non-resource URLs"
        ]
    );
    let bad_name = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "a/b"}});
    assert_eq!(errors_of(bad_name), ["metadata.name: may not contain '/'"]);
    let empty_aggregation = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "agg"}, "aggregationRule": {}});
    assert_eq!(
        errors_of(empty_aggregation),
        [
            "aggregationRule.clusterRoleSelectors: required: at least one clusterRoleSelector required if aggregationRule is non-nil"
        ]
    );
}

fn role_binding(role_ref: Value, subjects: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
           "metadata": {"name": "b", "namespace": "dev"}, "roleRef": role_ref, "subjects": subjects})
}

#[test]
fn bindings_name_a_role_and_known_kinds_of_subject() {
    let ok = role_binding(
        json!({"kind": "ClusterRole", "name": "edit"}),
        json!([{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "builder"}]),
    );
    let parsed = parse_value(ok).unwrap().object.to_value();
    assert_eq!(parsed["roleRef"]["apiGroup"], GROUP, "defaulted");
    assert_eq!(parsed["subjects"][0]["apiGroup"], GROUP, "a User's group is defaulted");
    assert_eq!(parsed["subjects"][1].get("apiGroup"), None, "a ServiceAccount has none");
    assert_eq!(
        errors_of(role_binding(
            json!({"kind": "Secret", "name": ""}),
            json!([{"kind": "Robot", "name": "r"}, {"kind": "Group", "apiGroup": "x", "name": "g"}])
        )),
        [
            "roleRef.kind: Unsupported value: \"Secret\": supported values: \"Role\", \"ClusterRole\"",
            "roleRef.name: required",
            "subjects[0].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
            "subjects[1].apiGroup: Unsupported value: \"x\": supported values: \"rbac.authorization.k8s.io\""
        ]
    );
    let cluster = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "r"},
        "subjects": [{"kind": "ServiceAccount", "name": "builder"}]});
    assert_eq!(
        errors_of(cluster),
        [
            "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
            "subjects[0].namespace: required"
        ]
    );
}

#[test]
fn a_bindings_role_cannot_change() {
    let old = parse_value(role_binding(json!({"kind": "ClusterRole", "name": "view"}), json!([])))
        .unwrap()
        .object;
    let new = parse_value(role_binding(json!({"kind": "ClusterRole", "name": "edit"}), json!([])))
        .unwrap()
        .object;
    let mut errors = Vec::new();
    (crate::kinds::role_binding::ROLE_BINDING.validate_update)(&old, &new, &mut errors);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "roleRef");
    assert!(errors[0].message.ends_with("cannot change roleRef"), "{}", errors[0]);
}

#[test]
fn default_roles_aggregate_view_into_edit_into_admin() {
    let roles = bootstrap::cluster_roles();
    let by_name = |name: &str| roles.iter().find(|r| r.metadata.name.as_deref() == Some(name)).unwrap();
    let allows = |role: &str, verb: &str, group: &str, resource: &str, sub: &str| {
        by_name(role)
            .rules
            .iter()
            .flatten()
            .any(|r| rule_allows_resource(r, verb, group, resource, sub, "x"))
    };
    assert!(allows("view", "list", "", "pods", ""));
    assert!(allows("view", "get", "", "pods", "log"));
    assert!(!allows("view", "get", "", "secrets", ""), "view does not read secrets");
    assert!(!allows("view", "create", "", "pods", ""));
    assert!(allows("edit", "list", "", "pods", ""), "view's rules are edit's");
    assert!(allows("edit", "create", "", "pods", "exec"));
    assert!(allows("edit", "create", "apps", "deployments", ""));
    assert!(
        !allows("edit", "create", GROUP, "rolebindings", ""),
        "edit cannot grant"
    );
    assert!(allows("admin", "create", GROUP, "rolebindings", ""));
    assert!(
        allows("admin", "patch", "apps", "deployments", "scale"),
        "edit's rules are admin's"
    );
    // Every default role passes its own kind's validation.
    for role in &roles {
        let value = serde_json::to_value(role).unwrap();
        let mut value = value;
        value["apiVersion"] = "rbac.authorization.k8s.io/v1".into();
        value["kind"] = "ClusterRole".into();
        assert_eq!(errors_of(value), Vec::<String>::new(), "{:?}", role.metadata.name);
    }
}

#[test]
fn the_node_role_lets_agents_run_their_pods_and_nothing_more_and_binds_to_system_nodes() {
    let roles = bootstrap::cluster_roles();
    let node = roles
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(bootstrap::NODE))
        .unwrap();
    let allows = |verb: &str, group: &str, resource: &str, sub: &str| {
        node.rules
            .iter()
            .flatten()
            .any(|r| rule_allows_resource(r, verb, group, resource, sub, "x"))
    };
    assert!(allows("watch", "", "pods", ""));
    assert!(allows("update", "", "pods", "status"));
    assert!(allows("delete", "", "pods", ""));
    assert!(allows("create", "", "nodes", "") && allows("update", "", "nodes", "status"));
    assert!(allows("get", "", "secrets", "") && allows("get", "", "configmaps", ""));
    assert!(allows("get", "", "persistentvolumeclaims", "") && allows("get", "", "persistentvolumes", ""));
    assert!(allows("get", "node.k8s.io", "runtimeclasses", ""));
    assert!(!allows("update", "", "pods", ""), "a pod's spec is not the node's");
    assert!(!allows("create", "", "secrets", ""));
    assert!(!allows("delete", "", "nodes", ""));
    assert!(!allows("get", "apps", "deployments", ""));
    let node_binding = |node_mode| {
        bootstrap::cluster_role_bindings(node_mode)
            .into_iter()
            .find(|b| b.metadata.name.as_deref() == Some(bootstrap::NODE))
            .unwrap()
    };
    let binding = node_binding(false);
    assert_eq!(binding.role_ref.name, bootstrap::NODE);
    let subjects = binding.subjects.unwrap_or_default();
    assert_eq!(subjects.len(), 1);
    assert_eq!(
        (subjects[0].kind.as_str(), subjects[0].name.as_str()),
        ("Group", "system:nodes")
    );
    let without = node_binding(true);
    assert_eq!(without.subjects, None, "with the Node mode, no subjects");
    assert_eq!(
        bootstrap::reconcile_binding(&without, &without),
        None,
        "nothing to mend in a binding without subjects"
    );
    let proxier = roles
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(bootstrap::NODE_PROXIER))
        .unwrap();
    let proxier_allows = |verb: &str, group: &str, resource: &str| {
        proxier
            .rules
            .iter()
            .flatten()
            .any(|r| rule_allows_resource(r, verb, group, resource, "", "x"))
    };
    assert!(proxier_allows("watch", "discovery.k8s.io", "endpointslices"));
    assert!(proxier_allows("list", "", "services"));
    assert!(!proxier_allows("get", "", "secrets"));
    let proxier_binding = bootstrap::cluster_role_bindings(true)
        .into_iter()
        .find(|b| b.metadata.name.as_deref() == Some(bootstrap::NODE_PROXIER))
        .unwrap();
    let names: Vec<String> = proxier_binding
        .subjects
        .iter()
        .flatten()
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(names, ["system:kube-proxy", "system:nodes"]);
}

#[test]
fn nodes_watch_and_delete_persistent_volumes_as_the_provisioner_role_allows() {
    let roles = bootstrap::cluster_roles();
    let provisioner = roles
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(bootstrap::PERSISTENT_VOLUME_PROVISIONER))
        .unwrap();
    let allows = |verb: &str, resource: &str| {
        (provisioner.rules.iter().flatten()).any(|r| rule_allows_resource(r, verb, "", resource, "", "x"))
    };
    assert!(allows("watch", "persistentvolumes") && allows("delete", "persistentvolumes"));
    assert!(allows("update", "persistentvolumeclaims"));
    assert!(!allows("update", "persistentvolumes"), "{provisioner:?}");
    let binding = bootstrap::cluster_role_bindings(true)
        .into_iter()
        .find(|b| b.metadata.name.as_deref() == Some(bootstrap::PERSISTENT_VOLUME_PROVISIONER))
        .unwrap();
    let subjects: Vec<(String, String)> = (binding.subjects.iter().flatten())
        .map(|s| (s.kind.clone(), s.name.clone()))
        .collect();
    assert_eq!(subjects, [("Group".to_string(), "system:nodes".to_string())]);
}

#[test]
fn nodes_read_what_their_packet_filter_enforces() {
    let roles = bootstrap::cluster_roles();
    let filter = roles
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(bootstrap::NETWORK_POLICY_FILTER))
        .unwrap();
    let allows = |verb: &str, group: &str, resource: &str| {
        (filter.rules.iter().flatten()).any(|r| rule_allows_resource(r, verb, group, resource, "", "x"))
    };
    assert!(allows("watch", "", "pods") && allows("list", "", "namespaces"));
    assert!(allows("watch", "networking.k8s.io", "networkpolicies"));
    assert!(!allows("create", "networking.k8s.io", "networkpolicies"));
    let bound = bootstrap::cluster_role_bindings(true).into_iter().any(|b| {
        b.role_ref.name == bootstrap::NETWORK_POLICY_FILTER
            && b.subjects.iter().flatten().any(|s| s.name == "system:nodes")
    });
    assert!(bound);
}

#[test]
fn aggregation_takes_each_rule_once_from_matching_roles_by_name() {
    let labelled = |name: &str, label: &str, rules: Vec<PolicyRule>| ClusterRole {
        metadata: crate::meta::ObjectMeta {
            name: Some(name.into()),
            labels: Some([(label.to_string(), "true".to_string())].into()),
            ..Default::default()
        },
        rules: Some(rules),
        aggregation_rule: None,
    };
    let read = rule(&["get"], &[""], &["pods"]);
    let write = rule(&["create"], &[""], &["pods"]);
    let roles = [
        labelled("b", "team", vec![write.clone(), read.clone()]),
        labelled("a", "team", vec![read.clone()]),
        labelled("c", "other", vec![rule(&["*"], &["*"], &["*"])]),
    ];
    let mut aggregate = labelled("agg", "team", vec![]);
    aggregate.aggregation_rule = Some(AggregationRule {
        cluster_role_selectors: Some(vec![crate::meta::LabelSelector {
            match_labels: Some([("team".to_string(), "true".to_string())].into()),
            ..Default::default()
        }]),
    });
    let rules = aggregation::aggregated_rules(&aggregate, roles.iter().chain([&aggregate])).unwrap();
    assert_eq!(rules, [read, write]);
    assert_eq!(aggregation::aggregated_rules(&roles[0], roles.iter()), None);
}

#[test]
fn reconciling_a_default_adds_back_only_what_was_taken() {
    let defaults = bootstrap::cluster_roles();
    let basic = defaults
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some("system:basic-user"))
        .unwrap();
    assert_eq!(bootstrap::reconcile_role(basic, basic), None);
    let mut trimmed = basic.clone();
    trimmed.rules = Some(vec![rule(&["get"], &["x"], &["y"])]);
    let mended = bootstrap::reconcile_role(&trimmed, basic).unwrap();
    assert_eq!(mended.rules.as_ref().unwrap().len(), 3, "the user's rule stays");
    let mut kept = trimmed.clone();
    kept.metadata.annotations = Some([(AUTOUPDATE.to_string(), "false".to_string())].into());
    assert_eq!(bootstrap::reconcile_role(&kept, basic), None);
    let binding = &bootstrap::cluster_role_bindings(false)[0];
    let mut emptied = binding.clone();
    emptied.subjects = None;
    assert_eq!(
        bootstrap::reconcile_binding(&emptied, binding).unwrap().subjects,
        binding.subjects
    );
}
