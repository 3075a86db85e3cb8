//! A cluster of real `berth store` processes on loopback, for integration tests.
//! Every replica has its own data dir and log file under one temporary folder;
//! dropping the cluster kills what is still running.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `berth` binary, built next to this test's binary (`target/<profile>/berth`):
/// the store's own tests run its role through the one binary, as users do.
pub static BERTH: std::sync::LazyLock<PathBuf> = std::sync::LazyLock::new(|| {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/store_api-… → target/<profile>/berth
    let berth = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .join("berth");
    assert!(
        berth.exists(),
        "{} is missing: build it first with `cargo build -p berth` (scripts/test.sh builds the whole workspace)",
        berth.display()
    );
    berth
});

pub struct Replica {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Replica {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub replicas: Vec<Replica>,
    extra_args: Vec<String>,
}

pub use berth_store::testing::free_port;

impl Cluster {
    /// Starts `n` replicas and waits until they have a leader.
    pub async fn start(n: usize, extra_args: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let replicas = (1..=n)
            .map(|i| {
                let name = format!("n{i}");
                Replica {
                    data_dir: dir.path().join(&name),
                    log: dir.path().join(format!("{name}.log")),
                    name,
                    client_port: free_port(),
                    peer_port: free_port(),
                    child: None,
                }
            })
            .collect();
        let mut cluster = Cluster {
            dir,
            replicas,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        for i in 0..n {
            cluster.start_replica(i);
        }
        cluster.wait_for_leader(Duration::from_secs(20)).await;
        cluster
    }

    pub fn initial_cluster(&self) -> String {
        self.replicas
            .iter()
            .map(|r| format!("{}=http://127.0.0.1:{}", r.name, r.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn store_args(&self, i: usize) -> Vec<String> {
        let r = &self.replicas[i];
        let mut args: Vec<String> = vec![
            "store".into(),
            "--name".into(),
            r.name.clone(),
            "--data-dir".into(),
            r.data_dir.display().to_string(),
            "--listen-client-urls".into(),
            r.endpoint(),
            "--advertise-client-urls".into(),
            r.endpoint(),
            "--listen-peer-urls".into(),
            format!("http://127.0.0.1:{}", r.peer_port),
            "--initial-advertise-peer-urls".into(),
            format!("http://127.0.0.1:{}", r.peer_port),
            "--initial-cluster".into(),
            self.initial_cluster(),
            "--initial-cluster-token".into(),
            "berth-test".into(),
        ];
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// Adds a replica that is not started yet (for MemberAdd); returns its index.
    pub fn push_replica(&mut self) -> usize {
        let i = self.replicas.len() + 1;
        let name = format!("n{i}");
        self.replicas.push(Replica {
            data_dir: self.dir.path().join(&name),
            log: self.dir.path().join(format!("{name}.log")),
            name,
            client_port: free_port(),
            peer_port: free_port(),
            child: None,
        });
        i - 1
    }

    pub fn start_replica(&mut self, i: usize) {
        self.start_replica_with(i, &[]);
    }

    pub fn start_replica_with(&mut self, i: usize, extra: &[&str]) {
        let mut args = self.store_args(i);
        args.extend(extra.iter().map(|s| s.to_string()));
        let r = &mut self.replicas[i];
        assert!(r.child.is_none(), "{} is already running", r.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&r.log)
            .unwrap();
        let child = Command::new(&*BERTH)
            .args(&args)
            .env("RUST_LOG", "info,openraft=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning berth store");
        r.child = Some(child);
    }

    /// kill -9.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.replicas[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.replicas[i].child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.replicas
            .iter()
            .filter(|r| r.is_running())
            .map(Replica::endpoint)
            .collect()
    }

    pub async fn client(&self) -> etcd_client::Client {
        connect(&self.endpoints()).await
    }

    pub async fn client_of(&self, i: usize) -> etcd_client::Client {
        connect(&[self.replicas[i].endpoint()]).await
    }

    /// The index of the replica that leads, once every running replica agrees.
    pub async fn wait_for_leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.agreed_leader().await {
                return leader;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self
                    .replicas
                    .iter()
                    .map(|r| format!("== {}\n{}", r.name, r.log_text()))
                    .collect();
                panic!("no leader within {timeout:?}\n{}", logs.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn agreed_leader(&self) -> Option<usize> {
        let mut leader_id = None;
        for r in self.replicas.iter().filter(|r| r.is_running()) {
            let mut client = tokio::time::timeout(
                Duration::from_secs(2),
                etcd_client::Client::connect([r.endpoint()], None),
            )
            .await
            .ok()?
            .ok()?;
            let status = tokio::time::timeout(Duration::from_secs(2), client.status())
                .await
                .ok()?
                .ok()?;
            if status.leader() == 0 || leader_id.is_some_and(|l| l != status.leader()) {
                return None;
            }
            leader_id = Some(status.leader());
        }
        for (i, r) in self.replicas.iter().enumerate().filter(|(_, r)| r.is_running()) {
            let mut client = etcd_client::Client::connect([r.endpoint()], None).await.ok()?;
            let status = client.status().await.ok()?;
            if Some(status.header()?.member_id()) == leader_id {
                return Some(i);
            }
        }
        None
    }

    /// Runs etcdctl against the given endpoints.
    pub fn etcdctl(&self, endpoints: &[String], args: &[&str]) -> Output {
        etcdctl(endpoints, args)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.replicas.len() {
            self.kill(i);
        }
        if std::thread::panicking() {
            // Keep the logs of a failed test where a person can read them.
            let kept = self.dir.path().to_path_buf();
            std::mem::forget(std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()));
            eprintln!("replica logs kept in {}", kept.display());
        }
    }
}

pub async fn connect(endpoints: &[String]) -> etcd_client::Client {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(10));
    etcd_client::Client::connect(endpoints, Some(options))
        .await
        .expect("connecting to berth")
}

/// Runs etcdctl against `endpoints`, given as URLs, the way etcd's docs write them.
/// (etcdctl 3.4 then names the URL as the HTTP/2 authority of the connections it dials
/// to one endpoint, for `endpoint status` and the like.)
pub fn etcdctl(endpoints: &[String], args: &[&str]) -> Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg("--command-timeout=10s")
        .args(args)
        .output()
        .expect("running etcdctl (Debian package etcd-client)")
}

pub fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "etcdctl failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Retries `f` until it returns `Some` or the deadline passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
