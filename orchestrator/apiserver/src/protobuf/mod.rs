//! Request bodies in Kubernetes' protobuf form (`application/vnd.kubernetes.protobuf`),
//! which kubectl's typed clients always send (`kubectl create deployment`,
//! `create namespace`, `drain`), transcoded to the JSON object the server handles
//! for every other body. Answers stay JSON: those clients accept it too.
//!
//! ```text
//! "k8s\0" ─ runtime.Unknown { 1 typeMeta { 1 apiVersion, 2 kind }, 2 raw,
//!                             3 contentEncoding, 4 contentType }
//!              │ apiVersion + kind ──► the object's message (descriptor.rs)
//!              ▼
//!        raw ──► transcode.rs ──► { "apiVersion", "kind", ...the object's fields }
//! ```
//!
//! Every message of the packages below is known, served kind or not, so a kind the
//! server does not serve meets the same error as its JSON form; a kind without a
//! message here, or bytes that do not parse, are a 400 that names the problem.

mod descriptor;
mod scalar;
mod special;
mod transcode;
mod wire;

use serde_json::{Map, Value};

use super::status::ApiError;
use wire::{Records, WireValue};

pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every protobuf body starts with.
pub const MAGIC: [u8; 4] = *b"k8s\0";

/// The package of Kubernetes' messages for the options kinds that every group
/// version has (`DeleteOptions`).
const META_PACKAGE: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";

/// The JSON object of a protobuf request body.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let Some(envelope) = body.strip_prefix(&MAGIC) else {
        return Err(ApiError::bad_request(
            "the protobuf request body does not start with the magic bytes \"k8s\\x00\"",
        ));
    };
    let unknown = Envelope::read(envelope).map_err(malformed)?;
    if !unknown.content_encoding.is_empty() {
        return Err(ApiError::bad_request(format!(
            "the protobuf request body has content encoding {:?}; only unencoded objects are accepted",
            unknown.content_encoding
        )));
    }
    if !matches!(unknown.content_type.as_str(), "" | MEDIA_TYPE) {
        return Err(ApiError::bad_request(format!(
            "the protobuf request body wraps content of type {:?}; only {MEDIA_TYPE} is accepted",
            unknown.content_type
        )));
    }
    if unknown.kind.is_empty() {
        return Err(ApiError::bad_request(
            "the protobuf request body names no kind (typeMeta.kind is empty)",
        ));
    }
    let message = message_of(&unknown.api_version, &unknown.kind).ok_or_else(|| {
        ApiError::bad_request(format!(
            "cannot decode kind {:?} of apiVersion {:?} from protobuf: the server does not know that message",
            unknown.kind, unknown.api_version
        ))
    })?;
    let fields = transcode::to_object(message, unknown.raw, "")
        .map_err(|problem| malformed(format!("{} {}: {problem}", unknown.api_version, unknown.kind)))?;
    let mut object = Map::new();
    object.insert("apiVersion".into(), unknown.api_version.into());
    object.insert("kind".into(), unknown.kind.into());
    object.extend(fields);
    Ok(Value::Object(object))
}

fn malformed(problem: String) -> ApiError {
    ApiError::bad_request(format!("the protobuf request body is malformed: {problem}"))
}

/// The message of a kind: `apps/v1` `Deployment` is `k8s.io.api.apps.v1.Deployment`,
/// `v1` `Pod` is `k8s.io.api.core.v1.Pod`; the options kinds are meta/v1's.
fn message_of(api_version: &str, kind: &str) -> Option<&'static descriptor::Message> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let package = match group.split('.').next().unwrap_or_default() {
        "" => "core",
        short => short,
    };
    descriptor::message(&format!("k8s.io.api.{package}.{version}.{kind}")).or_else(|| {
        let is_options = kind.ends_with("Options");
        is_options
            .then(|| descriptor::message(&format!("{META_PACKAGE}.{kind}")))
            .flatten()
    })
}

/// `runtime.Unknown`, the wrapper of every protobuf body.
#[derive(Debug, Default)]
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

impl<'a> Envelope<'a> {
    fn read(bytes: &'a [u8]) -> Result<Envelope<'a>, String> {
        let mut envelope = Envelope::default();
        for record in Records::new(bytes) {
            match record.map_err(|e| format!("the envelope: {e}"))? {
                (1, WireValue::Bytes(type_meta)) => {
                    for record in Records::new(type_meta) {
                        match record.map_err(|e| format!("typeMeta: {e}"))? {
                            (1, value) => envelope.api_version = text(value, "typeMeta.apiVersion")?,
                            (2, value) => envelope.kind = text(value, "typeMeta.kind")?,
                            _ => {}
                        }
                    }
                }
                (2, WireValue::Bytes(raw)) => envelope.raw = raw,
                (3, value) => envelope.content_encoding = text(value, "contentEncoding")?,
                (4, value) => envelope.content_type = text(value, "contentType")?,
                (1 | 2, other) => {
                    return Err(format!(
                        "the envelope has a {} value in field 1 or 2",
                        other.wire_type_name()
                    ));
                }
                _ => {}
            }
        }
        Ok(envelope)
    }
}

fn text(value: WireValue<'_>, name: &str) -> Result<String, String> {
    match value {
        WireValue::Bytes(bytes) => std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|_| format!("{name} is not UTF-8")),
        other => Err(format!("{name} is a {} value, not a string", other.wire_type_name())),
    }
}

#[cfg(test)]
pub(crate) use wire::testing;

#[cfg(test)]
mod tests;
