//! What the server checks, fills in and keeps on a write, as pure functions of the
//! submitted and the stored object (JSON values, as they travel):
//!
//! - identity: `kind`, `apiVersion`, namespace and name come from the URL when the
//!   body leaves them out, and must agree with it when it does not;
//! - create: the server owns uid, creationTimestamp, generation and status (a pod
//!   starts Pending, with its QoS class);
//! - update: uid, creationTimestamp, generation and deletionTimestamp stay as stored;
//!   the main resource keeps the stored status, the `status` subresource changes
//!   nothing else (and a status written without a pod's QoS class keeps the stored
//!   one: the class never changes);
//! - validation: the result must pass `parse_value`, or nothing is written.

use serde_json::{Map, Value, json};

use super::route::Kind;
use super::status::ApiError;
use berth_api::kinds::{Object, StatusOnCreate};
use berth_api::names::GENERATED_SUFFIX_LEN;
use berth_api::objects::Pod;
use berth_api::qos::qos_class;
use berth_api::validation::parse_value;

/// Which part of an object a write replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The object itself: everything but its status.
    Main,
    /// The `status` subresource: only the status.
    Status,
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// `metadata`, made an object if it is missing.
pub fn metadata_mut(object: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let Some(fields) = object.as_object_mut() else {
        return Err(ApiError::bad_request("the object must be a JSON object"));
    };
    let metadata = fields.entry("metadata").or_insert_with(|| json!({}));
    if metadata.is_null() {
        *metadata = json!({});
    }
    metadata
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

/// Fills in what the URL says and the body leaves out; rejects what contradicts it.
pub fn check_identity(
    kind: &Kind,
    object: &mut Value,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<(), ApiError> {
    fill_or_match(object, "kind", kind.kind, |given| {
        format!(
            "the kind of the object ({given}) does not match the kind served at this URL ({})",
            kind.kind
        )
    })?;
    let api_version = kind.api_version();
    fill_or_match(object, "apiVersion", &api_version, |given| {
        format!("the API version in the data ({given}) does not match the expected API version ({api_version})")
    })?;
    let metadata = metadata_mut(object)?;
    if let Some(namespace) = namespace.filter(|_| kind.namespaced) {
        fill_or_match(metadata, "namespace", namespace, |_| {
            "the namespace of the provided object does not match the namespace sent on the request".to_string()
        })?;
    }
    if let Some(name) = name {
        fill_or_match(metadata, "name", name, |given| {
            format!("the name of the object ({given}) does not match the name on the URL ({name})")
        })?;
    }
    Ok(())
}

pub fn fill_or_match(
    object: &mut impl FieldsMut,
    field: &str,
    expected: &str,
    mismatch: impl FnOnce(&str) -> String,
) -> Result<(), ApiError> {
    let fields = object.fields()?;
    match fields.get(field) {
        None | Some(Value::Null) => {
            fields.insert(field.to_string(), expected.into());
            Ok(())
        }
        Some(Value::String(given)) if given.is_empty() => {
            fields.insert(field.to_string(), expected.into());
            Ok(())
        }
        Some(Value::String(given)) if given == expected => Ok(()),
        Some(Value::String(given)) => Err(ApiError::bad_request(mismatch(given))),
        Some(other) => Err(ApiError::bad_request(format!("{field} must be a string, not {other}"))),
    }
}

/// A JSON object's members, whether given as a value or as its map.
pub trait FieldsMut {
    fn fields(&mut self) -> Result<&mut Map<String, Value>, ApiError>;
}

impl FieldsMut for Value {
    fn fields(&mut self) -> Result<&mut Map<String, Value>, ApiError> {
        self.as_object_mut()
            .ok_or_else(|| ApiError::bad_request("the object must be a JSON object"))
    }
}

impl FieldsMut for Map<String, Value> {
    fn fields(&mut self) -> Result<&mut Map<String, Value>, ApiError> {
        Ok(self)
    }
}

/// Kubernetes keeps generated names to 63 characters: at most 58 of the prefix.
const GENERATED_PREFIX_MAX: usize = 63 - GENERATED_SUFFIX_LEN;

/// Readies a new object: a generated name if asked for (`suffix` gives the random
/// part), no server-owned metadata, and the status a new object of its kind starts
/// with. Returns whether the name was generated.
pub fn prepare_create(kind: &Kind, object: &mut Value, suffix: impl FnOnce() -> String) -> Result<bool, ApiError> {
    let metadata = metadata_mut(object)?;
    let name_is_empty = metadata.get("name").and_then(Value::as_str).is_none_or(str::is_empty);
    let generate = metadata
        .get("generateName")
        .and_then(Value::as_str)
        .filter(|prefix| !prefix.is_empty() && name_is_empty)
        .map(|prefix| prefix.chars().take(GENERATED_PREFIX_MAX).collect::<String>());
    if let Some(prefix) = &generate {
        metadata.insert("name".into(), format!("{prefix}{}", suffix()).into());
    }
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        metadata.remove(field);
    }
    let fields = object.fields()?;
    match kind.status_on_create {
        StatusOnCreate::Submitted => {}
        StatusOnCreate::Phase(phase) => {
            fields.insert("status".into(), json!({ "phase": phase }));
        }
        StatusOnCreate::Cleared => {
            fields.remove("status");
        }
    }
    Ok(generate.is_some())
}

/// What the server works out for a new, validated object's status: a pod's QoS class
/// (Kubernetes sets it at creation, from the requests and limits).
pub fn complete_created_status(object: &mut Object) {
    if let Some(pod) = object.downcast_mut::<Pod>() {
        pod.status.qos_class = Some(qos_class(&pod.spec).to_string());
    }
}

/// The object to write when `submitted` replaces `part` of `stored`.
pub fn prepare_update(part: Part, stored: &Value, submitted: Value) -> Value {
    match part {
        Part::Main => {
            let mut new = submitted;
            for field in [
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "resourceVersion",
            ] {
                copy(stored, &mut new, &["metadata", field]);
            }
            copy(stored, &mut new, &["status"]);
            new
        }
        Part::Status => {
            let mut new = stored.clone();
            copy(&submitted, &mut new, &["status"]);
            // A pod's QoS class is set once, at creation; a writer that leaves it out
            // (an older agent, a client's own status) does not erase it.
            let is_set = |object: &Value| object.pointer("/status/qosClass").is_some_and(|c| !c.is_null());
            if is_set(stored) && !is_set(&new) {
                copy(stored, &mut new, &["status", "qosClass"]);
            }
            new
        }
    }
}

/// Sets `path` of `to` to its value in `from`, or removes it there when `from` has none.
fn copy(from: &Value, to: &mut Value, path: &[&str]) {
    let (last, parents) = path.split_last().expect("a non-empty path");
    let value = path.iter().try_fold(from, |at, field| at.get(field)).cloned();
    let mut at = to;
    for field in parents {
        let Some(next) = at.as_object_mut().map(|m| m.entry(*field).or_insert_with(|| json!({}))) else {
            return;
        };
        at = next;
    }
    if let Some(fields) = at.as_object_mut() {
        match value {
            Some(value) if !value.is_null() => {
                fields.insert(last.to_string(), value);
            }
            _ => {
                fields.remove(*last);
            }
        }
    }
}

/// The object's `metadata.resourceVersion` ("" when it has none).
pub fn resource_version(object: &Value) -> String {
    match object.pointer("/metadata/resourceVersion") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// The resourceVersion a write must find stored: the one submitted, or (`None`, when
/// it is empty) whatever is stored, as Kubernetes treats an unconditional update.
pub fn precondition(submitted: &Value) -> Option<String> {
    Some(resource_version(submitted)).filter(|v| !v.is_empty())
}

/// Whether a namespace is being deleted.
pub fn is_terminating(namespace: &Value) -> bool {
    namespace
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// What the server does with fields the object's kind does not define, as the
/// `fieldValidation` query parameter says (Kubernetes' default is `Warn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Dropped silently.
    Ignore,
    /// Dropped, with a `Warning` header naming each.
    #[default]
    Warn,
    /// The request fails with 400, naming each.
    Strict,
}

impl FieldValidation {
    pub fn parse(text: &str) -> Result<FieldValidation, ApiError> {
        match text {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation: {other:?} is not one of Ignore, Warn, Strict"
            ))),
        }
    }
}

/// Validates an object of `kind`; the error names every field at fault. Fields the
/// kind does not define are refused or reported in `warnings`, as `mode` says.
pub fn validate(
    kind: &Kind,
    object: Value,
    mode: FieldValidation,
    warnings: &mut Vec<String>,
) -> Result<Object, ApiError> {
    let object = super::storage::for_storage(kind, object);
    let parsed = parse_value(object.clone()).map_err(|errors| {
        ApiError::invalid(kind.kind, kind.group, text(&object, "/metadata/name"), &errors, &object)
    })?;
    let unknown = parsed
        .unknown_fields
        .iter()
        .map(|field| format!("unknown field {field:?}"));
    match mode {
        FieldValidation::Ignore => {}
        FieldValidation::Warn => warnings.extend(unknown),
        FieldValidation::Strict if !parsed.unknown_fields.is_empty() => {
            return Err(ApiError::bad_request(format!(
                "{} in version {:?} cannot be handled as a {}: strict decoding error: {}",
                kind.kind,
                kind.version,
                kind.kind,
                unknown.collect::<Vec<_>>().join(", ")
            )));
        }
        FieldValidation::Strict => {}
    }
    Ok(parsed.object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::kind;

    #[test]
    fn identity_comes_from_the_url_and_must_agree_with_it() {
        let pods = kind("pods");
        let mut pod = json!({"metadata": {"name": "p"}});
        check_identity(pods, &mut pod, Some("dev"), None).unwrap();
        assert_eq!(pod["kind"], "Pod");
        assert_eq!(pod["apiVersion"], "v1");
        assert_eq!(pod["metadata"]["namespace"], "dev");
        let mut elsewhere = json!({"metadata": {"name": "p", "namespace": "prod"}});
        let error = check_identity(pods, &mut elsewhere, Some("dev"), None).unwrap_err();
        assert_eq!(error.code, 400);
        assert!(
            error.message.contains("does not match the namespace"),
            "{}",
            error.message
        );
        let mut renamed = json!({"metadata": {"name": "q"}});
        let error = check_identity(pods, &mut renamed, Some("dev"), Some("p")).unwrap_err();
        assert_eq!(
            error.message,
            "the name of the object (q) does not match the name on the URL (p)"
        );
        let mut wrong_kind = json!({"kind": "Deployment", "apiVersion": "apps/v1"});
        assert_eq!(
            check_identity(pods, &mut wrong_kind, Some("dev"), None)
                .unwrap_err()
                .code,
            400
        );
        let mut wrong_version = json!({"kind": "Pod", "apiVersion": "apps/v1"});
        assert!(
            check_identity(pods, &mut wrong_version, Some("dev"), None)
                .unwrap_err()
                .message
                .contains("(apps/v1) does not match the expected API version (v1)")
        );
        let mut node = json!({"metadata": {"name": "n1"}});
        check_identity(kind("nodes"), &mut node, None, Some("n1")).unwrap();
        assert_eq!(node["metadata"].get("namespace"), None);
    }

    #[test]
    fn creates_start_clean() {
        let mut pod = json!({"metadata": {"generateName": "web-", "uid": "mine", "resourceVersion": "7"},
                             "status": {"phase": "Running"}});
        assert!(prepare_create(kind("pods"), &mut pod, || "abcde".into()).unwrap());
        assert_eq!(pod["metadata"]["name"], "web-abcde");
        assert_eq!(pod["metadata"].get("uid"), None);
        assert_eq!(pod["metadata"].get("resourceVersion"), None);
        assert_eq!(pod["status"], json!({"phase": "Pending"}));
        let mut named = json!({"metadata": {"name": "x", "generateName": "web-"}, "status": {"replicas": 3}});
        assert!(!prepare_create(kind("deployments"), &mut named, || unreachable!()).unwrap());
        assert_eq!(named["metadata"]["name"], "x");
        assert_eq!(named.get("status"), None);
        let mut node = json!({"metadata": {"name": "n"}, "status": {"addresses": []}});
        prepare_create(kind("nodes"), &mut node, String::new).unwrap();
        assert_eq!(node["status"], json!({"addresses": []}));
        let mut long = json!({"metadata": {"generateName": "a".repeat(70)}});
        prepare_create(kind("pods"), &mut long, || "bcdfg".into()).unwrap();
        assert_eq!(long["metadata"]["name"].as_str().unwrap().len(), 63);
    }

    #[test]
    fn updates_keep_what_the_server_owns() {
        let stored = json!({"metadata": {"name": "d", "uid": "u1", "creationTimestamp": "t", "generation": 4,
                                         "resourceVersion": "9", "labels": {"a": "b"}},
                            "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let submitted = json!({"metadata": {"name": "d", "uid": "forged", "labels": {"c": "d"}},
                               "spec": {"replicas": 5}, "status": {"replicas": 99}});
        let main = prepare_update(Part::Main, &stored, submitted.clone());
        assert_eq!(main["metadata"]["uid"], "u1");
        assert_eq!(main["metadata"]["generation"], 4);
        assert_eq!(main["metadata"]["creationTimestamp"], "t");
        assert_eq!(main["metadata"]["resourceVersion"], "9");
        assert_eq!(main["metadata"]["labels"], json!({"c": "d"}));
        assert_eq!(main["spec"]["replicas"], 5);
        assert_eq!(main["status"]["replicas"], 1, "status is the subresource's");
        let status = prepare_update(Part::Status, &stored, submitted);
        assert_eq!(status["spec"]["replicas"], 1, "spec is the main resource's");
        assert_eq!(status["metadata"]["labels"], json!({"a": "b"}));
        assert_eq!(status["status"]["replicas"], 99);
        let without_status = prepare_update(Part::Main, &json!({"metadata": {}}), json!({"status": {"x": 1}}));
        assert_eq!(without_status.get("status"), None);
    }

    #[test]
    fn a_created_pod_gets_its_qos_class_and_status_writes_keep_it() {
        let created = |resources: Value| {
            let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "dev"},
                                 "spec": {"containers": [{"name": "c", "command": ["sleep"], "resources": resources}]},
                                 "status": {"qosClass": "Guaranteed"}});
            prepare_create(kind("pods"), &mut pod, String::new).unwrap();
            let mut object = validate(kind("pods"), pod, FieldValidation::Strict, &mut Vec::new()).unwrap();
            complete_created_status(&mut object);
            object.to_value()["status"].clone()
        };
        assert_eq!(
            created(json!({})),
            json!({"phase": "Pending", "qosClass": "BestEffort"}),
            "the submitted class is the server's to set"
        );
        assert_eq!(
            created(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))["qosClass"],
            "Guaranteed"
        );
        assert_eq!(created(json!({"requests": {"cpu": "100m"}}))["qosClass"], "Burstable");

        let stored = json!({"metadata": {"name": "p"}, "status": {"phase": "Pending", "qosClass": "Burstable"}});
        let written = prepare_update(Part::Status, &stored, json!({"status": {"phase": "Running"}}));
        assert_eq!(written["status"], json!({"phase": "Running", "qosClass": "Burstable"}));
        let none_stored = prepare_update(
            Part::Status,
            &json!({"metadata": {}}),
            json!({"status": {"phase": "Running"}}),
        );
        assert_eq!(none_stored["status"], json!({"phase": "Running"}));
    }

    #[test]
    fn preconditions_and_terminating() {
        assert_eq!(
            precondition(&json!({"metadata": {"resourceVersion": "12"}})),
            Some("12".into())
        );
        assert_eq!(precondition(&json!({"metadata": {"resourceVersion": ""}})), None);
        assert_eq!(precondition(&json!({})), None);
        assert!(is_terminating(&json!({"metadata": {"deletionTimestamp": "t"}})));
        assert!(!is_terminating(&json!({"metadata": {}})));
    }

    #[test]
    fn validation_failures_are_invalid() {
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": -2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "command": ["sleep"]}]}}}});
        let error = validate(
            kind("deployments"),
            deployment,
            FieldValidation::Strict,
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(error.code, 422);
        assert_eq!(
            error.message,
            "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -2: must be 0 or more, not -2"
        );
    }
}
