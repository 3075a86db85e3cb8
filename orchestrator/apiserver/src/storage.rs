//! Between JSON values and the store: stored objects read as values stamped with
//! their kind and resourceVersion; validated objects of any kind written through the
//! registry (`berth_client::registry::Registry`), which fills uid, creationTimestamp
//! and generation on create and bumps the generation when an update changes the spec.

use std::collections::BTreeMap;

use serde_json::Value;

use super::route::Kind;
use super::status::ApiError;
use berth_api::kinds::Object;
use berth_api::meta::MetaExt;
use berth_client::admission::Charge;
use berth_client::kv::{Fence, Group, Kv, KvError, Record};
use berth_client::registry::{Registry, Stored, decode_value};

/// A stored object as the API shows it: with `kind`, `apiVersion` and
/// `metadata.resourceVersion` (the key's mod_revision).
pub fn decode(kind: &Kind, record: &Record) -> Result<Value, ApiError> {
    let object = decode_value(record, kind.kind).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut object = served(kind, object);
    stamp(kind, &mut object, record.mod_revision);
    Ok(object)
}

/// The object as [`decode`] serves it (stamped at `revision`), written straight
/// from the stored JSON: its members and its metadata's read without decoding
/// their values, which are copied as stored. None where only a whole decode will
/// do: a kind converted to be served, a value that is not a JSON object (an
/// encrypted one), metadata that is not an object, a member name with escapes.
pub fn served_json(kind: &Kind, record: &Record, revision: i64) -> Option<Vec<u8>> {
    use serde_json::value::RawValue;
    type Members<'a> = BTreeMap<&'a str, &'a RawValue>;
    if kind.conversion.is_some() {
        return None;
    }
    let mut members: Members = serde_json::from_slice(&record.value).ok()?;
    let mut metadata: Members = match members.remove("metadata") {
        Some(raw) => serde_json::from_str(raw.get()).ok()?,
        None => Members::new(),
    };
    members.remove("kind");
    members.remove("apiVersion");
    metadata.remove("resourceVersion");
    let mut out = Vec::with_capacity(record.value.len() + 96);
    let write_name = |out: &mut Vec<u8>, name: &str| {
        serde_json::to_writer(&mut *out, name).expect("strings serialize");
        out.push(b':');
    };
    out.push(b'{');
    write_name(&mut out, "kind");
    serde_json::to_writer(&mut out, kind.kind).expect("strings serialize");
    out.push(b',');
    write_name(&mut out, "apiVersion");
    serde_json::to_writer(&mut out, &kind.api_version()).expect("strings serialize");
    out.push(b',');
    write_name(&mut out, "metadata");
    out.push(b'{');
    for (name, value) in &metadata {
        write_name(&mut out, name);
        out.extend_from_slice(value.get().as_bytes());
        out.push(b',');
    }
    write_name(&mut out, "resourceVersion");
    serde_json::to_writer(&mut out, &revision.to_string()).expect("strings serialize");
    out.push(b'}');
    for (name, value) in &members {
        out.push(b',');
        write_name(&mut out, name);
        out.extend_from_slice(value.get().as_bytes());
    }
    out.push(b'}');
    Some(out)
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

/// An object in the stored form as `kind` serves it (events.k8s.io/v1 Events are
/// stored as core/v1 ones).
pub fn served(kind: &Kind, object: Value) -> Value {
    match kind.conversion {
        Some(conversion) => (conversion.from_storage)(object),
        None => object,
    }
}

/// An object sent to `kind` in the form it is stored in.
pub fn for_storage(kind: &Kind, object: Value) -> Value {
    match kind.conversion {
        Some(conversion) => (conversion.to_storage)(object),
        None => object,
    }
}

/// The typed object of `stored`, an object as served (converted to the form it is
/// stored in first, for a kind served in another).
pub fn decode_stored(kind: &Kind, stored: &Value) -> Result<Object, berth_api::validation::FieldError> {
    match kind.conversion {
        Some(_) => (kind.decode)(&for_storage(kind, stored.clone())),
        None => (kind.decode)(stored),
    }
}

/// The object as written: with its kind's `kind` and `apiVersion`.
pub fn to_value(object: &Object) -> Value {
    let mut value = object.to_value();
    value["kind"] = object.kind().into();
    value["apiVersion"] = object.descriptor().api_version().into();
    value
}

/// Creates a validated object (if its key is free and the fence, if any, holds), by
/// the registry's rules for every write.
/// `lease` (0: none) is the lease the object goes with (an event's time to live).
pub async fn create(kv: &Kv, object: &Object, lease: i64, fence: Option<&Fence>) -> Result<Value, KvError> {
    let created = Registry::new(kv.clone()).create_leased(object, lease, fence).await?;
    Ok(to_value(&created))
}

/// Creates a validated object with its quotas' charges, all in one transaction
/// (`Conflict`: a quota moved since it was read; charge again).
pub async fn create_charged(
    kv: &Kv,
    object: &Object,
    fence: Option<&Fence>,
    charges: &[Charge],
) -> Result<Value, KvError> {
    let created = Registry::new(kv.clone()).create_with(object, fence, charges).await?;
    Ok(to_value(&created))
}

/// Replaces a validated object if it is still at its `metadata.resourceVersion`;
/// bumps the generation when the spec changed.
pub async fn update(kv: &Kv, object: &Object) -> Result<Value, KvError> {
    let updated = Registry::new(kv.clone()).update(object, None).await?;
    Ok(to_value(&updated))
}

/// What an update of `stored` (the object as read, at the revision the update is
/// conditional on) writes: the object with the generation as the registry sets it
/// (bumped when the spec changed), its key, and that revision. Exact without
/// reading the store again: should the stored object have moved since, the
/// condition fails the write.
fn prepared(mut object: Object, stored: &Object) -> Result<(Object, String, i64), KvError> {
    let expected: i64 = (object.metadata().resource_version())
        .parse()
        .map_err(|_| KvError::Other("metadata.resourceVersion: required for an update".into()))?;
    let generation = stored.metadata().generation().max(1);
    object.metadata_mut().generation = Some(match stored.has_spec_of(&object) {
        true => generation,
        false => generation + 1,
    });
    let key = Stored::key(&object);
    Ok((object, key, expected))
}

/// [`update`] of `stored`, the object as read (see [`prepared`]), without reading
/// it again.
pub async fn update_from(kv: &Kv, object: Object, stored: &Object) -> Result<Value, KvError> {
    let (mut object, key, expected) = prepared(object, stored)?;
    let revision = kv.update(&key, object.encode(), expected, None).await?;
    object.metadata_mut().resource_version = Some(revision.to_string());
    Ok(to_value(&object))
}

/// [`update_from`] through `group`, committed with the other updates queued there.
pub async fn update_grouped(group: &Group, object: Object, stored: &Object) -> Result<Value, KvError> {
    let (mut object, key, expected) = prepared(object, stored)?;
    let revision = group.update_if(&key, object.encode(), expected, &[], None).await?;
    object.metadata_mut().resource_version = Some(revision.to_string());
    Ok(to_value(&object))
}

/// [`update_from`] with its quotas' charges, in one transaction (`Conflict`: the
/// object or a quota moved).
pub async fn update_charged(kv: &Kv, object: Object, stored: &Object, charges: &[Charge]) -> Result<Value, KvError> {
    let (mut object, key, expected) = prepared(object, stored)?;
    let mut together = berth_client::kv::Together {
        conditions: vec![(key.clone(), expected)],
        puts: vec![(key, object.encode())],
        deletes: Vec::new(),
    };
    for (key, revision, value) in charges {
        together.conditions.push((key.clone(), *revision));
        together.puts.push((key.clone(), value.clone()));
    }
    match kv.write_together(&together).await? {
        Ok(revision) => {
            object.metadata_mut().resource_version = Some(revision.to_string());
            Ok(to_value(&object))
        }
        Err(_) => Err(KvError::Conflict { current: 0 }),
    }
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

    #[test]
    fn objects_written_straight_from_the_stored_json_read_as_decoded_ones() {
        let pods = crate::tests::kind("pods");
        let record = |value: &str| Record {
            key: "/registry/pods/default/p".into(),
            value: value.as_bytes().to_vec(),
            mod_revision: 42,
            ..Default::default()
        };
        for value in [
            r#"{"metadata":{"name":"p","labels":{"a":"b"}},"spec":{"containers":[{"name":"c","args":["x y","\u00e9\n"]}],"nodeName":"n1"},"status":{"phase":"Running"}}"#,
            // A stale stamp is replaced; members are kept whatever their order.
            r#"{"status":{},"kind":"Old","apiVersion":"v0","metadata":{"resourceVersion":"7","uid":"u"},"spec":{"x":1.5e3,"y":null}}"#,
            // No metadata at all.
            r#"{"spec":{}}"#,
            r#" { "metadata" : { } , "spec" : [ 1 , 2 ] } "#,
        ] {
            let record = record(value);
            let raw = served_json(pods, &record, record.mod_revision).unwrap_or_else(|| panic!("{value}"));
            let raw: Value = serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(raw, decode(pods, &record).unwrap(), "{value}");
            assert_eq!(raw["metadata"]["resourceVersion"], "42");
            assert_eq!((&raw["kind"], &raw["apiVersion"]), (&"Pod".into(), &"v1".into()));
        }
        // A DELETED line's object carries the change's revision.
        let stamped = served_json(pods, &record(r#"{"metadata":{"name":"p"}}"#), 50).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&stamped).unwrap()["metadata"]["resourceVersion"],
            "50"
        );
        // What only a whole decode serves (or refuses) is left to it.
        for value in [
            "[1]",
            "{",
            r#"{"metadata":null}"#,
            r#"{"metadata":{"na\u006de":"p"}}"#,
            "k8s:enc:aescbc:v1:key1:\x01",
        ] {
            assert_eq!(served_json(pods, &record(value), 42), None, "{value}");
        }
        let events = crate::route::parse("/apis/events.k8s.io/v1/events").map(|route| match route {
            crate::route::Route::Collection { kind, .. } => kind,
            _ => panic!("events.k8s.io events are a collection"),
        });
        let events = events.unwrap();
        assert!(events.conversion.is_some());
        assert_eq!(served_json(events, &record(r#"{"metadata":{}}"#), 42), None);
    }
}
