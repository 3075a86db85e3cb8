//! ClusterRole aggregation against a real store: a role labelled to aggregate into
//! `view` reaches `view`, then `edit` and `admin` (which aggregate `view` and
//! `edit`), and leaves them again when its label goes.

use std::time::Duration;

use berth_api::kinds::Object;
use berth_api::rbac::bootstrap::{self, rule};
use berth_api::rbac::{ClusterRole, PolicyRule};
use berth_controller_runtime::{Caches, Context};

use super::claim;
use crate::test_support::eventually;

fn has_widgets(role: &ClusterRole) -> bool {
    let widgets = vec!["widgets".to_string()];
    role.rules
        .iter()
        .flatten()
        .any(|r: &PolicyRule| r.resources.as_ref() == Some(&widgets))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_labelled_role_is_aggregated_into_view_edit_and_admin() {
    let store = berth_client::testing::store().await;
    let fence = claim(&store.kv, 1, 1, "test-leader").await.unwrap();
    let ctx = Context {
        registry: store.registry(),
        caches: Caches::start(&store.kv),
        fence,
        events: Default::default(),
        admission: Default::default(),
    };
    for role in bootstrap::cluster_roles() {
        ctx.registry.create(&Object::new(role), None).await.unwrap();
    }
    let loop_ctx = ctx.clone();
    let running = tokio::spawn(berth_controllers::cluster_role_aggregation::run(
        loop_ctx,
        Duration::from_secs(30),
    ));
    let mut widgets = ClusterRole {
        metadata: berth_api::meta::ObjectMeta {
            name: Some("widgets-view".into()),
            labels: Some([(bootstrap::AGGREGATE_TO_VIEW.to_string(), "true".to_string())].into()),
            ..Default::default()
        },
        rules: Some(vec![rule(&["get", "list"], &["example.com"], &["widgets"])]),
        aggregation_rule: None,
    };
    let created = ctx.registry.create(&Object::new(widgets.clone()), None).await.unwrap();
    let read = async |name: &str| -> ClusterRole {
        let key = berth_api::kinds::cluster_role::CLUSTER_ROLE.key("", name);
        let record = store.kv.get(&key).await.unwrap().unwrap();
        serde_json::from_slice(&record.value).unwrap()
    };
    for name in ["view", "edit", "admin"] {
        eventually(&format!("{name} aggregates widgets-view"), async || {
            has_widgets(&read(name).await).then_some(())
        })
        .await;
    }
    assert!(!has_widgets(&read("cluster-admin").await));

    widgets.metadata.labels = None;
    widgets.metadata.resource_version = created.metadata().resource_version.clone();
    ctx.registry.update(&Object::new(widgets), None).await.unwrap();
    for name in ["view", "edit", "admin"] {
        eventually(&format!("{name} drops widgets-view"), async || {
            (!has_widgets(&read(name).await)).then_some(())
        })
        .await;
    }
    running.abort();
}
