//! Building the HTTP side's responses: whole bodies, streamed lines, and errors in
//! the gateway's shape (`{"error":"...","message":"...","code":N}`).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use super::json::Out;

pub type Body = BoxBody<Bytes, Infallible>;
pub type HttpResponse = Response<Body>;

pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain; charset=utf-8";

pub fn whole(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub fn json(status: StatusCode, body: String) -> HttpResponse {
    whole(status, JSON, body)
}

/// A JSON body sent line by line as `lines` yields them (watch, keep-alive); it
/// ends when the sender is dropped.
pub fn json_lines(lines: mpsc::Receiver<Bytes>) -> HttpResponse {
    let frames = ReceiverStream::new(lines).map(|line| Ok::<_, Infallible>(Frame::data(line)));
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(frames)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

pub fn not_found() -> HttpResponse {
    whole(StatusCode::NOT_FOUND, TEXT, "Not Found\n")
}

pub fn method_not_allowed() -> HttpResponse {
    whole(StatusCode::METHOD_NOT_ALLOWED, TEXT, "Method Not Allowed\n")
}

/// The gateway's error body for a gRPC status.
pub fn error_body(code: Code, message: &str) -> String {
    Out::Object(vec![
        ("error", Out::string(message)),
        ("message", Out::string(message)),
        ("code", Out::Scalar((code as i32).into())),
    ])
    .render()
}

/// A failed call, with the HTTP status etcd's gateway gives the gRPC code.
pub fn error(code: Code, message: &str) -> HttpResponse {
    json(http_status(code), error_body(code, message))
}

pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        // etcd's gateway answers 412 here (`lease already exists`, `bad leader transferee`).
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_the_gateways() {
        assert_eq!(
            error_body(Code::InvalidArgument, "etcdserver: key is not provided"),
            r#"{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}"#
        );
        assert_eq!(http_status(Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(http_status(Code::FailedPrecondition), StatusCode::PRECONDITION_FAILED);
        assert_eq!(http_status(Code::OutOfRange), StatusCode::BAD_REQUEST);
    }
}
