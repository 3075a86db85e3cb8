use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};

use super::*;

/// Who the tests' clients are (member `0xa` of cluster `0xc1`).
fn me() -> Me {
    Me::new(0xc1, 0xa)
}

const ME: PeerIdentity = PeerIdentity {
    cluster_id: 0xc1,
    member_id: 0xa,
    membership_index: 0,
};

/// Admits members `0xa` and `0xb` of cluster `0xc1`, with votes of up to 64 bytes.
struct Members;

impl Admission for Members {
    fn admit(&self, sender: PeerIdentity) -> Result<(), String> {
        let local = crate::peer_identity::Membership {
            cluster_id: ME.cluster_id,
            members: std::collections::BTreeSet::from([0xa, 0xb]),
            index: 0,
        };
        crate::peer_identity::admit(&local, sender).map_err(|e| e.to_string())
    }

    fn max_message_bytes(&self, kind: Kind) -> usize {
        match kind {
            Kind::Vote => 64,
            _ => MAX_FRAME,
        }
    }
}

/// A server that answers each request with its bytes reversed, refuses votes,
/// and counts its connections.
async fn echo_server() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let task = tokio::spawn({
        let accepted = accepted.clone();
        async move {
            // One connection at a time, served here: aborting the task ends it.
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let _ = serve(stream, Members, |kind, mut body| async move {
                    match kind {
                        Kind::AppendEntries | Kind::ForwardBatch | Kind::HashKv => {
                            body.reverse();
                            Ok(body)
                        }
                        Kind::Vote => Err("votes are not taken here".to_string()),
                    }
                })
                .await;
            }
        }
    });
    (url, accepted, task)
}

const A_WHILE: Duration = Duration::from_secs(10);

#[test]
fn the_forward_kind_of_earlier_versions_is_unknown() {
    assert_eq!(Kind::from_byte(Kind::ForwardBatch as u8), Some(Kind::ForwardBatch));
    assert_eq!(Kind::from_byte(3), None, "an earlier version's forwarded batch");
    assert_eq!(Kind::from_byte(5), Some(Kind::HashKv));
}

#[tokio::test]
async fn requests_are_answered_in_turn_on_one_kept_connection() {
    let (url, accepted, _server) = echo_server().await;
    let pools = Pools::new(me());
    for i in 0..5u8 {
        let answer = pools
            .call(&url, Kind::AppendEntries, &[i, 1, 2], A_WHILE)
            .await
            .unwrap();
        assert_eq!(answer, vec![2, 1, i]);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    let big = vec![7u8; 3 << 20];
    assert_eq!(pools.call(&url, Kind::AppendEntries, &big, A_WHILE).await.unwrap(), big);
}

#[tokio::test]
async fn a_refusal_carries_the_peers_reason_and_keeps_the_connection() {
    let (url, accepted, _server) = echo_server().await;
    let pools = Pools::new(me());
    let error = pools.call(&url, Kind::Vote, b"x", A_WHILE).await.unwrap_err();
    assert!(
        matches!(&error, CallError::Refused(why) if why == "votes are not taken here"),
        "{error}"
    );
    pools.call(&url, Kind::AppendEntries, b"ab", A_WHILE).await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_peer_that_restarted_is_redialled_and_one_that_is_down_is_unreachable() {
    let (url, accepted, server) = echo_server().await;
    let pools = Pools::new(me());
    pools.call(&url, Kind::AppendEntries, b"ab", A_WHILE).await.unwrap();
    // The kept connection dies with the server; a new server on the same port.
    server.abort();
    let _ = server.await;
    let addr = url.trim_start_matches("http://").to_string();
    let listener = TcpListener::bind(&addr).await.unwrap();
    let second = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        serve(stream, Members, |_, body| async move { Ok(body) }).await.unwrap();
    });
    assert_eq!(
        pools.call(&url, Kind::AppendEntries, b"cd", A_WHILE).await.unwrap(),
        b"cd".to_vec()
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the first server saw one connection"
    );
    second.abort();
    let _ = second.await;
    let error = pools
        .call(&url, Kind::AppendEntries, b"ef", Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Unreachable(_)), "{error}");
}

#[tokio::test]
async fn a_write_goes_once_on_a_connection_the_peer_still_holds() {
    let (url, accepted, server) = echo_server().await;
    let pools = Pools::new(me());
    for i in 0..3u8 {
        let answer = pools
            .call_once(&url, Kind::ForwardBatch, &[i, 9], A_WHILE)
            .await
            .unwrap();
        assert_eq!(answer, vec![9, i]);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // The peer closed the kept connection: a new one is dialled before sending.
    server.abort();
    let _ = server.await;
    let listener = TcpListener::bind(url.trim_start_matches("http://")).await.unwrap();
    let second = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        serve(stream, Members, |_, body| async move { Ok(body) }).await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        pools.call_once(&url, Kind::ForwardBatch, b"ab", A_WHILE).await.unwrap(),
        b"ab".to_vec()
    );
    second.abort();
}

#[tokio::test]
async fn a_write_whose_answer_is_lost_is_not_sent_again() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(AtomicUsize::new(0));
    tokio::spawn({
        let received = received.clone();
        async move {
            // Reads each request and closes the connection without an answer.
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut greeting = [0u8; MAGIC.len() + IDENTITY_BYTES];
                if stream.read_exact(&mut greeting).await.is_ok()
                    && let Ok(Some((len, _))) = read_header(&mut stream).await
                    && read_body(&mut stream, len).await.is_ok()
                {
                    received.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });
    let pools = Pools::new(me());
    let error = pools
        .call_once(&url, Kind::ForwardBatch, b"put", A_WHILE)
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Lost(_)), "{error}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(received.load(Ordering::SeqCst), 1, "the write went more than once");

    // With nobody listening, nothing went out.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nobody = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let error = pools
        .call_once(&nobody, Kind::ForwardBatch, b"put", A_WHILE)
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Unreachable(_)), "{error}");
}

#[tokio::test]
async fn a_connection_without_the_greeting_or_with_a_bad_frame_is_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut outcomes = Vec::new();
        for _ in 0..2 {
            let (stream, _) = listener.accept().await.unwrap();
            outcomes.push(serve(stream, Members, |_, body| async move { Ok(body) }).await);
        }
        outcomes
    });
    let mut stranger = TcpStream::connect(addr).await.unwrap();
    stranger.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    let mut garbled = TcpStream::connect(addr).await.unwrap();
    garbled.write_all(MAGIC).await.unwrap();
    garbled.write_all(&ME.to_bytes()).await.unwrap();
    garbled.write_all(&u32::MAX.to_le_bytes()).await.unwrap();
    garbled.write_all(&[Kind::AppendEntries as u8]).await.unwrap();
    let outcomes = tokio::time::timeout(A_WHILE, server).await.unwrap().unwrap();
    for outcome in outcomes {
        assert_eq!(outcome.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}

/// A connection to `addr` that has sent `greeting` and then `bytes`, and the
/// server's answer to it.
async fn raw_answer(addr: &str, greeting: &[u8], bytes: &[u8]) -> (u8, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(greeting).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let (status, body) = tokio::time::timeout(A_WHILE, read_answer(&mut stream))
        .await
        .unwrap()
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn strangers_are_refused_with_the_mismatch_named() {
    let (url, _, _server) = echo_server().await;
    let other_cluster = Pools::new(Me::new(0xc2, 0xa));
    let error = other_cluster
        .call(&url, Kind::AppendEntries, b"ab", A_WHILE)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CallError::Refused(why) if why.contains("cluster ID mismatch")),
        "{error}"
    );
    let removed_member = Pools::new(Me::new(0xc1, 0xd));
    let error = removed_member
        .call_once(&url, Kind::ForwardBatch, b"ab", A_WHILE)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CallError::Refused(why) if why.contains("member ID mismatch")),
        "{error}"
    );
    // A member is still served.
    let member = Pools::new(Me::new(0xc1, 0xb));
    assert_eq!(
        member.call(&url, Kind::AppendEntries, b"ab", A_WHILE).await.unwrap(),
        b"ba".to_vec()
    );
}

#[tokio::test]
async fn a_message_over_its_kinds_limit_is_refused_before_its_body_is_read() {
    let (url, _, _server) = echo_server().await;
    let addr = url.trim_start_matches("http://").to_string();
    let mut greeting = MAGIC.to_vec();
    greeting.extend_from_slice(&ME.to_bytes());
    // A vote that says it has 150 MB and sends 65 bytes of them.
    let mut header = 150_000_001u32.to_le_bytes().to_vec();
    header.push(Kind::Vote as u8);
    header.extend_from_slice(&[0u8; 65]);
    let (status, why) = raw_answer(&addr, &greeting, &header).await;
    assert_eq!(status, 1);
    assert!(
        why.contains("Vote message of 150000000 bytes is larger than this replica's limit of 64"),
        "{why}"
    );
    // An unknown kind is refused before its body too.
    let mut unknown = 10u32.to_le_bytes().to_vec();
    unknown.push(3);
    let (status, why) = raw_answer(&addr, &greeting, &unknown).await;
    assert_eq!((status, why.as_str()), (1, "unknown request kind 3"));
}

#[tokio::test]
async fn a_replica_of_the_earlier_version_is_told_why_it_is_refused() {
    let (url, _, _server) = echo_server().await;
    let addr = url.trim_start_matches("http://").to_string();
    let request = frame(Kind::AppendEntries as u8, b"ab").unwrap();
    let (status, why) = raw_answer(&addr, MAGIC_V1, &request).await;
    assert_eq!(status, 1);
    assert!(why.contains("berth-raft/1") && why.contains("same version"), "{why}");
}
