//! The API server over real HTTP against a real one-replica store: each test binds
//! the server on a free port and talks to it with a bare HTTP/1.1 client. This file
//! is the harness; the tests are grouped by what they exercise.

mod admission;
mod apply;
mod config_maps;
mod discovery;
mod disruption;
mod events;
mod fields;
mod graceful;
mod kubernetes_service;
mod leases;
mod limits;
mod lists;
mod logs;
mod namespaces;
mod network_policies;
mod patches;
mod priority_classes;
mod protobuf;
mod rbac;
mod secrets;
mod service_accounts;
mod services;
mod streaming;
mod watch_cache;
mod watches;
mod writes;

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

use super::route::Kind;
use super::{ApiServer, Settings, serve};
use berth_api::kinds::KINDS;
use berth_client::testing::{TestStore, store};

/// The header naming the user a test request is made as (`alice`), and the one
/// naming its groups (comma-separated); `system:authenticated` is added.
pub(crate) const TEST_USER: &str = "x-berth-test-user";
pub(crate) const TEST_GROUPS: &str = "x-berth-test-groups";

/// Makes a request carrying [`TEST_USER`] one of that user, as authentication will.
pub(crate) fn as_named_user(mut request: axum::extract::Request) -> axum::extract::Request {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if let Some(name) = header(TEST_USER) {
        let groups = header(TEST_GROUPS).unwrap_or_default();
        let groups = groups.split(',').filter(|g| !g.is_empty()).map(str::to_string);
        let user = crate::auth::UserInfo::authenticated(name, groups);
        request.extensions_mut().insert(user);
    }
    request
}

/// The kind served as `resource`, for the unit tests of every module.
pub(crate) fn kind(resource: &str) -> &'static Kind {
    KINDS.iter().copied().find(|k| k.plural == resource).unwrap()
}

const TIMEOUT: Duration = Duration::from_secs(20);

struct Server {
    address: SocketAddr,
    store: TestStore,
}

/// A store and an API server on it, with the `default` namespace in place.
async fn start() -> Server {
    start_with(Settings::default()).await
}

/// [`start`], with limits of the test's choosing.
async fn start_with(settings: Settings) -> Server {
    let store = store().await;
    let api = ApiServer::with_settings(store.kv.clone(), settings);
    start_on(store, api).await
}

/// `api` served on `store` (which it must use), once the default namespace is there.
async fn start_on(store: TestStore, api: ApiServer) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, api));
    let server = Server { address, store };
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    // As a member of system:masters, whom every authorization mode allows.
    let admin = [(TEST_USER, "admin"), (TEST_GROUPS, "system:masters")];
    while server
        .call("GET", "/api/v1/namespaces/default", &admin, Vec::new())
        .await
        .status
        != 200
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the default namespace never appeared"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    /// The `Warning` headers, as sent.
    warnings: Vec<String>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

impl Server {
    /// Sends a request and returns the response with its body still to be read.
    async fn open(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> hyper::Response<Incoming> {
        let stream = TcpStream::connect(self.address).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.address.to_string())
            .header("connection", "close");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body))).unwrap();
        tokio::time::timeout(TIMEOUT, sender.send_request(request))
            .await
            .expect("a response in time")
            .unwrap()
    }

    async fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
        let response = self.open(method, path, headers, body).await;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let warnings = response
            .headers()
            .get_all("warning")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        let body = tokio::time::timeout(TIMEOUT, response.into_body().collect())
            .await
            .expect("a body in time")
            .unwrap()
            .to_bytes()
            .to_vec();
        Reply {
            status,
            content_type,
            warnings,
            body,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, &[], Vec::new()).await
    }

    async fn send_json(&self, method: &str, path: &str, body: &Value) -> Reply {
        self.call(
            method,
            path,
            &[("content-type", "application/json")],
            body.to_string().into_bytes(),
        )
        .await
    }

    async fn merge_patch(&self, path: &str, patch: &Value) -> Reply {
        self.call(
            "PATCH",
            path,
            &[("content-type", "application/merge-patch+json")],
            patch.to_string().into_bytes(),
        )
        .await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, &[], Vec::new()).await
    }

    async fn watch(&self, path: &str) -> Events {
        let response = self.open("GET", path, &[], Vec::new()).await;
        assert_eq!(response.status(), 200, "{path}");
        Events {
            body: response.into_body(),
            buffer: Vec::new(),
        }
    }
}

/// The lines of a watch response.
struct Events {
    body: Incoming,
    buffer: Vec<u8>,
}

impl Events {
    /// The next event; `None` when the response ended.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(at) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=at).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            let frame = tokio::time::timeout(TIMEOUT, self.body.frame())
                .await
                .expect("an event in time")?;
            if let Ok(data) = frame.unwrap().into_data() {
                self.buffer.extend_from_slice(&data);
            }
        }
    }

    /// The next event's type and object name.
    async fn next_named(&mut self) -> (String, String) {
        let event = self.next().await.expect("an event");
        (
            event["type"].as_str().unwrap().to_string(),
            event["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    }
}

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";
const PODS: &str = "/api/v1/namespaces/default/pods";

fn deployment(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "command": ["sleep", "1000"]}]}
            }
        }
    })
}

fn pod(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "command": ["sleep", "1000"]}]}
    })
}

fn version_of(object: &Value) -> String {
    object["metadata"]["resourceVersion"].as_str().unwrap().to_string()
}
