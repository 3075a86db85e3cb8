//! A loopback cluster of real processes for the binary's end-to-end tests: three
//! `berth server` replicas and two `berth agent`s, with helpers to drive it through
//! the `berth` CLI and the REST API. Each test file that uses it says `mod common;`.

#![allow(dead_code)]

pub mod containers;
pub mod links;
pub mod pki;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use berth_testkit::{Cluster, ClusterSpec, Process, QUIET_RAFT_LOG, System, eventually_blocking, free_port};
use serde_json::Value;

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

pub struct TestCluster {
    /// `berth server` replicas; their temporary dir holds the agents' dirs and logs too.
    pub servers: Cluster,
    /// The REST API port of each server.
    pub api_ports: Vec<u16>,
    pub agents: Vec<Process>,
    /// Each workload of this cluster sleeps for this marker, so that its processes
    /// can be told from any other on the machine.
    pub marker: String,
    /// TLS and authentication everywhere, when the cluster was started secure.
    pub secure: Option<Secure>,
}

/// A secure cluster's certificates (a CA made for it, in `berth pki`'s layout) and the
/// admin's kubeconfig: the store takes only the CA's client certificates, the API
/// servers serve HTTPS and authorize by RBAC, the agents' API takes only the API
/// servers' client certificate.
pub struct Secure {
    pub pki: berth_pki::layout::Layout,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Secure {
    fn make() -> Secure {
        let dir = tempfile::tempdir().unwrap();
        let pki = berth_pki::layout::Layout::new(dir.path().join("pki"));
        let ca = pki.init(&[]).unwrap();
        for node in ["node-0", "node-1"] {
            pki.ensure_node(&ca, node, &[]).unwrap();
        }
        let kubeconfig = dir.path().join("kubeconfig");
        Secure {
            pki,
            kubeconfig,
            _dir: dir,
        }
    }

    fn path(&self, name: &str, key: bool) -> String {
        let (cert, private) = self.pki.pair(name);
        if key { private } else { cert }.display().to_string()
    }

    fn ca(&self) -> String {
        self.pki.ca_cert().display().to_string()
    }

    /// How the API servers and the agents reach the store.
    fn store_client_flags(&self) -> Vec<String> {
        vec![
            format!("--etcd-cafile={}", self.ca()),
            format!("--etcd-certfile={}", self.path("store/client", false)),
            format!("--etcd-keyfile={}", self.path("store/client", true)),
        ]
    }

    fn api_server_flags(&self) -> Vec<String> {
        let mut flags = vec![
            format!("--tls-cert-file={}", self.path("apiserver", false)),
            format!("--tls-private-key-file={}", self.path("apiserver", true)),
            format!("--client-ca-file={}", self.ca()),
            format!(
                "--kubelet-client-certificate={}",
                self.path("apiserver-kubelet-client", false)
            ),
            format!("--kubelet-client-key={}", self.path("apiserver-kubelet-client", true)),
            format!("--kubelet-certificate-authority={}", self.ca()),
        ];
        flags.extend(self.store_client_flags());
        flags
    }

    fn agent_flags(&self, node: &str) -> Vec<String> {
        let name = berth_pki::layout::Layout::node_name(node);
        let mut flags = vec![
            format!("--tls-cert-file={}", self.path(&name, false)),
            format!("--tls-private-key-file={}", self.path(&name, true)),
            format!("--client-ca-file={}", self.ca()),
        ];
        flags.extend(self.store_client_flags());
        flags
    }

    /// curl's arguments for a request as the admin.
    fn curl_args(&self) -> Vec<String> {
        vec![
            "--cacert".into(),
            self.ca(),
            "--cert".into(),
            self.path("admin", false),
            "--key".into(),
            self.path("admin", true),
        ]
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for agent in &mut self.agents {
            agent.kill();
        }
        // Whatever workloads are left (the agents were killed) go too.
        for pid in workload_pids(&self.marker) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        // Their cgroups (the process runtime accounts every container) go too.
        remove_container_cgroups(self.servers.dir());
        // The servers go with `servers`, which keeps the logs if a test panicked.
    }
}

/// Removes the cgroup directories the container records under `dir` name (the
/// process runtime's `containers/*.json`), once their processes are gone; a busy
/// one is retried briefly, then left.
pub fn remove_container_cgroups(dir: &std::path::Path) {
    let mut records = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "json")
                && path.parent().is_some_and(|p| p.ends_with("containers"))
            {
                records.push(path);
            }
        }
    }
    for record in records {
        let Ok(text) = std::fs::read_to_string(&record) else {
            continue;
        };
        let Ok(record) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        for cgroup in record["cgroup_dirs"].as_array().into_iter().flatten() {
            let Some(cgroup) = cgroup.as_str() else {
                continue;
            };
            for _ in 0..20 {
                match std::fs::remove_dir(cgroup) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => std::thread::sleep(Duration::from_millis(50)),
                    _ => break,
                }
            }
        }
    }
}

impl TestCluster {
    pub fn start() -> TestCluster {
        TestCluster::start_with_grace("3s")
    }

    /// A cluster whose nodes may miss their heartbeat for `grace` before their pods go.
    pub fn start_with_grace(grace: &str) -> TestCluster {
        let mut cluster = TestCluster::new(grace);
        cluster.start_all();
        cluster
    }

    /// [`TestCluster::start_with_grace`]'s cluster, not started yet: a test may wire
    /// the replicas' peer links or an agent's `--store` through proxies first.
    pub fn new(grace: &str) -> TestCluster {
        TestCluster::with_grace_flag(Some(grace))
    }

    /// As [`TestCluster::new`], the replicas given no `--node-monitor-grace-period`:
    /// they run on berth's default grace.
    pub fn with_default_grace() -> TestCluster {
        TestCluster::with_grace_flag(None)
    }

    /// [`TestCluster::start`]'s cluster with TLS and authentication everywhere (see
    /// [`Secure`]); the helpers reach it as the admin.
    pub fn start_secure() -> TestCluster {
        let mut cluster = TestCluster::with_security(Some("3s"), Some(Secure::make()));
        cluster.start_all();
        cluster
    }

    fn with_grace_flag(grace: Option<&str>) -> TestCluster {
        TestCluster::with_security(grace, None)
    }

    fn with_security(grace: Option<&str>, secure: Option<Secure>) -> TestCluster {
        // The replicas log each fenced write (the failover tests read them).
        let mut spec = ClusterSpec::new(System::BerthServer, BERTH, 3)
            .args(grace.map(|grace| format!("--node-monitor-grace-period={grace}")))
            .env("RUST_LOG", format!("{QUIET_RAFT_LOG},berth_client::fence=debug"));
        if let Some(secure) = &secure {
            // One certificate of the CA for the store's port and its peer links.
            spec = spec.tls(berth_testkit::ClusterTls {
                ca_file: secure.pki.ca_cert(),
                cert_file: secure.pki.pair("store/peer").0,
                key_file: secure.pki.pair("store/peer").1,
            });
        }
        let mut servers = Cluster::new(spec).unwrap();
        let api_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        for (server, api_port) in servers.replicas.iter_mut().zip(&api_ports) {
            server.args = vec![format!("--api-listen=127.0.0.1:{api_port}")];
            if let Some(secure) = &secure {
                server.args.extend(secure.api_server_flags());
            }
        }
        let stores = servers.endpoints().join(",");
        let dir = servers.dir().to_path_buf();
        let agents = (0..2)
            .map(|j| {
                let name = format!("node-{j}");
                let mut args: Vec<String> = vec![
                    "agent".into(),
                    format!("--name={name}"),
                    format!("--store={stores}"),
                    format!("--data-dir={}", dir.join(&name).display()),
                    format!("--listen=127.0.0.1:{}", free_port()),
                    "--cpu=2".into(),
                    "--memory=2Gi".into(),
                    "--lease-ttl=3s".into(),
                    "--restart-backoff=500ms".into(),
                    // The tests' pods run commands on the host (their images are
                    // names only, never pulled).
                    "--runtime=process".into(),
                    // Many such clusters run at once in the machine's own network
                    // namespace: none of them programs its Services into the host's iptables.
                    "--proxy-mode=none".into(),
                ];
                args.extend(secure.iter().flat_map(|secure| secure.agent_flags(&name)));
                Process::new(&name, BERTH, dir.join(format!("{name}.log")))
                    .with_args(args)
                    .with_env("RUST_LOG", QUIET_RAFT_LOG)
            })
            .collect();
        TestCluster {
            marker: format!("{}.{}", 100_000 + std::process::id(), free_port()),
            servers,
            api_ports,
            agents,
            secure,
        }
    }

    pub fn start_all(&mut self) {
        self.servers.start_all().unwrap();
        for agent in &mut self.agents {
            agent.start().unwrap();
        }
    }

    /// The API ports of the running servers.
    pub fn running_api_ports(&self) -> Vec<u16> {
        self.servers
            .replicas
            .iter()
            .zip(&self.api_ports)
            .filter(|(server, _)| server.is_running())
            .map(|(_, port)| *port)
            .collect()
    }

    fn scheme(&self) -> &'static str {
        if self.secure.is_some() { "https" } else { "http" }
    }

    pub fn api(&self) -> String {
        self.running_api_ports()
            .iter()
            .map(|port| format!("{}://127.0.0.1:{port}", self.scheme()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The admin's kubeconfig for the API server at `server`, when secure.
    fn kubeconfig(&self, server: &str) -> Option<PathBuf> {
        let secure = self.secure.as_ref()?;
        let ca = std::fs::read_to_string(secure.pki.ca_cert()).unwrap();
        let admin = secure.pki.read("admin").unwrap();
        berth_pki::kubeconfig::Kubeconfig::for_identity("berth", server, &ca, berth_pki::layout::ADMIN_USER, &admin)
            .write(&secure.kubeconfig)
            .unwrap();
        Some(secure.kubeconfig.clone())
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        let api = self.api();
        let first = api.split(',').next().unwrap_or_default().to_string();
        let mut command = Command::new(BERTH);
        command.args(args).env("BERTH_SERVER", api);
        match self.kubeconfig(&first) {
            Some(kubeconfig) => command.env("KUBECONFIG", kubeconfig),
            None => command.env("KUBECONFIG", "/dev/null"),
        };
        command.output().unwrap()
    }

    pub fn write_manifest(&self, name: &str, text: &str) -> PathBuf {
        let path = self.servers.dir().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// GET on the API of the first running server, as JSON.
    pub fn get(&self, path: &str) -> (u16, Value) {
        self.get_from(self.running_api_ports()[0], path)
    }

    /// GET on the API server at `port` (as the admin, over HTTPS, when secure).
    pub fn get_from(&self, port: u16, path: &str) -> (u16, Value) {
        let Some(secure) = &self.secure else {
            return http_get(port, path);
        };
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "15", "-w", "\n%{http_code}"])
            .args(secure.curl_args())
            .arg(format!("https://127.0.0.1:{port}{path}"))
            .output()
            .expect("curl (the test script installs it)");
        let text = String::from_utf8_lossy(&out.stdout);
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        (
            status.trim().parse().unwrap_or(0),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    pub fn pods(&self) -> Vec<Value> {
        let (status, list) = self.get("/api/v1/namespaces/default/pods");
        assert_eq!(status, 200, "{list}");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Runs the real kubectl against the first running API server, with no user
    /// kubeconfig or cache.
    pub fn kubectl_output(&self, args: &[&str]) -> Output {
        let server = format!("{}://127.0.0.1:{}", self.scheme(), self.running_api_ports()[0]);
        let kubeconfig = self.kubeconfig(&server).unwrap_or_else(|| "/dev/null".into());
        Command::new("kubectl")
            .arg(format!("--server={server}"))
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", self.servers.dir())
            .output()
            .expect("kubectl runs")
    }

    /// kubectl's stdout; the command must succeed.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl_output(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl's stderr; the command must fail.
    pub fn kubectl_fails(&self, args: &[&str]) -> String {
        let out = self.kubectl_output(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// The server that holds the leadership record.
    pub fn leader(&self) -> usize {
        let via = self.servers.replicas.iter().position(|s| s.is_running()).unwrap();
        leader_record_holder(&self.servers, via).expect("a leadership record")
    }
}

/// The replica of `servers` that holds the leadership record, as replica `via` reads
/// it; `None` without a record (or one naming no replica).
pub fn leader_record_holder(servers: &Cluster, via: usize) -> Option<usize> {
    let tls: Vec<String> = servers
        .tls()
        .map(|tls| {
            vec![
                format!("--cacert={}", tls.ca_file.display()),
                format!("--cert={}", tls.cert_file.display()),
                format!("--key={}", tls.key_file.display()),
            ]
        })
        .unwrap_or_default();
    let out = Command::new("etcdctl")
        .args(["--endpoints", &servers.replicas[via].endpoint()])
        .args(tls)
        .args(["get", "/berth/leader", "--print-value-only"])
        .env("ETCDCTL_API", "3")
        .output()
        .expect("etcdctl (the test script installs it)");
    let value = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let name = value.split_whitespace().nth(2)?; // "{term} {node id} {name}"
    servers.replicas.iter().position(|s| s.name == name)
}

pub fn http_get(port: u16, path: &str) -> (u16, Value) {
    http(port, "GET", path, None)
}

/// One request with an optional JSON body; the status and the JSON answer.
pub fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let attempt = || -> std::io::Result<(u16, Value)> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let text = String::from_utf8_lossy(&response).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            dechunk(body)
        } else {
            body.to_string()
        };
        Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
    };
    attempt().unwrap_or((0, Value::Null))
}

pub fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// PIDs of this cluster's workloads: `sleep <marker>` processes.
pub fn workload_pids(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.len() >= 2 && args[0].ends_with(b"sleep") && args[1] == marker.as_bytes() {
            let zombie = std::fs::read_to_string(entry.path().join("stat")).is_ok_and(|s| s.contains(") Z "));
            if !zombie {
                pids.push(pid);
            }
        }
    }
    pids
}

/// A log line's time as the kubelet writes it (`2006-01-02T15:04:05.000000000Z`,
/// nine fraction digits always); panics on anything else.
pub fn log_time(text: &str) -> std::time::SystemTime {
    let fraction = text
        .strip_suffix('Z')
        .and_then(|t| t.get(20..))
        .filter(|digits| text.len() == 30 && &text[19..20] == "." && digits.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("not a kubelet log time: {text:?}"));
    let whole = berth_api::time::parse_rfc3339(text).unwrap_or_else(|| panic!("not RFC 3339: {text:?}"));
    whole + std::time::Duration::from_nanos(fraction.parse().unwrap())
}

pub fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "berth failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The suites need kubectl 1.30 or later (OpenAPI v3 explain, server-side field
/// validation); an older or missing kubectl is reported and the suite skipped.
pub fn have_kubectl() -> bool {
    let Ok(out) = Command::new("kubectl")
        .args(["version", "--client", "-o", "json"])
        .output()
    else {
        berth_testkit::skip("kubectl (scripts/test.sh installs it)");
        return false;
    };
    let version: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let minor: u32 = version["clientVersion"]["minor"]
        .as_str()
        .unwrap_or_default()
        .trim_end_matches('+')
        .parse()
        .unwrap_or(0);
    if minor < 30 {
        berth_testkit::skip(&format!(
            "kubectl 1.30 or later (this is {})",
            version["clientVersion"]["gitVersion"]
        ));
        return false;
    }
    true
}

pub fn wait_for_nodes(cluster: &mut TestCluster) {
    eventually_blocking("two Ready nodes", || {
        if let Err(exited) = cluster.servers.check_running() {
            panic!("{exited:#}");
        }
        for agent in &mut cluster.agents {
            agent.assert_running();
        }
        let (status, nodes) = cluster.get("/api/v1/nodes");
        let ready = nodes["items"]
            .as_array()?
            .iter()
            .filter(|n| {
                n["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            })
            .count();
        (status == 200 && ready == 2).then_some(())
    });
}

/// Whether kubectl is installed (the test script installs it; a test that needs it
/// says so and stops when it is not).
pub fn has_kubectl() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// A kubectl run's stdout, after asserting it succeeded (its output in the message).
pub fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kubectl failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}
