//! Three replicas on loopback: a follower's client sees what a leader's client sees,
//! its writes having gone to the leader on a raft stream and come back.

use std::time::Duration;

use berth_proto::berthpb::{MemberChange, member_change};
use berth_proto::etcdserverpb::{
    CompactionRequest, LeaseRevokeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, request_op,
};
use berth_store::{Server, StoreConfig, StoreError};
use berth_testkit::free_port;

async fn start_cluster(dir: &std::path::Path) -> Vec<Server> {
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let initial_cluster: Vec<(String, Vec<String>)> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| (format!("r{i}"), vec![format!("http://127.0.0.1:{peer}")]))
        .collect();
    let starts = ports.iter().enumerate().map(|(i, (client, peer))| {
        let mut config = StoreConfig::single(&format!("r{i}"), dir.join(format!("r{i}")), *client, *peer);
        config.initial_cluster = initial_cluster.clone();
        Server::start(config)
    });
    let servers: Vec<Server> = futures::future::try_join_all(starts).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !servers.iter().any(|s| s.store().is_leader()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "three replicas must elect a leader"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    servers
}

/// Regression: a follower used to rebuild the leader's error from a gRPC status,
/// which names no revision, so its client saw `Compacted { requested: 0, compacted: 0 }`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followers_client_gets_the_leaders_errors_with_their_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let servers = start_cluster(dir.path()).await;
    let follower = servers.iter().find(|s| !s.store().is_leader()).unwrap().store();
    for i in 1..=5 {
        let put = PutRequest {
            key: b"a".to_vec(),
            value: i.to_string().into_bytes(),
            ..Default::default()
        };
        follower.put(put).await.unwrap();
    }
    let compaction = CompactionRequest {
        revision: 4,
        physical: true,
    };
    follower.compact(compaction).await.unwrap();
    assert_eq!(
        follower.compact(compaction).await.unwrap_err(),
        StoreError::Compacted {
            requested: 4,
            compacted: 4
        }
    );
    let txn = TxnRequest {
        success: vec![
            RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: b"x".to_vec(),
                    ..Default::default()
                })),
            },
            RequestOp {
                request: Some(request_op::Request::RequestRange(RangeRequest {
                    key: b"a".to_vec(),
                    revision: 2,
                    ..Default::default()
                })),
            },
        ],
        ..Default::default()
    };
    assert_eq!(
        follower.txn(txn).await.unwrap_err(),
        StoreError::Compacted {
            requested: 2,
            compacted: 4
        }
    );
    assert_eq!(
        follower
            .lease_revoke(LeaseRevokeRequest { id: 0x43 })
            .await
            .unwrap_err(),
        StoreError::LeaseNotFound { id: 0x43 }
    );
    // Membership changes go to the leader over gRPC, whose status names no member.
    let removal = MemberChange {
        action: member_change::Action::Remove as i32,
        id: 0x99,
        ..Default::default()
    };
    assert_eq!(
        follower.change_member(removal).await.unwrap_err(),
        StoreError::MemberNotFound { id: 0x99 }
    );
    for server in servers {
        server.shutdown().await;
    }
}
