//! Bodies in and out: JSON, or YAML when the client says `application/yaml`; request
//! bodies may also be Kubernetes' protobuf form (`protobuf/`), read as the same JSON;
//! request bodies limited to 3 MiB (etcd's default request limit is 1.5 MiB; Kubernetes
//! allows 3 MiB), refused with 413 before they are read when they say they are
//! larger. A body is decoded on tokio's blocking pool, never on the async workers
//! the store's client (and in `berth server`, the store) runs on, and only after its
//! nesting depth was measured in one linear pass (`nesting.rs`), so that its cost is
//! linear in its size.

use axum::body::{Body, Bytes};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;

use super::nesting::{self, TooDeep};
use super::protobuf;
use super::status::ApiError;

pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

fn is_yaml(media_type: &str) -> bool {
    matches!(media_type, "application/yaml" | "application/x-yaml" | "text/yaml")
}

/// The media type of a header, lower-cased and without parameters.
fn media_type(value: &str) -> String {
    value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// The request's `Content-Type` media type ("" when none).
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(media_type)
        .unwrap_or_default()
}

/// The media ranges of the request's `Accept` headers, in order: each media type
/// (lower-cased) with its parameters (`as=Table`, `g=meta.k8s.io`, `v=v1`).
pub fn accepted(headers: &HeaderMap) -> Vec<(String, Vec<(String, String)>)> {
    let accept = headers.get_all(ACCEPT).iter().filter_map(|v| v.to_str().ok());
    accept
        .flat_map(|v| v.split(','))
        .map(|range| {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let params = parts
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            (media, params)
        })
        .filter(|(media, _)| !media.is_empty())
        .collect()
}

/// Which version of a JSON form Kubernetes negotiates by parameters
/// (`application/json;as=<kind>;g=<group>;v=<version>`: Tables, aggregated discovery)
/// the client asks for before it would take plain objects; `None` if it would take
/// plain ones first, or never asks.
pub fn preferred_form(headers: &HeaderMap, kind: &str, group: &str, versions: &[&'static str]) -> Option<&'static str> {
    for (media, params) in accepted(headers) {
        let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        match param("as") {
            Some(form) if media == "application/json" && form == kind && param("g") == Some(group) => {
                if let Some(version) = versions.iter().find(|v| param("v") == Some(**v)) {
                    return Some(version);
                }
            }
            None if matches!(
                media.as_str(),
                "application/json" | "application/yaml" | "*/*" | "application/*"
            ) =>
            {
                return None;
            }
            _ => {}
        }
    }
    None
}

/// The format the client accepts first: YAML only when it asks for it.
pub fn response_format(headers: &HeaderMap) -> Format {
    let accept = headers.get_all(ACCEPT).iter().filter_map(|v| v.to_str().ok());
    for media in accept.flat_map(|v| v.split(',')).map(media_type) {
        if is_yaml(&media) {
            return Format::Yaml;
        }
        if matches!(media.as_str(), "application/json" | "*/*" | "application/*") {
            return Format::Json;
        }
    }
    Format::Json
}

/// A value as a response in the chosen format.
pub fn render(format: Format, code: u16, value: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (content_type, body) = match format {
        Format::Json => ("application/json", serde_json::to_vec(value).expect("values serialize")),
        Format::Yaml => match serde_yaml_ng::to_string(value) {
            Ok(yaml) => ("application/yaml", yaml.into_bytes()),
            Err(e) => {
                let error = ApiError::internal(format!("cannot write YAML: {e}"));
                let json = serde_json::to_vec(&error.status()).expect("values serialize");
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                    json,
                )
                    .into_response();
            }
        },
    };
    (status, [(CONTENT_TYPE, HeaderValue::from_static(content_type))], body).into_response()
}

/// Reads a request body of at most [`MAX_BODY_BYTES`].
pub async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(ApiError::too_large(MAX_BODY_BYTES));
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::too_large(MAX_BODY_BYTES)),
        Err(e) => Err(ApiError::bad_request(format!("cannot read the request body: {e}"))),
    }
}

/// [`decode_object`] on tokio's blocking pool.
pub async fn decode_object_blocking(headers: &HeaderMap, body: Bytes) -> Result<Value, ApiError> {
    let headers = headers.clone();
    tokio::task::spawn_blocking(move || decode_object(&headers, &body))
        .await
        .map_err(|e| ApiError::internal(format!("decoding the request body failed: {e}")))?
}

fn too_deep(TooDeep { line, column }: TooDeep) -> ApiError {
    ApiError::bad_request(format!(
        "the request body is nested more than {} levels deep (at line {line}, column {column})",
        nesting::MAX_DEPTH
    ))
}

/// An object from a request body: YAML or protobuf when `Content-Type` says so, JSON otherwise;
/// refused unparsed when it nests more than [`nesting::MAX_DEPTH`] levels.
pub fn decode_object(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty; an object was expected",
        ));
    }
    if content_type(headers) == protobuf::MEDIA_TYPE {
        return protobuf::decode(body);
    }
    let value: Value = if is_yaml(&content_type(headers)) {
        let text = std::str::from_utf8(body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: not UTF-8: {e}")))?;
        nesting::yaml(text, nesting::MAX_DEPTH).map_err(too_deep)?;
        serde_yaml_ng::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}")))?
    } else {
        nesting::json(body, nesting::MAX_DEPTH).map_err(too_deep)?;
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?
    };
    if !value.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn negotiates_yaml_only_when_asked() {
        assert_eq!(response_format(&headers(&[])), Format::Json);
        assert_eq!(
            response_format(&headers(&[("accept", "application/yaml")])),
            Format::Yaml
        );
        assert_eq!(
            response_format(&headers(&[("accept", "application/json, application/yaml")])),
            Format::Json
        );
        assert_eq!(
            response_format(&headers(&[("accept", "text/html, application/yaml;q=0.9")])),
            Format::Yaml
        );
    }

    #[test]
    fn decodes_json_and_yaml_and_names_the_problem() {
        let json = decode_object(&headers(&[]), br#"{"kind": "Pod"}"#).unwrap();
        assert_eq!(json["kind"], "Pod");
        let yaml = decode_object(
            &headers(&[("content-type", "application/yaml; charset=utf-8")]),
            b"kind: Pod\nspec:\n  replicas: 3\n",
        )
        .unwrap();
        assert_eq!(yaml["spec"]["replicas"], 3);
        let bad = decode_object(&headers(&[]), b"{\"kind\": ").unwrap_err();
        assert_eq!(bad.code, 400);
        assert!(
            bad.message.starts_with("the request body is not valid JSON: "),
            "{}",
            bad.message
        );
        let bad_yaml = decode_object(&headers(&[("content-type", "application/yaml")]), b"a: [").unwrap_err();
        assert!(bad_yaml.message.contains("not valid YAML"), "{}", bad_yaml.message);
        assert_eq!(decode_object(&headers(&[]), b"[1]").unwrap_err().code, 400);
        assert_eq!(decode_object(&headers(&[]), b" ").unwrap_err().code, 400);
    }

    #[tokio::test]
    async fn limits_bodies() {
        let big = Body::from(vec![b' '; MAX_BODY_BYTES + 1]);
        assert_eq!(read_body(&HeaderMap::new(), big).await.unwrap_err().code, 413);
        let small = Body::from("{}");
        assert_eq!(read_body(&HeaderMap::new(), small).await.unwrap().as_ref(), b"{}");
    }
}
