use super::*;
use berth_api::meta::ObjectMeta;
use berth_api::objects::Resource;

/// Heartbeats synced at `t0`, none live or gone yet.
fn synced_at(t0: Instant) -> HeartbeatSnapshot {
    HeartbeatSnapshot {
        synced_at: Some(t0),
        ..Default::default()
    }
}

fn node(name: &str, ready: &str, reason: &str) -> Node {
    let mut node = Resource::new(
        ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        NodeSpec::default(),
    );
    node.status
        .conditions
        .get_or_insert_default()
        .push(NodeCondition::new("Ready", ready, reason, ""));
    node
}

fn pod(name: &str, node: &str) -> Pod {
    let mut pod = Resource::new(
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        PodSpec::default(),
    );
    pod.spec.node_name = Some(node.into());
    pod
}

fn ready(mut pod: Pod) -> Pod {
    pod.status.conditions = Some(vec![PodCondition::new("Ready", "True", "", "")]);
    pod
}

#[test]
fn a_node_without_heartbeat_is_not_ready_at_once_and_lost_after_the_grace_period() {
    let t0 = Instant::now();
    let grace = Duration::from_secs(10);
    let mut heartbeats = synced_at(t0);
    heartbeats.live.insert("alive".into(), t0);
    heartbeats.gone.insert("gone".into(), t0 + Duration::from_secs(5));
    let nodes = [
        node("alive", "True", ""),
        node("gone", "True", ""),
        node("never", "True", ""),
    ];
    let pods = [
        ready(pod("a", "alive")),
        ready(pod("g", "gone")),
        pod("g-unready", "gone"),
        ready(pod("n", "never")),
        pod("u", ""),
    ];

    // Its lease expired: the node and its ready pods are marked, nothing moves yet.
    let early = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(9), grace);
    assert_eq!(early.mark, ["gone", "never"]);
    assert_eq!(
        early.unready,
        [
            ("default".to_string(), "g".to_string()),
            ("default".to_string(), "n".to_string())
        ]
    );
    assert!(early.evict.is_empty(), "{early:?}");
    assert!(early.lost.is_empty(), "{early:?}");
    assert_eq!(early.next_check, Some(Duration::from_secs(1)), "'never' is lost in 1 s");

    let later = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(11), grace);
    assert_eq!(later.evict, [("default".to_string(), "n".to_string())]);
    assert_eq!(later.lost, ["never"]);
    assert_eq!(later.unready, [("default".to_string(), "g".to_string())]);
    assert_eq!(
        later.next_check,
        Some(Duration::from_secs(4)),
        "'gone' is lost at t0 + 15 s"
    );

    let all = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(15), grace);
    assert_eq!(all.evict.len(), 3);
    assert!(all.unready.is_empty());
    assert_eq!(all.next_check, None);
}

#[test]
fn a_node_lease_not_renewed_within_the_grace_period_is_a_missed_heartbeat() {
    use berth_controller_runtime::informer::node_leases::NodeLease;
    let t0 = Instant::now();
    let grace = Duration::from_secs(10);
    let mut heartbeats = HeartbeatSnapshot {
        synced_at: Some(t0),
        leases_synced: true,
        ..Default::default()
    };
    heartbeats.leases.insert(
        "api".into(),
        NodeLease {
            renewed: t0 + Duration::from_secs(2),
            renew_time: Some("2026-01-02T03:04:05.000000Z".into()),
            duration: Duration::from_secs(10),
            mod_revision: 7,
        },
    );
    let nodes = [node("api", "True", "")];
    let pods = [ready(pod("p", "api"))];

    let fresh = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(11), grace);
    assert!(fresh.mark.is_empty() && fresh.unready.is_empty(), "{fresh:?}");
    assert_eq!(fresh.next_check, Some(Duration::from_secs(1)), "it lapses at t0 + 12 s");
    assert!(heartbeats.is_live_at("api", t0 + Duration::from_secs(11)));

    let lapsed = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(12), grace);
    assert_eq!(lapsed.mark, ["api"]);
    assert_eq!(lapsed.unready, [("default".to_string(), "p".to_string())]);
    assert!(lapsed.evict.is_empty());
    assert_eq!(lapsed.next_check, Some(grace), "lost a grace period after the lapse");
    assert!(!heartbeats.is_live_at("api", t0 + Duration::from_secs(12)));

    let lost = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(22), grace);
    assert_eq!(lost.evict, [("default".to_string(), "p".to_string())]);
    assert_eq!(
        still_absent(&heartbeats, "api").compares(),
        [
            ("/berth/heartbeats/api", 0),
            ("/registry/leases/kube-node-lease/api", 7)
        ]
    );

    // A Lease longer than the grace period lapses only after its duration (its
    // agent renews it every quarter of that, and fences itself after it).
    let mut long = heartbeats.clone();
    long.leases.get_mut("api").unwrap().duration = Duration::from_secs(30);
    let within = assess(&nodes, &pods, &long, t0 + Duration::from_secs(22), grace);
    assert!(within.mark.is_empty(), "{within:?}");
    assert_eq!(within.next_check, Some(Duration::from_secs(10)));
    let after = assess(&nodes, &pods, &long, t0 + Duration::from_secs(32), grace);
    assert_eq!(after.mark, ["api"]);

    // A live heartbeat key keeps the node whatever its Lease says.
    heartbeats.live.insert("api".into(), t0);
    let keyed = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(30), grace);
    assert!(keyed.mark.is_empty() && keyed.evict.is_empty(), "{keyed:?}");
}

#[test]
fn a_pod_that_tolerates_unreachable_stays_on_a_lost_node_its_toleration_seconds() {
    use berth_api::objects::Toleration;
    let t0 = Instant::now();
    let grace = Duration::from_secs(10);
    let mut heartbeats = synced_at(t0);
    heartbeats.gone.insert("gone".into(), t0);
    let tolerating = |name: &str, seconds: Option<i64>| {
        let mut pod = ready(pod(name, "gone"));
        pod.spec.tolerations = Some(vec![Toleration {
            key: Some(UNREACHABLE_TAINT.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: seconds,
            ..Default::default()
        }]);
        pod
    };
    let pods = [
        ready(pod("plain", "gone")),
        tolerating("patient", Some(20)),
        tolerating("loyal", None),
    ];
    let nodes = [node("gone", "True", "")];
    let lost = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(12), grace);
    assert_eq!(lost.evict, [("default".to_string(), "plain".to_string())]);
    assert_eq!(lost.unready.len(), 2, "the others stay, not ready: {lost:?}");
    assert_eq!(
        lost.next_check,
        Some(Duration::from_secs(18)),
        "patient goes 20 s after the loss"
    );
    let later = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(30), grace);
    assert_eq!(
        later.evict,
        [
            ("default".to_string(), "plain".to_string()),
            ("default".to_string(), "patient".to_string())
        ]
    );
    assert_eq!(later.next_check, None, "loyal stays for good");
}

#[test]
fn a_pod_marked_not_ready_keeps_its_other_conditions() {
    let mut pod = ready(pod("p", "n1"));
    pod.status
        .conditions
        .get_or_insert_default()
        .push(PodCondition::new("PodScheduled", "True", "", ""));
    let marked = marked_not_ready(&pod);
    let conditions = marked.status.conditions.as_deref().unwrap();
    assert_eq!(condition(conditions, "Ready").unwrap().status(), "False");
    assert!(condition(conditions, "Ready").unwrap().last_transition_time.is_some());
    assert_eq!(condition(conditions, "PodScheduled").unwrap().status(), "True");
    assert!(!is_pod_ready(&marked));
}

#[test]
fn a_marked_node_is_not_marked_again_but_its_pods_still_go() {
    let t0 = Instant::now();
    let heartbeats = synced_at(t0);
    let marked = marked_unknown(&node("n1", "True", ""), false);
    assert!(is_marked_unknown(&marked));
    let ready = condition(marked.status.conditions.as_deref().unwrap(), "Ready").unwrap();
    assert_eq!(ready.message(), MESSAGE_UNKNOWN);
    assert!(ready.last_transition_time.is_some());
    let a = assess(
        [&marked],
        [&pod("p", "n1")],
        &heartbeats,
        t0 + Duration::from_secs(1),
        Duration::ZERO,
    );
    assert!(a.mark.is_empty());
    assert_eq!(a.evict.len(), 1);

    let mut terminating = pod("t", "n1");
    terminating.metadata.deletion_timestamp = Some(time::now());
    let a = assess(
        [&marked],
        [&terminating],
        &heartbeats,
        t0 + Duration::from_secs(1),
        Duration::ZERO,
    );
    assert_eq!(
        a.evict,
        [("default".to_string(), "t".to_string())],
        "no agent will finish a terminating pod of a lost node"
    );
}

#[test]
fn a_terminating_pod_of_a_node_without_heartbeat_is_marked_not_ready_too() {
    let t0 = Instant::now();
    let mut heartbeats = synced_at(t0);
    heartbeats.gone.insert("gone".into(), t0);
    let mut terminating = ready(pod("t", "gone"));
    terminating.metadata.deletion_timestamp = Some(time::now());
    let mut marked_terminating = marked_not_ready(&terminating);
    marked_terminating.metadata.name = Some("t-marked".into());
    let a = assess(
        [&node("gone", "True", "")],
        [&terminating, &marked_terminating],
        &heartbeats,
        t0 + Duration::from_secs(1),
        Duration::from_secs(10),
    );
    assert_eq!(
        a.unready,
        [("default".to_string(), "t".to_string())],
        "before the grace: marked not ready (once), not yet evicted"
    );
    assert!(a.evict.is_empty());
}

#[test]
fn a_lost_node_carries_the_unreachable_taints_until_it_is_back() {
    let t0 = Instant::now();
    let grace = Duration::from_secs(10);
    let mut heartbeats = synced_at(t0);
    heartbeats.gone.insert("n1".into(), t0);
    let mut fresh = node("n1", "True", "");
    fresh.spec.taints = Some(vec![Taint {
        key: "dedicated".into(),
        value: Some("ml".into()),
        effect: NO_SCHEDULE.into(),
        ..Default::default()
    }]);
    let taints = |node: &Node| -> Vec<String> {
        (node.spec.taints.iter().flatten())
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect()
    };

    // Absent: NotReady and NoSchedule; no NoExecute before the grace period.
    let absent = assess([&fresh], [], &heartbeats, t0 + Duration::from_secs(1), grace);
    assert_eq!(
        (absent.mark.as_slice(), absent.lost.len()),
        (["n1".to_string()].as_slice(), 0)
    );
    let marked = marked_unknown(&fresh, false);
    assert!(is_marked_unknown(&marked));
    assert_eq!(
        taints(&marked),
        ["dedicated:NoSchedule", "node.kubernetes.io/unreachable:NoSchedule"]
    );
    assert!(marked.spec.taints.as_ref().unwrap()[1].time_added.is_some());
    let again = assess([&marked], [], &heartbeats, t0 + Duration::from_secs(2), grace);
    assert!(again.mark.is_empty() && again.lost.is_empty(), "{again:?}");

    // Lost: NoExecute added once, the NotReady mark's transition time kept.
    let lost = assess([&marked], [], &heartbeats, t0 + Duration::from_secs(10), grace);
    assert_eq!(
        (lost.mark.len(), lost.lost.as_slice()),
        (0, ["n1".to_string()].as_slice())
    );
    let tainted = marked_unknown(&marked, true);
    assert_eq!(
        taints(&tainted),
        [
            "dedicated:NoSchedule",
            "node.kubernetes.io/unreachable:NoSchedule",
            "node.kubernetes.io/unreachable:NoExecute"
        ]
    );
    let ready_of = |node: &Node| condition(node.status.conditions.as_deref().unwrap(), "Ready").cloned();
    assert_eq!(ready_of(&tainted), ready_of(&marked));
    assert_eq!(taints(&marked_unknown(&tainted, true)), taints(&tainted));
    let settled = assess([&tainted], [], &heartbeats, t0 + Duration::from_secs(20), grace);
    assert!(settled.mark.is_empty() && settled.lost.is_empty() && settled.untaint.is_empty());

    // Back: nothing until its agent says Ready, then only the unreachable taints go.
    heartbeats.gone.clear();
    heartbeats.live.insert("n1".into(), t0 + Duration::from_secs(21));
    let returning = assess([&tainted], [], &heartbeats, t0 + Duration::from_secs(22), grace);
    assert!(
        returning.untaint.is_empty() && returning.mark.is_empty(),
        "{returning:?}"
    );
    let mut ready = tainted.clone();
    ready.status.conditions = Some(vec![NodeCondition::new("Ready", "True", "", "")]);
    let back = assess([&ready], [], &heartbeats, t0 + Duration::from_secs(22), grace);
    assert_eq!(back.untaint, ["n1"]);
    assert_eq!(taints(&untainted(&ready)), ["dedicated:NoSchedule"]);
    let clean = untainted(&ready);
    assert!(
        assess([&clean], [], &heartbeats, t0 + Duration::from_secs(23), grace)
            .untaint
            .is_empty()
    );
}

#[test]
fn a_new_node_whose_heartbeat_is_not_seen_yet_has_the_grace_period_from_its_creation() {
    let t0 = Instant::now();
    let grace = Duration::from_secs(40);
    let heartbeats = synced_at(t0);
    let created = |ago: u64| {
        let mut node = node(&format!("created-{ago}s-ago"), "True", "");
        let at = std::time::SystemTime::now() - Duration::from_secs(ago);
        node.metadata.creation_timestamp = Some(berth_api::time::from_system_time(at));
        node
    };
    let nodes = [created(1), created(41)];
    let pods = [
        ready(pod("new", "created-1s-ago")),
        ready(pod("old", "created-41s-ago")),
    ];
    let a = assess(&nodes, &pods, &heartbeats, t0 + Duration::from_secs(10), grace);
    assert_eq!(a.mark, ["created-41s-ago"], "{a:?}");
    assert_eq!(a.unready, [("default".to_string(), "old".to_string())]);
    assert!(
        a.next_check.is_some_and(|next| next <= Duration::from_secs(39)),
        "the new node is checked again once its grace has passed: {a:?}"
    );
}
