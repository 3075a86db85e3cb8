//! `get -w`: follows a collection's watch stream from the list's resourceVersion
//! and hands each changed object to the printer.
//!
//! ```text
//!  list (rv N) ──► watch from N ──events──► print; N := event's rv
//!                      │  ▲
//!        stream ended  │  │ resume from N (failing over to another server)
//!                      ▼  │
//!        410 Gone ──► relist: print what changed while away; N := list's rv
//! ```
//!
//! A watch resumed from N never repeats or skips an event (the server's
//! guarantee); after a relist, objects are compared by resourceVersion with the
//! last ones seen, so each change is printed once.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::client::{ApiClient, list_items, list_resource_version, with_kind};
use super::error::{CliError, Status};
use super::kinds::KindInfo;

/// The pause before resuming a watch the server ended, so that a server which
/// ends every watch at once is not asked again in a tight loop.
const RESUME_DELAY: Duration = Duration::from_millis(500);

/// What is watched.
pub struct WatchScope<'a> {
    pub kind: KindInfo,
    /// `None`: every namespace.
    pub namespace: Option<&'a str>,
    /// A label selector, or empty.
    pub selector: &'a str,
    /// Only these objects, or (empty) all.
    pub names: &'a [String],
}

impl WatchScope<'_> {
    fn wants(&self, object: &Value) -> bool {
        self.names.is_empty() || self.names.iter().any(|n| Some(n.as_str()) == name(object))
    }

    fn list_url(&self) -> String {
        self.kind
            .collection_url(self.namespace, &[("labelSelector", self.selector)])
    }

    fn watch_url(&self, resource_version: &str) -> String {
        self.kind.collection_url(
            self.namespace,
            &[
                ("watch", "1"),
                ("resourceVersion", resource_version),
                ("allowWatchBookmarks", "true"),
                ("labelSelector", self.selector),
            ],
        )
    }
}

#[derive(Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    type_: String,
    #[serde(default)]
    object: Value,
}

fn name(object: &Value) -> Option<&str> {
    object.pointer("/metadata/name")?.as_str()
}

fn resource_version(object: &Value) -> Option<&str> {
    object.pointer("/metadata/resourceVersion")?.as_str()
}

/// (namespace, name): an object's identity in the last-seen map.
fn identity(object: &Value) -> (String, String) {
    let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str);
    (
        namespace.unwrap_or_default().to_string(),
        name(object).unwrap_or_default().to_string(),
    )
}

/// Follows the watch until the user stops it or it fails for good.
pub async fn follow(
    client: &ApiClient,
    scope: &WatchScope<'_>,
    initial: Vec<Value>,
    mut from: String,
    print: &mut dyn FnMut(&Value) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let mut seen: BTreeMap<(String, String), Value> = initial.into_iter().map(|o| (identity(&o), o)).collect();
    loop {
        let mut stream = match client.stream(&scope.watch_url(&from)).await {
            Ok(stream) => stream,
            Err(e) if e.is_gone() => {
                from = relist(client, scope, &mut seen, print).await?;
                continue;
            }
            Err(e) => return Err(e),
        };
        // Read events until the stream ends or breaks; then resume from `from`.
        while let Ok(Some(line)) = stream.next_line().await {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let event: WatchEvent = serde_json::from_slice(&line).map_err(|e| {
                CliError::message(format!(
                    "the watch sent something that is not an event ({e}): {}",
                    String::from_utf8_lossy(&line).chars().take(200).collect::<String>()
                ))
            })?;
            match event.type_.as_str() {
                "ADDED" | "MODIFIED" | "DELETED" => {
                    let object = with_kind(&scope.kind, event.object);
                    if let Some(rv) = resource_version(&object) {
                        from = rv.to_string();
                    }
                    if !scope.wants(&object) {
                        continue;
                    }
                    if event.type_ == "DELETED" {
                        seen.remove(&identity(&object));
                    } else {
                        seen.insert(identity(&object), object.clone());
                    }
                    print(&object)?;
                }
                "BOOKMARK" => {
                    if let Some(rv) = resource_version(&event.object) {
                        from = rv.to_string();
                    }
                }
                "ERROR" => {
                    let status = Status::from_response(500, event.object.to_string().as_bytes());
                    let is_gone = status.code == 410 || matches!(status.reason.as_str(), "Gone" | "Expired");
                    if !is_gone {
                        return Err(CliError::Server(status));
                    }
                    from = relist(client, scope, &mut seen, print).await?;
                    break;
                }
                _ => {} // a type from a newer server: nothing to print
            }
        }
        tokio::time::sleep(RESUME_DELAY).await;
    }
}

/// Lists again after the watch's history was compacted away; prints the objects
/// that changed or disappeared since they were last seen; returns the list's
/// resourceVersion to watch from.
async fn relist(
    client: &ApiClient,
    scope: &WatchScope<'_>,
    seen: &mut BTreeMap<(String, String), Value>,
    print: &mut dyn FnMut(&Value) -> Result<(), CliError>,
) -> Result<String, CliError> {
    let list = client.get(&scope.list_url()).await?;
    let fresh: BTreeMap<(String, String), Value> = list_items(&scope.kind, &list)
        .into_iter()
        .filter(|o| scope.wants(o))
        .map(|o| (identity(&o), o))
        .collect();
    for changed in changes(seen, &fresh) {
        print(changed)?;
    }
    *seen = fresh;
    Ok(list_resource_version(&list))
}

/// What differs between the objects last seen and a fresh list: new or changed
/// objects (their new state), then vanished ones (their last state).
fn changes<'a>(
    seen: &'a BTreeMap<(String, String), Value>,
    fresh: &'a BTreeMap<(String, String), Value>,
) -> Vec<&'a Value> {
    let changed = fresh
        .iter()
        .filter(|(key, object)| seen.get(*key).map(resource_version) != Some(resource_version(object)))
        .map(|(_, object)| object);
    let vanished = seen
        .iter()
        .filter(|(key, _)| !fresh.contains_key(*key))
        .map(|(_, object)| object);
    changed.chain(vanished).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kinds::lookup;

    fn pod(name: &str, rv: &str) -> Value {
        json!({"kind": "Pod", "metadata": {"name": name, "namespace": "default", "resourceVersion": rv}})
    }

    #[test]
    fn a_relist_reports_each_change_once() {
        let index =
            |objects: Vec<Value>| -> BTreeMap<_, _> { objects.into_iter().map(|o| (identity(&o), o)).collect() };
        let seen = index(vec![pod("same", "1"), pod("changed", "2"), pod("gone", "3")]);
        let fresh = index(vec![pod("same", "1"), pod("changed", "7"), pod("new", "8")]);
        let names: Vec<&str> = changes(&seen, &fresh).into_iter().filter_map(name).collect();
        assert_eq!(names, ["changed", "new", "gone"]);
    }

    #[test]
    fn watch_urls() {
        let names = ["web".to_string()];
        let scope = WatchScope {
            kind: lookup("deploy").unwrap(),
            namespace: Some("shop"),
            selector: "app=web",
            names: &names,
        };
        assert_eq!(
            scope.watch_url("42"),
            "/apis/apps/v1/namespaces/shop/deployments?watch=1&resourceVersion=42&allowWatchBookmarks=true\
             &labelSelector=app%3Dweb"
        );
        assert!(scope.wants(&pod("web", "1")));
        assert!(!scope.wants(&pod("api", "1")));
    }
}
