//! Checks an object before anything is written, with errors that name the field
//! (`spec.template.spec.containers[0].resources.requests.memory`), as Kubernetes'
//! validation does.

use std::collections::BTreeSet;

mod containers;
mod deployment;
pub mod env;
mod init_containers;
mod placement;
mod pod_dns;
mod pod_update;
mod probes;
mod scheduling_gates;
pub mod service;
pub mod stateful_set;
mod unknown_fields;
mod unsupported;
pub mod volumes;

pub use deployment::deployment_strategy;
pub use pod_update::{FORBIDDEN_POD_UPDATE, pod_spec_update};
pub use scheduling_gates::scheduling_gates_update;

pub use unknown_fields::unknown_fields;
pub use unsupported::NOT_IMPLEMENTED;

use super::kinds::{KINDS, KindDescriptor, Object, by_kind};
use super::meta::{LabelSelector, MetaExt, ObjectMeta, selector_is_empty, selector_matches};
use super::objects::{Container, DeploymentSpec, PodSpec, PodTemplateSpec, Taint};
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

/// A manifest read and checked: the typed object, and the fields it had that the
/// kind does not define (`spec.template.spec.kontainers`), which the caller refuses,
/// warns about or drops, as `fieldValidation` (Strict, Warn, Ignore) says.
#[derive(Debug)]
pub struct Parsed {
    pub object: Object,
    pub unknown_fields: Vec<String>,
}

/// Checks a manifest already parsed (from JSON or YAML), fills in its kind's
/// defaults and validates it.
pub fn parse_value(value: serde_json::Value) -> Result<Parsed, Errors> {
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
    let mut object = (descriptor.decode)(&value).map_err(|error| vec![error])?;
    let unknown_fields = unknown_fields(&value, &object.to_value());
    // As Kubernetes does: decode, default, validate (a default may be what is wrong).
    (descriptor.defaults)(&mut object);
    let errors = validate(&object);
    if errors.is_empty() {
        Ok(Parsed { object, unknown_fields })
    } else {
        Err(errors)
    }
}

/// The metadata checks every kind has, then the kind's own.
pub fn validate(object: &Object) -> Errors {
    let mut errors = Vec::new();
    validate_meta(object.metadata(), object.descriptor(), &mut errors);
    (object.descriptor().validate)(object, &mut errors);
    errors
}

/// A node's taints.
pub fn taints(taints: Option<&Vec<Taint>>, errors: &mut Errors) {
    for (i, taint) in taints.into_iter().flatten().enumerate() {
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

/// RFC 1123 subdomain: DNS labels joined by dots, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn validate_meta(meta: &ObjectMeta, kind: &KindDescriptor, errors: &mut Errors) {
    let is_namespaced = kind.namespaced;
    let (name, namespace) = (meta.name(), meta.namespace());
    if name.is_empty() {
        err(errors, "metadata.name", "required");
    } else if crate::rbac::names_are_path_segments(kind) {
        for problem in crate::rbac::path_segment_problems(name) {
            err(errors, "metadata.name", problem);
        }
    } else if kind.names_are_dns_labels && !is_dns_label(name) {
        err(
            errors,
            "metadata.name",
            format!("{name:?} is not a DNS label (lower-case letters, digits and '-', at most 63)"),
        );
    } else if !kind.names_are_dns_labels && !is_dns_subdomain(name) {
        err(
            errors,
            "metadata.name",
            format!(
                "{name:?} is not a DNS subdomain (lower-case letters, digits, '-' and '.', \
                 labels of at most 63, at most 253 in all)"
            ),
        );
    }
    if is_namespaced && !namespace.is_empty() && !is_dns_label(namespace) {
        err(
            errors,
            "metadata.namespace",
            format!("{namespace:?} is not a DNS label"),
        );
    }
    if !is_namespaced && !namespace.is_empty() {
        err(
            errors,
            "metadata.namespace",
            "must be empty: this kind is not namespaced",
        );
    }
    unsupported::metadata(meta, errors);
}

/// `spec.replicas` of a ReplicaSet or Deployment.
pub fn replicas(replicas: Option<i32>, errors: &mut Errors) {
    if let Some(replicas) = replicas
        && replicas < 0
    {
        err(errors, "spec.replicas", format!("must be 0 or more, not {replicas}"));
    }
}

/// The selector and pod template of a ReplicaSet or Deployment.
pub fn template(selector: &LabelSelector, template: Option<&PodTemplateSpec>, errors: &mut Errors) {
    let Some(template) = template else {
        err(errors, "spec.template", "required");
        return;
    };
    let labels = template
        .metadata
        .as_ref()
        .map(|m| m.labels())
        .cloned()
        .unwrap_or_default();
    if selector_is_empty(selector) {
        err(
            errors,
            "spec.selector",
            "required: a selector that matches nothing would adopt every pod",
        );
    } else if !selector_matches(selector, &labels) {
        err(
            errors,
            "spec.selector",
            "does not match the labels of spec.template.metadata.labels",
        );
    }
    match &template.spec {
        Some(spec) => pod_spec(spec, "spec.template.spec", errors),
        None => err(errors, "spec.template.spec", "required"),
    }
}

/// A Deployment's `minReadySeconds`, `revisionHistoryLimit` and
/// `progressDeadlineSeconds`, by Kubernetes' rules.
pub fn deployment_progress(spec: &DeploymentSpec, errors: &mut Errors) {
    min_ready_seconds(spec.min_ready_seconds, errors);
    non_negative(spec.revision_history_limit, "spec.revisionHistoryLimit", errors);
    if let Some(deadline) = spec.progress_deadline_seconds {
        non_negative(Some(deadline), "spec.progressDeadlineSeconds", errors);
        if deadline <= spec.min_ready_seconds.unwrap_or_default() {
            err(
                errors,
                "spec.progressDeadlineSeconds",
                format!("Invalid value: {deadline}: must be greater than minReadySeconds"),
            );
        }
    }
}

/// `spec.minReadySeconds` of a ReplicaSet or Deployment: how long a pod must have
/// been ready before it counts as available.
pub fn min_ready_seconds(seconds: Option<i32>, errors: &mut Errors) {
    non_negative(seconds, "spec.minReadySeconds", errors);
}

fn non_negative(value: Option<i32>, field: &str, errors: &mut Errors) {
    if let Some(value) = value.filter(|v| *v < 0) {
        err(
            errors,
            field,
            format!("Invalid value: {value}: must be greater than or equal to 0"),
        );
    }
}

/// A pod's spec, or a template's, at `path`.
pub fn pod_spec(spec: &PodSpec, path: &str, errors: &mut Errors) {
    if spec.containers.is_empty() {
        err(errors, format!("{path}.containers"), "required: at least one container");
    }
    let mut names = BTreeSet::new();
    for (at, container, is_init) in init_containers::with_paths(spec, path) {
        if !names.insert(container.name.as_str()) {
            err(
                errors,
                format!("{at}.name"),
                format!("duplicate container name {:?}", container.name),
            );
        }
        validate_container(container, &at, errors);
        init_containers::container(container, &at, is_init, errors);
    }
    pod_dns::pod_dns(spec, path, errors);
    let mut volume_names = BTreeSet::new();
    for (i, volume) in spec.volumes.iter().flatten().enumerate() {
        let at = format!("{path}.volumes[{i}]");
        if !is_dns_label(&volume.name) {
            err(
                errors,
                format!("{at}.name"),
                format!("Invalid value: {:?}: not a DNS label", volume.name),
            );
        } else if !volume_names.insert(volume.name.as_str()) {
            err(
                errors,
                format!("{at}.name"),
                format!("Duplicate value: {:?}", volume.name),
            );
        }
        if volume
            .persistent_volume_claim
            .as_ref()
            .is_some_and(|c| c.claim_name.is_empty())
        {
            err(
                errors,
                format!("{at}.persistentVolumeClaim.claimName"),
                "Required value",
            );
        }
    }
    let restart_policy = spec.restart_policy.as_deref().unwrap_or_default();
    if !["", "Always", "OnFailure", "Never"].contains(&restart_policy) {
        err(
            errors,
            format!("{path}.restartPolicy"),
            format!("{restart_policy:?}: must be Always, OnFailure or Never"),
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
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        if !["", "Equal", "Exists"].contains(&t.operator.as_deref().unwrap_or_default()) {
            err(
                errors,
                format!("{path}.tolerations[{i}].operator"),
                "must be Equal or Exists",
            );
        }
    }
    scheduling_gates::pod_spec(spec, path, errors);
    placement::pod_spec(spec, path, errors);
    containers::pod_spec(spec, path, errors);
    env::pod_spec(spec, path, errors);
    volumes::pod_spec(spec, path, errors);
    unsupported::pod_spec(spec, path, errors);
}

fn validate_container(c: &Container, at: &str, errors: &mut Errors) {
    if c.name.is_empty() {
        err(errors, format!("{at}.name"), "required");
    } else if !is_dns_label(&c.name) {
        err(errors, format!("{at}.name"), format!("{:?} is not a DNS label", c.name));
    }
    if c.image.as_deref().unwrap_or_default().is_empty() && c.command.as_ref().is_none_or(Vec::is_empty) {
        err(
            errors,
            format!("{at}.command"),
            "required when no image is given (the process runtime runs the command)",
        );
    }
    for (i, p) in c.ports.iter().flatten().enumerate() {
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
    let resources = c.resources.clone().unwrap_or_default();
    let mut parsed = std::collections::BTreeMap::new();
    for (section, values) in [("requests", &resources.requests), ("limits", &resources.limits)] {
        for (name, quantity) in values.iter().flatten() {
            let field = format!("{at}.resources.{section}.{name}");
            let value = match name.as_str() {
                "cpu" => parse_cpu_millis(&quantity.0),
                "memory" => parse_memory_bytes(&quantity.0),
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
    probes::container(c, at, errors);
    unsupported::container(c, at, errors);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::IntOrString;

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
        parse_value(serde_json::from_str(json).expect("test manifests are JSON")).map(|p| p.object)
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
        assert_eq!(object.metadata().name(), "web");
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
        assert_eq!(
            errors_of(&missing),
            ["spec.template.spec.containers: required: at least one container"]
        );
        let mistyped = DEPLOYMENT.replace("\"replicas\": 3", "\"replicas\": \"two\"");
        assert_eq!(
            errors_of(&mistyped),
            ["spec.replicas: invalid type: string \"two\", expected i32"]
        );
        let wrong_version = DEPLOYMENT.replace("apps/v1", "v1");
        assert!(
            errors_of(&wrong_version)[0].starts_with("apiVersion:"),
            "{:?}",
            errors_of(&wrong_version)
        );
    }

    #[test]
    fn fields_the_kind_does_not_define_are_found() {
        let sent = DEPLOYMENT
            .replace("\"replicas\": 3", "\"replicas\": 3, \"replicaz\": 2, \"paused\": null")
            .replace(
                "\"name\": \"http\"",
                "\"name\": \"http\", \"livenessProbe\": {\"exec\": {}, \"tcp\": 1}",
            );
        let parsed = parse_value(serde_json::from_str(&sent).unwrap());
        let errors: Vec<String> = parsed
            .as_ref()
            .err()
            .into_iter()
            .flatten()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            ["spec.template.spec.containers[0].livenessProbe.exec.command: Required value"]
        );
        let sent = DEPLOYMENT.replace("\"replicas\": 3", "\"replicas\": 3, \"replicaz\": 2, \"paused\": null");
        let parsed = parse_value(serde_json::from_str(&sent).unwrap()).unwrap();
        assert_eq!(parsed.unknown_fields, ["spec.replicaz"]);
        let parsed = parse_value(serde_json::from_str(DEPLOYMENT).unwrap()).unwrap();
        assert_eq!(parsed.unknown_fields, Vec::<String>::new());
        let nested = serde_json::json!({"a": [{"b": 1, "c": 2}], "d": {"e": null}});
        let kept = serde_json::json!({"a": [{"b": 1}], "d": {}});
        assert_eq!(unknown_fields(&nested, &kept), ["a[0].c"]);
    }

    #[test]
    fn deployments_get_kubernetes_defaults_and_pause_and_min_ready_seconds_are_accepted() {
        use crate::objects::Deployment;
        let object = parse_object(&DEPLOYMENT.replace("\"replicas\": 3,", "")).unwrap();
        let d = object.downcast_ref::<Deployment>().unwrap();
        assert_eq!(
            (
                d.spec.replicas,
                d.spec.revision_history_limit,
                d.spec.progress_deadline_seconds
            ),
            (Some(1), Some(10), Some(600))
        );
        let strategy = d.spec.strategy.clone().unwrap();
        let rolling = strategy.rolling_update.unwrap();
        assert_eq!(
            (strategy.type_.as_deref(), rolling.max_surge, rolling.max_unavailable),
            (
                Some("RollingUpdate"),
                Some(IntOrString::String("25%".into())),
                Some(IntOrString::String("25%".into()))
            ),
            "RollingUpdate is the default, with a quarter as surge and as unavailability"
        );
        let recreate = DEPLOYMENT.replace(
            "\"replicas\": 3,",
            "\"replicas\": 3, \"strategy\": {\"type\": \"Recreate\"},",
        );
        let object = parse_object(&recreate).unwrap();
        let d = object.downcast_ref::<Deployment>().unwrap();
        assert_eq!(d.spec.strategy.as_ref().unwrap().rolling_update, None);
        let surge_only = DEPLOYMENT.replace(
            "\"replicas\": 3,",
            "\"replicas\": 3, \"strategy\": {\"rollingUpdate\": {\"maxSurge\": 1}},",
        );
        let object = parse_object(&surge_only).unwrap();
        let d = object.downcast_ref::<Deployment>().unwrap();
        let rolling = d.spec.strategy.clone().unwrap().rolling_update.unwrap();
        assert_eq!(
            (rolling.max_surge, rolling.max_unavailable),
            (Some(IntOrString::Int(1)), Some(IntOrString::String("25%".into())))
        );
        let chosen = DEPLOYMENT.replace(
            "\"replicas\": 3,",
            "\"replicas\": 3, \"revisionHistoryLimit\": 0, \"paused\": true, \"minReadySeconds\": 5,",
        );
        let object = parse_object(&chosen).unwrap();
        let d = object.downcast_ref::<Deployment>().unwrap();
        assert_eq!((d.spec.revision_history_limit, d.spec.paused), (Some(0), Some(true)));

        // The default deadline (600) must exceed minReadySeconds, as in Kubernetes.
        let slow = DEPLOYMENT.replace("\"replicas\": 3,", "\"replicas\": 3, \"minReadySeconds\": 600,");
        assert_eq!(
            errors_of(&slow),
            ["spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"]
        );
        let negative = DEPLOYMENT.replace(
            "\"replicas\": 3,",
            "\"replicas\": 3, \"revisionHistoryLimit\": -1, \"minReadySeconds\": -2,",
        );
        assert_eq!(
            errors_of(&negative),
            [
                "spec.minReadySeconds: Invalid value: -2: must be greater than or equal to 0",
                "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
    }

    #[test]
    fn deployment_strategies_are_checked_with_kubernetes_messages() {
        let with = |strategy: &str| {
            DEPLOYMENT.replace(
                "\"replicas\": 3,",
                &format!("\"replicas\": 3, \"strategy\": {strategy},"),
            )
        };
        let rolling = |surge: &str, unavailable: &str| {
            with(&format!(
                "{{\"type\": \"RollingUpdate\", \"rollingUpdate\": {{\"maxSurge\": {surge}, \"maxUnavailable\": {unavailable}}}}}"
            ))
        };
        for (surge, unavailable) in [("1", "0"), ("0", "1"), ("\"50%\"", "\"0%\""), ("0", "\"100%\"")] {
            assert_eq!(
                errors_of(&rolling(surge, unavailable)),
                Vec::<String>::new(),
                "{surge} {unavailable}"
            );
        }
        let at = "spec.strategy.rollingUpdate";
        assert_eq!(
            errors_of(&rolling("0", "0")),
            [format!(
                "{at}.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"
            )]
        );
        assert_eq!(
            errors_of(&rolling("\"0%\"", "\"0%\"")),
            [format!(
                "{at}.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0"
            )]
        );
        assert_eq!(
            errors_of(&rolling("-1", "\"101%\"")),
            [
                format!("{at}.maxSurge: Invalid value: -1: must be greater than or equal to 0"),
                format!("{at}.maxUnavailable: Invalid value: \"101%\": must not be greater than 100%"),
            ]
        );
        assert_eq!(
            errors_of(&rolling("\"5\"", "1")),
            [format!(
                "{at}.maxSurge: Invalid value: \"5\": a valid percent string must be a numeric string followed \
                 by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
            )]
        );
        assert_eq!(
            errors_of(&with("{\"type\": \"Recreate\", \"rollingUpdate\": {\"maxSurge\": 1}}")),
            ["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]
        );
        assert_eq!(
            errors_of(&with("{\"type\": \"BlueGreen\"}")),
            ["spec.strategy.type: Unsupported value: \"BlueGreen\": supported values: \"Recreate\", \"RollingUpdate\""]
        );
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("web-1"));
        assert!(!is_dns_label("Web"));
        assert!(!is_dns_label("-web"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("web.17a3b2c4d5e6f708"));
        assert!(!is_dns_subdomain("web..x") && !is_dns_subdomain(".web") && !is_dns_subdomain("Web.x"));
        assert!(!is_dns_subdomain(&vec!["a".repeat(63); 5].join(".")));
    }
}
