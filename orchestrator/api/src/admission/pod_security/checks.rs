//! Pod Security's checks, rule by rule, as Kubernetes' `pod-security-admission`
//! runs them: what a pod's spec fails at a level, with Kubernetes' reasons and details.

use std::collections::BTreeSet;

use crate::objects::{Container, PodSpec};

use super::Level;

/// One failed check: Kubernetes' reason (`privileged`) and detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub reason: &'static str,
    pub detail: String,
}

/// The checks a pod fails at `level`, in Kubernetes' order.
pub fn check(spec: &PodSpec, level: Level) -> Vec<Violation> {
    if level == Level::Privileged {
        return Vec::new();
    }
    let mut checks: Vec<fn(&PodSpec) -> Option<Violation>> = vec![
        host_namespaces,
        host_path_volumes,
        host_ports,
        privileged,
        proc_mount,
        sysctls,
    ];
    if level == Level::Baseline {
        checks.extend([
            capabilities_baseline as fn(&PodSpec) -> Option<Violation>,
            seccomp_baseline,
        ]);
    } else {
        checks.extend([
            allow_privilege_escalation as fn(&PodSpec) -> Option<Violation>,
            capabilities_restricted,
            restricted_volumes,
            run_as_non_root,
            run_as_user,
            seccomp_restricted,
        ]);
    }
    checks.iter().filter_map(|check| check(spec)).collect()
}

// The checks. Containers are visited as Kubernetes does: init containers first.

fn containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers.iter().flatten().chain(spec.containers.iter())
}

/// `"a", "b"`
fn join_quote(items: &[String]) -> String {
    items.iter().map(|i| format!("{i:?}")).collect::<Vec<_>>().join(", ")
}

fn pluralize<'a>(one: &'a str, many: &'a str, n: usize) -> &'a str {
    if n == 1 { one } else { many }
}

/// `container "a"` / `containers "a", "b"`
fn named_containers(names: &[String]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

fn violation(reason: &'static str, detail: String) -> Option<Violation> {
    Some(Violation { reason, detail })
}

fn host_namespaces(spec: &PodSpec) -> Option<Violation> {
    let set: Vec<&str> = [
        (spec.host_ipc, "hostIPC"),
        (spec.host_network, "hostNetwork"),
        (spec.host_pid, "hostPID"),
    ]
    .into_iter()
    .filter(|(on, _)| *on == Some(true))
    .map(|(_, name)| name)
    .collect();
    if set.is_empty() {
        return None;
    }
    let detail = set
        .iter()
        .map(|name| format!("{name}=true"))
        .collect::<Vec<_>>()
        .join(", ");
    violation("host namespaces", detail)
}

fn host_path_volumes(spec: &PodSpec) -> Option<Violation> {
    let names: Vec<String> = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.host_path.is_some())
        .map(|v| v.name.clone())
        .collect();
    if names.is_empty() {
        return None;
    }
    violation(
        "hostPath volumes",
        format!("{} {}", pluralize("volume", "volumes", names.len()), join_quote(&names)),
    )
}

fn host_ports(spec: &PodSpec) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut ports = BTreeSet::new();
    for c in containers(spec) {
        let used: Vec<i32> = c
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.host_port.filter(|&p| p != 0))
            .collect();
        if !used.is_empty() {
            bad.push(c.name.clone());
            ports.extend(used.iter().map(i32::to_string));
        }
    }
    if bad.is_empty() {
        return None;
    }
    let ports: Vec<String> = ports.into_iter().collect();
    violation(
        "hostPort",
        format!(
            "{} {} {} {}",
            named_containers(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
    )
}

fn privileged(spec: &PodSpec) -> Option<Violation> {
    let bad: Vec<String> = containers(spec)
        .filter(|c| c.security_context.as_ref().and_then(|s| s.privileged) == Some(true))
        .map(|c| c.name.clone())
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            named_containers(&bad)
        ),
    )
}

fn proc_mount(spec: &PodSpec) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut values = BTreeSet::new();
    for c in containers(spec) {
        if let Some(mount) = c.security_context.as_ref().and_then(|s| s.proc_mount.as_deref())
            && mount != "Default"
        {
            bad.push(c.name.clone());
            values.insert(mount.to_string());
        }
    }
    if bad.is_empty() {
        return None;
    }
    let values: Vec<String> = values.into_iter().collect();
    violation(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            named_containers(&bad),
            join_quote(&values)
        ),
    )
}

/// The sysctls the baseline standard allows (Kubernetes 1.32).
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ping_group_range",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_wmem",
];

fn sysctls(spec: &PodSpec) -> Option<Violation> {
    let bad: Vec<String> = spec
        .security_context
        .iter()
        .flat_map(|s| s.sysctls.iter().flatten())
        .filter(|s| !SAFE_SYSCTLS.contains(&s.name.as_str()))
        .map(|s| s.name.clone())
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation("forbidden sysctls", bad.join(", "))
}

/// The capabilities a baseline container may add (the container runtimes' default set).
const DEFAULT_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn added_capabilities(c: &Container) -> impl Iterator<Item = &String> {
    c.security_context
        .iter()
        .flat_map(|s| s.capabilities.iter())
        .flat_map(|caps| caps.add.iter().flatten())
}

/// Containers adding capabilities `allowed` does not hold, and those capabilities.
fn adding_beyond(spec: &PodSpec, allowed: &[&str]) -> (Vec<String>, Vec<String>) {
    let mut bad = Vec::new();
    let mut capabilities = BTreeSet::new();
    for c in containers(spec) {
        let extra: Vec<&String> = added_capabilities(c)
            .filter(|a| !allowed.contains(&a.as_str()))
            .collect();
        if !extra.is_empty() {
            bad.push(c.name.clone());
            capabilities.extend(extra.into_iter().cloned());
        }
    }
    (bad, capabilities.into_iter().collect())
}

fn capabilities_baseline(spec: &PodSpec) -> Option<Violation> {
    let (bad, capabilities) = adding_beyond(spec, DEFAULT_CAPABILITIES);
    if bad.is_empty() {
        return None;
    }
    violation(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            named_containers(&bad),
            join_quote(&capabilities)
        ),
    )
}

fn capabilities_restricted(spec: &PodSpec) -> Option<Violation> {
    let missing_drop_all: Vec<String> = containers(spec)
        .filter(|c| {
            !c.security_context
                .as_ref()
                .and_then(|s| s.capabilities.as_ref())
                .is_some_and(|caps| caps.drop.iter().flatten().any(|d| d == "ALL"))
        })
        .map(|c| c.name.clone())
        .collect();
    let (adding, capabilities) = adding_beyond(spec, &["NET_BIND_SERVICE"]);
    let mut details = Vec::new();
    if !missing_drop_all.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            named_containers(&missing_drop_all)
        ));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            named_containers(&adding),
            join_quote(&capabilities)
        ));
    }
    if details.is_empty() {
        return None;
    }
    violation("unrestricted capabilities", details.join("; "))
}

fn allow_privilege_escalation(spec: &PodSpec) -> Option<Violation> {
    let bad: Vec<String> = containers(spec)
        .filter(|c| c.security_context.as_ref().and_then(|s| s.allow_privilege_escalation) != Some(false))
        .map(|c| c.name.clone())
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            named_containers(&bad)
        ),
    )
}

fn restricted_volumes(spec: &PodSpec) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for volume in spec.volumes.iter().flatten() {
        let allowed = volume.config_map.is_some()
            || volume.csi.is_some()
            || volume.downward_api.is_some()
            || volume.empty_dir.is_some()
            || volume.ephemeral.is_some()
            || volume.persistent_volume_claim.is_some()
            || volume.projected.is_some()
            || volume.secret.is_some();
        if allowed {
            continue;
        }
        bad.push(volume.name.clone());
        let value = serde_json::to_value(volume).unwrap_or_default();
        if let Some(fields) = value.as_object() {
            types.extend(fields.keys().filter(|k| *k != "name").cloned());
        }
    }
    if bad.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    violation(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize("restricted volume type", "restricted volume types", types.len()),
            join_quote(&types)
        ),
    )
}

/// The pod's setting (`Some(false)`: it set a bad value) and the containers that set
/// a bad value or, without the pod's good one, none.
fn setters(
    pod_value: Option<bool>,
    spec: &PodSpec,
    container_value: impl Fn(&Container) -> Option<bool>,
) -> (bool, Vec<String>, Vec<String>) {
    let pod_bad = pod_value == Some(false);
    let pod_good = pod_value == Some(true);
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in containers(spec) {
        match container_value(c) {
            Some(false) => explicit.push(c.name.clone()),
            Some(true) => {}
            None if !pod_good => implicit.push(c.name.clone()),
            None => {}
        }
    }
    (pod_bad, explicit, implicit)
}

fn bad_setters(pod_bad: bool, explicit: &[String]) -> Vec<String> {
    let mut setters = Vec::new();
    if pod_bad {
        setters.push("pod".to_string());
    }
    if !explicit.is_empty() {
        setters.push(named_containers(explicit));
    }
    setters
}

fn run_as_non_root(spec: &PodSpec) -> Option<Violation> {
    let pod = spec.security_context.as_ref().and_then(|s| s.run_as_non_root);
    let (pod_bad, explicit, implicit) = setters(pod, spec, |c| {
        c.security_context.as_ref().and_then(|s| s.run_as_non_root)
    });
    let bad = bad_setters(pod_bad, &explicit);
    if !bad.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!("{} must not set securityContext.runAsNonRoot=false", bad.join(" and ")),
        );
    }
    if !implicit.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                named_containers(&implicit)
            ),
        );
    }
    None
}

fn run_as_user(spec: &PodSpec) -> Option<Violation> {
    let pod_bad = spec.security_context.as_ref().and_then(|s| s.run_as_user) == Some(0);
    let explicit: Vec<String> = containers(spec)
        .filter(|c| c.security_context.as_ref().and_then(|s| s.run_as_user) == Some(0))
        .map(|c| c.name.clone())
        .collect();
    let bad = bad_setters(pod_bad, &explicit);
    if bad.is_empty() {
        return None;
    }
    violation("runAsUser=0", format!("{} must not set runAsUser=0", bad.join(" and ")))
}

/// Whether a seccomp profile type is one the standards allow.
fn valid_seccomp(type_: &str) -> bool {
    type_ == "RuntimeDefault" || type_ == "Localhost"
}

/// The pod's and each container's seccomp profile type, as `setters` reads them:
/// `Some(true)` a valid one, `Some(false)` another, `None` unset.
fn seccomp(spec: &PodSpec, restricted: bool) -> Option<Violation> {
    let mut bad_values = BTreeSet::new();
    let pod_type = spec
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref())
        .map(|p| p.type_.clone());
    if let Some(t) = pod_type.as_ref().filter(|t| !valid_seccomp(t)) {
        bad_values.insert(t.clone());
    }
    for c in containers(spec) {
        if let Some(p) = c.security_context.as_ref().and_then(|s| s.seccomp_profile.as_ref())
            && !valid_seccomp(&p.type_)
        {
            bad_values.insert(p.type_.clone());
        }
    }
    let (pod_bad, explicit, implicit) = setters(pod_type.as_deref().map(valid_seccomp), spec, |c| {
        c.security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref())
            .map(|p| valid_seccomp(&p.type_))
    });
    let bad = bad_setters(pod_bad, &explicit);
    if !bad.is_empty() {
        let values: Vec<String> = bad_values.into_iter().collect();
        return violation(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                bad.join(" and "),
                join_quote(&values)
            ),
        );
    }
    if restricted && !implicit.is_empty() {
        return violation(
            "seccompProfile",
            format!(
                "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                named_containers(&implicit)
            ),
        );
    }
    None
}

fn seccomp_baseline(spec: &PodSpec) -> Option<Violation> {
    seccomp(spec, false)
}

fn seccomp_restricted(spec: &PodSpec) -> Option<Violation> {
    seccomp(spec, true)
}
