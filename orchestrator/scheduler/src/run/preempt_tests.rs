use super::*;
use berth_api::meta::ObjectMeta;
use berth_api::objects::Resource;

fn pod(name: &str, priority: i32, nominated: Option<&str>) -> Pod {
    let mut pod = Resource::new(
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        PodSpec::default(),
    );
    pod.spec.priority = Some(priority);
    pod.spec.containers = vec![berth_api::objects::Container {
        name: "a".into(),
        resources: Some(berth_api::objects::ResourceRequirements {
            requests: Some([("cpu".to_string(), berth_api::objects::Quantity("500m".into()))].into()),
            ..Default::default()
        }),
        ..Default::default()
    }];
    pod.status.nominated_node_name = nominated.map(str::to_string);
    pod
}

fn node(name: &str) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        is_ready: true,
        allocatable_cpu_millis: 1000,
        allocatable_memory_bytes: 1 << 30,
        ..Default::default()
    }
}

#[test]
fn the_room_a_preemption_made_is_kept_from_pods_of_lower_priority() {
    let high = pod("high", 100, Some("n1"));
    let low = pod("low", 0, None);
    let peer = pod("peer", 100, None);
    let pending = [&high, &low, &peer];
    let nominated = nominated_pods(&pending);
    assert_eq!(nominated.len(), 1);
    let infos = [node("n1"), node("n2")];
    let seen = with_nominated(&low, &infos, &nominated).expect("low sees high's claim");
    assert_eq!((seen[0].used_cpu_millis, seen[1].used_cpu_millis), (500, 0));
    assert!(
        with_nominated(&peer, &infos, &nominated).is_some(),
        "equal priority yields too"
    );
    assert_eq!(with_nominated(&high, &infos, &nominated), None, "its own room");
    assert_eq!(priority(&pod("none", 0, None)), 0);
}
