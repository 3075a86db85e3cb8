//! The REST calls the commands make, on top of [`HttpClient`]: JSON in and out,
//! error responses turned into [`CliError::Server`].

use serde_json::Value;

use super::error::{CliError, Status, unreachable};
use super::kinds::KindInfo;
use berth_api::objects::Object;
use berth_client::http_client::{HttpClient, HttpError, StreamingResponse};

pub const MERGE_PATCH: &str = "application/merge-patch+json";
const JSON: &str = "application/json";

pub struct ApiClient {
    http: HttpClient,
}

impl ApiClient {
    pub fn new(servers: Vec<String>) -> Self {
        ApiClient {
            http: HttpClient::new(servers),
        }
    }

    pub fn from_connection(connection: super::kubeconfig::Connection) -> Self {
        let mut http = HttpClient::new(connection.servers).with_bearer_token(connection.token);
        if let Some(tls) = connection.tls {
            http = http.with_tls(tls);
        }
        ApiClient { http }
    }

    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.call("GET", path, None).await
    }

    /// `None` when the server answers 404.
    pub async fn get_optional(&self, path: &str) -> Result<Option<Value>, CliError> {
        match self.get(path).await {
            Ok(value) => Ok(Some(value)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.call("POST", path, Some((JSON, body))).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.call("PUT", path, Some((JSON, body))).await
    }

    pub async fn merge_patch(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.call("PATCH", path, Some((MERGE_PATCH, body))).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.call("DELETE", path, None).await
    }

    async fn call(&self, method: &str, path: &str, body: Option<(&str, &Value)>) -> Result<Value, CliError> {
        let body = body.map(|(content_type, value)| (content_type, value.to_string().into_bytes()));
        let response = self.http.request(method, path, body).await.map_err(connection_error)?;
        if !response.is_success() {
            return Err(CliError::Server(Status::from_response(response.status, &response.body)));
        }
        if response.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&response.body).map_err(|e| {
            CliError::message(format!(
                "the API server's answer to {method} {path} is not JSON ({e}): {}",
                String::from_utf8_lossy(&response.body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ))
        })
    }

    /// A GET whose body is read as it arrives; an error status is read whole and
    /// returned as [`CliError::Server`].
    pub async fn stream(&self, path: &str) -> Result<StreamingResponse, CliError> {
        let response = self.http.stream("GET", path).await.map_err(connection_error)?;
        if response.is_success() {
            return Ok(response);
        }
        let status = response.status;
        let body = response.read_to_end().await.map_err(connection_error)?;
        Err(CliError::Server(Status::from_response(status, &body)))
    }
}

pub fn connection_error(e: HttpError) -> CliError {
    match e {
        HttpError::Unreachable { attempts } => unreachable(&attempts),
        other => CliError::message(format!("talking to the berth API server: {other}")),
    }
}

/// The items of a list response, each with the `kind` and `apiVersion` the server
/// may leave out of list items (Kubernetes does).
pub fn list_items(kind: &KindInfo, list: &Value) -> Vec<Value> {
    let items = list.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
    items.into_iter().map(|item| with_kind(kind, item)).collect()
}

pub fn with_kind(kind: &KindInfo, mut item: Value) -> Value {
    if let Some(fields) = item.as_object_mut() {
        fields.entry("kind").or_insert_with(|| Value::from(kind.kind));
        fields
            .entry("apiVersion")
            .or_insert_with(|| Value::from(kind.api_version()));
    }
    item
}

/// The typed object in a server's answer.
pub fn read_object(kind: &KindInfo, value: Value) -> Result<Object, CliError> {
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Object::from_value(with_kind(kind, value))
        .map_err(|e| CliError::message(format!("cannot read {} {name:?} from the server: {e}", kind.singular)))
}

/// A list response's `metadata.resourceVersion`, where a watch resumes.
pub fn list_resource_version(list: &Value) -> String {
    list.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}
