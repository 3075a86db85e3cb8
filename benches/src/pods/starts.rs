//! Pod start latency through berth's API: a pod created (POST) until a watch of its
//! namespace shows it Running, one pod at a time so that no pod waits for another.
//!
//! ```text
//!  GET …/pods?limit=1 ──► resourceVersion R
//!  GET …/pods?watch=true&resourceVersion=R (its own connection; a task reads it and
//!        notes the first time each pod's status.phase is Running)
//!  pod i: sent_at ──► POST (201) ──► the watch saw it Running at running_at
//!         latency(i) = running_at − sent_at   (scheduling, the agent's start, its status write)
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hyper::Method;
use hyper::body::Bytes;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::api::http::{Connection, next_data};

pub const NAMESPACE: &str = "bench-pods";

pub fn collection_path() -> String {
    format!("/api/v1/namespaces/{NAMESPACE}/pods")
}

pub fn pod_name(index: u64) -> String {
    format!("p-{index:05}")
}

/// One container, `sleep 3600` in the busybox image, pulled once and cached after.
pub fn pod(name: &str, image: &str, runtime_class: Option<&str>) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "bench-pods"}},
        "spec": {
            "containers": [{
                "name": "main",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"],
            }],
            "terminationGracePeriodSeconds": 1,
        },
    });
    if let Some(class) = runtime_class {
        pod["spec"]["runtimeClassName"] = json!(class);
    }
    pod
}

pub async fn create_namespace(connection: &mut Connection) -> anyhow::Result<()> {
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    connection
        .request(
            Method::POST,
            "/api/v1/namespaces",
            Some(("application/json", Bytes::from(body.to_string()))),
        )
        .await?
        .expect(201)?;
    Ok(())
}

pub async fn create_pod(connection: &mut Connection, pod: &Value) -> anyhow::Result<()> {
    connection
        .request(
            Method::POST,
            &collection_path(),
            Some(("application/json", Bytes::from(pod.to_string()))),
        )
        .await?
        .expect(201)?;
    Ok(())
}

/// The names of the namespace's pods now.
pub async fn pod_names(connection: &mut Connection) -> anyhow::Result<Vec<String>> {
    let body = connection.get(&collection_path()).await?.expect(200)?;
    let list: Value = serde_json::from_slice(&body).context("the pod list is not JSON")?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|pod| pod["metadata"]["name"].as_str().map(str::to_owned))
        .collect())
}

/// A pod's status as JSON, for a failure's message.
pub async fn pod_status(connection: &mut Connection, name: &str) -> String {
    match connection.get(&format!("{}/{name}", collection_path())).await {
        Ok(answer) => serde_json::from_slice::<Value>(&answer.body)
            .map(|pod| pod["status"].to_string())
            .unwrap_or_else(|_| String::from_utf8_lossy(&answer.body).into_owned()),
        Err(error) => format!("{error:#}"),
    }
}

/// When each pod of the namespace was first seen Running, fed by a watch.
pub struct RunningWatch {
    running_at: Arc<Mutex<HashMap<String, Instant>>>,
    changed: Arc<Notify>,
    /// Why the watch ended, if it did.
    ended: Arc<Mutex<Option<String>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for RunningWatch {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl RunningWatch {
    /// Opens the watch from the namespace's current revision.
    pub async fn open(authority: &str) -> anyhow::Result<RunningWatch> {
        let mut connection = Connection::open(authority).await?;
        let body = connection
            .get(&format!("{}?limit=1", collection_path()))
            .await?
            .expect(200)?;
        let list: Value = serde_json::from_slice(&body)?;
        let revision = list["metadata"]["resourceVersion"]
            .as_str()
            .context("the pod list has no resourceVersion")?
            .to_owned();
        let path = format!("{}?watch=true&resourceVersion={revision}", collection_path());
        let response = connection.send(Method::GET, &path, None).await?;
        let status = response.status().as_u16();
        if status != 200 {
            bail!("the watch was answered {status}");
        }
        let mut body = response.into_body();
        let running_at = Arc::new(Mutex::new(HashMap::new()));
        let changed = Arc::new(Notify::new());
        let ended = Arc::new(Mutex::new(None));
        let (seen, notify, why_ended) = (running_at.clone(), changed.clone(), ended.clone());
        let reader = tokio::spawn(async move {
            // Held so the connection lives as long as the watch.
            let _connection = connection;
            let mut pending = Vec::new();
            let why = loop {
                let data = match next_data(&mut body).await {
                    Ok(Some(data)) => data,
                    Ok(None) => break "the server ended the watch".to_owned(),
                    Err(error) => break format!("{error:#}"),
                };
                let arrived_at = Instant::now();
                pending.extend_from_slice(&data);
                while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    if let Some(name) = running_pod(&line) {
                        seen.lock().unwrap().entry(name).or_insert(arrived_at);
                        notify.notify_waiters();
                    }
                }
            };
            *why_ended.lock().unwrap() = Some(why);
            notify.notify_waiters();
        });
        Ok(RunningWatch {
            running_at,
            changed,
            ended,
            reader,
        })
    }

    /// When `name` was first seen Running; waits at most `timeout` for it.
    pub async fn wait_running(&self, name: &str, timeout: Duration) -> anyhow::Result<Instant> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            if let Some(at) = self.running_at.lock().unwrap().get(name) {
                return Ok(*at);
            }
            if let Some(why) = self.ended.lock().unwrap().as_ref() {
                bail!("the watch ended before {name} ran: {why}");
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                bail!("pod {name} was not Running after {timeout:?}");
            }
        }
    }
}

/// The pod's name, if the watch event is of a Running pod.
fn running_pod(line: &[u8]) -> Option<String> {
    let event: Value = serde_json::from_slice(line).ok()?;
    let object = &event["object"];
    let is_running =
        matches!(event["type"].as_str(), Some("ADDED" | "MODIFIED")) && object["status"]["phase"] == "Running";
    is_running.then(|| object["metadata"]["name"].as_str().map(str::to_owned))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_events_of_running_pods_count() {
        let event = |kind: &str, phase: &str| {
            json!({"type": kind, "object": {"metadata": {"name": "p-00001"}, "status": {"phase": phase}}}).to_string()
        };
        assert_eq!(
            running_pod(event("MODIFIED", "Running").as_bytes()).as_deref(),
            Some("p-00001")
        );
        assert_eq!(
            running_pod(event("ADDED", "Running").as_bytes()).as_deref(),
            Some("p-00001")
        );
        assert_eq!(running_pod(event("MODIFIED", "Pending").as_bytes()), None);
        assert_eq!(running_pod(event("DELETED", "Running").as_bytes()), None);
        assert_eq!(running_pod(b"not json"), None);
    }

    #[test]
    fn a_runtime_class_is_sent_only_when_asked_for() {
        assert!(pod("p", "img", None)["spec"].get("runtimeClassName").is_none());
        assert_eq!(pod("p", "img", Some("process"))["spec"]["runtimeClassName"], "process");
    }
}
