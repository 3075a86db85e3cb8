//! Where the commands connect and as whom, as kubectl decides it: the kubeconfig
//! from `--kubeconfig`, else the first file of `$KUBECONFIG`, else `~/.kube/config`;
//! its current context gives the server, the CA and the user (a client certificate
//! or a token). `--server` (or `$BERTH_SERVER`) overrides the server, as kubectl's
//! `--server` does, keeping the credentials.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_pki::kubeconfig::{Kubeconfig, Resolved};

use super::{DEFAULT_SERVERS, servers};

/// What a client of the API needs.
pub struct Connection {
    pub servers: Vec<String>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub token: Option<String>,
}

/// Where the settings come from.
#[derive(Debug, Default, Clone)]
pub struct Sources<'a> {
    pub server_flag: Option<&'a str>,
    pub server_env: Option<&'a str>,
    pub kubeconfig_flag: Option<&'a Path>,
    pub kubeconfig_env: Option<&'a str>,
    pub home: Option<&'a Path>,
}

/// The kubeconfig file to read, if any: a file named by the flag must exist.
fn kubeconfig_path(sources: &Sources) -> Result<Option<PathBuf>, String> {
    if let Some(path) = sources.kubeconfig_flag {
        if !path.exists() {
            return Err(format!("--kubeconfig {}: no such file", path.display()));
        }
        return Ok(Some(path.to_path_buf()));
    }
    if let Some(list) = sources.kubeconfig_env.filter(|l| !l.is_empty()) {
        return Ok(list.split(':').map(PathBuf::from).find(|p| p.exists()));
    }
    Ok(sources
        .home
        .map(|home| home.join(".kube/config"))
        .filter(|p| p.exists()))
}

/// The kubeconfig's current context, resolved; none when there is no file or it has
/// no context (kubectl's `KUBECONFIG=/dev/null`).
fn resolved(sources: &Sources) -> Result<Option<Resolved>, String> {
    let Some(path) = kubeconfig_path(sources)? else {
        return Ok(None);
    };
    let config = Kubeconfig::read(&path).map_err(|e| e.to_string())?;
    if config.current_context.is_empty() {
        return Ok(None);
    }
    let base = path.parent().unwrap_or(Path::new("."));
    config
        .resolve(None, base)
        .map(Some)
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub fn connection(sources: &Sources) -> Result<Connection, String> {
    let resolved = resolved(sources)?;
    let chosen_server = [sources.server_flag, sources.server_env]
        .into_iter()
        .flatten()
        .find(|s| !s.trim().is_empty());
    let servers = match (chosen_server, &resolved) {
        (Some(server), _) => servers(Some(server), None),
        (None, Some(resolved)) => servers(Some(&resolved.server), None),
        (None, None) => servers(Some(DEFAULT_SERVERS), None),
    };
    let Some(resolved) = resolved else {
        return Ok(Connection {
            servers,
            tls: None,
            token: None,
        });
    };
    if resolved.insecure_skip_tls_verify {
        return Err(
            "the kubeconfig's insecure-skip-tls-verify is not supported: give the cluster's certificate-authority"
                .into(),
        );
    }
    let tls = match &resolved.ca_pem {
        Some(ca) => Some(
            berth_pki::tls::client_config(ca, resolved.client.as_ref(), &[b"http/1.1"])
                .map_err(|e| format!("the kubeconfig: {e}"))?,
        ),
        None => None,
    };
    Ok(Connection {
        servers,
        tls,
        token: resolved.token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_pki::{Ca, Profile};

    #[test]
    fn the_flag_then_the_environment_then_home_and_server_overrides_keep_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::create("test-ca").unwrap();
        let admin = ca.issue(&Profile::client("admin", &[])).unwrap();
        let config = Kubeconfig::for_identity(
            "berth",
            "https://127.0.0.1:6443",
            &ca.identity.cert_pem,
            "admin",
            &admin,
        );
        let file = dir.path().join("admin.kubeconfig");
        config.write(&file).unwrap();

        let from_flag = connection(&Sources {
            kubeconfig_flag: Some(&file),
            ..Sources::default()
        })
        .unwrap();
        assert_eq!(from_flag.servers, ["https://127.0.0.1:6443"]);
        assert!(from_flag.tls.is_some());

        let env = format!("/nonexistent:{}", file.display());
        let overridden = connection(&Sources {
            server_flag: Some("https://10.0.0.1:6443"),
            kubeconfig_env: Some(&env),
            ..Sources::default()
        })
        .unwrap();
        assert_eq!(overridden.servers, ["https://10.0.0.1:6443"]);
        assert!(overridden.tls.is_some(), "credentials kept");

        std::fs::create_dir_all(dir.path().join(".kube")).unwrap();
        std::fs::copy(&file, dir.path().join(".kube/config")).unwrap();
        let from_home = connection(&Sources {
            home: Some(dir.path()),
            ..Sources::default()
        })
        .unwrap();
        assert_eq!(from_home.servers, ["https://127.0.0.1:6443"]);

        let empty = connection(&Sources {
            kubeconfig_env: Some("/dev/null"),
            home: Some(dir.path()),
            ..Sources::default()
        })
        .unwrap();
        assert_eq!(empty.servers.len(), 3, "an empty kubeconfig: the local cluster");
        assert!(empty.tls.is_none());

        let missing = connection(&Sources {
            kubeconfig_flag: Some(Path::new("/nonexistent/config")),
            ..Sources::default()
        });
        assert!(missing.err().unwrap().contains("--kubeconfig /nonexistent/config"));
    }
}
