//! `berth up`, the README's "run" command: it starts a local cluster, the example
//! manifests run on it, and Ctrl-C stops everything, workloads included.
//!
//! `berth up` listens on fixed ports (2379…, 8080…, 10250…, and 5000 for its
//! registry); they lie below the ephemeral range, so the other tests' free ports never
//! collide with them. One test starts it, so that no two clusters race for them.
//!
//! On the way it kills -9 the control-plane replica and an agent: berth up restarts
//! them, says so, and the cluster serves again with its workloads.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

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

/// Why this host cannot run `examples/web.yaml` in containers, if it cannot: what
/// `berth up` checks before it builds the image and gives the agents pod bridges.
fn lacks_containers() -> Option<String> {
    if let Err(why) = berth_node::runtime::OciRuntime::available() {
        return Some(why);
    }
    let cni = berth_node::network::CniSettings {
        bin_dir: berth_node::network::default_bin_dir(),
        ..berth_node::network::CniSettings::new(Default::default())
    };
    if let Err(why) = berth_node::network::CniNetwork::available(&cni) {
        return Some(format!("the CNI plugins: {why}"));
    }
    berth_testkit::oci::busybox_binary()
        .is_none()
        .then(|| "a static busybox (Debian's busybox-static)".to_string())
}

/// PIDs of the example's web servers in containers (busybox `httpd` as web.yaml
/// runs it) of the pods `pods` (their names are in the container's environment): other
/// tests on the machine may run the same command.
fn httpd_workloads(pods: &[String]) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let is_ours = environ.split(|b| *b == 0).any(|variable| {
            pods.iter()
                .any(|pod| variable == format!("BERTH_POD_NAME={pod}").as_bytes())
        });
        if cmdline == b"httpd\0-f\0-p\08080\0-h\0/www\0" && is_ours {
            pids.push(pid);
        }
    }
    pids
}

/// The bridges `berth up` gives its agents' pods that were not there before the test:
/// berth up removes them when it stops (the guard does, should the test fail first).
struct Bridges(Vec<String>);

impl Bridges {
    fn new_ones(names: &[&str]) -> Self {
        let exists = |name: &str| std::path::Path::new("/sys/class/net").join(name).exists();
        Self(
            names
                .iter()
                .filter(|name| !exists(name))
                .map(|name| name.to_string())
                .collect(),
        )
    }
}

impl Drop for Bridges {
    fn drop(&mut self) {
        for name in &self.0 {
            if std::path::Path::new("/sys/class/net").join(name).exists() {
                let _ = Command::new("ip").args(["link", "del", name]).status();
            }
        }
    }
}

/// The mount points under `dir` (pods' network namespaces, containers' roots).
fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| point.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// Unmounts what the cluster left mounted under its directory, so that a failed test
/// leaves no namespace or overlay behind (the test asserts there is none first).
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        for point in mounts_under(&self.0).into_iter().rev() {
            let _ = Command::new("umount").args(["-l", &point]).status();
        }
    }
}

/// The body of `GET /` from `ip:8080`, or why there is none.
fn http_get(ip: &str) -> Result<String, String> {
    let addr: SocketAddr = format!("{ip}:8080").parse().map_err(|e| format!("{ip}: {e}"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
    Ok(response)
}

fn pods() -> Vec<Value> {
    let out = berth(&["get", "pods", "-o", "json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    list["items"].as_array().cloned().unwrap_or_default()
}

/// The admin kubeconfig berth up wrote, once it said where.
static KUBECONFIG: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// berth's CLI as the admin, through the kubeconfig berth up wrote.
fn berth(args: &[&str]) -> std::process::Output {
    Command::new(BERTH)
        .args(args)
        .env_remove("BERTH_SERVER")
        .env(
            "KUBECONFIG",
            KUBECONFIG.get().expect("berth up said where its kubeconfig is"),
        )
        .output()
        .unwrap()
}

#[test]
fn berth_up_runs_the_examples_and_stops_everything_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let lacking = lacks_containers();
    let bridges = Bridges::new_ones(&["berth0", "berth1"]);
    // Dropped before the directory, after `up`.
    let _unmount = Unmount(dir.path().to_path_buf());
    let up = Command::new(BERTH)
        .args(["up", "--servers", "1", "--agents", "2", "--dir"])
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
    assert!(printed.contains("https://127.0.0.1:8080"), "{printed}");
    let kubeconfig = printed
        .lines()
        .find_map(|line| line.trim().strip_prefix("export KUBECONFIG="))
        .unwrap_or_else(|| panic!("berth up named no kubeconfig: {printed}"));
    KUBECONFIG.set(kubeconfig.to_string()).unwrap();
    // Without the kubeconfig's CA the CLI does not connect to the HTTPS servers.
    let blind = Command::new(BERTH)
        .args(["get", "pods"])
        .env("BERTH_SERVER", "https://127.0.0.1:8080")
        .env("KUBECONFIG", "/dev/null")
        .output()
        .unwrap();
    assert!(
        !blind.status.success(),
        "the CLI connected without trusting the cluster's CA"
    );
    secrets_are_encrypted_with_the_key_berth_up_made(&printed, dir.path());

    let container_pods = match &lacking {
        None => serves_web_from_containers(&printed, dir.path()),
        Some(why) => {
            assert!(printed.contains("pods will run as host processes"), "{printed}");
            berth_testkit::skip(&format!("containers for examples/web.yaml: {why}"));
            Vec::new()
        }
    };

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/web-process.yaml");
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

    survives_kill_9_of_a_replica_and_an_agent(up.0.id(), &rx);

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
    assert_eq!(
        httpd_workloads(&container_pods),
        Vec::<u32>::new(),
        "containers left running after Ctrl-C"
    );
    assert_eq!(
        mounts_under(dir.path()),
        Vec::<String>::new(),
        "network namespaces or container roots left mounted after Ctrl-C"
    );
    for bridge in &bridges.0 {
        assert!(
            !std::path::Path::new("/sys/class/net").join(bridge).exists(),
            "the pod bridge {bridge} is left after Ctrl-C"
        );
    }
    let unreachable = berth(&["get", "pods"]);
    assert!(!unreachable.status.success());
}

/// berth up made a key (0600) and gave it to its servers: a Secret applied is
/// ciphertext in the store, as etcdctl reads it (with the control plane's client
/// certificate: without one the etcd port refuses), and served as written.
fn secrets_are_encrypted_with_the_key_berth_up_made(printed: &str, dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    assert!(
        printed.contains("Secrets are encrypted at rest with a new key"),
        "{printed}"
    );
    let key_file = dir.join("cluster/encryption-config.yaml");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", key_file.display());
    let manifest = dir.join("secret.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: hunter2\n",
    )
    .unwrap();
    let applied = berth(&["apply", "-f", &manifest.display().to_string()]);
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    // The etcd port is on TLS and takes only the cluster CA's client certificates.
    let pki = dir.join("cluster/pki");
    let etcdctl = |credentials: &[String]| {
        Command::new("etcdctl")
            .args(["--endpoints", "https://127.0.0.1:2379", "--dial-timeout=3s"])
            .args(credentials)
            .args(["get", "/registry/secrets/default/db", "--print-value-only"])
            .env("ETCDCTL_API", "3")
            .output()
            .expect("etcdctl (the test script installs it)")
    };
    let ca = format!("--cacert={}", pki.join("ca.crt").display());
    let refused = etcdctl(std::slice::from_ref(&ca));
    assert!(
        !refused.status.success() && refused.stdout.is_empty(),
        "the etcd port answered a client without a certificate: {}",
        String::from_utf8_lossy(&refused.stdout)
    );
    let stored = etcdctl(&[
        ca,
        format!("--cert={}", pki.join("store/client.crt").display()),
        format!("--key={}", pki.join("store/client.key").display()),
    ]);
    assert!(stored.status.success(), "{}", String::from_utf8_lossy(&stored.stderr));
    let stored = String::from_utf8_lossy(&stored.stdout).to_string();
    assert!(stored.starts_with("k8s:enc:aesgcm:v1:berth-1:"), "{stored}");
    assert!(
        !stored.contains("hunter2") && !stored.contains("aHVudGVyMg"),
        "{stored}"
    );
    let served = berth(&["get", "secret", "db", "-o", "json"]);
    let served: Value = serde_json::from_slice(&served.stdout).unwrap_or_default();
    assert_eq!(served["data"]["password"], "aHVudGVyMg==", "{served}");
    let deleted = berth(&["delete", "secret", "db"]);
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
}

/// `examples/web.yaml` on a host that runs containers: three replicas of busybox
/// `httpd` from the image berth up built and served, Running with the image's digest,
/// each answering on its pod IP from this host with a page naming its pod. Then the
/// deployment is deleted, which leaves no container and no mount (network namespace,
/// container root) behind, and the process variant can take the name.
/// Returns the pods' names.
fn serves_web_from_containers(printed: &str, dir: &std::path::Path) -> Vec<String> {
    assert!(
        printed.contains("127.0.0.1:5000/berth/busybox:stable"),
        "berth up did not name the example image: {printed}"
    );
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/web.yaml");
    let applied = berth(&["apply", "-f", example]);
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));

    let deadline = Instant::now() + Duration::from_secs(120);
    let running = loop {
        let pods = pods();
        let running: Vec<(String, String)> = pods
            .iter()
            .filter(|pod| pod["status"]["phase"] == "Running")
            .filter(|pod| {
                pod["status"]["containerStatuses"][0]["imageID"]
                    .as_str()
                    .is_some_and(|id| id.contains("sha256:"))
            })
            .filter_map(|pod| {
                let name = pod["metadata"]["name"].as_str()?.to_string();
                let ip = pod["status"]["podIP"].as_str().filter(|ip| !ip.is_empty())?.to_string();
                Some((name, ip))
            })
            .collect();
        if running.len() == 3 {
            break running;
        }
        assert!(
            Instant::now() < deadline,
            "the example never ran 3 replicas with an image ID and an IP:\n{}",
            serde_json::to_string_pretty(&pods).unwrap()
        );
        std::thread::sleep(Duration::from_millis(500));
    };

    for (name, ip) in &running {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match http_get(ip) {
                Ok(response) if response.contains(&format!("hello from {name}")) => break,
                other => assert!(
                    Instant::now() < deadline,
                    "{name} at {ip}:8080 did not serve its page: {other:?}"
                ),
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    let deleted = berth(&["delete", "-f", example]);
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
    let deadline = Instant::now() + Duration::from_secs(60);
    let names: Vec<String> = running.iter().map(|(name, _)| name.clone()).collect();
    while !pods().is_empty() || !httpd_workloads(&names).is_empty() || !mounts_under(dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the example's containers or mounts outlived their deployment: {:?}",
            mounts_under(dir)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    for (name, ip) in &running {
        assert!(
            http_get(ip).is_err(),
            "{name}'s IP {ip} still answers after its deletion"
        );
    }
    names
}

/// The PID of `berth up`'s child started with `--name=<name>`.
fn child_pid(up: u32, name: &str) -> Option<u32> {
    let flag = format!("--name={name}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        // The parent's PID is the second field after the command's closing parenthesis.
        let ppid: u32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        (ppid == up && cmdline.split(|b| *b == 0).any(|arg| arg == flag.as_bytes()) && !stat.contains(") Z "))
            .then_some(pid)
    })
}

/// The PID of the child `berth up` just restarted, looked for a few times: when it is
/// not found, what berth up printed next says why.
fn restarted_child(up: u32, name: &str, rx: &std::sync::mpsc::Receiver<String>) -> Result<u32, String> {
    for _ in 0..20 {
        if let Some(pid) = child_pid(up, name) {
            return Ok(pid);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let mut next = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        next.push_str(&line);
        next.push('\n');
    }
    Err(next)
}

/// Waits for berth up to print a line containing each of `parts`; returns it.
fn wait_for_line(rx: &std::sync::mpsc::Receiver<String>, parts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("berth up never printed {parts:?}; it printed:\n{seen}"));
        if parts.iter().all(|part| line.contains(part)) {
            return line;
        }
        seen.push_str(&line);
        seen.push('\n');
    }
}

/// kill -9 of the only control-plane replica, then of an agent: berth up names each
/// with its exit and restarts it, the API answers again, the node is Ready again and
/// the example's three web servers still run (the restarted agent adopts them) and
/// their logs are served through their agents.
fn survives_kill_9_of_a_replica_and_an_agent(up: u32, rx: &std::sync::mpsc::Receiver<String>) {
    for name in ["server-0", "node-0"] {
        let pid = child_pid(up, name).unwrap_or_else(|| panic!("berth up runs no {name}"));
        Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
        let exited = wait_for_line(rx, &[name, "exited", "signal 9 (SIGKILL)", "restarting it in 1s"]);
        let restarted = wait_for_line(rx, &[&format!("{name} restarted (pid")]);
        let new_pid = restarted_child(up, name, rx)
            .unwrap_or_else(|next| panic!("{restarted}, but no {name} runs; berth up went on:\n{next}"));
        assert_ne!(new_pid, pid, "{exited}\n{restarted}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let nodes = berth(&["get", "nodes"]);
            let table = String::from_utf8_lossy(&nodes.stdout).to_string();
            let served = nodes.status.success()
                && table.lines().filter(|line| line.contains(" Ready")).count() == 2
                && String::from_utf8_lossy(&berth(&["get", "pods"]).stdout)
                    .matches("Running")
                    .count()
                    == 3;
            // Logs come through each pod's agent: both agents serve.
            let logs_served = || {
                String::from_utf8_lossy(&berth(&["get", "pods", "-o", "name"]).stdout)
                    .lines()
                    .all(|pod| {
                        let logs = berth(&["logs", pod.trim_start_matches("pod/")]);
                        logs.status.success() && String::from_utf8_lossy(&logs.stdout).contains("Serving HTTP on")
                    })
            };
            if served && web_workloads().len() == 3 && logs_served() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster does not serve its 2 nodes and 3 pods after {name} restarted:\n{table}{}",
                String::from_utf8_lossy(&nodes.stderr)
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        assert_eq!(child_pid(up, name), Some(new_pid), "{name} restarted more than once");
    }
}
