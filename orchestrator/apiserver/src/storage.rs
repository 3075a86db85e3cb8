//! Between JSON values and the store: stored objects read as values stamped with
//! their kind and resourceVersion; validated objects written through the typed
//! registry (which fills uid, creationTimestamp and generation, and bumps the
//! generation when a spec changes).

use serde_json::Value;

use super::route::Kind;
use super::status::ApiError;
use berth_api::objects::Object;
use berth_client::kv::{Fence, KvError, Record};
use berth_client::registry::{Registry, decode_value};

/// A stored object as the API shows it: with `kind`, `apiVersion` and
/// `metadata.resourceVersion` (the key's mod_revision).
pub fn decode(kind: &Kind, record: &Record) -> Result<Value, ApiError> {
    let mut object = decode_value(record, kind.kind).map_err(|e| ApiError::internal(e.to_string()))?;
    stamp(kind, &mut object, record.mod_revision);
    Ok(object)
}

/// Sets `kind`, `apiVersion` and `metadata.resourceVersion`.
pub fn stamp(kind: &Kind, object: &mut Value, revision: i64) {
    object["kind"] = kind.kind.into();
    object["apiVersion"] = kind.api_version.into();
    if !object["metadata"].is_object() {
        object["metadata"] = serde_json::json!({});
    }
    object["metadata"]["resourceVersion"] = revision.to_string().into();
}

fn to_value(object: &impl serde::Serialize) -> Value {
    serde_json::to_value(object).expect("objects serialize")
}

/// Creates a validated object (if its key is free and the fence, if any, holds).
pub async fn create(registry: &Registry, object: &Object, fence: Option<&Fence>) -> Result<Value, KvError> {
    berth_api::each_kind!(object, o => registry.create(o, fence).await.map(|o| to_value(&o)))
}

/// Replaces a validated object if it is still at its `metadata.resourceVersion`.
pub async fn update(registry: &Registry, object: &Object) -> Result<Value, KvError> {
    berth_api::each_kind!(object, o => registry.update(o, None).await.map(|o| to_value(&o)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::SERVED;

    #[test]
    fn decoded_objects_carry_kind_and_revision() {
        let pods = SERVED.iter().find(|k| k.resource == "pods").unwrap();
        let kv = Record {
            key: "/registry/pods/default/p".into(),
            value: br#"{"metadata":{"name":"p"},"spec":{"containers":[]}}"#.to_vec(),
            mod_revision: 42,
            ..Default::default()
        };
        let object = decode(pods, &kv).unwrap();
        assert_eq!(object["kind"], "Pod");
        assert_eq!(object["apiVersion"], "v1");
        assert_eq!(object["metadata"]["resourceVersion"], "42");
        let broken = Record {
            value: b"{".to_vec(),
            ..kv
        };
        assert_eq!(decode(pods, &broken).unwrap_err().code, 500);
    }
}
