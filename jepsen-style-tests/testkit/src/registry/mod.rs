//! A real image registry on loopback for a test: Debian's `docker-registry` (the CNCF
//! distribution registry), its storage in a temporary directory, optionally behind
//! basic auth (htpasswd with bcrypt entries), killed when dropped.
//!
//! ```text
//!  Registry::start ── config.yml (storage dir, 127.0.0.1:free port, htpasswd?)
//!     │                docker-registry serve config.yml, its output in registry.log
//!     │                wait until GET /v2/ answers (200, or 401 behind auth)
//!     ▼
//!  push / push_layout ── each blob: HEAD, else POST /v2/<repo>/blobs/uploads/ and PUT
//!     │                  <location>?digest=; then PUT /v2/<repo>/manifests/<tag>
//!     ▼
//!  fetch_manifest / fetch_blob / request ── what a puller sees, for checks
//! ```
//!
//! The registry speaks plain HTTP, as Docker and containerd allow for a registry on
//! loopback. Nothing here needs root.

//!
//! The push, the registry's config and its HTTP client are `berth-image-layout`'s
//! (`berth up` launches and pushes to the same registry); this module owns the
//! process and the credentials.

mod push;

use std::io;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use berth_image_layout::registry::{HtpasswdAuth, Pusher, config_yaml, is_serving};

pub use berth_image_layout::registry::{Response, docker_registry_binary, http};

use crate::Process;

/// A running `docker-registry`; dropping it kills the process and removes its storage.
pub struct Registry {
    host: String,
    credentials: Option<(String, String)>,
    process: Process,
    // Last, so the process is killed before its storage goes.
    _dir: tempfile::TempDir,
}

const SKIP_NOTE: &str = "docker-registry (Debian's package; scripts/test.sh installs it)";

impl Registry {
    /// A registry that anyone may push to and pull from.
    pub fn start() -> anyhow::Result<Self> {
        Self::launch(None)
    }

    /// [`Registry::start_or_skip`] listening on `ip` (a test network's address that
    /// is this machine's, for pullers in other network namespaces) instead of
    /// 127.0.0.1; its pullers must treat it as an insecure (plain HTTP) registry.
    pub fn start_on_or_skip(ip: std::net::IpAddr) -> Option<Self> {
        if docker_registry_binary().is_none() {
            crate::skip(SKIP_NOTE);
            return None;
        }
        Some(Self::launch_on(ip, None).expect("starting docker-registry"))
    }

    /// A registry that answers 401 to requests without `user`'s basic credentials.
    pub fn start_with_htpasswd(user: &str, password: &str) -> anyhow::Result<Self> {
        Self::launch(Some((user.to_string(), password.to_string())))
    }

    /// [`Registry::start`], or `None` after [`crate::skip`] (which panics under CI)
    /// when the host has no `docker-registry`. Panics if it is there but fails.
    pub fn start_or_skip() -> Option<Self> {
        Self::launch_or_skip(None)
    }

    /// [`Registry::start_with_htpasswd`], or `None` as [`Registry::start_or_skip`].
    pub fn start_with_htpasswd_or_skip(user: &str, password: &str) -> Option<Self> {
        Self::launch_or_skip(Some((user.to_string(), password.to_string())))
    }

    fn launch_or_skip(credentials: Option<(String, String)>) -> Option<Self> {
        if docker_registry_binary().is_none() {
            crate::skip(SKIP_NOTE);
            return None;
        }
        Some(Self::launch(credentials).expect("starting docker-registry"))
    }

    fn launch(credentials: Option<(String, String)>) -> anyhow::Result<Self> {
        Self::launch_on(std::net::Ipv4Addr::LOCALHOST.into(), credentials)
    }

    fn launch_on(ip: std::net::IpAddr, credentials: Option<(String, String)>) -> anyhow::Result<Self> {
        let binary = docker_registry_binary().context(SKIP_NOTE)?;
        let dir = tempfile::Builder::new().prefix("berth-registry-").tempdir()?;
        let port = crate::free_port();
        let host = format!("{ip}:{port}");
        let htpasswd = dir.path().join("htpasswd");
        if let Some((user, password)) = &credentials {
            std::fs::write(&htpasswd, htpasswd_line(user, password)?)?;
        }
        let auth = credentials.as_ref().map(|_| HtpasswdAuth {
            realm: "berth-test-registry",
            path: &htpasswd,
        });
        let config = config_yaml(&dir.path().join("storage"), &host, "berth-test-registry", auth);
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config)?;

        let mut process = Process::new("docker-registry", binary, dir.path().join("registry.log"))
            .with_args(["serve".to_string(), config_path.display().to_string()]);
        process.start()?;
        let mut registry = Self {
            host,
            credentials,
            process,
            _dir: dir,
        };
        registry.wait_until_serving()?;
        Ok(registry)
    }

    /// Polls `GET /v2/` until the registry answers; an error with its log if it exits.
    fn wait_until_serving(&mut self) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        loop {
            if is_serving(&self.host) {
                return Ok(());
            }
            if let Some(status) = self.process.reap_exited() {
                bail!("docker-registry exited ({status}):\n{}", self.process.log_text());
            }
            if started.elapsed() > crate::HANG_TIMEOUT {
                bail!(
                    "docker-registry did not answer on {}:\n{}",
                    self.host,
                    self.process.log_text()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT` (or the address it was started on), the registry part of an
    /// image reference.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `127.0.0.1:PORT/<repo>:<tag>`, what a pod's `image` names.
    pub fn reference(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.host)
    }

    /// `127.0.0.1:PORT/<repo>@<digest>`.
    pub fn reference_by_digest(&self, repo: &str, digest: &str) -> String {
        format!("{}/{repo}@{digest}", self.host)
    }

    /// Where the registry keeps its blobs (`docker/registry/v2/blobs/sha256/<2>/<hex>/data`),
    /// for tests that tamper with what it serves.
    pub fn storage_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("storage")
    }

    /// The user and password of a registry behind htpasswd.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The `.dockerconfigjson` of a `kubernetes.io/dockerconfigjson` pull secret for
    /// this registry with `user` and `password` (the registry's own credentials, or
    /// wrong ones for a test of refusal).
    pub fn docker_config_json(&self, user: &str, password: &str) -> String {
        let auth = BASE64.encode(format!("{user}:{password}"));
        serde_json::json!({"auths": {&self.host: {"username": user, "password": password, "auth": auth}}}).to_string()
    }

    /// What the registry printed, for a failing test's message.
    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// A client of the registry with its credentials, if it has any: what pushes
    /// and checks go through.
    pub fn pusher(&self) -> Pusher {
        let pusher = Pusher::new(&self.host);
        match &self.credentials {
            Some((user, password)) => {
                pusher.with_authorization(format!("Basic {}", BASE64.encode(format!("{user}:{password}"))))
            }
            None => pusher,
        }
    }

    /// A request to the registry with its credentials, if it has any.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> io::Result<Response> {
        self.pusher().request(method, path, headers, body)
    }
}

/// One htpasswd line with a bcrypt hash, the only kind the registry accepts. The
/// lowest cost (4) keeps each authenticated request cheap; the salt is fixed, which
/// is fine for a password that lives as long as a test.
fn htpasswd_line(user: &str, password: &str) -> anyhow::Result<String> {
    let hash = bcrypt::hash_with_salt(password, 4, *b"berth-test-salt!").map_err(|e| anyhow::anyhow!("bcrypt: {e}"))?;
    Ok(format!("{user}:{}\n", hash.format_for_version(bcrypt::Version::TwoY)))
}
