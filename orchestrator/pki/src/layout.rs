//! The cluster's certificates on disk, named as kubeadm names them where the role is
//! the same:
//!
//! ```text
//! <dir>/ca.crt, ca.key                  the cluster CA
//!       apiserver.crt/.key              the API server's serving certificate
//!       apiserver-kubelet-client.crt    the API server's client certificate to agents
//!       admin.crt/.key                  kubernetes-admin in system:masters
//!       store/server.crt/.key           the etcd port's serving certificate
//!       store/peer.crt/.key             store members to each other
//!       store/client.crt/.key           the control plane's client of the etcd port
//!       nodes/<name>.crt/.key           an agent: system:node:<name> in system:nodes,
//!                                       serving its own API too
//!       sa.key, sa.pub                  the key pair of ServiceAccount tokens (ECDSA P-256)
//! ```

use std::path::{Path, PathBuf};

use crate::{Ca, Identity, Profile, Result, Usage};

/// The CA's common name.
pub const CA_NAME: &str = "berth-ca";
/// The admin's user and group (kubeadm's).
pub const ADMIN_USER: &str = "kubernetes-admin";
pub const ADMIN_GROUP: &str = "system:masters";
/// The API server's user when it calls agents (kubeadm's name).
pub const APISERVER_AGENT_CLIENT: &str = "kube-apiserver-kubelet-client";
/// The control plane's user on the etcd port.
pub const STORE_CLIENT: &str = "berth-control-plane";
/// The group of every agent's user, `system:node:<name>`.
pub const NODES_GROUP: &str = "system:nodes";

/// The names every serving certificate of the control plane is valid for.
pub fn default_hosts() -> Vec<String> {
    [
        "localhost",
        "127.0.0.1",
        "::1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
    ]
    .iter()
    .map(|h| h.to_string())
    .collect()
}

/// The names of the API server as pods reach it, besides [`default_hosts`]: the
/// `kubernetes` Service's full name and its address in the default service range
/// (`--service-cluster-ip-range 10.96.0.0/12`).
pub const API_SERVICE_HOSTS: &[&str] = &["kubernetes.default.svc.cluster.local", "10.96.0.1"];

/// A cluster's certificate directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: impl Into<PathBuf>) -> Layout {
        Layout { dir: dir.into() }
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// `<dir>/<name>.crt` and `.key`: (certificate, key).
    pub fn pair(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
        )
    }

    pub fn node_name(node: &str) -> String {
        format!("nodes/{node}")
    }

    /// Makes what is missing: the CA (once), then every control-plane certificate
    /// that does not exist, valid for `hosts` besides the defaults. Existing
    /// certificates are kept, so a restart does not invalidate what clients hold.
    pub fn init(&self, hosts: &[String]) -> Result<Ca> {
        let ca = if self.ca_cert().exists() {
            Ca::read(&self.dir)?
        } else {
            let ca = Ca::create(CA_NAME)?;
            ca.identity.write(&self.dir, "ca")?;
            ca
        };
        let mut all_hosts = default_hosts();
        all_hosts.extend(hosts.iter().cloned());
        let server = |cn: &str, usage: Usage| Profile {
            usage,
            ..Profile::server(cn, &all_hosts)
        };
        // The API's certificate is also valid where pods reach it: the `kubernetes`
        // Service's name and address (the first of the default service range), as
        // kubeadm makes it.
        let mut api_hosts = all_hosts.clone();
        api_hosts.extend(API_SERVICE_HOSTS.iter().map(|h| h.to_string()));
        let wanted = [
            (
                "apiserver",
                Profile {
                    usage: Usage::Server,
                    ..Profile::server("kube-apiserver", &api_hosts)
                },
            ),
            (
                "apiserver-kubelet-client",
                Profile::client(APISERVER_AGENT_CLIENT, &[ADMIN_GROUP]),
            ),
            ("admin", Profile::client(ADMIN_USER, &[ADMIN_GROUP])),
            ("store/server", server("berth-store", Usage::Server)),
            ("store/peer", server("berth-store-peer", Usage::ServerAndClient)),
            ("store/client", Profile::client(STORE_CLIENT, &[])),
        ];
        for (name, profile) in wanted {
            self.ensure(&ca, name, &profile)?;
        }
        self.ensure_service_account_key()?;
        Ok(ca)
    }

    /// `sa.key` (PKCS#8) and `sa.pub` (SubjectPublicKeyInfo): what signs and verifies
    /// ServiceAccount tokens, as kubeadm names them.
    pub fn service_account_key(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("sa.key"), self.dir.join("sa.pub"))
    }

    /// Makes the ServiceAccount key pair unless it exists: tokens already handed
    /// out stay valid across restarts.
    fn ensure_service_account_key(&self) -> Result<()> {
        let (private, public) = self.service_account_key();
        if private.exists() && public.exists() {
            return Ok(());
        }
        let key = rcgen::KeyPair::generate()?;
        crate::write_file(&private, key.serialize_pem().as_bytes(), 0o600)?;
        crate::write_file(&public, key.public_key_pem().as_bytes(), 0o644)
    }

    /// The agent `node`'s certificate: its user as a client, its API's server.
    pub fn ensure_node(&self, ca: &Ca, node: &str, hosts: &[String]) -> Result<Identity> {
        let mut all_hosts = vec![node.to_string()];
        all_hosts.extend(default_hosts());
        all_hosts.extend(hosts.iter().cloned());
        let profile = Profile {
            organizations: vec![NODES_GROUP.to_string()],
            usage: Usage::ServerAndClient,
            ..Profile::server(&format!("system:node:{node}"), &all_hosts)
        };
        self.ensure(ca, &Layout::node_name(node), &profile)
    }

    fn ensure(&self, ca: &Ca, name: &str, profile: &Profile) -> Result<Identity> {
        let (cert, _) = self.pair(name);
        if cert.exists() {
            return self.read(name);
        }
        let identity = ca.issue(profile)?;
        let (dir, file) = split(&self.dir, name);
        identity.write(&dir, &file)?;
        Ok(identity)
    }

    pub fn read(&self, name: &str) -> Result<Identity> {
        let (dir, file) = split(&self.dir, name);
        Identity::read(&dir, &file)
    }
}

fn split(base: &Path, name: &str) -> (PathBuf, String) {
    let path = base.join(name);
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| base.to_path_buf());
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, file)
}
