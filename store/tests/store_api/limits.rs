//! What the client port refuses before decoding, with etcd's codes: a message over
//! the size limit, a transaction nested deeper than berth decodes; and the deep
//! transactions etcd accepts, accepted.

use berth_proto::Message;
use berth_proto::etcdserverpb::{PutRequest, RequestOp, TxnRequest, request_op};
use bytes::{Buf, BufMut};
use etcd_client::{Txn, TxnOp};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

use super::common::start;

/// etcd's default --max-request-bytes (1.5 MiB) plus gRPC's overhead (512 KiB).
const MAX_MESSAGE: usize = 2 * 1024 * 1024;

/// Regression: a 3 MB put got OUT_OF_RANGE with tonic's words, where etcd answers
/// RESOURCE_EXHAUSTED with grpc-go's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_refused_as_etcd_refuses_it() {
    let cluster = start(1, &[]).await;
    let mut client = cluster.client_of(0).await;
    let value = vec![b'x'; 3_000_000];
    let length = PutRequest {
        key: b"big".to_vec(),
        value: value.clone(),
        ..Default::default()
    }
    .encoded_len();
    let err = client.put("big", value, None).await.unwrap_err();
    let etcd_client::Error::GRpcStatus(status) = err else {
        panic!("want a status, got {err:?}")
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(
        status.message(),
        format!("grpc: received message larger than max ({length} vs. {MAX_MESSAGE})")
    );
    // Within the message limit but over --max-request-bytes: etcd's own check.
    let err = client.put("big", vec![b'x'; 1_800_000], None).await.unwrap_err();
    assert!(err.to_string().contains("etcdserver: request is too large"), "{err}");
    // Nothing was written, and the port still serves.
    assert_eq!(client.get("big", None).await.unwrap().count(), 0);
}

/// A transaction `depth` levels deep whose innermost level puts `key`.
fn nested(depth: usize, key: &str) -> Txn {
    let mut txn = Txn::new().and_then([TxnOp::put(key, "deep", None)]);
    for _ in 1..depth {
        txn = Txn::new().and_then([TxnOp::txn(txn)]);
    }
    txn
}

/// Regression: a transaction nested about 60 deep was refused as undecodable
/// (prost's limit of 100 nested messages), where etcd accepts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_transactions_are_accepted_and_deeper_ones_refused_by_name() {
    let cluster = start(3, &[]).await;
    let leader = cluster.agreed_leader().await.unwrap();
    // Through a follower: the transaction also crosses to the leader and back.
    let mut client = cluster.client_of((leader + 1) % 3).await;
    for (depth, key) in [(60, "deep/60"), (256, "deep/256")] {
        let response = client.txn(nested(depth, key)).await.unwrap();
        assert!(response.succeeded(), "{depth} levels");
        let got = client.get(key, None).await.unwrap();
        assert_eq!(got.kvs()[0].value(), b"deep", "{depth} levels");
    }

    // One level deeper than berth decodes, and one that would overflow any stack
    // (built as bytes: as structs it would overflow this test's too).
    for depth in [257, 100_000] {
        let status = raw_txn(&cluster.replicas[0].endpoint(), nested_bytes(depth))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{depth} levels: {status:?}");
        assert_eq!(
            status.message(),
            "txn request is nested more than 256 levels deep; berth accepts at most 256",
            "{depth} levels"
        );
    }
    // The replica that refused them still serves.
    let mut refuser = cluster.client_of(0).await;
    assert_eq!(refuser.get("deep/60", None).await.unwrap().count(), 1);
    assert_eq!(refuser.get("deeper", None).await.unwrap().count(), 0);
}

fn nested_bytes(depth: usize) -> Vec<u8> {
    let mut txn = TxnRequest {
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: b"deeper".to_vec(),
                ..Default::default()
            })),
        }],
        ..Default::default()
    }
    .encode_to_vec();
    for _ in 1..depth {
        // RequestOp { request_txn (4): txn }, in TxnRequest { success (2): op }.
        let mut op = Vec::with_capacity(txn.len() + 6);
        op.put_u8(4 << 3 | 2);
        put_varint(&mut op, txn.len());
        op.extend_from_slice(&txn);
        txn = Vec::with_capacity(op.len() + 6);
        txn.put_u8(2 << 3 | 2);
        put_varint(&mut txn, op.len());
        txn.extend_from_slice(&op);
    }
    txn
}

fn put_varint(out: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// Sends `message` as a KV.Txn call, bytes as they are.
async fn raw_txn(endpoint: &str, message: Vec<u8>) -> Result<Vec<u8>, Status> {
    let channel = tonic::transport::Channel::from_shared(endpoint.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/etcdserverpb.KV/Txn");
    grpc.unary(tonic::Request::new(message), path, RawCodec)
        .await
        .map(|r| r.into_inner())
}

/// Messages as bytes, neither encoded nor decoded.
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// Regression: a control plane that fired a few thousand calls at once on its one
/// connection to a loaded replica lost all of them, and every watch on it: the HTTP/2
/// server closed the connection (GOAWAY ENHANCE_YOUR_CALM, "too_many_data_frames")
/// once the requests it held unread outgrew its allowance for small frames. The
/// client's calls now wait their turn past `--max-concurrent-streams` instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_calls_at_once_on_one_connection_all_succeed() {
    let cluster = start(1, &[]).await;
    let client = cluster.client_of(0).await;
    let mut watcher = client.clone();
    let mut watch = watcher
        .watch("burst/", Some(etcd_client::WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    assert!(watch.message().await.unwrap().unwrap().created());
    const CALLS: usize = 6000;
    let puts = (0..CALLS).map(|i| {
        let mut client = client.clone();
        async move { client.put(format!("burst/{i}"), "v", None).await }
    });
    let results = futures::future::join_all(puts).await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {CALLS} calls failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    let mut client = client;
    let listed = client
        .get(
            "burst/",
            Some(etcd_client::GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .unwrap();
    assert_eq!(listed.count(), CALLS as i64);
    // The watch on the same connection saw every put.
    let mut seen = 0;
    while seen < CALLS {
        let response = tokio::time::timeout(std::time::Duration::from_secs(30), watch.message())
            .await
            .expect("the watch hangs")
            .expect("the watch failed")
            .expect("the watch ended");
        seen += response.events().len();
    }
    assert_eq!(seen, CALLS);
}
