//! Graceful pod deletion over HTTP: a DELETE marks a running pod Terminating and
//! leaves it; a second may only shorten the grace; grace 0 and the agent's final
//! delete (grace 0, a uid precondition) remove it.

use serde_json::{Value, json};

use super::{PODS, Server, pod, start};

async fn scheduled(server: &Server, name: &str, grace: Option<i64>) -> Value {
    let mut pod = pod(name, json!({}));
    pod["spec"]["nodeName"] = "n1".into();
    if let Some(grace) = grace {
        pod["spec"]["terminationGracePeriodSeconds"] = grace.into();
    }
    let created = server.send_json("POST", PODS, &pod).await;
    assert_eq!(created.status, 201, "{}", created.json());
    created.json()
}

async fn with_node() -> Server {
    let server = start().await;
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}});
    assert_eq!(server.send_json("POST", "/api/v1/nodes", &node).await.status, 201);
    server
}

fn seconds_between(from: &Value, to: &Value) -> i64 {
    let at = |v: &Value| berth_api::time::parse_rfc3339(v.as_str().unwrap()).unwrap();
    let (from, to) = (at(from), at(to));
    to.duration_since(from)
        .map_or_else(|e| -(e.duration().as_secs() as i64), |d| d.as_secs() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_pod_is_marked_terminating_and_stays_until_a_delete_with_grace_zero() {
    let server = with_node().await;
    let created = scheduled(&server, "web", Some(45)).await;
    let path = format!("{PODS}/web");

    let first = server.delete(&path).await;
    assert_eq!(first.status, 200, "{}", first.json());
    let marked = first.json();
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 45);
    let deadline = &marked["metadata"]["deletionTimestamp"];
    let until = seconds_between(&created["metadata"]["creationTimestamp"], deadline);
    assert!(
        (44..=50).contains(&until),
        "deadline {deadline} is now + the pod's grace"
    );
    assert_eq!(
        marked["metadata"]["generation"], 2,
        "a graceful deletion is a new generation"
    );
    let stored = server.get(&path).await;
    assert_eq!(stored.status, 200, "the pod stays while it terminates");
    assert_eq!(stored.json()["metadata"]["deletionTimestamp"], *deadline);

    let longer = server
        .send_json(
            "DELETE",
            &path,
            &json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 90}),
        )
        .await;
    assert_eq!(longer.status, 200);
    assert_eq!(
        longer.json()["metadata"]["deletionGracePeriodSeconds"],
        45,
        "only shortened"
    );
    assert_eq!(longer.json()["metadata"]["deletionTimestamp"], *deadline);

    let shorter = server.delete(&format!("{path}?gracePeriodSeconds=5")).await;
    assert_eq!(shorter.status, 200);
    assert_eq!(shorter.json()["metadata"]["deletionGracePeriodSeconds"], 5);
    assert_eq!(
        seconds_between(&shorter.json()["metadata"]["deletionTimestamp"], deadline),
        40,
        "the grace counts from the first delete"
    );

    let forced = server.delete(&format!("{path}?gracePeriodSeconds=0")).await;
    assert_eq!(forced.status, 200, "{}", forced.json());
    assert_eq!(server.get(&path).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_unscheduled_and_orphaned_pods_go_at_once() {
    let server = with_node().await;
    scheduled(&server, "forced", None).await;
    // As `kubectl delete --force --grace-period=0` sends it.
    let body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0, "propagationPolicy": "Background"});
    let forced = server.send_json("DELETE", &format!("{PODS}/forced"), &body).await;
    assert_eq!(forced.status, 200, "{}", forced.json());
    assert_eq!(server.get(&format!("{PODS}/forced")).await.status, 404);

    assert_eq!(
        server.send_json("POST", PODS, &pod("pending", json!({}))).await.status,
        201
    );
    assert_eq!(server.delete(&format!("{PODS}/pending")).await.status, 200);
    assert_eq!(
        server.get(&format!("{PODS}/pending")).await.status,
        404,
        "never scheduled"
    );

    let mut orphan = pod("orphan", json!({}));
    orphan["spec"]["nodeName"] = "no-such-node".into();
    assert_eq!(server.send_json("POST", PODS, &orphan).await.status, 201);
    assert_eq!(server.delete(&format!("{PODS}/orphan")).await.status, 200);
    assert_eq!(
        server.get(&format!("{PODS}/orphan")).await.status,
        404,
        "its node is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_final_delete_names_the_pods_uid() {
    let server = with_node().await;
    let created = scheduled(&server, "web", None).await;
    let path = format!("{PODS}/web");
    assert_eq!(server.delete(&path).await.status, 200);
    let final_delete = |uid: &str| {
        json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
               "preconditions": {"uid": uid}})
    };
    let wrong = server.send_json("DELETE", &path, &final_delete("not-its-uid")).await;
    assert_eq!(wrong.status, 409, "{}", wrong.json());
    assert_eq!(
        wrong.json()["message"],
        format!(
            "Operation cannot be fulfilled on pods \"web\": Precondition failed: UID in precondition: not-its-uid, \
             UID in object meta: {}",
            created["metadata"]["uid"].as_str().unwrap()
        )
    );
    assert_eq!(server.get(&path).await.status, 200);
    let uid = created["metadata"]["uid"].as_str().unwrap();
    let done = server.send_json("DELETE", &path, &final_delete(uid)).await;
    assert_eq!(done.status, 200, "{}", done.json());
    assert_eq!(server.get(&path).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminating_pod_keeps_its_mark_through_updates() {
    let server = with_node().await;
    scheduled(&server, "web", None).await;
    let path = format!("{PODS}/web");
    let marked = server.delete(&path).await.json();
    let patched = server
        .merge_patch(
            &path,
            &json!({"metadata": {"labels": {"x": "y"}, "deletionGracePeriodSeconds": 1}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.json());
    assert_eq!(
        patched.json()["metadata"]["deletionTimestamp"],
        marked["metadata"]["deletionTimestamp"]
    );
    assert_eq!(patched.json()["metadata"]["deletionGracePeriodSeconds"], 30);
}
