//! NetworkPolicies over the API: defaults on create, Kubernetes' refusals, and the
//! table kubectl prints.

use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_policies_are_defaulted_refused_and_listed() {
    let server = start().await;
    let path = "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies";
    let policy = |name: &str, spec: serde_json::Value| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": name}, "spec": spec})
    };
    let created = server
        .send_json(
            "POST",
            path,
            &policy(
                "web",
                json!({"podSelector": {"matchLabels": {"app": "web"}},
                       "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
                                    "ports": [{"port": 8080}]}]}),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.json());
    let created = created.json();
    assert_eq!(created["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(created["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");

    let refused = server
        .send_json(
            "POST",
            path,
            &policy(
                "bad",
                json!({"podSelector": {}, "ingress": [{"from": [
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}, {}]}]}),
            ),
        )
        .await;
    assert_eq!(refused.status, 422);
    assert_eq!(
        refused.json()["message"],
        "NetworkPolicy.networking.k8s.io \"bad\" is invalid: [spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: \
         \"11.0.0.0/16\": must be a strict subset of `cidr`, spec.ingress[0].from[1]: Required value: must specify a peer]"
    );
    assert_eq!(refused.json()["details"]["causes"][1]["reason"], "FieldValueRequired");

    let table = server
        .call(
            "GET",
            path,
            &[("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")],
            Vec::new(),
        )
        .await
        .json();
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Name", "Pod-Selector", "Age"]);
    assert_eq!(
        (&table["rows"][0]["cells"][0], &table["rows"][0]["cells"][1]),
        (&json!("web"), &json!("app=web"))
    );
}
