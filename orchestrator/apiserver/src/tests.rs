//! The API server over real HTTP against a real one-replica store: each test binds
//! the server on a free port and talks to it with a bare HTTP/1.1 client.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{ApiServer, serve};
use berth_client::testing::{TestStore, store};

const TIMEOUT: Duration = Duration::from_secs(20);

struct Server {
    address: SocketAddr,
    store: TestStore,
}

/// A store and an API server on it, with the `default` namespace in place.
async fn start() -> Server {
    let store = store().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, ApiServer::new(store.kv.clone())));
    let server = Server { address, store };
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while server.get("/api/v1/namespaces/default").await.status != 200 {
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
        let body = tokio::time::timeout(TIMEOUT, response.into_body().collect())
            .await
            .expect("a body in time")
            .unwrap()
            .to_bytes()
            .to_vec();
        Reply {
            status,
            content_type,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_replaces_patches_scales_lists_and_deletes() {
    let server = start().await;
    let web = format!("{DEPLOYMENTS}/web");

    let created = server.send_json("POST", DEPLOYMENTS, &deployment("web", 1)).await;
    assert_eq!(created.status, 201, "{}", created.json());
    let created = created.json();
    assert_eq!(created["metadata"]["namespace"], "default", "filled from the URL");
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["metadata"]["uid"].as_str().unwrap().len(), 36);
    assert!(
        created["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    let again = server.send_json("POST", DEPLOYMENTS, &deployment("web", 1)).await;
    assert_eq!(again.status, 409);
    assert_eq!(again.json()["reason"], "AlreadyExists");
    assert_eq!(again.json()["message"], "deployments.apps \"web\" already exists");

    // A replace at the current version bumps the generation; a stale one conflicts.
    let mut update = deployment("web", 2);
    update["metadata"]["resourceVersion"] = version_of(&created).into();
    update["status"] = json!({"replicas": 42});
    let replaced = server.send_json("PUT", &web, &update).await;
    assert_eq!(replaced.status, 200, "{}", replaced.json());
    let replaced = replaced.json();
    assert_eq!(replaced["metadata"]["generation"], 2);
    assert_eq!(replaced["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(
        replaced["status"]["replicas"], 0,
        "status is not the main resource's to change"
    );
    let stale = server.send_json("PUT", &web, &update).await;
    assert_eq!(stale.status, 409);
    assert_eq!(stale.json()["reason"], "Conflict");
    assert_eq!(
        stale.json()["message"],
        "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; \
         please apply your changes to the latest version and try again"
    );
    let mut unconditional = deployment("web", 2);
    unconditional["metadata"]["resourceVersion"] = "".into();
    assert_eq!(server.send_json("PUT", &web, &unconditional).await.status, 200);
    let renamed = server.send_json("PUT", &web, &deployment("api", 2)).await;
    assert_eq!(renamed.status, 400);

    // The status subresource changes only the status.
    let mut status = deployment("web", 9);
    status["status"] = json!({"replicas": 2, "readyReplicas": 1});
    let with_status = server.send_json("PUT", &format!("{web}/status"), &status).await.json();
    assert_eq!(with_status["status"]["replicas"], 2);
    assert_eq!(with_status["spec"]["replicas"], 2);

    // Invalid objects are refused with the field named, and nothing is written.
    let invalid = server.send_json("POST", DEPLOYMENTS, &deployment("bad", -1)).await;
    assert_eq!(invalid.status, 422);
    let invalid = invalid.json();
    assert_eq!(invalid["reason"], "Invalid");
    assert_eq!(invalid["details"]["causes"][0]["field"], "spec.replicas");
    assert_eq!(invalid["details"]["causes"][0]["reason"], "FieldValueInvalid");
    assert!(
        invalid["message"]
            .as_str()
            .unwrap()
            .starts_with("Deployment.apps \"bad\" is invalid: spec.replicas: Invalid value: -1: "),
        "{invalid}"
    );
    assert_eq!(server.get(&format!("{DEPLOYMENTS}/bad")).await.status, 404);
    let malformed = server
        .call(
            "POST",
            DEPLOYMENTS,
            &[("content-type", "application/json")],
            b"{\"kind\":".to_vec(),
        )
        .await;
    assert_eq!(malformed.status, 400);
    assert!(malformed.json()["message"].as_str().unwrap().contains("not valid JSON"));

    // Merge patches; JSON patches are not supported; invalid results are refused.
    let patched = server
        .merge_patch(
            &web,
            &json!({"metadata": {"labels": {"tier": "front"}}, "spec": {"replicas": 5}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.json());
    let patched = patched.json();
    assert_eq!(patched["metadata"]["labels"], json!({"app": "web", "tier": "front"}));
    assert_eq!(patched["spec"]["replicas"], 5);
    let json_patch = server
        .call(
            "PATCH",
            &web,
            &[("content-type", "application/json-patch+json")],
            br#"[{"op":"replace","path":"/spec/replicas","value":1}]"#.to_vec(),
        )
        .await;
    assert_eq!(json_patch.status, 415);
    assert_eq!(json_patch.json()["reason"], "UnsupportedMediaType");
    assert_eq!(
        server
            .merge_patch(&web, &json!({"spec": {"replicas": -3}}))
            .await
            .status,
        422
    );
    assert_eq!(server.get(&web).await.json()["spec"]["replicas"], 5);
    let stale_patch = json!({"metadata": {"resourceVersion": version_of(&created)}, "spec": {"replicas": 1}});
    assert_eq!(server.merge_patch(&web, &stale_patch).await.status, 409);

    // Scale.
    let scale = server.get(&format!("{web}/scale")).await.json();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 5);
    assert_eq!(scale["status"]["replicas"], 2);
    assert_eq!(scale["metadata"]["uid"], created["metadata"]["uid"]);
    let scaled = server
        .send_json("PUT", &format!("{web}/scale"), &json!({"spec": {"replicas": 7}}))
        .await;
    assert_eq!(scaled.status, 200, "{}", scaled.json());
    assert_eq!(scaled.json()["spec"]["replicas"], 7);
    assert_eq!(server.get(&web).await.json()["spec"]["replicas"], 7);
    let negative = server
        .send_json("PUT", &format!("{web}/scale"), &json!({"spec": {"replicas": -1}}))
        .await;
    assert_eq!(negative.status, 422);
    let scaled_down = server
        .merge_patch(&format!("{web}/scale"), &json!({"spec": {"replicas": 1}}))
        .await;
    assert_eq!(scaled_down.json()["spec"]["replicas"], 1);
    assert_eq!(server.get(&web).await.json()["metadata"]["labels"]["tier"], "front");

    // YAML in and out.
    let yaml = serde_yaml_ng::to_string(&deployment("api", 1)).unwrap();
    let created_from_yaml = server
        .call(
            "POST",
            DEPLOYMENTS,
            &[("content-type", "application/yaml")],
            yaml.into_bytes(),
        )
        .await;
    assert_eq!(created_from_yaml.status, 201);
    let as_yaml = server
        .call(
            "GET",
            &format!("{DEPLOYMENTS}/api"),
            &[("accept", "application/yaml")],
            Vec::new(),
        )
        .await;
    assert_eq!(as_yaml.content_type, "application/yaml");
    let as_yaml: Value = serde_yaml_ng::from_slice(&as_yaml.body).unwrap();
    assert_eq!(as_yaml["metadata"]["name"], "api");

    // Lists with selectors.
    let list = server
        .get(&format!("{DEPLOYMENTS}?labelSelector=app%3Dweb"))
        .await
        .json();
    assert_eq!(list["kind"], "DeploymentList");
    assert_eq!(list["apiVersion"], "apps/v1");
    assert!(
        list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0
    );
    let names = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&list), ["web"]);
    assert_eq!(list["items"][0]["kind"], "Deployment");
    let everything = server.get("/apis/apps/v1/deployments").await.json();
    assert_eq!(names(&everything), ["api", "web"]);
    let not_web = server
        .get(&format!("{DEPLOYMENTS}?labelSelector=app!%3Dweb,!tier"))
        .await
        .json();
    assert_eq!(names(&not_web), ["api"]);
    let by_name = server
        .get(&format!("{DEPLOYMENTS}?fieldSelector=metadata.name%3Dapi"))
        .await
        .json();
    assert_eq!(names(&by_name), ["api"]);
    assert_eq!(
        server.get(&format!("{DEPLOYMENTS}?labelSelector=a%3D(")).await.status,
        400
    );
    assert_eq!(
        server
            .get(&format!("{DEPLOYMENTS}?fieldSelector=spec.replicas%3D1"))
            .await
            .status,
        400
    );

    // Namespaces must exist and agree with the URL.
    let nowhere = server
        .send_json(
            "POST",
            "/apis/apps/v1/namespaces/nope/deployments",
            &deployment("web", 1),
        )
        .await;
    assert_eq!(nowhere.status, 404);
    assert_eq!(nowhere.json()["message"], "namespaces \"nope\" not found");
    let mut elsewhere = deployment("other", 1);
    elsewhere["metadata"]["namespace"] = "kube-system".into();
    assert_eq!(server.send_json("POST", DEPLOYMENTS, &elsewhere).await.status, 400);

    // Delete returns the object; then it is gone.
    let deleted = server.delete(&web).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.json()["metadata"]["name"], "web");
    assert_eq!(server.delete(&web).await.status, 404);
    let gone = server.get(&web).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["message"], "deployments.apps \"web\" not found");

    // The rest of the surface.
    let unknown = server.get("/api/v1/widgets").await;
    assert_eq!((unknown.status, unknown.json()["kind"].clone()), (404, json!("Status")));
    assert_eq!(
        server
            .send_json("POST", "/api/v1/pods", &pod("p", json!({})))
            .await
            .status,
        405
    );
    assert_eq!(server.get("/healthz").await.body, b"ok");
    assert_eq!(server.get("/readyz").await.status, 200);
    let version = server.get("/version").await.json();
    assert_eq!(version["gitVersion"], format!("v{}-berth", env!("CARGO_PKG_VERSION")));
    // A body declared too large is refused before it is read. (The head alone is
    // sent: a server that answers early and closes would otherwise reset a client
    // still writing, and the test would race it.)
    let mut socket = TcpStream::connect(server.address).await.unwrap();
    let head = format!(
        "POST {DEPLOYMENTS} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        super::codec::MAX_BODY_BYTES + 1
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut too_big = Vec::new();
    tokio::time::timeout(TIMEOUT, socket.read_to_end(&mut too_big))
        .await
        .expect("a response in time")
        .unwrap();
    let too_big = String::from_utf8_lossy(&too_big);
    assert!(too_big.starts_with("HTTP/1.1 413 "), "{too_big}");
    assert!(too_big.contains("\"reason\":\"RequestEntityTooLarge\""), "{too_big}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_report_changes_in_order_and_refuse_compacted_revisions() {
    let server = start().await;
    let list = server.get(PODS).await.json();
    let start_version = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();

    let mut all = server
        .watch(&format!("{PODS}?watch=1&resourceVersion={start_version}"))
        .await;
    let mut selected = server
        .watch(&format!(
            "{PODS}?watch=true&resourceVersion={start_version}&labelSelector=app%3Da"
        ))
        .await;
    let mut one = server
        .watch(&format!(
            "{PODS}?watch=1&resourceVersion={start_version}&fieldSelector=metadata.name%3Dq"
        ))
        .await;

    assert_eq!(
        server
            .send_json("POST", PODS, &pod("p", json!({"app": "b"})))
            .await
            .status,
        201
    );
    let modified = server
        .merge_patch(&format!("{PODS}/p"), &json!({"metadata": {"labels": {"app": "a"}}}))
        .await
        .json();
    server
        .merge_patch(&format!("{PODS}/p"), &json!({"metadata": {"labels": {"app": "c"}}}))
        .await;
    let deleted = server.delete(&format!("{PODS}/p")).await.json();
    assert_eq!(server.send_json("POST", PODS, &pod("q", json!({}))).await.status, 201);

    assert_eq!(all.next_named().await, ("ADDED".into(), "p".into()));
    assert_eq!(all.next_named().await, ("MODIFIED".into(), "p".into()));
    assert_eq!(all.next_named().await, ("MODIFIED".into(), "p".into()));
    let deletion = all.next().await.unwrap();
    assert_eq!(deletion["type"], "DELETED");
    assert_eq!(deletion["object"]["kind"], "Pod");
    assert_eq!(deletion["object"]["metadata"]["labels"]["app"], "c", "the last state");
    let deleted_at: i64 = version_of(&deletion["object"]).parse().unwrap();
    assert!(
        deleted_at > version_of(&deleted).parse::<i64>().unwrap(),
        "the deletion's revision"
    );
    assert_eq!(all.next_named().await, ("ADDED".into(), "q".into()));

    // A label selector sees the object enter (ADDED) and leave (DELETED) it.
    let entered = selected.next().await.unwrap();
    assert_eq!(entered["type"], "ADDED");
    assert_eq!(
        entered["object"]["metadata"]["resourceVersion"],
        modified["metadata"]["resourceVersion"]
    );
    assert_eq!(selected.next_named().await, ("DELETED".into(), "p".into()));
    assert_eq!(one.next_named().await, ("ADDED".into(), "q".into()));

    // Without a resourceVersion the watch starts with the objects there are.
    let mut fresh = server.watch(&format!("{PODS}?watch=1&timeoutSeconds=1")).await;
    assert_eq!(fresh.next_named().await, ("ADDED".into(), "q".into()));
    assert_eq!(fresh.next().await, None, "timeoutSeconds ends the watch");

    // After a compaction, the old revision is gone: 410.
    let current: i64 = version_of(&server.get(&format!("{PODS}/q")).await.json())
        .parse()
        .unwrap();
    server.store.compact(current).await;
    let expired = server
        .get(&format!("{PODS}?watch=1&resourceVersion={start_version}"))
        .await;
    assert_eq!(expired.status, 410, "{}", String::from_utf8_lossy(&expired.body));
    let expired = expired.json();
    assert_eq!(expired["kind"], "Status");
    assert_eq!(expired["reason"], "Expired");
    assert_eq!(expired["code"], 410);
    assert!(
        expired["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("too old resource version: {start_version} (")),
        "{expired}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_take_their_contents_along_and_logs_come_from_the_agent() {
    let server = start().await;

    let namespace = server
        .send_json(
            "POST",
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev"}}),
        )
        .await;
    assert_eq!(namespace.status, 201);
    assert_eq!(namespace.json()["status"]["phase"], "Active");
    let in_dev = server
        .send_json("POST", "/api/v1/namespaces/dev/pods", &pod("p", json!({})))
        .await;
    assert_eq!(in_dev.status, 201);
    assert_eq!(in_dev.json()["status"]["phase"], "Pending");
    let generated = server
        .send_json(
            "POST",
            "/apis/apps/v1/namespaces/dev/deployments",
            &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"generateName": "web-"},
                    "spec": deployment("x", 1)["spec"]}),
        )
        .await
        .json();
    let generated_name = generated["metadata"]["name"].as_str().unwrap();
    assert!(
        generated_name.starts_with("web-") && generated_name.len() == 9,
        "{generated_name}"
    );

    let deleted = server.delete("/api/v1/namespaces/dev").await;
    assert_eq!(deleted.status, 200, "{}", deleted.json());
    assert_eq!(server.get("/api/v1/namespaces/dev").await.status, 404);
    assert_eq!(server.get("/api/v1/namespaces/dev/pods/p").await.status, 404);
    let remaining = server.get("/apis/apps/v1/namespaces/dev/deployments").await.json();
    assert_eq!(remaining["items"], json!([]));
    let default = server.delete("/api/v1/namespaces/default").await;
    assert_eq!(default.status, 403);
    assert_eq!(default.json()["reason"], "Forbidden");

    // Logs: the pod's node names its agent, which the server streams from.
    let agent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_port = agent.local_addr().unwrap().port();
    let agent_task = tokio::spawn(async move {
        let (mut socket, _) = agent.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 1024];
        while !request.ends_with(b"\r\n\r\n") {
            let n = socket.read(&mut buffer).await.unwrap();
            assert!(n > 0, "the request ended early");
            request.extend_from_slice(&buffer[..n]);
        }
        socket
            .write_all(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello\n\r\n6\r\nworld\n\r\n0\r\n\r\n",
            )
            .await
            .unwrap();
        String::from_utf8(request).unwrap()
    });
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                      "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                                 "daemonEndpoints": {"kubeletEndpoint": {"Port": agent_port}}}});
    assert_eq!(server.send_json("POST", "/api/v1/nodes", &node).await.status, 201);
    let mut scheduled = pod("p", json!({}));
    scheduled["spec"]["nodeName"] = "n1".into();
    assert_eq!(server.send_json("POST", PODS, &scheduled).await.status, 201);
    let log = server.get(&format!("{PODS}/p/log?container=c&tailLines=5")).await;
    assert_eq!(log.status, 200);
    assert_eq!(log.body, b"hello\nworld\n");
    let request = agent_task.await.unwrap();
    assert!(
        request.starts_with("GET /containerLogs/default/p/c?follow=false&tailLines=5 HTTP/1.1\r\n"),
        "{request}"
    );
    let wrong_container = server.get(&format!("{PODS}/p/log?container=d")).await;
    assert_eq!(wrong_container.status, 400);
    assert!(wrong_container.json()["message"].as_str().unwrap().contains("[c]"));
    assert_eq!(
        server.send_json("POST", PODS, &pod("pending", json!({}))).await.status,
        201
    );
    let unscheduled = server.get(&format!("{PODS}/pending/log")).await;
    assert_eq!(unscheduled.status, 400);
    assert_eq!(unscheduled.json()["message"], "pod \"pending\" is not scheduled yet");
}
