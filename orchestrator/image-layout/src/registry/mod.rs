//! A registry on loopback, from the outside: pushing images to it over the registry
//! HTTP API ([`Pusher`]) and launching Debian's `docker-registry` (the CNCF
//! distribution registry): where its binary is, the config it is given, and whether
//! it answers yet. The caller owns the process, so `berth up` and the test kit each
//! supervise it their own way (a child of `berth up`, a test's Drop guard).
//!
//! ```text
//!  config_yaml ── storage dir, 127.0.0.1:PORT, htpasswd?   → docker-registry serve FILE
//!  is_serving  ── GET /v2/ answers 200 (or 401 behind auth)
//!  Pusher::push / push_layout ── each blob: HEAD, else POST /v2/<repo>/blobs/uploads/
//!                                and PUT <location>?digest=; then PUT the manifest
//! ```
//!
//! The registry speaks plain HTTP, as Docker and containerd allow for a registry on
//! loopback; so does the client here ([`http`]).

pub mod http;
mod push;

use std::path::{Path, PathBuf};

pub use http::Response;
pub use push::Pusher;

/// Where Debian installs the registry (package `docker-registry`).
pub const DOCKER_REGISTRY: &str = "docker-registry";

/// The registry's binary, from `PATH` or Debian's `/usr/bin`.
pub fn docker_registry_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(DOCKER_REGISTRY));
    on_path
        .chain([PathBuf::from("/usr/bin").join(DOCKER_REGISTRY)])
        .find(|candidate| candidate.is_file())
}

/// Basic auth for a registry: an htpasswd file of bcrypt entries and the realm the
/// registry names in its 401s.
pub struct HtpasswdAuth<'a> {
    pub realm: &'a str,
    pub path: &'a Path,
}

/// The config of a `docker-registry serve`: blobs under `storage` (deletes allowed,
/// so a test can remove what it pushed), listening on `addr` (`127.0.0.1:PORT`),
/// quiet logs, and basic auth when `auth` is given. `secret` signs upload state;
/// any fixed string does for one registry.
pub fn config_yaml(storage: &Path, addr: &str, secret: &str, auth: Option<HtpasswdAuth<'_>>) -> String {
    let mut config = format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
         http:\n  addr: {addr}\n  secret: {secret}\n",
        storage = storage.display(),
    );
    if let Some(auth) = auth {
        config.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: {}\n    path: {}\n",
            auth.realm,
            auth.path.display()
        ));
    }
    config
}

/// Whether a registry answers the API's version check on `host` (`127.0.0.1:PORT`):
/// 200, or 401 from one behind auth.
pub fn is_serving(host: &str) -> bool {
    http::request(host, "GET", "/v2/", &[], &[]).is_ok_and(|response| matches!(response.status, 200 | 401))
}
