//! PriorityClasses (`scheduling.k8s.io/v1`): the names pods give
//! (`priorityClassName`) to a scheduling priority. Flat, as Kubernetes has them:
//! `value`, `globalDefault`, `preemptionPolicy` and `description` beside the
//! metadata.
//!
//! The API server creates [`SYSTEM_CLASSES`] at start when they are absent; the
//! `system-` prefix is theirs alone, and a user's class may not go above
//! [`HIGHEST_USER_DEFINABLE_PRIORITY`]. Pod admission (`berth_client::admission`)
//! turns a pod's class into its `spec.priority` and `spec.preemptionPolicy`
//! ([`resolve`]).

use std::time::SystemTime;

use super::cells::{self, Cells};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources, flat_kind};
use crate::meta::{MetaExt, ObjectMeta};
use crate::validation::FieldError;

pub use k8s_openapi::api::scheduling::v1::PriorityClass;

/// The highest value a class not of the system may have (Kubernetes'
/// `HighestUserDefinablePriority`).
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i32 = 1_000_000_000;
/// The prefix reserved for the system's classes.
pub const SYSTEM_PREFIX: &str = "system-";
/// A pod's priority when it names no class and no class is the global default.
pub const DEFAULT_PRIORITY: i32 = 0;
/// Preemption policies: a pod may evict pods of lower priority to make room, or never.
pub const PREEMPT_LOWER_PRIORITY: &str = "PreemptLowerPriority";
pub const NEVER: &str = "Never";

/// The system's classes, (name, value, description), as Kubernetes creates them.
pub const SYSTEM_CLASSES: &[(&str, i32, &str)] = &[
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

pub static PRIORITY_CLASS: KindDescriptor = KindDescriptor {
    group: "scheduling.k8s.io",
    version: "v1",
    kind: "PriorityClass",
    plural: "priorityclasses",
    singular: "priorityclass",
    short_names: &["pc"],
    namespaced: false,
    names_are_dns_labels: false,
    field_selectors: &[],
    categories: &[],
    subresources: Subresources {
        status: false,
        scale: false,
    },
    printer_columns: &[
        PrinterColumn::NAME,
        PrinterColumn::new(
            "Value",
            "integer",
            ".value",
            "The value of this priority class: pods of higher priority are scheduled first and may preempt others.",
        ),
        PrinterColumn::new(
            "Global-Default",
            "boolean",
            ".globalDefault",
            "Whether pods that name no priority class get this one.",
        ),
        PrinterColumn::AGE,
        PrinterColumn::new(
            "PreemptionPolicy",
            "string",
            ".preemptionPolicy",
            "Whether the class's pods may preempt pods of lower priority (PreemptLowerPriority) or never.",
        ),
    ],
    status_on_create: StatusOnCreate::Submitted,
    decode: Object::decode_as::<PriorityClass>,
    defaults,
    validate,
    validate_update,
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<PriorityClass>(),
};

flat_kind!(PriorityClass, PRIORITY_CLASS);

/// A PriorityClass named `name` of `value`, preempting lower priorities.
pub fn priority_class(name: &str, value: i32, description: &str) -> PriorityClass {
    PriorityClass {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        value,
        description: (!description.is_empty()).then(|| description.into()),
        preemption_policy: Some(PREEMPT_LOWER_PRIORITY.into()),
        ..Default::default()
    }
}

/// The system's classes, as the API server creates them.
pub fn system_classes() -> Vec<PriorityClass> {
    SYSTEM_CLASSES
        .iter()
        .map(|(name, value, description)| priority_class(name, *value, description))
        .collect()
}

fn defaults(object: &mut Object) {
    if let Some(class) = object.downcast_mut::<PriorityClass>() {
        class
            .preemption_policy
            .get_or_insert_with(|| PREEMPT_LOWER_PRIORITY.into());
    }
}

/// Kubernetes' rules: a `system-` name must be one of the system's classes, as
/// they are; any other class stays at or below the highest user priority.
fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    let Some(class) = object.downcast_ref::<PriorityClass>() else {
        return;
    };
    let name = class.metadata.name();
    let global_default = class.global_default.unwrap_or(false);
    if name.starts_with(SYSTEM_PREFIX) {
        let known = SYSTEM_CLASSES.iter().find(|(system, _, _)| *system == name);
        let problem = match known {
            None => Some(format!("{name} is not a known system priority class")),
            Some((_, value, _)) if *value != class.value => {
                Some(format!("value of {name} PriorityClass must be {value}"))
            }
            Some(_) if global_default => Some(format!("globalDefault of {name} PriorityClass must be false")),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            errors.push(FieldError {
                field: "metadata.name".into(),
                message: format!(
                    "Forbidden: priority class names with '{SYSTEM_PREFIX}' prefix are reserved for system use \
                     only. error: {problem}"
                ),
            });
        }
    } else if class.value > HIGHEST_USER_DEFINABLE_PRIORITY {
        errors.push(FieldError {
            field: "value".into(),
            message: format!(
                "Forbidden: maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"
            ),
        });
    }
    if let Some(policy) = class.preemption_policy.as_deref()
        && policy != PREEMPT_LOWER_PRIORITY
        && policy != NEVER
    {
        errors.push(FieldError {
            field: "preemptionPolicy".into(),
            message: format!("Unsupported value: {policy:?}: supported values: \"Never\", \"PreemptLowerPriority\""),
        });
    }
}

/// The value and the preemption policy are fixed for the class's life.
fn validate_update(old: &Object, new: &Object, errors: &mut Vec<FieldError>) {
    let (Some(old), Some(new)) = (old.downcast_ref::<PriorityClass>(), new.downcast_ref::<PriorityClass>()) else {
        return;
    };
    if old.value != new.value {
        errors.push(FieldError {
            field: "value".into(),
            message: "Forbidden: may not be changed in an update.".into(),
        });
    }
    if old.preemption_policy != new.preemption_policy {
        errors.push(FieldError {
            field: "preemptionPolicy".into(),
            message: format!(
                "Invalid value: {:?}: field is immutable",
                new.preemption_policy.as_deref().unwrap_or_default()
            ),
        });
    }
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(class) = object.downcast_ref::<PriorityClass>() else {
        return cells::from_paths(&PRIORITY_CLASS, object, now);
    };
    vec![
        cells::name(object),
        class.value.into(),
        class.global_default.unwrap_or(false).into(),
        cells::age(object, now),
        class.preemption_policy.as_deref().unwrap_or_default().into(),
    ]
}

/// A stored PriorityClass (its JSON as the store keeps it).
pub fn from_stored(value: &[u8]) -> Option<PriorityClass> {
    serde_json::from_slice(value).ok()
}

/// The global default among `classes`: the one marked so, the lowest value if a
/// race made two (as Kubernetes picks).
pub fn default_of<'a>(classes: impl IntoIterator<Item = &'a PriorityClass>) -> Option<&'a PriorityClass> {
    classes
        .into_iter()
        .filter(|c| c.global_default == Some(true))
        .min_by_key(|c| c.value)
}

/// Why a class may not become the global default: another one already is
/// (Kubernetes' Priority admission, on creates and updates of classes).
pub fn second_default<'a>(
    class: &PriorityClass,
    classes: impl IntoIterator<Item = &'a PriorityClass>,
) -> Option<String> {
    if class.global_default != Some(true) {
        return None;
    }
    let existing = default_of(
        classes
            .into_iter()
            .filter(|c| c.metadata.name() != class.metadata.name()),
    )?;
    Some(format!(
        "PriorityClass {} is already marked as default. Only one default can exist",
        existing.metadata.name()
    ))
}

/// What a new pod's priority is: `(class name, priority, preemption policy)` from
/// the class it names (`named`: the class read, `None` when absent), else from the
/// global default, else 0 and PreemptLowerPriority. A pod that sets `priority` or
/// `preemptionPolicy` itself must agree with the class, as Kubernetes' Priority
/// admission has it. `Err` is the refusal's text.
pub fn resolve(
    class_name: &str,
    named: Option<&PriorityClass>,
    global_default: Option<&PriorityClass>,
    pod_priority: Option<i32>,
    pod_policy: Option<&str>,
) -> Result<(String, i32, String), String> {
    let (name, priority, policy) = if class_name.is_empty() {
        match global_default {
            Some(class) => (
                class.metadata.name().to_string(),
                class.value,
                class.preemption_policy.clone(),
            ),
            None => (String::new(), DEFAULT_PRIORITY, None),
        }
    } else {
        let Some(class) = named else {
            return Err(format!("no PriorityClass with name {class_name} was found"));
        };
        (class_name.to_string(), class.value, class.preemption_policy.clone())
    };
    if let Some(given) = pod_priority
        && given != priority
    {
        return Err(format!(
            "the integer value of priority ({given}) must not be provided in pod spec; priority admission \
             controller computed {priority} from the given PriorityClass name"
        ));
    }
    let policy = policy.unwrap_or_else(|| PREEMPT_LOWER_PRIORITY.to_string());
    if let Some(given) = pod_policy
        && given != policy
    {
        return Err(format!(
            "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority \
             admission controller computed {policy} from the given PriorityClass name"
        ));
    }
    Ok((name, priority, policy))
}

#[cfg(test)]
#[path = "priority_class_tests.rs"]
mod tests;
