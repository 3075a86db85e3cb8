//! Membership: a member joins as a learner, is promoted and removed.

use berth_testkit::eventually;
use etcd_client::GetOptions;

use super::common::{endpoints_except, etcdctl, start, stdout};

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
    let mut c = cluster.client().await;
    let members = c.member_list().await.unwrap();
    // A follower's URLs change: followers reach the leader at its URLs, so moving
    // the leader's to where nothing listens would cut them off from it.
    let target_index = (cluster.agreed_leader().await.unwrap() + 1) % 3;
    let target_name = cluster.replicas[target_index].name.clone();
    let target = members.members().iter().find(|m| m.name() == target_name).unwrap().id();
    let new_url = format!("http://127.0.0.1:{}", berth_testkit::free_port());

    let taken = cluster.replicas[(target_index + 1) % 3].peer_url();
    let err = refused_update(&c, target, &taken).await;
    assert!(err.contains("Peer URLs already exists"), "{err}");
    let stranger = 0xbad;
    assert!(members.members().iter().all(|m| m.id() != stranger));
    let err = refused_update(&c, stranger, &new_url).await;
    assert!(err.contains("member not found"), "{err}");

    // The target no longer hears from the leader (nothing listens on its new URL)
    // and may campaign; the update must still reach the log of every replica that
    // can hear. Not through the target itself: it answers once it has applied the
    // change, which the leader can no longer send it (etcd's would time out alike).
    // An update is idempotent, so one that met a leader change is made again.
    let reachable = endpoints_except(&cluster, target_index);
    let args = [
        "member",
        "update",
        &format!("{target:x}"),
        &format!("--peer-urls={new_url}"),
    ];
    let updated = eventually("the update to be accepted", || async {
        let out = etcdctl(&reachable, &args);
        if out.status.success() {
            return Some(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(is_transient(&stderr), "{stderr}");
        None
    })
    .await;
    assert!(updated.contains("updated in cluster"), "{updated}");
    for index in (0..3).filter(|i| *i != target_index) {
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
        assert_eq!(member.name(), target_name, "the name stays");
    }
}

fn is_transient(error: &str) -> bool {
    ["leader changed", "no leader", "request timed out"]
        .iter()
        .any(|t| error.contains(t))
}

/// The error a MemberUpdate is refused with, past errors an election causes.
async fn refused_update(c: &etcd_client::Client, id: u64, url: &str) -> String {
    eventually("a MemberUpdate to be refused", || async {
        let mut c = c.clone();
        let err = c
            .member_update(id, vec![url.to_string()])
            .await
            .unwrap_err()
            .to_string();
        (!is_transient(&err)).then_some(err)
    })
    .await
}
