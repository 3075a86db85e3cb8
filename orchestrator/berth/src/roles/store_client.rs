//! How the orchestrator's parts reach a store on `https` URLs: the CA that signed the
//! store's certificate and the client certificate a store with `--client-cert-auth`
//! asks for, under kube-apiserver's names (`--etcd-cafile`, `--etcd-certfile`,
//! `--etcd-keyfile`). `berth server`, `berth agent` and `berth secrets` take them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_pki::Identity;

use super::take_flag;

pub const STORE_CLIENT_USAGE: &str = "\
  --etcd-cafile FILE                    the CA of the store's certificate, for an https
                                        store URL (the store is reached over TLS)
  --etcd-certfile FILE                  the client certificate shown to the store (one with
  --etcd-keyfile FILE                   --client-cert-auth takes no other), and its key
";

/// The flags; `berth agent` and `berth secrets` take them through clap, `berth
/// server` through [`StoreClientFlags::take`].
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct StoreClientFlags {
    /// The CA of the store's certificate, for https store URLs.
    #[arg(long = "etcd-cafile", value_name = "FILE")]
    pub cafile: Option<PathBuf>,
    /// The client certificate shown to the store.
    #[arg(long = "etcd-certfile", value_name = "FILE")]
    pub certfile: Option<PathBuf>,
    /// Its private key.
    #[arg(long = "etcd-keyfile", value_name = "FILE")]
    pub keyfile: Option<PathBuf>,
}

impl StoreClientFlags {
    /// Takes the flags out of `args`.
    pub fn take(args: &mut Vec<String>) -> Result<StoreClientFlags, String> {
        Ok(StoreClientFlags {
            cafile: take_flag(args, "etcd-cafile")?.map(Into::into),
            certfile: take_flag(args, "etcd-certfile")?.map(Into::into),
            keyfile: take_flag(args, "etcd-keyfile")?.map(Into::into),
        })
    }

    /// The TLS configuration the flags make: none without any of them.
    pub fn tls(&self) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
        let identity = match (&self.certfile, &self.keyfile) {
            (Some(cert), Some(key)) => Some(Identity {
                cert_pem: read(cert, "etcd-certfile")?,
                key_pem: read(key, "etcd-keyfile")?,
            }),
            (None, None) => None,
            (Some(_), None) => return Err("--etcd-certfile needs --etcd-keyfile".into()),
            (None, Some(_)) => return Err("--etcd-keyfile needs --etcd-certfile".into()),
        };
        let Some(ca) = &self.cafile else {
            return match identity {
                Some(_) => Err("--etcd-certfile needs --etcd-cafile (the CA of the store's certificate)".into()),
                None => Ok(None),
            };
        };
        let ca = read(ca, "etcd-cafile")?;
        berth_pki::tls::client_config(&ca, identity.as_ref(), &[])
            .map(Some)
            .map_err(|e| format!("--etcd-cafile/--etcd-certfile/--etcd-keyfile: {e}"))
    }

    /// The flags as arguments, for a child process.
    pub fn to_args(&self) -> Vec<String> {
        [
            ("etcd-cafile", &self.cafile),
            ("etcd-certfile", &self.certfile),
            ("etcd-keyfile", &self.keyfile),
        ]
        .into_iter()
        .filter_map(|(name, path)| path.as_ref().map(|p| format!("--{name}={}", p.display())))
        .collect()
    }
}

/// The store client for `urls`, over TLS when the flags make a configuration; an
/// https URL without one is refused, naming the flags.
pub fn connect(urls: &[String], flags: &StoreClientFlags) -> Result<berth_client::kv::Kv, String> {
    let tls = flags.tls()?;
    berth_client::kv::Kv::connect_with_tls(urls, tls.as_deref()).map_err(|e| match tls {
        None => format!("{e} (--etcd-cafile, --etcd-certfile, --etcd-keyfile)"),
        Some(_) => e.to_string(),
    })
}

fn read(path: &Path, flag: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("--{flag} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_are_taken_and_given_back_as_arguments() {
        let mut args: Vec<String> = ["--name", "s1", "--etcd-cafile=ca.crt", "--etcd-certfile", "c.crt"]
            .map(String::from)
            .to_vec();
        let flags = StoreClientFlags::take(&mut args).unwrap();
        assert_eq!(args, ["--name", "s1"]);
        assert_eq!(flags.to_args(), ["--etcd-cafile=ca.crt", "--etcd-certfile=c.crt"]);
        assert_eq!(
            flags.tls().unwrap_err(),
            "--etcd-certfile needs --etcd-keyfile",
            "a certificate without its key"
        );
    }

    #[tokio::test]
    async fn an_https_store_without_tls_flags_is_refused_by_name() {
        let error = connect(&["https://127.0.0.1:2379".into()], &StoreClientFlags::default())
            .err()
            .unwrap();
        assert!(error.contains("is https") && error.contains("--etcd-cafile"), "{error}");
        assert!(connect(&["http://127.0.0.1:2379".into()], &StoreClientFlags::default()).is_ok());
    }
}
