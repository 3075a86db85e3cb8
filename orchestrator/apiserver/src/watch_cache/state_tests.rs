use super::*;

fn pod(key: &str, node: Option<&str>, revision: i64) -> Record {
    let spec = match node {
        Some(node) => format!(r#"{{"nodeName":"{node}","containers":[]}}"#),
        None => r#"{"containers":[]}"#.to_string(),
    };
    Record {
        key: key.into(),
        value: format!(r#"{{"metadata":{{"name":"x"}},"spec":{spec}}}"#).into_bytes(),
        create_revision: revision,
        mod_revision: revision,
        version: 1,
        lease: 0,
    }
}

#[test]
fn node_names_are_read_from_pods() {
    assert_eq!(
        node_name(&pod("/registry/pods/a/p", Some("n1"), 1).value).as_deref(),
        Some("n1")
    );
    assert_eq!(node_name(&pod("/registry/pods/a/p", None, 1).value), None);
    assert_eq!(node_name(br#"{"spec":{"nodeName":""}}"#), None);
    assert_eq!(node_name(b"not json"), None);
}

#[test]
fn changes_carry_the_previous_version_and_move_the_node_index() {
    let mut state = State::new(true);
    state.reset(vec![pod("/registry/pods/a/p", None, 5)], 7);
    assert_eq!(state.revision, 7);
    assert!(state.objects_under("/registry/pods/", Some("n1")).is_empty());

    let changes = state.apply(8, vec![Event::Put(pod("/registry/pods/a/p", Some("n1"), 8))]);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].prev.as_ref().unwrap().record.mod_revision, 5);
    assert!(changes[0].touches_node("n1"));
    assert!(!changes[0].touches_node("n2"));
    assert_eq!(state.objects_under("/registry/pods/", Some("n1")).len(), 1);
    assert_eq!(state.objects_under("/registry/pods/b/", Some("n1")).len(), 0);

    let deleted = pod("/registry/pods/a/p", Some("n1"), 8);
    let changes = state.apply(
        9,
        vec![Event::Delete {
            prev: deleted,
            revision: 9,
        }],
    );
    assert!(changes[0].next.is_none());
    assert!(
        changes[0].touches_node("n1"),
        "a deletion reaches the node the pod was on"
    );
    assert!(state.objects_under("/registry/pods/", Some("n1")).is_empty());
    assert!(state.by_node.is_empty());
    assert_eq!(state.revision, 9);
}

#[test]
fn the_window_answers_only_for_revisions_it_still_holds() {
    let mut state = State::new(false);
    state.reset(Vec::new(), 10);
    assert_eq!(state.changes_after(10).unwrap().len(), 0);
    assert!(state.changes_after(9).is_none(), "before the list: not in the window");
    for r in 11..=13 {
        state.apply(r, vec![Event::Put(pod(&format!("/registry/pods/a/p{r}"), None, r))]);
    }
    let after: Vec<i64> = state.changes_after(11).unwrap().iter().map(|c| c.revision).collect();
    assert_eq!(after, vec![12, 13]);
    // A progress batch moves the revision without a change.
    assert!(state.apply(20, Vec::new()).is_empty());
    assert_eq!(state.revision, 20);
}

#[test]
fn a_full_window_forgets_its_oldest_changes() {
    let mut state = State::new(false);
    state.reset(Vec::new(), 0);
    for r in 1..=(WINDOW as i64 + 2) {
        state.apply(r, vec![Event::Put(pod("/registry/pods/a/p", None, r))]);
    }
    assert_eq!(state.window.len(), WINDOW);
    assert_eq!(state.oldest, 2);
    assert!(state.changes_after(1).is_none());
    assert_eq!(state.changes_after(2).unwrap().len(), WINDOW);
    assert_eq!(state.objects.len(), 1);
}
