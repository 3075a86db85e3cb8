use serde_json::{Value, json};

use super::*;
use crate::validation::parse_value;

fn class(name: &str, extra: Value) -> Result<Object, Vec<String>> {
    let mut value = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": name}, "value": 1000});
    for (k, v) in extra.as_object().unwrap() {
        value[k] = v.clone();
    }
    parse_value(value)
        .map(|p| p.object)
        .map_err(|e| e.iter().map(ToString::to_string).collect())
}

fn typed(object: &Object) -> PriorityClass {
    object.downcast_ref::<PriorityClass>().unwrap().clone()
}

#[test]
fn a_class_is_flat_cluster_scoped_and_preempts_by_default() {
    let high = class("high", json!({"description": "batch jobs that matter"})).unwrap();
    assert_eq!(high.key(), "/registry/priorityclasses/high");
    let value = high.to_value();
    assert_eq!(value["value"], 1000);
    assert_eq!(value["preemptionPolicy"], "PreemptLowerPriority");
    assert_eq!(value["description"], "batch jobs that matter");
    let row = (PRIORITY_CLASS.cells)(&high, SystemTime::now());
    assert_eq!(row[..3], [json!("high"), json!(1000), json!(false)]);
    assert_eq!(row[4], json!("PreemptLowerPriority"));
}

#[test]
fn user_classes_stay_below_the_system_and_system_names_are_reserved() {
    assert!(class("top", json!({"value": 1_000_000_000})).is_ok());
    assert_eq!(
        class("over", json!({"value": 1_000_000_001})).unwrap_err(),
        ["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]
    );
    assert_eq!(
        class("system-mine", json!({})).unwrap_err(),
        [
            "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. \
          error: system-mine is not a known system priority class"
        ]
    );
    assert_eq!(
        class("system-node-critical", json!({"value": 5})).unwrap_err(),
        [
            "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. \
          error: value of system-node-critical PriorityClass must be 2000001000"
        ]
    );
    for system in system_classes() {
        let value = serde_json::to_value(&system).unwrap();
        let parsed = class(system.metadata.name(), value).unwrap();
        assert_eq!(typed(&parsed).value, system.value);
    }
    assert_eq!(
        class("odd", json!({"preemptionPolicy": "Sometimes"})).unwrap_err(),
        ["preemptionPolicy: Unsupported value: \"Sometimes\": supported values: \"Never\", \"PreemptLowerPriority\""]
    );
}

#[test]
fn value_and_preemption_policy_are_fixed() {
    let old = class("high", json!({})).unwrap();
    let mut errors = Vec::new();
    let described = class("high", json!({"description": "new words", "globalDefault": true})).unwrap();
    (PRIORITY_CLASS.validate_update)(&old, &described, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    let changed = class("high", json!({"value": 7, "preemptionPolicy": "Never"})).unwrap();
    (PRIORITY_CLASS.validate_update)(&old, &changed, &mut errors);
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [
            "value: Forbidden: may not be changed in an update.",
            "preemptionPolicy: Invalid value: \"Never\": field is immutable"
        ]
    );
}

#[test]
fn only_one_class_is_the_global_default() {
    let plain = typed(&class("plain", json!({})).unwrap());
    let default = typed(&class("usual", json!({"globalDefault": true})).unwrap());
    let other = typed(&class("other", json!({"globalDefault": true})).unwrap());
    let classes = [plain.clone(), default.clone()];
    assert_eq!(default_of(&classes).map(|c| c.metadata.name()), Some("usual"));
    assert_eq!(second_default(&plain, &classes), None);
    assert_eq!(
        second_default(&default, &classes),
        None,
        "the default itself may be updated"
    );
    assert_eq!(
        second_default(&other, &classes).as_deref(),
        Some("PriorityClass usual is already marked as default. Only one default can exist")
    );
}

#[test]
fn a_pod_gets_its_class_priority_or_the_default_or_zero() {
    let high = typed(&class("high", json!({"value": 1000})).unwrap());
    let never = typed(&class("polite", json!({"value": 50, "preemptionPolicy": "Never"})).unwrap());
    let usual = typed(&class("usual", json!({"value": 10, "globalDefault": true})).unwrap());
    let ok = |name: &str, priority: i32, policy: &str| Ok((name.to_string(), priority, policy.to_string()));
    assert_eq!(
        resolve("high", Some(&high), Some(&usual), None, None),
        ok("high", 1000, "PreemptLowerPriority")
    );
    assert_eq!(
        resolve("polite", Some(&never), None, None, None),
        ok("polite", 50, "Never")
    );
    assert_eq!(
        resolve("", None, Some(&usual), None, None),
        ok("usual", 10, "PreemptLowerPriority")
    );
    assert_eq!(resolve("", None, None, None, None), ok("", 0, "PreemptLowerPriority"));
    assert_eq!(
        resolve("high", Some(&high), None, Some(1000), Some("PreemptLowerPriority")),
        ok("high", 1000, "PreemptLowerPriority"),
        "a pod that agrees with its class is admitted"
    );
    assert_eq!(
        resolve("gone", None, Some(&usual), None, None),
        Err("no PriorityClass with name gone was found".into())
    );
    assert_eq!(
        resolve("high", Some(&high), None, Some(5), None),
        Err(
            "the integer value of priority (5) must not be provided in pod spec; priority admission controller \
             computed 1000 from the given PriorityClass name"
                .into()
        )
    );
    assert_eq!(
        resolve("polite", Some(&never), None, None, Some("PreemptLowerPriority")),
        Err(
            "the string value of PreemptionPolicy (PreemptLowerPriority) must not be provided in pod spec; \
             priority admission controller computed Never from the given PriorityClass name"
                .into()
        )
    );
}
