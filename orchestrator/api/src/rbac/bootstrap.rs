//! The default roles and bindings every cluster has, as kube-apiserver's bootstrap
//! policy: `cluster-admin` (bound to `system:masters`), the user-facing `admin`,
//! `edit` and `view`, aggregated from `system:aggregate-to-*` (and from each other:
//! `view` is aggregated into `edit`, `edit` into `admin`), and the roles everyone
//! has: `system:basic-user` (the self reviews), `system:discovery` and
//! `system:public-info-viewer` (health and version, for anonymous users too),
//! `system:monitoring` (`/metrics` and the health checks, for its group), and
//! `system:node` and `system:node-proxier`, what a node's agent may do.
//!
//! Each carries [`AUTOUPDATE`] `"true"`: the API server creates the missing ones at
//! start and adds back what was taken from the others ([`reconcile_role`],
//! [`reconcile_binding`]); one a user marks `"false"` is left as it is.

use std::collections::BTreeMap;

use super::aggregation::aggregated_rules;
use super::{AUTOUPDATE, AggregationRule, ClusterRole, ClusterRoleBinding, GROUP, PolicyRule, RoleRef, Subject};
use crate::meta::{LabelSelector, MetaExt, ObjectMeta};

pub const CLUSTER_ADMIN: &str = "cluster-admin";
pub const ADMIN: &str = "admin";
pub const EDIT: &str = "edit";
pub const VIEW: &str = "view";
/// The role of nodes' agents.
pub const NODE: &str = "system:node";
/// kube-proxy's role (and its user's), which berth's agents need too: each is its
/// node's service proxy and DNS server.
pub const NODE_PROXIER: &str = "system:node-proxier";
const KUBE_PROXY: &str = "system:kube-proxy";
/// What a volume provisioner may do; berth's agents hold it too, as the node's side
/// of the `berth.io/local` provisioner (its volumes watched, reclaimed ones deleted).
pub const PERSISTENT_VOLUME_PROVISIONER: &str = "system:persistent-volume-provisioner";
/// berth's own: what the agents' packet filter reads to enforce the NetworkPolicies
/// (every pod, namespace and policy of the cluster).
pub const NETWORK_POLICY_FILTER: &str = "system:berth:network-policy-filter";
/// Their group (`system:node:<name>` is each one's user).
pub const NODES_GROUP: &str = "system:nodes";
pub const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
pub const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
pub const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";
/// The label of every default role and binding.
const BOOTSTRAPPING: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];
const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

/// A resource rule.
pub fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        ..Default::default()
    }
}

/// A non-resource URL rule.
pub fn url_rule(verbs: &[&str], urls: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        non_resource_urls: Some(strings(urls)),
        ..Default::default()
    }
}

fn meta(name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    let mut all: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    all.insert(BOOTSTRAPPING.0.into(), BOOTSTRAPPING.1.into());
    ObjectMeta {
        name: Some(name.into()),
        labels: Some(all),
        annotations: Some([(AUTOUPDATE.to_string(), "true".to_string())].into()),
        ..Default::default()
    }
}

fn role(name: &str, labels: &[(&str, &str)], rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: meta(name, labels),
        rules: Some(rules),
        aggregation_rule: None,
    }
}

fn aggregated(name: &str, labels: &[(&str, &str)], from: &str) -> ClusterRole {
    ClusterRole {
        metadata: meta(name, labels),
        rules: Some(Vec::new()),
        aggregation_rule: Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: Some([(from.to_string(), "true".to_string())].into()),
                ..Default::default()
            }]),
        }),
    }
}

/// The default ClusterRoles, the aggregated ones with their rules filled in.
pub fn cluster_roles() -> Vec<ClusterRole> {
    let mut roles = vec![
        role(
            CLUSTER_ADMIN,
            &[],
            vec![rule(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])],
        ),
        aggregated(ADMIN, &[], AGGREGATE_TO_ADMIN),
        aggregated(EDIT, &[(AGGREGATE_TO_ADMIN, "true")], AGGREGATE_TO_EDIT),
        aggregated(VIEW, &[(AGGREGATE_TO_EDIT, "true")], AGGREGATE_TO_VIEW),
        role(
            "system:aggregate-to-admin",
            &[(AGGREGATE_TO_ADMIN, "true")],
            vec![
                rule(&["create"], &["authorization.k8s.io"], &["localsubjectaccessreviews"]),
                rule(READ_WRITE, &[GROUP], &["roles", "rolebindings"]),
            ],
        ),
        role(
            "system:aggregate-to-edit",
            &[(AGGREGATE_TO_EDIT, "true")],
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "pods/attach",
                        "pods/proxy",
                        "pods/exec",
                        "pods/portforward",
                        "secrets",
                        "services/proxy",
                    ],
                ),
                rule(&["impersonate"], &[""], &["serviceaccounts"]),
                rule(
                    WRITE,
                    &[""],
                    &["pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"],
                ),
                rule(&["create"], &[""], &["pods/eviction"]),
                rule(
                    WRITE,
                    &[""],
                    &[
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                        "persistentvolumeclaims",
                        "configmaps",
                        "secrets",
                        "events",
                    ],
                ),
                rule(&["create"], &[""], &["serviceaccounts/token"]),
                rule(
                    WRITE,
                    &["apps"],
                    &[
                        "statefulsets",
                        "statefulsets/scale",
                        "daemonsets",
                        "deployments",
                        "deployments/scale",
                        "deployments/rollback",
                        "replicasets",
                        "replicasets/scale",
                    ],
                ),
                rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
                rule(WRITE, &["batch"], &["jobs", "cronjobs"]),
                rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
                rule(WRITE, &["networking.k8s.io"], &["networkpolicies", "ingresses"]),
                rule(READ_WRITE, &["coordination.k8s.io"], &["leases"]),
            ],
        ),
        role(
            "system:aggregate-to-view",
            &[(AGGREGATE_TO_VIEW, "true")],
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "configmaps",
                    ],
                ),
                rule(
                    READ,
                    &[""],
                    &[
                        "limitranges",
                        "resourcequotas",
                        "bindings",
                        "events",
                        "pods/status",
                        "resourcequotas/status",
                        "namespaces/status",
                        "replicationcontrollers/status",
                        "pods/log",
                    ],
                ),
                rule(READ, &[""], &["namespaces"]),
                rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
                rule(
                    READ,
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                    ],
                ),
                rule(
                    READ,
                    &["autoscaling"],
                    &["horizontalpodautoscalers", "horizontalpodautoscalers/status"],
                ),
                rule(
                    READ,
                    &["batch"],
                    &["jobs", "jobs/status", "cronjobs", "cronjobs/status"],
                ),
                rule(
                    READ,
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                ),
                rule(
                    READ,
                    &["networking.k8s.io"],
                    &["networkpolicies", "ingresses", "ingresses/status"],
                ),
                rule(READ, &["events.k8s.io"], &["events"]),
                rule(READ, &["metrics.k8s.io"], &["pods", "nodes"]),
            ],
        ),
        role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(&["create"], &["authentication.k8s.io"], &["selfsubjectreviews"]),
            ],
        ),
        role(
            "system:discovery",
            &[],
            vec![url_rule(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        role(
            "system:public-info-viewer",
            &[],
            vec![url_rule(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        // Who reads the servers' /metrics (a Prometheus scraper's group).
        role(
            "system:monitoring",
            &[],
            vec![url_rule(
                &["get"],
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/metrics/slis",
                    "/readyz",
                    "/readyz/*",
                ],
            )],
        ),
        role(NODE, &[], node_rules()),
        role(
            NODE_PROXIER,
            &[],
            vec![
                rule(&["list", "watch"], &[""], &["services", "endpoints"]),
                rule(READ, &[""], &["nodes"]),
                rule(&["create", "update", "patch"], &["", "events.k8s.io"], &["events"]),
                rule(&["list", "watch"], &["discovery.k8s.io"], &["endpointslices"]),
            ],
        ),
        role(
            PERSISTENT_VOLUME_PROVISIONER,
            &[],
            vec![
                rule(
                    &["get", "list", "watch", "create", "delete"],
                    &[""],
                    &["persistentvolumes"],
                ),
                rule(&["get", "list", "watch", "update"], &[""], &["persistentvolumeclaims"]),
                rule(READ, &["storage.k8s.io"], &["storageclasses"]),
                rule(&["watch"], &[""], &["events"]),
                rule(&["create", "update", "patch"], &["", "events.k8s.io"], &["events"]),
            ],
        ),
        role(
            NETWORK_POLICY_FILTER,
            &[],
            vec![
                rule(&["list", "watch"], &[""], &["pods", "namespaces"]),
                rule(&["list", "watch"], &["networking.k8s.io"], &["networkpolicies"]),
            ],
        ),
    ];
    fill_aggregated(&mut roles);
    roles
}

/// `system:node`: the kubelet's rules, as Kubernetes' bootstrap policy has them.
/// Kubernetes narrows them to a node's own objects with the Node authorizer; its
/// Node mode allows the rest of them to every node, the role's binding having no
/// subjects then.
pub fn node_rules() -> Vec<PolicyRule> {
    vec![
        rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        rule(
            &["create"],
            &["authorization.k8s.io"],
            &["subjectaccessreviews", "localsubjectaccessreviews"],
        ),
        rule(READ, &[""], &["services"]),
        rule(&["create", "get", "list", "watch"], &[""], &["nodes"]),
        rule(&["update", "patch"], &[""], &["nodes/status"]),
        rule(&["update", "patch"], &[""], &["nodes"]),
        rule(&["create", "update", "patch"], &[""], &["events"]),
        rule(READ, &[""], &["pods"]),
        rule(&["create", "delete"], &[""], &["pods"]),
        rule(&["update", "patch"], &[""], &["pods/status"]),
        rule(&["create"], &[""], &["pods/eviction"]),
        rule(READ, &[""], &["secrets", "configmaps"]),
        rule(&["get"], &[""], &["persistentvolumeclaims", "persistentvolumes"]),
        rule(&["get"], &[""], &["endpoints"]),
        rule(
            &["create", "get", "list", "watch"],
            &["certificates.k8s.io"],
            &["certificatesigningrequests"],
        ),
        rule(
            &["get", "create", "update", "patch", "delete"],
            &["coordination.k8s.io"],
            &["leases"],
        ),
        rule(&["get"], &["storage.k8s.io"], &["volumeattachments"]),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
        rule(&["get", "update", "patch"], &[""], &["persistentvolumeclaims/status"]),
        rule(&["get", "watch", "list"], &["storage.k8s.io"], &["csidrivers"]),
        rule(
            &["get", "create", "update", "patch", "delete"],
            &["storage.k8s.io"],
            &["csinodes"],
        ),
        rule(READ, &["node.k8s.io"], &["runtimeclasses"]),
    ]
}

/// Fills the rules of the aggregated roles among `roles` from the others, until
/// nothing changes (`view` feeds `edit`, which feeds `admin`).
pub fn fill_aggregated(roles: &mut [ClusterRole]) {
    loop {
        let mut changed = false;
        for i in 0..roles.len() {
            if let Some(rules) = aggregated_rules(&roles[i], roles.iter())
                && roles[i].rules.as_ref() != Some(&rules)
            {
                roles[i].rules = Some(rules);
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

fn group(name: &str) -> Subject {
    Subject {
        kind: super::GROUP_KIND.into(),
        api_group: Some(GROUP.into()),
        name: name.into(),
        namespace: None,
    }
}

fn user(name: &str) -> Subject {
    Subject {
        kind: super::USER.into(),
        api_group: Some(GROUP.into()),
        name: name.into(),
        namespace: None,
    }
}

fn binding(role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(role, &[]),
        role_ref: RoleRef {
            api_group: GROUP.into(),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        // None rather than an empty list, as Kubernetes writes a binding without any.
        subjects: (!subjects.is_empty()).then_some(subjects),
    }
}

/// The default ClusterRoleBindings, each named as its role. With the Node
/// authorization mode (`node_mode`), `system:node`'s has no subjects, as in
/// Kubernetes: that mode decides what each node may.
pub fn cluster_role_bindings(node_mode: bool) -> Vec<ClusterRoleBinding> {
    const MASTERS: &str = "system:masters";
    const AUTHENTICATED: &str = "system:authenticated";
    const UNAUTHENTICATED: &str = "system:unauthenticated";
    vec![
        binding(CLUSTER_ADMIN, vec![group(MASTERS)]),
        binding("system:basic-user", vec![group(AUTHENTICATED)]),
        binding("system:discovery", vec![group(AUTHENTICATED)]),
        binding(
            "system:public-info-viewer",
            vec![group(AUTHENTICATED), group(UNAUTHENTICATED)],
        ),
        binding("system:monitoring", vec![group("system:monitoring")]),
        // Without the Node mode, the group gets the role: each node the whole of it.
        binding(NODE, if node_mode { vec![] } else { vec![group(NODES_GROUP)] }),
        binding(NODE_PROXIER, vec![user(KUBE_PROXY), group(NODES_GROUP)]),
        // Kubernetes binds it to nobody by default.
        binding(PERSISTENT_VOLUME_PROVISIONER, vec![group(NODES_GROUP)]),
        binding(NETWORK_POLICY_FILTER, vec![group(NODES_GROUP)]),
    ]
}

fn wants_update(meta: &ObjectMeta) -> bool {
    meta.annotations().get(AUTOUPDATE).map(String::as_str) == Some("true")
}

/// Adds the default's labels and annotations that `stored` lacks.
fn reconcile_meta(stored: &mut ObjectMeta, default: &ObjectMeta) {
    for (k, v) in default.labels() {
        stored.labels_mut().entry(k.clone()).or_insert_with(|| v.clone());
    }
    for (k, v) in default.annotations() {
        stored.annotations_mut().entry(k.clone()).or_insert_with(|| v.clone());
    }
}

/// The stored default role with what its default has and it lacks added back
/// (rules; an aggregated role's selectors, whose rules are the controller's), or
/// `None` when it needs no write (already has all, or is marked not to be updated).
pub fn reconcile_role(stored: &ClusterRole, default: &ClusterRole) -> Option<ClusterRole> {
    if !wants_update(&stored.metadata) {
        return None;
    }
    let mut role = stored.clone();
    reconcile_meta(&mut role.metadata, &default.metadata);
    match &default.aggregation_rule {
        Some(rule) => {
            let selectors = role
                .aggregation_rule
                .get_or_insert_with(Default::default)
                .cluster_role_selectors
                .get_or_insert_with(Vec::new);
            for selector in rule.cluster_role_selectors.iter().flatten() {
                if !selectors.contains(selector) {
                    selectors.push(selector.clone());
                }
            }
        }
        None => {
            let rules = role.rules.get_or_insert_with(Vec::new);
            for rule in default.rules.iter().flatten() {
                if !rules.contains(rule) {
                    rules.push(rule.clone());
                }
            }
        }
    }
    (role != *stored).then_some(role)
}

/// The stored default binding with its default's subjects added back, or `None`.
/// (Its roleRef cannot change: a binding whose role differs is left alone.)
pub fn reconcile_binding(stored: &ClusterRoleBinding, default: &ClusterRoleBinding) -> Option<ClusterRoleBinding> {
    if !wants_update(&stored.metadata) || stored.role_ref != default.role_ref {
        return None;
    }
    let mut binding = stored.clone();
    reconcile_meta(&mut binding.metadata, &default.metadata);
    for subject in default.subjects.iter().flatten() {
        let subjects = binding.subjects.get_or_insert_with(Vec::new);
        if !subjects.contains(subject) {
            subjects.push(subject.clone());
        }
    }
    (binding != *stored).then_some(binding)
}
