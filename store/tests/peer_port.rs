//! The peer port of a real `berth store` process, spoken to byte by byte as a stranger,
//! a confused peer or a broken one would: it serves members of its cluster only, reads
//! no message longer than its kind can be, checks forwarded commands as it checks its
//! own clients' requests, and goes on serving with its memory where it was.

#[path = "common/mod.rs"]
mod common;

use berth_proto::Message;
use berth_proto::berthpb::peer_client::PeerClient;
use berth_proto::berthpb::{Command, CommandBatch, JoinRequest, command, command_result};
use berth_proto::etcdserverpb::{PutRequest, RequestOp, TxnRequest, request_op};
use berth_store::StoreError;
use berth_store::grpc::to_status;
use berth_store::peer_identity::{CLUSTER_ID_HEADER, MEMBER_ID_HEADER, MEMBERSHIP_INDEX_HEADER, PeerIdentity};
use berth_store::raft::wire::{Kind, MAGIC};
use berth_store::raft::{ForwardOutcome, Response, decode};
use berth_testkit::{Cluster, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::start;

/// A raft stream to replica 0 that greeted with `magic` and `sender`.
async fn greet(cluster: &Cluster, magic: &[u8], sender: PeerIdentity) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", cluster.replicas[0].peer_port))
        .await
        .unwrap();
    stream.write_all(magic).await.unwrap();
    stream.write_all(&sender.to_bytes()).await.unwrap();
    stream
}

/// A request frame's header: its length (with the kind byte) and its kind.
fn header(kind: u8, body_bytes: usize) -> Vec<u8> {
    let mut header = (body_bytes as u32 + 1).to_le_bytes().to_vec();
    header.push(kind);
    header
}

async fn request(stream: &mut TcpStream, kind: Kind, body: &[u8]) {
    stream.write_all(&header(kind as u8, body.len())).await.unwrap();
    stream.write_all(body).await.unwrap();
}

/// The next answer: its status (0 ok, 1 error) and body.
async fn answer(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.expect("an answer");
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    stream.read_exact(&mut body).await.unwrap();
    let status = body.remove(0);
    (status, body)
}

/// An error answer's text.
async fn refusal(stream: &mut TcpStream) -> String {
    let (status, body) = answer(stream).await;
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 1, "expected a refusal, got {text:?}");
    text
}

/// Who replica 0 is: its cluster and member IDs, from a response header.
async fn identity_of(cluster: &Cluster) -> PeerIdentity {
    let mut client = cluster.client_of(0).await;
    let put = client.put("identity", "probe", None).await.unwrap();
    let header = put.header().unwrap();
    PeerIdentity {
        cluster_id: header.cluster_id(),
        member_id: header.member_id(),
        // A single replica's membership is its bootstrap entry, the first.
        membership_index: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_garbage_and_oversized_frames_are_refused_and_memory_stays_put() {
    let cluster = start(1, &[]).await;
    let member = identity_of(&cluster).await;
    let rss_before_kib = cluster.rss_kib().unwrap()[0];

    let other_cluster = PeerIdentity {
        cluster_id: member.cluster_id ^ 1,
        ..member
    };
    let mut stream = greet(&cluster, MAGIC, other_cluster).await;
    request(&mut stream, Kind::AppendEntries, b"x").await;
    let why = refusal(&mut stream).await;
    assert!(why.contains("cluster ID mismatch"), "{why}");

    let not_a_member = PeerIdentity {
        member_id: member.member_id ^ 1,
        ..member
    };
    let mut stream = greet(&cluster, MAGIC, not_a_member).await;
    request(&mut stream, Kind::Vote, b"x").await;
    let why = refusal(&mut stream).await;
    assert!(why.contains("member ID mismatch"), "{why}");

    // A replica of an earlier version greets without an identity.
    let mut stream = TcpStream::connect(("127.0.0.1", cluster.replicas[0].peer_port))
        .await
        .unwrap();
    stream.write_all(b"berth-raft/1\n").await.unwrap();
    request(&mut stream, Kind::Vote, b"x").await;
    let why = refusal(&mut stream).await;
    assert!(why.contains("berth-raft/1"), "{why}");

    // A "vote" of 150 MB from a member, of which a first megabyte of garbage arrives:
    // refused on its length, before anything is allocated for it.
    let mut stream = greet(&cluster, MAGIC, member).await;
    stream.write_all(&header(Kind::Vote as u8, 150_000_000)).await.unwrap();
    stream.write_all(&vec![0xab; 1 << 20]).await.unwrap();
    let why = refusal(&mut stream).await;
    assert!(why.contains("Vote message of 150000000 bytes is larger than"), "{why}");

    // Garbage of a size an AppendEntries may have is read, refused as undecodable,
    // and the connection goes on.
    let mut stream = greet(&cluster, MAGIC, member).await;
    for _ in 0..3 {
        request(&mut stream, Kind::AppendEntries, &vec![0xcd; 4 << 20]).await;
        let why = refusal(&mut stream).await;
        assert!(why.contains("undecodable raft message"), "{why}");
    }

    // gRPC peer calls say who sends them too.
    let peer_url = cluster.replicas[0].peer_url();
    let mut grpc = PeerClient::connect(peer_url.clone()).await.unwrap();
    let join = JoinRequest {
        peer_urls: vec![peer_url.clone()],
    };
    let status = grpc.join(join.clone()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(status.message().contains(CLUSTER_ID_HEADER), "{}", status.message());
    let mut stranger = tonic::Request::new(join);
    let metadata = stranger.metadata_mut();
    metadata.insert(
        CLUSTER_ID_HEADER,
        format!("{:x}", other_cluster.cluster_id).parse().unwrap(),
    );
    metadata.insert(MEMBER_ID_HEADER, "0".parse().unwrap());
    metadata.insert(MEMBERSHIP_INDEX_HEADER, "0".parse().unwrap());
    let status = grpc.join(stranger).await.unwrap_err();
    assert!(status.message().contains("cluster ID mismatch"), "{}", status.message());

    // Still serving, and not holding on to what it was sent.
    let mut client = cluster.client_of(0).await;
    client.put("after", "garbage", None).await.unwrap();
    assert_eq!(client.get("after", None).await.unwrap().kvs()[0].value(), b"garbage");
    let rss_after_kib = cluster.rss_kib().unwrap()[0];
    let grown_mib = rss_after_kib.saturating_sub(rss_before_kib) / 1024;
    assert!(
        grown_mib < 64,
        "the replica grew by {grown_mib} MiB ({rss_before_kib} KiB before, {rss_after_kib} KiB after)"
    );
}

fn put(key: &str, value_bytes: usize) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: vec![b'v'; value_bytes],
        ..Default::default()
    }
}

fn put_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(put(key, 1))),
    }
}

fn put_command(req: PutRequest) -> Command {
    Command {
        command: Some(command::Command::Put(req)),
    }
}

fn txn_command(txn: TxnRequest) -> Command {
    Command {
        command: Some(command::Command::Txn(txn)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_commands_get_the_errors_their_clients_would() {
    let cluster = start(1, &[]).await;
    let member = identity_of(&cluster).await;
    let thousand_ops = TxnRequest {
        success: (0..1000).map(|i| put_op(&format!("k{i}"))).collect(),
        ..Default::default()
    };
    let duplicate_keys = TxnRequest {
        success: vec![put_op("twice"), put_op("twice")],
        ..Default::default()
    };
    let batch = CommandBatch {
        commands: vec![
            put_command(put("", 1)),
            put_command(put("huge", 1_900_000)),
            txn_command(thousand_ops.clone()),
            txn_command(duplicate_keys.clone()),
            put_command(put("forwarded", 3)),
        ],
        initial_revision: 2,
    };
    let mut stream = greet(&cluster, MAGIC, member).await;
    request(&mut stream, Kind::ForwardBatch, &batch.encode_to_vec()).await;
    let (status, body) = answer(&mut stream).await;
    assert_eq!(status, 0, "{}", String::from_utf8_lossy(&body));
    let ForwardOutcome::Applied(Response(outcomes)) = decode(&body).unwrap() else {
        panic!("the batch was not written");
    };
    assert_eq!(outcomes.len(), 5);
    assert_eq!(outcomes[0], Err(StoreError::EmptyKey));
    assert!(
        matches!(outcomes[1], Err(StoreError::RequestTooLarge { max: 1_572_864, .. })),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(outcomes[2], Err(StoreError::TooManyOps { ops: 1000, max: 128 }));
    assert_eq!(outcomes[3], Err(StoreError::DuplicateKey));
    assert!(
        matches!(outcomes[4], Ok(command_result::Result::Put(_))),
        "{:?}",
        outcomes[4]
    );

    // A client sending the same requests hears the same errors.
    let mut client = cluster.client_of(0).await;
    let mut client_errors = Vec::new();
    client_errors.push(client.put("", "v", None).await.unwrap_err());
    client_errors.push(client.put("huge", vec![b'v'; 1_900_000], None).await.unwrap_err());
    let mut kv = client.kv_client();
    for txn in [thousand_ops, duplicate_keys] {
        let ops: Vec<etcd_client::TxnOp> = txn
            .success
            .iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(p)) => {
                    etcd_client::TxnOp::put(p.key.clone(), p.value.clone(), None)
                }
                other => panic!("not a put: {other:?}"),
            })
            .collect();
        client_errors.push(kv.txn(etcd_client::Txn::new().and_then(ops)).await.unwrap_err());
    }
    for (forwarded, from_client) in outcomes.iter().zip(&client_errors) {
        let status = to_status(forwarded.clone().unwrap_err());
        assert!(
            from_client.to_string().contains(status.message()),
            "a client heard {from_client}, a forwarded command {}",
            status.message()
        );
    }
    let written = client.get("forwarded", None).await.unwrap();
    assert_eq!(written.kvs()[0].value(), b"vvv");
    for refused in ["huge", "k0", "twice"] {
        assert_eq!(
            client.get(refused, None).await.unwrap().count(),
            0,
            "{refused} was written"
        );
    }
}

/// Adds a new replica as a learner, starts it, and promotes it once it has caught
/// up. Returns its index and member ID.
async fn add_voter(cluster: &mut Cluster, client: &mut etcd_client::Client) -> (usize, u64) {
    let new = cluster.add_replica();
    let peer_url = cluster.replicas[new].peer_url();
    let id = eventually("the learner to be added", || {
        let mut client = client.clone();
        let peer_url = peer_url.clone();
        async move {
            // Added already by an attempt whose answer was lost?
            let members = client.member_list().await.ok()?;
            if let Some(member) = members.members().iter().find(|m| m.peer_urls().contains(&peer_url)) {
                return Some(member.id());
            }
            let learner = etcd_client::MemberAddOptions::new().with_is_learner();
            let added = client.member_add([peer_url], Some(learner)).await.ok()?;
            Some(added.member()?.id())
        }
    })
    .await;
    cluster.start_replica(new).unwrap();
    eventually("the learner to catch up and be promoted", || {
        let mut client = client.clone();
        async move { client.member_promote(id).await.ok() }
    })
    .await;
    (new, id)
}

/// A member that was down while the membership changed under it has to catch up
/// from a leader it has never heard of: that leader's membership is newer than its
/// own, so it is served (a removed member's never is).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_missed_membership_changes_catches_up_from_a_leader_it_does_not_know() {
    // Without the strict check: the changes below happen while a member is down.
    let mut cluster = start(3, &["--strict-reconfig-check=false"]).await;
    let mut client = cluster.client_of(0).await;
    let members = client.member_list().await.unwrap();
    let id_of = |cluster: &Cluster, index: usize| common::member_id_of(cluster, &members, index);
    let (first, second) = (id_of(&cluster, 0), id_of(&cluster, 1));
    cluster.kill(2);
    cluster.wait_for_leader().await.unwrap();

    let (d, _) = add_voter(&mut cluster, &mut client).await;
    let (e, _) = add_voter(&mut cluster, &mut client).await;
    let newcomers = common::connect(&[cluster.replicas[d].endpoint(), cluster.replicas[e].endpoint()]).await;
    for removed in [first, second] {
        eventually("the removal to go through", || {
            let mut client = newcomers.clone();
            async move {
                // Removed already by an attempt whose answer was lost?
                let members = client.member_list().await.ok()?;
                if members.members().iter().all(|m| m.id() != removed) {
                    return Some(());
                }
                client.member_remove(removed).await.ok().map(|_| ())
            }
        })
        .await;
    }
    // The members are now the one that is down and two it has never heard of.
    eventually("a write through the new members", || {
        let mut client = newcomers.clone();
        async move { client.put("written-while-down", "x", None).await.ok() }
    })
    .await;

    cluster.start_replica(2).unwrap();
    let returning = cluster.client_of(2).await;
    eventually("the returning member to catch up", || {
        let mut client = returning.clone();
        async move {
            let got = client
                .get(
                    "written-while-down",
                    Some(etcd_client::GetOptions::new().with_serializable()),
                )
                .await
                .ok()?;
            (got.count() == 1).then_some(())
        }
    })
    .await;
    // And it takes part: a write through it commits.
    eventually("a write through the returning member", || {
        let mut client = returning.clone();
        async move { client.put("after-catching-up", "y", None).await.ok() }
    })
    .await;
}
