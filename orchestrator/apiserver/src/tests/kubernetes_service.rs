//! The `kubernetes` Service of `default`: every API server makes it on the first
//! address of the service range, lists itself in its slices, and brings both back
//! when a user deletes them, as kube-apiserver does.

use std::net::Ipv4Addr;

use super::*;
use crate::services::ServiceNetwork;

const SERVICE: &str = "/api/v1/namespaces/default/services/kubernetes";
const SLICES: &str = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";

/// Waits until `path` answers 200 and `check` holds of the object; returns it.
async fn wait_for(server: &Server, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let reply = server.get(path).await;
        if reply.status == 200 && check(&reply.json()) {
            return reply.json();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path}: never as expected; last {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn addresses(slice: &Value) -> Vec<String> {
    slice["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["addresses"][0].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_service_takes_the_first_address_and_comes_back_after_deletion() {
    let server = start_with(Settings {
        service_network: ServiceNetwork {
            cluster_ip_range: "10.100.0.0/16".parse().unwrap(),
            ..Default::default()
        },
        advertise_address: Some(Ipv4Addr::new(10, 0, 0, 7)),
        ..Settings::default()
    })
    .await;
    let port = i64::from(server.address.port());
    let service = wait_for(&server, SERVICE, |_| true).await;
    let spec = &service["spec"];
    assert_eq!(spec["clusterIP"], "10.100.0.1", "{service}");
    assert_eq!(spec["clusterIPs"], json!(["10.100.0.1"]));
    assert_eq!(spec["type"], "ClusterIP");
    assert!(spec.get("selector").is_none(), "{service}");
    assert_eq!(
        spec["ports"],
        json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": port}])
    );
    assert_eq!(service["metadata"]["labels"]["provider"], "kubernetes");

    let slice = wait_for(&server, &format!("{SLICES}/kubernetes"), |s| !addresses(s).is_empty()).await;
    assert_eq!(addresses(&slice), ["10.0.0.7"], "{slice}");
    assert_eq!(slice["metadata"]["labels"]["kubernetes.io/service-name"], "kubernetes");
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(slice["endpoints"][0]["conditions"]["ready"], true);
    assert_eq!(
        slice["ports"],
        json!([{"name": "http", "port": port, "protocol": "TCP"}])
    );

    // A user deletes both: they come back, the Service on the same address.
    let uid = service["metadata"]["uid"].clone();
    assert_eq!(server.delete(SERVICE).await.status, 200);
    let back = wait_for(&server, SERVICE, |s| s["metadata"]["uid"] != uid).await;
    assert_eq!(back["spec"]["clusterIP"], "10.100.0.1", "{back}");
    let slice_uid = slice["metadata"]["uid"].clone();
    assert_eq!(server.delete(&format!("{SLICES}/kubernetes")).await.status, 200);
    let slice = wait_for(&server, &format!("{SLICES}/kubernetes"), |s| {
        s["metadata"]["uid"] != slice_uid && !addresses(s).is_empty()
    })
    .await;
    assert_eq!(addresses(&slice), ["10.0.0.7"]);
    // A slice edited by hand is put right.
    let edited = server
        .merge_patch(
            &format!("{SLICES}/kubernetes"),
            &json!({"endpoints": [{"addresses": ["10.9.9.9"], "conditions": {"ready": true}}]}),
        )
        .await;
    assert_eq!(edited.status, 200, "{}", edited.json());
    wait_for(&server, &format!("{SLICES}/kubernetes"), |s| {
        addresses(s) == ["10.0.0.7"]
    })
    .await;
}

/// A second API server on the same store adds its address; on another port (as
/// replicas sharing a host have), in a slice of its own, since a slice's endpoints
/// share its ports. The Service stays one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_server_is_listed() {
    let server = start_with(Settings {
        advertise_address: Some(Ipv4Addr::new(10, 0, 0, 7)),
        ..Settings::default()
    })
    .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second_port = listener.local_addr().unwrap().port();
    let second = Settings {
        advertise_address: Some(Ipv4Addr::new(10, 0, 0, 8)),
        ..Settings::default()
    };
    tokio::spawn(serve(
        listener,
        ApiServer::with_settings(server.store.kv.clone(), second),
    ));
    let (first_port, second_port) = (server.address.port(), second_port);
    let (low, high) = if first_port < second_port {
        (("10.0.0.7", first_port), ("10.0.0.8", second_port))
    } else {
        (("10.0.0.8", second_port), ("10.0.0.7", first_port))
    };
    let first = wait_for(&server, &format!("{SLICES}/kubernetes"), |s| addresses(s) == [low.0]).await;
    assert_eq!(first["ports"][0]["port"], i64::from(low.1));
    let other = wait_for(&server, &format!("{SLICES}/kubernetes-{}", high.1), |s| {
        addresses(s) == [high.0]
    })
    .await;
    assert_eq!(other["metadata"]["labels"]["kubernetes.io/service-name"], "kubernetes");
    let services = server.get("/api/v1/namespaces/default/services").await.json();
    assert_eq!(services["items"].as_array().unwrap().len(), 1, "{services}");
    assert_eq!(services["items"][0]["spec"]["clusterIP"], "10.96.0.1");
}
