//! The API server's objects as the store's [`Record`]s and [`Event`]s, so that a cache
//! fed over the API reads them exactly as one fed from the store: the key is the
//! store key of the object's kind, namespace and name, the value the stored form
//! (JSON with `kind` and `apiVersion`, without `metadata.resourceVersion`), and the
//! mod_revision the object's resourceVersion. Pure: no I/O.

use berth_api::kinds::{KINDS, KindDescriptor};
use serde_json::Value;

use crate::kv::{Event, KvError, Record};

/// The object a store key names: its kind, namespace ("" for a cluster-scoped kind)
/// and name. `None` for a key that is not `/registry/<plural>/[<namespace>/]<name>`
/// of a kind the API serves.
pub fn object_of_key(key: &str) -> Option<(&'static KindDescriptor, String, String)> {
    let rest = key.strip_prefix("/registry/")?;
    let (plural, rest) = rest.split_once('/')?;
    let kind = KINDS.iter().copied().find(|k| k.plural == plural)?;
    let (namespace, name) = if kind.namespaced {
        rest.split_once('/')?
    } else {
        ("", rest)
    };
    if name.is_empty() || name.contains('/') || (kind.namespaced && namespace.is_empty()) {
        return None;
    }
    Some((kind, namespace.to_string(), name.to_string()))
}

/// The record the store would hold for `object`, an object of `kind` as the API
/// server sent it (a list's item, a watch event's object, a read's body).
pub fn record_of(kind: &KindDescriptor, mut object: Value) -> Result<Record, String> {
    let Some(fields) = object.as_object_mut() else {
        return Err(format!("a {} that is not a JSON object", kind.kind));
    };
    // A list's items come without them; the stored form has both.
    fields.insert("kind".into(), kind.kind.into());
    fields.insert("apiVersion".into(), kind.api_version().into());
    let metadata = fields
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| format!("a {} without metadata", kind.kind))?;
    let text = |field: &str| {
        metadata
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (namespace, name) = (text("namespace"), text("name"));
    if name.is_empty() {
        return Err(format!("a {} without metadata.name", kind.kind));
    }
    let revision = resource_version(metadata.get("resourceVersion"))
        .ok_or_else(|| format!("{} {name:?} without a numeric metadata.resourceVersion", kind.kind))?;
    metadata.remove("resourceVersion");
    Ok(Record {
        key: kind.key(&namespace, &name),
        value: serde_json::to_vec(&object).expect("values serialize"),
        // The API does not tell when the key was created or how often it was written;
        // nothing fed from it reads these.
        create_revision: 0,
        mod_revision: revision,
        version: 0,
        lease: 0,
    })
}

fn resource_version(value: Option<&Value>) -> Option<i64> {
    value?.as_str()?.parse().ok().filter(|revision| *revision > 0)
}

/// One line of a watch, read.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// ADDED or MODIFIED.
    Change(Event),
    /// DELETED: the object deleted (or no longer passing the selectors).
    Gone(Event),
    /// BOOKMARK: nothing changed up to this resourceVersion.
    Bookmark(i64),
    /// ERROR with `410 Gone` (`Expired`): the revision to go on from is compacted
    /// away; list again.
    Expired(String),
    /// Any other ERROR: the message.
    Failed(String),
}

/// Reads one watch line, `{"type": ..., "object": {...}}`.
pub fn decode_event(kind: &KindDescriptor, line: &[u8]) -> Result<WatchEvent, String> {
    let mut event: Value = serde_json::from_slice(line).map_err(|e| format!("a watch event that is not JSON: {e}"))?;
    let object = event.get_mut("object").map(Value::take).unwrap_or(Value::Null);
    match event.get("type").and_then(Value::as_str).unwrap_or_default() {
        "ADDED" | "MODIFIED" => Ok(WatchEvent::Change(Event::Put(record_of(kind, object)?))),
        "DELETED" => {
            let prev = record_of(kind, object)?;
            let revision = prev.mod_revision;
            Ok(WatchEvent::Gone(Event::Delete { prev, revision }))
        }
        "BOOKMARK" => resource_version(object.pointer("/metadata/resourceVersion"))
            .map(WatchEvent::Bookmark)
            .ok_or_else(|| "a BOOKMARK without a numeric metadata.resourceVersion".to_string()),
        "ERROR" => {
            let message = object["message"].as_str().unwrap_or("(no message)").to_string();
            if is_expired_status(&object) {
                Ok(WatchEvent::Expired(message))
            } else {
                Ok(WatchEvent::Failed(message))
            }
        }
        other => Err(format!("a watch event of unknown type {other:?}")),
    }
}

/// Whether a `Status` says the resourceVersion asked for is gone (`410`, reason
/// `Expired` or `Gone`): the re-list decision.
pub fn is_expired_status(status: &Value) -> bool {
    status["code"].as_i64() == Some(410) || matches!(status["reason"].as_str(), Some("Expired" | "Gone"))
}

/// The error an API response that is not a success stands for, in the store
/// client's terms, so that callers handle both sources alike.
pub fn response_error(status: u16, body: &[u8]) -> KvError {
    let status_object: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let message = status_object["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    match (status, status_object["reason"].as_str()) {
        (404, _) => KvError::NotFound,
        (409, Some("AlreadyExists")) => KvError::AlreadyExists,
        (409, _) => KvError::Conflict { current: 0 },
        (410, _) => KvError::Compacted {
            requested: 0,
            compacted: 0,
        },
        (413, _) => KvError::RequestTooLarge,
        (429 | 500..=599, _) => KvError::Unavailable(format!("{status}: {message}")),
        _ => KvError::Other(format!("{status}: {message}")),
    }
}

/// The collection's path (within `namespace`, all of them with `None`) with
/// `params` (values percent-encoded, empty ones left out).
pub fn collection_query(kind: &KindDescriptor, namespace: Option<&str>, params: &[(&str, &str)]) -> String {
    let mut path = kind.collection_path(namespace);
    let mut separator = '?';
    for (name, value) in params.iter().filter(|(_, value)| !value.is_empty()) {
        path.push(separator);
        path.push_str(name);
        path.push('=');
        path.push_str(&percent_encode(value));
        separator = '&';
    }
    path
}

/// Everything but RFC 3986's unreserved characters as `%XX`.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
