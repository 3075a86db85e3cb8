//! Deleting a pod as the API server does (`berth_api::pod_deletion`), for the
//! controllers, which write the store directly: a pod that runs somewhere is marked
//! Terminating and its agent removes it once its containers stopped; the rest go at
//! once. A ReplicaSet's scale-down and the garbage collector thus give pods their
//! grace, as in Kubernetes.

use std::time::SystemTime;

use berth_api::meta::MetaExt;
use berth_api::objects::{NodeSpec, Pod, PodSpec, key};
use berth_api::pod_deletion::{Deletion, Request, decide};

use crate::kv::{Fence, KvError, Result};
use crate::registry::Registry;

/// Deletes the pod `namespace/name` with its own grace (`grace_seconds` None) or the
/// one given, as a DELETE with those options would; returns the pod as marked, as
/// deleted, or as it stays (already terminating). NotFound when there is none.
pub async fn delete_pod(
    registry: &Registry,
    namespace: &str,
    name: &str,
    grace_seconds: Option<i64>,
    fence: Option<&Fence>,
) -> Result<Pod> {
    loop {
        let Some(pod) = registry.get::<PodSpec>(namespace, name).await? else {
            return Err(KvError::NotFound);
        };
        let node = pod.spec.node_name.as_deref().unwrap_or("");
        let node_gone = !node.is_empty() && registry.kv.get(&key::<NodeSpec>("", node)).await?.is_none();
        let request = Request {
            grace_seconds,
            node_gone,
            now: SystemTime::now(),
        };
        let version = pod.metadata.resource_version().parse::<i64>().ok();
        let written = match decide(&pod, request) {
            Deletion::Pending => return Ok(pod),
            Deletion::Now => registry.delete::<PodSpec>(namespace, name, version, fence).await,
            Deletion::Mark { at, grace_seconds } => {
                let mut marked = pod.clone();
                let first = marked.metadata.deletion_timestamp.is_none();
                marked.metadata.deletion_timestamp = Some(at);
                marked.metadata.deletion_grace_period_seconds = Some(grace_seconds);
                if first {
                    marked.metadata.generation = Some(marked.metadata.generation() + 1);
                }
                registry.update(&marked, fence).await
            }
        };
        match written {
            Err(KvError::Conflict { .. }) => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::store;
    use berth_api::meta::ObjectMeta;
    use berth_api::objects::{Node, Resource};

    fn pod(name: &str, node: Option<&str>) -> Pod {
        let mut pod = Resource::new(
            ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            PodSpec::default(),
        );
        pod.spec.node_name = node.map(str::to_string);
        pod.spec.termination_grace_period_seconds = Some(20);
        pod
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_running_pod_is_marked_and_stays_the_rest_go_at_once() {
        let store = store().await;
        let registry = Registry::new(store.kv.clone());
        let node = Resource::new(
            ObjectMeta {
                name: Some("n1".into()),
                ..Default::default()
            },
            NodeSpec::default(),
        );
        let _: Node = registry.create(&node, None).await.unwrap();
        for pod in [
            pod("running", Some("n1")),
            pod("pending", None),
            pod("orphan", Some("gone")),
        ] {
            registry.create(&pod, None).await.unwrap();
        }

        let marked = delete_pod(&registry, "default", "running", None, None).await.unwrap();
        assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(20));
        let stored = registry.get::<PodSpec>("default", "running").await.unwrap().unwrap();
        assert!(
            stored.metadata.is_deleting(),
            "it stays, marked, for its agent to finish"
        );
        assert_eq!(stored.metadata.generation(), 2);
        let again = delete_pod(&registry, "default", "running", None, None).await.unwrap();
        assert_eq!(again.metadata.deletion_timestamp, stored.metadata.deletion_timestamp);

        for name in ["pending", "orphan"] {
            delete_pod(&registry, "default", name, None, None).await.unwrap();
            assert!(
                registry.get::<PodSpec>("default", name).await.unwrap().is_none(),
                "{name}"
            );
        }
        delete_pod(&registry, "default", "running", Some(0), None)
            .await
            .unwrap();
        assert!(registry.get::<PodSpec>("default", "running").await.unwrap().is_none());
        assert!(matches!(
            delete_pod(&registry, "default", "running", None, None).await,
            Err(KvError::NotFound)
        ));
    }
}
