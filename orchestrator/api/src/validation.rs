//! Checks an object before anything is written, with errors that name the field
//! (`spec.template.spec.containers[0].resources.requests.memory`), as Kubernetes'
//! validation does.

use std::collections::BTreeSet;

use super::kinds::{KINDS, Object, by_kind};
use super::meta::ObjectMeta;
use super::objects::{Container, PodSpec, PodTemplateSpec, Taint};
use super::quantity::{parse_cpu_millis, parse_memory_bytes};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, e.g. `metadata.name`.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

type Errors = Vec<FieldError>;

fn err(errors: &mut Errors, field: impl Into<String>, message: impl Into<String>) {
    errors.push(FieldError {
        field: field.into(),
        message: message.into(),
    });
}

/// Checks a manifest already parsed (from JSON or YAML) and validates it.
pub fn parse_value(value: serde_json::Value) -> Result<Object, Errors> {
    let kind = value
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or_default()
        .to_string();
    let Some(descriptor) = by_kind(&kind) else {
        let known: Vec<&str> = KINDS.iter().map(|k| k.kind).collect();
        let message = if kind.is_empty() {
            "required".to_string()
        } else {
            format!("unknown kind {kind:?}; berth knows {}", known.join(", "))
        };
        return Err(vec![FieldError {
            field: "kind".into(),
            message,
        }]);
    };
    let api_version = descriptor.api_version();
    let given_version = value.get("apiVersion").and_then(|v| v.as_str()).unwrap_or_default();
    if given_version != api_version {
        return Err(vec![FieldError {
            field: "apiVersion".into(),
            message: format!("{kind} is served as apiVersion {api_version:?}, not {given_version:?}"),
        }]);
    }
    let object = (descriptor.decode)(value).map_err(|message| {
        // serde names the missing or mistyped field in its message.
        vec![FieldError {
            field: "<document>".into(),
            message,
        }]
    })?;
    let errors = validate(&object);
    if errors.is_empty() { Ok(object) } else { Err(errors) }
}

/// The metadata checks every kind has, then the kind's own.
pub fn validate(object: &Object) -> Errors {
    let mut errors = Vec::new();
    validate_meta(object.metadata(), object.is_namespaced(), &mut errors);
    (object.descriptor().validate)(object, &mut errors);
    errors
}

/// A node's taints.
pub fn taints(taints: &[Taint], errors: &mut Errors) {
    for (i, taint) in taints.iter().enumerate() {
        if !["NoSchedule", "NoExecute", "PreferNoSchedule"].contains(&taint.effect.as_str()) {
            err(
                errors,
                format!("spec.taints[{i}].effect"),
                "must be NoSchedule, NoExecute or PreferNoSchedule",
            );
        }
    }
}

/// RFC 1123 label: lower-case letters, digits and '-', starting and ending with a
/// letter or digit, at most 63 characters.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn validate_meta(meta: &ObjectMeta, is_namespaced: bool, errors: &mut Errors) {
    if meta.name.is_empty() {
        err(errors, "metadata.name", "required");
    } else if !is_dns_label(&meta.name) {
        err(
            errors,
            "metadata.name",
            format!(
                "{:?} is not a DNS label (lower-case letters, digits and '-', at most 63)",
                meta.name
            ),
        );
    }
    if is_namespaced && !meta.namespace.is_empty() && !is_dns_label(&meta.namespace) {
        err(
            errors,
            "metadata.namespace",
            format!("{:?} is not a DNS label", meta.namespace),
        );
    }
    if !is_namespaced && !meta.namespace.is_empty() {
        err(
            errors,
            "metadata.namespace",
            "must be empty: this kind is not namespaced",
        );
    }
}

/// `spec.replicas` of a ReplicaSet or Deployment.
pub fn replicas(replicas: i32, errors: &mut Errors) {
    if replicas < 0 {
        err(errors, "spec.replicas", format!("must be 0 or more, not {replicas}"));
    }
}

/// The selector and pod template of a ReplicaSet or Deployment.
pub fn template(selector: &super::meta::LabelSelector, template: &PodTemplateSpec, errors: &mut Errors) {
    if selector.match_labels.is_empty() {
        err(
            errors,
            "spec.selector.matchLabels",
            "required: a selector that matches nothing would adopt every pod",
        );
    } else if !selector.matches(&template.metadata.labels) {
        err(
            errors,
            "spec.selector",
            "does not match the labels of spec.template.metadata.labels",
        );
    }
    pod_spec(&template.spec, "spec.template.spec", errors);
}

/// A pod's spec, or a template's, at `path`.
pub fn pod_spec(spec: &PodSpec, path: &str, errors: &mut Errors) {
    if spec.containers.is_empty() {
        err(errors, format!("{path}.containers"), "required: at least one container");
    }
    let mut names = BTreeSet::new();
    for (i, container) in spec.containers.iter().enumerate() {
        let at = format!("{path}.containers[{i}]");
        if !names.insert(container.name.as_str()) {
            err(
                errors,
                format!("{at}.name"),
                format!("duplicate container name {:?}", container.name),
            );
        }
        validate_container(container, &at, errors);
    }
    if !["", "Always", "OnFailure", "Never"].contains(&spec.restart_policy.as_str()) {
        err(
            errors,
            format!("{path}.restartPolicy"),
            format!("{:?}: must be Always, OnFailure or Never", spec.restart_policy),
        );
    }
    if let Some(grace) = spec.termination_grace_period_seconds
        && grace < 0
    {
        err(
            errors,
            format!("{path}.terminationGracePeriodSeconds"),
            "must be 0 or more",
        );
    }
    for (i, t) in spec.tolerations.iter().enumerate() {
        if !["", "Equal", "Exists"].contains(&t.operator.as_str()) {
            err(
                errors,
                format!("{path}.tolerations[{i}].operator"),
                "must be Equal or Exists",
            );
        }
    }
}

fn validate_container(c: &Container, at: &str, errors: &mut Errors) {
    if c.name.is_empty() {
        err(errors, format!("{at}.name"), "required");
    } else if !is_dns_label(&c.name) {
        err(errors, format!("{at}.name"), format!("{:?} is not a DNS label", c.name));
    }
    if c.image.is_empty() && c.command.is_empty() {
        err(
            errors,
            format!("{at}.command"),
            "required when no image is given (the process runtime runs the command)",
        );
    }
    for (i, p) in c.ports.iter().enumerate() {
        if !(1..=65535).contains(&p.container_port) {
            err(
                errors,
                format!("{at}.ports[{i}].containerPort"),
                format!("{} is not a port (1–65535)", p.container_port),
            );
        }
        if let Some(host) = p.host_port
            && !(1..=65535).contains(&host)
        {
            err(
                errors,
                format!("{at}.ports[{i}].hostPort"),
                format!("{host} is not a port (1–65535)"),
            );
        }
    }
    let mut parsed = std::collections::BTreeMap::new();
    for (section, values) in [("requests", &c.resources.requests), ("limits", &c.resources.limits)] {
        for (name, quantity) in values {
            let field = format!("{at}.resources.{section}.{name}");
            let value = match name.as_str() {
                "cpu" => parse_cpu_millis(quantity),
                "memory" => parse_memory_bytes(quantity),
                other => {
                    err(
                        errors,
                        field,
                        format!("unknown resource {other:?}: berth knows cpu and memory"),
                    );
                    continue;
                }
            };
            match value {
                Ok(v) => {
                    parsed.insert((section, name.as_str()), v);
                }
                Err(e) => err(errors, field, e.0),
            }
        }
    }
    for name in ["cpu", "memory"] {
        if let (Some(request), Some(limit)) = (parsed.get(&("requests", name)), parsed.get(&("limits", name)))
            && request > limit
        {
            err(
                errors,
                format!("{at}.resources.requests.{name}"),
                "must not exceed the limit",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYMENT: &str = r#"{
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "http", "command": ["python3", "-m", "http.server"],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}
                }]}
            }
        }
    }"#;

    fn parse_object(json: &str) -> Result<Object, Errors> {
        parse_value(serde_json::from_str(json).expect("test manifests are JSON"))
    }

    fn errors_of(json: &str) -> Vec<String> {
        parse_object(json)
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_good_deployment_parses() {
        let object = parse_object(DEPLOYMENT).unwrap();
        assert_eq!(object.kind(), "Deployment");
        assert_eq!(object.metadata().name, "web");
    }

    #[test]
    fn bad_manifests_name_the_field() {
        let unknown = DEPLOYMENT.replace("\"kind\": \"Deployment\"", "\"kind\": \"Deploymint\"");
        assert!(
            errors_of(&unknown)[0].starts_with("kind: unknown kind \"Deploymint\""),
            "{:?}",
            errors_of(&unknown)
        );
        let bad_name = DEPLOYMENT.replace("\"name\": \"web\"", "\"name\": \"Web_1\"");
        assert!(
            errors_of(&bad_name)[0].starts_with("metadata.name:"),
            "{:?}",
            errors_of(&bad_name)
        );
        let bad_memory = DEPLOYMENT.replace("64Mi", "64Mb");
        assert_eq!(
            errors_of(&bad_memory)[0].split(':').next().unwrap(),
            "spec.template.spec.containers[0].resources.requests.memory"
        );
        let mismatch = DEPLOYMENT.replace("\"labels\": {\"app\": \"web\"}", "\"labels\": {\"app\": \"api\"}");
        assert!(
            errors_of(&mismatch)[0].starts_with("spec.selector:"),
            "{:?}",
            errors_of(&mismatch)
        );
        let missing = DEPLOYMENT.replace("\"containers\"", "\"kontainers\"");
        assert!(
            errors_of(&missing)[0].contains("missing field `containers`"),
            "{:?}",
            errors_of(&missing)
        );
        let wrong_version = DEPLOYMENT.replace("apps/v1", "v1");
        assert!(
            errors_of(&wrong_version)[0].starts_with("apiVersion:"),
            "{:?}",
            errors_of(&wrong_version)
        );
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("web-1"));
        assert!(!is_dns_label("Web"));
        assert!(!is_dns_label("-web"));
        assert!(!is_dns_label(&"a".repeat(64)));
    }
}
