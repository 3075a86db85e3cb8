//! kubeconfig files, as kubectl reads them: clusters (server, CA), users (client
//! certificate and key, or a bearer token), contexts joining the two, and the current
//! context. `berth up` writes one for the admin; the `berth` CLI reads the same file
//! kubectl does (`--kubeconfig`, `KUBECONFIG`, `~/.kube/config`).

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::{Identity, Result, invalid};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Kubeconfig {
    #[serde(default, rename = "apiVersion")]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub clusters: Vec<NamedCluster>,
    #[serde(default)]
    pub users: Vec<NamedUser>,
    #[serde(default)]
    pub contexts: Vec<NamedContext>,
    #[serde(default)]
    pub current_context: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NamedCluster {
    pub name: String,
    pub cluster: Cluster,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_tls_verify: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NamedUser {
    pub name: String,
    pub user: User,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct User {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NamedContext {
    pub name: String,
    pub context: Context,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Context {
    pub cluster: String,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// What a client needs from a kubeconfig's context: where, whom to trust, and who
/// it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub server: String,
    /// The CA's PEM; none means the system's roots (berth's CLI then refuses https).
    pub ca_pem: Option<String>,
    pub insecure_skip_tls_verify: bool,
    pub client: Option<Identity>,
    pub token: Option<String>,
    pub namespace: Option<String>,
}

impl Kubeconfig {
    /// A kubeconfig for one user of one cluster, with everything embedded.
    pub fn for_identity(cluster: &str, server: &str, ca_pem: &str, user: &str, identity: &Identity) -> Kubeconfig {
        let context = format!("{user}@{cluster}");
        Kubeconfig {
            api_version: "v1".into(),
            kind: "Config".into(),
            clusters: vec![NamedCluster {
                name: cluster.into(),
                cluster: Cluster {
                    server: server.into(),
                    certificate_authority_data: Some(STANDARD.encode(ca_pem)),
                    ..Cluster::default()
                },
            }],
            users: vec![NamedUser {
                name: user.into(),
                user: User {
                    client_certificate_data: Some(STANDARD.encode(&identity.cert_pem)),
                    client_key_data: Some(STANDARD.encode(&identity.key_pem)),
                    ..User::default()
                },
            }],
            contexts: vec![NamedContext {
                name: context.clone(),
                context: Context {
                    cluster: cluster.into(),
                    user: user.into(),
                    namespace: None,
                },
            }],
            current_context: context,
        }
    }

    pub fn parse(text: &str) -> Result<Kubeconfig> {
        serde_yaml_ng::from_str(text).map_err(|e| invalid("the kubeconfig", e))
    }

    pub fn read(path: &Path) -> Result<Kubeconfig> {
        let text = std::fs::read_to_string(path).map_err(|source| crate::PkiError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Kubeconfig::parse(&text).map_err(|e| invalid(path.display().to_string(), e))
    }

    /// Writes the file owner-only: it holds a private key.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_yaml_ng::to_string(self).map_err(|e| invalid("the kubeconfig", e))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| crate::PkiError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        crate::write_file(path, text.as_bytes(), 0o600)
    }

    /// The context `name` (the current one when `None`), with files read (relative
    /// paths from `base`, the kubeconfig's directory) and data decoded.
    pub fn resolve(&self, name: Option<&str>, base: &Path) -> Result<Resolved> {
        let name = name.unwrap_or(&self.current_context);
        if name.is_empty() {
            return Err(invalid("the kubeconfig", "has no current-context"));
        }
        let context = &find(&self.contexts, name, |c| &c.name, "context")?.context;
        let cluster = &find(&self.clusters, &context.cluster, |c| &c.name, "cluster")?.cluster;
        let user = match context.user.as_str() {
            "" => User::default(),
            user => find(&self.users, user, |u| &u.name, "user")?.user.clone(),
        };
        let ca_pem = data_or_file(
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
            base,
            "certificate-authority",
        )?;
        let cert = data_or_file(
            &user.client_certificate_data,
            &user.client_certificate,
            base,
            "client-certificate",
        )?;
        let key = data_or_file(&user.client_key_data, &user.client_key, base, "client-key")?;
        let client = match (cert, key) {
            (Some(cert_pem), Some(key_pem)) => Some(Identity { cert_pem, key_pem }),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    format!("user {:?}", context.user),
                    "has a client certificate without its key, or a key without its certificate",
                ));
            }
        };
        Ok(Resolved {
            server: cluster.server.clone(),
            ca_pem,
            insecure_skip_tls_verify: cluster.insecure_skip_tls_verify,
            client,
            token: user.token.clone(),
            namespace: context.namespace.clone(),
        })
    }
}

fn find<'a, T>(items: &'a [T], name: &str, name_of: impl Fn(&T) -> &String, what: &str) -> Result<&'a T> {
    items
        .iter()
        .find(|item| name_of(item) == name)
        .ok_or_else(|| invalid("the kubeconfig", format!("has no {what} named {name:?}")))
}

fn data_or_file(data: &Option<String>, file: &Option<PathBuf>, base: &Path, what: &str) -> Result<Option<String>> {
    if let Some(data) = data {
        let bytes = STANDARD
            .decode(data.trim())
            .map_err(|e| invalid(format!("the kubeconfig's {what}-data"), e))?;
        return String::from_utf8(bytes)
            .map(Some)
            .map_err(|e| invalid(format!("the kubeconfig's {what}-data"), e));
    }
    match file {
        Some(path) => {
            let path = base.join(path);
            std::fs::read_to_string(&path)
                .map(Some)
                .map_err(|source| crate::PkiError::Io { path, source })
        }
        None => Ok(None),
    }
}
