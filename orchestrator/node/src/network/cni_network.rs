//! [`CniNetwork`]: the [`PodNetwork`] of berth's agents, over the standard CNI
//! plugins (bridge with host-local IPAM, loopback, portmap).
//!
//! ```text
//!  state_dir/
//!    netns/<pod_uid>         the pod's network namespace (a bind-mounted nsfs file)
//!    pods/<pod_uid>.json     what ADD was given and answered, so DEL gets the same
//!                            configurations (and prevResult) after an agent restart
//!    cni/networks/berth/     host-local's leases: one file per address in use
//! ```
//!
//! setup: record ─► netns ─► ADD loopback ─► ADD bridge (the pod's IP) ─► ADD portmap
//! (hostPorts only) ─► record the result. A failure part-way tears down what was done.
//! teardown: DEL portmap ─► DEL bridge ─► DEL loopback (reverse order) ─► unmount and
//! remove the netns ─► forget the record. A DEL that fails keeps the record, so the
//! agent's next pass tries again; a pod never set up is Ok.
//!
//! Left behind on purpose: the bridge (`berth0`) with its gateway address, and the
//! plugins' shared chains (`CNI-HOSTPORT-DNAT`, ...), as the kubelet's kubenet leaves
//! `cbr0`. They are the node's, not a pod's: removing the bridge after the last pod
//! would race the next pod's setup, and a node that ran pods will run more. Every
//! per-pod thing (veth, address lease, the masquerade chain, portmap's `CNI-DN-…`
//! chain, the netns) goes with its pod.
//!
//! hostNetwork pods never come here: the agent runs them in the node's namespace and
//! reports the node's IP as theirs.
//!
//! Calls block on the plugins and are serialized by one lock (the plugins share the
//! host's iptables and the leases' directory; one at a time is also what makes a pod's
//! setup and teardown never interleave).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::cni::{CniCommand, Invocation, result_ip};
use super::{NetworkError, PodNetwork, PodNetworkSpec, PodNetworkStatus, config, netns, stale_bridge};
use berth_api::cidr::Ipv4Cidr;

/// Where Debian's `containernetworking-plugins` puts the plugins; `--cni-bin-dir`
/// says otherwise.
pub const DEFAULT_CNI_BIN_DIR: &str = "/usr/lib/cni";
/// Where the upstream release tarballs (and containerd's default) put them: used
/// when the default dir has no bridge plugin and this one has.
pub const UPSTREAM_CNI_BIN_DIR: &str = "/opt/cni/bin";

/// The plugins' dir when none is given: Debian's, else the upstream one if only it
/// holds the plugins.
pub fn default_bin_dir() -> PathBuf {
    let debian = Path::new(DEFAULT_CNI_BIN_DIR);
    let upstream = Path::new(UPSTREAM_CNI_BIN_DIR);
    if !debian.join("bridge").is_file() && upstream.join("bridge").is_file() {
        return upstream.to_path_buf();
    }
    debian.to_path_buf()
}
/// The pods' bridge on every node.
pub const DEFAULT_BRIDGE: &str = "berth0";

/// The node's pod CIDR as the agent learns it from its Node (`spec.podCIDR`),
/// shared between the network and the loop that watches the Node.
pub type PodCidr = Arc<watch::Sender<Option<Ipv4Cidr>>>;

#[derive(Debug, Clone)]
pub struct CniSettings {
    /// `--cni-bin-dir`.
    pub bin_dir: PathBuf,
    pub bridge: String,
    /// Where the namespaces, records and leases live (under the agent's data dir).
    pub state_dir: PathBuf,
    /// The node's network namespace, when the agent is not in it (tests run several
    /// "hosts" on one machine, each a namespace): plugins and route changes run there.
    pub host_netns: Option<PathBuf>,
}

impl CniSettings {
    pub fn new(state_dir: PathBuf) -> Self {
        CniSettings {
            bin_dir: default_bin_dir(),
            bridge: DEFAULT_BRIDGE.to_string(),
            state_dir,
            host_netns: None,
        }
    }
}

pub struct CniNetwork {
    settings: CniSettings,
    pod_cidr: PodCidr,
    lock: Mutex<()>,
}

impl CniNetwork {
    /// Whether this host can run the plugins berth needs, and why not.
    pub fn available(settings: &CniSettings) -> Result<(), String> {
        for plugin in ["bridge", "host-local", "loopback", "portmap"] {
            let path = settings.bin_dir.join(plugin);
            if !path.is_file() {
                return Err(format!(
                    "the CNI plugin {plugin} is not in {} (Debian: containernetworking-plugins)",
                    settings.bin_dir.display()
                ));
            }
        }
        Ok(())
    }

    pub fn new(mut settings: CniSettings) -> Self {
        // runc and the plugins are handed paths under the state dir (the namespace
        // file, host-local's dataDir): they must not depend on the working directory.
        if let Ok(absolute) = std::path::absolute(&settings.state_dir) {
            settings.state_dir = absolute;
        }
        CniNetwork {
            settings,
            pod_cidr: Arc::new(watch::Sender::new(None)),
            lock: Mutex::new(()),
        }
    }

    pub fn settings(&self) -> &CniSettings {
        &self.settings
    }

    /// The node's pod CIDR, which the agent sets from its Node (a setter, or the
    /// sender [`super::routes`] drives).
    pub fn pod_cidr(&self) -> PodCidr {
        self.pod_cidr.clone()
    }

    pub fn set_pod_cidr(&self, cidr: Option<Ipv4Cidr>) {
        self.pod_cidr.send_replace(cidr);
    }

    fn netns_path(&self, pod_uid: &str) -> PathBuf {
        self.settings.state_dir.join("netns").join(pod_uid)
    }

    fn record_path(&self, pod_uid: &str) -> PathBuf {
        self.settings.state_dir.join("pods").join(format!("{pod_uid}.json"))
    }

    fn ipam_dir(&self) -> PathBuf {
        self.settings.state_dir.join("cni").join("networks")
    }

    fn invocation<'a>(&'a self, pod_uid: &'a str, record: &'a Record, netns: &'a Path) -> Invocation<'a> {
        Invocation {
            bin_dir: &self.settings.bin_dir,
            container_id: pod_uid,
            netns,
            pod_namespace: &record.namespace,
            pod_name: &record.name,
            host_netns: self.settings.host_netns.as_deref(),
        }
    }

    fn setup_locked(&self, pod: &PodNetworkSpec) -> Result<PodNetworkStatus, NetworkError> {
        let uid = pod.pod_uid.as_str();
        let netns_path = self.netns_path(uid);
        let io = |what: &str| {
            let what = what.to_string();
            move |source| NetworkError::Io {
                pod: uid.to_string(),
                what,
                source,
            }
        };
        if let Some(record) = self.read_record(uid)
            && let Some(ip) = record.ip
            && netns::is_netns(&netns_path)
        {
            return Ok(PodNetworkStatus { netns: netns_path, ip });
        }
        let cidr = (*self.pod_cidr.borrow()).ok_or(NetworkError::NoPodCidr)?;
        // Whatever a crash part-way left is undone before starting again.
        self.teardown_locked(uid)?;
        for dir in ["netns", "pods"] {
            std::fs::create_dir_all(self.settings.state_dir.join(dir)).map_err(io("creating the state dir"))?;
        }
        let mut record = Record {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            bridge: config::bridge(&self.settings.bridge, cidr, &self.ipam_dir()),
            bridge_result: Value::Null,
            portmap: None,
            ip: None,
        };
        self.write_record(uid, &record)
            .map_err(io("writing the pod's network record"))?;
        stale_bridge::clear(self.settings.host_netns.as_deref(), &self.settings.bridge, cidr)
            .map_err(io("removing a pod bridge left from another pod CIDR"))?;
        netns::create(&netns_path).map_err(io("creating the network namespace"))?;
        let added = self.add(uid, pod, &mut record, &netns_path);
        match added {
            Ok(ip) => Ok(PodNetworkStatus { netns: netns_path, ip }),
            Err(e) => {
                if let Err(undo) = self.teardown_locked(uid) {
                    tracing::warn!(pod = uid, error = %undo, "cannot undo a failed pod network setup");
                }
                Err(e)
            }
        }
    }

    /// The ADDs, recording as it goes what DEL will need.
    fn add(
        &self,
        uid: &str,
        pod: &PodNetworkSpec,
        record: &mut Record,
        netns_path: &Path,
    ) -> Result<IpAddr, NetworkError> {
        let io = |source| NetworkError::Io {
            pod: uid.to_string(),
            what: "writing the pod's network record".into(),
            source,
        };
        let snapshot = record.clone();
        let invocation = self.invocation(uid, &snapshot, netns_path);
        run(&invocation, CniCommand::Add, &config::loopback())?;
        let result = run(&invocation, CniCommand::Add, &record.bridge)?;
        let ip = result_ip(&result).ok_or_else(|| NetworkError::Plugin {
            plugin: "bridge".into(),
            command: "ADD",
            pod: uid.to_string(),
            message: format!("the result has no address: {result}"),
        })?;
        record.bridge_result = result.clone();
        if !pod.ports.is_empty() {
            record.portmap = Some(config::portmap(&pod.ports, &result));
            self.write_record(uid, record).map_err(io)?;
            run(&invocation, CniCommand::Add, record.portmap.as_ref().expect("just set"))?;
        }
        record.ip = Some(ip);
        self.write_record(uid, record).map_err(io)?;
        tracing::info!(pod = uid, %ip, "pod network set up");
        Ok(ip)
    }

    fn teardown_locked(&self, uid: &str) -> Result<(), NetworkError> {
        let netns_path = self.netns_path(uid);
        let record_path = self.record_path(uid);
        let record = self.read_record(uid);
        if !netns::is_netns(&netns_path) {
            // An empty file (a reboot unmounted it, or a crash before the mount): the
            // plugins take a path that is no namespace for an error, a missing one
            // for a namespace already gone.
            let _ = std::fs::remove_file(&netns_path);
        }
        if let Some(record) = &record {
            let invocation = self.invocation(uid, record, &netns_path);
            let prev = Some(&record.bridge_result);
            if let Some(portmap) = &record.portmap {
                run(&invocation, CniCommand::Del, portmap)?;
            }
            run(
                &invocation,
                CniCommand::Del,
                &config::with_prev_result(record.bridge.clone(), prev),
            )?;
            run(&invocation, CniCommand::Del, &config::loopback())?;
        }
        let io = |what: &'static str| {
            move |source| NetworkError::Io {
                pod: uid.to_string(),
                what: what.into(),
                source,
            }
        };
        netns::remove(&netns_path).map_err(io("removing the network namespace"))?;
        match std::fs::remove_file(&record_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing the pod's network record")(e)),
            _ => Ok(()),
        }
    }

    fn read_record(&self, uid: &str) -> Option<Record> {
        let bytes = std::fs::read(self.record_path(uid)).ok()?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| tracing::warn!(pod = uid, error = %e, "a pod network record does not decode"))
            .ok()?;
        Record::from_json(&value)
    }

    /// Written whole or not at all (a temporary file renamed over the record).
    fn write_record(&self, uid: &str, record: &Record) -> std::io::Result<()> {
        let path = self.record_path(uid);
        let temporary = path.with_extension("json.tmp");
        std::fs::write(
            &temporary,
            serde_json::to_vec(&record.to_json()).expect("JSON serializes"),
        )?;
        std::fs::rename(&temporary, &path)
    }
}

/// Runs one plugin, naming it and the pod in the error.
fn run(invocation: &Invocation<'_>, command: CniCommand, config: &Value) -> Result<Value, NetworkError> {
    invocation.run(command, config).map_err(|e| NetworkError::Plugin {
        plugin: config["type"].as_str().unwrap_or_default().to_string(),
        command: command.as_str(),
        pod: format!("{}/{}", invocation.pod_namespace, invocation.pod_name),
        message: e.message,
    })
}

/// What a pod's network was set up with.
#[derive(Debug, Clone)]
struct Record {
    namespace: String,
    name: String,
    /// The bridge's configuration (with the pod CIDR of the time).
    bridge: Value,
    bridge_result: Value,
    /// portmap's configuration, for pods with hostPorts.
    portmap: Option<Value>,
    /// Set once every ADD succeeded.
    ip: Option<IpAddr>,
}

impl Record {
    fn to_json(&self) -> Value {
        json!({
            "namespace": self.namespace,
            "name": self.name,
            "bridge": self.bridge,
            "bridgeResult": self.bridge_result,
            "portmap": self.portmap,
            "ip": self.ip.map(|ip| ip.to_string()),
        })
    }

    fn from_json(value: &Value) -> Option<Record> {
        Some(Record {
            namespace: value["namespace"].as_str()?.to_string(),
            name: value["name"].as_str()?.to_string(),
            bridge: value["bridge"].clone(),
            bridge_result: value["bridgeResult"].clone(),
            portmap: Some(value["portmap"].clone()).filter(|p| !p.is_null()),
            ip: value["ip"].as_str().and_then(|ip| ip.parse().ok()),
        })
    }
}

/// The pod's UID names files of ours: one that could climb out of the state dir
/// (`..`, a `/`) or is empty is refused.
fn check_uid(pod_uid: &str) -> Result<(), NetworkError> {
    let is_plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    if pod_uid.is_empty() || pod_uid.starts_with('.') || !pod_uid.chars().all(is_plain) {
        return Err(NetworkError::Io {
            pod: pod_uid.to_string(),
            what: "the pod UID cannot name a file".into(),
            source: std::io::ErrorKind::InvalidInput.into(),
        });
    }
    Ok(())
}

impl PodNetwork for CniNetwork {
    fn setup(&self, pod: &PodNetworkSpec) -> Result<PodNetworkStatus, NetworkError> {
        check_uid(&pod.pod_uid)?;
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.setup_locked(pod)
    }

    fn teardown(&self, pod_uid: &str) -> Result<(), NetworkError> {
        check_uid(pod_uid)?;
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.teardown_locked(pod_uid)?;
        tracing::info!(pod = pod_uid, "pod network torn down");
        Ok(())
    }

    /// The pods with a namespace or a record here (either alone is what a crash
    /// part-way through setup or teardown leaves; teardown clears both).
    fn list(&self) -> Vec<String> {
        let names = |dir: &str| -> Vec<String> {
            std::fs::read_dir(self.settings.state_dir.join(dir))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        };
        let mut pods: Vec<String> = names("netns");
        pods.extend(
            names("pods")
                .into_iter()
                .filter_map(|f| f.strip_suffix(".json").map(String::from)),
        );
        pods.sort();
        pods.dedup();
        pods
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_dir_is_made_absolute_and_nothing_is_listed_before_any_pod() {
        let network = CniNetwork::new(CniSettings::new(PathBuf::from("node-1.agent/network")));
        assert!(network.settings().state_dir.is_absolute());
        assert!(network.settings().state_dir.ends_with("node-1.agent/network"));
        assert!(network.list().is_empty());
        assert_eq!(*network.pod_cidr().borrow(), None);
        network.set_pod_cidr(Some("10.244.1.0/24".parse().unwrap()));
        assert_eq!(
            network.pod_cidr().borrow().map(|c| c.to_string()).as_deref(),
            Some("10.244.1.0/24")
        );
    }

    #[test]
    fn a_pod_uid_that_could_climb_out_of_the_state_dir_is_refused() {
        for bad in ["", "..", "../x", "a/b", ".hidden", "a b"] {
            assert!(check_uid(bad).is_err(), "{bad:?}");
        }
        assert!(check_uid("0f9c6a53-1e0b-4d4c-9a57-3b2f0d1c2e4f").is_ok());
    }

    #[test]
    fn a_record_reads_back_what_was_written() {
        let record = Record {
            namespace: "default".into(),
            name: "web".into(),
            bridge: json!({"type": "bridge"}),
            bridge_result: json!({"ips": [{"address": "10.244.1.2/24"}]}),
            portmap: Some(json!({"type": "portmap"})),
            ip: Some("10.244.1.2".parse().unwrap()),
        };
        let back = Record::from_json(&record.to_json()).unwrap();
        assert_eq!(back.to_json(), record.to_json());
        let without = Record {
            portmap: None,
            ip: None,
            ..record
        };
        let back = Record::from_json(&without.to_json()).unwrap();
        assert!(back.portmap.is_none() && back.ip.is_none());
    }
}
