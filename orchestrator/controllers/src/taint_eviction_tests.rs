use super::*;
use berth_api::meta::ObjectMeta;
use berth_api::objects::{Resource, Taint, Toleration};

fn node(name: &str, taints: &[(&str, &str)]) -> Node {
    let mut node = Resource::new(
        ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        NodeSpec::default(),
    );
    node.spec.taints = Some(
        taints
            .iter()
            .map(|(key, effect)| Taint {
                key: key.to_string(),
                effect: effect.to_string(),
                ..Default::default()
            })
            .collect(),
    );
    node
}

use berth_api::objects::NodeSpec;

fn pod(name: &str, node: &str, tolerations: &[(&str, Option<i64>)]) -> Pod {
    let mut pod = Resource::new(
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        PodSpec::default(),
    );
    pod.spec.node_name = Some(node.into());
    pod.spec.tolerations = Some(
        tolerations
            .iter()
            .map(|(key, seconds)| Toleration {
                key: Some(key.to_string()),
                operator: Some("Exists".into()),
                toleration_seconds: *seconds,
                ..Default::default()
            })
            .collect(),
    );
    pod
}

fn id(name: &str) -> (String, String) {
    ("default".to_string(), name.to_string())
}

#[test]
fn untolerated_no_execute_taints_evict_at_once_and_timed_tolerations_later() {
    let t0 = Instant::now();
    let nodes = [
        node("tainted", &[("maintenance", "NoExecute"), ("soft", "NoSchedule")]),
        node("clean", &[]),
    ];
    let pods = [
        pod("plain", "tainted", &[]),
        pod("patient", "tainted", &[("maintenance", Some(30))]),
        pod("forever", "tainted", &[("maintenance", None)]),
        pod("elsewhere", "clean", &[]),
        pod("pending", "", &[]),
    ];
    let first = assess(&nodes, &pods, &BTreeMap::new(), t0);
    assert_eq!(first.evict, [id("plain")]);
    assert_eq!(
        first.waiting.keys().collect::<Vec<_>>(),
        ["/registry/pods/default/patient"]
    );
    assert_eq!(first.next_check, Some(Duration::from_secs(30)));
    assert!(first.cancelled.is_empty());

    // The count runs from when it was first seen, not from each pass.
    let later = assess(&nodes, &pods[1..], &first.waiting, t0 + Duration::from_secs(20));
    assert!(later.evict.is_empty());
    assert_eq!(later.next_check, Some(Duration::from_secs(10)));
    let due = assess(&nodes, &pods[1..], &later.waiting, t0 + Duration::from_secs(30));
    assert_eq!(due.evict, [id("patient")]);
    assert!(due.waiting.is_empty() && due.cancelled.is_empty(), "{due:?}");
}

#[test]
fn a_removed_taint_cancels_a_waiting_eviction() {
    let t0 = Instant::now();
    let pods = [pod("patient", "n1", &[("maintenance", Some(30))])];
    let tainted = [node("n1", &[("maintenance", "NoExecute")])];
    let first = assess(&tainted, &pods, &BTreeMap::new(), t0);
    assert_eq!(first.waiting.len(), 1);
    let untainted = [node("n1", &[])];
    let after = assess(&untainted, &pods, &first.waiting, t0 + Duration::from_secs(5));
    assert_eq!(after.cancelled, [id("patient")]);
    assert!(after.evict.is_empty() && after.waiting.is_empty());
}

#[test]
fn pods_being_deleted_or_ended_are_left_alone() {
    let nodes = [node("n1", &[("maintenance", "NoExecute")])];
    let mut going = pod("going", "n1", &[]);
    going.metadata.deletion_timestamp = Some(now());
    let mut done = pod("done", "n1", &[]);
    done.status.phase = Some("Succeeded".into());
    let a = assess(&nodes, &[going, done], &BTreeMap::new(), Instant::now());
    assert!(a.evict.is_empty(), "{a:?}");
}
