//! The traffic client and the echo server the traffic tests put in their pods' images,
//! against each other on loopback: every request is recorded, a server that goes away
//! shows up as failures from that moment only, and the readiness endpoint follows its
//! file.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use berth_testkit::traffic::{Connection, Traffic};

struct Echo {
    child: Child,
}

impl Echo {
    fn start(port: u16, unready_file: &std::path::Path) -> Echo {
        let child = Command::new(env!("CARGO_BIN_EXE_berth-echo"))
            .args(["--port", &port.to_string(), "--version", "v7", "--unready-file"])
            .arg(unready_file)
            .stderr(Stdio::null())
            .spawn()
            .expect("starting berth-echo");
        berth_testkit::eventually_blocking("berth-echo to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        });
        Echo { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.kill();
    }
}

fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn every_request_is_recorded_and_a_server_that_goes_away_fails_only_from_then() {
    let dir = tempfile::tempdir().unwrap();
    let unready = dir.path().join("unready");
    let port = berth_testkit::free_port();
    let mut echo = Echo::start(port, &unready);
    let target = SocketAddr::from(([127, 0, 0, 1], port));

    let traffic = Traffic::start(target, "/", 200, Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(1500));
    let history = traffic.stop();
    assert!(history.failures().is_empty(), "{}", history.summary(10));
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let answers = history.answers();
    assert_eq!(answers.keys().collect::<Vec<_>>(), [&format!("v7 {}", hostname.trim())]);
    for kind in [Connection::New, Connection::KeptAlive] {
        let sent = history.outcomes.iter().filter(|o| o.connection == kind).count();
        assert!(sent > 50, "{kind:?}: {}", history.summary(0));
    }
    assert!(history.latency(0.99).is_some());

    // The server dies mid-way: nothing fails before, everything after.
    let traffic = Traffic::start(target, "/", 200, Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(500));
    let killed_at = traffic.elapsed();
    echo.kill();
    std::thread::sleep(Duration::from_millis(500));
    let history = traffic.stop();
    let before = history.between(Duration::ZERO, killed_at.saturating_sub(Duration::from_millis(50)));
    assert!(before.failures().is_empty(), "{}", before.summary(10));
    let after = history.between(killed_at + Duration::from_millis(100), Duration::MAX);
    assert!(!after.outcomes.is_empty());
    assert_eq!(after.failures().len(), after.outcomes.len(), "{}", after.summary(3));

    // Readiness follows the file.
    let _echo = Echo::start(port, &unready);
    assert!(get(port, "/healthz").starts_with("HTTP/1.1 200"));
    std::fs::write(&unready, "").unwrap();
    assert!(get(port, "/healthz").starts_with("HTTP/1.1 503"));
    assert!(get(port, "/").starts_with("HTTP/1.1 200"), "only /healthz says unready");
}
