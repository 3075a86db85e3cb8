//! A container's environment as Kubernetes checks it: `env` (a literal `value`, or
//! one `valueFrom` source: a ConfigMap's or Secret's key, a field of the pod, a
//! resource of a container) and `envFrom` (every key of a ConfigMap or Secret, with a
//! `prefix`). The agent resolves them when it starts the container; what can only be
//! known then (the objects exist, the keys are there) is its to report.
//!
//! Names follow Kubernetes 1.32's relaxed rule: any printable ASCII but `=`.

use k8s_openapi::api::core::v1::{Container, EnvFromSource, EnvVar, EnvVarSource, PodSpec};

use super::{Errors, err, is_dns_subdomain};
use crate::kinds::secret::config_key_problem;
use crate::quantity::{parse_cpu_millis, parse_memory_bytes};

/// The fields of the pod a `fieldRef` may name as they are (the labels and
/// annotations are named one key at a time: [`subscript`]).
pub const FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// The resources a `resourceFieldRef` may name (berth's containers have cpu and
/// memory).
pub const RESOURCES: &[&str] = &["limits.cpu", "limits.memory", "requests.cpu", "requests.memory"];

/// The divisors Kubernetes takes for a memory resource, in bytes.
const MEMORY_DIVISORS: &str = "1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei";

/// `metadata.labels['key']` as (`metadata.labels`, `key`); also for annotations.
pub fn subscript(path: &str) -> Option<(&str, &str)> {
    let (field, rest) = path.split_once("['")?;
    let key = rest.strip_suffix("']")?;
    ["metadata.labels", "metadata.annotations"]
        .contains(&field)
        .then_some((field, key))
}

/// Why `name` cannot name an environment variable, if it cannot.
pub fn env_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || !name.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'=') {
        return Some(
            "a valid environment variable name must consist only of printable ASCII characters other than '='",
        );
    }
    None
}

/// Checks every container's `env` and `envFrom`.
pub(super) fn pod_spec(spec: &PodSpec, path: &str, errors: &mut Errors) {
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    for (i, c) in spec.containers.iter().enumerate() {
        let at = format!("{path}.containers[{i}]");
        container(c, &at, &names, errors);
    }
}

fn container(c: &Container, at: &str, containers: &[&str], errors: &mut Errors) {
    for (i, var) in c.env.iter().flatten().enumerate() {
        env_var(var, &format!("{at}.env[{i}]"), containers, errors);
    }
    for (i, source) in c.env_from.iter().flatten().enumerate() {
        env_from(source, &format!("{at}.envFrom[{i}]"), errors);
    }
}

fn env_var(var: &EnvVar, at: &str, containers: &[&str], errors: &mut Errors) {
    if var.name.is_empty() {
        err(errors, format!("{at}.name"), "required");
    } else if let Some(problem) = env_name_problem(&var.name) {
        err(errors, format!("{at}.name"), problem);
    }
    let Some(from) = &var.value_from else { return };
    let at = format!("{at}.valueFrom");
    let sources = [
        from.field_ref.is_some(),
        from.resource_field_ref.is_some(),
        from.config_map_key_ref.is_some(),
        from.secret_key_ref.is_some(),
    ]
    .iter()
    .filter(|set| **set)
    .count();
    if var.value.as_deref().is_some_and(|v| !v.is_empty()) {
        err(errors, &at, "may not be specified when `value` is not empty");
    }
    match sources {
        0 => err(
            errors,
            &at,
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        ),
        1 => value_from(from, &at, containers, errors),
        _ => err(errors, &at, "may not have more than one field specified at a time"),
    }
}

fn value_from(from: &EnvVarSource, at: &str, containers: &[&str], errors: &mut Errors) {
    if let Some(field) = &from.field_ref {
        let at = format!("{at}.fieldRef");
        let version = field.api_version.as_deref().unwrap_or_default();
        if !["", "v1"].contains(&version) {
            err(
                errors,
                format!("{at}.apiVersion"),
                format!("Unsupported value: {version:?}: supported values: \"v1\""),
            );
        }
        let path = field.field_path.as_str();
        if path.is_empty() {
            err(errors, format!("{at}.fieldPath"), "required");
        } else if let Some((_, key)) = subscript(path) {
            if key.is_empty() || key.contains('\'') {
                err(
                    errors,
                    format!("{at}.fieldPath"),
                    "the subscript must be a label or annotation key",
                );
            }
        } else if !FIELD_PATHS.contains(&path) {
            let supported: Vec<String> = FIELD_PATHS.iter().map(|p| format!("{p:?}")).collect();
            err(
                errors,
                format!("{at}.fieldPath"),
                format!(
                    "Unsupported value: {path:?}: supported values: \"metadata.annotations['<KEY>']\", \
                     \"metadata.labels['<KEY>']\", {}",
                    supported.join(", ")
                ),
            );
        }
    }
    if let Some(resource) = &from.resource_field_ref {
        let at = format!("{at}.resourceFieldRef");
        let name = resource.resource.as_str();
        if name.is_empty() {
            err(errors, format!("{at}.resource"), "required");
        } else if !RESOURCES.contains(&name) {
            let supported: Vec<String> = RESOURCES.iter().map(|p| format!("{p:?}")).collect();
            err(
                errors,
                format!("{at}.resource"),
                format!(
                    "Unsupported value: {name:?}: supported values: {}",
                    supported.join(", ")
                ),
            );
        }
        if let Some(container) = resource.container_name.as_deref().filter(|c| !c.is_empty())
            && !containers.contains(&container)
        {
            err(
                errors,
                format!("{at}.containerName"),
                format!("no container {container:?} in the pod"),
            );
        }
        if let Some(divisor) = &resource.divisor {
            let divisor = divisor.0.as_str();
            if name.ends_with(".cpu") && !matches!(parse_cpu_millis(divisor), Ok(1 | 1000)) {
                err(
                    errors,
                    format!("{at}.divisor"),
                    "only divisor's values 1m and 1 are supported with the cpu resource",
                );
            }
            if name.ends_with(".memory") && !parse_memory_bytes(divisor).is_ok_and(is_memory_divisor) {
                err(
                    errors,
                    format!("{at}.divisor"),
                    format!("only divisor's values {MEMORY_DIVISORS} are supported with the memory resource"),
                );
            }
        }
    }
    let key_refs = [
        from.config_map_key_ref
            .as_ref()
            .map(|r| ("configMapKeyRef", &r.name, &r.key)),
        from.secret_key_ref.as_ref().map(|r| ("secretKeyRef", &r.name, &r.key)),
    ];
    for (field, name, key) in key_refs.into_iter().flatten() {
        let at = format!("{at}.{field}");
        object_name(name, &format!("{at}.name"), errors);
        if key.is_empty() {
            err(errors, format!("{at}.key"), "required");
        } else if let Some(problem) = config_key_problem(key) {
            err(errors, format!("{at}.key"), problem);
        }
    }
}

fn is_memory_divisor(bytes: u64) -> bool {
    (0..=6).any(|power| bytes == 1000u64.pow(power) || bytes == 1u64 << (10 * power))
}

fn object_name(name: &str, at: &str, errors: &mut Errors) {
    if name.is_empty() {
        err(errors, at, "required");
    } else if !is_dns_subdomain(name) {
        err(
            errors,
            at,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
             and must start and end with an alphanumeric character",
        );
    }
}

fn env_from(source: &EnvFromSource, at: &str, errors: &mut Errors) {
    if let Some(prefix) = source.prefix.as_deref().filter(|p| !p.is_empty())
        && let Some(problem) = env_name_problem(prefix)
    {
        err(errors, format!("{at}.prefix"), problem);
    }
    let refs = [
        source.config_map_ref.as_ref().map(|r| ("configMapRef", &r.name)),
        source.secret_ref.as_ref().map(|r| ("secretRef", &r.name)),
    ];
    match refs.iter().flatten().count() {
        0 => err(errors, at, "must specify one of: `configMapRef` or `secretRef`"),
        1 => {
            for (field, name) in refs.into_iter().flatten() {
                object_name(name, &format!("{at}.{field}.name"), errors);
            }
        }
        _ => err(errors, at, "may not have more than one field specified at a time"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::validation::parse_value;

    /// The errors of a pod whose one container has `env` and `envFrom` as given.
    fn errors_of(env: Value, env_from: Value) -> Vec<String> {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "dev"},
            "spec": {"containers": [{"name": "app", "image": "busybox", "env": env, "envFrom": env_from}]}});
        match parse_value(pod) {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .iter()
                .map(|e| e.to_string().trim_start_matches("spec.containers[0].").to_string())
                .collect(),
        }
    }

    #[test]
    fn every_source_kubernetes_has_is_accepted() {
        let env = json!([
            {"name": "LITERAL", "value": "x"},
            {"name": "weird.name-1", "value": "x"},
            {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "a.b", "optional": true}}},
            {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IPS", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIPs"}}},
            {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app.kubernetes.io/tier']"}}},
            {"name": "NOTE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"containerName": "app", "resource": "requests.memory", "divisor": "1Mi"}}},
        ]);
        let env_from = json!([
            {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
            {"secretRef": {"name": "db", "optional": true}},
        ]);
        assert_eq!(errors_of(env, env_from), Vec::<String>::new());
    }

    #[test]
    fn sources_are_one_at_a_time_and_not_with_a_value() {
        let env = json!([
            {"name": "A", "valueFrom": {}},
            {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"},
                "secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "C", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "", "value": "x"},
            {"name": "A=B", "value": "x"},
        ]);
        assert_eq!(
            errors_of(env, json!([])),
            [
                "env[0].valueFrom: must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                "env[1].valueFrom: may not have more than one field specified at a time",
                "env[2].valueFrom: may not be specified when `value` is not empty",
                "env[3].name: required",
                "env[4].name: a valid environment variable name must consist only of printable ASCII characters other than '='",
            ]
        );
    }

    #[test]
    fn references_name_objects_keys_fields_and_resources_kubernetes_knows() {
        let env = json!([
            {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "", "key": "a b"}}},
            {"name": "B", "valueFrom": {"secretKeyRef": {"name": "Not_A_Name", "key": ""}}},
            {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "spec.containers"}}},
            {"name": "D", "valueFrom": {"fieldRef": {"apiVersion": "v2", "fieldPath": "metadata.labels['']"}}},
            {"name": "E", "valueFrom": {"resourceFieldRef": {"resource": "limits.ephemeral-storage"}}},
            {"name": "F", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "2"}}},
            {"name": "G", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "3Mi"}}},
            {"name": "H", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "containerName": "other"}}},
        ]);
        let errors = errors_of(env, json!([]));
        let fields: Vec<&str> = errors.iter().map(|e| e.split(": ").next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "env[0].valueFrom.configMapKeyRef.name",
                "env[0].valueFrom.configMapKeyRef.key",
                "env[1].valueFrom.secretKeyRef.name",
                "env[1].valueFrom.secretKeyRef.key",
                "env[2].valueFrom.fieldRef.fieldPath",
                "env[3].valueFrom.fieldRef.apiVersion",
                "env[3].valueFrom.fieldRef.fieldPath",
                "env[4].valueFrom.resourceFieldRef.resource",
                "env[5].valueFrom.resourceFieldRef.divisor",
                "env[6].valueFrom.resourceFieldRef.divisor",
                "env[7].valueFrom.resourceFieldRef.containerName",
            ],
            "{errors:#?}"
        );
        assert!(
            errors[4].contains("Unsupported value: \"spec.containers\""),
            "{}",
            errors[4]
        );
        assert!(
            errors[8].ends_with("only divisor's values 1m and 1 are supported with the cpu resource"),
            "{}",
            errors[8]
        );
    }

    #[test]
    fn env_from_names_one_object_and_a_valid_prefix() {
        let env_from = json!([
            {},
            {"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}},
            {"configMapRef": {"name": "a"}, "prefix": "BAD="},
            {"secretRef": {"name": ""}},
        ]);
        assert_eq!(
            errors_of(json!([]), env_from),
            [
                "envFrom[0]: must specify one of: `configMapRef` or `secretRef`",
                "envFrom[1]: may not have more than one field specified at a time",
                "envFrom[2].prefix: a valid environment variable name must consist only of printable ASCII characters other than '='",
                "envFrom[3].secretRef.name: required",
            ]
        );
    }
}
