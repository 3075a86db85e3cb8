//! A grpc probe: one `grpc.health.v1.Health/Check` call over HTTP/2 without TLS (as
//! the kubelet's), within `timeoutSeconds`; SERVING succeeds. The two messages are
//! small enough to write and read by hand (protobuf field 1 each: the service name, a
//! string; the status, an enum), so no code generation is needed.
//!
//! Failures read as the kubelet's: `service unhealthy (responded with "NOT_SERVING")`,
//! `error: this server does not implement the grpc health protocol
//! (grpc.health.v1.Health): …`, `timeout: failed to connect service "ip:port" within 1s: …`.

use std::net::IpAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::Outcome;
use super::tcp::{io_words, join_host_port};

const PATH: &str = "/grpc.health.v1.Health/Check";

pub(super) async fn check(ip: IpAddr, port: u16, service: &str, timeout: Duration) -> Outcome {
    let address = join_host_port(&ip.to_string(), port);
    let deadline = tokio::time::Instant::now() + timeout;
    let connected = tokio::time::timeout_at(deadline, TcpStream::connect((ip, port))).await;
    let tcp = match connected {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            return Outcome::failure(format!(
                "timeout: failed to connect service {address:?} within {timeout:?}: connection error: desc = \"transport: Error while dialing: dial tcp {address}: connect: {}\"",
                io_words(&e)
            ));
        }
        Err(_) => {
            return Outcome::failure(format!(
                "timeout: failed to connect service {address:?} within {timeout:?}: context deadline exceeded"
            ));
        }
    };
    let _ = tcp.set_nodelay(true);
    match tokio::time::timeout_at(deadline, call(tcp, &address, service)).await {
        Ok(Ok(status)) => match status {
            1 => Outcome::success("service healthy"),
            other => Outcome::failure(format!("service unhealthy (responded with {:?})", status_name(other))),
        },
        Ok(Err(e)) => Outcome::failure(e),
        Err(_) => Outcome::failure(format!("timeout: health rpc did not complete within {timeout:?}")),
    }
}

/// The names of `grpc.health.v1.HealthCheckResponse.ServingStatus`.
fn status_name(status: u64) -> &'static str {
    match status {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}

/// The Check call; the response's status, or why there is none.
async fn call(tcp: TcpStream, authority: &str, service: &str) -> Result<u64, String> {
    let (mut sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .map_err(|e| format!("error: health rpc probe failed: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = hyper::Request::post(format!("http://{authority}{PATH}"))
        .header(hyper::header::CONTENT_TYPE, "application/grpc")
        .header(hyper::header::TE, "trailers")
        .header(hyper::header::USER_AGENT, super::USER_AGENT)
        .body(Full::new(frame(&request_message(service))))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("error: health rpc probe failed: {e}"))?;
    if !response.status().is_success() {
        return Err(format!(
            "error: health rpc probe failed: rpc error: code = Unknown desc = HTTP status {}",
            response.status()
        ));
    }
    let headers = response.headers().clone();
    let collected = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("error: health rpc probe failed: {e}"))?;
    // A call that fails at once answers with headers only ("Trailers-Only").
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let field = |name: &str| {
        trailers
            .get(name)
            .or_else(|| headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let code: u32 = field("grpc-status").and_then(|c| c.parse().ok()).unwrap_or(2);
    if code != 0 {
        let message = field("grpc-message").unwrap_or_default();
        let rpc_error = format!("rpc error: code = {} desc = {message}", code_name(code));
        return Err(match code {
            12 => format!(
                "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {rpc_error}"
            ),
            4 => "timeout: health rpc did not complete".to_string(),
            _ => format!("error: health rpc probe failed: {rpc_error}"),
        });
    }
    let body = collected.to_bytes();
    let message = unframe(&body).ok_or("error: health rpc probe failed: a malformed response")?;
    Ok(response_status(message))
}

/// gRPC's status code names, as grpc-go writes them.
fn code_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES.get(code as usize).copied().unwrap_or("Unknown")
}

/// `HealthCheckRequest { string service = 1; }`; an empty service is left out.
fn request_message(service: &str) -> Vec<u8> {
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a);
        put_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    message
}

/// `HealthCheckResponse { ServingStatus status = 1; }`: the status, 0 (UNKNOWN) when
/// absent; other fields are skipped.
fn response_status(mut message: &[u8]) -> u64 {
    let mut status = 0;
    while let Some(key) = take_varint(&mut message) {
        let value = match key & 7 {
            0 => take_varint(&mut message),
            2 => take_varint(&mut message).map(|len| {
                let len = (len as usize).min(message.len());
                message = &message[len..];
                0
            }),
            1 => Some(skip(&mut message, 8)),
            5 => Some(skip(&mut message, 4)),
            _ => None,
        };
        let Some(value) = value else { break };
        if key == 0x08 {
            status = value;
        }
    }
    status
}

fn skip(message: &mut &[u8], n: usize) -> u64 {
    *message = &message[n.min(message.len())..];
    0
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// A gRPC message on the wire: not compressed, its length, itself.
fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

/// The first message of a response body.
fn unframe(body: &[u8]) -> Option<&[u8]> {
    let (&compressed, rest) = body.split_first()?;
    if compressed != 0 || rest.len() < 4 {
        return None;
    }
    let len = u32::from_be_bytes(rest[..4].try_into().ok()?) as usize;
    rest.get(4..4 + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_the_wire_format() {
        assert_eq!(request_message(""), Vec::<u8>::new());
        assert_eq!(request_message("web"), b"\x0a\x03web");
        let framed = frame(b"\x08\x02");
        assert_eq!(&framed[..], b"\x00\x00\x00\x00\x02\x08\x02");
        assert_eq!(response_status(unframe(&framed).unwrap()), 2);
        // An unknown field before the status is skipped.
        assert_eq!(response_status(b"\x12\x02hi\x08\x01"), 1);
        assert_eq!(response_status(b""), 0);
    }
}
