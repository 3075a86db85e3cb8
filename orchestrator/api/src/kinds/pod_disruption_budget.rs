//! PodDisruptionBudgets (`policy/v1`): how many of a set of pods must stay healthy
//! while pods are evicted on purpose (`kubectl drain`). The disruption controller
//! keeps the status; the Eviction subresource reads it and spends its allowance.

use std::time::SystemTime;

use serde_json::Value;

use super::cells::{self, Cells};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources};
use crate::meta::{Condition, Time};
use crate::objects::{IntOrString, PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus, Spec};
use crate::validation::FieldError;

pub static POD_DISRUPTION_BUDGET: KindDescriptor = KindDescriptor {
    group: "policy",
    version: "v1",
    kind: "PodDisruptionBudget",
    plural: "poddisruptionbudgets",
    singular: "poddisruptionbudget",
    short_names: &["pdb"],
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
        PrinterColumn::new(
            "Min Available",
            "string",
            "",
            "The minimum number of pods that must be available.",
        ),
        PrinterColumn::new(
            "Max Unavailable",
            "string",
            "",
            "The maximum number of pods that may be unavailable.",
        ),
        PrinterColumn::new(
            "Allowed Disruptions",
            "integer",
            ".status.disruptionsAllowed",
            "Calculated number of pods that may be disrupted at this time.",
        ),
        PrinterColumn::AGE,
    ],
    status_on_create: StatusOnCreate::Cleared,
    decode: Object::decode::<PodDisruptionBudgetSpec>,
    defaults: |_| {},
    validate,
    validate_update: |_, _, _| {},
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<k8s_openapi::api::policy::v1::PodDisruptionBudget>(),
};

impl Spec for PodDisruptionBudgetSpec {
    type Status = PodDisruptionBudgetStatus;
    const DESCRIPTOR: &'static KindDescriptor = &POD_DISRUPTION_BUDGET;
}

/// The condition the disruption controller keeps, and its reasons.
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
pub const SUFFICIENT_PODS: &str = "SufficientPods";
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";
pub const SYNC_FAILED: &str = "SyncFailed";

/// `spec.unhealthyPodEvictionPolicy`: a pod that is not ready may be evicted only
/// while the budget is met (the default), or always.
pub const IF_HEALTHY_BUDGET: &str = "IfHealthyBudget";
pub const ALWAYS_ALLOW: &str = "AlwaysAllow";

/// Sets the `DisruptionAllowed` condition from `disruptionsAllowed`, as the
/// disruption controller and the Eviction subresource both do (Kubernetes'
/// `UpdateDisruptionAllowedCondition`); the transition time moves only when the
/// status does.
pub fn update_disruption_allowed(status: &mut PodDisruptionBudgetStatus, now: Time) {
    let (value, reason) = if status.disruptions_allowed > 0 {
        ("True", SUFFICIENT_PODS)
    } else {
        ("False", INSUFFICIENT_PODS)
    };
    set_condition(status, value, reason, "", now);
}

/// Sets the `DisruptionAllowed` condition to `value` for `reason`
/// (`apimeta.SetStatusCondition`).
pub fn set_condition(status: &mut PodDisruptionBudgetStatus, value: &str, reason: &str, message: &str, now: Time) {
    let observed_generation = status.observed_generation;
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    match conditions.iter_mut().find(|c| c.type_ == DISRUPTION_ALLOWED) {
        Some(condition) => {
            if condition.status != value {
                condition.status = value.into();
                condition.last_transition_time = now;
            }
            condition.reason = reason.into();
            condition.message = message.into();
            condition.observed_generation = observed_generation;
        }
        None => conditions.push(Condition {
            type_: DISRUPTION_ALLOWED.into(),
            status: value.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation,
            last_transition_time: now,
        }),
    }
}

/// A number, or a percentage of `total`, rounded up when `round_up` (as
/// Kubernetes' `GetScaledValueFromIntOrPercent`), with its error for other text.
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    crate::int_or_percent::scaled(value, total, round_up).ok_or_else(|| {
        let text = match value {
            IntOrString::String(s) => s.as_str(),
            IntOrString::Int(_) => "",
        };
        format!("invalid value for IntOrString: invalid value {text:?}")
    })
}

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    if let Some(pdb) = object.downcast_ref::<PodDisruptionBudget>() {
        validate_spec(&pdb.spec, errors);
    }
}

/// Kubernetes' rules: not both bounds, each a non-negative number or a percentage
/// up to 100%, a well-formed selector, a known eviction policy. Neither bound is
/// allowed, as in `policy/v1` (the budget then allows every disruption).
fn validate_spec(spec: &PodDisruptionBudgetSpec, errors: &mut Vec<FieldError>) {
    let mut error = |field: &str, message: String| {
        errors.push(FieldError {
            field: field.into(),
            message,
        })
    };
    if spec.min_available.is_some() && spec.max_unavailable.is_some() {
        error(
            "spec",
            "Invalid value: minAvailable and maxUnavailable cannot be both set".into(),
        );
    }
    for (field, value) in [
        ("spec.minAvailable", &spec.min_available),
        ("spec.maxUnavailable", &spec.max_unavailable),
    ] {
        match value {
            None => {}
            Some(IntOrString::Int(n)) if *n < 0 => {
                error(field, format!("Invalid value: {n}: must be greater than or equal to 0"))
            }
            Some(IntOrString::Int(_)) => {}
            Some(IntOrString::String(s)) => match crate::int_or_percent::percent(s) {
                None => error(
                    field,
                    format!(
                        "Invalid value: {s:?}: a valid percent string must be a numeric string followed by an \
                         ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
                    ),
                ),
                Some(p) if p > 100 => error(field, format!("Invalid value: {s:?}: must not be greater than 100%")),
                Some(_) => {}
            },
        }
    }
    let expressions = spec.selector.iter().flat_map(|s| s.match_expressions.iter().flatten());
    for (i, term) in expressions.enumerate() {
        let at = format!("spec.selector.matchExpressions[{i}]");
        let values = term.values.as_deref().unwrap_or_default();
        match term.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => error(
                &format!("{at}.values"),
                "Required value: must be specified when `operator` is 'In' or 'NotIn'".into(),
            ),
            "Exists" | "DoesNotExist" if !values.is_empty() => error(
                &format!("{at}.values"),
                "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'".into(),
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => error(
                &format!("{at}.operator"),
                format!("Invalid value: {other:?}: not a valid selector operator"),
            ),
        }
    }
    if let Some(policy) = spec.unhealthy_pod_eviction_policy.as_deref()
        && ![ALWAYS_ALLOW, IF_HEALTHY_BUDGET].contains(&policy)
    {
        error(
            "spec.unhealthyPodEvictionPolicy",
            format!("Unsupported value: {policy:?}: supported values: \"{ALWAYS_ALLOW}\", \"{IF_HEALTHY_BUDGET}\""),
        );
    }
}

/// A bound as kubectl prints it: `2`, `50%`, or `N/A` when not set.
fn bound(value: &Option<IntOrString>) -> Value {
    match value {
        None => "N/A".into(),
        Some(IntOrString::Int(n)) => n.to_string().into(),
        Some(IntOrString::String(s)) => s.as_str().into(),
    }
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(pdb) = object.downcast_ref::<PodDisruptionBudget>() else {
        return cells::from_paths(&POD_DISRUPTION_BUDGET, object, now);
    };
    vec![
        cells::name(object),
        bound(&pdb.spec.min_available),
        bound(&pdb.spec.max_unavailable),
        pdb.status.disruptions_allowed.into(),
        cells::age(object, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{LabelSelector, LabelSelectorRequirement};

    fn errors(spec: PodDisruptionBudgetSpec) -> Vec<String> {
        let mut errors = Vec::new();
        validate_spec(&spec, &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    fn int(n: i32) -> Option<IntOrString> {
        Some(IntOrString::Int(n))
    }

    fn text(s: &str) -> Option<IntOrString> {
        Some(IntOrString::String(s.into()))
    }

    #[test]
    fn one_bound_a_number_or_a_percentage() {
        let spec = |min_available, max_unavailable| PodDisruptionBudgetSpec {
            min_available,
            max_unavailable,
            ..Default::default()
        };
        assert!(errors(spec(int(2), None)).is_empty());
        assert!(errors(spec(None, text("25%"))).is_empty());
        assert!(errors(spec(text("100%"), None)).is_empty());
        assert!(errors(spec(None, None)).is_empty(), "policy/v1 allows neither");
        assert_eq!(
            errors(spec(int(1), int(1))),
            ["spec: Invalid value: minAvailable and maxUnavailable cannot be both set"]
        );
        assert_eq!(
            errors(spec(int(-1), None)),
            ["spec.minAvailable: Invalid value: -1: must be greater than or equal to 0"]
        );
        assert_eq!(
            errors(spec(None, text("101%"))),
            ["spec.maxUnavailable: Invalid value: \"101%\": must not be greater than 100%"]
        );
        let half = errors(spec(text("half"), None));
        assert!(half[0].contains("a valid percent string"), "{half:?}");
        assert_eq!(errors(spec(text("%"), None)).len(), 1);
    }

    #[test]
    fn selector_and_policy_are_checked() {
        let term = |operator: &str, values: Option<Vec<String>>| LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "app".into(),
                operator: operator.into(),
                values,
            }]),
            ..Default::default()
        };
        let with = |selector, policy: Option<&str>| PodDisruptionBudgetSpec {
            selector: Some(selector),
            unhealthy_pod_eviction_policy: policy.map(String::from),
            min_available: int(1),
            ..Default::default()
        };
        assert!(errors(with(term("In", Some(vec!["web".into()])), Some("AlwaysAllow"))).is_empty());
        assert_eq!(errors(with(term("In", None), None)).len(), 1);
        assert_eq!(errors(with(term("Exists", Some(vec!["x".into()])), None)).len(), 1);
        assert_eq!(
            errors(with(term("Near", None), None)),
            ["spec.selector.matchExpressions[0].operator: Invalid value: \"Near\": not a valid selector operator"]
        );
        assert_eq!(
            errors(with(LabelSelector::default(), Some("Never"))),
            [
                "spec.unhealthyPodEvictionPolicy: Unsupported value: \"Never\": supported values: \"AlwaysAllow\", \"IfHealthyBudget\""
            ]
        );
    }

    #[test]
    fn percentages_scale_up() {
        assert_eq!(scaled_value(&IntOrString::Int(3), 10, true), Ok(3));
        assert_eq!(scaled_value(&IntOrString::String("50%".into()), 3, true), Ok(2));
        assert_eq!(scaled_value(&IntOrString::String("50%".into()), 3, false), Ok(1));
        assert_eq!(scaled_value(&IntOrString::String("0%".into()), 3, true), Ok(0));
        assert!(scaled_value(&IntOrString::String("x".into()), 3, true).is_err());
    }

    #[test]
    fn the_row_shows_the_bounds_and_the_allowance() {
        let mut pdb = PodDisruptionBudget::new(
            crate::meta::named("default", "web"),
            PodDisruptionBudgetSpec {
                min_available: int(2),
                ..Default::default()
            },
        );
        pdb.status.disruptions_allowed = 1;
        let row = cells(&Object::new(pdb), SystemTime::now());
        assert_eq!(&row[..4], ["web".into(), "2".into(), "N/A".into(), Value::from(1)]);
    }
}
