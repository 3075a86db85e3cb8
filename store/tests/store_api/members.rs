//! Membership: a member joins as a learner, is promoted and removed.

use berth_testkit::eventually;
use etcd_client::GetOptions;

use super::common::{etcdctl, start, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_added_as_learners_promoted_and_removed() {
    let mut cluster = start(3, &[]).await;
    let all = cluster.endpoints();
    let mut c = cluster.client().await;
    c.put("before-join", "x", None).await.unwrap();

    let new = cluster.add_replica();
    let peer_url = format!("http://127.0.0.1:{}", cluster.replicas[new].peer_port);
    let added = stdout(&etcdctl(
        &all,
        &[
            "member",
            "add",
            &cluster.replicas[new].name,
            "--learner",
            "--peer-urls",
            &peer_url,
        ],
    ));
    assert!(added.contains("added to cluster"), "{added}");
    let id = c
        .member_list()
        .await
        .unwrap()
        .members()
        .iter()
        .find(|m| m.peer_urls().contains(&peer_url))
        .unwrap()
        .id();
    assert!(
        c.member_list()
            .await
            .unwrap()
            .members()
            .iter()
            .any(|m| m.id() == id && m.is_learner())
    );

    // Added to a running cluster, it starts with --initial-cluster-state existing.
    cluster.start_replica(new).unwrap();
    let mut learner = cluster.client_of(new).await;
    eventually("the learner to replicate", || {
        let mut learner = learner.clone();
        async move {
            let r = learner
                .get("before-join", Some(GetOptions::new().with_serializable()))
                .await
                .ok()?;
            (r.count() == 1).then_some(())
        }
    })
    .await;
    let promoted = eventually("promotion to succeed", || {
        let mut c = c.clone();
        async move { c.member_promote(id).await.ok() }
    })
    .await;
    assert!(promoted.members().iter().any(|m| m.id() == id && !m.is_learner()));
    let err = c.member_promote(id).await.unwrap_err().to_string();
    assert!(err.contains("can only promote a learner member"), "{err}");
    // The promoted member votes and serves linearizable reads.
    c.put("after-promote", "y", None).await.unwrap();
    assert_eq!(learner.get("after-promote", None).await.unwrap().count(), 1);

    let removed = c.member_remove(id).await.unwrap();
    assert!(!removed.members().iter().any(|m| m.id() == id));
    let err = c.member_remove(id).await.unwrap_err().to_string();
    assert!(err.contains("member not found"), "{err}");
    c.put("after-remove", "z", None).await.unwrap();
}
