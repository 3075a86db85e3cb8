//! ConfigMaps through the API: stored as sent, keys checked, immutable ones keep
//! their data, and the table kubectl prints.

use serde_json::json;

use super::*;

const CONFIG_MAPS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_maps_keep_their_data_and_immutable_ones_refuse_changes() {
    let server = start().await;
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
        "immutable": true, "data": {"mode": "fast"}, "binaryData": {"blob": "AAE="}});
    let created = server.send_json("POST", CONFIG_MAPS, &config).await;
    assert_eq!(created.status, 201, "{}", created.json());
    let stored = server.get(&format!("{CONFIG_MAPS}/settings")).await.json();
    assert_eq!(stored["data"], json!({"mode": "fast"}));
    assert_eq!(stored["binaryData"], json!({"blob": "AAE="}));

    let changed = server
        .merge_patch(&format!("{CONFIG_MAPS}/settings"), &json!({"data": {"mode": "slow"}}))
        .await;
    assert_eq!(changed.status, 422, "{}", changed.json());
    assert_eq!(
        changed.json()["message"],
        "ConfigMap \"settings\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
    let thawed = server
        .merge_patch(&format!("{CONFIG_MAPS}/settings"), &json!({"immutable": false}))
        .await;
    assert_eq!(thawed.status, 422, "{}", thawed.json());
    let relabelled = server
        .merge_patch(
            &format!("{CONFIG_MAPS}/settings"),
            &json!({"metadata": {"labels": {"tier": "web"}}}),
        )
        .await;
    assert_eq!(relabelled.status, 200, "metadata stays writable: {}", relabelled.json());

    let twice = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "twice"},
        "data": {"k": "v"}, "binaryData": {"k": "AA=="}});
    let refused = server.send_json("POST", CONFIG_MAPS, &twice).await;
    assert_eq!(refused.status, 422, "{}", refused.json());
    assert_eq!(refused.json()["details"]["causes"][0]["field"], "binaryData[k]");

    let open = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "open"},
        "data": {"a": "1", "b": "2"}});
    assert_eq!(server.send_json("POST", CONFIG_MAPS, &open).await.status, 201);
    let changed = server
        .merge_patch(&format!("{CONFIG_MAPS}/open"), &json!({"data": {"a": "3"}}))
        .await;
    assert_eq!(changed.status, 200, "{}", changed.json());
    assert_eq!(changed.json()["data"], json!({"a": "3", "b": "2"}));
}
