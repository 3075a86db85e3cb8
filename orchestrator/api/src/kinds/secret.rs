//! Secrets: small pieces of data (registry credentials, keys, passwords) that pods
//! name rather than carry. Kubernetes' core/v1 `Secret`, flat (no spec/status).
//!
//! As kube-apiserver does, `stringData` is a write-only convenience: on every write
//! its entries are merged into `data` (winning over a `data` entry of the same key)
//! and it is not stored. A secret's `type` says which keys it must have; one marked
//! `immutable` keeps its data, type and immutability for good
//! ([`validate_update`]).
//!
//! Stored under `/registry/secrets/<ns>/<name>`, where the agents read
//! `imagePullSecrets`, as served (base64 in `data`) and then, when the servers
//! are given an EncryptionConfiguration (`berth up` always is), encrypted at rest
//! by the store client itself (`berth_client::envelope`), below every reader and
//! writer: the API server, the controllers and the agents alike.

use std::time::SystemTime;

use k8s_openapi::ByteString;
use serde_json::Value;

use super::cells::{self, Cells, text};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources, flat_kind};
use crate::validation::FieldError;

pub use k8s_openapi::api::core::v1::Secret;

/// The most a secret's data may hold, all keys together, as Kubernetes' `MaxSecretSize`.
pub const MAX_SECRET_BYTES: usize = 1024 * 1024;

pub const OPAQUE: &str = "Opaque";
pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
pub const DOCKER_CFG: &str = "kubernetes.io/dockercfg";
pub const BASIC_AUTH: &str = "kubernetes.io/basic-auth";
pub const SSH_AUTH: &str = "kubernetes.io/ssh-auth";
pub const TLS: &str = "kubernetes.io/tls";
pub const SERVICE_ACCOUNT_TOKEN: &str = "kubernetes.io/service-account-token";

/// What Kubernetes says in place of a secret's contents in an error.
const REDACTED: &str = "<secret contents redacted>";

pub static SECRET: KindDescriptor = KindDescriptor {
    group: "",
    version: "v1",
    kind: "Secret",
    plural: "secrets",
    singular: "secret",
    short_names: &[],
    namespaced: true,
    names_are_dns_labels: false,
    field_selectors: &["type"],
    categories: &[],
    subresources: Subresources {
        status: false,
        scale: false,
    },
    printer_columns: &[
        PrinterColumn::NAME,
        PrinterColumn::new("Type", "string", ".type", "The type of the secret's data."),
        PrinterColumn::new("Data", "integer", "", "How many keys the secret's data has."),
        PrinterColumn::AGE,
    ],
    status_on_create: StatusOnCreate::Submitted,
    decode: Object::decode_as::<Secret>,
    defaults,
    validate,
    validate_update,
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<Secret>(),
};

flat_kind!(Secret, SECRET);

/// `type: Opaque` when absent; `stringData` merged into `data` and dropped.
fn defaults(object: &mut Object) {
    let Some(secret) = object.downcast_mut::<Secret>() else {
        return;
    };
    if text(&secret.type_).is_empty() {
        secret.type_ = Some(OPAQUE.into());
    }
    if let Some(strings) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(Default::default);
        for (key, value) in strings {
            data.insert(key, ByteString(value.into_bytes()));
        }
    }
}

fn err(errors: &mut Vec<FieldError>, field: impl Into<String>, message: impl Into<String>) {
    errors.push(FieldError {
        field: field.into(),
        message: message.into(),
    });
}

/// A key of `data` as Kubernetes' `IsConfigMapKey` has it: why it is not one, if not.
pub fn config_key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() || key.len() > 253 {
        return Some("a valid config key must be 1 to 253 characters");
    }
    if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
        return Some("a valid config key must consist of alphanumeric characters, '-', '_' or '.'");
    }
    match key {
        "." => Some("must not be '.'"),
        ".." => Some("must not be '..'"),
        _ if key.starts_with("..") => Some("must not start with '..'"),
        _ => None,
    }
}

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    let Some(secret) = object.downcast_ref::<Secret>() else {
        return;
    };
    let empty = Default::default();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let mut total_bytes = 0;
    for (key, value) in data {
        if let Some(problem) = config_key_problem(key) {
            err(errors, format!("data[{key}]"), format!("{key:?}: {problem}"));
        }
        total_bytes += value.0.len();
    }
    if total_bytes > MAX_SECRET_BYTES {
        err(
            errors,
            "data",
            format!("Too long: must have at most {MAX_SECRET_BYTES} bytes"),
        );
    }
    let required = |errors: &mut Vec<FieldError>, key: &str| {
        if !data.contains_key(key) {
            err(errors, format!("data[{key}]"), "required");
        }
    };
    match text(&secret.type_) {
        DOCKER_CONFIG_JSON => docker_config(data, ".dockerconfigjson", errors),
        DOCKER_CFG => docker_config(data, ".dockercfg", errors),
        // Either may be empty, but one must be there.
        BASIC_AUTH if !data.contains_key("username") && !data.contains_key("password") => {
            err(errors, "data[username]", "required");
            err(errors, "data[password]", "required");
        }
        SSH_AUTH => required(errors, "ssh-privatekey"),
        TLS => {
            required(errors, "tls.crt");
            required(errors, "tls.key");
        }
        SERVICE_ACCOUNT_TOKEN => {
            let named = secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .is_some_and(|name| !name.is_empty());
            if !named {
                err(
                    errors,
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "required",
                );
            }
        }
        _ => {}
    }
}

/// A docker config secret's one required key, holding JSON.
fn docker_config(data: &std::collections::BTreeMap<String, ByteString>, key: &str, errors: &mut Vec<FieldError>) {
    match data.get(key) {
        None => err(errors, format!("data[{key}]"), "required"),
        Some(value) => {
            if let Err(e) = serde_json::from_slice::<Value>(&value.0) {
                err(errors, format!("data[{key}]"), format!("{REDACTED:?}: {e}"));
            }
        }
    }
}

/// What an update may not change: the type, and, once `immutable` is set, the data
/// and the flag itself.
fn validate_update(old: &Object, new: &Object, errors: &mut Vec<FieldError>) {
    let (Some(old), Some(new)) = (old.downcast_ref::<Secret>(), new.downcast_ref::<Secret>()) else {
        return;
    };
    if text(&old.type_) != text(&new.type_) {
        err(errors, "type", "field is immutable");
    }
    if old.immutable == Some(true) {
        const FORBIDDEN: &str = "Forbidden: field is immutable when `immutable` is set";
        if new.immutable != Some(true) {
            err(errors, "immutable", FORBIDDEN);
        }
        if old.data.clone().unwrap_or_default() != new.data.clone().unwrap_or_default() {
            err(errors, "data", FORBIDDEN);
        }
    }
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(secret) = object.downcast_ref::<Secret>() else {
        return cells::from_paths(&SECRET, object, now);
    };
    let keys = secret.data.as_ref().map_or(0, |d| d.len());
    vec![
        cells::name(object),
        text(&secret.type_).into(),
        Value::from(keys),
        cells::age(object, now),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::validation::parse_value;

    fn secret(fields: Value) -> Value {
        let mut secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "dev"}});
        secret
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        secret
    }

    /// The object as it would be stored, or the fields at fault.
    fn admit(fields: Value) -> Result<Value, Vec<String>> {
        parse_value(secret(fields))
            .map(|parsed| parsed.object.to_value())
            .map_err(|errors| errors.iter().map(ToString::to_string).collect())
    }

    fn fields_at_fault(fields: Value) -> Vec<String> {
        let errors = admit(fields).unwrap_err();
        errors
            .iter()
            .map(|e| e.split(':').next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn type_defaults_to_opaque_and_string_data_merges_into_data() {
        let stored = admit(json!({
            "data": {"kept": "YQ==", "both": "b2xk"},
            "stringData": {"both": "new", "plain": "text"},
        }))
        .unwrap();
        assert_eq!(stored["type"], "Opaque");
        assert_eq!(
            stored["data"],
            json!({"kept": "YQ==", "both": "bmV3", "plain": "dGV4dA=="}),
            "stringData wins over data and is stored base64-encoded"
        );
        assert!(stored.get("stringData").is_none(), "stringData is never stored");
        assert_eq!(
            admit(json!({"type": TLS, "stringData": {"tls.crt": "c", "tls.key": "k"}})).unwrap()["type"],
            TLS
        );
    }

    #[test]
    fn keys_must_be_config_keys_and_data_at_most_a_mebibyte() {
        assert_eq!(
            fields_at_fault(json!({"stringData": {"a b": "x", "..dots": "x", ".": "x", "ok-_.9": "x"}})),
            ["data[.]", "data[..dots]", "data[a b]"]
        );
        let errors = admit(json!({"stringData": {"a b": "x"}})).unwrap_err();
        assert!(
            errors[0].contains("alphanumeric characters, '-', '_' or '.'"),
            "{errors:?}"
        );
        let big = "x".repeat(MAX_SECRET_BYTES / 2 + 1);
        assert_eq!(fields_at_fault(json!({"stringData": {"a": big, "b": big}})), ["data"]);
        assert!(admit(json!({"stringData": {"a": "x".repeat(MAX_SECRET_BYTES)}})).is_ok());
    }

    #[test]
    fn typed_secrets_need_their_keys() {
        assert_eq!(
            fields_at_fault(json!({"type": DOCKER_CONFIG_JSON})),
            ["data[.dockerconfigjson]"]
        );
        let not_json = admit(json!({"type": DOCKER_CONFIG_JSON, "stringData": {".dockerconfigjson": "{nope"}}));
        let errors = not_json.unwrap_err();
        assert!(
            errors[0].starts_with("data[.dockerconfigjson]: \"<secret contents redacted>\""),
            "{errors:?}"
        );
        assert!(!errors[0].contains("nope"), "the contents are not quoted: {errors:?}");
        assert!(
            admit(json!({"type": DOCKER_CONFIG_JSON, "stringData": {".dockerconfigjson": "{\"auths\": {}}"}})).is_ok()
        );
        assert_eq!(fields_at_fault(json!({"type": DOCKER_CFG})), ["data[.dockercfg]"]);
        assert_eq!(
            fields_at_fault(json!({"type": BASIC_AUTH})),
            ["data[username]", "data[password]"]
        );
        assert!(admit(json!({"type": BASIC_AUTH, "stringData": {"password": "p"}})).is_ok());
        assert_eq!(fields_at_fault(json!({"type": SSH_AUTH})), ["data[ssh-privatekey]"]);
        assert_eq!(
            fields_at_fault(json!({"type": TLS, "stringData": {"tls.crt": "c"}})),
            ["data[tls.key]"]
        );
        assert_eq!(
            fields_at_fault(json!({"type": SERVICE_ACCOUNT_TOKEN})),
            ["metadata.annotations[kubernetes.io/service-account.name]"]
        );
        assert!(admit(json!({"type": "example.com/anything"})).is_ok());
    }

    fn object(fields: Value) -> Object {
        parse_value(secret(fields)).unwrap().object
    }

    fn update_errors(old: Value, new: Value) -> Vec<String> {
        let mut errors = Vec::new();
        (SECRET.validate_update)(&object(old), &object(new), &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn an_immutable_secret_keeps_its_data_and_every_secret_its_type() {
        let frozen = json!({"immutable": true, "stringData": {"a": "1"}});
        assert_eq!(
            update_errors(frozen.clone(), json!({"immutable": true, "stringData": {"a": "2"}})),
            ["data: Forbidden: field is immutable when `immutable` is set"]
        );
        assert_eq!(
            update_errors(frozen.clone(), json!({"stringData": {"a": "1"}})),
            ["immutable: Forbidden: field is immutable when `immutable` is set"]
        );
        let mut relabelled = frozen.clone();
        relabelled["metadata"] = json!({"name": "s", "namespace": "dev", "labels": {"a": "b"}});
        assert!(update_errors(frozen, relabelled).is_empty(), "metadata may change");
        let open = json!({"stringData": {"a": "1"}});
        assert!(update_errors(open.clone(), json!({"stringData": {"a": "2"}, "immutable": true})).is_empty());
        assert_eq!(
            update_errors(open, json!({"type": "other", "stringData": {"a": "1"}})),
            ["type: field is immutable"]
        );
    }

    #[test]
    fn secrets_are_stored_where_the_agents_read_them() {
        assert_eq!(object(json!({})).key(), "/registry/secrets/dev/s");
    }

    #[test]
    fn the_table_row_counts_the_keys() {
        let row = (SECRET.cells)(&object(json!({"stringData": {"a": "1", "b": "2"}})), SystemTime::now());
        assert_eq!(row[..3], [json!("s"), json!("Opaque"), json!(2)]);
    }
}
