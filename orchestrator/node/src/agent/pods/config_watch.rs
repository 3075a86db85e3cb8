//! Through the API server, the agent watches each ConfigMap and Secret its pods
//! name, one watch per object (`/api/v1/namespaces/<ns>/secrets?fieldSelector=
//! metadata.name=<name>`), as the kubelet does: the Node authorizer lets a node
//! read those and no others, so it cannot watch them all. A watch starts when a
//! live pod first names the object and stops when none does any more; any event
//! (its first list included) marks a change and wakes the pass, which reads again
//! what the pods name.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use berth_api::kinds::config_map::CONFIG_MAP;
use berth_api::kinds::secret::SECRET;
use berth_api::meta::MetaExt;
use berth_api::objects::Pod;
use berth_client::api_source::{ApiSource, reflect_in};
use berth_client::kv::{AbortOnDrop, Event, Record};
use berth_client::reflector::Sink;

use super::config_env::{self, Source};
use super::volumes;

/// One object a pod names: its kind, namespace and name.
pub(crate) type Named = (Source, String, String);

/// Every ConfigMap and Secret the live pods name, in their environments or volumes.
pub(crate) fn named_by<'a>(pods: impl Iterator<Item = &'a Pod>) -> BTreeSet<Named> {
    let mut named = BTreeSet::new();
    for pod in pods.filter(|pod| pod.metadata.deletion_timestamp.is_none()) {
        let namespace = pod.metadata.namespace();
        for (source, name) in config_env::references(pod).into_iter().chain(volumes::references(pod)) {
            named.insert((source, namespace.to_string(), name));
        }
    }
    named
}

/// The per-object watches, kept to what the pods name.
pub(crate) struct ConfigWatches {
    api: ApiSource,
    sink: Arc<Changes>,
    watching: BTreeMap<Named, AbortOnDrop>,
}

impl ConfigWatches {
    pub(crate) fn new(api: ApiSource, changed: Arc<AtomicBool>, wake: Arc<tokio::sync::Notify>) -> Self {
        ConfigWatches {
            api,
            sink: Arc::new(Changes { changed, wake }),
            watching: BTreeMap::new(),
        }
    }

    /// Starts a watch of each object in `named` not watched yet and stops those of
    /// objects no longer named.
    pub(crate) fn follow(&mut self, named: BTreeSet<Named>) {
        self.watching.retain(|object, _| named.contains(object));
        for object in named {
            if self.watching.contains_key(&object) {
                continue;
            }
            let (source, namespace, name) = object.clone();
            let kind = match source {
                Source::ConfigMap => &CONFIG_MAP,
                Source::Secret => &SECRET,
            };
            let watch = reflect_in(
                self.api.clone(),
                kind,
                Some(namespace),
                Some(format!("metadata.name={name}")),
                self.sink.clone(),
            );
            self.watching.insert(object, AbortOnDrop(tokio::spawn(watch)));
        }
    }

    #[cfg(test)]
    pub(crate) fn watched(&self) -> Vec<&Named> {
        self.watching.keys().collect()
    }
}

/// Marks a possible change and wakes the pass.
struct Changes {
    changed: Arc<AtomicBool>,
    wake: Arc<tokio::sync::Notify>,
}

impl Changes {
    fn mark(&self) {
        self.changed.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }
}

impl Sink for Changes {
    fn replace(&self, _records: Vec<Record>, _revision: i64) {
        self.mark();
    }

    fn apply(&self, _events: Vec<Event>, _revision: i64) {
        self.mark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, deleted: bool) -> Pod {
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "team-a"},
            "spec": {
                "containers": [{"name": "c", "image": "i", "env": [
                    {"name": "K", "valueFrom": {"secretKeyRef": {"name": format!("{name}-env"), "key": "k"}}}
                ]}],
                "volumes": [{"name": "v", "configMap": {"name": format!("{name}-files")}}]
            }
        }))
        .unwrap();
        if deleted {
            pod.metadata.deletion_timestamp = Some(berth_api::time::from_system_time(std::time::SystemTime::now()));
        }
        pod
    }

    fn named(source: Source, name: &str) -> Named {
        (source, "team-a".to_string(), name.to_string())
    }

    #[test]
    fn the_live_pods_name_their_environments_and_volumes_objects() {
        let pods = [pod("web", false), pod("old", true)];
        assert_eq!(
            named_by(pods.iter()),
            BTreeSet::from([named(Source::Secret, "web-env"), named(Source::ConfigMap, "web-files")]),
            "a pod being deleted names nothing more"
        );
    }

    #[tokio::test]
    async fn watches_follow_what_is_named() {
        // Nothing listens there: the watches only retry, which is enough to count them.
        let http = berth_client::http_client::HttpClient::new(vec!["http://127.0.0.1:9".to_string()]);
        let api = ApiSource::new(Arc::new(http));
        let mut watches = ConfigWatches::new(api, Default::default(), Default::default());
        watches.follow(named_by([pod("web", false), pod("db", false)].iter()));
        assert_eq!(watches.watched().len(), 4);
        watches.follow(named_by([pod("db", false)].iter()));
        assert_eq!(
            watches.watched(),
            [&named(Source::ConfigMap, "db-files"), &named(Source::Secret, "db-env")]
        );
    }
}
