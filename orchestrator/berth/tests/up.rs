//! `berth up`, the README's "run" command: it starts a local cluster, the example
//! manifest runs on it, and Ctrl-C stops everything, workloads included.
//!
//! `berth up` listens on fixed ports (2379…, 8080…, 10250…); they lie below the
//! ephemeral range, so the other tests' free ports never collide with them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// PIDs of processes whose environment names a pod of the `web` deployment.
fn web_workloads() -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let is_web = environ
            .split(|b| *b == 0)
            .any(|v| v.starts_with(b"BERTH_POD_NAME=web-"));
        // The runtime runs argv[0] by its path (/usr/bin/python3); the shell that
        // wraps it has the same environment but is not the workload.
        let program = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        if is_web && program.ends_with(b"python3") {
            pids.push(pid);
        }
    }
    pids
}

/// Stops `berth up` (and so its cluster) if the test fails half-way.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill").args(["-INT", &self.0.id().to_string()]).status();
            let _ = self.0.wait();
        }
    }
}

fn berth(args: &[&str]) -> std::process::Output {
    Command::new(BERTH)
        .args(args)
        .env("BERTH_SERVER", "http://127.0.0.1:8080")
        .output()
        .unwrap()
}

#[test]
fn berth_up_runs_the_example_and_stops_everything_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let up = Command::new(BERTH)
        .args(["up", "--servers", "1", "--agents", "1", "--dir"])
        .arg(dir.path().join("cluster"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut up = up;
    let stdout = up.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut up = KillOnDrop(up);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut printed = String::new();
    while !printed.contains("Press Ctrl-C") {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("berth up never said it was up: {printed}"));
        printed.push_str(&line);
        printed.push('\n');
    }
    assert!(printed.contains("http://127.0.0.1:8080"), "{printed}");

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/web.yaml");
    let applied = berth(&["apply", "-f", example]);
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let table = String::from_utf8_lossy(&berth(&["get", "pods"]).stdout).to_string();
        if table.matches("Running").count() == 3 && web_workloads().len() == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the example never ran 3 replicas:\n{table}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let pod = String::from_utf8_lossy(&berth(&["get", "pods", "-o", "name"]).stdout)
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("pod/")
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = String::from_utf8_lossy(&berth(&["logs", &pod]).stdout).to_string();
        if logs.contains("Serving HTTP on") {
            break;
        }
        assert!(Instant::now() < deadline, "the web server never logged: {logs}");
        std::thread::sleep(Duration::from_millis(300));
    }

    // Ctrl-C: everything stops, the workloads too.
    Command::new("kill")
        .args(["-INT", &up.0.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = up.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "berth up did not stop after Ctrl-C");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "{status}");
    assert_eq!(
        web_workloads(),
        Vec::<u32>::new(),
        "workloads left running after Ctrl-C"
    );
    let unreachable = berth(&["get", "pods"]);
    assert!(!unreachable.status.success());
}
