//! Admission through the API: Pod Security by namespace label (refusals naming the
//! rule, warnings as `Warning` headers, workloads warned for their templates),
//! LimitRanges' defaults and bounds, and quotas charged and refused with
//! Kubernetes' messages.

use serde_json::json;

use super::*;

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn pod_with(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
}

fn privileged_pod(name: &str) -> Value {
    pod_with(
        name,
        json!({"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": true}}]}),
    )
}

fn host_path_pod(name: &str) -> Value {
    pod_with(
        name,
        json!({"containers": [{"name": "c", "image": "busybox",
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
               "volumes": [{"name": "data", "hostPath": {"path": "/var/lib"}}]}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseline_namespace_refuses_privileged_and_host_path_pods_naming_the_rule() {
    let server = start().await;
    let refused = server.send_json("POST", PODS, &privileged_pod("p")).await;
    assert_eq!(refused.status, 403, "{}", refused.json());
    assert_eq!(refused.json()["reason"], "Forbidden");
    assert_eq!(
        refused.json()["message"],
        "pods \"p\" is forbidden: violates PodSecurity \"baseline:latest\": privileged (container \"c\" must \
         not set securityContext.privileged=true)"
    );
    let refused = server.send_json("POST", PODS, &host_path_pod("h")).await;
    assert_eq!(refused.status, 403, "{}", refused.json());
    assert_eq!(
        refused.json()["message"],
        "pods \"h\" is forbidden: violates PodSecurity \"baseline:latest\": hostPath volumes (volume \"data\")"
    );
    assert_eq!(
        server.get(&format!("{PODS}/p")).await.status,
        404,
        "nothing was written"
    );

    // A namespace labelled privileged takes both.
    let ops = namespace("ops", json!({"pod-security.kubernetes.io/enforce": "privileged"}));
    assert_eq!(server.send_json("POST", "/api/v1/namespaces", &ops).await.status, 201);
    for pod in [privileged_pod("p"), host_path_pod("h")] {
        let created = server.send_json("POST", "/api/v1/namespaces/ops/pods", &pod).await;
        assert_eq!(created.status, 201, "{}", created.json());
    }
    // A label that is not a level is refused with the namespace.
    let bad = namespace("bad", json!({"pod-security.kubernetes.io/enforce": "strict"}));
    let refused = server.send_json("POST", "/api/v1/namespaces", &bad).await;
    assert_eq!(refused.status, 422, "{}", refused.json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_mode_and_workload_templates_give_warning_headers() {
    let server = start().await;
    let dev = namespace("dev", json!({"pod-security.kubernetes.io/warn": "restricted"}));
    assert_eq!(server.send_json("POST", "/api/v1/namespaces", &dev).await.status, 201);
    let plain = pod_with("plain", json!({"containers": [{"name": "c", "image": "busybox"}]}));
    let created = server.send_json("POST", "/api/v1/namespaces/dev/pods", &plain).await;
    assert_eq!(created.status, 201, "{}", created.json());
    assert_eq!(created.warnings.len(), 1, "{:?}", created.warnings);
    assert!(
        created.warnings[0].starts_with(
            "299 - \"would violate PodSecurity \\\"restricted:latest\\\": allowPrivilegeEscalation != false"
        ),
        "{:?}",
        created.warnings
    );
    let mut web = deployment("web", 1);
    web["spec"]["template"]["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    let created = server.send_json("POST", DEPLOYMENTS, &web).await;
    assert_eq!(created.status, 201, "a workload is accepted: {}", created.json());
    assert_eq!(
        created.warnings,
        [
            "299 - \"would violate PodSecurity \\\"baseline:latest\\\": privileged (container \\\"c\\\" must not set \
          securityContext.privileged=true)\""
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_level_is_the_servers_setting() {
    let mut settings = Settings::default();
    settings.admission.pod_security_default = berth_api::admission::pod_security::Level::Privileged;
    let server = start_with(settings).await;
    let created = server.send_json("POST", PODS, &privileged_pod("p")).await;
    assert_eq!(created.status, 201, "{}", created.json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_ranges_default_and_bound_new_pods() {
    let server = start().await;
    let range = json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits"},
        "spec": {"limits": [{"type": "Container", "default": {"memory": "256Mi"},
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"}, "max": {"memory": "1Gi"}}]}});
    let created = server
        .send_json("POST", "/api/v1/namespaces/default/limitranges", &range)
        .await;
    assert_eq!(created.status, 201, "{}", created.json());
    let plain = pod_with("plain", json!({"containers": [{"name": "c", "image": "busybox"}]}));
    let created = server.send_json("POST", PODS, &plain).await.json();
    assert_eq!(
        created["spec"]["containers"][0]["resources"],
        json!({"limits": {"memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}})
    );
    assert_eq!(created["status"]["qosClass"], "Burstable");
    let big = pod_with(
        "big",
        json!({"containers": [{"name": "c", "image": "busybox", "resources": {"limits": {"memory": "2Gi"}}}]}),
    );
    let refused = server.send_json("POST", PODS, &big).await;
    assert_eq!(refused.status, 403, "{}", refused.json());
    assert_eq!(
        refused.json()["message"],
        "pods \"big\" is forbidden: maximum memory usage per Container is 1Gi, but limit is 2Gi"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_is_charged_by_each_create_and_refuses_past_its_limit() {
    let server = start().await;
    let quotas = "/api/v1/namespaces/default/resourcequotas";
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "small"},
        "spec": {"hard": {"pods": "1", "configmaps": "5", "limits.cpu": "1"}},
        "status": {"used": {"pods": "9"}}});
    let created = server.send_json("POST", quotas, &quota).await;
    assert_eq!(created.status, 201, "{}", created.json());
    assert_eq!(created.json()["status"], json!({}), "the status is the controller's");
    // Unseen by its controller (no status.hard), the quota refuses nothing yet.
    let unseen = pod_with("unseen", json!({"containers": [{"name": "c", "image": "busybox"}]}));
    assert_eq!(server.send_json("POST", PODS, &unseen).await.status, 201);
    assert_eq!(server.delete(&format!("{PODS}/unseen")).await.status, 200);
    // As its controller would: hard as the spec, nothing used.
    let status = json!({"status": {"hard": {"pods": "1", "configmaps": "5", "limits.cpu": "1"},
        "used": {"pods": "0", "configmaps": "0", "limits.cpu": "0"}}});
    let written = server.merge_patch(&format!("{quotas}/small/status"), &status).await;
    assert_eq!(written.status, 200, "{}", written.json());

    let unlimited = pod_with("unlimited", json!({"containers": [{"name": "c", "image": "busybox"}]}));
    let refused = server.send_json("POST", PODS, &unlimited).await;
    assert_eq!(refused.status, 403, "{}", refused.json());
    assert_eq!(
        refused.json()["message"],
        "pods \"unlimited\" is forbidden: failed quota: small: must specify limits.cpu for: c"
    );
    let limited = |name: &str| {
        pod_with(
            name,
            json!({"containers": [{"name": "c", "image": "busybox", "resources": {"limits": {"cpu": "500m"}}}]}),
        )
    };
    assert_eq!(server.send_json("POST", PODS, &limited("a")).await.status, 201);
    let refused = server.send_json("POST", PODS, &limited("b")).await;
    assert_eq!(refused.status, 403, "{}", refused.json());
    assert_eq!(
        refused.json()["message"],
        "pods \"b\" is forbidden: exceeded quota: small, requested: pods=1, used: pods=1, limited: pods=1"
    );
    let stored = server.get(&format!("{quotas}/small")).await.json();
    assert_eq!(
        stored["status"]["used"],
        json!({"pods": "1", "configmaps": "0", "limits.cpu": "500m"})
    );
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    assert_eq!(
        server
            .send_json("POST", "/api/v1/namespaces/default/configmaps", &config)
            .await
            .status,
        201
    );
    let stored = server.get(&format!("{quotas}/small")).await.json();
    assert_eq!(stored["status"]["used"]["configmaps"], "1");
    let table = server
        .call(
            "GET",
            quotas,
            &[("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")],
            Vec::new(),
        )
        .await
        .json();
    assert_eq!(table["rows"][0]["cells"][2], "configmaps: 1/5, pods: 1/1");
    assert_eq!(table["rows"][0]["cells"][3], "limits.cpu: 500m/1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_takes_more_is_charged_and_refused_past_the_quota() {
    let server = start().await;
    let quotas = "/api/v1/namespaces/default/resourcequotas";
    let services = "/api/v1/namespaces/default/services";
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "ports"},
        "spec": {"hard": {"services.nodeports": "1"}}});
    assert_eq!(server.send_json("POST", quotas, &quota).await.status, 201);
    let status = json!({"status": {"hard": {"services.nodeports": "1"}, "used": {"services.nodeports": "0"}}});
    assert_eq!(
        server
            .merge_patch(&format!("{quotas}/ports/status"), &status)
            .await
            .status,
        200
    );
    let service = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}})
    };
    for name in ["a", "b"] {
        assert_eq!(server.send_json("POST", services, &service(name)).await.status, 201);
    }
    let to_node_port = json!({"spec": {"type": "NodePort"}});
    let changed = server.merge_patch(&format!("{services}/a"), &to_node_port).await;
    assert_eq!(changed.status, 200, "{}", changed.json());
    let used = server.get(&format!("{quotas}/ports")).await.json()["status"]["used"].clone();
    assert_eq!(used, json!({"services.nodeports": "1"}));
    let refused = server.merge_patch(&format!("{services}/b"), &to_node_port).await;
    assert_eq!(refused.status, 403, "{}", refused.json());
    assert_eq!(
        refused.json()["message"],
        "services \"b\" is forbidden: exceeded quota: ports, requested: services.nodeports=1, \
         used: services.nodeports=1, limited: services.nodeports=1"
    );
    let relabelled = server
        .merge_patch(&format!("{services}/a"), &json!({"metadata": {"labels": {"x": "y"}}}))
        .await;
    assert_eq!(
        relabelled.status,
        200,
        "an update that takes nothing more passes: {}",
        relabelled.json()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_relabelled_stricter_warns_of_the_pods_already_in_it() {
    let server = start().await;
    let ops = namespace("ops", json!({"pod-security.kubernetes.io/enforce": "privileged"}));
    assert_eq!(server.send_json("POST", "/api/v1/namespaces", &ops).await.status, 201);
    for name in ["p1", "p2"] {
        let created = server
            .send_json("POST", "/api/v1/namespaces/ops/pods", &privileged_pod(name))
            .await;
        assert_eq!(created.status, 201, "{}", created.json());
    }
    let plain = pod_with("plain", json!({"containers": [{"name": "c", "image": "busybox"}]}));
    assert_eq!(
        server
            .send_json("POST", "/api/v1/namespaces/ops/pods", &plain)
            .await
            .status,
        201
    );
    let relabel = json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}});
    let changed = server.merge_patch("/api/v1/namespaces/ops", &relabel).await;
    assert_eq!(changed.status, 200, "{}", changed.json());
    assert_eq!(
        changed.warnings,
        [
            "299 - \"existing pods in namespace \\\"ops\\\" violate the new PodSecurity enforce level \\\"baseline:latest\\\"\"",
            "299 - \"p1 (and 1 other pods): privileged\""
        ]
    );
    let again = server.merge_patch("/api/v1/namespaces/ops", &relabel).await;
    assert!(
        again.warnings.is_empty(),
        "an unchanged level warns of nothing: {:?}",
        again.warnings
    );

    // Updates: a label on a pod that breaks the new level is not checked; a new image
    // is, and the pod is refused as a new one would be.
    let labelled = server
        .merge_patch(
            "/api/v1/namespaces/ops/pods/p1",
            &json!({"metadata": {"labels": {"tier": "a"}}}),
        )
        .await;
    assert_eq!(labelled.status, 200, "{}", labelled.json());
    let new_image = |mut pod: Value| {
        pod["spec"]["containers"][0]["image"] = json!("busybox:1.36");
        pod
    };
    let p1 = new_image(server.get("/api/v1/namespaces/ops/pods/p1").await.json());
    let refused = server.send_json("PUT", "/api/v1/namespaces/ops/pods/p1", &p1).await;
    assert_eq!(refused.status, 403, "{}", refused.json());
    assert!(
        refused.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("pods \"p1\" is forbidden: violates PodSecurity \"baseline:latest\": privileged"),
        "{}",
        refused.json()
    );
    let plain = new_image(server.get("/api/v1/namespaces/ops/pods/plain").await.json());
    let fine = server
        .send_json("PUT", "/api/v1/namespaces/ops/pods/plain", &plain)
        .await;
    assert_eq!(fine.status, 200, "{}", fine.json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workloads_new_template_is_warned_of_as_a_new_workload_is() {
    let server = start().await;
    let created = server.send_json("POST", DEPLOYMENTS, &deployment("web", 1)).await;
    assert_eq!(created.status, 201, "{}", created.json());
    assert!(created.warnings.is_empty(), "{:?}", created.warnings);
    let path = format!("{DEPLOYMENTS}/web");
    let mut web = server.get(&path).await.json();
    web["spec"]["template"]["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    let updated = server.send_json("PUT", &path, &web).await;
    assert_eq!(updated.status, 200, "a workload is accepted: {}", updated.json());
    assert_eq!(updated.warnings.len(), 1, "{:?}", updated.warnings);
    assert!(
        updated.warnings[0].starts_with("299 - \"would violate PodSecurity \\\"baseline:latest\\\": privileged"),
        "{:?}",
        updated.warnings
    );
    let scaled = server.merge_patch(&path, &json!({"spec": {"replicas": 2}})).await;
    assert!(
        scaled.warnings.is_empty(),
        "the template did not change: {:?}",
        scaled.warnings
    );
}
