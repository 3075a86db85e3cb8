//! LimitRanges (core/v1): per namespace, the default requests and limits of
//! containers and the bounds of containers, pods and claims, applied when they are
//! created (`crate::admission::limit_range`). Flat (a spec, no status), stored as
//! served under `/registry/limitranges/<ns>/<name>`.
//!
//! Written items get Kubernetes' defaults: a `Container` item's `default` limit is
//! its `max` where unset, its `defaultRequest` its `default`, else its `min`.

use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources, cells, flat_kind};
use crate::admission::amount;
use crate::admission::limit_range::{CONTAINER, PERSISTENT_VOLUME_CLAIM, POD};
use crate::validation::FieldError;

pub use k8s_openapi::api::core::v1::{LimitRange, LimitRangeItem, LimitRangeSpec};

pub static LIMIT_RANGE: KindDescriptor = KindDescriptor {
    group: "",
    version: "v1",
    kind: "LimitRange",
    plural: "limitranges",
    singular: "limitrange",
    short_names: &["limits"],
    namespaced: true,
    names_are_dns_labels: false,
    field_selectors: &[],
    categories: &[],
    subresources: Subresources {
        status: false,
        scale: false,
    },
    printer_columns: &[PrinterColumn::NAME, PrinterColumn::AGE],
    status_on_create: StatusOnCreate::Submitted,
    decode: Object::decode_as::<LimitRange>,
    defaults,
    validate,
    validate_update: |_, _, _| {},
    cells: |object, now| cells::from_paths(&LIMIT_RANGE, object, now),
    conversion: None,
    schema: |generator| generator.subschema_for::<LimitRange>(),
};

flat_kind!(LimitRange, LIMIT_RANGE);

fn defaults(object: &mut Object) {
    let Some(range) = object.downcast_mut::<LimitRange>() else {
        return;
    };
    for item in range.spec.iter_mut().flat_map(|s| s.limits.iter_mut()) {
        if item.type_ != CONTAINER {
            continue;
        }
        let max = item.max.clone().unwrap_or_default();
        let default = item.default.get_or_insert_with(Default::default);
        for (name, value) in max {
            default.entry(name).or_insert(value);
        }
        let default = default.clone();
        let min = item.min.clone().unwrap_or_default();
        let request = item.default_request.get_or_insert_with(Default::default);
        for (name, value) in default.into_iter().chain(min) {
            request.entry(name).or_insert(value);
        }
        if item.default.as_ref().is_some_and(|d| d.is_empty()) {
            item.default = None;
        }
        if item.default_request.as_ref().is_some_and(|d| d.is_empty()) {
            item.default_request = None;
        }
    }
}

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    let Some(range) = object.downcast_ref::<LimitRange>() else {
        return;
    };
    let mut error = |field: String, message: String| errors.push(FieldError { field, message });
    let Some(spec) = &range.spec else {
        error("spec".into(), "Required value".into());
        return;
    };
    for (i, item) in spec.limits.iter().enumerate() {
        let at = format!("spec.limits[{i}]");
        if ![CONTAINER, POD, PERSISTENT_VOLUME_CLAIM].contains(&item.type_.as_str()) {
            error(
                format!("{at}.type"),
                format!(
                    "Unsupported value: {:?}: supported values: \"Container\", \"Pod\", \"PersistentVolumeClaim\"",
                    item.type_
                ),
            );
        }
        if item.type_ == POD && (item.default.is_some() || item.default_request.is_some()) {
            error(
                format!("{at}.default"),
                "Forbidden: may not be specified when `type` is 'Pod'".into(),
            );
        }
        let sections = [
            ("min", &item.min),
            ("max", &item.max),
            ("default", &item.default),
            ("defaultRequest", &item.default_request),
            ("maxLimitRequestRatio", &item.max_limit_request_ratio),
        ];
        for (section, list) in sections {
            for (name, q) in list.iter().flatten() {
                match amount::of(q) {
                    None => error(
                        format!("{at}.{section}[{name}]"),
                        format!("Invalid value: {:?}: not a quantity", q.0),
                    ),
                    Some(v) if v < 0 => error(
                        format!("{at}.{section}[{name}]"),
                        format!("Invalid value: {:?}: must be greater than or equal to 0", q.0),
                    ),
                    Some(v) if section == "maxLimitRequestRatio" && v < 1000 => error(
                        format!("{at}.{section}[{name}]"),
                        format!("Invalid value: {:?}: ratio must be greater than or equal to 1", q.0),
                    ),
                    Some(_) => {}
                }
            }
        }
        // Each bound no greater than the next: min ≤ defaultRequest ≤ default ≤ max.
        let ordered = [
            ("min", &item.min, "max", &item.max),
            ("min", &item.min, "defaultRequest", &item.default_request),
            ("defaultRequest", &item.default_request, "default", &item.default),
            ("default", &item.default, "max", &item.max),
        ];
        for (low_name, low, high_name, high) in ordered {
            for (name, low_q) in low.iter().flatten() {
                let Some(high_q) = high.as_ref().and_then(|h| h.get(name)) else {
                    continue;
                };
                if let (Some(l), Some(h)) = (amount::of(low_q), amount::of(high_q))
                    && l > h
                {
                    error(
                        format!("{at}.{low_name}[{name}]"),
                        format!(
                            "Invalid value: {:?}: {low_name} value {} is greater than {high_name} value {}",
                            low_q.0, low_q.0, high_q.0
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::validation::parse_value;

    fn range(limits: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l", "namespace": "dev"},
               "spec": {"limits": limits}})
    }

    #[test]
    fn container_items_get_kubernetes_defaults() {
        let parsed = parse_value(range(
            json!([{"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "64Mi"}}]),
        ))
        .unwrap()
        .object
        .to_value();
        let item = &parsed["spec"]["limits"][0];
        assert_eq!(item["default"], json!({"cpu": "1"}));
        assert_eq!(item["defaultRequest"], json!({"cpu": "1", "memory": "64Mi"}));
    }

    #[test]
    fn bounds_must_be_ordered_and_types_known() {
        let errors: Vec<String> = parse_value(range(json!([
            {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}},
            {"type": "Pod", "default": {"cpu": "1"}},
            {"type": "Node"}
        ])))
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
        assert!(
            errors.contains(
                &"spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1".to_string()
            ),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("spec.limits[1].default: Forbidden")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("spec.limits[2].type: Unsupported value: \"Node\"")),
            "{errors:?}"
        );
    }
}
