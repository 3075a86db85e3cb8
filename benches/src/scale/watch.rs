//! The pods of the run as a watch saw them: when each appeared, was bound to a node,
//! and was reported Running and Ready. One watch, on a connection of its own,
//! resumed from the last resourceVersion when the server ends it; a revision the
//! server no longer has (410 Gone) is followed by a list, as client-go's reflector
//! lists again, and the watch goes on from the list's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use hyper::Method;
use serde_json::Value;

use crate::api::http::{Connection, next_data};

/// When the watch saw each step of one pod.
#[derive(Clone, Copy, Debug, Default)]
pub struct PodTimes {
    pub created: Option<Instant>,
    pub bound: Option<Instant>,
    pub running: Option<Instant>,
}

#[derive(Default)]
pub struct Seen {
    pub pods: HashMap<String, PodTimes>,
    /// Watch events read.
    pub events: u64,
}

impl Seen {
    /// Takes one watch event (a line of the stream); its resourceVersion.
    pub fn take(&mut self, line: &[u8], at: Instant) -> Option<String> {
        let event: Value = serde_json::from_slice(line).ok()?;
        let object = &event["object"];
        let version = object["metadata"]["resourceVersion"].as_str().map(str::to_owned);
        if event["type"] == "BOOKMARK" || event["type"] == "ERROR" {
            return version;
        }
        self.events += 1;
        self.observe(object, at);
        version
    }

    /// Notes what `object` (a pod) says of its steps, seen at `at`.
    fn observe(&mut self, object: &Value, at: Instant) -> Option<()> {
        let name = object["metadata"]["name"].as_str()?.to_owned();
        let times = self.pods.entry(name).or_default();
        times.created.get_or_insert(at);
        if object["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty()) {
            times.bound.get_or_insert(at);
        }
        let ready = (object["status"]["conditions"].as_array().into_iter().flatten())
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        if object["status"]["phase"] == "Running" && ready {
            times.running.get_or_insert(at);
        }
        Some(())
    }

    pub fn running(&self) -> usize {
        self.pods.values().filter(|t| t.running.is_some()).count()
    }

    /// The pods whose names start with `prefix` seen Running and Ready.
    pub fn running_with_prefix(&self, prefix: &str) -> usize {
        (self.pods.iter())
            .filter(|(name, t)| name.starts_with(prefix) && t.running.is_some())
            .count()
    }

    /// Create → Running and Ready of the pods whose names start with `prefix`.
    pub fn startups(&self, prefix: &str) -> Vec<std::time::Duration> {
        (self.pods.iter())
            .filter(|(name, _)| name.starts_with(prefix))
            .filter_map(|(_, t)| Some(t.running?.saturating_duration_since(t.created?)))
            .collect()
    }

    pub fn bound(&self) -> usize {
        self.pods.values().filter(|t| t.bound.is_some()).count()
    }
}

/// A watch answered 410 Gone: its revision is no longer served.
#[derive(Debug)]
struct Expired;

impl std::fmt::Display for Expired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the watch answered 410 Gone")
    }
}

impl std::error::Error for Expired {}

/// Watches the pods of `namespace` at `authority` from `version` until dropped.
pub async fn follow(authority: String, namespace: String, version: String, seen: Arc<Mutex<Seen>>) {
    let mut version = version;
    loop {
        let Err(error) = follow_once(&authority, &namespace, &mut version, &seen).await else {
            continue;
        };
        if error.downcast_ref::<Expired>().is_some() {
            match list(&authority, &namespace, &seen).await {
                Ok(listed) => {
                    eprintln!("the pods' watch: revision {version} is gone; listed again at {listed}");
                    version = listed;
                    continue;
                }
                Err(error) => eprintln!("the pods' watch: revision {version} is gone, and listing failed: {error:#}"),
            }
        } else {
            eprintln!("the pods' watch ended ({error:#}); resuming from {version}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Lists the pods of `namespace` into `seen`; the list's resourceVersion.
async fn list(authority: &str, namespace: &str, seen: &Mutex<Seen>) -> anyhow::Result<String> {
    let mut connection = Connection::open(authority).await?;
    let body = (connection.get(&format!("/api/v1/namespaces/{namespace}/pods")).await?).expect(200)?;
    let at = Instant::now();
    let list: Value = serde_json::from_slice(&body).context("the pods' list")?;
    let mut seen = seen.lock().expect("seen lock");
    for pod in list["items"].as_array().into_iter().flatten() {
        seen.observe(pod, at);
    }
    (list["metadata"]["resourceVersion"].as_str().map(str::to_owned)).context("the pods' list has no resourceVersion")
}

async fn follow_once(authority: &str, namespace: &str, version: &mut String, seen: &Mutex<Seen>) -> anyhow::Result<()> {
    let mut connection = Connection::open(authority).await?;
    let path =
        format!("/api/v1/namespaces/{namespace}/pods?watch=true&allowWatchBookmarks=true&resourceVersion={version}");
    let response = connection.send(Method::GET, &path, None).await?;
    if response.status() == 410 {
        return Err(Expired.into());
    }
    anyhow::ensure!(response.status() == 200, "the watch answered {}", response.status());
    let mut body = response.into_body();
    let mut buffer = Vec::new();
    while let Some(data) = next_data(&mut body).await.context("reading the watch")? {
        let at = Instant::now();
        buffer.extend_from_slice(&data);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            if let Some(v) = seen.lock().expect("seen lock").take(&line, at) {
                *version = v;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::http::scripted;

    #[tokio::test]
    async fn a_revision_the_server_no_longer_has_is_followed_by_a_list() {
        let pod = |name: &str, node: &str, version: &str| serde_json::json!({"metadata": {"name": name, "resourceVersion": version}, "spec": {"nodeName": node}});
        let list = serde_json::json!({"metadata": {"resourceVersion": "9"}, "items": [pod("a", "n1", "8")]});
        let event = serde_json::json!({"type": "ADDED", "object": pod("b", "", "10")});
        // The watch from "5" answered 410, the list (one pod, bound, at "9"), and the
        // watch from the list's revision with one event.
        let (authority, server) = scripted(vec![
            (410, "{}".into()),
            (200, list.to_string()),
            (200, format!("{event}\n")),
        ])
        .await;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let watch = tokio::spawn(follow(authority, "ns".into(), "5".into(), seen.clone()));
        let lines = tokio::time::timeout(std::time::Duration::from_secs(10), server)
            .await
            .expect("the watch never listed and watched again")
            .unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while seen.lock().unwrap().events == 0 {
            assert!(Instant::now() < deadline, "the watch's event was never read");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        watch.abort();
        assert_eq!(
            lines,
            [
                "GET /api/v1/namespaces/ns/pods?watch=true&allowWatchBookmarks=true&resourceVersion=5 HTTP/1.1",
                "GET /api/v1/namespaces/ns/pods HTTP/1.1",
                "GET /api/v1/namespaces/ns/pods?watch=true&allowWatchBookmarks=true&resourceVersion=9 HTTP/1.1",
            ]
        );
        let seen = seen.lock().unwrap();
        assert_eq!(seen.bound(), 1, "the listed pod, bound");
        assert!(seen.pods.contains_key("a"));
        assert_eq!(seen.events, 1, "a listed pod is not a watch event");
    }
}
