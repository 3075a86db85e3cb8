//! What a cluster runs: which server, how many replicas, and the flags and
//! environment every replica gets.

use std::path::PathBuf;

/// The server a cluster's replicas run. All three take etcd's flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    /// `berth store`: the replicated store alone.
    BerthStore,
    /// `berth server`: the store with the orchestrator's API and control loops.
    BerthServer,
    /// etcd itself (the benches compare against it).
    Etcd,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::BerthStore => "berth store",
            System::BerthServer => "berth server",
            System::Etcd => "etcd",
        }
    }

    /// The words before the flags.
    pub(crate) fn subcommand(self) -> Option<&'static str> {
        match self {
            System::BerthStore => Some("store"),
            System::BerthServer => Some("server"),
            System::Etcd => None,
        }
    }
}

/// berth's usual test logging: its own info lines, openraft's warnings only.
pub const QUIET_RAFT_LOG: &str = "info,openraft=warn";

#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub system: System,
    pub binary: PathBuf,
    /// Replicas at the start; more can be added later.
    pub size: usize,
    /// Where the data dirs and logs go; `None` for a temporary dir that is deleted
    /// with the cluster (and kept, and named, when a test panics).
    pub dir: Option<PathBuf>,
    /// `--initial-cluster-token`.
    pub token: String,
    /// Flags every replica gets after the ones the cluster writes.
    pub args: Vec<String>,
    /// Environment every replica gets besides the inherited one.
    pub env: Vec<(String, String)>,
    /// TLS on the client and peer URLs (https), from one CA; `None` for http.
    pub tls: Option<ClusterTls>,
}

/// One certificate (for 127.0.0.1, good for servers and clients alike) and the CA that
/// signed it, as PEM files. Every replica serves and dials its peers with it, demanding
/// theirs (etcd's `--client-cert-auth` and `--peer-client-cert-auth`), and the kit's
/// own clients present it too.
#[derive(Clone, Debug)]
pub struct ClusterTls {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl ClusterTls {
    /// The TLS flags, the same for etcd and berth.
    pub fn flags(&self) -> Vec<String> {
        let (ca, cert, key) = (
            self.ca_file.display().to_string(),
            self.cert_file.display().to_string(),
            self.key_file.display().to_string(),
        );
        [
            ("--cert-file", &cert),
            ("--key-file", &key),
            ("--trusted-ca-file", &ca),
            ("--peer-cert-file", &cert),
            ("--peer-key-file", &key),
            ("--peer-trusted-ca-file", &ca),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value.clone()])
        .chain(["--client-cert-auth".to_string(), "--peer-client-cert-auth".to_string()])
        .collect()
    }
}

impl ClusterSpec {
    /// `size` replicas of `system` run by `binary`, in a temporary dir.
    pub fn new(system: System, binary: impl Into<PathBuf>, size: usize) -> Self {
        Self {
            system,
            binary: binary.into(),
            size,
            dir: None,
            token: "berth-test".to_string(),
            args: Vec::new(),
            env: Vec::new(),
            tls: None,
        }
    }

    /// `berth store` replicas of the `berth` next to the running binary, logging
    /// [`QUIET_RAFT_LOG`].
    pub fn berth_store(size: usize) -> Self {
        Self::new(System::BerthStore, crate::berth_binary(), size).env("RUST_LOG", QUIET_RAFT_LOG)
    }

    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = token.into();
        self
    }

    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(|arg| arg.as_ref().to_string()));
        self
    }

    /// https client and peer URLs with these certificates.
    pub fn tls(mut self, tls: ClusterTls) -> Self {
        self.tls = Some(tls);
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}
