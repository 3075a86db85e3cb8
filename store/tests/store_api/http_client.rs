//! A plain HTTP/1.1 client over a TCP stream, for the HTTP side of the client port:
//! what curl does, without depending on curl.

#![allow(dead_code)]

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a read may take before the test calls the server hung.
const HANG: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

fn host_port(endpoint: &str) -> &str {
    endpoint.trim_start_matches("http://").trim_end_matches('/')
}

pub async fn get(endpoint: &str, path: &str) -> Answer {
    request(endpoint, "GET", path, "").await
}

pub async fn post(endpoint: &str, path: &str, body: &str) -> Answer {
    request(endpoint, "POST", path, body).await
}

/// A POST whose answer must be 200 with JSON.
pub async fn call(endpoint: &str, path: &str, body: Value) -> Value {
    let answer = post(endpoint, path, &body.to_string()).await;
    assert_eq!(answer.status, 200, "{path} {body}: {answer:?}");
    answer.json()
}

pub async fn request(endpoint: &str, method: &str, path: &str, body: &str) -> Answer {
    request_with(endpoint, method, path, "", body).await
}

/// A POST with more header lines (`Name: value\r\n` each).
pub async fn post_with(endpoint: &str, path: &str, headers: &str, body: &str) -> Answer {
    request_with(endpoint, "POST", path, headers, body).await
}

async fn request_with(endpoint: &str, method: &str, path: &str, headers: &str, body: &str) -> Answer {
    let mut stream = TcpStream::connect(host_port(endpoint)).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        host_port(endpoint),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(HANG, stream.read_to_end(&mut raw))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head: {raw:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"));
    assert!(head.starts_with("HTTP/1.1 "), "{head}");
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    Answer {
        status,
        head: head.to_string(),
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// A streaming call (watch): the request stays open and its answer is read a line
/// at a time.
pub struct Stream {
    stream: TcpStream,
    raw: Vec<u8>,
}

impl Stream {
    pub async fn open(endpoint: &str, path: &str, body: &str) -> Stream {
        let mut stream = TcpStream::connect(host_port(endpoint)).await.unwrap();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n{body}",
            host_port(endpoint),
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut this = Stream {
            stream,
            raw: Vec::new(),
        };
        let head = this.read_until(b"\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase().contains("transfer-encoding: chunked"),
            "{head}"
        );
        this
    }

    async fn read_until(&mut self, end: &[u8]) -> String {
        loop {
            if let Some(at) = self.raw.windows(end.len()).position(|w| w == end) {
                let taken: Vec<u8> = self.raw.drain(..at + end.len()).collect();
                return String::from_utf8(taken).unwrap();
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(HANG, self.stream.read(&mut chunk))
                .await
                .expect("the stream sends its next line")
                .unwrap();
            assert!(
                n > 0,
                "the stream ended; unread: {:?}",
                String::from_utf8_lossy(&self.raw)
            );
            self.raw.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next JSON line of the answer (one chunk each).
    pub async fn next(&mut self) -> Value {
        let size = self.read_until(b"\r\n").await;
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        assert!(size > 0, "the stream ended");
        let line = self.read_until(b"\n\r\n").await;
        assert_eq!(line.len(), size + 2, "one line per chunk: {line:?}");
        serde_json::from_str(line.trim_end()).unwrap()
    }
}

pub fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

pub fn unb64(v: &Value) -> String {
    String::from_utf8(
        STANDARD
            .decode(v.as_str().unwrap_or_else(|| panic!("not base64: {v}")))
            .unwrap(),
    )
    .unwrap()
}

/// An int64 or uint64 as the gateway writes it: a string of digits.
pub fn int(v: &Value) -> i128 {
    v.as_str()
        .unwrap_or_else(|| panic!("int64 as a string, got {v}"))
        .parse()
        .unwrap()
}
