use super::*;
use crate::kinds::Object;
use crate::kinds::service::SERVICE;

fn errors_of(spec: serde_json::Value) -> Vec<String> {
    let value = serde_json::json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"}, "spec": spec});
    let mut object: Object = (SERVICE.decode)(&value).unwrap();
    (SERVICE.defaults)(&mut object);
    crate::validation::validate(&object)
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn a_plain_service_is_valid() {
    let ok = errors_of(serde_json::json!({"selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "dns", "port": 53, "protocol": "UDP"}]}));
    assert_eq!(ok, Vec::<String>::new());
    let headless = errors_of(serde_json::json!({"clusterIP": "None", "selector": {"app": "db"}}));
    assert_eq!(headless, Vec::<String>::new());
}

#[test]
fn ports_are_checked_as_kubernetes_does() {
    let errors = errors_of(serde_json::json!({"ports": [
        {"port": 0}, {"port": 80, "targetPort": "no_such"}, {"name": "a", "port": 80}, {"name": "a", "port": 81, "protocol": "XDP"}
    ]}));
    assert_eq!(
        errors,
        [
            "spec.ports[0].name: required",
            "spec.ports[0].port: must be between 1 and 65535, inclusive",
            "spec.ports[0].targetPort: must be between 1 and 65535, inclusive",
            "spec.ports[1].name: required",
            "spec.ports[1].targetPort: must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            "spec.ports[2]: Duplicate value: \"80/TCP\"",
            "spec.ports[3].protocol: Unsupported value: \"XDP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.ports[3].name: Duplicate value: \"a\"",
        ]
    );
    assert_eq!(errors_of(serde_json::json!({})), ["spec.ports: required"]);
    let node_port_on_cluster_ip = errors_of(serde_json::json!({"ports": [{"port": 80, "nodePort": 30000}]}));
    assert_eq!(
        node_port_on_cluster_ip,
        ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
    );
}

#[test]
fn cluster_ip_forms() {
    let port = serde_json::json!([{"port": 80}]);
    assert_eq!(
        errors_of(serde_json::json!({"clusterIP": "10.96.0.9", "ports": port})),
        Vec::<String>::new()
    );
    assert_eq!(
        errors_of(serde_json::json!({"clusterIP": "10.96.0.300", "ports": port})),
        [format!("spec.clusterIP: {INVALID_IP}")]
    );
    assert_eq!(
        errors_of(serde_json::json!({"clusterIP": "None", "type": "NodePort", "ports": port})),
        ["spec.clusterIP: may not be set to 'None' for NodePort services"]
    );
    assert_eq!(
        errors_of(serde_json::json!({"clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.8"], "ports": port})),
        ["spec.clusterIPs: first value must match `clusterIP`"]
    );
}

#[test]
fn what_berth_does_not_implement_is_refused_by_name() {
    let errors = errors_of(
        serde_json::json!({"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "SCTP"}],
        "externalIPs": ["2001:db8::1"], "ipFamilies": ["IPv6"], "trafficDistribution": "PreferClose",
        "loadBalancerIP": "192.0.2.1"}),
    );
    let fields: Vec<&str> = errors.iter().map(|e| e.split(':').next().unwrap()).collect();
    assert_eq!(
        fields,
        [
            "spec.type",
            "spec.ports[0].protocol",
            "spec.externalIPs[0]",
            "spec.trafficDistribution",
            "spec.loadBalancerIP",
            "spec.ipFamilies[0]"
        ]
    );
    assert!(errors.iter().all(|e| e.contains(NOT_IMPLEMENTED)), "{errors:?}");
}

/// Fields Kubernetes takes only with another field or type: refused otherwise,
/// in its words, rather than kept and ignored.
#[test]
fn fields_of_another_type_or_mode_are_refused_as_kubernetes_does() {
    let errors = errors_of(serde_json::json!({"ports": [{"port": 80}],
        "sessionAffinity": "None", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
        "allocateLoadBalancerNodePorts": true, "loadBalancerClass": "example.com/lb",
        "loadBalancerSourceRanges": ["192.0.2.0/24"], "healthCheckNodePort": 31000,
        "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Nearby",
        "trafficDistribution": "Anywhere", "ipFamilies": ["IPv5"]}));
    assert_eq!(
        errors,
        [
            "spec.sessionAffinityConfig: Forbidden: must not be set when session affinity is None",
            "spec.externalTrafficPolicy: may only be set for externally-accessible services",
            "spec.internalTrafficPolicy: Unsupported value: \"Nearby\": supported values: \"Cluster\", \"Local\"",
            "spec.healthCheckNodePort: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            "spec.trafficDistribution: Unsupported value: \"Anywhere\": supported values: \"PreferClose\"",
            "spec.allocateLoadBalancerNodePorts: Forbidden: may only be used when `type` is 'LoadBalancer'",
            "spec.loadBalancerClass: Forbidden: may only be used when `type` is 'LoadBalancer'",
            "spec.LoadBalancerSourceRanges: Forbidden: may only be used when `type` is 'LoadBalancer'",
            "spec.ipFamilies[0]: Unsupported value: \"IPv5\": supported values: \"IPv4\", \"IPv6\"",
        ]
    );
    let with_status = serde_json::json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"}, "spec": {"ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}});
    let mut object: Object = (SERVICE.decode)(&with_status).unwrap();
    (SERVICE.defaults)(&mut object);
    let errors: Vec<String> = crate::validation::validate(&object)
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        errors,
        ["status.loadBalancer.ingress: Forbidden: may only be used when `spec.type` is 'LoadBalancer'"]
    );
    assert_eq!(
        errors_of(serde_json::json!({"ports": [{"port": 80, "appProtocol": "-http"}]})),
        [
            "spec.ports[0].appProtocol: name part must consist of alphanumeric characters, '-', '_' or '.', and must \
             start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used \
             for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        ]
    );
}

#[test]
fn external_ips_and_local_traffic_policies_are_served() {
    let ok = errors_of(
        serde_json::json!({"type": "NodePort", "ports": [{"port": 80, "appProtocol": "kubernetes.io/h2c"}],
        "externalIPs": ["192.0.2.10"], "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local",
        "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}),
    );
    assert_eq!(ok, Vec::<String>::new());
    // External IPs make a ClusterIP Service reachable from outside: it takes (and
    // is defaulted) an external policy.
    let cluster_ip = errors_of(
        serde_json::json!({"ports": [{"port": 80}], "externalIPs": ["192.0.2.10"],
        "externalTrafficPolicy": "Local"}),
    );
    assert_eq!(cluster_ip, Vec::<String>::new());
    let errors = errors_of(serde_json::json!({"ports": [{"port": 80}], "externalIPs":
        ["192.0.2.300", "0.0.0.0", "127.0.0.1", "169.254.169.254", "224.0.0.251", "224.0.1.1"],
        "externalTrafficPolicy": "Nowhere"}));
    assert_eq!(
        errors,
        [
            format!("spec.externalIPs[0]: {INVALID_IP}"),
            "spec.externalIPs[1]: may not be unspecified (0.0.0.0)".to_string(),
            "spec.externalIPs[2]: may not be in the loopback range (127.0.0.0/8, ::1/128)".to_string(),
            "spec.externalIPs[3]: may not be in the link-local range (169.254.0.0/16, fe80::/10)".to_string(),
            "spec.externalIPs[4]: may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)".to_string(),
            "spec.externalTrafficPolicy: Unsupported value: \"Nowhere\": supported values: \"Cluster\", \"Local\""
                .to_string(),
        ]
    );
    assert!(qualified_name_problems("example.com/my.name").is_empty());
    assert_eq!(qualified_name_problems("/x"), ["prefix part must be non-empty"]);
    assert_eq!(
        qualified_name_problems(&"a".repeat(64)),
        ["name part must be no more than 63 characters"]
    );
}

#[test]
fn the_cluster_ip_may_not_change() {
    let service = |ip: &str| {
        let mut s = Service::default();
        s.spec.cluster_ip = Some(ip.into());
        s
    };
    let mut errors = Vec::new();
    service_update(&service("10.96.0.9"), &service("10.96.0.9"), &mut errors);
    assert!(errors.is_empty());
    service_update(&service("10.96.0.9"), &service("10.96.0.10"), &mut errors);
    assert_eq!(errors[0].to_string(), "spec.clusterIPs[0]: may not change once set");
}
