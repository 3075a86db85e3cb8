use k8s_openapi::api::core::v1::{Container, LocalObjectReference};
use serde_json::json;

use super::*;

fn spec(value: serde_json::Value) -> PodSpec {
    serde_json::from_value(value).unwrap()
}

fn two_containers() -> PodSpec {
    spec(
        json!({"initContainers": [{"name": "init"}], "containers": [{"name": "a"},
        {"name": "b", "volumeMounts": [{"name": "mine", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount/"}]}]}),
    )
}

#[test]
fn the_default_account_the_volume_and_its_mounts() {
    let mut pod = two_containers();
    admit("dev", &mut pod, Some(&ServiceAccount::default()), true, "abcde").unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("default"));
    assert_eq!(pod.service_account.as_deref(), Some("default"));
    let value = serde_json::to_value(&pod).unwrap();
    assert_eq!(
        value["volumes"],
        json!([{"name": "kube-api-access-abcde", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}])
    );
    let mount = json!({"name": "kube-api-access-abcde",
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true});
    assert_eq!(value["initContainers"][0]["volumeMounts"], json!([mount]));
    assert_eq!(value["containers"][0]["volumeMounts"], json!([mount]));
    assert_eq!(
        value["containers"][1]["volumeMounts"].as_array().unwrap().len(),
        1,
        "a container that mounts the path itself keeps its own"
    );
}

#[test]
fn automount_false_on_the_pod_or_the_account_mounts_nothing() {
    let opted_out = ServiceAccount {
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    let mut pod = two_containers();
    admit("dev", &mut pod, Some(&opted_out), true, "abcde").unwrap();
    assert!(pod.volumes.is_none());
    // The pod's word wins over the account's.
    let mut pod = two_containers();
    pod.automount_service_account_token = Some(true);
    admit("dev", &mut pod, Some(&opted_out), true, "abcde").unwrap();
    assert_eq!(pod.volumes.unwrap().len(), 1);
    let mut pod = two_containers();
    pod.automount_service_account_token = Some(false);
    admit("dev", &mut pod, Some(&ServiceAccount::default()), true, "abcde").unwrap();
    assert!(pod.volumes.is_none());
    // Nor where the cluster does not mount tokens.
    let mut pod = PodSpec {
        containers: vec![Container::default()],
        ..Default::default()
    };
    admit("dev", &mut pod, Some(&ServiceAccount::default()), false, "abcde").unwrap();
    assert!(pod.volumes.is_none());
}

#[test]
fn a_missing_account_refuses_and_pull_secrets_are_inherited() {
    let mut pod = spec(json!({"serviceAccountName": "builder", "containers": []}));
    assert_eq!(
        admit("dev", &mut pod, None, true, "abcde").unwrap_err(),
        "error looking up service account dev/builder: serviceaccount \"builder\" not found"
    );
    let account = ServiceAccount {
        image_pull_secrets: Some(vec![LocalObjectReference { name: "reg".into() }]),
        ..Default::default()
    };
    let mut pod = spec(json!({"containers": []}));
    admit("dev", &mut pod, Some(&account), false, "abcde").unwrap();
    assert_eq!(pod.image_pull_secrets.unwrap()[0].name, "reg");
    let mut own = spec(json!({"containers": [], "imagePullSecrets": [{"name": "mine"}]}));
    admit("dev", &mut own, Some(&account), false, "abcde").unwrap();
    assert_eq!(own.image_pull_secrets.unwrap()[0].name, "mine");
}
