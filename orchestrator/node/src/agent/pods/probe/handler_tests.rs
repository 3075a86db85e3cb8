//! Each probe handler against real servers on loopback: an HTTP server (and an HTTPS
//! one with a self-signed certificate), a TCP listener, tonic's gRPC health server,
//! and exec into containers of the process runtime and of runc.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{Outcome, Target, attempt};
use crate::runtime::{ContainerSpec, ProcessRuntime, Runtime};
use berth_api::objects::{Container, ContainerPort, IntOrString};
use berth_api::probes::{ExecAction, GRPCAction, HTTPGetAction, HTTPHeader, Probe, TCPSocketAction};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A target on loopback whose container has a port named "http" at `port`; exec
/// probes are not sent to it.
fn target(port: u16) -> Target {
    let state = tempfile::tempdir().unwrap();
    Target {
        runtime: Arc::new(ProcessRuntime::new(state.path().to_path_buf()).unwrap()),
        id: "none".into(),
        pod_ip: LOOPBACK,
        container: Container {
            name: "web".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: i32::from(port),
                ..Default::default()
            }]),
            ..Default::default()
        },
    }
}

fn http_probe(port: IntOrString, path: &str, headers: &[(&str, &str)]) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            port,
            path: Some(path.into()),
            http_headers: Some(
                headers
                    .iter()
                    .map(|(name, value)| HTTPHeader {
                        name: (*name).into(),
                        value: (*value).into(),
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        timeout_seconds: Some(1),
        ..Default::default()
    }
}

/// An HTTP/1.1 server that answers every request with `status` and `body`, and keeps
/// each request's head; `silent` ones never answer.
async fn http_server(status: u16, body: &'static str, silent: bool) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind((LOOPBACK, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                seen.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
                if silent {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return;
                }
                let response = format!(
                    "HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (port, heads)
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind((LOOPBACK, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn http_get_succeeds_on_2xx_and_3xx_with_the_kubelets_headers() {
    let (port, heads) = http_server(200, "all good", false).await;
    let probe = http_probe(IntOrString::String("http".into()), "/healthz", &[("X-Custom", "yes")]);
    assert_eq!(attempt(&probe, &target(port)).await, Outcome::success("all good"));
    let head = heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(head.starts_with("get /healthz http/1.1\r\n"), "{head}");
    assert!(head.contains("user-agent: kube-probe/1.32\r\n"), "{head}");
    assert!(head.contains("accept: */*\r\n"), "{head}");
    assert!(head.contains(&format!("host: 127.0.0.1:{port}\r\n")), "{head}");
    assert!(head.contains("x-custom: yes\r\n"), "{head}");

    // The probe's own User-Agent and Host win.
    let own = http_probe(
        IntOrString::Int(i32::from(port)),
        "/",
        &[("User-Agent", "mine"), ("Host", "example.test")],
    );
    assert!(attempt(&own, &target(port)).await.success);
    let head = heads.lock().unwrap()[1].to_ascii_lowercase();
    assert!(
        head.contains("user-agent: mine\r\n") && !head.contains("kube-probe"),
        "{head}"
    );
    assert!(head.contains("host: example.test\r\n"), "{head}");

    let (redirect, _) = http_server(302, "", false).await;
    assert!(
        attempt(
            &http_probe(IntOrString::Int(i32::from(redirect)), "/", &[]),
            &target(redirect)
        )
        .await
        .success
    );
}

#[tokio::test]
async fn http_get_fails_on_errors_refusals_and_timeouts() {
    let (port, _) = http_server(503, "down", false).await;
    let probe = http_probe(IntOrString::Int(i32::from(port)), "/", &[]);
    assert_eq!(
        attempt(&probe, &target(port)).await,
        Outcome::failure("HTTP probe failed with statuscode: 503")
    );

    let closed = closed_port();
    let refused = attempt(
        &http_probe(IntOrString::Int(i32::from(closed)), "/x", &[]),
        &target(closed),
    )
    .await;
    assert!(!refused.success);
    assert_eq!(
        refused.message,
        format!("Get \"http://127.0.0.1:{closed}/x\": dial tcp 127.0.0.1:{closed}: connect: connection refused")
    );

    let (silent, _) = http_server(200, "", true).await;
    let timed_out = attempt(
        &http_probe(IntOrString::Int(i32::from(silent)), "/", &[]),
        &target(silent),
    )
    .await;
    assert!(!timed_out.success);
    assert!(timed_out.message.contains("context deadline exceeded"), "{timed_out:?}");

    let unnamed = attempt(
        &http_probe(IntOrString::String("metrics".into()), "/", &[]),
        &target(port),
    )
    .await;
    assert_eq!(
        unnamed,
        Outcome::failure("couldn't find port: metrics in container web")
    );
}

#[tokio::test]
async fn https_get_takes_any_certificate() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = rustls_pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind((LOOPBACK, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecure")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let mut probe = http_probe(IntOrString::Int(i32::from(port)), "/", &[]);
    probe.http_get.as_mut().unwrap().scheme = Some("HTTPS".into());
    assert_eq!(attempt(&probe, &target(port)).await, Outcome::success("secure"));
}

#[tokio::test]
async fn tcp_socket_succeeds_when_the_port_accepts() {
    let listener = TcpListener::bind((LOOPBACK, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let probe = |port: u16| Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(i32::from(port)),
            host: None,
        }),
        ..Default::default()
    };
    assert!(attempt(&probe(port), &target(port)).await.success);
    drop(listener);
    let closed = attempt(&probe(port), &target(port)).await;
    assert_eq!(
        closed,
        Outcome::failure(format!("dial tcp 127.0.0.1:{port}: connect: connection refused"))
    );
}

#[tokio::test]
async fn grpc_asks_the_standard_health_service() {
    use tonic_health::ServingStatus;

    let (reporter, service) = tonic_health::server::health_reporter();
    reporter.set_service_status("ready", ServingStatus::Serving).await;
    reporter.set_service_status("draining", ServingStatus::NotServing).await;
    let listener = TcpListener::bind((LOOPBACK, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serve = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    let server = tokio::spawn(async move {
        let _ = serve.await;
    });
    let _server = berth_client::kv::AbortOnDrop(server);
    let probe = |port: u16, service: &str| Probe {
        grpc: Some(GRPCAction {
            port: i32::from(port),
            service: (!service.is_empty()).then(|| service.to_string()),
        }),
        timeout_seconds: Some(2),
        ..Default::default()
    };
    assert!(
        attempt(&probe(port, ""), &target(port)).await.success,
        "the server as a whole"
    );
    assert!(attempt(&probe(port, "ready"), &target(port)).await.success);
    assert_eq!(
        attempt(&probe(port, "draining"), &target(port)).await,
        Outcome::failure("service unhealthy (responded with \"NOT_SERVING\")")
    );
    let unknown = attempt(&probe(port, "nobody"), &target(port)).await;
    assert!(!unknown.success);
    assert!(unknown.message.contains("code = NotFound"), "{unknown:?}");
    let closed = closed_port();
    let refused = attempt(&probe(closed, ""), &target(closed)).await;
    assert!(
        refused.message.starts_with(&format!(
            "timeout: failed to connect service \"127.0.0.1:{closed}\" within 2s"
        )),
        "{refused:?}"
    );
}

fn exec_probe(argv: &[&str], timeout_seconds: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(argv.iter().map(|s| (*s).to_string()).collect()),
        }),
        timeout_seconds: Some(timeout_seconds),
        ..Default::default()
    }
}

/// Stops and removes a container however the test ends.
struct Started {
    runtime: Arc<dyn Runtime>,
    id: String,
}

impl Drop for Started {
    fn drop(&mut self) {
        let runtime = self.runtime.clone();
        let id = self.id.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let _ = runtime.stop(&id, Duration::ZERO).await;
            });
            let _ = runtime.remove(&id);
        })
        .join()
        .unwrap();
    }
}

/// Exec probes against a running container of `runtime`: success with the output,
/// failure with the output, and a command that outlives the timeout.
async fn exec_probes_in(runtime: Arc<dyn Runtime>, spec: &ContainerSpec) {
    let id = runtime.start(spec).unwrap();
    let _started = Started {
        runtime: runtime.clone(),
        id: id.clone(),
    };
    let target = Target {
        runtime: runtime.clone(),
        id,
        pod_ip: LOOPBACK,
        container: Container::default(),
    };
    assert_eq!(
        attempt(&exec_probe(&["sh", "-c", "echo fine"], 5), &target).await,
        Outcome::success("fine\n")
    );
    assert_eq!(
        attempt(&exec_probe(&["sh", "-c", "echo broken >&2; exit 3"], 5), &target).await,
        Outcome::failure("broken\n")
    );
    // A seconds argument unique to this test, to find its process by.
    let seconds = format!("7.{}", std::process::id());
    let started = std::time::Instant::now();
    assert_eq!(
        attempt(&exec_probe(&["sleep", &seconds], 1), &target).await,
        Outcome::failure(format!("command \"sleep {seconds}\" timed out"))
    );
    assert!(started.elapsed() < Duration::from_secs(5), "the timeout is honoured");
    berth_testkit::eventually("the timed-out command ended", async || {
        (!sleeping(&seconds)).then_some(())
    })
    .await;
}

/// Whether a `sleep <seconds>` process runs on this machine (inside a container or
/// not: the host sees every process).
fn sleeping(seconds: &str) -> bool {
    let wanted = format!("sleep\0{seconds}\0");
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let zombie = std::fs::read_to_string(entry.path().join("stat")).is_ok_and(|s| s.contains(") Z "));
        !zombie && String::from_utf8_lossy(&cmdline).ends_with(&wanted)
    })
}

#[tokio::test]
async fn exec_runs_in_a_process_runtime_container() {
    let state = tempfile::tempdir().unwrap();
    let runtime: Arc<dyn Runtime> = Arc::new(ProcessRuntime::new(state.path().to_path_buf()).unwrap());
    let spec = ContainerSpec {
        pod_uid: format!("probe-exec-{}", std::process::id()),
        pod: "default/probed".into(),
        name: "main".into(),
        argv: vec!["sleep".into(), "1000".into()],
        ..Default::default()
    };
    exec_probes_in(runtime, &spec).await;
}

#[tokio::test]
async fn exec_runs_in_a_runc_container() {
    use crate::runtime::OciRuntime;
    use crate::runtime::oci::tests::fixture::Fixture;

    let Some(fixture) = Fixture::new() else { return };
    // A second runtime on the fixture's state directory, shared with the probes (the
    // fixture's own still removes whatever is left).
    let runtime: Arc<dyn Runtime> = Arc::new(OciRuntime::new(fixture.state.path().to_path_buf()).unwrap());
    let spec = fixture.spec("probe", &["sleep", "1000"]);
    exec_probes_in(runtime, &spec).await;
}
