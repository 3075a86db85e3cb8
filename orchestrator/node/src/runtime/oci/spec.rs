//! A container's `config.json`, built from its `ContainerSpec` without touching the
//! disk (the user, resolved from the root filesystem, is passed in).
//!
//! What a container gets (containerd's defaults for Kubernetes where there is one):
//! new pid and mount namespaces; the pod's uts, ipc and network namespaces, shared
//! by its containers (new uts and ipc ones without a sandbox's, none of its own
//! network one with host networking); /proc, a tmpfs /dev with /dev/pts, /dev/shm and
//! /dev/mqueue, /sys and the cgroup tree read-only; the pod's /etc/hosts,
//! /etc/resolv.conf and /etc/hostname bound read-only; containerd's masked and
//! read-only paths unless privileged, and then the host's device nodes.

use std::path::{Path, PathBuf};

use super::super::ContainerSpec;
use super::super::wrapper::DEFAULT_PATH;
use super::config::{
    Cpu, Device, DeviceRule, Linux, Memory, Mount, Namespace, OCI_VERSION, Process, Resources, Root, Spec, User,
};
use super::security;

/// CFS period, as kubelet sets it.
const CPU_PERIOD_US: u64 = 100_000;
/// The kernel's minimum CPU shares, and kubelet's for a container that requested none.
const MIN_CPU_SHARES: u64 = 2;

/// containerd's masked paths: hidden behind /dev/null (files) or an empty read-only
/// tmpfs (directories).
const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// containerd's read-only paths.
const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Where the spec's things are on this host.
#[derive(Debug, Clone)]
pub struct Placement<'a> {
    /// The mounted overlay.
    pub rootfs: &'a Path,
    /// `linux.cgroupsPath`.
    pub cgroups_path: &'a str,
    pub user: User,
}

/// The container's hostname: the sandbox's, else the container's name.
pub fn hostname(spec: &ContainerSpec) -> String {
    match &spec.sandbox {
        Some(sandbox) if !sandbox.hostname.is_empty() => sandbox.hostname.clone(),
        _ => spec.name.clone(),
    }
}

/// The process's environment: the spec's (final: the agent has merged the image's),
/// a later variable replacing an earlier one, plus `PATH` and `HOSTNAME` when absent.
pub fn environment(spec: &ContainerSpec) -> Vec<String> {
    let mut env: Vec<(String, String)> = Vec::new();
    for (name, value) in &spec.env {
        match env.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value.clone(),
            None => env.push((name.clone(), value.clone())),
        }
    }
    if !env.iter().any(|(n, _)| n == "PATH") {
        env.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
    }
    if !env.iter().any(|(n, _)| n == "HOSTNAME") {
        env.push(("HOSTNAME".into(), hostname(spec)));
    }
    env.into_iter().map(|(n, v)| format!("{n}={v}")).collect()
}

/// Kubernetes' CPU shares for a request: millis × 1024 / 1000, at least 2.
pub fn cpu_shares(request_millis: Option<u64>) -> u64 {
    request_millis.map_or(MIN_CPU_SHARES, |millis| {
        (millis.saturating_mul(1024) / 1000).max(MIN_CPU_SHARES)
    })
}

/// The `config.json` of a container; the error names what cannot be honoured.
pub fn build(spec: &ContainerSpec, placement: Placement<'_>) -> Result<Spec, String> {
    let security = &spec.security;
    let capabilities = security::capabilities(
        security.privileged,
        &security.capabilities_add,
        &security.capabilities_drop,
    )?;
    let is_host_network = spec.sandbox.as_ref().is_some_and(|s| s.netns.is_none());
    let sandbox = spec.sandbox.as_ref();
    let mut namespaces = vec![
        Namespace {
            kind: "pid",
            path: None,
        },
        Namespace {
            kind: "mount",
            path: None,
        },
        Namespace {
            kind: "ipc",
            path: sandbox.and_then(|s| s.ipc.clone()),
        },
    ];
    // Host networking goes with the host's UTS namespace, as in Kubernetes, unless the
    // sandbox has one to join.
    let uts = sandbox.and_then(|s| s.uts.clone());
    let is_host_uts = is_host_network && uts.is_none();
    if !is_host_uts {
        namespaces.push(Namespace { kind: "uts", path: uts });
    }
    if !is_host_network {
        namespaces.push(Namespace {
            kind: "network",
            path: spec.sandbox.as_ref().and_then(|s| s.netns.clone()),
        });
    }
    let (devices, device_nodes, masked_paths, readonly_paths) = if security.privileged {
        (
            vec![DeviceRule {
                allow: true,
                access: "rwm",
            }],
            host_devices(Path::new("/dev")),
            vec![],
            vec![],
        )
    } else {
        (
            vec![DeviceRule {
                allow: false,
                access: "rwm",
            }],
            vec![],
            MASKED_PATHS.iter().map(|p| (*p).to_owned()).collect(),
            READONLY_PATHS.iter().map(|p| (*p).to_owned()).collect(),
        )
    };
    let memory = spec
        .memory_limit_bytes
        .map(|bytes| i64::try_from(bytes).unwrap_or(i64::MAX))
        .map(|limit| Memory { limit, swap: limit });
    let cpu = Cpu {
        shares: cpu_shares(spec.cpu_request_millis),
        quota: spec
            .cpu_limit_millis
            .map(|millis| i64::try_from(super::super::cgroup::cpu_quota_us(millis)).unwrap_or(i64::MAX)),
        period: spec.cpu_limit_millis.map(|_| CPU_PERIOD_US),
    };
    let seccomp = (security.seccomp_runtime_default && !security.privileged).then(security::default_seccomp);
    Ok(Spec {
        oci_version: OCI_VERSION,
        process: Process {
            terminal: false,
            user: placement.user,
            args: spec.argv.clone(),
            env: environment(spec),
            cwd: spec.working_dir.clone().unwrap_or_else(|| PathBuf::from("/")),
            capabilities,
            no_new_privileges: security.no_new_privileges,
        },
        root: Root {
            path: placement.rootfs.to_path_buf(),
            readonly: security.read_only_root_filesystem,
        },
        hostname: (!is_host_uts).then(|| hostname(spec)),
        mounts: mounts(spec, is_host_network),
        linux: Linux {
            namespaces,
            cgroups_path: placement.cgroups_path.to_owned(),
            resources: Resources { devices, memory, cpu },
            devices: device_nodes,
            masked_paths,
            readonly_paths,
            seccomp,
        },
    })
}

fn mounts(spec: &ContainerSpec, is_host_network: bool) -> Vec<Mount> {
    let privileged = spec.security.privileged;
    let sys_mode = if privileged { "rw" } else { "ro" };
    let mut mounts = vec![
        Mount::new("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        Mount::new(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        Mount::new(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        match spec.sandbox.as_ref().and_then(|s| s.shm.as_ref()) {
            Some(pod_shm) => Mount {
                destination: "/dev/shm".into(),
                kind: "bind".into(),
                source: pod_shm.clone(),
                options: ["rbind", "rprivate", "nosuid", "noexec", "nodev"]
                    .map(str::to_owned)
                    .to_vec(),
            },
            None => Mount::new(
                "/dev/shm",
                "tmpfs",
                "shm",
                &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            ),
        },
        Mount::new("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
    ];
    if is_host_network {
        // A new sysfs can only be mounted from a network namespace of one's own; in
        // the host's, the host's /sys is bound instead (read-only all the same).
        mounts.push(Mount::new(
            "/sys",
            "bind",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", sys_mode],
        ));
    } else {
        mounts.push(Mount::new(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_mode],
        ));
    }
    mounts.push(Mount::new(
        "/sys/fs/cgroup",
        "cgroup",
        "cgroup",
        &["nosuid", "noexec", "nodev", "relatime", sys_mode],
    ));
    if let Some(sandbox) = &spec.sandbox {
        let files = [
            ("/etc/hosts", &sandbox.etc_hosts),
            ("/etc/resolv.conf", &sandbox.resolv_conf),
            ("/etc/hostname", &sandbox.etc_hostname),
        ];
        for (destination, source) in files {
            if let Some(source) = source {
                mounts.push(Mount {
                    destination: destination.into(),
                    kind: "bind".into(),
                    source: source.clone(),
                    options: ["rbind", "rprivate", "ro"].map(str::to_owned).to_vec(),
                });
            }
        }
    }
    mounts
}

/// A volume bound into the container at its `destination`, read-only if asked.
pub fn volume_mount(mount: &super::super::VolumeMount, source: PathBuf) -> Mount {
    let mode = if mount.read_only { "ro" } else { "rw" };
    Mount {
        destination: mount.destination.clone(),
        kind: "bind".into(),
        source,
        options: ["rbind", "rprivate", mode].map(str::to_owned).to_vec(),
    }
}

/// The device nodes under `dir` (the host's /dev), which a privileged container gets
/// as containerd gives them: all but the ones of the container's own mounts (pts, shm,
/// mqueue) and the console.
fn host_devices(dir: &Path) -> Vec<Device> {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};

    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut devices = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        // Not followed: a symlink (/dev/fd, /dev/stdin, ...) is not a device node.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let kind = if meta.file_type().is_char_device() {
            "c"
        } else if meta.file_type().is_block_device() {
            "b"
        } else {
            if meta.is_dir() && !matches!(name.to_str(), Some("pts" | "shm" | "mqueue" | "fd" | ".udev")) {
                devices.extend(host_devices(&path));
            }
            continue;
        };
        if name == "console" {
            continue;
        }
        let rdev = meta.rdev();
        devices.push(Device {
            path,
            kind,
            major: rustix::fs::major(rdev).into(),
            minor: rustix::fs::minor(rdev).into(),
            file_mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        });
    }
    devices.sort_by(|a, b| a.path.cmp(&b.path));
    devices
}

#[cfg(test)]
mod tests {
    use super::super::super::{RootFs, SandboxSpec, SecuritySpec};
    use super::*;

    fn container(sandbox: Option<SandboxSpec>) -> ContainerSpec {
        ContainerSpec {
            pod_uid: "u1".into(),
            pod: "default/web".into(),
            name: "app".into(),
            argv: vec!["/bin/sh".into()],
            rootfs: Some(RootFs::default()),
            sandbox,
            ..ContainerSpec::default()
        }
    }

    fn built(spec: &ContainerSpec) -> serde_json::Value {
        let placement = Placement {
            rootfs: Path::new("/state/rootfs"),
            cgroups_path: "/berth/u1/x",
            user: User::default(),
        };
        serde_json::to_value(build(spec, placement).unwrap()).unwrap()
    }

    #[test]
    fn shares_follow_kubernetes() {
        assert_eq!(cpu_shares(None), 2);
        assert_eq!(cpu_shares(Some(1)), 2);
        assert_eq!(cpu_shares(Some(250)), 256);
        assert_eq!(cpu_shares(Some(1000)), 1024);
    }

    #[test]
    fn env_gets_path_and_hostname_when_absent_and_later_wins() {
        let mut spec = container(None);
        spec.env = vec![("A".into(), "1".into()), ("A".into(), "2".into())];
        assert_eq!(
            environment(&spec),
            vec![format!("PATH={DEFAULT_PATH}"), "A=2".into(), "HOSTNAME=app".into()]
        );
        spec.env.push(("PATH".into(), "/bin".into()));
        spec.env.push(("HOSTNAME".into(), "h".into()));
        assert_eq!(environment(&spec), vec!["A=2", "PATH=/bin", "HOSTNAME=h"]);
    }

    #[test]
    fn the_pod_netns_is_joined_and_host_network_has_none() {
        let netns = PathBuf::from("/run/netns/pod");
        let pod = built(&container(Some(SandboxSpec {
            netns: Some(netns.clone()),
            hostname: "web".into(),
            etc_hosts: Some("/pods/u1/hosts".into()),
            ..SandboxSpec::default()
        })));
        let network = pod["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|ns| ns["type"] == "network")
            .unwrap();
        assert_eq!(network["path"], "/run/netns/pod");
        assert_eq!(pod["hostname"], "web");
        let ipc = pod["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|ns| ns["type"] == "ipc")
            .unwrap();
        assert!(ipc.get("path").is_none(), "a new ipc namespace without a sandbox's");
        let mounts = pod["mounts"].as_array().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m["destination"] == "/etc/hosts" && m["source"] == "/pods/u1/hosts")
        );

        let host = built(&container(Some(SandboxSpec {
            netns: None,
            hostname: "node1".into(),
            ..SandboxSpec::default()
        })));
        let kinds: Vec<&str> = host["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ns| ns["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["pid", "mount", "ipc"], "the host's network and uts namespaces");
        assert!(host.get("hostname").is_none(), "the host's own hostname");

        let shared = built(&container(Some(SandboxSpec {
            netns: Some(netns.clone()),
            ipc: Some("/pods/u1/ipc".into()),
            uts: Some("/pods/u1/uts".into()),
            hostname: "node1".into(),
            ..SandboxSpec::default()
        })));
        let paths: Vec<(&str, &str)> = shared["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|ns| Some((ns["type"].as_str().unwrap(), ns.get("path")?.as_str().unwrap())))
            .collect();
        assert_eq!(
            paths,
            [
                ("ipc", "/pods/u1/ipc"),
                ("uts", "/pods/u1/uts"),
                ("network", "/run/netns/pod")
            ]
        );
        assert_eq!(shared["hostname"], "node1", "runc sets it in the joined uts namespace");
    }

    #[test]
    fn limits_security_and_privileged() {
        let mut spec = container(None);
        spec.memory_limit_bytes = Some(32 << 20);
        spec.cpu_limit_millis = Some(500);
        spec.cpu_request_millis = Some(100);
        spec.security = SecuritySpec {
            read_only_root_filesystem: true,
            no_new_privileges: true,
            seccomp_runtime_default: true,
            ..SecuritySpec::default()
        };
        let config = built(&spec);
        assert_eq!(config["root"]["readonly"], true);
        assert_eq!(config["process"]["noNewPrivileges"], true);
        let resources = &config["linux"]["resources"];
        assert_eq!(resources["memory"]["limit"], 32 << 20);
        assert_eq!(resources["memory"]["swap"], 32 << 20);
        assert_eq!(resources["cpu"]["quota"], 50_000);
        assert_eq!(resources["cpu"]["period"], 100_000);
        assert_eq!(resources["cpu"]["shares"], 102);
        assert!(config["linux"]["seccomp"].is_object());
        assert!(config["linux"]["maskedPaths"].as_array().unwrap().len() > 5);
        assert!(
            config["linux"].get("devices").is_none(),
            "no host devices unless privileged"
        );

        spec.security.privileged = true;
        let config = built(&spec);
        assert!(config["linux"].get("maskedPaths").is_none());
        assert!(config["linux"].get("seccomp").is_none());
        assert_eq!(config["linux"]["resources"]["devices"][0]["allow"], true);
        // The host's device nodes, /dev/null's numbers among them (1, 3).
        let nodes = config["linux"]["devices"].as_array().expect("the host's devices");
        let null = nodes.iter().find(|d| d["path"] == "/dev/null").expect("/dev/null");
        assert_eq!(
            (&null["type"], &null["major"], &null["minor"]),
            (&"c".into(), &1.into(), &3.into())
        );
        assert!(
            nodes
                .iter()
                .all(|d| !d["path"].as_str().unwrap().starts_with("/dev/pts/"))
        );
    }
}
