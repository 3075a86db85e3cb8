//! The pods of the run as a watch saw them: when each appeared, was bound to a node,
//! and was reported Running and Ready. One watch, on a connection of its own,
//! resumed from the last resourceVersion when the server ends it.

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
        version
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

/// Watches the pods of `namespace` at `authority` from `version` until dropped.
pub async fn follow(authority: String, namespace: String, version: String, seen: Arc<Mutex<Seen>>) {
    let mut version = version;
    loop {
        if let Err(error) = follow_once(&authority, &namespace, &mut version, &seen).await {
            eprintln!("the pods' watch ended ({error:#}); resuming from {version}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

async fn follow_once(authority: &str, namespace: &str, version: &mut String, seen: &Mutex<Seen>) -> anyhow::Result<()> {
    let mut connection = Connection::open(authority).await?;
    let path =
        format!("/api/v1/namespaces/{namespace}/pods?watch=true&allowWatchBookmarks=true&resourceVersion={version}");
    let response = connection.send(Method::GET, &path, None).await?;
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
