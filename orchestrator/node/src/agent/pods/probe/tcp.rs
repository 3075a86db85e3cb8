//! A tcpSocket probe: a TCP connection to the port opens within `timeoutSeconds`
//! (and is closed at once); nothing is sent.

use std::time::Duration;

use tokio::net::TcpStream;

use super::Outcome;

pub(super) async fn connect(host: &str, port: u16, timeout: Duration) -> Outcome {
    let address = join_host_port(host, port);
    match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(_stream)) => Outcome::success(""),
        Ok(Err(e)) => Outcome::failure(format!("dial tcp {address}: connect: {}", io_words(&e))),
        Err(_) => Outcome::failure(format!("dial tcp {address}: i/o timeout")),
    }
}

/// `host:port`, with an IPv6 address in brackets.
pub(super) fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// An I/O error in the words Go's (and so the kubelet's) messages use: the system's
/// description, lower-cased, without Rust's "(os error N)".
pub(super) fn io_words(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
