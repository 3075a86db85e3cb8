//! ConfigMaps: configuration that pods name rather than carry, as environment
//! variables today. Kubernetes' core/v1 `ConfigMap`, flat (no spec/status): text
//! values in `data`, bytes in `binaryData` (base64 on the wire), no key in both.
//!
//! Keys are config keys as for a Secret ([`config_key_problem`]); both maps together
//! hold at most a mebibyte, as Kubernetes' `MaxSecretSize`. One marked `immutable`
//! keeps its data, binary data and immutability for good ([`validate_update`]).
//!
//! Stored as served under `/registry/configmaps/<ns>/<name>`, where the agents read
//! the ones their pods' environment names.

use std::time::SystemTime;

use serde_json::Value;

use super::cells::{self, Cells};
use super::secret::{MAX_SECRET_BYTES, config_key_problem};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources, flat_kind};
use crate::validation::FieldError;

pub use k8s_openapi::api::core::v1::ConfigMap;

pub static CONFIG_MAP: KindDescriptor = KindDescriptor {
    group: "",
    version: "v1",
    kind: "ConfigMap",
    plural: "configmaps",
    singular: "configmap",
    short_names: &["cm"],
    namespaced: true,
    names_are_dns_labels: false,
    field_selectors: &[],
    categories: &[],
    subresources: Subresources {
        status: false,
        scale: false,
    },
    printer_columns: &[
        PrinterColumn::NAME,
        PrinterColumn::new("Data", "integer", "", "How many keys the config map holds."),
        PrinterColumn::AGE,
    ],
    status_on_create: StatusOnCreate::Submitted,
    decode: Object::decode_as::<ConfigMap>,
    defaults: |_| {},
    validate,
    validate_update,
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<ConfigMap>(),
};

flat_kind!(ConfigMap, CONFIG_MAP);

fn err(errors: &mut Vec<FieldError>, field: impl Into<String>, message: impl Into<String>) {
    errors.push(FieldError {
        field: field.into(),
        message: message.into(),
    });
}

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    let Some(config) = object.downcast_ref::<ConfigMap>() else {
        return;
    };
    let mut total_bytes = 0;
    for (key, value) in config.data.iter().flatten() {
        if let Some(problem) = config_key_problem(key) {
            err(errors, format!("data[{key}]"), format!("{key:?}: {problem}"));
        }
        total_bytes += value.len();
    }
    for (key, value) in config.binary_data.iter().flatten() {
        if let Some(problem) = config_key_problem(key) {
            err(errors, format!("binaryData[{key}]"), format!("{key:?}: {problem}"));
        }
        if config.data.as_ref().is_some_and(|data| data.contains_key(key)) {
            err(
                errors,
                format!("binaryData[{key}]"),
                format!("{key:?}: duplicate of key present in data"),
            );
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
}

/// Once `immutable` is set, the data, the binary data and the flag stay as they are.
fn validate_update(old: &Object, new: &Object, errors: &mut Vec<FieldError>) {
    let (Some(old), Some(new)) = (old.downcast_ref::<ConfigMap>(), new.downcast_ref::<ConfigMap>()) else {
        return;
    };
    if old.immutable != Some(true) {
        return;
    }
    const FORBIDDEN: &str = "Forbidden: field is immutable when `immutable` is set";
    if new.immutable != Some(true) {
        err(errors, "immutable", FORBIDDEN);
    }
    if old.data.clone().unwrap_or_default() != new.data.clone().unwrap_or_default() {
        err(errors, "data", FORBIDDEN);
    }
    if old.binary_data.clone().unwrap_or_default() != new.binary_data.clone().unwrap_or_default() {
        err(errors, "binaryData", FORBIDDEN);
    }
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(config) = object.downcast_ref::<ConfigMap>() else {
        return cells::from_paths(&CONFIG_MAP, object, now);
    };
    let keys = config.data.as_ref().map_or(0, |d| d.len()) + config.binary_data.as_ref().map_or(0, |d| d.len());
    vec![cells::name(object), Value::from(keys), cells::age(object, now)]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::validation::parse_value;

    fn config_map(fields: Value) -> Value {
        let mut config =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "dev"}});
        config
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        config
    }

    fn admit(fields: Value) -> Result<Value, Vec<String>> {
        parse_value(config_map(fields))
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
    fn data_and_binary_data_are_stored_as_sent() {
        let stored = admit(json!({"data": {"a.conf": "x=1"}, "binaryData": {"blob": "AAE="}})).unwrap();
        assert_eq!(stored["data"], json!({"a.conf": "x=1"}));
        assert_eq!(stored["binaryData"], json!({"blob": "AAE="}));
        assert_eq!(
            parse_value(config_map(json!({}))).unwrap().object.key(),
            "/registry/configmaps/dev/c"
        );
    }

    #[test]
    fn keys_must_be_config_keys_unique_across_both_maps_and_at_most_a_mebibyte() {
        assert_eq!(
            fields_at_fault(json!({"data": {"a b": "x", "..dots": "x", "ok-_.9": "x"}, "binaryData": {"a/b": "AA=="}})),
            ["data[..dots]", "data[a b]", "binaryData[a/b]"]
        );
        let long = "k".repeat(254);
        assert_eq!(
            fields_at_fault(json!({"data": {long.clone(): "x"}})),
            [format!("data[{long}]")]
        );
        let errors = admit(json!({"data": {"same": "x"}, "binaryData": {"same": "AA=="}})).unwrap_err();
        assert_eq!(errors, ["binaryData[same]: \"same\": duplicate of key present in data"]);
        let half = "x".repeat(MAX_SECRET_BYTES / 2 + 1);
        assert_eq!(fields_at_fault(json!({"data": {"a": half, "b": half}})), ["data"]);
        assert!(admit(json!({"data": {"a": "x".repeat(MAX_SECRET_BYTES)}})).is_ok());
    }

    fn object(fields: Value) -> Object {
        parse_value(config_map(fields)).unwrap().object
    }

    fn update_errors(old: Value, new: Value) -> Vec<String> {
        let mut errors = Vec::new();
        (CONFIG_MAP.validate_update)(&object(old), &object(new), &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn an_immutable_config_map_keeps_its_data_binary_data_and_flag() {
        let frozen = json!({"immutable": true, "data": {"a": "1"}, "binaryData": {"b": "AA=="}});
        assert_eq!(
            update_errors(
                frozen.clone(),
                json!({"immutable": true, "data": {"a": "2"}, "binaryData": {"b": "AQ=="}})
            ),
            [
                "data: Forbidden: field is immutable when `immutable` is set",
                "binaryData: Forbidden: field is immutable when `immutable` is set"
            ]
        );
        assert_eq!(
            update_errors(frozen.clone(), json!({"data": {"a": "1"}, "binaryData": {"b": "AA=="}})),
            ["immutable: Forbidden: field is immutable when `immutable` is set"]
        );
        let mut relabelled = frozen.clone();
        relabelled["metadata"] = json!({"name": "c", "namespace": "dev", "labels": {"a": "b"}});
        assert!(update_errors(frozen, relabelled).is_empty(), "metadata may change");
        let open = json!({"data": {"a": "1"}});
        assert!(update_errors(open, json!({"data": {"a": "2"}, "immutable": true})).is_empty());
    }

    #[test]
    fn the_table_row_counts_the_keys_of_both_maps() {
        let row = (CONFIG_MAP.cells)(
            &object(json!({"data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}})),
            SystemTime::now(),
        );
        assert_eq!(row[..2], [json!("c"), json!(3)]);
    }
}
