//! `metadata.managedFields`: who owns which fields. One entry per manager, where a
//! manager is a name (`kubectl`, `kubectl-client-side-apply`), an operation (`Apply`
//! or `Update`), for updates the API version written, and a subresource (`status`):
//! the same name applying and updating is two managers, as in Kubernetes.
//!
//! Entries are written in Kubernetes' order: applies before updates, then oldest
//! first, then by manager, API version and subresource.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use serde_json::Value;

use super::field_set::FieldSet;
use super::fields_v1::{from_fields_v1, to_fields_v1};
use crate::meta::Time;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One manager: what tells two entries apart. An applier is the same manager whatever
/// API version it applies with; an updater is one per version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ManagerId {
    pub manager: String,
    pub operation: Operation,
    /// Empty for appliers.
    pub api_version: String,
    /// Empty for the object itself.
    pub subresource: String,
}

impl ManagerId {
    pub fn apply(manager: &str, subresource: &str) -> ManagerId {
        ManagerId {
            manager: manager.to_owned(),
            operation: Operation::Apply,
            api_version: String::new(),
            subresource: subresource.to_owned(),
        }
    }

    pub fn update(manager: &str, api_version: &str, subresource: &str) -> ManagerId {
        ManagerId {
            manager: manager.to_owned(),
            operation: Operation::Update,
            api_version: api_version.to_owned(),
            subresource: subresource.to_owned(),
        }
    }

    /// Kubernetes' identifier of a manager (its entry as JSON, without fields and time),
    /// by which conflict messages order managers.
    pub fn identifier(&self) -> String {
        // Written in the order of the entry's fields, as Kubernetes marshals them.
        let mut text = format!(
            "{{\"manager\":{},\"operation\":{}",
            Value::from(self.manager.as_str()),
            Value::from(self.operation.as_str())
        );
        if !self.api_version.is_empty() {
            text.push_str(&format!(",\"apiVersion\":{}", Value::from(self.api_version.as_str())));
        }
        if !self.subresource.is_empty() {
            text.push_str(&format!(",\"subresource\":{}", Value::from(self.subresource.as_str())));
        }
        text.push('}');
        text
    }
}

/// As conflict messages name a manager: `"kubectl"`, `"kubectl-edit" using apps/v1`,
/// `"kubelet" with subresource "status" using v1`.
impl fmt::Display for ManagerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Value::from(self.manager.as_str()))?;
        if !self.subresource.is_empty() {
            write!(f, " with subresource {}", Value::from(self.subresource.as_str()))?;
        }
        if self.operation == Operation::Update {
            write!(f, " using {}", self.api_version)?;
        }
        Ok(())
    }
}

/// What one manager owns.
#[derive(Debug, Clone, PartialEq)]
pub struct Managed {
    /// The API version the fields are named in.
    pub api_version: String,
    pub time: Option<Time>,
    pub fields: FieldSet,
}

/// Every manager of an object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManagedFields {
    pub managers: BTreeMap<ManagerId, Managed>,
}

/// At most this many update managers are kept; older ones are merged into
/// `ancient-changes`, one per API version.
pub const MAX_UPDATE_MANAGERS: usize = 10;
const ANCIENT_CHANGES: &str = "ancient-changes";

impl ManagedFields {
    pub fn is_empty(&self) -> bool {
        self.managers.is_empty()
    }

    /// Reads entries; the error says what is wrong with the first bad one.
    pub fn decode(entries: &[ManagedFieldsEntry]) -> Result<ManagedFields, String> {
        let mut managed = ManagedFields::default();
        for (index, entry) in entries.iter().enumerate() {
            let operation = match entry.operation.as_deref() {
                Some("Apply") => Operation::Apply,
                Some("Update") => Operation::Update,
                _ => return Err("operation must be `Apply` or `Update`".into()),
            };
            let api_version = entry.api_version.clone().unwrap_or_default();
            if api_version.is_empty() {
                return Err("apiVersion must not be empty".into());
            }
            match entry.fields_type.as_deref() {
                Some("FieldsV1") => {}
                None | Some("") => return Err(format!("missing fieldsType in managed fields entry {index}")),
                Some(other) => return Err(format!("invalid fieldsType {other:?} in managed fields entry {index}")),
            }
            let fields = match &entry.fields_v1 {
                Some(FieldsV1(value)) => from_fields_v1(value)?,
                None => FieldSet::new(),
            };
            let manager = entry.manager.clone().unwrap_or_default();
            let subresource = entry.subresource.clone().unwrap_or_default();
            let id = match operation {
                Operation::Apply => ManagerId::apply(&manager, &subresource),
                Operation::Update => ManagerId::update(&manager, &api_version, &subresource),
            };
            managed.managers.insert(
                id,
                Managed {
                    api_version,
                    time: entry.time.clone(),
                    fields,
                },
            );
        }
        Ok(managed)
    }

    /// The managers of an object (`metadata.managedFields`); none when it has none.
    pub fn of_object(object: &Value) -> Result<ManagedFields, String> {
        match object.pointer("/metadata/managedFields") {
            None | Some(Value::Null) => Ok(ManagedFields::default()),
            Some(entries) => {
                let entries: Vec<ManagedFieldsEntry> =
                    serde_json::from_value(entries.clone()).map_err(|e| format!("invalid managedFields: {e}"))?;
                ManagedFields::decode(&entries)
            }
        }
    }

    /// The entries, in Kubernetes' order.
    pub fn encode(&self) -> Vec<ManagedFieldsEntry> {
        let mut entries: Vec<(&ManagerId, &Managed)> = self.managers.iter().collect();
        entries.sort_by(|(a, a_managed), (b, b_managed)| {
            (
                a.operation,
                seconds(a_managed),
                &a.manager,
                &a_managed.api_version,
                &a.subresource,
            )
                .cmp(&(
                    b.operation,
                    seconds(b_managed),
                    &b.manager,
                    &b_managed.api_version,
                    &b.subresource,
                ))
        });
        entries
            .into_iter()
            .map(|(id, managed)| ManagedFieldsEntry {
                api_version: Some(managed.api_version.clone()),
                fields_type: Some("FieldsV1".into()),
                fields_v1: Some(FieldsV1(to_fields_v1(&managed.fields))),
                manager: Some(id.manager.clone()),
                operation: Some(id.operation.as_str().into()),
                subresource: Some(id.subresource.clone()).filter(|s| !s.is_empty()),
                time: managed.time.clone(),
            })
            .collect()
    }

    /// Drops managers that own nothing.
    pub fn drop_empty(&mut self) {
        self.managers.retain(|_, managed| !managed.fields.is_empty());
    }

    /// The union of what every manager but `except` owns.
    pub fn owned_by_others(&self, except: &ManagerId) -> FieldSet {
        self.managers
            .iter()
            .filter(|(id, _)| *id != except)
            .fold(FieldSet::new(), |owned, (_, managed)| owned.union(&managed.fields))
    }

    /// Keeps at most `max` update managers: the oldest are merged into one
    /// `ancient-changes` manager per API version (the first of a version seen becomes
    /// the bucket when a second joins it).
    pub fn cap_updates(&mut self, max: usize) {
        let mut updaters: Vec<ManagerId> = self
            .managers
            .keys()
            .filter(|id| id.operation == Operation::Update)
            .cloned()
            .collect();
        if updaters.len() <= max {
            return;
        }
        updaters.sort_by_key(|id| (seconds(&self.managers[id]), id.identifier()));
        let mut count = updaters.len();
        let mut first_of_version: BTreeMap<String, ManagerId> = BTreeMap::new();
        for id in updaters {
            if count <= max {
                break;
            }
            let version = self.managers[&id].api_version.clone();
            let Some(first) = first_of_version.get(&version).cloned() else {
                first_of_version.insert(version, id);
                continue;
            };
            let bucket = ManagerId::update(ANCIENT_CHANGES, &version, "");
            if !self.managers.contains_key(&bucket)
                && let Some(moved) = self.managers.remove(&first)
            {
                self.managers.insert(bucket.clone(), moved);
            }
            let Some(merged) = self.managers.remove(&id) else {
                continue;
            };
            if let Some(into) = self.managers.get_mut(&bucket) {
                into.fields = into.fields.union(&merged.fields);
                into.time = merged.time;
            }
            count -= 1;
        }
    }
}

fn seconds(managed: &Managed) -> i64 {
    managed.time.as_ref().map_or(0, |time| time.0.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::path::Path;
    use serde_json::json;

    fn time(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
    }

    fn owning(api_version: &str, at: i64, field: &str) -> Managed {
        Managed {
            api_version: api_version.into(),
            time: Some(time(at)),
            fields: FieldSet::of([Path::fields(&["spec", field])]),
        }
    }

    #[test]
    fn entries_round_trip_in_kubernetes_order() {
        let entries = json!([
            {"manager": "kubectl-edit", "operation": "Update", "apiVersion": "apps/v1",
             "time": "2025-01-01T00:00:09Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:paused": {}}}},
            {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "subresource": "status",
             "time": "2025-01-01T00:00:01Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:phase": {}}}},
            {"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
             "time": "2025-01-01T00:00:05Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
        ]);
        let object = json!({"metadata": {"managedFields": entries}});
        let managed = ManagedFields::of_object(&object).unwrap();
        assert_eq!(managed.managers.len(), 3);
        let kubelet = ManagerId::update("kubelet", "v1", "status");
        assert_eq!(
            managed.managers[&kubelet].fields.paths()[0].to_string(),
            ".status.phase"
        );
        let encoded = serde_json::to_value(managed.encode()).unwrap();
        let order: Vec<&str> = encoded
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(order, ["kubectl", "kubelet", "kubectl-edit"]);
        assert_eq!(encoded[0], object["metadata"]["managedFields"][2]);
        assert_eq!(encoded[1], object["metadata"]["managedFields"][1]);
    }

    #[test]
    fn bad_entries_are_refused() {
        let entry = |patch: Value| {
            let mut entry = json!({"manager": "m", "operation": "Update", "apiVersion": "v1",
                                   "fieldsType": "FieldsV1", "fieldsV1": {}});
            for (name, value) in patch.as_object().unwrap() {
                entry[name] = value.clone();
            }
            ManagedFields::of_object(&json!({"metadata": {"managedFields": [entry]}}))
        };
        assert!(entry(json!({})).is_ok());
        assert_eq!(
            entry(json!({"operation": "Edit"})).unwrap_err(),
            "operation must be `Apply` or `Update`"
        );
        assert_eq!(
            entry(json!({"apiVersion": ""})).unwrap_err(),
            "apiVersion must not be empty"
        );
        assert_eq!(
            entry(json!({"fieldsType": "FieldsV2"})).unwrap_err(),
            "invalid fieldsType \"FieldsV2\" in managed fields entry 0"
        );
        assert!(entry(json!({"fieldsV1": {"nonsense": {}}})).is_err());
    }

    #[test]
    fn managers_print_as_kubernetes_prints_them() {
        assert_eq!(ManagerId::apply("kubectl", "").to_string(), r#""kubectl""#);
        assert_eq!(
            ManagerId::update("kubectl-client-side-apply", "apps/v1", "").to_string(),
            r#""kubectl-client-side-apply" using apps/v1"#
        );
        assert_eq!(
            ManagerId::update("kubelet", "v1", "status").to_string(),
            r#""kubelet" with subresource "status" using v1"#
        );
        assert_eq!(
            ManagerId::update("m", "apps/v1", "").identifier(),
            r#"{"manager":"m","operation":"Update","apiVersion":"apps/v1"}"#
        );
        assert_eq!(
            ManagerId::apply("m", "").identifier(),
            r#"{"manager":"m","operation":"Apply"}"#
        );
    }

    #[test]
    fn the_oldest_updaters_become_ancient_changes() {
        let mut managed = ManagedFields::default();
        for i in 0..12 {
            managed.managers.insert(
                ManagerId::update(&format!("m{i:02}"), "apps/v1", ""),
                owning("apps/v1", i, &format!("f{i}")),
            );
        }
        managed
            .managers
            .insert(ManagerId::apply("kubectl", ""), owning("apps/v1", 0, "replicas"));
        managed.cap_updates(MAX_UPDATE_MANAGERS);
        let updaters: Vec<&str> = managed
            .managers
            .keys()
            .filter(|id| id.operation == Operation::Update)
            .map(|id| id.manager.as_str())
            .collect();
        assert_eq!(updaters.len(), MAX_UPDATE_MANAGERS, "{updaters:?}");
        assert!(!updaters.contains(&"m00") && !updaters.contains(&"m01") && !updaters.contains(&"m02"));
        let ancient = &managed.managers[&ManagerId::update(ANCIENT_CHANGES, "apps/v1", "")];
        assert_eq!(ancient.fields.paths().len(), 3, "m00, m01 and m02 merged");
        assert_eq!(ancient.time, Some(time(2)));
        assert!(managed.managers.contains_key(&ManagerId::apply("kubectl", "")));
    }
}
