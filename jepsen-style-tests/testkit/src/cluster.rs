//! A cluster of replicas on loopback: each a [`Process`] with its own name, ports,
//! data dir and log, all started with etcd's flags for one initial cluster.
//!
//! Dropping the cluster kills (SIGKILL) every replica still running.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::process::Process;
use crate::spec::ClusterSpec;
use crate::{System, free_port};

/// How long [`Cluster::stop`] waits for a replica to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub struct Replica {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    /// Start with `--initial-cluster-state existing`: it was added to a running
    /// cluster (set by [`Cluster::add_replica`]).
    pub joins_existing: bool,
    /// `--dial-peer-urls`, `name=url,…`: where this replica dials its peers when that
    /// is not their own peer URL (through proxies that cut or slow links, say).
    pub dial_peer_urls: Option<String>,
    /// Flags of this replica alone, after the cluster's.
    pub args: Vec<String>,
    /// `http`, or `https` when the cluster runs TLS.
    pub scheme: &'static str,
    process: Process,
}

impl Replica {
    pub fn endpoint(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.peer_port)
    }

    /// Started and not yet seen to exit (a paused replica runs).
    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    pub fn is_paused(&self) -> bool {
        self.process.is_paused()
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    pub fn log_tail(&self, lines: usize) -> Vec<String> {
        self.process.log_tail(lines)
    }
}

pub struct Cluster {
    spec: ClusterSpec,
    pub replicas: Vec<Replica>,
    dir: PathBuf,
    /// The temporary dir `dir` is, when the spec named none.
    temp: Option<tempfile::TempDir>,
}

impl Cluster {
    /// The spec's TLS, which the kit's own clients use too.
    pub fn tls(&self) -> Option<&crate::ClusterTls> {
        self.spec.tls.as_ref()
    }

    /// Lays the cluster out (names n1…nN, reserved ports, data dirs and logs) without
    /// starting anything, so a caller can set per-replica flags first.
    pub fn new(spec: ClusterSpec) -> anyhow::Result<Cluster> {
        let (dir, temp) = match &spec.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                (dir.clone(), None)
            }
            None => {
                let temp = tempfile::tempdir().context("creating a temporary dir")?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let mut cluster = Cluster {
            replicas: Vec::with_capacity(spec.size),
            spec,
            dir,
            temp,
        };
        for _ in 0..cluster.spec.size {
            cluster.push_replica(false);
        }
        Ok(cluster)
    }

    /// [`Cluster::new`], then every replica started.
    pub fn start(spec: ClusterSpec) -> anyhow::Result<Cluster> {
        let mut cluster = Cluster::new(spec)?;
        cluster.start_all()?;
        Ok(cluster)
    }

    fn push_replica(&mut self, joins_existing: bool) -> usize {
        let index = self.replicas.len();
        let name = format!("n{}", index + 1);
        let mut process = Process::new(&name, &self.spec.binary, self.dir.join(format!("{name}.log")));
        for (key, value) in &self.spec.env {
            process = process.with_env(key, value);
        }
        self.replicas.push(Replica {
            data_dir: self.dir.join(&name),
            name,
            client_port: free_port(),
            peer_port: free_port(),
            joins_existing,
            dial_peer_urls: None,
            args: Vec::new(),
            scheme: if self.spec.tls.is_some() { "https" } else { "http" },
            process,
        });
        index
    }

    /// A new replica that will join the running cluster (after a MemberAdd); not
    /// started. Returns its index.
    pub fn add_replica(&mut self) -> usize {
        self.push_replica(true)
    }

    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    pub fn system(&self) -> System {
        self.spec.system
    }

    /// Where the data dirs and logs are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `--initial-cluster`: every replica at its own peer URL.
    pub fn initial_cluster(&self) -> String {
        self.replicas
            .iter()
            .map(|r| format!("{}={}", r.name, r.peer_url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The command line of replica `index`, without the binary.
    pub fn args(&self, index: usize) -> Vec<String> {
        let replica = &self.replicas[index];
        let mut args: Vec<String> = self.spec.system.subcommand().map(String::from).into_iter().collect();
        let flags = [
            ("--name", replica.name.clone()),
            ("--data-dir", replica.data_dir.display().to_string()),
            ("--listen-client-urls", replica.endpoint()),
            ("--advertise-client-urls", replica.endpoint()),
            ("--listen-peer-urls", replica.peer_url()),
            ("--initial-advertise-peer-urls", replica.peer_url()),
            ("--initial-cluster", self.initial_cluster()),
            ("--initial-cluster-token", self.spec.token.clone()),
        ];
        for (flag, value) in flags {
            args.push(flag.to_string());
            args.push(value);
        }
        if let Some(dial) = &replica.dial_peer_urls {
            args.push("--dial-peer-urls".to_string());
            args.push(dial.clone());
        }
        if replica.joins_existing {
            args.push("--initial-cluster-state".to_string());
            args.push("existing".to_string());
        }
        if let Some(tls) = &self.spec.tls {
            args.extend(tls.flags());
        }
        args.extend(self.spec.args.iter().cloned());
        args.extend(replica.args.iter().cloned());
        args
    }

    /// The command line of replica `index`, binary first, for reports.
    pub fn command_line(&self, index: usize) -> String {
        let mut words = vec![self.spec.binary.display().to_string()];
        words.extend(self.args(index));
        words.join(" ")
    }

    /// Starts every replica that does not run.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for index in 0..self.replicas.len() {
            if !self.replicas[index].is_running() {
                self.start_replica(index)?;
            }
        }
        Ok(())
    }

    /// Starts replica `index` on its data dir; an error if it runs already.
    pub fn start_replica(&mut self, index: usize) -> anyhow::Result<()> {
        let args = self.args(index);
        let process = &mut self.replicas[index].process;
        process.set_args(args);
        process
            .start()
            .with_context(|| format!("{} replica {}", self.spec.system.name(), process.name()))
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self, index: usize) {
        self.replicas[index].process.kill();
    }

    /// SIGTERM and wait for a clean exit (SIGKILL after a grace period).
    pub fn stop(&mut self, index: usize) {
        self.replicas[index].process.stop(STOP_GRACE);
    }

    /// SIGSTOP.
    pub fn pause(&mut self, index: usize) -> anyhow::Result<()> {
        Ok(self.replicas[index].process.pause()?)
    }

    /// SIGCONT.
    pub fn resume(&mut self, index: usize) -> anyhow::Result<()> {
        Ok(self.replicas[index].process.resume()?)
    }

    /// Kills replica `index` if it runs and starts it again on its data dir.
    pub fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        self.kill(index);
        self.start_replica(index)
    }

    /// Kills replica `index` and deletes its data dir, as for a replacement machine.
    pub fn wipe(&mut self, index: usize) -> anyhow::Result<()> {
        self.kill(index);
        let dir = &self.replicas[index].data_dir;
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("wiping {}", dir.display()))?;
        }
        Ok(())
    }

    /// Every replica's client URL, running or not.
    pub fn endpoints(&self) -> Vec<String> {
        self.replicas.iter().map(Replica::endpoint).collect()
    }

    pub fn running_endpoints(&self) -> Vec<String> {
        self.replicas
            .iter()
            .filter(|r| r.is_running())
            .map(Replica::endpoint)
            .collect()
    }

    /// Replicas that exited on their own since they were started, and how; they now
    /// count as not running.
    pub fn reap_exited(&mut self) -> Vec<(usize, ExitStatus)> {
        let mut exited = Vec::new();
        for (index, replica) in self.replicas.iter_mut().enumerate() {
            if let Some(status) = replica.process.reap_exited() {
                exited.push((index, status));
            }
        }
        exited
    }

    /// Fails, with the logs' tails, when a replica that should run has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(&(index, status)) = self.reap_exited().first() {
            bail!(
                "{} replica {} exited with {status}{}",
                self.spec.system.name(),
                self.replicas[index].name,
                self.log_tails(15)
            );
        }
        Ok(())
    }

    /// The last `lines` lines of every replica's log, for error messages.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut text = String::new();
        for replica in &self.replicas {
            let tail = replica.log_tail(lines).join("\n    ");
            text.push_str(&format!("\n  --- {} log tail ---\n    {tail}", replica.name));
        }
        text
    }

    /// The resident set size of each running replica, in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<Vec<u64>> {
        self.replicas
            .iter()
            .filter(|r| r.is_running())
            .map(|r| r.process.rss_kib().with_context(|| format!("the RSS of {}", r.name)))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for replica in &mut self.replicas {
            replica.process.kill();
        }
        if std::thread::panicking() {
            // Keep the logs of a failed test where a person can read them.
            let kept = match self.temp.take() {
                Some(temp) => temp.keep(),
                None => self.dir.clone(),
            };
            eprintln!("replica logs kept in {}", kept.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_etcds() -> Cluster {
        Cluster::new(
            ClusterSpec::new(System::Etcd, "/usr/bin/etcd", 2)
                .token("t")
                .args(["--heartbeat-interval", "100"]),
        )
        .unwrap()
    }

    #[test]
    fn every_replica_gets_its_own_ports_dirs_and_one_initial_cluster() {
        let cluster = two_etcds();
        let [n1, n2] = &cluster.replicas[..] else {
            panic!("two replicas")
        };
        assert_eq!((n1.name.as_str(), n2.name.as_str()), ("n1", "n2"));
        let mut ports = vec![n1.client_port, n1.peer_port, n2.client_port, n2.peer_port];
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 4, "four distinct ports");
        assert_eq!(n2.data_dir, cluster.dir().join("n2"));
        assert_eq!(n2.log_path(), cluster.dir().join("n2.log"));
        assert_eq!(
            cluster.initial_cluster(),
            format!("n1={},n2={}", n1.peer_url(), n2.peer_url())
        );
    }

    #[test]
    fn the_command_line_is_etcds_flags_then_the_clusters_then_the_replicas() {
        let mut cluster = two_etcds();
        cluster.replicas[1].args = vec!["--own".into()];
        cluster.replicas[1].dial_peer_urls = Some("n1=http://127.0.0.1:1".into());
        let n2 = &cluster.replicas[1];
        let expected = [
            "--name",
            "n2",
            "--data-dir",
            &n2.data_dir.display().to_string(),
            "--listen-client-urls",
            &n2.endpoint(),
            "--advertise-client-urls",
            &n2.endpoint(),
            "--listen-peer-urls",
            &n2.peer_url(),
            "--initial-advertise-peer-urls",
            &n2.peer_url(),
            "--initial-cluster",
            &cluster.initial_cluster(),
            "--initial-cluster-token",
            "t",
            "--dial-peer-urls",
            "n1=http://127.0.0.1:1",
            "--heartbeat-interval",
            "100",
            "--own",
        ]
        .map(String::from);
        assert_eq!(cluster.args(1), expected);
        assert!(cluster.command_line(0).starts_with("/usr/bin/etcd --name n1 "));
    }

    #[test]
    fn a_tls_cluster_is_on_https_with_the_same_certificate_flags_for_every_replica() {
        let tls = crate::ClusterTls {
            ca_file: "ca.pem".into(),
            cert_file: "m.pem".into(),
            key_file: "m-key.pem".into(),
        };
        let cluster = Cluster::new(ClusterSpec::new(System::Etcd, "/usr/bin/etcd", 2).tls(tls)).unwrap();
        let n1 = &cluster.replicas[0];
        assert!(n1.endpoint().starts_with("https://127.0.0.1:"), "{}", n1.endpoint());
        assert!(
            cluster
                .initial_cluster()
                .contains(&format!("n2=https://127.0.0.1:{}", cluster.replicas[1].peer_port))
        );
        let args = cluster.args(0);
        for pair in [
            ["--cert-file", "m.pem"],
            ["--key-file", "m-key.pem"],
            ["--trusted-ca-file", "ca.pem"],
            ["--peer-cert-file", "m.pem"],
            ["--peer-key-file", "m-key.pem"],
            ["--peer-trusted-ca-file", "ca.pem"],
        ] {
            assert!(
                args.windows(2).any(|window| window == pair),
                "{pair:?} missing from {args:?}"
            );
        }
        assert!(
            args.contains(&"--client-cert-auth".to_string()) && args.contains(&"--peer-client-cert-auth".to_string())
        );
    }

    #[test]
    fn berth_gets_its_role_and_an_added_replica_joins_the_existing_cluster() {
        let mut cluster = Cluster::new(ClusterSpec::new(System::BerthServer, "berth", 1)).unwrap();
        assert_eq!(cluster.args(0)[..3], ["server", "--name", "n1"]);
        let added = cluster.add_replica();
        assert_eq!(added, 1);
        let args = cluster.args(added);
        assert_eq!(args[..3], ["server", "--name", "n2"]);
        assert!(args.ends_with(&["--initial-cluster-state".into(), "existing".into()]));
        assert!(
            cluster.args(0).iter().any(|a| a.contains("n2=")),
            "the initial cluster names it"
        );
    }

    #[test]
    fn a_replica_that_exits_is_reported_with_its_log_and_a_temporary_dir_goes_with_the_cluster() {
        use std::os::unix::fs::PermissionsExt;
        let bin = tempfile::tempdir().unwrap();
        let failing = bin.path().join("failing-etcd");
        std::fs::write(&failing, "#!/bin/sh\necho cannot start\nexit 2\n").unwrap();
        std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut cluster = Cluster::start(ClusterSpec::new(System::Etcd, &failing, 1)).unwrap();
        let dir = cluster.dir().to_path_buf();
        let error = crate::eventually_blocking("the replica to exit", || cluster.check_running().err());
        let message = format!("{error:#}");
        assert!(message.contains("etcd replica n1 exited"), "{message}");
        assert!(message.contains("cannot start"), "{message}");
        assert!(!cluster.replicas[0].is_running());
        drop(cluster);
        assert!(!dir.exists(), "{} is deleted", dir.display());
    }
}
