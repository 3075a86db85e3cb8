//! Invoking a CNI plugin as the CNI specification (1.0) says: the plugin binary is
//! `CNI_PATH/<type>`; the operation and the container travel in the environment
//! (`CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_PATH`,
//! `CNI_ARGS`), the network configuration as JSON on stdin; success is exit 0 with
//! a result on stdout (for ADD), failure a non-zero exit with
//! `{"cniVersion", "code", "msg", "details"}` on stdout.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::netns;

/// The version of the specification berth speaks; Debian's plugins (1.1) support it.
pub const CNI_VERSION: &str = "1.0.0";

/// What berth asks of a plugin (it does not CHECK: the agent sets a pod up again
/// from scratch when in doubt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CniCommand {
    Add,
    Del,
}

impl CniCommand {
    pub fn as_str(self) -> &'static str {
        match self {
            CniCommand::Add => "ADD",
            CniCommand::Del => "DEL",
        }
    }
}

/// Who the plugins are invoked for, and where they run.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    /// Where the plugin binaries are (`CNI_PATH`).
    pub bin_dir: &'a Path,
    /// The pod's UID (`CNI_CONTAINERID`: unique per sandbox, as the sandbox ID is
    /// for containerd).
    pub container_id: &'a str,
    /// The pod's namespace file (`CNI_NETNS`).
    pub netns: &'a Path,
    /// `K8S_POD_NAMESPACE`, `K8S_POD_NAME` in `CNI_ARGS`, as the kubelet passes them.
    pub pod_namespace: &'a str,
    pub pod_name: &'a str,
    /// The network namespace the plugin itself runs in (the node's): `None` for this
    /// process's.
    pub host_netns: Option<&'a Path>,
}

/// The interface name inside the pod.
pub const IFNAME: &str = "eth0";

/// A plugin's failure: its error JSON when it wrote one, else what it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    pub code: Option<u64>,
    pub message: String,
}

impl Invocation<'_> {
    /// `CNI_ARGS`: `IgnoreUnknown=1` first, so plugins that know no Kubernetes keys
    /// accept them (as libcni's callers do).
    pub fn cni_args(&self) -> String {
        format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
            self.pod_namespace, self.pod_name, self.container_id, self.container_id
        )
    }

    /// Runs the plugin named by `config["type"]` for `command` with `config` on stdin;
    /// the result JSON on success (`null` for DEL).
    pub fn run(&self, command: CniCommand, config: &Value) -> Result<Value, PluginError> {
        let plugin_type = config["type"].as_str().unwrap_or_default();
        let binary: PathBuf = self.bin_dir.join(plugin_type);
        let mut process = Command::new(&binary);
        process
            .env("CNI_COMMAND", command.as_str())
            .env("CNI_CONTAINERID", self.container_id)
            .env("CNI_NETNS", self.netns)
            .env("CNI_IFNAME", IFNAME)
            .env("CNI_PATH", self.bin_dir)
            .env("CNI_ARGS", self.cni_args());
        let stdin = serde_json::to_vec(config).expect("JSON serializes");
        let output = netns::output_in(self.host_netns, process, &stdin).map_err(|e| PluginError {
            code: None,
            message: format!("cannot run {}: {e}", binary.display()),
        })?;
        if output.status.success() {
            if output.stdout.iter().all(u8::is_ascii_whitespace) {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&output.stdout).map_err(|e| PluginError {
                code: None,
                message: format!("the result is not JSON: {e}"),
            });
        }
        Err(plugin_error(&output.stdout, &output.stderr, &output.status.to_string()))
    }
}

/// Reads a failed plugin's error: the spec's JSON on stdout, else its stderr.
pub fn plugin_error(stdout: &[u8], stderr: &[u8], status: &str) -> PluginError {
    if let Ok(error) = serde_json::from_slice::<Value>(stdout)
        && let Some(msg) = error["msg"].as_str()
    {
        let details = error["details"].as_str().unwrap_or_default();
        return PluginError {
            code: error["code"].as_u64(),
            message: if details.is_empty() {
                msg.to_string()
            } else {
                format!("{msg}: {details}")
            },
        };
    }
    let said = String::from_utf8_lossy(if stderr.is_empty() { stdout } else { stderr });
    PluginError {
        code: None,
        message: format!("{status}: {}", said.trim()),
    }
}

/// The first address of a result's `ips` (`"10.244.1.5/24"` → 10.244.1.5).
pub fn result_ip(result: &Value) -> Option<IpAddr> {
    result["ips"]
        .as_array()?
        .iter()
        .filter_map(|ip| ip["address"].as_str())
        .find_map(|address| address.split('/').next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_result_gives_the_first_address_of_ips() {
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "berth0"}, {"name": "eth0", "sandbox": "/x"}],
            "ips": [{"interface": 1, "address": "10.244.1.5/24", "gateway": "10.244.1.1"}],
        });
        assert_eq!(result_ip(&result), Some("10.244.1.5".parse().unwrap()));
        assert_eq!(result_ip(&json!({"ips": []})), None);
        assert_eq!(result_ip(&Value::Null), None);
    }

    #[test]
    fn an_error_is_read_from_the_specs_json_or_else_from_stderr() {
        let json = br#"{"cniVersion":"1.0.0","code":11,"msg":"failed to allocate","details":"range is full"}"#;
        assert_eq!(
            plugin_error(json, b"", "exit status: 1"),
            PluginError {
                code: Some(11),
                message: "failed to allocate: range is full".into()
            }
        );
        let plain = plugin_error(b"", b"panic: boom\n", "exit status: 2");
        assert_eq!(plain.code, None);
        assert_eq!(plain.message, "exit status: 2: panic: boom");
    }

    #[test]
    fn cni_args_carry_the_pod_as_the_kubelet_passes_it() {
        let invocation = Invocation {
            bin_dir: Path::new("/usr/lib/cni"),
            container_id: "uid-1",
            netns: Path::new("/state/netns/uid-1"),
            pod_namespace: "default",
            pod_name: "web",
            host_netns: None,
        };
        assert_eq!(
            invocation.cni_args(),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=uid-1;K8S_POD_UID=uid-1"
        );
    }
}
