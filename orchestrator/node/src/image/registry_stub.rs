//! A registry in the test process (axum on loopback) for what a real registry is
//! hard to make do: answer with a tampered blob, require a Bearer token from a token
//! service it names, redirect blob downloads to "storage", and count requests.
//! It speaks the distribution API's pull side and its JSON errors.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::digest::Digest;
use super::testing::TestImage;

#[derive(Clone, Default)]
pub enum Auth {
    #[default]
    Anonymous,
    Basic {
        authorization: String,
    },
    /// The registry wants `Bearer <token>`; the token service at /token gives it for
    /// the Basic `authorization`.
    Bearer {
        authorization: String,
        token: String,
    },
}

/// (repository, tag or digest) ──► (media type, bytes).
type Manifests = HashMap<(String, String), (String, Vec<u8>)>;

#[derive(Default)]
pub struct StubState {
    pub manifests: Mutex<Manifests>,
    pub blobs: Mutex<HashMap<String, Vec<u8>>>,
    pub auth: Mutex<Auth>,
    /// Blob downloads answer 307 to /storage/<digest>.
    pub redirect_blobs: Mutex<bool>,
    /// Manifests come with a Docker-Content-Digest that is not theirs.
    pub wrong_content_digest: Mutex<bool>,
    pub manifest_requests: AtomicUsize,
    pub blob_requests: AtomicUsize,
    pub token_requests: AtomicUsize,
    pub port: Mutex<u16>,
}

pub struct Stub {
    pub state: Arc<StubState>,
    pub host: String,
    _server: tokio::task::JoinHandle<()>,
}

impl Stub {
    pub async fn start() -> Stub {
        let state = Arc::new(StubState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        *state.port.lock().unwrap() = port;
        let app = Router::new()
            .route("/v2/{*rest}", get(registry))
            .route("/token", get(token))
            .route("/storage/{digest}", get(storage))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Stub {
            state,
            host: format!("127.0.0.1:{port}"),
            _server: server,
        }
    }

    /// Serves `image` as `repository:tag` (and by its digest).
    pub fn push(&self, repository: &str, tag: &str, image: &TestImage) {
        let mut blobs = self.state.blobs.lock().unwrap();
        blobs.insert(image.config_digest().to_string(), image.config.clone());
        for layer in &image.layers {
            blobs.insert(Digest::of(layer).to_string(), layer.clone());
        }
        drop(blobs);
        self.put_manifest(repository, tag, super::manifest::OCI_MANIFEST, &image.manifest);
    }

    pub fn put_manifest(&self, repository: &str, tag: &str, media_type: &str, bytes: &[u8]) {
        let mut manifests = self.state.manifests.lock().unwrap();
        for reference in [tag.to_string(), Digest::of(bytes).to_string()] {
            manifests.insert(
                (repository.to_string(), reference),
                (media_type.to_string(), bytes.to_vec()),
            );
        }
    }

    pub fn reference(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.host)
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors": [{"code": code, "message": message, "detail": null}]});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn header_value(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn unauthorized(state: &StubState, repository: &str) -> Response {
    let challenge = match &*state.auth.lock().unwrap() {
        Auth::Basic { .. } => r#"Basic realm="stub""#.to_string(),
        _ => format!(
            r#"Bearer realm="http://127.0.0.1:{}/token",service="stub",scope="repository:{repository}:pull""#,
            state.port.lock().unwrap()
        ),
    };
    let mut response = error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "authentication required");
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, challenge.parse().unwrap());
    response
}

async fn registry(State(state): State<Arc<StubState>>, Path(rest): Path<String>, headers: HeaderMap) -> Response {
    let (repository, kind, reference) = if let Some((r, reference)) = rest.split_once("/manifests/") {
        (r.to_string(), "manifests", reference.to_string())
    } else if let Some((r, digest)) = rest.split_once("/blobs/") {
        (r.to_string(), "blobs", digest.to_string())
    } else {
        return error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        );
    };
    let authorization = header_value(&headers, header::AUTHORIZATION);
    let allowed = match &*state.auth.lock().unwrap() {
        Auth::Anonymous => true,
        Auth::Basic {
            authorization: expected,
        } => authorization == Some(expected.as_str()),
        Auth::Bearer { token, .. } => authorization == Some(format!("Bearer {token}").as_str()),
    };
    if !allowed {
        return unauthorized(&state, &repository);
    }
    if kind == "manifests" {
        state.manifest_requests.fetch_add(1, Ordering::SeqCst);
        let found = state.manifests.lock().unwrap().get(&(repository, reference)).cloned();
        let lie = *state.wrong_content_digest.lock().unwrap();
        return match found {
            Some((media_type, bytes)) => (
                [
                    (header::CONTENT_TYPE, media_type),
                    (
                        header::HeaderName::from_static("docker-content-digest"),
                        Digest::of(if lie { b"another manifest".as_slice() } else { &bytes }).to_string(),
                    ),
                ],
                bytes,
            )
                .into_response(),
            None => error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", "manifest unknown"),
        };
    }
    state.blob_requests.fetch_add(1, Ordering::SeqCst);
    if *state.redirect_blobs.lock().unwrap() {
        // Another origin (localhost, not 127.0.0.1), as storage is another service.
        let location = format!("http://localhost:{}/storage/{reference}", state.port.lock().unwrap());
        return (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, location)]).into_response();
    }
    blob(&state, &reference)
}

fn blob(state: &StubState, digest: &str) -> Response {
    match state.blobs.lock().unwrap().get(digest) {
        Some(bytes) => Body::from(bytes.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "blob unknown to registry"),
    }
}

/// Storage behind a redirect: it takes no registry credentials.
async fn storage(State(state): State<Arc<StubState>>, Path(digest): Path<String>, headers: HeaderMap) -> Response {
    if headers.contains_key(header::AUTHORIZATION) {
        return error(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            "storage got the registry's credentials",
        );
    }
    blob(&state, &digest)
}

async fn token(State(state): State<Arc<StubState>>, headers: HeaderMap) -> Response {
    state.token_requests.fetch_add(1, Ordering::SeqCst);
    let Auth::Bearer { authorization, token } = state.auth.lock().unwrap().clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if header_value(&headers, header::AUTHORIZATION) != Some(authorization.as_str()) {
        return error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "invalid username or password");
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({"token": token}).to_string(),
    )
        .into_response()
}
