//! Errors as Kubernetes reports them: a `Status` object with a reason, an HTTP code and
//! a message worded like Kubernetes' own, and the one mapping from store errors to them.

use serde_json::{Value, json};

use super::route::Kind;
use berth_api::kinds::qualify;
use berth_api::validation::FieldError;
use berth_client::kv::KvError;

/// A failed request, rendered as a `Status` object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    /// Kubernetes' `StatusReason`: `NotFound`, `Conflict`, `Invalid`, ...
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// `metadata.continue` of the Status: the token to list on with, inconsistently,
    /// after the revision of a paged list was compacted.
    pub list_continue: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

fn resource_details(kind: &Kind, name: &str) -> Value {
    json!({"name": name, "group": kind.group, "kind": kind.plural})
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            list_continue: None,
        }
    }

    pub(crate) fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The `Status` object.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        if let Some(token) = &self.list_continue {
            status["metadata"]["continue"] = token.clone().into();
        }
        status
    }

    /// The seconds a client should wait before trying again (`details.retryAfterSeconds`),
    /// which the response also carries as a `Retry-After` header.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        self.details.as_ref()?.get("retryAfterSeconds")?.as_u64()
    }

    pub fn not_found(kind: &Kind, name: &str) -> Self {
        let message = format!("{} {name:?} not found", kind.qualified_resource());
        Self::new(404, "NotFound", message).with_details(resource_details(kind, name))
    }

    pub fn path_not_found() -> Self {
        Self::new(404, "NotFound", "the server could not find the requested resource")
    }

    pub fn already_exists(kind: &Kind, name: &str) -> Self {
        let message = format!("{} {name:?} already exists", kind.qualified_resource());
        Self::new(409, "AlreadyExists", message).with_details(resource_details(kind, name))
    }

    pub fn conflict(kind: &Kind, name: &str) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {} {name:?}: the object has been modified; \
             please apply your changes to the latest version and try again",
            kind.qualified_resource()
        );
        Self::new(409, "Conflict", message).with_details(resource_details(kind, name))
    }

    /// A delete whose `preconditions.uid` names another object than the stored one.
    pub fn uid_precondition(kind: &Kind, name: &str, wanted: &str, stored: &str) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {} {name:?}: Precondition failed: UID in precondition: {wanted}, \
             UID in object meta: {stored}",
            kind.qualified_resource()
        );
        Self::new(409, "Conflict", message).with_details(resource_details(kind, name))
    }

    pub fn forbidden(kind: &Kind, name: &str, why: &str) -> Self {
        let message = format!("{} {name:?} is forbidden: {why}", kind.qualified_resource());
        Self::new(403, "Forbidden", message).with_details(resource_details(kind, name))
    }

    /// Validation failed: `Deployment.apps "web" is invalid: spec.replicas: Invalid
    /// value: -1: must be 0 or more, not -1`. `submitted` is the object as validated,
    /// from which the offending values are quoted.
    pub fn invalid(kind: &str, group: &str, name: &str, errors: &[FieldError], submitted: &Value) -> Self {
        let described: Vec<(&FieldError, &'static str, String)> = errors
            .iter()
            .map(|e| {
                let (reason, text) = describe(e, submitted);
                (e, reason, text)
            })
            .collect();
        let lines: Vec<String> = described
            .iter()
            .map(|(e, _, text)| format!("{}: {text}", e.field))
            .collect();
        let summary = match &lines[..] {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let causes: Vec<Value> = described
            .iter()
            .map(|(e, reason, text)| json!({"reason": reason, "message": text, "field": e.field}))
            .collect();
        let message = format!("{} {name:?} is invalid: {summary}", qualify(kind, group));
        Self::new(422, "Invalid", message)
            .with_details(json!({"name": name, "group": group, "kind": kind, "causes": causes}))
    }

    /// Request options that fail validation (`PatchOptions.meta.k8s.io "" is invalid:
    /// fieldManager: Required value: is required for apply patch`): `options` is the
    /// options kind, `reason` the cause's (`FieldValueRequired`), `text` what follows
    /// the field.
    pub fn invalid_options(options: &str, field: &str, reason: &str, text: &str) -> Self {
        let message = format!("{options}.meta.k8s.io \"\" is invalid: {field}: {text}");
        Self::new(422, "Invalid", message).with_details(json!({
            "group": "meta.k8s.io",
            "kind": options,
            "causes": [{"reason": reason, "message": text, "field": field}],
        }))
    }

    /// An apply that would change fields other managers own: kube-apiserver's
    /// `Conflict` with one `FieldManagerConflict` cause per field, `(message, field)`.
    pub fn apply_conflict(message: String, causes: &[(String, String)]) -> Self {
        let causes: Vec<Value> = causes
            .iter()
            .map(|(message, field)| json!({"type": "FieldManagerConflict", "message": message, "field": field}))
            .collect();
        Self::new(409, "Conflict", message).with_details(json!({ "causes": causes }))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    /// A watch from a compacted revision.
    /// (`compacted` is 0 when the store did not say.)
    pub fn expired(requested: i64, compacted: i64) -> Self {
        let message = match compacted {
            0 => format!("too old resource version: {requested}"),
            _ => format!("too old resource version: {requested} ({compacted})"),
        };
        Self::new(410, "Expired", message)
    }

    /// A request body over the limit, worded as kube-apiserver words it.
    pub fn too_large(limit_bytes: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit_bytes}"),
        )
    }

    /// An object whose stored form is larger than the store takes in one request.
    pub fn object_too_large(kind: &Kind, name: &str, limit_bytes: usize) -> Self {
        let message = format!(
            "Request entity too large: {} {name:?} is too large to store: the store takes \
             requests of at most {limit_bytes} bytes (its --max-request-bytes)",
            kind.qualified_resource()
        );
        Self::new(413, "RequestEntityTooLarge", message).with_details(resource_details(kind, name))
    }

    /// More requests at once than the server takes (`--max-requests-inflight`,
    /// `--max-mutating-requests-inflight`).
    pub fn too_many_requests() -> Self {
        Self::new(429, "TooManyRequests", "Too many requests, please try again later.")
            .with_details(json!({"retryAfterSeconds": 1}))
    }

    /// A request that did not finish within `--request-timeout` (or its `timeout`).
    pub fn timeout() -> Self {
        Self::new(
            504,
            "Timeout",
            "Timeout: request did not complete within requested timeout - context deadline exceeded",
        )
    }

    /// A paged list whose revision was compacted before its next page was asked for;
    /// `token` goes on from where the list was, at the current revision.
    pub fn expired_continue(token: Option<String>) -> Self {
        let message = if token.is_some() {
            "The provided continue parameter is too old to display a consistent list result. You can start a \
             new list without the continue parameter, or use the continue token in this response to retrieve \
             the remainder of the results. Continuing with the provided token results in an inconsistent list - \
             objects that were created, modified, or deleted between the time the first chunk was returned and \
             now may show up in the list."
        } else {
            "The provided continue parameter is too old to display a consistent list result. You can start a \
             new list without the continue parameter."
        };
        let mut error = Self::new(410, "Expired", message);
        error.list_continue = token;
        error
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(500, "InternalError", format!("Internal error occurred: {message}"))
    }

    /// The store's answer about object `name` of `kind`, as the API reports it.
    pub fn from_kv(error: KvError, kind: &Kind, name: &str) -> Self {
        match error {
            KvError::NotFound => Self::not_found(kind, name),
            KvError::AlreadyExists => Self::already_exists(kind, name),
            KvError::Conflict { .. } => Self::conflict(kind, name),
            KvError::Compacted { requested, compacted } => Self::expired(requested, compacted),
            KvError::FutureRevision { requested } => Self::new(
                504,
                "Timeout",
                format!("Too large resource version: {requested}: the store has not reached it"),
            )
            .with_details(json!({"retryAfterSeconds": 1})),
            KvError::RequestTooLarge => Self::new(
                413,
                "RequestEntityTooLarge",
                format!("Request entity too large: {error}"),
            ),
            KvError::Unavailable(cause) => Self::unavailable(format!(
                "the store is unavailable (it cannot reach a quorum, or this server cannot reach it): {cause}"
            )),
            e @ (KvError::Fenced | KvError::Other(_)) => Self::internal(e),
        }
    }
}

/// A field error as Kubernetes words it (`Invalid value: "64Mb": ...`, `Required
/// value`), with its cause reason.
fn describe(error: &FieldError, submitted: &Value) -> (&'static str, String) {
    if let Some(rest) = error.message.strip_prefix("required") {
        let rest = rest.trim_start_matches(':').trim();
        let text = if rest.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {rest}")
        };
        return ("FieldValueRequired", text);
    }
    // Messages that carry their own Kubernetes wording.
    for (prefix, reason) in [
        ("Required value", "FieldValueRequired"),
        ("Forbidden:", "FieldValueForbidden"),
        ("Too long:", "FieldValueTooLong"),
        ("Too many:", "FieldValueTooMany"),
        ("Duplicate value:", "FieldValueDuplicate"),
        ("Unsupported value:", "FieldValueNotSupported"),
        // Quoting the value Kubernetes quotes, which is not always the field's own
        // (a NetworkPolicy's endPort below its port quotes the port).
        ("Invalid value:", "FieldValueInvalid"),
    ] {
        if error.message.starts_with(prefix) {
            return (reason, error.message.clone());
        }
    }
    let text = match lookup(submitted, &error.field).and_then(scalar) {
        Some(value) => format!("Invalid value: {value}: {}", error.message),
        None => format!("Invalid value: {}", error.message),
    };
    ("FieldValueInvalid", text)
}

/// The value at a field path such as `spec.template.spec.containers[0].name`.
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut at = value;
    for part in path.split('.') {
        let (name, indices) = part.split_once('[').map_or((part, ""), |(n, i)| (n, i));
        if !name.is_empty() {
            at = at.get(name)?;
        }
        for index in indices.split('[').filter(|s| !s.is_empty()) {
            at = at.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(at)
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::kind;

    #[test]
    fn statuses_read_like_kubernetes() {
        let status = ApiError::not_found(kind("deployments"), "web").status();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["apiVersion"], "v1");
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["message"], "deployments.apps \"web\" not found");
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["code"], 404);
        assert_eq!(status["details"]["group"], "apps");
        assert_eq!(ApiError::not_found(kind("pods"), "x").message, "pods \"x\" not found");
        assert_eq!(
            ApiError::conflict(kind("pods"), "x").message,
            "Operation cannot be fulfilled on pods \"x\": the object has been modified; \
             please apply your changes to the latest version and try again"
        );
        assert_eq!(ApiError::expired(3, 9).message, "too old resource version: 3 (9)");
        assert_eq!(ApiError::method_not_allowed().status()["code"], 405);
    }

    #[test]
    fn store_errors_map_once() {
        let pods = kind("pods");
        let code = |e: KvError| ApiError::from_kv(e, pods, "x");
        assert_eq!(code(KvError::NotFound).code, 404);
        assert_eq!(code(KvError::AlreadyExists).reason, "AlreadyExists");
        assert_eq!(code(KvError::Conflict { current: 4 }).code, 409);
        assert_eq!(
            code(KvError::Compacted {
                requested: 2,
                compacted: 5
            })
            .code,
            410
        );
        let unavailable = code(KvError::Unavailable("no leader".into()));
        assert_eq!((unavailable.code, unavailable.reason), (503, "ServiceUnavailable"));
        assert!(unavailable.message.contains("quorum") && unavailable.message.ends_with("no leader"));
        assert_eq!(code(KvError::Other("boom".into())).code, 500);
    }

    #[test]
    fn invalid_names_each_field_and_quotes_its_value() {
        let submitted = json!({"spec": {"replicas": -1, "template": {"spec": {"containers": [{"name": "Web"}]}}}});
        let one = ApiError::invalid(
            "Deployment",
            "apps",
            "web",
            &[FieldError {
                field: "spec.replicas".into(),
                message: "must be 0 or more, not -1".into(),
            }],
            &submitted,
        );
        assert_eq!(one.code, 422);
        assert_eq!(
            one.message,
            "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be 0 or more, not -1"
        );
        assert_eq!(one.details.as_ref().unwrap()["causes"][0]["field"], "spec.replicas");
        assert_eq!(
            one.details.as_ref().unwrap()["causes"][0]["reason"],
            "FieldValueInvalid"
        );
        let two = ApiError::invalid(
            "Pod",
            "",
            "p",
            &[
                FieldError {
                    field: "spec.template.spec.containers[0].name".into(),
                    message: "\"Web\" is not a DNS label".into(),
                },
                FieldError {
                    field: "spec.selector.matchLabels".into(),
                    message: "required: a selector that matches nothing would adopt every pod".into(),
                },
            ],
            &submitted,
        );
        assert_eq!(
            two.message,
            "Pod \"p\" is invalid: [spec.template.spec.containers[0].name: Invalid value: \"Web\": \"Web\" is not \
             a DNS label, spec.selector.matchLabels: Required value: a selector that matches nothing would adopt \
             every pod]"
        );
        assert_eq!(two.details.unwrap()["causes"][1]["reason"], "FieldValueRequired");
    }

    #[test]
    fn field_paths_reach_into_lists() {
        let v = json!({"a": {"b": [{"c": 1}, {"c": [5, 6]}]}});
        assert_eq!(lookup(&v, "a.b[1].c[1]"), Some(&json!(6)));
        assert_eq!(lookup(&v, "a.b[2]"), None);
        assert_eq!(lookup(&v, "<document>"), None);
    }
}
