//! The part of the OCI runtime specification's `config.json` (1.0.2) that berth
//! writes: field names and nesting are the spec's; everything berth does not set is
//! left out, so runc applies its own defaults there. Serialize-only: the bundle's
//! config is written once, at start, and never read back by berth.

use std::path::PathBuf;

use serde::Serialize;

pub const OCI_VERSION: &str = "1.0.2";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    pub oci_version: &'static str,
    pub process: Process,
    pub root: Root,
    /// None in the host's UTS namespace (runc refuses to set it there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub mounts: Vec<Mount>,
    pub linux: Linux,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    pub terminal: bool,
    pub user: User,
    pub args: Vec<String>,
    /// `NAME=value`.
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub capabilities: Capabilities,
    pub no_new_privileges: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
}

/// Each set as `CAP_NAME`s. berth gives bounding, effective and permitted the same
/// set and leaves inheritable and ambient empty (as containerd does since the
/// inheritable set let a non-root exec regain capabilities).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    pub bounding: Vec<String>,
    pub effective: Vec<String>,
    pub permitted: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Root {
    /// Absolute and a real directory: runc refuses a symlink ("invalid rootfs").
    pub path: PathBuf,
    pub readonly: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub destination: PathBuf,
    #[serde(rename = "type")]
    pub kind: String,
    pub source: PathBuf,
    pub options: Vec<String>,
}

impl Mount {
    pub fn new(destination: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
        Mount {
            destination: destination.into(),
            kind: kind.to_owned(),
            source: source.into(),
            options: options.iter().map(|o| (*o).to_owned()).collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    pub namespaces: Vec<Namespace>,
    /// Absolute: runc makes it under each controller's mount point, not under its own
    /// cgroup.
    pub cgroups_path: String,
    pub resources: Resources,
    /// Device nodes made in the container's /dev (beyond runc's defaults).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub masked_paths: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub readonly_paths: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Seccomp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Namespace {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Join this namespace (an nsfs file) instead of making a new one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Resources {
    pub devices: Vec<DeviceRule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    pub cpu: Cpu,
}

/// A device node of the container's /dev.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub path: PathBuf,
    /// "c" (character) or "b" (block).
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub major: u64,
    pub minor: u64,
    pub file_mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// A device cgroup rule; runc appends its own allowances for the devices every
/// container gets (null, zero, full, random, urandom, tty, ptmx, pts) after these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceRule {
    pub allow: bool,
    pub access: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Memory {
    pub limit: i64,
    /// Memory plus swap: equal to `limit`, so the container is killed rather than
    /// swapped at its limit.
    pub swap: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Cpu {
    pub shares: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Seccomp {
    pub default_action: &'static str,
    pub architectures: Vec<&'static str>,
    pub syscalls: Vec<SyscallRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    pub names: Vec<&'static str>,
    pub action: &'static str,
    pub errno_ret: u32,
}
