//! MoveLeader (`etcdctl move-leader`): the leader hands over to a voter it names.

use std::time::Duration;

use berth_testkit::eventually;

use super::common::{etcdctl, start, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_leader_hands_the_leadership_to_the_named_voter() {
    let cluster = start(3, &[]).await;
    let all = cluster.endpoints();
    let mut c = cluster.client().await;
    c.put("before", "1", None).await.unwrap();
    let leader_index = cluster.agreed_leader().await.unwrap();
    let target_index = (leader_index + 1) % 3;
    let member_id = |index: usize| {
        let endpoint = cluster.replicas[index].endpoint();
        async move {
            berth_testkit::status(&endpoint, Duration::from_secs(5))
                .await
                .unwrap()
                .member_id
        }
    };
    let (leader_id, target_id) = (member_id(leader_index).await, member_id(target_index).await);

    // Only the leader hands over, and only to a voter.
    let mut follower = cluster.client_of(target_index).await;
    let err = follower.move_leader(leader_id).await.unwrap_err().to_string();
    assert!(err.contains("etcdserver: not leader"), "{err}");
    let mut leader = cluster.client_of(leader_index).await;
    let err = leader.move_leader(0xbad).await.unwrap_err().to_string();
    assert!(err.contains("etcdserver: bad leader transferee"), "{err}");

    let moved = stdout(&etcdctl(&all, &["move-leader", &format!("{target_id:x}")]));
    assert!(moved.contains("Leadership transferred"), "{moved}");
    eventually("every replica to follow the new leader", || async {
        let index = cluster.agreed_leader().await.ok()?;
        (index == target_index).then_some(())
    })
    .await;
    assert_ne!(leader_id, target_id);
    c.put("after", "2", None).await.unwrap();
    assert_eq!(c.get("before", None).await.unwrap().kvs()[0].value(), b"1");
}
