use super::*;
use berth_api::conditions::condition;
use berth_api::kinds::service::Service;
use berth_api::meta::ObjectMeta;
use berth_api::objects::{Container, Node, NodeCondition, NodeStatus, Quantity, Resource, ResourceRequirements};
use berth_api::time::{from_system_time, parse_rfc3339};

fn node(name: &str, cpu: &str, ready: bool) -> Node {
    let mut node = Resource::new(
        ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        NodeSpec::default(),
    );
    node.status = NodeStatus {
        allocatable: Some(
            [
                ("cpu".to_string(), Quantity(cpu.to_string())),
                ("memory".to_string(), Quantity("1Gi".to_string())),
            ]
            .into(),
        ),
        conditions: Some(vec![NodeCondition::new(
            "Ready",
            if ready { "True" } else { "False" },
            "",
            "",
        )]),
        ..Default::default()
    };
    node
}

fn pod(name: &str, node: &str, cpu: &str, created: &str) -> Pod {
    let mut pod = Resource::new(
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            // Empty: no creationTimestamp.
            creation_timestamp: (!created.is_empty())
                .then(|| from_system_time(parse_rfc3339(created).expect("an RFC 3339 time"))),
            ..Default::default()
        },
        PodSpec {
            containers: vec![Container {
                name: "c".into(),
                resources: Some(ResourceRequirements {
                    requests: Some([("cpu".to_string(), Quantity(cpu.to_string()))].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            // Empty: not bound.
            node_name: (!node.is_empty()).then(|| node.into()),
            ..Default::default()
        },
    );
    pod.status.phase = Some("Pending".into());
    pod
}

fn request(name: &str, cpu_millis: u64) -> PodRequest {
    PodRequest {
        name: name.into(),
        cpu_millis,
        ..Default::default()
    }
}

#[test]
fn node_infos_charge_bound_and_assumed_pods_but_not_ended_ones() {
    let nodes = Snapshot::from_objects([node("n1", "1", true), node("n2", "2", true)], 10);
    let mut done = pod("done", "n1", "300m", "");
    done.status.phase = Some("Succeeded".into());
    let pods = Snapshot::from_objects(
        [
            pod("bound", "n1", "200m", ""),
            done,
            // Bound by this loop; the cache does not show it yet.
            pod("assumed", "", "400m", ""),
            pod("waiting", "", "100m", ""),
            // Bound by this loop, and the cache already shows it: charged once.
            pod("seen", "n2", "500m", ""),
        ],
        10,
    );
    let assumed: BTreeMap<String, Assumed> = [
        (
            "/registry/pods/default/assumed".to_string(),
            Assumed {
                node: "n1".into(),
                request: request("assumed", 400),
                revision: 11,
            },
        ),
        (
            "/registry/pods/default/seen".to_string(),
            Assumed {
                node: "n2".into(),
                request: request("seen", 500),
                revision: 11,
            },
        ),
    ]
    .into();
    let infos = node_infos(&nodes, &pods, &assumed, |n| n != "n2");
    let n1 = infos.iter().find(|i| i.name == "n1").unwrap();
    let n2 = infos.iter().find(|i| i.name == "n2").unwrap();
    assert_eq!(n1.allocatable_cpu_millis, 1000);
    assert_eq!(
        n1.used_cpu_millis, 600,
        "bound 200m + assumed 400m; the Succeeded pod frees its share"
    );
    assert!(n1.is_ready);
    assert_eq!(n2.used_cpu_millis, 500, "not charged twice");
    assert!(!n2.is_ready, "no live heartbeat: not ready whatever its condition says");

    let pending: Vec<&str> = pending_pods(&pods, &assumed)
        .iter()
        .map(|p| p.metadata.name())
        .collect();
    assert_eq!(pending, ["waiting"], "assumed pods are not placed twice");
}

#[test]
fn pending_pods_come_oldest_first() {
    let pods = Snapshot::from_objects(
        [
            pod("c", "", "1m", "2026-01-01T00:00:02Z"),
            pod("b", "", "1m", "2026-01-01T00:00:01Z"),
            pod("a", "", "1m", "2026-01-01T00:00:02Z"),
            pod("bound", "n1", "1m", "2026-01-01T00:00:00Z"),
        ],
        1,
    );
    let order: Vec<&str> = pending_pods(&pods, &BTreeMap::new())
        .iter()
        .map(|p| p.metadata.name())
        .collect();
    // Same second: the create revision decides (c was created before a).
    assert_eq!(order, ["b", "c", "a"]);
}

#[test]
fn pending_pods_of_higher_priority_come_first() {
    let with_priority = |mut pod: Pod, priority: i32| {
        pod.spec.priority = Some(priority);
        pod
    };
    let pods = Snapshot::from_objects(
        [
            pod("old", "", "1m", "2026-01-01T00:00:00Z"),
            with_priority(pod("urgent", "", "1m", "2026-01-01T00:00:03Z"), 1000),
            with_priority(pod("lowly", "", "1m", "2026-01-01T00:00:01Z"), -5),
            with_priority(pod("mid", "", "1m", "2026-01-01T00:00:02Z"), 10),
        ],
        1,
    );
    let order: Vec<&str> = pending_pods(&pods, &BTreeMap::new())
        .iter()
        .map(|p| p.metadata.name())
        .collect();
    assert_eq!(order, ["urgent", "mid", "old", "lowly"]);
}

#[test]
fn a_node_with_a_ready_condition_but_no_heartbeat_or_unready_is_not_ready() {
    assert!(NodeInfo::from_node(&node("n", "1", true), true).is_ready);
    assert!(!NodeInfo::from_node(&node("n", "1", true), false).is_ready);
    assert!(!NodeInfo::from_node(&node("n", "1", false), true).is_ready);
    let mut no_allocatable = node("n", "1", true);
    no_allocatable.status.allocatable.get_or_insert_default().clear();
    no_allocatable
        .status
        .capacity
        .get_or_insert_default()
        .insert("cpu".into(), Quantity("500m".into()));
    assert_eq!(NodeInfo::from_node(&no_allocatable, true).allocatable_cpu_millis, 500);
}

#[test]
fn the_explanation_is_rewritten_only_when_it_changes() {
    let p = pod("p", "", "1", "");
    let marked = marked_unschedulable(&p, "0/1 nodes are available: 1 Insufficient cpu.").unwrap();
    let c = condition(conditions(&marked), "PodScheduled").unwrap();
    assert_eq!((c.status(), c.reason()), ("False", "Unschedulable"));
    assert_eq!(marked.status.phase.as_deref(), Some("Pending"));
    assert_eq!(
        marked_unschedulable(&marked, "0/1 nodes are available: 1 Insufficient cpu."),
        None
    );
    assert!(marked_unschedulable(&marked, "0/2 nodes are available: 2 node(s) were not ready.").is_some());

    let b = bound(&marked, "n1");
    assert_eq!(b.spec.node_name.as_deref(), Some("n1"));
    assert_eq!(condition(conditions(&b), "PodScheduled").unwrap().status, "True");
}

fn conditions(pod: &Pod) -> &[PodCondition] {
    pod.status.conditions.as_deref().unwrap_or_default()
}

fn labelled(mut pod: Pod, labels: &[(&str, &str)]) -> Pod {
    pod.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    pod
}

fn service(namespace: &str, name: &str, selector: Option<&[(&str, &str)]>) -> Service {
    Resource::new(
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        ServiceSpec {
            selector: selector.map(|s| s.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        },
    )
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn the_default_spread_selector_merges_the_selecting_services_and_the_controlling_replica_set() {
    use berth_api::meta::{LabelSelector, LabelSelectorRequirement, OwnerReference};
    let term = LabelSelectorRequirement {
        key: "track".into(),
        operator: "In".into(),
        values: Some(vec!["stable".into()]),
    };
    let rs = Resource::new(
        ObjectMeta {
            name: Some("web-abc".into()),
            namespace: Some("default".into()),
            uid: Some("rs-uid".into()),
            ..Default::default()
        },
        ReplicaSetSpec {
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "web"), ("pod-template-hash", "abc")])),
                match_expressions: Some(vec![term.clone()]),
            },
            ..Default::default()
        },
    );
    let replica_sets = Snapshot::from_objects([rs], 1);
    let mut replica = labelled(
        pod("web-abc-1", "", "1m", ""),
        &[
            ("app", "web"),
            ("pod-template-hash", "abc"),
            ("tier", "front"),
            ("track", "stable"),
        ],
    );
    replica.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: "web-abc".into(),
        uid: "rs-uid".into(),
        controller: Some(true),
        ..Default::default()
    }]);
    let services = Snapshot::from_objects(
        [
            service("default", "front", Some(&[("tier", "front")])),
            service("default", "web", Some(&[("app", "web")])),
            // Not the pod's: another namespace, another app, no selector.
            service("other", "tiers", Some(&[("track", "stable")])),
            service("default", "db", Some(&[("app", "db")])),
            service("default", "manual", None),
        ],
        1,
    );
    let selector = spread_selector(&replica, &replica_sets, &services).expect("spread");
    assert_eq!(
        selector.match_labels,
        Some(labels(&[
            ("app", "web"),
            ("pod-template-hash", "abc"),
            ("tier", "front")
        ])),
        "the Services' labels and the ReplicaSet's"
    );
    assert_eq!(selector.match_expressions, Some(vec![term]), "the ReplicaSet's terms");

    // A pod of no ReplicaSet is spread by its Services alone, and one that nothing
    // selects is not spread.
    let bare = labelled(pod("bare", "", "1m", ""), &[("tier", "front")]);
    let selector = spread_selector(&bare, &replica_sets, &services).expect("spread");
    assert_eq!(selector.match_labels, Some(labels(&[("tier", "front")])));
    assert_eq!(selector.match_expressions, None);
    let alone = labelled(pod("alone", "", "1m", ""), &[("app", "batch")]);
    assert_eq!(spread_selector(&alone, &replica_sets, &services), None);
    let empty = Snapshot::from_objects([service("default", "everything", Some(&[]))], 1);
    assert_eq!(
        spread_selector(&alone, &replica_sets, &empty),
        None,
        "an empty selector selects nothing to spread by"
    );
}

/// Pods of no ReplicaSet behind one Service: Kubernetes' default spread counts them
/// as siblings, so the next one goes to the node without any, though it is busier.
#[test]
fn bare_pods_of_a_service_spread_over_nodes() {
    let nodes = Snapshot::from_objects([node("n1", "4", true), node("n2", "4", true)], 1);
    let pods = Snapshot::from_objects(
        [
            labelled(pod("web-1", "n1", "10m", ""), &[("app", "web")]),
            labelled(pod("web-2", "n1", "10m", ""), &[("app", "web")]),
            labelled(pod("db-1", "n2", "1", ""), &[("app", "db")]),
            labelled(pod("db-2", "n2", "1", ""), &[("app", "db")]),
        ],
        1,
    );
    let infos = node_infos(&nodes, &pods, &BTreeMap::new(), |_| true);
    let next = labelled(pod("web-3", "", "10m", ""), &[("app", "web")]);
    let place = |services: &Snapshot<ServiceSpec>| {
        let mut request = PodRequest::from_pod(&next).unwrap();
        request.spread_selector = spread_selector(&next, &Snapshot::from_objects([], 1), services);
        crate::schedule(&request, &infos, crate::Strategy::Spread)
    };
    let selected = Snapshot::from_objects([service("default", "web", Some(&[("app", "web")]))], 1);
    assert_eq!(place(&selected), Ok("n2".into()), "away from its Service's pods");
    assert_eq!(
        place(&Snapshot::from_objects([], 1)),
        Ok("n1".into()),
        "without the Service only resources count: the less loaded node"
    );
}

#[test]
fn gated_pods_wait_and_say_so_once() {
    let mut gated = pod("gated", "", "1m", "2026-01-01T00:00:00Z");
    gated.spec.scheduling_gates = Some(vec![berth_api::objects::PodSchedulingGate {
        name: "example.com/wait".into(),
    }]);
    let pods = Snapshot::from_objects([gated.clone(), pod("free", "", "1m", "2026-01-01T00:00:01Z")], 1);
    let pending: Vec<&str> = pending_pods(&pods, &BTreeMap::new())
        .iter()
        .map(|p| p.metadata.name())
        .collect();
    assert_eq!(pending, ["free"]);
    let to_mark: Vec<&str> = gated_pods(&pods).iter().map(|p| p.metadata.name()).collect();
    assert_eq!(to_mark, ["gated"]);

    let marked = marked_pending(&gated, GATED_REASON, GATED_MESSAGE).unwrap();
    let c = condition(conditions(&marked), "PodScheduled").unwrap();
    assert_eq!((c.status(), c.reason()), ("False", "SchedulingGated"));
    let pods = Snapshot::from_objects([marked], 2);
    assert!(gated_pods(&pods).is_empty(), "a pod that says so is not written again");
}

#[test]
fn namespace_selectors_read_the_namespaces_labels_and_bound_pods_keep_their_terms() {
    let hostname = |mut n: Node| {
        let name = n.metadata.name().to_string();
        n.metadata.labels = Some([("kubernetes.io/hostname".to_string(), name)].into());
        n
    };
    let nodes = Snapshot::from_objects([hostname(node("n1", "4", true)), hostname(node("n2", "4", true))], 1);
    // n2 is the busier: resources alone choose n1.
    let mut db = labelled(pod("db-1", "n1", "10m", ""), &[("app", "db")]);
    db.spec.affinity = Some(
        serde_json::from_value(
            serde_json::json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "batch"}}, "topologyKey": "kubernetes.io/hostname",
             "namespaceSelector": {}}]}}),
        )
        .unwrap(),
    );
    let pods = Snapshot::from_objects([db, labelled(pod("big", "n2", "2", ""), &[("app", "x")])], 1);
    let mut infos = node_infos(&nodes, &pods, &BTreeMap::new(), |_| true);
    let namespaces: BTreeMap<String, BTreeMap<String, String>> =
        [("default".to_string(), labels(&[("team", "blue")]))].into();
    with_namespace_labels(&mut infos, &namespaces);
    assert_eq!(infos[0].pods[0].namespace_labels, labels(&[("team", "blue")]).into());

    let away_from_blue_db = |team: &str| {
        let mut web = labelled(pod("web", "", "10m", ""), &[("app", "web")]);
        web.metadata.namespace = Some("other".into());
        web.spec.affinity = Some(
            serde_json::from_value(
                serde_json::json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname",
                 "namespaceSelector": {"matchLabels": {"team": team}}}]}}),
            )
            .unwrap(),
        );
        PodRequest::from_pod(&web).unwrap()
    };
    assert_eq!(
        crate::schedule(&away_from_blue_db("blue"), &infos, Strategy::Spread),
        Ok("n2".into())
    );
    assert_eq!(
        crate::schedule(&away_from_blue_db("red"), &infos, Strategy::Spread),
        Ok("n1".into())
    );
    // The bound db pod's own term, read from its spec, keeps batch pods off n1.
    let mut batch = labelled(pod("batch", "", "10m", ""), &[("app", "batch")]);
    batch.metadata.namespace = Some("other".into());
    let batch = PodRequest::from_pod(&batch).unwrap();
    assert_eq!(crate::schedule(&batch, &infos, Strategy::Spread), Ok("n2".into()));
}

#[test]
fn bound_pods_requests_are_made_again_only_for_pods_that_changed() {
    let nodes = Snapshot::from_objects([node("n1", "4", true)], 10);
    let before = Snapshot::from_objects([pod("a", "n1", "200m", ""), pod("b", "n1", "300m", "")], 10);
    let mut requests = Requests::default();
    let infos = node_infos_with(&nodes, &before, &BTreeMap::new(), |_| true, &mut requests);
    assert_eq!(infos[0].used_cpu_millis, 500);
    assert_eq!(requests.kept(), 2);
    let a = before.entries().next().unwrap().object.clone();
    let made = requests.of(&a).unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&made, &requests.of(&a).unwrap()),
        "the same object: kept"
    );

    // "a" asks for more now; "b" is gone.
    let after = Snapshot::from_objects([pod("a", "n1", "1", "")], 11);
    let infos = node_infos_with(&nodes, &after, &BTreeMap::new(), |_| true, &mut requests);
    assert_eq!(
        infos[0].used_cpu_millis, 1000,
        "the changed pod's requests were made again"
    );
    assert_eq!(requests.kept(), 1, "the gone pod's are forgotten");
    assert_eq!(infos, node_infos(&nodes, &after, &BTreeMap::new(), |_| true));
}

#[test]
fn pods_with_equal_labels_share_one_label_set() {
    let nodes = Snapshot::from_objects([node("n1", "4", true)], 10);
    let web = |name: &str| labelled(pod(name, "n1", "100m", ""), &[("app", "web")]);
    let db = labelled(pod("c", "n1", "100m", ""), &[("app", "db")]);
    let pods = Snapshot::from_objects([web("a"), web("b"), db], 10);
    let mut requests = Requests::default();
    let infos = node_infos_with(&nodes, &pods, &BTreeMap::new(), |_| true, &mut requests);
    let labels: Vec<&Labels> = infos[0].pods.iter().map(|p| &p.labels).collect();
    assert!(Arc::ptr_eq(labels[0], labels[1]), "a and b: one set");
    assert!(!Arc::ptr_eq(labels[0], labels[2]), "c's differs");
    assert_eq!(**labels[0], BTreeMap::from([("app".to_string(), "web".to_string())]));
    assert_eq!(
        labels
            .iter()
            .filter(|l| l.get("app").map(String::as_str) == Some("db"))
            .count(),
        1
    );
}
