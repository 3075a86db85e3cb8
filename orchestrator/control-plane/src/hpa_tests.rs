//! The autoscaler's targets against a real store: a StatefulSet's scale is read and
//! set through the same fenced path as a Deployment's.

use berth_api::objects::{StatefulSet, StatefulSetSpec};
use berth_api::validation::parse_value;
use berth_controller_runtime::{Caches, Context};
use berth_controllers::hpa::{Op, with_target};

use super::claim;
use crate::test_support::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateful_set_is_scaled_like_a_deployment() {
    let store = berth_client::testing::store().await;
    let fence = claim(&store.kv, 1, 1, "test-leader").await.unwrap();
    let ctx = Context {
        registry: store.registry(),
        caches: Caches::start(&store.kv),
        fence,
        events: Default::default(),
        admission: Default::default(),
    };
    let value = serde_json::json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"serviceName": "web", "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "img:1"}]}}}});
    let set = parse_value(value).unwrap().object.downcast::<StatefulSet>().unwrap();
    ctx.registry.create(&set, None).await.unwrap();
    ctx.caches.wait_synced().await;
    let read = async |op| with_target(&ctx, Some("apps/v1"), "StatefulSet", "default", "web", op).await;
    let scale = eventually("the set in the cache", async || read(Op::Read).await.ok()).await;
    assert_eq!(scale.replicas, 2);
    assert_eq!(scale.selector.match_labels.as_ref().unwrap()["app"], "web");

    read(Op::Set(5)).await.unwrap();
    let stored = ctx
        .registry
        .get::<StatefulSetSpec>("default", "web")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.spec.replicas, Some(5));
    let missing = with_target(&ctx, Some("apps/v1"), "StatefulSet", "default", "db", Op::Read).await;
    assert!(matches!(missing, Err(Ok(why)) if why.contains("\"db\" not found")));
}
