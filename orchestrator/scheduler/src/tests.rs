use super::*;
use berth_api::objects::{Taint, Toleration};

const GI: u64 = 1 << 30;

fn node(name: &str, cpu_millis: u64, memory: u64) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        is_ready: true,
        allocatable_cpu_millis: cpu_millis,
        allocatable_memory_bytes: memory,
        ..Default::default()
    }
}

fn pod(cpu_millis: u64, memory: u64) -> PodRequest {
    PodRequest {
        name: "p".into(),
        cpu_millis,
        memory_bytes: memory,
        nonzero_cpu_millis: cpu_millis,
        nonzero_memory_bytes: memory,
        ..Default::default()
    }
}

#[test]
fn a_pod_goes_where_it_fits() {
    let nodes = [node("small", 500, GI), node("big", 4000, 8 * GI)];
    assert_eq!(schedule(&pod(1000, GI), &nodes, Strategy::Spread), Ok("big".into()));
}

#[test]
fn spread_and_bin_pack_choose_differently() {
    let mut busy = node("busy", 4000, 8 * GI);
    busy.used_cpu_millis = 3000;
    busy.used_memory_bytes = 6 * GI;
    busy.nonzero_used_cpu_millis = 3000;
    busy.nonzero_used_memory_bytes = 6 * GI;
    let nodes = [busy, node("idle", 4000, 8 * GI)];
    assert_eq!(schedule(&pod(500, GI), &nodes, Strategy::Spread), Ok("idle".into()));
    assert_eq!(schedule(&pod(500, GI), &nodes, Strategy::BinPack), Ok("busy".into()));
}

#[test]
fn no_fit_is_explained_by_reason() {
    let mut not_ready = node("a", 4000, 8 * GI);
    not_ready.is_ready = false;
    let nodes = [not_ready, node("b", 4000, GI)];
    let err = schedule(&pod(100, 2 * GI), &nodes, Strategy::Spread).unwrap_err();
    assert_eq!(
        err.message,
        "0/2 nodes are available: 1 Insufficient memory, 1 node(s) were not ready."
    );
}

/// What the scheduling loop does with one snapshot: place each pod in turn and
/// charge the placement to its node before placing the next.
fn plan(pods: &[PodRequest], nodes: &mut [NodeInfo], strategy: Strategy) -> Vec<Result<String, Unschedulable>> {
    pods.iter()
        .map(|pod| {
            let placed = schedule(pod, nodes, strategy);
            if let Ok(name) = &placed
                && let Some(node) = nodes.iter_mut().find(|n| &n.name == name)
            {
                node.charge(pod);
            }
            placed
        })
        .collect()
}

#[test]
fn a_plan_never_over_commits_a_node() {
    let mut nodes = vec![node("a", 2000, 4 * GI), node("b", 1000, 2 * GI)];
    let pods: Vec<PodRequest> = (0..10).map(|_| pod(500, GI / 2)).collect();
    for strategy in [Strategy::Spread, Strategy::BinPack] {
        let mut nodes = nodes.clone();
        let placed = plan(&pods, &mut nodes, strategy);
        assert_eq!(
            placed.iter().filter(|p| p.is_ok()).count(),
            6,
            "3000 millicores hold six 500m pods"
        );
        for n in &nodes {
            assert!(
                n.used_cpu_millis <= n.allocatable_cpu_millis,
                "{} over-committed: {n:?}",
                n.name
            );
            assert!(
                n.used_memory_bytes <= n.allocatable_memory_bytes,
                "{} over-committed: {n:?}",
                n.name
            );
        }
        assert!(
            placed[6..]
                .iter()
                .all(|p| p.as_ref().is_err_and(|e| e.message.contains("Insufficient cpu")))
        );
    }
    nodes[0].is_unschedulable = true;
    let err = schedule(&pod(100, 1), &nodes[..1], Strategy::Spread).unwrap_err();
    assert_eq!(err.message, "0/1 nodes are available: 1 node(s) were unschedulable.");
}

#[test]
fn selectors_taints_and_host_ports_filter_nodes() {
    let mut gpu = node("gpu", 4000, 8 * GI);
    gpu.labels.insert("accel".into(), "gpu".into());
    gpu.taints.push(Taint {
        key: "dedicated".into(),
        value: Some("ml".into()),
        effect: "NoSchedule".into(),
        time_added: None,
    });
    let plain = node("plain", 4000, 8 * GI);
    let nodes = [gpu, plain];

    let mut wants_gpu = pod(100, 1);
    wants_gpu.node_selector.insert("accel".into(), "gpu".into());
    let err = schedule(&wants_gpu, &nodes, Strategy::Spread).unwrap_err();
    assert_eq!(
        err.message,
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: ml}."
    );
    wants_gpu.tolerations.push(Toleration {
        key: Some("dedicated".into()),
        operator: Some("Equal".into()),
        value: Some("ml".into()),
        effect: Some("NoSchedule".into()),
        toleration_seconds: None,
    });
    assert_eq!(schedule(&wants_gpu, &nodes, Strategy::Spread), Ok("gpu".into()));

    let mut web = pod(100, 1);
    web.host_ports.insert(8080);
    let mut nodes = vec![node("only", 4000, 8 * GI)];
    let placed = plan(&[web.clone(), web], &mut nodes, Strategy::Spread);
    assert_eq!(placed[0], Ok("only".into()));
    assert_eq!(
        placed[1].as_ref().unwrap_err().message,
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."
    );
}

#[test]
fn the_untolerated_taint_is_named_and_nodes_are_counted_by_taint() {
    let taint = |key: &str, value: Option<&str>, effect: &str| Taint {
        key: key.into(),
        value: value.map(Into::into),
        effect: effect.into(),
        time_added: None,
    };
    let mut nodes: Vec<NodeInfo> = ["a", "b", "c"].iter().map(|n| node(n, 4000, 8 * GI)).collect();
    nodes[0]
        .taints
        .push(taint("node-role.kubernetes.io/control-plane", None, "NoSchedule"));
    // PreferNoSchedule never filters; the first blocking taint not tolerated is named.
    nodes[1].taints.push(taint("soft", Some("x"), "PreferNoSchedule"));
    nodes[1].taints.push(taint("dedicated", Some("ml"), "NoExecute"));
    nodes[2].taints.push(taint("dedicated", Some("ml"), "NoSchedule"));
    let err = schedule(&pod(100, 1), &nodes, Strategy::Spread).unwrap_err();
    assert_eq!(
        err.message,
        "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, \
         2 node(s) had untolerated taint {dedicated: ml}."
    );
    let mut tolerant = pod(100, 1);
    tolerant.tolerations.push(Toleration {
        key: Some("dedicated".into()),
        operator: Some("Exists".into()),
        ..Default::default()
    });
    let err = schedule(&tolerant, &nodes[..1], Strategy::Spread).unwrap_err();
    assert!(
        err.message.ends_with("{node-role.kubernetes.io/control-plane: }."),
        "{}",
        err.message
    );
    // Both fit; the PreferNoSchedule taint it does not tolerate ranks b lower.
    assert_eq!(schedule(&tolerant, &nodes[1..], Strategy::Spread), Ok("c".into()));
}

#[test]
fn a_pod_of_a_runtime_class_goes_where_its_handler_is() {
    let mut runc = node("runc", 4000, 8 * GI);
    runc.runtime_handlers = ["process", "runc"].map(String::from).into();
    let mut process_only = node("process-only", 4000, 8 * GI);
    process_only.runtime_handlers = ["process".to_string()].into();
    let nodes = [runc, process_only];
    let mut contained = pod(100, 1);
    contained.runtime_handler = Some("runc".into());
    let mut nodes_without = nodes.to_vec();
    nodes_without.remove(0);
    assert_eq!(
        schedule(&contained, &nodes_without, Strategy::Spread)
            .unwrap_err()
            .message,
        "0/1 nodes are available: 1 node(s) didn't have the pod's runtime handler."
    );
    assert_eq!(schedule(&contained, &nodes, Strategy::Spread), Ok("runc".into()));
    let any = pod(100, 1);
    assert!(
        schedule(&any, &nodes_without, Strategy::Spread).is_ok(),
        "no class: any node"
    );
    let spec: berth_api::objects::PodSpec =
        serde_json::from_str(r#"{"runtimeClassName": "process", "containers": [{"name": "a", "command": ["x"]}]}"#)
            .unwrap();
    assert_eq!(
        PodRequest::from_spec("p", &spec).unwrap().runtime_handler.as_deref(),
        Some("process")
    );
}

#[test]
fn a_pods_request_sums_its_containers() {
    let manifest = r#"{"containers": [
        {"name": "a", "command": ["x"], "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}},
         "ports": [{"containerPort": 80, "hostPort": 8080}]},
        {"name": "b", "command": ["y"], "resources": {"requests": {"cpu": "0.5"}}}
    ]}"#;
    let spec: berth_api::objects::PodSpec = serde_json::from_str(manifest).unwrap();
    let request = PodRequest::from_spec("web", &spec).unwrap();
    assert_eq!((request.cpu_millis, request.memory_bytes), (750, 64 << 20));
    assert!(request.host_ports.contains(&8080));
}

/// A replica of app=web, without requests (`from_spec` gives it the non-zero
/// defaults), spread among its ReplicaSet's pods.
fn replica(app: &str) -> PodRequest {
    let labels: std::collections::BTreeMap<String, String> = [("app".to_string(), app.to_string())].into();
    PodRequest {
        name: format!("{app}-x"),
        namespace: "default".into(),
        spread_selector: Some(berth_api::meta::match_labels(labels.clone())),
        labels: labels.into(),
        ..PodRequest::from_spec("p", &one_container()).unwrap()
    }
}

/// A pod spec of one container without requests.
fn one_container() -> berth_api::objects::PodSpec {
    berth_api::objects::PodSpec {
        containers: vec![Default::default()],
        ..Default::default()
    }
}

fn placements(placed: &[Result<String, Unschedulable>]) -> std::collections::BTreeMap<String, usize> {
    let mut count = std::collections::BTreeMap::new();
    for node in placed {
        *count.entry(node.clone().unwrap()).or_default() += 1;
    }
    count
}

#[test]
fn pods_without_requests_weigh_as_kubernetes_defaults() {
    let plain = PodRequest::from_spec("p", &one_container()).unwrap();
    assert_eq!((plain.cpu_millis, plain.memory_bytes), (0, 0), "nothing is reserved");
    let spec = berth_api::objects::PodSpec {
        containers: vec![Default::default(), Default::default()],
        ..Default::default()
    };
    let two = PodRequest::from_spec("p", &spec).unwrap();
    assert_eq!(
        (two.nonzero_cpu_millis, two.nonzero_memory_bytes),
        (2 * DEFAULT_CPU_MILLIS, 2 * DEFAULT_MEMORY_BYTES),
        "each container counts as 100m and 200Mi for scoring"
    );
    // Even pods of no ReplicaSet spread by those defaults alone.
    let mut nodes = vec![
        node("a", 4000, 8 * GI),
        node("b", 4000, 8 * GI),
        node("c", 4000, 8 * GI),
    ];
    let pods: Vec<PodRequest> = (0..3).map(|_| plain.clone()).collect();
    let placed = plan(&pods, &mut nodes, Strategy::Spread);
    assert_eq!(placements(&placed).len(), 3, "{placed:?}");
}

#[test]
fn replicas_spread_over_nodes_by_default() {
    let mut nodes = vec![
        node("a", 4000, 8 * GI),
        node("b", 4000, 8 * GI),
        node("c", 4000, 8 * GI),
    ];
    let pods: Vec<PodRequest> = (0..4).map(|_| replica("web")).collect();
    let placed = plan(&pods, &mut nodes, Strategy::Spread);
    let count = placements(&placed);
    assert_eq!(count.len(), 3, "four replicas on three nodes: {count:?}");
    assert!(count.values().all(|n| *n <= 2), "{count:?}");

    // Siblings elsewhere outweigh a less loaded node: a busier node without any
    // web pod gets the next one.
    let mut nodes = vec![node("a", 4000, 8 * GI), node("b", 4000, 8 * GI)];
    for _ in 0..2 {
        nodes[0].charge(&replica("web"));
    }
    let mut other = replica("db");
    other.nonzero_cpu_millis = 1000;
    nodes[1].charge(&other);
    assert_eq!(schedule(&replica("web"), &nodes, Strategy::Spread), Ok("b".into()));
    // Pods being deleted are not siblings.
    let mut going = vec![node("a", 4000, 8 * GI), node("b", 4000, 8 * GI)];
    let mut deleting = replica("web");
    deleting.is_deleting = true;
    going[1].charge(&deleting);
    going[0].charge(&replica("web"));
    assert_eq!(schedule(&replica("web"), &going, Strategy::Spread), Ok("b".into()));
}

#[test]
fn replicas_spread_over_zones() {
    let zoned = |name: &str, zone: &str| {
        let mut n = node(name, 4000, 8 * GI);
        n.labels.insert(ZONE_LABEL.into(), zone.into());
        n
    };
    let mut nodes = vec![zoned("a1", "a"), zoned("a2", "a"), zoned("b1", "b")];
    let placed = plan(&[replica("web"), replica("web")], &mut nodes, Strategy::Spread);
    let zones: std::collections::BTreeSet<&str> = placed
        .iter()
        .map(|p| if p.as_ref().unwrap().starts_with('a') { "a" } else { "b" })
        .collect();
    assert_eq!(zones.len(), 2, "{placed:?}");
}

#[test]
fn sibling_counts_and_zones_read_by_position_score_as_a_recount_does() {
    let mut nodes: Vec<NodeInfo> = (0..6)
        .map(|i| {
            let mut n = node(&format!("n{i}"), 4000, 8 * GI);
            n.labels.insert(ZONE_LABEL.into(), ["a", "b", "c"][i % 3].into());
            n
        })
        .collect();
    let web = replica("web");
    for (i, count) in [(0, 3), (1, 1), (3, 2), (4, 5)] {
        for _ in 0..count {
            nodes[i].charge(&web);
        }
    }
    nodes[5].charge(&replica("db"));
    let selector = web.spread_selector.clone().unwrap();
    let counted: Vec<u32> = (nodes.iter())
        .map(|n| score::siblings_on(n, "default", &selector) as u32)
        .collect();
    assert_eq!(counted, [3, 1, 0, 2, 5, 0]);
    let mut with_counts = web.clone();
    with_counts.siblings = Some(std::sync::Arc::new(counted));
    // Zones numbered once, as a pass does: a, b, c in the order met.
    let zones = score::number_zones(&nodes);
    assert_eq!(zones, [Some(0), Some(1), Some(2), Some(0), Some(1), Some(2)]);
    with_counts.zones = Some(std::sync::Arc::new(zones));
    // The fitting nodes in the order a search from n4 meets them, some left out.
    let positions = [4, 5, 0, 1, 3];
    let fits: Vec<&NodeInfo> = positions.iter().map(|&p| &nodes[p]).collect();
    let recounted = score::scores(&web, &fits, &positions, &nodes, Strategy::Spread);
    assert_eq!(
        score::scores(&with_counts, &fits, &positions, &nodes, Strategy::Spread),
        recounted
    );
    // The emptiest node of the emptiest zone scores highest: n5 (zone c, 0 of web).
    let best = (positions.iter().zip(&recounted)).max_by_key(|(_, s)| **s).unwrap();
    assert_eq!(*best.0, 5, "{recounted:?}");
}

#[test]
fn spreading_never_overrides_a_filter_and_bin_pack_still_packs() {
    let mut nodes = vec![node("a", 4000, 8 * GI), node("b", 4000, 8 * GI)];
    nodes[1].is_unschedulable = true;
    let placed = plan(
        &[replica("web"), replica("web"), replica("web")],
        &mut nodes,
        Strategy::Spread,
    );
    assert_eq!(placements(&placed).keys().collect::<Vec<_>>(), ["a"]);

    let mut nodes = vec![node("a", 4000, 8 * GI), node("b", 4000, 8 * GI)];
    let placed = plan(
        &[replica("web"), replica("web"), replica("web")],
        &mut nodes,
        Strategy::BinPack,
    );
    assert_eq!(placements(&placed).len(), 1, "bin-pack fills one node: {placed:?}");
}

#[test]
fn init_containers_count_as_kubernetes_counts_them() {
    use berth_api::objects::{Container, PodSpec, ResourceRequirements};
    let asking = |name: &str, cpu: &str, sidecar: bool| Container {
        name: name.into(),
        restart_policy: sidecar.then(|| "Always".to_string()),
        resources: Some(ResourceRequirements {
            requests: Some([("cpu".to_string(), berth_api::objects::Quantity(cpu.into()))].into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    // The app (300m) and the sidecar (100m) run together: 400m, more than the
    // sidecar beside the first init container (100m + 200m).
    let mut spec = PodSpec {
        init_containers: Some(vec![asking("proxy", "100m", true), asking("setup", "200m", false)]),
        containers: vec![asking("app", "300m", false)],
        ..Default::default()
    };
    assert_eq!(PodRequest::from_spec("p", &spec).unwrap().cpu_millis, 400);
    // An init container that asks more than all of them together sets the pod's need.
    spec.init_containers.as_mut().unwrap()[1] = asking("setup", "2", false);
    let request = PodRequest::from_spec("p", &spec).unwrap();
    assert_eq!(request.cpu_millis, 2100);
    assert_eq!(
        request.nonzero_memory_bytes,
        2 * DEFAULT_MEMORY_BYTES,
        "the defaults count the same way"
    );
}

fn local_volume(name: &str, host: &str) -> berth_api::objects::PersistentVolume {
    let mut volume = berth_api::objects::PersistentVolume::new(
        berth_api::meta::named("", name),
        berth_api::objects::PersistentVolumeSpec {
            capacity: Some([("storage".to_string(), berth_api::objects::Quantity("1Gi".into()))].into()),
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: Some("manual".into()),
            node_affinity: Some(berth_api::persistent_volumes::affinity_to_hostname(host)),
            ..Default::default()
        },
    );
    volume.status.phase = Some("Available".into());
    volume
}

fn host(name: &str) -> NodeInfo {
    let mut info = node(name, 4000, 8 * GI);
    info.labels.insert("kubernetes.io/hostname".into(), name.into());
    info
}

#[test]
fn a_pod_goes_where_its_bound_volumes_are() {
    let nodes = [host("a"), host("b"), host("c")];
    let mut request = pod(100, GI);
    request.bound_volumes = vec![local_volume("pv-b", "b")];
    assert_eq!(schedule(&request, &nodes, Strategy::Spread), Ok("b".into()));
    request.bound_volumes.push(local_volume("pv-c", "c"));
    let err = schedule(&request, &nodes, Strategy::Spread).unwrap_err();
    assert_eq!(
        err.message,
        "0/3 nodes are available: 3 node(s) had volume node affinity conflict."
    );
}

#[test]
fn a_waiting_claim_goes_where_a_volume_can_be_had() {
    let nodes = [host("a"), host("b")];
    let mut request = pod(100, GI);
    request.waiting_claims = vec![WaitingClaim {
        candidates: vec![local_volume("pv-a", "a")],
        ..Default::default()
    }];
    assert_eq!(schedule(&request, &nodes, Strategy::Spread), Ok("a".into()));
    request.waiting_claims[0].candidates.clear();
    assert_eq!(
        schedule(&request, &nodes, Strategy::Spread).unwrap_err().message,
        "0/2 nodes are available: 2 node(s) didn't find available persistent volumes to bind."
    );
    // A class that provisions can have one anywhere, unless the claim already
    // names its node.
    request.waiting_claims[0].is_provisioned = true;
    assert!(schedule(&request, &nodes, Strategy::Spread).is_ok());
    request.waiting_claims[0]
        .claim
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(berth_api::persistent_volumes::SELECTED_NODE.into(), "b".into());
    assert_eq!(schedule(&request, &nodes, Strategy::Spread), Ok("b".into()));
}

#[test]
fn prefer_no_schedule_taints_rank_nodes_and_tolerations_lift_them() {
    let mut tainted = node("a", 4000, 8 * GI);
    tainted.taints.push(Taint {
        key: "spot".into(),
        value: None,
        effect: "PreferNoSchedule".into(),
        time_added: None,
    });
    let nodes = [tainted, node("b", 4000, 8 * GI)];
    let mut p = pod(100, GI);
    assert_eq!(schedule(&p, &nodes, Strategy::Spread), Ok("b".into()));
    assert_eq!(
        schedule(&p, &nodes[..1], Strategy::Spread),
        Ok("a".into()),
        "a score, never a filter"
    );
    p.tolerations.push(Toleration {
        key: Some("spot".into()),
        operator: Some("Exists".into()),
        ..Default::default()
    });
    assert_eq!(
        schedule(&p, &nodes, Strategy::Spread),
        Ok("a".into()),
        "tolerated: the name decides"
    );
    p.tolerations[0].effect = Some("NoSchedule".into());
    assert_eq!(
        schedule(&p, &nodes, Strategy::Spread),
        Ok("b".into()),
        "a NoSchedule toleration does not tolerate PreferNoSchedule"
    );
}

#[test]
fn large_clusters_are_searched_in_part_as_kube_scheduler_does() {
    assert_eq!(feasible_nodes_to_find(50), 50);
    assert_eq!(feasible_nodes_to_find(100), 100);
    assert_eq!(feasible_nodes_to_find(1000), 420);
    assert_eq!(feasible_nodes_to_find(5000), 500);
    assert_eq!(feasible_nodes_to_find(20000), 1000);
}

#[test]
fn a_search_stops_at_enough_fitting_nodes_and_the_next_goes_on_from_there() {
    let nodes: Vec<NodeInfo> = (0..1000).map(|i| node(&format!("n{i:04}"), 4000, 8 * GI)).collect();
    let first = schedule_from(&pod(100, GI), &nodes, Strategy::Spread, 0).unwrap();
    assert_eq!(first.examined, 420, "every node fits: the search stops at 420");
    // Equal scores: the first name among the nodes looked at.
    assert_eq!(first.node, "n0000");
    let second = schedule_from(&pod(100, GI), &nodes, Strategy::Spread, 900).unwrap();
    assert_eq!(second.examined, 420);
    assert_eq!(second.node, "n0000", "the search went round the end of the list");
    let third = schedule_from(&pod(100, GI), &nodes, Strategy::Spread, 420).unwrap();
    assert_eq!(third.node, "n0420");
}

#[test]
fn a_pod_that_fits_nowhere_is_explained_over_every_node_of_a_large_cluster() {
    let nodes: Vec<NodeInfo> = (0..1000).map(|i| node(&format!("n{i:04}"), 1000, GI)).collect();
    let err = schedule_from(&pod(2000, GI), &nodes, Strategy::Spread, 300).unwrap_err();
    assert_eq!(err.message, "0/1000 nodes are available: 1000 Insufficient cpu.");
}

#[test]
fn the_few_fitting_nodes_of_a_large_cluster_are_all_found() {
    let mut nodes: Vec<NodeInfo> = (0..1000).map(|i| node(&format!("n{i:04}"), 1000, GI)).collect();
    nodes[10] = node("n0010", 8000, 8 * GI);
    nodes[990] = node("n0990", 8000, 16 * GI);
    let placed = schedule_from(&pod(2000, GI), &nodes, Strategy::Spread, 500).unwrap();
    assert_eq!(
        placed.examined, 1000,
        "fewer fit than the search wants: it looks at every node"
    );
    assert_eq!(placed.node, "n0990", "the least allocated of the two");
}
