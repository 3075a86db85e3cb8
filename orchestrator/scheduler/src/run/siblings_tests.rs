use std::collections::BTreeMap;

use berth_api::meta::LabelSelector;

use super::*;
use crate::score::siblings_on;

fn selector(app: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([("app".to_string(), app.to_string())])),
        ..Default::default()
    }
}

fn pod(namespace: &str, app: &str) -> PodRequest {
    PodRequest {
        namespace: namespace.into(),
        labels: Arc::new(BTreeMap::from([("app".to_string(), app.to_string())])),
        spread_selector: Some(selector(app)),
        ..Default::default()
    }
}

fn node(name: &str) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        ..Default::default()
    }
}

/// What scoring would count without the cache.
fn recount(request: &PodRequest, infos: &[NodeInfo]) -> Vec<u32> {
    let selector = request.spread_selector.as_ref().unwrap();
    (infos.iter())
        .map(|n| siblings_on(n, &request.namespace, selector) as u32)
        .collect()
}

#[test]
fn counts_kept_as_pods_are_placed_equal_a_recount() {
    let mut infos = vec![node("a"), node("b"), node("c")];
    infos[0].charge(&pod("default", "web"));
    infos[1].charge(&pod("other", "web"));
    infos[2].charge(&pod("default", "db"));
    let mut siblings = Siblings::default();
    let web = pod("default", "web");
    let db = pod("default", "db");
    // By the node's position: a, b, c.
    assert_eq!(*siblings.of(&web, &infos).unwrap(), [1, 0, 0]);
    assert_eq!(*siblings.of(&db, &infos).unwrap(), [0, 0, 1]);
    // Placed in the pass: charged to the node and counted.
    for (i, placed) in [(1, &web), (1, &web), (2, &db), (0, &pod("other", "web"))] {
        infos[i].charge(placed);
        siblings.placed(placed, i);
    }
    for request in [&web, &db] {
        assert_eq!(*siblings.of(request, &infos).unwrap(), recount(request, &infos));
    }
    assert_eq!(siblings.of(&web, &infos).unwrap()[1], 2);
    // A selector first counted after the pass placed pods counts them too.
    let other_web = pod("other", "web");
    assert_eq!(*siblings.of(&other_web, &infos).unwrap(), [1, 1, 0]);
    assert_eq!(*siblings.of(&other_web, &infos).unwrap(), recount(&other_web, &infos));
}

#[test]
fn a_pod_without_a_spread_selector_has_no_counts() {
    let mut siblings = Siblings::default();
    let request = PodRequest::default();
    assert_eq!(siblings.of(&request, &[node("a")]), None);
}
