//! PriorityClasses through the API: the system's classes made at start, one global
//! default, and the Priority admission of pods (a class's value and policy written
//! into the pod; a missing class or a disagreeing priority refused).

use serde_json::json;

use super::*;

const CLASSES: &str = "/apis/scheduling.k8s.io/v1/priorityclasses";
const PODS: &str = "/api/v1/namespaces/default/pods";

fn pod(name: &str, spec: serde_json::Value) -> serde_json::Value {
    let mut spec = spec;
    spec["containers"] = json!([{"name": "a", "image": "busybox"}]);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_get_the_priority_of_their_class() {
    let server = start().await;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let system = loop {
        let list = server.get(CLASSES).await.json();
        let system: Vec<(String, i64)> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["metadata"]["name"].as_str().unwrap().into(),
                    c["value"].as_i64().unwrap(),
                )
            })
            .collect();
        if system.len() == 2 || tokio::time::Instant::now() > deadline {
            break system;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        system,
        [
            ("system-cluster-critical".to_string(), 2_000_000_000),
            ("system-node-critical".to_string(), 2_000_001_000)
        ]
    );

    // Without a default class, a pod gets 0.
    let plain = server.send_json("POST", PODS, &pod("plain", json!({}))).await;
    assert_eq!(plain.status, 201, "{}", plain.json());
    assert_eq!(plain.json()["spec"]["priority"], 0);
    assert_eq!(plain.json()["spec"]["preemptionPolicy"], "PreemptLowerPriority");

    let class = |name: &str, value: i64, extra: serde_json::Value| {
        let mut class = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value});
        for (k, v) in extra.as_object().unwrap() {
            class[k] = v.clone();
        }
        class
    };
    let high = server.send_json("POST", CLASSES, &class("high", 1000, json!({}))).await;
    assert_eq!(high.status, 201, "{}", high.json());
    assert_eq!(high.json()["preemptionPolicy"], "PreemptLowerPriority");
    let usual = class("usual", 10, json!({"globalDefault": true, "preemptionPolicy": "Never"}));
    assert_eq!(server.send_json("POST", CLASSES, &usual).await.status, 201);
    let second = server
        .send_json("POST", CLASSES, &class("other", 20, json!({"globalDefault": true})))
        .await;
    assert_eq!(second.status, 403, "{}", second.json());
    assert_eq!(
        second.json()["message"],
        "priorityclasses.scheduling.k8s.io \"other\" is forbidden: PriorityClass usual is already marked as \
         default. Only one default can exist"
    );
    let marked = server
        .merge_patch(&format!("{CLASSES}/high"), &json!({"globalDefault": true}))
        .await;
    assert_eq!(marked.status, 403, "{}", marked.json());
    let revalued = server
        .merge_patch(&format!("{CLASSES}/high"), &json!({"value": 5}))
        .await;
    assert_eq!(revalued.status, 422, "{}", revalued.json());
    let over = server
        .send_json("POST", CLASSES, &class("over", 1_000_000_001, json!({})))
        .await;
    assert_eq!(over.status, 422, "{}", over.json());

    let important = server
        .send_json("POST", PODS, &pod("important", json!({"priorityClassName": "high"})))
        .await;
    assert_eq!(important.status, 201, "{}", important.json());
    assert_eq!(important.json()["spec"]["priority"], 1000);
    let defaulted = server.send_json("POST", PODS, &pod("defaulted", json!({}))).await;
    assert_eq!(defaulted.status, 201, "{}", defaulted.json());
    let spec = &defaulted.json()["spec"];
    assert_eq!(
        (&spec["priorityClassName"], &spec["priority"]),
        (&json!("usual"), &json!(10))
    );
    assert_eq!(spec["preemptionPolicy"], "Never");

    // A pod replaced without its priority keeps the one admission gave it.
    let mut replaced = pod("important", json!({"priorityClassName": "high"}));
    replaced["metadata"]["labels"] = json!({"tier": "front"});
    let updated = server.send_json("PUT", &format!("{PODS}/important"), &replaced).await;
    assert_eq!(updated.status, 200, "{}", updated.json());
    assert_eq!(updated.json()["spec"]["priority"], 1000);

    let missing = server
        .send_json("POST", PODS, &pod("lost", json!({"priorityClassName": "gone"})))
        .await;
    assert_eq!(missing.status, 403, "{}", missing.json());
    assert_eq!(
        missing.json()["message"],
        "pods \"lost\" is forbidden: no PriorityClass with name gone was found"
    );
    let disagreeing = server
        .send_json(
            "POST",
            PODS,
            &pod("bold", json!({"priorityClassName": "high", "priority": 7})),
        )
        .await;
    assert_eq!(disagreeing.status, 403, "{}", disagreeing.json());
    assert_eq!(
        disagreeing.json()["message"],
        "pods \"bold\" is forbidden: the integer value of priority (7) must not be provided in pod spec; \
         priority admission controller computed 1000 from the given PriorityClass name"
    );
}
