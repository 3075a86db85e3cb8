use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use berth_api::conditions::Condition;
use berth_api::objects::{Node, NodeCondition, NodeStatus};

use super::*;

fn node(name: &str, ready: &str) -> Record {
    let mut node = Node::new(
        berth_api::meta::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        NodeSpec::default(),
    );
    node.status = NodeStatus {
        conditions: Some(vec![NodeCondition::new("Ready", ready, "", "")]),
        ..Default::default()
    };
    Record {
        key: format!("/registry/minions/{name}"),
        value: serde_json::to_vec(&node).unwrap(),
        create_revision: 1,
        mod_revision: 2,
        version: 1,
        lease: 0,
    }
}

/// Runs node `position`'s keeper, counting its writes; `fail` writes fail.
fn keeper(marks: &Arc<NodeMarks>, position: usize, fail: bool) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let writes = Arc::new(AtomicUsize::new(0));
    let (marks, counted) = (marks.clone(), writes.clone());
    let task = tokio::spawn(async move {
        marks
            .keep(position, || {
                counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    if fail {
                        Err(KvError::Other("refused".into()))
                    } else {
                        Ok(())
                    }
                }
            })
            .await
    });
    (writes, task)
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_seen_marked_is_written_once_and_a_ready_one_never() {
    let marks = Arc::new(NodeMarks::new(["n0".to_string(), "n1".to_string()]));
    let (n0, t0) = keeper(&marks, 0, false);
    let (n1, t1) = keeper(&marks, 1, false);
    marks.replace(
        vec![node("n0", "True"), node("n1", "True"), node("other", "Unknown")],
        2,
    );
    settle().await;
    assert_eq!((n0.load(Ordering::SeqCst), n1.load(Ordering::SeqCst)), (0, 0));

    // The node lifecycle controller marks n1: its keeper writes it once.
    marks.apply(vec![Event::Put(node("n1", "Unknown"))], 3);
    settle().await;
    assert_eq!((n0.load(Ordering::SeqCst), n1.load(Ordering::SeqCst)), (0, 1));
    assert!(!marks.is_marked(1), "unmarked once written");
    // Its write seen: nothing more.
    marks.apply(vec![Event::Put(node("n1", "True"))], 4);
    settle().await;
    assert_eq!(n1.load(Ordering::SeqCst), 1);
    // Marked False this time (another writer): written again.
    marks.apply(vec![Event::Put(node("n1", "False"))], 5);
    settle().await;
    assert_eq!(n1.load(Ordering::SeqCst), 2);
    t0.abort();
    t1.abort();
}

#[tokio::test(start_paused = true)]
async fn a_node_marked_before_its_keeper_runs_is_written_when_it_starts() {
    let marks = Arc::new(NodeMarks::new(["n0".to_string()]));
    marks.replace(vec![node("n0", "Unknown")], 2);
    assert!(marks.is_marked(0));
    let (writes, task) = keeper(&marks, 0, false);
    settle().await;
    assert_eq!(writes.load(Ordering::SeqCst), 1);
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_failed_write_is_tried_again_after_a_second() {
    let marks = Arc::new(NodeMarks::new(["n0".to_string()]));
    let (writes, task) = keeper(&marks, 0, true);
    marks.apply(vec![Event::Put(node("n0", "Unknown"))], 3);
    settle().await;
    assert_eq!(writes.load(Ordering::SeqCst), 1);
    tokio::time::sleep(RETRY + Duration::from_millis(10)).await;
    settle().await;
    assert_eq!(writes.load(Ordering::SeqCst), 2);
    assert!(marks.is_marked(0), "still marked while the writes fail");
    task.abort();
}
