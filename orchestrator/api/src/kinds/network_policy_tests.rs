use serde_json::{Value, json};

use super::*;
use crate::validation::parse_value;

fn policy(spec: Value) -> Result<Object, Vec<String>> {
    let value = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "web", "namespace": "default"}, "spec": spec});
    parse_value(value)
        .map(|p| p.object)
        .map_err(|e| e.iter().map(ToString::to_string).collect())
}

#[test]
fn policy_types_and_protocols_are_defaulted_as_kubernetes_does() {
    let deny = policy(json!({"podSelector": {}})).unwrap();
    assert_eq!(deny.key(), "/registry/networkpolicies/default/web");
    assert_eq!(deny.to_value()["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(deny.to_value()["spec"]["podSelector"], json!({}));
    let both = policy(json!({"podSelector": {"matchLabels": {"app": "db"}},
        "ingress": [{"ports": [{"port": 80}]}],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": "dns", "protocol": "UDP"}]}]}))
    .unwrap()
    .to_value();
    assert_eq!(both["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(both["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
    assert_eq!(both["spec"]["egress"][0]["ports"][0]["protocol"], "UDP");
    // Given types are kept: an egress-only policy isolates no pod's ingress.
    let egress_only = policy(json!({"podSelector": {}, "policyTypes": ["Egress"]})).unwrap();
    let spec = egress_only
        .downcast_ref::<NetworkPolicy>()
        .unwrap()
        .spec
        .clone()
        .unwrap();
    assert!(applies_to(&spec, EGRESS) && !applies_to(&spec, INGRESS));
}

#[test]
fn bad_ports_are_refused_with_kubernetes_messages() {
    let ports = |ports: Value| policy(json!({"podSelector": {}, "ingress": [{"ports": ports}]})).unwrap_err();
    assert_eq!(
        ports(json!([{"port": 0}, {"protocol": "ICMP"}])),
        [
            "spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ingress[0].ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\""
        ]
    );
    assert_eq!(
        ports(json!([{"endPort": 90}, {"port": 100, "endPort": 90}, {"port": "http", "endPort": 90}])),
        [
            "spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is not specified",
            "spec.ingress[0].ports[1].endPort: Invalid value: 100: must be greater than or equal to `port`",
            "spec.ingress[0].ports[2].endPort: Invalid value: 90: may not be specified when `port` is non-numeric"
        ]
    );
    assert_eq!(
        ports(json!([{"port": "Not_A_Name"}])),
        [
            "spec.ingress[0].ports[0].port: Invalid value: \"Not_A_Name\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
        ]
    );
    policy(json!({"podSelector": {}, "ingress": [{"ports": [{"port": 80, "endPort": 90}, {"port": "http"}, {}]}]}))
        .unwrap();
}

#[test]
fn bad_peers_and_blocks_are_refused_with_kubernetes_messages() {
    let peers = |peers: Value| policy(json!({"podSelector": {}, "egress": [{"to": peers}]})).unwrap_err();
    assert_eq!(
        peers(json!([{}, {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}])),
        [
            "spec.egress[0].to[0]: Required value: must specify a peer",
            "spec.egress[0].to[1]: Forbidden: may not specify both ipBlock and another peer"
        ]
    );
    assert_eq!(
        peers(json!([{"ipBlock": {"cidr": "10.0.0.0/33"}},
                     {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24", "10.0.0.0/16", "10.0.0.0/x"]}},
                     {"ipBlock": {"cidr": ""}}])),
        [
            "spec.egress[0].to[0].ipBlock.cidr: Invalid value: \"10.0.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            "spec.egress[0].to[1].ipBlock.except[0]: Invalid value: \"10.1.0.0/24\": must be a strict subset of `cidr`",
            "spec.egress[0].to[1].ipBlock.except[1]: Invalid value: \"10.0.0.0/16\": must be a strict subset of `cidr`",
            "spec.egress[0].to[1].ipBlock.except[2]: Invalid value: \"10.0.0.0/x\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            "spec.egress[0].to[2].ipBlock.cidr: Required value"
        ]
    );
    assert_eq!(
        policy(
            json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]},
                      "policyTypes": ["Ingress", "Sideways"]})
        )
        .unwrap_err(),
        [
            "spec.podSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
            "spec.policyTypes[1]: Unsupported value: \"Sideways\": supported values: \"Ingress\", \"Egress\""
        ]
    );
    // Both selectors together name the pods of the selected namespaces; an IPv6 or
    // sloppy (host bits set) block is valid, as in Kubernetes.
    policy(json!({"podSelector": {}, "ingress": [{"from": [
        {"podSelector": {"matchLabels": {"app": "web"}}, "namespaceSelector": {}},
        {"ipBlock": {"cidr": "10.0.0.1/8", "except": ["10.1.0.0/16"]}},
        {"ipBlock": {"cidr": "2001:db8::/64"}}]}]}))
    .unwrap();
}

#[test]
fn the_row_shows_the_pod_selector() {
    let object = policy(json!({"podSelector": {"matchLabels": {"app": "db"}}})).unwrap();
    let row = cells(&object, SystemTime::now());
    assert_eq!(row[..2], [json!("web"), json!("app=db")]);
    let all = policy(json!({"podSelector": {}})).unwrap();
    assert_eq!(cells(&all, SystemTime::now())[1], "<none>");
}
