//! One client cannot stall a `berth server`: while a YAML bomb, a deeply nested body,
//! an oversized object, an endless watch timeout, slowloris connections and a
//! thousand idle connections arrive together, each gets its clear answer, and an
//! etcd client and an API watcher keep being served (every put and every event
//! within a generous bound that means "not stalled").

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use berth_testkit::{Cluster, ClusterSpec, QUIET_RAFT_LOG, System, free_port};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// Longer than this for one put or one event is a stall, not a slow machine.
const STALL: Duration = Duration::from_secs(5);

/// Sends one request on a fresh connection and returns the status code.
fn request(port: u16, method: &str, path: &str, content_type: &str, body: &[u8]) -> u16 {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before the whole body is sent.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn pod(name: &str, padding: usize) -> Vec<u8> {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": {"padding": "x".repeat(padding)}},
        "spec": {"nodeName": "ghost", "containers": [{"name": "c", "command": ["sleep", "1"]}]}
    })
    .to_string()
    .into_bytes()
}

#[test]
fn bad_clients_get_their_answers_while_etcd_and_watch_clients_are_served() {
    let spec = ClusterSpec::new(System::BerthServer, BERTH, 1)
        .args(["--node-monitor-grace-period=1h"])
        .env("RUST_LOG", QUIET_RAFT_LOG);
    let mut server = Cluster::new(spec).unwrap();
    let port = free_port();
    server.replicas[0].args = vec![format!("--api-listen=127.0.0.1:{port}")];
    server.start_all().unwrap();
    let endpoint = server.endpoints()[0].clone();
    berth_testkit::eventually_blocking("the API server", || {
        (request(port, "GET", "/api/v1/namespaces/default", "application/json", b"") == 200).then_some(())
    });

    // The well-behaved clients: an etcd client putting, an API watcher following
    // pods that a third client creates.
    let done = Arc::new(AtomicBool::new(false));
    let etcd = {
        let (done, endpoint) = (done.clone(), endpoint.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut client = etcd_client::Client::connect([endpoint], None).await.unwrap();
                let mut slowest = Duration::ZERO;
                let mut puts = 0;
                while !done.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    tokio::time::timeout(STALL, client.put(format!("/app/k{puts}"), "v", None))
                        .await
                        .unwrap_or_else(|_| panic!("put {puts} stalled"))
                        .unwrap();
                    slowest = slowest.max(started.elapsed());
                    puts += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (puts, slowest)
            })
        })
    };
    let mut watch = TcpStream::connect(("127.0.0.1", port)).unwrap();
    watch.set_read_timeout(Some(STALL)).unwrap();
    write!(
        watch,
        "GET /api/v1/namespaces/default/pods?watch=1 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();

    // The bad clients, all at once.
    let bad: Vec<std::thread::JoinHandle<(&str, u16)>> = vec![
        std::thread::spawn(move || {
            let bomb = format!("{}{}", "{a: ".repeat(25_000), "}".repeat(25_000));
            (
                "yaml bomb",
                request(
                    port,
                    "POST",
                    "/api/v1/namespaces/default/pods",
                    "application/yaml",
                    bomb.as_bytes(),
                ),
            )
        }),
        std::thread::spawn(move || {
            let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
            (
                "deep JSON",
                request(
                    port,
                    "POST",
                    "/api/v1/namespaces/default/pods",
                    "application/json",
                    deep.as_bytes(),
                ),
            )
        }),
        std::thread::spawn(move || {
            let big = pod("big", 1_600_000);
            (
                "1.6 MB pod",
                request(
                    port,
                    "POST",
                    "/api/v1/namespaces/default/pods",
                    "application/json",
                    &big,
                ),
            )
        }),
        std::thread::spawn(move || {
            let path = "/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=99999999999999999999";
            ("huge timeout", request(port, "GET", path, "application/json", b""))
        }),
    ];
    // Slowloris: request heads that never end; and a thousand idle connections.
    let slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /api/v1/pods HTTP/1.1\r\nX-Slow: ").unwrap();
            s
        })
        .collect();
    let idle: Vec<TcpStream> = (0..1000)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(
        idle.len() >= 900,
        "the server takes connections ({} opened)",
        idle.len()
    );

    // Meanwhile pods are created and the watcher sees each of them.
    let mut seen = String::new();
    for i in 0..20 {
        let name = format!("ok-{i}");
        assert_eq!(
            request(
                port,
                "POST",
                "/api/v1/namespaces/default/pods",
                "application/json",
                &pod(&name, 10)
            ),
            201
        );
        let started = Instant::now();
        while !seen.contains(&format!("\"name\":\"{name}\"")) {
            let mut buffer = [0u8; 65536];
            let n = watch
                .read(&mut buffer)
                .unwrap_or_else(|e| panic!("the watch stalled before {name}: {e}"));
            assert!(n > 0, "the watch ended");
            seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
            assert!(
                started.elapsed() < STALL,
                "{name} took {:?} to be seen",
                started.elapsed()
            );
        }
    }

    let answers: Vec<(&str, u16)> = bad.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        answers,
        [
            ("yaml bomb", 400),
            ("deep JSON", 400),
            ("1.6 MB pod", 413),
            ("huge timeout", 400)
        ]
    );
    done.store(true, Ordering::Relaxed);
    let (puts, slowest) = etcd.join().unwrap();
    assert!(puts > 0);
    eprintln!("{puts} etcd puts meanwhile, the slowest {slowest:?}");
    drop((slow, idle));
    server.check_running().unwrap();
}
