//! PodDisruptionBudgets as served, and the Eviction subresource under a budget.

use serde_json::{Value, json};

use super::{PODS, pod, start};

const BUDGETS: &str = "/apis/policy/v1/namespaces/default/poddisruptionbudgets";

fn budget(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
           "metadata": {"name": name}, "spec": spec})
}

fn eviction(name: &str) -> Value {
    json!({"apiVersion": "policy/v1", "kind": "Eviction",
           "metadata": {"name": name, "namespace": "default"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_are_served_and_checked() {
    let server = start().await;
    let made = server
        .send_json(
            "POST",
            BUDGETS,
            &budget(
                "web",
                json!({"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}),
            ),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.json());
    let made = made.json();
    assert_eq!(made["spec"]["minAvailable"], "50%");
    assert_eq!(
        made["status"]["disruptionsAllowed"], 0,
        "a new budget allows nothing yet"
    );

    let both = server
        .send_json(
            "POST",
            BUDGETS,
            &budget("both", json!({"minAvailable": 1, "maxUnavailable": 1})),
        )
        .await;
    assert_eq!(both.status, 422);
    assert!(
        both.json()["message"]
            .as_str()
            .unwrap()
            .contains("minAvailable and maxUnavailable cannot be both set"),
        "{}",
        both.json()
    );
    let over = server
        .send_json("POST", BUDGETS, &budget("over", json!({"maxUnavailable": "150%"})))
        .await;
    assert_eq!(over.status, 422);

    let listed = server.get(BUDGETS).await.json();
    assert_eq!(listed["kind"], "PodDisruptionBudgetList");
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

/// Makes `name` a running, ready pod of app=web.
async fn ready_pod(server: &super::Server, name: &str) {
    let made = server.send_json("POST", PODS, &pod(name, json!({"app": "web"}))).await;
    assert_eq!(made.status, 201, "{}", made.json());
    let status = json!({"status": {"phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}]}});
    let running = server.merge_patch(&format!("{PODS}/{name}/status"), &status).await;
    assert_eq!(running.status, 200, "{}", running.json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_evictions_never_spend_more_than_the_budget_allows() {
    let server = start().await;
    let names = ["web-1", "web-2", "web-3", "web-4", "web-5"];
    for name in names {
        ready_pod(&server, name).await;
    }
    let spec = json!({"minAvailable": 3, "selector": {"matchLabels": {"app": "web"}}});
    assert_eq!(
        server.send_json("POST", BUDGETS, &budget("web", spec)).await.status,
        201
    );
    // As the disruption controller would compute it: 5 healthy, 3 needed.
    let status = json!({"status": {"observedGeneration": 1, "currentHealthy": 5, "desiredHealthy": 3,
        "expectedPods": 5, "disruptionsAllowed": 2}});
    let computed = server.merge_patch(&format!("{BUDGETS}/web/status"), &status).await;
    assert_eq!(computed.status, 200, "{}", computed.json());

    let evictions = names.map(|name| {
        let server = &server;
        async move {
            let path = format!("{PODS}/{name}/eviction");
            (name, server.send_json("POST", &path, &eviction(name)).await)
        }
    });
    let replies = futures::future::join_all(evictions).await;
    let mut evicted = Vec::new();
    for (name, reply) in &replies {
        match reply.status {
            201 => evicted.push(*name),
            429 => {
                let refusal = reply.json();
                assert_eq!(refusal["reason"], "TooManyRequests");
                assert_eq!(
                    refusal["message"],
                    "Cannot evict pod as it would violate the pod's disruption budget."
                );
            }
            other => panic!("{name}: {other} {}", reply.json()),
        }
    }
    assert_eq!(evicted.len(), 2, "exactly the allowance is spent: {replies:?}");
    let mut remaining = 0;
    for name in names {
        let status = server.get(&format!("{PODS}/{name}")).await.status;
        assert_eq!(status == 404, evicted.contains(&name), "{name}");
        remaining += usize::from(status == 200);
    }
    assert_eq!(remaining, 3);

    let spent = server.get(&format!("{BUDGETS}/web")).await.json();
    assert_eq!(spent["status"]["disruptionsAllowed"], 0);
    let disrupted = spent["status"]["disruptedPods"].as_object().unwrap();
    let mut recorded: Vec<&str> = disrupted.keys().map(String::as_str).collect();
    recorded.sort();
    evicted.sort();
    assert_eq!(recorded, evicted, "each evicted pod is recorded");
    assert_eq!(spent["status"]["conditions"][0]["reason"], "InsufficientPods");

    // A pod no budget selects goes at once.
    assert_eq!(
        server
            .send_json("POST", PODS, &pod("lone", json!({"app": "other"})))
            .await
            .status,
        201
    );
    let lone = server
        .send_json("POST", &format!("{PODS}/lone/eviction"), &eviction("lone"))
        .await;
    assert_eq!(lone.status, 201, "{}", lone.json());
}

/// An eviction that spends a budget deletes its pod as a DELETE does: a pod running on
/// a node is marked, with its grace, for its agent to stop; it does not vanish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_under_a_budget_deletes_a_running_pod_gracefully() {
    let server = start().await;
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}});
    assert_eq!(server.send_json("POST", "/api/v1/nodes", &node).await.status, 201);
    let mut web = pod("web-1", json!({"app": "web"}));
    web["spec"]["nodeName"] = "n1".into();
    web["spec"]["terminationGracePeriodSeconds"] = 7.into();
    assert_eq!(server.send_json("POST", PODS, &web).await.status, 201);
    let status = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
    assert_eq!(
        server
            .merge_patch(&format!("{PODS}/web-1/status"), &status)
            .await
            .status,
        200
    );
    let spec = json!({"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}});
    assert_eq!(
        server.send_json("POST", BUDGETS, &budget("web", spec)).await.status,
        201
    );
    let status = json!({"status": {"observedGeneration": 1, "currentHealthy": 1, "desiredHealthy": 0,
        "expectedPods": 1, "disruptionsAllowed": 1}});
    assert_eq!(
        server
            .merge_patch(&format!("{BUDGETS}/web/status"), &status)
            .await
            .status,
        200
    );

    let reply = server
        .send_json("POST", &format!("{PODS}/web-1/eviction"), &eviction("web-1"))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.json());
    let marked = server.get(&format!("{PODS}/web-1")).await;
    assert_eq!(marked.status, 200, "the pod stays until its agent has stopped it");
    let marked = marked.json();
    assert!(marked["metadata"]["deletionTimestamp"].is_string(), "{marked}");
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 7);
    let spent = server.get(&format!("{BUDGETS}/web")).await.json();
    assert_eq!(spent["status"]["disruptionsAllowed"], 0);
}
