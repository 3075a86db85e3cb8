//! Capabilities and the seccomp profile of a container, from its security context.
//!
//! Capabilities: containerd's default set, then `add` ("ALL": every capability),
//! then `drop` ("ALL": none, before the adds); `privileged` gets every capability the
//! runtime's own process has. Names are accepted as Kubernetes writes them (`NET_ADMIN`) and with
//! the `CAP_` prefix, in any case; an unknown one is refused by name.
//!
//! Seccomp (`RuntimeDefault`): berth's own modest profile, everything allowed except
//! a deny list of calls that reach around the container's isolation (module loading,
//! kexec, keyrings, namespaces, mounts, clock changes, ...), which fail with EPERM.

use super::config::{Capabilities, Seccomp, SyscallRule};

/// Every capability, by number (`capability.h`), up to what this code knows.
const ALL_CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// containerd's default set (its CRI plugin's `oci.DefaultCapabilities`).
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Every capability this process may hand on: its bounding set (`CapBnd` in
/// /proc/self/status), as containerd gives a privileged container (runc fails with
/// EPERM on a capability outside the caller's bounding set).
fn current_capabilities() -> Vec<&'static str> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("CapBnd:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1u64 << bit) != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// `NET_ADMIN`, `net_admin`, `CAP_NET_ADMIN` → `NET_ADMIN`; None for an unknown name.
fn normalize(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    ALL_CAPABILITIES.iter().copied().find(|known| *known == bare)
}

/// The container's capability sets; the error names an unknown capability.
pub fn capabilities(privileged: bool, add: &[String], drop: &[String]) -> Result<Capabilities, String> {
    let is_all = |name: &String| name.eq_ignore_ascii_case("ALL");
    let mut set: Vec<&'static str> = if privileged {
        current_capabilities()
    } else if drop.iter().any(is_all) {
        Vec::new()
    } else {
        DEFAULT_CAPABILITIES.to_vec()
    };
    if !privileged {
        for name in add {
            if is_all(name) {
                set = current_capabilities();
                continue;
            }
            let known = normalize(name).ok_or_else(|| format!("unknown capability {name:?} to add"))?;
            if !set.contains(&known) {
                set.push(known);
            }
        }
        for name in drop.iter().filter(|name| !is_all(name)) {
            let known = normalize(name).ok_or_else(|| format!("unknown capability {name:?} to drop"))?;
            set.retain(|cap| *cap != known);
        }
    }
    let names: Vec<String> = set.iter().map(|cap| format!("CAP_{cap}")).collect();
    Ok(Capabilities {
        bounding: names.clone(),
        effective: names.clone(),
        permitted: names,
    })
}

/// Calls the default profile refuses. libseccomp resolves names per architecture
/// and runc skips a name it does not know, so calls of other architectures may stand
/// here.
const DENIED_SYSCALLS: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "sysfs",
    "_sysctl",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
];

/// The architectures a process of this host may switch to (32-bit calls on a 64-bit
/// kernel would otherwise pass unfiltered).
fn architectures() -> Vec<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "aarch64" => vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "x86" => vec!["SCMP_ARCH_X86"],
        _ => vec![],
    }
}

/// The `RuntimeDefault` profile.
pub fn default_seccomp() -> Seccomp {
    const EPERM: u32 = 1;
    Seccomp {
        default_action: "SCMP_ACT_ALLOW",
        architectures: architectures(),
        syscalls: vec![SyscallRule {
            names: DENIED_SYSCALLS.to_vec(),
            action: "SCMP_ACT_ERRNO",
            errno_ret: EPERM,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_default_set_is_containerds() {
        let caps = capabilities(false, &[], &[]).unwrap();
        assert_eq!(caps.effective.len(), 14);
        assert!(caps.effective.contains(&"CAP_NET_BIND_SERVICE".to_owned()));
        assert!(!caps.effective.contains(&"CAP_SYS_ADMIN".to_owned()));
        assert_eq!(caps.bounding, caps.effective);
        assert_eq!(caps.permitted, caps.effective);
    }

    #[test]
    fn add_and_drop_take_kubernetes_names() {
        let caps = capabilities(false, &names(&["NET_ADMIN", "cap_sys_time"]), &names(&["KILL"])).unwrap();
        assert!(caps.effective.contains(&"CAP_NET_ADMIN".to_owned()));
        assert!(caps.effective.contains(&"CAP_SYS_TIME".to_owned()));
        assert!(!caps.effective.contains(&"CAP_KILL".to_owned()));
    }

    #[test]
    fn drop_all_keeps_only_the_added() {
        let caps = capabilities(false, &names(&["NET_BIND_SERVICE"]), &names(&["ALL"])).unwrap();
        assert_eq!(caps.effective, vec!["CAP_NET_BIND_SERVICE".to_owned()]);
    }

    #[test]
    fn privileged_and_add_all_get_everything_the_runtime_has() {
        let kernel = current_capabilities().len();
        assert_eq!(
            capabilities(true, &[], &names(&["ALL"])).unwrap().effective.len(),
            kernel
        );
        assert_eq!(
            capabilities(false, &names(&["ALL"]), &[]).unwrap().effective.len(),
            kernel
        );
    }

    #[test]
    fn an_unknown_capability_is_named() {
        let error = capabilities(false, &names(&["NET_ADMINN"]), &[]).unwrap_err();
        assert!(error.contains("NET_ADMINN"), "{error}");
    }

    #[test]
    fn the_seccomp_profile_denies_with_eperm() {
        let profile = default_seccomp();
        assert_eq!(profile.default_action, "SCMP_ACT_ALLOW");
        assert!(profile.syscalls[0].names.contains(&"unshare"));
        assert_eq!(profile.syscalls[0].errno_ret, 1);
    }
}
