use super::*;
use berth_api::meta::LabelSelector;
use berth_api::objects::Taint;
use std::sync::Arc;

const GI: u64 = 1 << 30;

fn node(name: &str, cpu_millis: u64) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        is_ready: true,
        allocatable_cpu_millis: cpu_millis,
        allocatable_memory_bytes: 8 * GI,
        ..Default::default()
    }
}

fn request(cpu_millis: u64) -> PodRequest {
    PodRequest {
        name: "p".into(),
        cpu_millis,
        nonzero_cpu_millis: cpu_millis,
        ..Default::default()
    }
}

/// Places a pod of `priority` asking `cpu_millis` on `node`, charged to it.
fn place(
    nodes: &mut [NodeInfo],
    placed: &mut Vec<(String, Placed)>,
    node: &str,
    key: &str,
    priority: i32,
    cpu_millis: u64,
) {
    let info = nodes.iter_mut().find(|n| n.name == node).unwrap();
    info.charge(&request(cpu_millis));
    placed.push((
        node.into(),
        Placed {
            key: key.into(),
            priority,
            started: Some(1000),
            is_deleting: false,
            request: request(cpu_millis),
        },
    ));
}

fn victims(preemption: &Option<Preemption>) -> Option<(&str, Vec<&str>)> {
    preemption
        .as_ref()
        .map(|p| (p.node.as_str(), p.victims.iter().map(|v| v.key.as_str()).collect()))
}

#[test]
fn only_pods_of_lower_priority_are_evicted_and_only_as_many_as_needed() {
    let mut nodes = [node("n1", 1000)];
    let mut placed = Vec::new();
    place(&mut nodes, &mut placed, "n1", "low-a", 0, 300);
    place(&mut nodes, &mut placed, "n1", "low-b", 10, 300);
    place(&mut nodes, &mut placed, "n1", "same", 100, 300);
    // 100 m free; 400 m asked: one 300 m pod must go, the least important.
    let chosen = select(&request(400), 100, &nodes, &placed, &[]);
    assert_eq!(victims(&chosen), Some(("n1", vec!["low-a"])));
    // 700 m needs both lower pods; the one of equal priority stays.
    let chosen = select(&request(700), 100, &nodes, &placed, &[]);
    assert_eq!(victims(&chosen), Some(("n1", vec!["low-b", "low-a"])));
    // Nothing of lower priority frees enough for 800 m.
    assert_eq!(select(&request(800), 100, &nodes, &placed, &[]), None);
    // A pod of the lowest priority preempts nobody.
    assert_eq!(select(&request(400), 0, &nodes, &placed, &[]), None);
}

#[test]
fn a_pod_that_fits_or_cannot_fit_for_other_reasons_preempts_nobody() {
    let mut nodes = [node("n1", 1000)];
    let mut placed = Vec::new();
    place(&mut nodes, &mut placed, "n1", "low", 0, 900);
    assert_eq!(
        select(&request(100), 100, &nodes, &placed, &[]),
        None,
        "it fits already"
    );
    nodes[0].taints = vec![Taint {
        key: "dedicated".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    }];
    assert_eq!(
        select(&request(500), 100, &nodes, &placed, &[]),
        None,
        "evicting does not remove a taint"
    );
}

#[test]
fn the_node_with_the_least_important_victims_wins() {
    let mut nodes = [node("a", 1000), node("b", 1000), node("c", 1000)];
    let mut placed = Vec::new();
    place(&mut nodes, &mut placed, "a", "a-mid", 50, 1000);
    place(&mut nodes, &mut placed, "b", "b-low-1", 5, 500);
    place(&mut nodes, &mut placed, "b", "b-low-2", 5, 500);
    place(&mut nodes, &mut placed, "c", "c-low", 5, 1000);
    // b and c both have victims of at most 5; c needs one, b two: c's sum is lower.
    let chosen = select(&request(800), 100, &nodes, &placed, &[]);
    assert_eq!(victims(&chosen), Some(("c", vec!["c-low"])));
    // Without c, the lowest highest priority (b's 5) beats a's single pod of 50.
    let chosen = select(&request(800), 100, &nodes[..2], &placed, &[]);
    assert_eq!(victims(&chosen), Some(("b", vec!["b-low-1", "b-low-2"])));
}

#[test]
fn equal_victims_lose_the_least_work_then_the_first_node() {
    let mut nodes = [node("a", 1000), node("b", 1000), node("c", 1000)];
    let mut placed = Vec::new();
    place(&mut nodes, &mut placed, "a", "old", 0, 1000);
    place(&mut nodes, &mut placed, "b", "young", 0, 1000);
    place(&mut nodes, &mut placed, "c", "young-too", 0, 1000);
    placed[0].1.started = Some(10);
    placed[1].1.started = Some(500);
    placed[2].1.started = Some(500);
    let chosen = select(&request(500), 100, &nodes, &placed, &[]);
    assert_eq!(victims(&chosen), Some(("b", vec!["young"])));
}

#[test]
fn pods_being_deleted_are_not_victims_and_a_nominated_pod_waits_for_them() {
    let mut nodes = [node("n1", 1000)];
    let mut placed = Vec::new();
    place(&mut nodes, &mut placed, "n1", "going", 0, 600);
    place(&mut nodes, &mut placed, "n1", "staying", 0, 400);
    placed[0].1.is_deleting = true;
    let chosen = select(&request(500), 100, &nodes, &placed, &[]);
    assert_eq!(
        victims(&chosen),
        None,
        "only 'staying' could go, and it frees too little"
    );
    assert!(!may_preempt(Some(PREEMPT_LOWER_PRIORITY), 100, Some("n1"), &placed));
    assert!(may_preempt(Some(PREEMPT_LOWER_PRIORITY), 100, Some("n2"), &placed));
    assert!(may_preempt(None, 100, None, &placed));
    assert!(!may_preempt(Some("Never"), 100, None, &placed));
    assert!(
        may_preempt(Some(PREEMPT_LOWER_PRIORITY), 0, Some("n1"), &placed),
        "pods of equal priority going there were not evicted for it"
    );
}

#[test]
fn host_ports_are_freed_by_their_pods_eviction() {
    let mut nodes = [node("n1", 1000)];
    let mut placed = Vec::new();
    let mut web = request(100);
    web.host_ports.insert(80);
    nodes[0].charge(&web);
    placed.push((
        "n1".to_string(),
        Placed {
            key: "web".into(),
            priority: 0,
            request: web.clone(),
            ..Default::default()
        },
    ));
    let chosen = select(&web, 100, &nodes, &placed, &[]);
    assert_eq!(victims(&chosen), Some(("n1", vec!["web"])));
}

#[test]
fn a_node_whose_victims_break_no_budget_is_preferred() {
    let mut nodes = [node("a", 1000), node("b", 1000)];
    let mut placed = Vec::new();
    place(&mut nodes, &mut placed, "a", "a-web", 0, 1000);
    place(&mut nodes, &mut placed, "b", "b-batch", 5, 1000);
    let label = |placed: &mut Vec<(String, Placed)>, i: usize, app: &str| {
        let name = placed[i].1.key.clone();
        let request = &mut placed[i].1.request;
        request.namespace = "default".into();
        request.name = name;
        request.labels = Arc::new([("app".to_string(), app.to_string())].into());
    };
    label(&mut placed, 0, "web");
    label(&mut placed, 1, "batch");
    let budget = |allowed: i32, disrupted: &[&str]| Budget {
        namespace: "default".into(),
        selector: LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        },
        disruptions_allowed: allowed,
        disrupted: disrupted.iter().map(|d| d.to_string()).collect(),
    };
    // Without budgets a's victim, of lower priority, is the better one.
    let free = select(&request(500), 100, &nodes, &placed, &[]);
    assert_eq!(victims(&free), Some(("a", vec!["a-web"])));
    // A budget with no disruption left protects it: b's victim breaks none.
    let protected = select(&request(500), 100, &nodes, &placed, &[budget(0, &[])]);
    assert_eq!(victims(&protected), Some(("b", vec!["b-batch"])));
    assert_eq!(protected.unwrap().budget_violations, 0);
    // One disruption allowed, or the pod already counted as disrupted: no violation.
    for budgets in [[budget(1, &[])], [budget(0, &["a-web"])]] {
        let allowed = select(&request(500), 100, &nodes, &placed, &budgets);
        assert_eq!(victims(&allowed), Some(("a", vec!["a-web"])), "{budgets:?}");
    }
    // Only a's pod could make room: it goes, the violation counted.
    let only = select(&request(500), 100, &nodes[..1], &placed, &[budget(0, &[])]);
    assert_eq!(only.map(|p| p.budget_violations), Some(1));
}

#[test]
fn no_pod_is_evicted_for_a_node_that_inter_pod_rules_still_refuse() {
    let mut nodes = [node("n1", 1000), node("n2", 1000)];
    for n in &mut nodes {
        n.labels.insert("kubernetes.io/hostname".into(), n.name.clone());
    }
    let mut placed = Vec::new();
    // n1 holds a web pod nobody may evict and the cheapest victim; n2 a dearer one.
    place(&mut nodes, &mut placed, "n1", "low-cheap", 0, 700);
    let web = PodRequest {
        labels: Arc::new([("app".to_string(), "web".to_string())].into()),
        ..request(100)
    };
    nodes[0].charge(&web);
    place(&mut nodes, &mut placed, "n2", "low-dear", 50, 800);
    let affinity: berth_api::objects::Affinity = serde_json::from_value(serde_json::json!({
        "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}))
    .unwrap();
    let pod = PodRequest {
        affinity: Some(Arc::new(affinity)),
        ..request(600)
    };
    let chosen = select(&pod, 100, &nodes, &placed, &[]);
    assert_eq!(victims(&chosen), Some(("n2", vec!["low-dear"])));
    // Without the rule, n1's victim is the cheaper choice.
    let chosen = select(&request(600), 100, &nodes, &placed, &[]);
    assert_eq!(victims(&chosen), Some(("n1", vec!["low-cheap"])));
}

#[test]
fn a_pod_kept_off_only_by_lower_priority_pods_inter_pod_rules_evicts_them() {
    let anti = |app: &str| -> Option<Arc<berth_api::objects::Affinity>> {
        let affinity = serde_json::from_value(serde_json::json!({
            "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "kubernetes.io/hostname"}]}}));
        Some(Arc::new(affinity.unwrap()))
    };
    let labeled = |app: &str, affinity| PodRequest {
        namespace: "default".into(),
        labels: Arc::new([("app".to_string(), app.to_string())].into()),
        affinity,
        ..request(100)
    };
    let mut node = node("n1", 4000);
    node.labels.insert("kubernetes.io/hostname".into(), "n1".into());
    let on_n1 = |pods: &[(&str, i32, &PodRequest)]| {
        let mut nodes = [node.clone()];
        let mut placed = Vec::new();
        for (key, priority, request) in pods {
            nodes[0].charge(request);
            let started = Some(1000);
            let (key, priority, request) = (key.to_string(), *priority, (*request).clone());
            placed.push((
                "n1".to_string(),
                Placed {
                    key,
                    priority,
                    started,
                    is_deleting: false,
                    request,
                },
            ));
        }
        (nodes, placed)
    };
    let (db, other) = (labeled("db", None), labeled("other", None));

    // The pod's own anti-affinity against a db pod of lower priority: the db pod
    // goes, and only it (the other pod is put back: it does not stand in the way).
    let web = labeled("web", anti("db"));
    let (nodes, placed) = on_n1(&[("low-db", 0, &db), ("low-other", 0, &other)]);
    assert_eq!(
        victims(&select(&web, 100, &nodes, &placed, &[])),
        Some(("n1", vec!["low-db"]))
    );
    // Of the same priority, the db pod stays, and nothing else would help.
    let (nodes, placed) = on_n1(&[("db", 100, &db), ("low-other", 0, &other)]);
    assert_eq!(select(&web, 100, &nodes, &placed, &[]), None);

    // A placed pod of lower priority whose own anti-affinity keeps web pods away.
    let loner = labeled("loner", anti("web"));
    let plain_web = labeled("web", None);
    let (nodes, placed) = on_n1(&[("low-loner", 0, &loner), ("low-other", 0, &other)]);
    assert_eq!(
        victims(&select(&plain_web, 100, &nodes, &placed, &[])),
        Some(("n1", vec!["low-loner"]))
    );
}
