//! The cluster through the Kubernetes API instead of the store: reads, writes and
//! list-then-watch loops that hand out the store's own [`Record`]s and
//! [`Event`](crate::kv::Event)s (`records.rs`), so that whatever reads the store
//! (the sinks of [`reflector`](crate::reflector), [`registry::decode`](crate::registry::decode))
//! reads what comes from here unchanged. Errors are the store client's
//! ([`KvError`]): 404 is `NotFound`, a 409 `AlreadyExists` or `Conflict`, 410
//! `Compacted`. Secrets come decrypted from the API server: no key is needed here.
//!
//! The agents use it as `system:node:<name>`, with the credentials of a kubeconfig.

mod records;
mod reflect;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use berth_api::kinds::KindDescriptor;
use serde_json::Value;

use crate::http_client::HttpClient;
use crate::kv::{Kv, KvError, Record};
use crate::reflector::Sink;

pub use records::{WatchEvent, decode_event, object_of_key, record_of, response_error};
pub use reflect::{Next, WatchEnd, next_after, reflect, reflect_in};

/// Where a list-then-watch loop reads a kind: the store, or the API servers.
#[derive(Clone)]
pub enum Source {
    Store(Kv),
    Api(ApiSource),
}

impl From<Kv> for Source {
    fn from(kv: Kv) -> Self {
        Source::Store(kv)
    }
}

impl Source {
    /// Lists then watches `kind` forever, feeding `sink`. From the API server only
    /// what `field_selector` selects comes; from the store everything does (the
    /// sinks keep what is theirs either way).
    pub async fn reflect(self, kind: &'static KindDescriptor, field_selector: Option<String>, sink: Arc<dyn Sink>) {
        match self {
            Source::Store(kv) => crate::reflector::reflect(kv, kind.prefix(None), sink, None).await,
            Source::Api(api) => reflect(api, kind, field_selector, sink).await,
        }
    }
}

/// The API servers, reached with a client's credentials.
#[derive(Debug, Clone)]
pub struct ApiSource {
    http: Arc<HttpClient>,
}

impl ApiSource {
    pub fn new(http: Arc<HttpClient>) -> Self {
        ApiSource { http }
    }

    /// The same API servers and credentials over connections of its own
    /// ([`HttpClient::with_own_connections`]).
    pub fn with_own_connections(&self) -> Self {
        ApiSource::new(Arc::new(self.http.with_own_connections()))
    }

    /// The object a store key names (`/registry/configmaps/default/app`), as the
    /// store would hold it; None when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Record>, KvError> {
        let (kind, namespace, name) =
            object_of_key(key).ok_or_else(|| KvError::Other(format!("{key:?} names no object the API serves")))?;
        self.read(kind, &namespace, &name).await
    }

    /// The object `namespace/name` of `kind`; None when there is none.
    pub async fn read(
        &self,
        kind: &'static KindDescriptor,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Record>, KvError> {
        match self.get_ok(&kind.object_path(namespace, name)).await {
            Ok(body) => self.record(kind, &body).map(Some),
            Err(KvError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates `object` (POST to its collection); the object as created.
    pub async fn create(
        &self,
        kind: &'static KindDescriptor,
        namespace: &str,
        object: &Value,
    ) -> Result<Record, KvError> {
        let path = kind.collection_path(Some(namespace));
        let body = self.send("POST", &path, Some(object)).await?;
        self.record(kind, &body)
    }

    /// Replaces the object `namespace/name` (PUT), or its `subresource` (`status`);
    /// a resourceVersion in `object` makes the write conditional on it (a 409,
    /// `Conflict`, when the object has changed since).
    pub async fn replace(
        &self,
        kind: &'static KindDescriptor,
        namespace: &str,
        name: &str,
        subresource: Option<&str>,
        object: &Value,
    ) -> Result<Record, KvError> {
        let mut path = kind.object_path(namespace, name);
        if let Some(subresource) = subresource {
            path = format!("{path}/{subresource}");
        }
        let body = self.send("PUT", &path, Some(object)).await?;
        self.record(kind, &body)
    }

    /// Patches the object `namespace/name` with a JSON merge patch (RFC 7386).
    pub async fn merge_patch(
        &self,
        kind: &'static KindDescriptor,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Record, KvError> {
        let body = (
            "application/merge-patch+json",
            serde_json::to_vec(patch).expect("values serialize"),
        );
        let body = self
            .send_raw("PATCH", &kind.object_path(namespace, name), Some(body))
            .await?;
        self.record(kind, &body)
    }

    /// Deletes the object `namespace/name` with `options` (a DeleteOptions:
    /// `gracePeriodSeconds`, `preconditions`).
    pub async fn delete(
        &self,
        kind: &'static KindDescriptor,
        namespace: &str,
        name: &str,
        options: &Value,
    ) -> Result<(), KvError> {
        self.send("DELETE", &kind.object_path(namespace, name), Some(options))
            .await
            .map(drop)
    }

    /// A token for the ServiceAccount `namespace/account`, bound to the pod
    /// `pod` (name, uid), for `audience` (the API server's own when None), to live
    /// `expiration_seconds` (a TokenRequest, as the kubelet makes one for a
    /// `serviceAccountToken` projection): the token and when it expires.
    pub async fn request_token(
        &self,
        namespace: &str,
        account: &str,
        pod: (&str, &str),
        audience: Option<&str>,
        expiration_seconds: i64,
    ) -> Result<(String, std::time::SystemTime), KvError> {
        let path = format!(
            "{}/token",
            berth_api::kinds::service_account::SERVICE_ACCOUNT.object_path(namespace, account)
        );
        let request = serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": audience.map(|a| vec![a]),
                "expirationSeconds": expiration_seconds,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.0, "uid": pod.1},
            },
        });
        let body = self.send("POST", &path, Some(&request)).await?;
        let answer: Value = serde_json::from_slice(&body)
            .map_err(|e| KvError::Other(format!("the API server sent a TokenRequest that is not JSON: {e}")))?;
        let status = &answer["status"];
        let token = status["token"].as_str().filter(|t| !t.is_empty());
        let expires = status["expirationTimestamp"]
            .as_str()
            .and_then(berth_api::time::parse_rfc3339);
        match (token, expires) {
            (Some(token), Some(expires)) => Ok((token.to_string(), expires)),
            _ => Err(KvError::Other(
                "the API server's TokenRequest has no status.token or status.expirationTimestamp".into(),
            )),
        }
    }

    fn record(&self, kind: &'static KindDescriptor, body: &[u8]) -> Result<Record, KvError> {
        let object: Value = serde_json::from_slice(body)
            .map_err(|e| KvError::Other(format!("the API server sent a {} that is not JSON: {e}", kind.kind)))?;
        record_of(kind, object).map_err(KvError::Other)
    }

    async fn get_ok(&self, path: &str) -> Result<Vec<u8>, KvError> {
        self.send("GET", path, None).await
    }

    /// One request; the body of a success, else the error the response stands for.
    async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Vec<u8>, KvError> {
        let body = body.map(|b| ("application/json", serde_json::to_vec(b).expect("values serialize")));
        self.send_raw(method, path, body).await
    }

    async fn send_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<Vec<u8>, KvError> {
        let response = self
            .http
            .request(method, path, body)
            .await
            .map_err(|e| KvError::Unavailable(e.to_string()))?;
        if response.is_success() {
            Ok(response.body)
        } else {
            Err(response_error(response.status, &response.body))
        }
    }
}
