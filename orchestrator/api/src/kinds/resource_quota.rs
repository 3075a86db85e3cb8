//! ResourceQuotas (core/v1): per namespace, the most of each resource its objects
//! may use together (`spec.hard`). The quota controller keeps `status.hard` and
//! `status.used`; admission charges each new object to `status.used` in the write
//! that creates it (`crate::admission::quota`). Quota scopes are not implemented
//! and are refused by name.

use std::time::SystemTime;

use serde_json::Value;

use super::cells::{self, Cells};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources};
use crate::admission::amount;
use crate::objects::{ResourceQuota, ResourceQuotaSpec, ResourceQuotaStatus, Spec};
use crate::validation::FieldError;
use crate::validation::NOT_IMPLEMENTED;

pub static RESOURCE_QUOTA: KindDescriptor = KindDescriptor {
    group: "",
    version: "v1",
    kind: "ResourceQuota",
    plural: "resourcequotas",
    singular: "resourcequota",
    short_names: &["quota"],
    namespaced: true,
    names_are_dns_labels: false,
    field_selectors: &[],
    categories: &[],
    subresources: Subresources {
        status: true,
        scale: false,
    },
    printer_columns: &[
        PrinterColumn::NAME,
        PrinterColumn::AGE,
        PrinterColumn::new(
            "Request",
            "string",
            "",
            "Used and hard amounts of every resource but limits.",
        ),
        PrinterColumn::new("Limit", "string", "", "Used and hard amounts of the limits."),
    ],
    status_on_create: StatusOnCreate::Cleared,
    decode: Object::decode::<ResourceQuotaSpec>,
    defaults: |_| {},
    validate,
    validate_update: |_, _, _| {},
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<k8s_openapi::api::core::v1::ResourceQuota>(),
};

impl Spec for ResourceQuotaSpec {
    type Status = ResourceQuotaStatus;
    const DESCRIPTOR: &'static KindDescriptor = &RESOURCE_QUOTA;
}

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    let Some(quota) = object.downcast_ref::<ResourceQuota>() else {
        return;
    };
    let mut error = |field: String, message: String| errors.push(FieldError { field, message });
    for (name, q) in quota.spec.hard.iter().flatten() {
        let at = format!("spec.hard[{name}]");
        match amount::of(q) {
            None => error(at, format!("Invalid value: {:?}: not a quantity", q.0)),
            Some(v) if v < 0 => error(
                at,
                format!("Invalid value: {:?}: must be greater than or equal to 0", q.0),
            ),
            Some(v)
                if !name.contains("cpu") && !name.contains("memory") && !name.contains("storage") && v % 1000 != 0 =>
            {
                error(at, format!("Invalid value: {:?}: must be an integer", q.0))
            }
            Some(_) => {}
        }
    }
    if quota.spec.scopes.as_ref().is_some_and(|s| !s.is_empty()) {
        error("spec.scopes".into(), format!("{NOT_IMPLEMENTED} (quota scopes)"));
    }
    if quota.spec.scope_selector.is_some() {
        error("spec.scopeSelector".into(), format!("{NOT_IMPLEMENTED} (quota scopes)"));
    }
}

/// kubectl's Request and Limit cells: `pods: 2/3, requests.cpu: 500m/1`.
fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(quota) = object.downcast_ref::<ResourceQuota>() else {
        return cells::from_paths(&RESOURCE_QUOTA, object, now);
    };
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    let status = &quota.status;
    for name in quota.spec.hard.iter().flatten().map(|(n, _)| n) {
        let of = |list: &Option<std::collections::BTreeMap<String, crate::objects::Quantity>>| {
            list.as_ref()
                .and_then(|l| l.get(name))
                .map_or("0".to_string(), |q| q.0.clone())
        };
        let cell = format!("{name}: {}/{}", of(&status.used), of(&status.hard));
        if name.split('.').next() == Some("limits") && name.contains('.') {
            limits.push(cell);
        } else {
            requests.push(cell);
        }
    }
    vec![
        cells::name(object),
        cells::age(object, now),
        Value::from(requests.join(", ")),
        Value::from(limits.join(", ")),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::validation::parse_value;

    fn quota(spec: Value) -> Result<Object, Vec<String>> {
        parse_value(json!({"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "q", "namespace": "dev"}, "spec": spec}))
        .map(|p| p.object)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn hard_amounts_are_quantities_and_scopes_are_refused_by_name() {
        assert!(quota(json!({"hard": {"pods": "2", "requests.cpu": "500m", "count/deployments.apps": "1"}})).is_ok());
        let errors = quota(
            json!({"hard": {"pods": "x", "secrets": "1.5"}, "scopes": ["BestEffort"],
            "scopeSelector": {"matchExpressions": []}}),
        )
        .unwrap_err();
        assert_eq!(
            errors,
            [
                "spec.hard[pods]: Invalid value: \"x\": not a quantity",
                "spec.hard[secrets]: Invalid value: \"1.5\": must be an integer",
                "spec.scopes: berth does not implement this field yet (quota scopes)",
                "spec.scopeSelector: berth does not implement this field yet (quota scopes)"
            ]
        );
    }

    #[test]
    fn the_row_shows_used_over_hard_with_limits_apart() {
        let mut object = quota(json!({"hard": {"pods": "2", "limits.cpu": "1", "requests.cpu": "1"}})).unwrap();
        let q = object.downcast_mut::<ResourceQuota>().unwrap();
        q.status = serde_json::from_value(json!({"hard": {"pods": "2", "limits.cpu": "1", "requests.cpu": "1"},
            "used": {"pods": "2", "limits.cpu": "500m"}}))
        .unwrap();
        let row = cells(&object, SystemTime::now());
        assert_eq!(row[2], json!("pods: 2/2, requests.cpu: 0/1"));
        assert_eq!(row[3], json!("limits.cpu: 500m/1"));
    }
}
