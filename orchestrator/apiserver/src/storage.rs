//! Between JSON values and the store: stored objects read as values stamped with
//! their kind and resourceVersion; validated objects of any kind written as the
//! typed registry (`berth_client::registry::Registry`) writes one kind: uid,
//! creationTimestamp and generation filled in on create, the generation bumped when
//! an update changes the spec, never a resourceVersion in the stored value.

use serde_json::Value;

use super::route::Kind;
use super::status::ApiError;
use berth_api::kinds::Object;
use berth_api::names::new_uid;
use berth_api::time::now_rfc3339;
use berth_client::kv::{Fence, Kv, KvError, Record};
use berth_client::registry::decode_value;

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
    object["apiVersion"] = kind.api_version().into();
    if !object["metadata"].is_object() {
        object["metadata"] = serde_json::json!({});
    }
    object["metadata"]["resourceVersion"] = revision.to_string().into();
}

/// The object as written: with its kind's `kind` and `apiVersion`.
fn to_value(object: &Object) -> Value {
    let mut value = object.to_value();
    value["kind"] = object.kind().into();
    value["apiVersion"] = object.descriptor().api_version().into();
    value
}

/// The stored form: the object without its resourceVersion.
fn encode(object: &Object) -> Vec<u8> {
    let mut object = object.clone();
    object.metadata_mut().resource_version.clear();
    serde_json::to_vec(&to_value(&object)).expect("objects serialize")
}

/// Creates a validated object (if its key is free and the fence, if any, holds).
pub async fn create(kv: &Kv, object: &Object, fence: Option<&Fence>) -> Result<Value, KvError> {
    let mut object = object.clone();
    let metadata = object.metadata_mut();
    if metadata.uid.is_empty() {
        metadata.uid = new_uid();
    }
    metadata.creation_timestamp = now_rfc3339();
    metadata.generation = 1;
    metadata.deletion_timestamp = None;
    let revision = kv.create(&object.key(), encode(&object), 0, fence).await?;
    object.metadata_mut().resource_version = revision.to_string();
    Ok(to_value(&object))
}

/// Replaces a validated object if it is still at its `metadata.resourceVersion`;
/// bumps the generation when the spec changed.
pub async fn update(kv: &Kv, object: &Object) -> Result<Value, KvError> {
    let expected: i64 = object
        .metadata()
        .resource_version
        .parse()
        .map_err(|_| KvError::Other("metadata.resourceVersion: required for an update".into()))?;
    let key = object.key();
    let mut object = object.clone();
    let metadata = object.metadata_mut();
    metadata.generation = metadata.generation.max(1);
    if let Some(current) = kv.get(&key).await?
        && let Ok(current) = decode_value(&current, object.kind())
            .and_then(|value| (object.descriptor().decode)(value).map_err(KvError::Other))
        && current.metadata().resource_version == object.metadata().resource_version
        && current.to_value()["spec"] != object.to_value()["spec"]
    {
        object.metadata_mut().generation = current.metadata().generation + 1;
    }
    let revision = kv.update(&key, encode(&object), expected, None).await?;
    object.metadata_mut().resource_version = revision.to_string();
    Ok(to_value(&object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_objects_carry_kind_and_revision() {
        let pods = crate::tests::kind("pods");
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
