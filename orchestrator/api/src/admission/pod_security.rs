//! Pod Security admission: Kubernetes' Pod Security Standards (`privileged`,
//! `baseline`, `restricted`) chosen per namespace by its labels
//! `pod-security.kubernetes.io/<mode>` and `<mode>-version`, for the modes `enforce`
//! (a violating pod is refused), `warn` (the client is warned) and `audit` (the
//! request's audit event is annotated `pod-security.kubernetes.io/audit-violations`).
//!
//! The checks are those of Kubernetes' `latest` standards (every version label up
//! to `v1.32` gets them, as berth has no older rule sets): the baseline checks in
//! Kubernetes' order, then the restricted ones (or, at baseline, the two baseline
//! checks that restricted replaces). A refusal reads as Kubernetes':
//! `violates PodSecurity "baseline:latest": hostPath volumes (volume "data"),
//! privileged (container "c" must not set securityContext.privileged=true)`.

use std::collections::{BTreeMap, BTreeSet};

use crate::objects::{Container, PodSpec};
use crate::validation::FieldError;

/// The label prefix of the three modes.
pub const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";
/// The newest version label berth accepts besides `latest` (its Kubernetes version).
pub const NEWEST_MINOR: u32 = 32;
/// Namespaces whose pods are never checked (what berth's own control plane uses).
pub const EXEMPT_NAMESPACES: &[&str] = &["kube-system"];

/// A Pod Security Standard, least restrictive first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Level {
    Privileged,
    #[default]
    Baseline,
    Restricted,
}

impl Level {
    pub fn parse(text: &str) -> Option<Level> {
        match text {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A level at a version (`baseline:latest`, `restricted:v1.30`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub level: Level,
    pub version: String,
}

impl Policy {
    pub fn latest(level: Level) -> Policy {
        Policy {
            level,
            version: "latest".into(),
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.level.as_str(), self.version)
    }
}

/// What a namespace's labels ask for: the enforced policy, and the one warned about
/// (`None`: no warnings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePolicy {
    pub enforce: Policy,
    pub warn: Option<Policy>,
    /// The policy whose violations annotate the audit event (`None`: none).
    pub audit: Option<Policy>,
}

/// Whether a version label is one berth accepts: `latest`, or `v1.N` up to its own.
fn version_is_valid(version: &str) -> bool {
    version == "latest"
        || version
            .strip_prefix("v1.")
            .and_then(|minor| minor.parse::<u32>().ok())
            .is_some_and(|minor| minor <= NEWEST_MINOR)
}

/// The policy of one mode: from its labels, or `default` when the level label is
/// absent. A label that is not valid gets `restricted:latest`, as in Kubernetes.
fn mode_policy(labels: &BTreeMap<String, String>, mode: &str, default: Option<Level>) -> Option<Policy> {
    let level = labels.get(&format!("{LABEL_PREFIX}{mode}"));
    let version = labels.get(&format!("{LABEL_PREFIX}{mode}-version"));
    let level = match level {
        None => default?,
        Some(text) => match Level::parse(text) {
            Some(level) => level,
            None => return Some(Policy::latest(Level::Restricted)),
        },
    };
    let version = match version {
        None => "latest".to_string(),
        Some(v) if version_is_valid(v) => v.clone(),
        Some(_) => return Some(Policy::latest(Level::Restricted)),
    };
    Some(Policy { level, version })
}

/// A namespace's policy from its labels; `default_enforce` where it has no
/// `enforce` label.
pub fn namespace_policy(labels: &BTreeMap<String, String>, default_enforce: Level) -> NamespacePolicy {
    let enforce = mode_policy(labels, "enforce", Some(default_enforce)).expect("a default is given");
    let warn = mode_policy(labels, "warn", None).filter(|p| p.level != Level::Privileged);
    let audit = mode_policy(labels, "audit", None).filter(|p| p.level != Level::Privileged);
    NamespacePolicy { enforce, warn, audit }
}

/// The namespace labels' own errors, as Kubernetes refuses a namespace whose Pod
/// Security labels are not valid.
pub fn label_errors(labels: &BTreeMap<String, String>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for mode in ["enforce", "warn", "audit"] {
        let key = format!("{LABEL_PREFIX}{mode}");
        if let Some(level) = labels.get(&key)
            && Level::parse(level).is_none()
        {
            errors.push(FieldError {
                field: format!("metadata.labels[{key}]"),
                message: format!("Invalid value: {level:?}: must be one of privileged, baseline, restricted"),
            });
        }
        let key = format!("{key}-version");
        if let Some(version) = labels.get(&key)
            && !version_is_valid(version)
        {
            errors.push(FieldError {
                field: format!("metadata.labels[{key}]"),
                message: format!(
                    "Invalid value: {version:?}: must be \"latest\" or \"v1.x\" with x at most {NEWEST_MINOR}"
                ),
            });
        }
    }
    errors
}

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

/// `violates PodSecurity "baseline:latest": <reason> (<detail>), ...`; the text of
/// a refusal (and, as `would violate ...`, of a warning).
pub fn describe(policy: &Policy, violations: &[Violation]) -> String {
    let reasons: Vec<String> = violations
        .iter()
        .map(|v| {
            if v.detail.is_empty() {
                v.reason.to_string()
            } else {
                format!("{} ({})", v.reason, v.detail)
            }
        })
        .collect();
    format!("violates PodSecurity \"{policy}\": {}", reasons.join(", "))
}

/// A refusal's text as a warning: `would violate PodSecurity ...`.
fn would(refusal: &str) -> String {
    format!("would violate{}", refusal.strip_prefix("violates").unwrap_or(refusal))
}

/// The outcome of checking one pod (or one workload's pod template) in a namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The refusal, for a pod that breaks the enforced policy.
    pub refusal: Option<String>,
    /// `Warning` texts for the client.
    pub warnings: Vec<String>,
    /// Annotations for the request's audit event: the policy enforced, and what the
    /// `audit` policy would have refused.
    pub audit: Vec<(String, String)>,
}

/// The audit annotation naming the enforced policy a request was checked against.
pub const ENFORCE_POLICY_ANNOTATION: &str = "pod-security.kubernetes.io/enforce-policy";
/// The audit annotation of what the namespace's `audit` policy would refuse.
pub const AUDIT_VIOLATIONS_ANNOTATION: &str = "pod-security.kubernetes.io/audit-violations";

/// Checks a pod (`is_pod`) or a workload's template against a namespace's policy: a
/// pod that breaks `enforce` is refused; a template gets a warning for it instead,
/// and both get one for `warn`, as Kubernetes does.
pub fn admit(namespace: &str, policy: &NamespacePolicy, spec: &PodSpec, is_pod: bool) -> Verdict {
    let mut verdict = Verdict::default();
    if EXEMPT_NAMESPACES.contains(&namespace) {
        return verdict;
    }
    verdict
        .audit
        .push((ENFORCE_POLICY_ANNOTATION.to_string(), policy.enforce.to_string()));
    if let Some(audit) = &policy.audit {
        let violations = check(spec, audit.level);
        if !violations.is_empty() {
            verdict.audit.push((
                AUDIT_VIOLATIONS_ANNOTATION.to_string(),
                would(&describe(audit, &violations)),
            ));
        }
    }
    let enforced = check(spec, policy.enforce.level);
    if !enforced.is_empty() {
        let text = describe(&policy.enforce, &enforced);
        if is_pod {
            verdict.refusal = Some(text);
            return verdict;
        }
        verdict.warnings.push(would(&text));
    }
    if let Some(warn) = &policy.warn
        && (warn != &policy.enforce || is_pod)
    {
        let warned = check(spec, warn.level);
        if !warned.is_empty() {
            let text = would(&describe(warn, &warned));
            if !verdict.warnings.contains(&text) {
                verdict.warnings.push(text);
            }
        }
    }
    verdict
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

#[cfg(test)]
#[path = "pod_security_tests.rs"]
mod tests;
