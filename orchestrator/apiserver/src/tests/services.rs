//! Services through the API: defaults, cluster IPs and node ports allocated in the
//! create's transaction (never twice, even for creates at once), kube-apiserver's
//! refusals of taken and out-of-range values, the cluster IP kept on updates that
//! leave it out and immutable otherwise, and everything released on delete.

use std::collections::BTreeSet;

use serde_json::json;

use super::*;
use crate::services::ServiceNetwork;

const SERVICES: &str = "/api/v1/namespaces/default/services";

fn service(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

/// A server whose service network is small enough to fill.
async fn small() -> Server {
    start_with(Settings {
        service_network: ServiceNetwork {
            cluster_ip_range: "10.96.0.0/28".parse().unwrap(),
            node_ports: (30000, 30009),
        },
        ..Settings::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_gets_a_cluster_ip_and_node_ports_with_kubernetes_defaults() {
    let server = start().await;
    let created = server
        .send_json(
            "POST",
            SERVICES,
            &service(
                "web",
                json!({"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.json());
    let stored = server.get(&format!("{SERVICES}/web")).await.json();
    let spec = &stored["spec"];
    let ip: std::net::Ipv4Addr = spec["clusterIP"].as_str().unwrap().parse().unwrap();
    assert!(ServiceNetwork::default().cluster_ip_range.contains(ip), "{ip}");
    assert_eq!(spec["clusterIPs"], json!([ip.to_string()]));
    let node_port = spec["ports"][0]["nodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&node_port), "{node_port}");
    assert_eq!(spec["ports"][0]["protocol"], "TCP");
    assert_eq!(spec["ports"][0]["targetPort"], 80);
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(spec["externalTrafficPolicy"], "Cluster");
    assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
    let headless = server
        .send_json(
            "POST",
            SERVICES,
            &service("db", json!({"clusterIP": "None", "selector": {"app": "db"}})),
        )
        .await;
    assert_eq!(headless.status, 201, "{}", headless.json());
    assert_eq!(headless.json()["spec"]["clusterIP"], "None");
    let listed = server.get("/api/v1/services").await.json();
    let mut names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metadata"]["name"].as_str().unwrap())
        .filter(|name| *name != "kubernetes")
        .collect();
    names.sort();
    assert_eq!(names, ["db", "web"], "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_and_out_of_range_values_are_refused_as_kube_apiserver_does() {
    let server = small().await;
    let first = server
        .send_json(
            "POST",
            SERVICES,
            &service(
                "a",
                json!({"type": "NodePort", "clusterIP": "10.96.0.5", "ports": [{"port": 80, "nodePort": 30001}]}),
            ),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.json());
    for (name, spec, message) in [
        (
            "b",
            json!({"clusterIP": "10.96.0.5", "ports": [{"port": 80}]}),
            "Service \"b\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.96.0.5\"}: failed to allocate \
             IP 10.96.0.5: provided IP is already allocated",
        ),
        (
            "c",
            json!({"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}),
            "Service \"c\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.0.0.1\"}: failed to allocate \
             IP 10.0.0.1: the provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/28",
        ),
        (
            "d",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30001}]}),
            "Service \"d\" is invalid: spec.ports[0].nodePort: Invalid value: 30001: provided port is already allocated",
        ),
        (
            "e",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}),
            "Service \"e\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid \
             range. The range of valid ports is 30000-30009",
        ),
    ] {
        let refused = server.send_json("POST", SERVICES, &service(name, spec)).await;
        assert_eq!(refused.status, 422, "{name}: {}", refused.json());
        assert_eq!(refused.json()["message"], message);
        assert_eq!(server.get(&format!("{SERVICES}/{name}")).await.status, 404);
    }
    // Deleting frees both, for the next Service to take.
    assert_eq!(server.delete(&format!("{SERVICES}/a")).await.status, 200);
    let again = server
        .send_json(
            "POST",
            SERVICES,
            &service(
                "b",
                json!({"type": "NodePort", "clusterIP": "10.96.0.5", "ports": [{"port": 80, "nodePort": 30001}]}),
            ),
        )
        .await;
    assert_eq!(again.status, 201, "{}", again.json());
}

/// Creates at once never share an address or a port: the range has 13 addresses to
/// draw from (the network's, the first and the last are not drawn) and ten ports;
/// ten Services take ten of each, all different, and an eleventh finds no port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_share_an_address_or_a_port() {
    let server = small().await;
    let creates = (0..10).map(|i| {
        let server = &server;
        async move {
            let body = service(&format!("s{i}"), json!({"type": "NodePort", "ports": [{"port": 80}]}));
            server.send_json("POST", SERVICES, &body).await
        }
    });
    let replies = futures::future::join_all(creates).await;
    let mut ips = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for reply in &replies {
        assert_eq!(reply.status, 201, "{}", reply.json());
        let spec = &reply.json()["spec"];
        assert!(ips.insert(spec["clusterIP"].as_str().unwrap().to_string()), "{spec}");
        assert!(ports.insert(spec["ports"][0]["nodePort"].as_i64().unwrap()), "{spec}");
    }
    assert_eq!(ports.len(), 10);
    let full = server
        .send_json(
            "POST",
            SERVICES,
            &service("s10", json!({"type": "NodePort", "ports": [{"port": 80}]})),
        )
        .await;
    assert_eq!(full.status, 500, "{}", full.json());
    assert_eq!(
        full.json()["message"],
        "Internal error occurred: failed to allocate a nodePort: range is full"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_keep_the_cluster_ip_which_may_not_change() {
    let server = start().await;
    let created = server
        .send_json(
            "POST",
            SERVICES,
            &service("web", json!({"type": "NodePort", "ports": [{"port": 80}]})),
        )
        .await
        .json();
    let ip = created["spec"]["clusterIP"].clone();
    let node_port = created["spec"]["ports"][0]["nodePort"].clone();
    // A replace that leaves the allocated values out keeps them (kubectl replace of
    // the original manifest).
    let replaced = server
        .send_json(
            "PUT",
            &format!("{SERVICES}/web"),
            &service(
                "web",
                json!({"type": "NodePort", "ports": [{"port": 80}], "selector": {"app": "new"}}),
            ),
        )
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.json());
    assert_eq!(replaced.json()["spec"]["clusterIP"], ip);
    assert_eq!(replaced.json()["spec"]["ports"][0]["nodePort"], node_port);
    let moved = server
        .merge_patch(
            &format!("{SERVICES}/web"),
            &json!({"spec": {"clusterIP": "10.96.0.77", "clusterIPs": null}}),
        )
        .await;
    assert_eq!(moved.status, 422, "{}", moved.json());
    assert!(
        moved.json()["message"]
            .as_str()
            .unwrap()
            .contains("spec.clusterIPs[0]: Invalid value: ")
            && moved.json()["message"]
                .as_str()
                .unwrap()
                .contains("may not change once set"),
        "{}",
        moved.json()
    );
    // Back to ClusterIP: the node port goes, and another Service may take it.
    let plain = server
        .merge_patch(&format!("{SERVICES}/web"), &json!({"spec": {"type": "ClusterIP"}}))
        .await;
    assert_eq!(plain.status, 200, "{}", plain.json());
    assert!(
        plain.json()["spec"]["ports"][0].get("nodePort").is_none(),
        "{}",
        plain.json()
    );
    let taker = server
        .send_json(
            "POST",
            SERVICES,
            &service(
                "other",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": node_port}]}),
            ),
        )
        .await;
    assert_eq!(taker.status, 201, "{}", taker.json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_berth_does_not_implement_are_refused_by_name() {
    let server = start().await;
    let refused = server
        .send_json(
            "POST",
            SERVICES,
            &service("lb", json!({"type": "LoadBalancer", "ports": [{"port": 80}]})),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.json());
    let message = refused.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("spec.type") && message.contains(berth_api::validation::NOT_IMPLEMENTED),
        "{message}"
    );
}

/// A namespace's deletion removes its Services but not their allocation records:
/// those are stale, and the next Service asking for the address or port takes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_deleted_namespace_held_is_free_again() {
    let server = small().await;
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev"}});
    assert_eq!(
        server.send_json("POST", "/api/v1/namespaces", &namespace).await.status,
        201
    );
    let spec = json!({"type": "NodePort", "clusterIP": "10.96.0.5", "ports": [{"port": 80, "nodePort": 30001}]});
    let held = server
        .send_json("POST", "/api/v1/namespaces/dev/services", &service("a", spec.clone()))
        .await;
    assert_eq!(held.status, 201, "{}", held.json());
    let deleted = server.delete("/api/v1/namespaces/dev").await;
    assert!(deleted.status < 300, "{}", deleted.json());
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while server.get("/api/v1/namespaces/dev").await.status != 404 {
        assert!(tokio::time::Instant::now() < deadline, "the namespace never went");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let taken = server.send_json("POST", SERVICES, &service("b", spec)).await;
    assert_eq!(taken.status, 201, "{}", taken.json());
}

/// External IPs and the `Local` traffic policies are served (by every agent's
/// proxy): taken, defaulted and checked as kube-apiserver does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_ips_and_local_traffic_policies_are_taken_and_checked() {
    let server = start().await;
    let local = server
        .send_json(
            "POST",
            SERVICES,
            &service(
                "web",
                json!({"type": "NodePort", "ports": [{"port": 80}], "externalIPs": ["192.0.2.10"],
                       "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local"}),
            ),
        )
        .await;
    assert_eq!(local.status, 201, "{}", local.json());
    let spec = &local.json()["spec"];
    assert_eq!(
        (
            &spec["externalIPs"],
            &spec["externalTrafficPolicy"],
            &spec["internalTrafficPolicy"]
        ),
        (&json!(["192.0.2.10"]), &json!("Local"), &json!("Local"))
    );
    // External IPs make a ClusterIP Service reachable from outside: it gets the
    // external policy's default.
    let cluster_ip = server
        .send_json(
            "POST",
            SERVICES,
            &service("db", json!({"ports": [{"port": 5432}], "externalIPs": ["192.0.2.11"]})),
        )
        .await;
    assert_eq!(cluster_ip.status, 201, "{}", cluster_ip.json());
    assert_eq!(cluster_ip.json()["spec"]["externalTrafficPolicy"], "Cluster");
    for (name, spec, message) in [
        (
            "loopback",
            json!({"ports": [{"port": 80}], "externalIPs": ["127.0.0.1"]}),
            "Service \"loopback\" is invalid: spec.externalIPs[0]: Invalid value: \"127.0.0.1\": may not be in the \
             loopback range (127.0.0.0/8, ::1/128)",
        ),
        (
            "inside",
            json!({"ports": [{"port": 80}], "externalTrafficPolicy": "Local"}),
            "Service \"inside\" is invalid: spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for \
             externally-accessible services",
        ),
        (
            "affinity",
            json!({"ports": [{"port": 80}], "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}),
            "Service \"affinity\" is invalid: spec.sessionAffinityConfig: Forbidden: must not be set when session \
             affinity is None",
        ),
        (
            "allocate",
            json!({"type": "NodePort", "ports": [{"port": 80}], "allocateLoadBalancerNodePorts": false}),
            "Service \"allocate\" is invalid: spec.allocateLoadBalancerNodePorts: Forbidden: may only be used when \
             `type` is 'LoadBalancer'",
        ),
    ] {
        let refused = server.send_json("POST", SERVICES, &service(name, spec)).await;
        assert_eq!(refused.status, 422, "{name}: {}", refused.json());
        assert_eq!(refused.json()["message"], message);
    }
}

/// A range with one address left gives that address, whatever the random draws
/// hit first, and is full only once it is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nearly_full_range_gives_its_last_address() {
    let server = start_with(Settings {
        service_network: ServiceNetwork {
            cluster_ip_range: "10.96.0.0/29".parse().unwrap(),
            node_ports: (30000, 30009),
        },
        ..Settings::default()
    })
    .await;
    // .1 is the `kubernetes` Service's; .2 to .6 are the ones offered.
    for (name, ip) in [
        ("a", "10.96.0.2"),
        ("b", "10.96.0.3"),
        ("c", "10.96.0.5"),
        ("d", "10.96.0.6"),
    ] {
        let body = service(name, json!({"clusterIP": ip, "ports": [{"port": 80}]}));
        assert_eq!(server.send_json("POST", SERVICES, &body).await.status, 201);
    }
    let last = server
        .send_json("POST", SERVICES, &service("e", json!({"ports": [{"port": 80}]})))
        .await;
    assert_eq!(last.status, 201, "{}", last.json());
    assert_eq!(last.json()["spec"]["clusterIP"], "10.96.0.4");
    let full = server
        .send_json("POST", SERVICES, &service("f", json!({"ports": [{"port": 80}]})))
        .await;
    assert_eq!(full.status, 500, "{}", full.json());
    assert_eq!(
        full.json()["message"],
        "Internal error occurred: failed to allocate a serviceIP: range is full"
    );
}
