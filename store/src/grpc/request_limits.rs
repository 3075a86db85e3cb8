//! What etcd's gRPC server checks of a KV request before the service decodes it,
//! answered as etcd answers:
//!
//! - the message's size: one over `--max-request-bytes` plus gRPC's overhead is
//!   refused with RESOURCE_EXHAUSTED and grpc-go's "grpc: received message larger
//!   than max (N vs. M)" (tonic's own check says OUT_OF_RANGE, in its own words);
//! - a transaction's nesting: decoding, applying and answering a transaction
//!   recurse once a level, so a transaction deeper than
//!   [`MAX_TXN_DEPTH`](super::txn_depth::MAX_TXN_DEPTH) is refused by name before
//!   it is decoded (see `txn_depth`).
//!
//! ```text
//!  KV call ──► read its one message ──► length ≤ max? ──► Txn: depth ≤ max? ──► KvServer
//!                                        │ no                │ no                (decodes)
//!                                        ▼                   ▼
//!                               RESOURCE_EXHAUSTED     INVALID_ARGUMENT
//! ```
//!
//! A compressed message (berth enables no compression) goes on unread: the service
//! refuses it.

use std::convert::Infallible;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::codegen::{BoxFuture, Context, Poll, Service};
use tonic::server::NamedService;

use super::status;
use super::txn_depth::{MAX_TXN_DEPTH, txn_depth};

const TXN_PATH: &str = "/etcdserverpb.KV/Txn";
/// A gRPC message's prefix: a compression flag and the length (u32, big-endian).
const PREFIX_BYTES: usize = 5;

/// The KV service behind etcd's checks of its requests.
#[derive(Clone)]
pub struct RequestLimits<S> {
    inner: S,
    max_message_bytes: usize,
}

impl<S> RequestLimits<S> {
    pub fn new(inner: S, max_message_bytes: usize) -> Self {
        Self {
            inner,
            max_message_bytes,
        }
    }
}

impl<S: NamedService> NamedService for RequestLimits<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<Request<Body>> for RequestLimits<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this call (tower's convention).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let max_message_bytes = self.max_message_bytes;
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let is_txn = parts.uri.path() == TXN_PATH;
            match read_message(body, max_message_bytes, is_txn).await {
                Ok(bytes) => {
                    let request = Request::from_parts(parts, Body::new(Full::new(bytes)));
                    inner.call(request).await
                }
                Err(refused) => Ok(refused.into_http()),
            }
        })
    }
}

/// Reads a unary call's body (its one message) and checks it.
async fn read_message(mut body: Body, max_message_bytes: usize, is_txn: bool) -> Result<Bytes, tonic::Status> {
    let mut buffer = BytesMut::new();
    let mut declared: Option<(bool, usize)> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        buffer.extend_from_slice(&data);
        if declared.is_none() && buffer.len() >= PREFIX_BYTES {
            let is_compressed = buffer[0] != 0;
            let length = u32::from_be_bytes(buffer[1..PREFIX_BYTES].try_into().expect("four bytes")) as usize;
            if length > max_message_bytes {
                return Err(status::message_too_large(length, max_message_bytes));
            }
            declared = Some((is_compressed, length));
        }
        // A unary call sends one message; more is the service's to refuse, but no
        // more than another message's worth is read here.
        if buffer.len() > 2 * (PREFIX_BYTES + max_message_bytes) {
            return Err(status::message_too_large(
                buffer.len() - PREFIX_BYTES,
                max_message_bytes,
            ));
        }
    }
    if let Some((false, length)) = declared
        && is_txn
        && let Some(message) = buffer.get(PREFIX_BYTES..PREFIX_BYTES + length)
    {
        let depth = txn_depth(message, MAX_TXN_DEPTH);
        if depth > MAX_TXN_DEPTH {
            return Err(status::txn_too_deep(MAX_TXN_DEPTH));
        }
    }
    Ok(buffer.freeze())
}
