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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_peer_urls_are_updated_through_the_log() {
    let cluster = start(3, &[]).await;
    let all = cluster.endpoints();
    let mut c = cluster.client().await;
    let members = c.member_list().await.unwrap();
    let id_of = |name: &str| members.members().iter().find(|m| m.name() == name).unwrap().id();
    let target = id_of("n3");
    let new_url = format!("http://127.0.0.1:{}", berth_testkit::free_port());

    let taken = cluster.replicas[0].peer_url();
    let err = c.member_update(target, vec![taken]).await.unwrap_err().to_string();
    assert!(err.contains("Peer URLs already exists"), "{err}");
    let stranger = 0xbad;
    assert!(members.members().iter().all(|m| m.id() != stranger));
    let err = c
        .member_update(stranger, vec![new_url.clone()])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("member not found"), "{err}");

    // n3 no longer hears from the leader (nothing listens on its new URL) and may
    // campaign; the update must still reach the log of every replica that can hear.
    let updated = stdout(&etcdctl(
        &all,
        &[
            "member",
            "update",
            &format!("{target:x}"),
            &format!("--peer-urls={new_url}"),
        ],
    ));
    assert!(updated.contains("updated in cluster"), "{updated}");
    for index in 0..2 {
        let mut replica = cluster.client_of(index).await;
        let new_url = new_url.clone();
        eventually("every replica to apply the update", || {
            let mut replica = replica.clone();
            let new_url = new_url.clone();
            async move {
                let list = replica.member_list().await.ok()?;
                let member = list.members().iter().find(|m| m.id() == target)?;
                (member.peer_urls() == [new_url]).then_some(())
            }
        })
        .await;
        let list = replica.member_list().await.unwrap();
        let member = list.members().iter().find(|m| m.id() == target).unwrap();
        assert_eq!(member.name(), "n3", "the name stays");
    }
}
