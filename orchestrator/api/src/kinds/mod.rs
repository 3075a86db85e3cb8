//! The kind table: one [`KindDescriptor`] per kind, each in its own file with the
//! kind's `Spec` implementation, and [`KINDS`], the one list that the API server
//! (routes, discovery, create and update), the CLI (names, tables) and the store
//! keys read.
//!
//! Adding a kind takes a file here (its types, `Spec` implementation and
//! descriptor) and one line in the table below; a controller, if it has one.

pub mod cells;
mod descriptor;
mod object;

pub use descriptor::{Conversion, KindDescriptor, PrinterColumn, StatusOnCreate, Subresources, group_version, qualify};
pub(crate) use object::flat_kind;
pub use object::{Object, TypedObject};

pub mod config_map;
pub mod controller_revision;
pub mod deployment;
pub mod endpoint_slice;
pub mod event;
pub mod horizontal_pod_autoscaler;
pub mod horizontal_pod_autoscaler_v1;
pub mod lease;
pub mod limit_range;
pub mod namespace;
pub mod network_policy;
pub mod node;
pub mod persistent_volume;
pub mod persistent_volume_claim;
pub mod pod;
pub mod pod_disruption_budget;
pub mod priority_class;
pub mod replica_set;
pub mod resource_quota;
pub mod runtime_class;
pub mod secret;
pub mod service;
pub mod service_account;
pub mod stateful_set;
pub mod storage_class;
// RBAC (rbac.authorization.k8s.io/v1)
pub mod cluster_role;
pub mod cluster_role_binding;
pub mod role;
pub mod role_binding;

/// Every kind the system serves, in the order discovery lists them (a kind served
/// in two group versions is listed once for each).
pub static KINDS: &[&KindDescriptor] = &[
    &namespace::NAMESPACE,
    &node::NODE,
    &pod::POD,
    &replica_set::REPLICA_SET,
    &deployment::DEPLOYMENT,
    &event::EVENT,
    &event::EVENT_V1,
    &secret::SECRET,
    &config_map::CONFIG_MAP,
    &runtime_class::RUNTIME_CLASS,
    &service::SERVICE,
    &endpoint_slice::ENDPOINT_SLICE,
    &pod_disruption_budget::POD_DISRUPTION_BUDGET,
    &horizontal_pod_autoscaler::HORIZONTAL_POD_AUTOSCALER,
    &horizontal_pod_autoscaler_v1::HORIZONTAL_POD_AUTOSCALER_V1,
    &stateful_set::STATEFUL_SET,
    &controller_revision::CONTROLLER_REVISION,
    &persistent_volume::PERSISTENT_VOLUME,
    &persistent_volume_claim::PERSISTENT_VOLUME_CLAIM,
    &storage_class::STORAGE_CLASS,
    &role::ROLE,
    &cluster_role::CLUSTER_ROLE,
    &role_binding::ROLE_BINDING,
    &cluster_role_binding::CLUSTER_ROLE_BINDING,
    &resource_quota::RESOURCE_QUOTA,
    &limit_range::LIMIT_RANGE,
    &service_account::SERVICE_ACCOUNT,
    &network_policy::NETWORK_POLICY,
    &lease::LEASE,
    &priority_class::PRIORITY_CLASS,
];

/// The kind of a `kind` field (`Pod`).
pub fn by_kind(kind: &str) -> Option<&'static KindDescriptor> {
    KINDS.iter().copied().find(|k| k.kind == kind)
}

/// The kind served as `plural` in a group version.
pub fn served(group: &str, version: &str, plural: &str) -> Option<&'static KindDescriptor> {
    KINDS
        .iter()
        .copied()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
}

/// Every group version that serves a kind, once each, in the order of [`KINDS`].
pub fn group_versions() -> &'static [(&'static str, &'static str)] {
    // Every request's route is looked up here: found once.
    static FOUND: std::sync::LazyLock<Vec<(&'static str, &'static str)>> = std::sync::LazyLock::new(|| {
        let mut found: Vec<(&'static str, &'static str)> = Vec::new();
        for kind in KINDS {
            if !found.contains(&(kind.group, kind.version)) {
                found.push((kind.group, kind.version));
            }
        }
        found
    });
    &FOUND
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn names_are_unique_and_consistent() {
        let mut words = BTreeSet::new();
        for kind in KINDS {
            assert!(!kind.version.is_empty() && !kind.kind.is_empty(), "{kind:?}");
            assert_eq!(kind.singular, kind.kind.to_ascii_lowercase(), "{}", kind.kind);
            let stem = kind.singular.strip_suffix('y').map(|s| format!("{s}ies"));
            assert!(
                kind.plural.starts_with(kind.singular) || stem.as_deref() == Some(kind.plural),
                "{}: {}",
                kind.kind,
                kind.plural
            );
            if kind.conversion.is_none() {
                assert_eq!(by_kind(kind.kind), Some(*kind));
            }
            assert_eq!(served(kind.group, kind.version, kind.plural), Some(*kind));
            // Every name the CLI accepts names one kind only (a second version of a
            // kind in its group shares the first's names).
            if kind.conversion.is_some() && by_kind(kind.kind).is_some_and(|first| first.group == kind.group) {
                continue;
            }
            for word in [kind.plural, kind.singular].iter().chain(kind.short_names) {
                assert!(words.insert((kind.group, *word)), "{word} names two kinds");
            }
        }
    }

    #[test]
    fn the_kinds_as_kubernetes_has_them() {
        let facts: Vec<_> = KINDS
            .iter()
            .map(|k| {
                (
                    k.api_version(),
                    k.kind,
                    k.plural,
                    k.namespaced,
                    k.short_names,
                    k.categories,
                )
            })
            .collect();
        let all: &[&str] = &["all"];
        let rbac = |version: &str| format!("rbac.authorization.k8s.io/{version}");
        assert_eq!(
            facts,
            [
                ("v1".to_string(), "Namespace", "namespaces", false, &["ns"][..], &[][..]),
                ("v1".to_string(), "Node", "nodes", false, &["no"], &[]),
                ("v1".to_string(), "Pod", "pods", true, &["po"], all),
                ("apps/v1".to_string(), "ReplicaSet", "replicasets", true, &["rs"], all),
                (
                    "apps/v1".to_string(),
                    "Deployment",
                    "deployments",
                    true,
                    &["deploy"],
                    all
                ),
                ("v1".to_string(), "Event", "events", true, &["ev"], &[]),
                ("events.k8s.io/v1".to_string(), "Event", "events", true, &["ev"], &[]),
                ("v1".to_string(), "Secret", "secrets", true, &[], &[]),
                ("v1".to_string(), "ConfigMap", "configmaps", true, &["cm"], &[]),
                (
                    "node.k8s.io/v1".to_string(),
                    "RuntimeClass",
                    "runtimeclasses",
                    false,
                    &[],
                    &[]
                ),
                ("v1".to_string(), "Service", "services", true, &["svc"], all),
                (
                    "discovery.k8s.io/v1".to_string(),
                    "EndpointSlice",
                    "endpointslices",
                    true,
                    &[],
                    &[]
                ),
                (
                    "policy/v1".to_string(),
                    "PodDisruptionBudget",
                    "poddisruptionbudgets",
                    true,
                    &["pdb"],
                    &[]
                ),
                (
                    "autoscaling/v2".to_string(),
                    "HorizontalPodAutoscaler",
                    "horizontalpodautoscalers",
                    true,
                    &["hpa"],
                    all
                ),
                (
                    "autoscaling/v1".to_string(),
                    "HorizontalPodAutoscaler",
                    "horizontalpodautoscalers",
                    true,
                    &["hpa"],
                    all
                ),
                (
                    "apps/v1".to_string(),
                    "StatefulSet",
                    "statefulsets",
                    true,
                    &["sts"],
                    all
                ),
                (
                    "apps/v1".to_string(),
                    "ControllerRevision",
                    "controllerrevisions",
                    true,
                    &[],
                    &[]
                ),
                (
                    "v1".to_string(),
                    "PersistentVolume",
                    "persistentvolumes",
                    false,
                    &["pv"],
                    &[]
                ),
                (
                    "v1".to_string(),
                    "PersistentVolumeClaim",
                    "persistentvolumeclaims",
                    true,
                    &["pvc"],
                    &[]
                ),
                (
                    "storage.k8s.io/v1".to_string(),
                    "StorageClass",
                    "storageclasses",
                    false,
                    &["sc"],
                    &[]
                ),
                (rbac("v1"), "Role", "roles", true, &[], &[]),
                (rbac("v1"), "ClusterRole", "clusterroles", false, &[], &[]),
                (rbac("v1"), "RoleBinding", "rolebindings", true, &[], &[]),
                (rbac("v1"), "ClusterRoleBinding", "clusterrolebindings", false, &[], &[]),
                (
                    "v1".to_string(),
                    "ResourceQuota",
                    "resourcequotas",
                    true,
                    &["quota"],
                    &[]
                ),
                ("v1".to_string(), "LimitRange", "limitranges", true, &["limits"], &[]),
                (
                    "v1".to_string(),
                    "ServiceAccount",
                    "serviceaccounts",
                    true,
                    &["sa"],
                    &[]
                ),
                (
                    "networking.k8s.io/v1".to_string(),
                    "NetworkPolicy",
                    "networkpolicies",
                    true,
                    &["netpol"],
                    &[]
                ),
                ("coordination.k8s.io/v1".to_string(), "Lease", "leases", true, &[], &[]),
                (
                    "scheduling.k8s.io/v1".to_string(),
                    "PriorityClass",
                    "priorityclasses",
                    false,
                    &["pc"],
                    &[]
                ),
            ]
        );
        let scalable: Vec<&str> = KINDS
            .iter()
            .filter(|k| k.subresources.scale)
            .map(|k| k.plural)
            .collect();
        assert_eq!(scalable, ["replicasets", "deployments", "statefulsets"]);
        let with_status: Vec<&str> = KINDS
            .iter()
            .filter(|k| k.subresources.status)
            .map(|k| k.plural)
            .collect();
        assert_eq!(
            with_status,
            [
                "namespaces",
                "nodes",
                "pods",
                "replicasets",
                "deployments",
                "services",
                "poddisruptionbudgets",
                "horizontalpodautoscalers",
                "horizontalpodautoscalers",
                "statefulsets",
                "persistentvolumes",
                "persistentvolumeclaims",
                "resourcequotas"
            ]
        );
        assert_eq!(
            group_versions(),
            [
                ("", "v1"),
                ("apps", "v1"),
                ("events.k8s.io", "v1"),
                ("node.k8s.io", "v1"),
                ("discovery.k8s.io", "v1"),
                ("policy", "v1"),
                ("autoscaling", "v2"),
                ("autoscaling", "v1"),
                ("storage.k8s.io", "v1"),
                ("rbac.authorization.k8s.io", "v1"),
                ("networking.k8s.io", "v1"),
                ("coordination.k8s.io", "v1"),
                ("scheduling.k8s.io", "v1")
            ]
        );
    }

    #[test]
    fn keys_and_paths() {
        assert_eq!(
            deployment::DEPLOYMENT.key("default", "web"),
            "/registry/deployments/default/web"
        );
        assert_eq!(node::NODE.key("ignored", "n1"), "/registry/nodes/n1");
        assert_eq!(pod::POD.prefix(None), "/registry/pods/");
        assert_eq!(pod::POD.prefix(Some("dev")), "/registry/pods/dev/");
        assert_eq!(node::NODE.prefix(Some("dev")), "/registry/nodes/");
        assert_eq!(
            deployment::DEPLOYMENT.object_path("default", "web"),
            "/apis/apps/v1/namespaces/default/deployments/web"
        );
        assert_eq!(
            deployment::DEPLOYMENT.collection_path(None),
            "/apis/apps/v1/deployments"
        );
        assert_eq!(pod::POD.collection_path(Some("kube")), "/api/v1/namespaces/kube/pods");
        assert_eq!(node::NODE.object_path("default", "n1"), "/api/v1/nodes/n1");
        assert_eq!(deployment::DEPLOYMENT.qualified_resource(), "deployments.apps");
        assert_eq!(pod::POD.qualified_resource(), "pods");
        assert_eq!((deployment::DEPLOYMENT.group, node::NODE.group), ("apps", ""));
        assert_eq!(deployment::DEPLOYMENT.qualified_singular(), "deployment.apps");
        assert_eq!(pod::POD.qualified_singular(), "pod");
        assert_eq!(replica_set::REPLICA_SET.list_kind(), "ReplicaSetList");
        assert_eq!(qualify("Scale", "autoscaling"), "Scale.autoscaling");
    }

    /// The columns are a server-side Table's `columnDefinitions` and the CLI's
    /// tables: the name first (events, as Kubernetes shows them, have it last and
    /// wide), an age, and each row function gives one cell per column.
    #[test]
    fn printer_columns_are_well_formed() {
        let now = std::time::SystemTime::now();
        for kind in KINDS {
            let columns = kind.printer_columns();
            let names = columns.iter().filter(|c| c.format == "name").count();
            assert_eq!(names, 1, "{}: one Name column", kind.kind);
            if kind.kind != "Event" {
                assert_eq!(columns.first(), Some(&PrinterColumn::NAME), "{}", kind.kind);
                // Roles show when they were made ("Created At"), as kubectl does.
                let made = [PrinterColumn::AGE, role::CREATED_AT];
                assert!(columns.iter().any(|c| made.contains(c)), "{}", kind.kind);
            }
            let empty = serde_json::json!({"apiVersion": kind.api_version(), "kind": kind.kind,
                "metadata": {"name": "x"}, "involvedObject": {"kind": "Pod"}});
            let object = (kind.decode)(&empty).unwrap();
            assert_eq!((kind.cells)(&object, now).len(), columns.len(), "{}: cells", kind.kind);
            let mut names = BTreeSet::new();
            for column in columns {
                let at = format!("{} column {:?}", kind.kind, column.name);
                assert!(names.insert(column.name.to_ascii_uppercase()), "{at}: twice");
                assert!(!column.name.is_empty() && !column.description.is_empty(), "{at}");
                assert!(
                    ["string", "integer", "number", "boolean", "date"].contains(&column.type_),
                    "{at}: type {}",
                    column.type_
                );
                assert_eq!(column.format == "name", column.name == "Name", "{at}: format");
                assert!(column.format.is_empty() || column.format == "name", "{at}");
                assert!(
                    column.json_path.is_empty()
                        || (column.json_path.starts_with('.') && !column.json_path.contains(char::is_whitespace)),
                    "{at}: JSONPath {:?}",
                    column.json_path
                );
                assert!(column.priority <= 1, "{at}: priority {}", column.priority);
            }
            if kind.kind != "Event" {
                let priorities: Vec<u8> = columns.iter().map(|c| c.priority).collect();
                assert!(priorities.is_sorted(), "{}: wide columns come last", kind.kind);
            }
        }
    }
}
