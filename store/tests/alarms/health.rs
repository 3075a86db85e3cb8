//! What the tests read besides the etcd API: `/health` on a replica's metrics URL, and
//! the alarms etcdctl lists.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use berth_testkit::Cluster;

use crate::common;

/// Gives every replica of `cluster` (not started yet) a metrics URL; returns the ports.
pub fn with_metrics_urls(cluster: &mut Cluster) -> Vec<u16> {
    cluster
        .replicas
        .iter_mut()
        .map(|replica| {
            let port = berth_testkit::free_port();
            replica.args.push("--listen-metrics-urls".to_string());
            replica.args.push(format!("http://127.0.0.1:{port}"));
            port
        })
        .collect()
}

/// `GET /health` on a metrics port: the status code and the body.
pub fn health(port: u16) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting to the metrics URL");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("reading /health");
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (code, body)
}

/// `etcdctl alarm list` on `endpoint`: its lines.
pub fn alarm_list(endpoint: &str) -> Vec<String> {
    common::stdout(&common::etcdctl(&[endpoint.to_string()], &["alarm", "list"]))
        .lines()
        .map(|line| line.trim().to_string())
        .filter(|line| !line.is_empty())
        .collect()
}

/// The line etcdctl prints for one alarm.
pub fn alarm_line(member_id: u64, alarm: &str) -> String {
    format!("memberID:{member_id} alarm:{alarm}")
}

/// `etcdctl endpoint status` of `endpoint`, as JSON text.
pub fn endpoint_status(endpoint: &str) -> String {
    common::stdout(&common::etcdctl(
        &[endpoint.to_string()],
        &["endpoint", "status", "-w", "json"],
    ))
}

/// This replica's member ID, from its own Status.
pub async fn member_id(endpoint: &str) -> u64 {
    berth_testkit::status(endpoint, Duration::from_secs(10))
        .await
        .expect("Status")
        .member_id
}
