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

use std::collections::BTreeMap;

use crate::objects::PodSpec;
use crate::validation::FieldError;

mod checks;

pub use checks::{Violation, check};

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

#[cfg(test)]
#[path = "pod_security_tests.rs"]
mod tests;
