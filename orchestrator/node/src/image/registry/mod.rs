//! A client of the registry HTTP API v2 (the distribution spec), just what pulls
//! need: a manifest by tag or digest, and blobs streamed to disk with their digest
//! checked on the way.
//!
//! ```text
//!   GET /v2/<name>/manifests/<tag|digest>   Accept: OCI index/manifest, Docker list/schema2
//!     401 + WWW-Authenticate ──► Basic: retry with the credentials
//!                                Bearer: GET realm?service&scope (Basic if credentials)
//!                                        ──► {"token"} ──► retry with "Bearer <token>"
//!   GET /v2/<name>/blobs/<digest>           30x to storage followed (Authorization only
//!                                           sent to the registry's own origin)
//! ```
//!
//! A registry named insecure (and, as Docker has it, one on loopback) is tried over
//! HTTPS without certificate verification first and plain HTTP second; the first
//! that answers at all serves the rest of the pull.
//!
//! Errors keep the registry's own words (`errors[].code/message` of its JSON body),
//! which kubelet shows users as the ErrImagePull message.

pub mod auth;
pub mod http;
pub mod url;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use hyper::StatusCode;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use rustls::ClientConfig;

use super::RegistryCredentials;
use super::digest::{Digest, HashingWriter, mismatch};
use super::manifest::{ACCEPT, Descriptor, MANIFEST_MAX_BYTES};
use super::reference::{DOCKER_HUB, Reference, is_insecure};
use auth::Challenge;
use url::Url;

const MAX_REDIRECTS: usize = 5;
/// The part of an error response berth reads for the registry's message.
const ERROR_BODY_MAX_BYTES: u64 = 64 << 10;

/// A manifest document as the registry served it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub content_type: Option<String>,
}

/// The node's registry settings.
#[derive(Clone)]
pub struct RegistryClient {
    insecure: Vec<String>,
    tls: Arc<ClientConfig>,
    insecure_tls: Arc<ClientConfig>,
}

impl RegistryClient {
    /// `insecure`: registries (`host:port` or a host) tried over unchecked HTTPS, then HTTP;
    /// `ca_bundle`: the CAs HTTPS registries are checked against (the system's when None).
    pub fn new(insecure: Vec<String>, ca_bundle: Option<&Path>) -> Result<RegistryClient, String> {
        Ok(RegistryClient {
            insecure,
            tls: http::tls_config(ca_bundle)?,
            insecure_tls: http::insecure_tls_config()?,
        })
    }

    /// A session for pulling `reference`'s repository, with the credentials that
    /// match its registry.
    pub fn session(&self, reference: &Reference, credentials: &[RegistryCredentials]) -> Result<Session, String> {
        let host = if reference.domain == DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            reference.domain.as_str()
        };
        let endpoints = if is_insecure(&reference.domain, &self.insecure) {
            vec![
                (Url::registry(host, true)?, self.insecure_tls.clone()),
                (Url::registry(host, false)?, self.tls.clone()),
            ]
        } else {
            vec![(Url::registry(host, true)?, self.tls.clone())]
        };
        Ok(Session {
            endpoints,
            chosen: Mutex::new(0),
            repository: reference.path.clone(),
            credentials: auth::credentials_for(credentials, &reference.domain, &reference.path).cloned(),
            authorization: Mutex::new(None),
        })
    }
}

/// What one pull says to one repository of one registry; the authorization that a
/// challenge earned is reused by the session's later requests.
pub struct Session {
    /// Where the registry may be, in the order tried, with the TLS settings for each.
    endpoints: Vec<(Url, Arc<ClientConfig>)>,
    /// The endpoint that answered (the first until one is tried and fails).
    chosen: Mutex<usize>,
    repository: String,
    credentials: Option<RegistryCredentials>,
    authorization: Mutex<Option<String>>,
}

impl Session {
    /// The manifest document named by `tag_or_digest`, its digest checked against the
    /// registry's `Docker-Content-Digest` header and, for a digest, against that.
    pub async fn manifest(&self, reference: &Reference, tag_or_digest: &str) -> Result<FetchedManifest, String> {
        let path = format!("/v2/{}/manifests/{tag_or_digest}", self.repository);
        let (response, url) = self.first_get(&path, Some(ACCEPT)).await?;
        if response.status() == StatusCode::NOT_FOUND {
            let registry_says = registry_errors(response, &url).await;
            return Err(format!(
                "failed to resolve reference \"{reference}\": {reference}: not found{}",
                registry_says.map(|m| format!(": {m}")).unwrap_or_default()
            ));
        }
        let response = self.check_status(response, &url).await?;
        let header_digest = match response.headers().get("docker-content-digest") {
            Some(v) => Some(Digest::parse(v.to_str().unwrap_or_default()).map_err(|e| format!("GET {url}: {e}"))?),
            None => None,
        };
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let bytes = http::read_body(response, &url, MANIFEST_MAX_BYTES).await?;
        let digest = Digest::of(&bytes);
        if let Some(expected) = header_digest
            && expected != digest
        {
            return Err(mismatch(
                &format!("manifest {tag_or_digest} (Docker-Content-Digest)"),
                &expected,
                &digest,
            ));
        }
        if tag_or_digest.starts_with("sha256:") && tag_or_digest != digest.as_str() {
            let expected = Digest::parse(tag_or_digest)?;
            return Err(mismatch("manifest", &expected, &digest));
        }
        Ok(FetchedManifest {
            bytes,
            digest,
            content_type,
        })
    }

    /// A small blob (a config) in memory, verified.
    pub async fn blob_bytes(&self, descriptor: &Descriptor, limit: u64) -> Result<Vec<u8>, String> {
        let expected = descriptor.digest()?;
        if descriptor.size > limit {
            return Err(format!(
                "blob {expected} is {} bytes, more than {limit}",
                descriptor.size
            ));
        }
        let (response, url) = self.blob_response(&expected).await?;
        let bytes = http::read_body(response, &url, limit).await?;
        let actual = Digest::of(&bytes);
        if actual != expected {
            return Err(mismatch(&format!("blob {}", self.repository), &expected, &actual));
        }
        Ok(bytes)
    }

    /// Streams blob `descriptor` into a new file at `dest`, hashing it as it goes;
    /// refuses it (and removes the file) when its size or digest is not the
    /// descriptor's.
    pub async fn blob_to_file(&self, descriptor: &Descriptor, dest: &Path) -> Result<(), String> {
        let result = self.write_blob(descriptor, dest).await;
        if result.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        result
    }

    async fn write_blob(&self, descriptor: &Descriptor, dest: &Path) -> Result<(), String> {
        let expected = descriptor.digest()?;
        let (response, url) = self.blob_response(&expected).await?;
        let file = std::fs::File::create_new(dest).map_err(|e| format!("create {}: {e}", dest.display()))?;
        let mut writer = HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, file));
        let mut body = response.into_body();
        let mut written = 0u64;
        while let Some(chunk) = http::next_chunk(&mut body, &url).await? {
            written += chunk.len() as u64;
            if written > descriptor.size {
                return Err(format!(
                    "blob {expected} is larger than its descriptor's {} bytes",
                    descriptor.size
                ));
            }
            // Page-cache writes of one chunk: short enough not to hand to a blocking thread.
            writer
                .write_all(&chunk)
                .map_err(|e| format!("write {}: {e}", dest.display()))?;
        }
        let (actual, _, inner) = writer.finish();
        inner
            .into_inner()
            .map_err(|e| format!("write {}: {e}", dest.display()))?
            .sync_all()
            .map_err(|e| format!("write {}: {e}", dest.display()))?;
        if written != descriptor.size {
            return Err(format!(
                "blob {expected} has {written} bytes, its descriptor says {}",
                descriptor.size
            ));
        }
        if actual != expected {
            return Err(mismatch(&format!("blob {}", self.repository), &expected, &actual));
        }
        Ok(())
    }

    /// GET of a blob, following the registry's redirects to its storage.
    async fn blob_response(&self, digest: &Digest) -> Result<(hyper::Response<hyper::body::Incoming>, Url), String> {
        let mut url = self
            .base()
            .with_path(&format!("/v2/{}/blobs/{digest}", self.repository));
        let mut response = self.get(&url, None).await?;
        for _ in 0..MAX_REDIRECTS {
            if !response.status().is_redirection() {
                break;
            }
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| format!("GET {url}: {} without a Location", response.status()))?;
            url = url.join(location)?;
            response = if url.same_origin(&self.base()) {
                self.get(&url, None).await?
            } else {
                http::get(&self.tls(), &url, &[]).await?
            };
        }
        Ok((self.check_status(response, &url).await?, url))
    }

    fn base(&self) -> Url {
        self.endpoints[*self.chosen.lock().unwrap()].0.clone()
    }

    fn tls(&self) -> Arc<ClientConfig> {
        self.endpoints[*self.chosen.lock().unwrap()].1.clone()
    }

    /// A pull's first request: an endpoint that cannot be reached or does not speak
    /// its protocol gives way to the next.
    async fn first_get(
        &self,
        path: &str,
        accept: Option<&str>,
    ) -> Result<(hyper::Response<hyper::body::Incoming>, Url), String> {
        loop {
            let url = self.base().with_path(path);
            match self.get_once(&url, accept).await {
                Ok(response) => return Ok((self.answer_challenge(response, &url, accept).await?, url)),
                Err(e) => {
                    let mut chosen = self.chosen.lock().unwrap();
                    if *chosen + 1 >= self.endpoints.len() {
                        return Err(e);
                    }
                    tracing::debug!(%url, error = %e, "registry endpoint unusable; trying the next");
                    *chosen += 1;
                }
            }
        }
    }

    /// A GET on the registry, authorized as the last challenge asked, answering a
    /// new challenge once.
    async fn get(&self, url: &Url, accept: Option<&str>) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        let response = self.get_once(url, accept).await?;
        self.answer_challenge(response, url, accept).await
    }

    async fn answer_challenge(
        &self,
        response: hyper::Response<hyper::body::Incoming>,
        url: &Url,
        accept: Option<&str>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(auth::parse_challenge);
        let Some(challenge) = challenge else {
            return Ok(response);
        };
        let authorization = match challenge {
            Challenge::Basic => match &self.credentials {
                Some(c) => auth::basic(c),
                None => return Ok(response),
            },
            Challenge::Bearer { realm, service, scope } => self.token(&realm, service, scope).await?,
        };
        *self.authorization.lock().unwrap() = Some(authorization);
        self.get_once(url, accept).await
    }

    async fn get_once(
        &self,
        url: &Url,
        accept: Option<&str>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        let mut headers = Vec::new();
        if let Some(accept) = accept {
            headers.push(("accept", accept.to_string()));
        }
        if let Some(authorization) = self.authorization.lock().unwrap().clone() {
            headers.push((AUTHORIZATION.as_str(), authorization));
        }
        http::get(&self.tls(), url, &headers).await
    }

    /// A Bearer token from the challenge's realm, asked with the user's credentials
    /// when there are some.
    async fn token(&self, realm: &str, service: Option<String>, scope: Option<String>) -> Result<String, String> {
        let mut realm_url = Url::parse(realm).map_err(|e| format!("failed to authorize: realm: {e}"))?;
        let scope = scope.unwrap_or_else(|| format!("repository:{}:pull", self.repository));
        let mut query = Vec::new();
        if let Some(service) = service {
            query.push(format!("service={}", url::encode_query_value(&service)));
        }
        query.push(format!("scope={}", url::encode_query_value(&scope)));
        let separator = if realm_url.path_and_query.contains('?') {
            '&'
        } else {
            '?'
        };
        realm_url.path_and_query = format!("{}{separator}{}", realm_url.path_and_query, query.join("&"));
        let headers: Vec<(&'static str, String)> = self
            .credentials
            .iter()
            .map(|c| (AUTHORIZATION.as_str(), auth::basic(c)))
            .collect();
        let kind = if self.credentials.is_some() {
            "oauth"
        } else {
            "anonymous"
        };
        let response = http::get(&self.tls(), &realm_url, &headers).await?;
        if !response.status().is_success() {
            let status = response.status();
            let says = registry_errors(response, &realm_url)
                .await
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            return Err(format!(
                "failed to authorize: failed to fetch {kind} token: unexpected status from GET request to {realm_url}: {status}{says}"
            ));
        }
        let body = http::read_body(response, &realm_url, 1 << 20).await?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| format!("failed to authorize: the token service's answer is not JSON: {e}"))?;
        let token = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or("failed to authorize: the token service gave no token")?;
        Ok(format!("Bearer {token}"))
    }

    /// The response when it is a success, else the error as containerd words it,
    /// with the registry's own.
    async fn check_status(
        &self,
        response: hyper::Response<hyper::body::Incoming>,
        url: &Url,
    ) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let says = registry_errors(response, url).await;
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(format!(
                "pull access denied, repository does not exist or may require authorization: server message: {}",
                says.unwrap_or_else(|| status.to_string())
            ));
        }
        Err(format!(
            "unexpected status from GET request to {url}: {status}{}",
            says.map(|m| format!(": {m}")).unwrap_or_default()
        ))
    }
}

/// The registry's `errors[]` as Docker prints them ("manifest unknown: manifest
/// unknown"), or None when the body holds none.
async fn registry_errors(response: hyper::Response<hyper::body::Incoming>, url: &Url) -> Option<String> {
    let body = http::read_body(response, url, ERROR_BODY_MAX_BYTES).await.ok()?;
    format_registry_errors(&body)
}

fn format_registry_errors(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let parsed: Errors = serde_json::from_slice(body).ok()?;
    let messages: Vec<String> = parsed
        .errors
        .iter()
        .map(|e| {
            let code = e.code.to_lowercase().replace('_', " ");
            match (code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{code}: {}", e.message),
                (false, true) => code,
                _ => e.message.clone(),
            }
        })
        .collect();
    (!messages.is_empty()).then(|| messages.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_first_and_plain_http_second_for_insecure_or_loopback_registries() {
        let client = RegistryClient::new(vec!["mirror.lan:5000".into()], None).unwrap();
        let endpoints = |image: &str| {
            let session = client.session(&Reference::parse(image).unwrap(), &[]).unwrap();
            session
                .endpoints
                .iter()
                .map(|(url, _)| url.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(endpoints("busybox"), ["https://registry-1.docker.io/"]);
        assert_eq!(
            endpoints("registry.example:5000/app"),
            ["https://registry.example:5000/"]
        );
        assert_eq!(
            endpoints("mirror.lan:5000/app"),
            ["https://mirror.lan:5000/", "http://mirror.lan:5000/"]
        );
        assert_eq!(
            endpoints("127.0.0.1:5000/app"),
            ["https://127.0.0.1:5000/", "http://127.0.0.1:5000/"]
        );
        assert_eq!(endpoints("localhost/app"), ["https://localhost/", "http://localhost/"]);
    }

    #[test]
    fn registry_errors_are_worded_as_docker_does() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"nope"}}]}"#;
        assert_eq!(
            format_registry_errors(body).unwrap(),
            "manifest unknown: manifest unknown"
        );
        assert_eq!(format_registry_errors(b"<html>"), None);
    }
}
