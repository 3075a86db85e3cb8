//! The files of ConfigMap, Secret, downward API and projected volumes: items, modes,
//! optional sources and the kubelet's errors.

use serde_json::{Value, json};

use super::*;

fn pod(volumes: Value) -> Pod {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "prod", "uid": "uid-1",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": "say \"hi\"\n\tbye\\"}},
        "spec": {"nodeName": "node-a", "volumes": volumes, "containers": [{"name": "app",
            "resources": {"limits": {"memory": "64Mi"}}}]}}))
    .unwrap()
}

fn objects() -> ConfigObjects {
    let mut objects = ConfigObjects::default();
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
        "data": {"mode": "fast", "level": "3"}, "binaryData": {"raw": "aGk="}});
    objects.insert(Source::ConfigMap, "prod", "cfg", Some(&config));
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
        "data": {"password": "aHVudGVyMg=="}});
    objects.insert(Source::Secret, "prod", "db", Some(&secret));
    objects.insert(Source::ConfigMap, "prod", "absent", None);
    objects.insert(Source::Secret, "prod", "absent", None);
    objects
}

fn files_of(volume: Value) -> Result<Vec<(String, String, u32)>, ProjectionError> {
    let pod = pod(json!([volume]));
    let objects = objects();
    let node = NodeFacts {
        host_ip: "10.0.0.5".into(),
        cpu_millis: 4000,
        memory_bytes: 8 << 30,
    };
    let inputs = Inputs {
        pod: &pod,
        objects: &objects,
        node: &node,
    };
    let volume = &pod.spec.volumes.as_ref().unwrap()[0];
    payload(volume, &inputs).expect("a volume with files").map(|payload| {
        payload
            .into_iter()
            .map(|(path, file)| (path, String::from_utf8_lossy(&file.data).into_owned(), file.mode))
            .collect()
    })
}

fn file(path: &str, data: &str, mode: u32) -> (String, String, u32) {
    (path.to_string(), data.to_string(), mode)
}

#[test]
fn every_key_is_a_file_with_the_default_mode() {
    assert_eq!(
        files_of(json!({"name": "v", "configMap": {"name": "cfg"}})).unwrap(),
        [
            file("level", "3", 0o644),
            file("mode", "fast", 0o644),
            file("raw", "hi", 0o644)
        ]
    );
    assert_eq!(
        files_of(json!({"name": "v", "secret": {"secretName": "db", "defaultMode": 0o400}})).unwrap(),
        [file("password", "hunter2", 0o400)]
    );
}

#[test]
fn items_choose_keys_paths_and_modes() {
    let files = files_of(json!({"name": "v", "configMap": {"name": "cfg", "defaultMode": 0o440,
        "items": [{"key": "mode", "path": "conf/mode.txt"}, {"key": "level", "path": "level", "mode": 0o600}]}}));
    assert_eq!(
        files.unwrap(),
        [file("conf/mode.txt", "fast", 0o440), file("level", "3", 0o600)]
    );
}

#[test]
fn what_is_missing_is_named_as_the_kubelet_does_unless_optional() {
    let missing = |v: Value| match files_of(v) {
        Err(ProjectionError::Missing(m)) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        missing(json!({"name": "v", "configMap": {"name": "absent"}})),
        "configmap \"absent\" not found"
    );
    assert_eq!(
        missing(json!({"name": "v", "secret": {"secretName": "absent"}})),
        "secret \"absent\" not found"
    );
    assert_eq!(
        missing(json!({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "nope", "path": "p"}]}})),
        "configmap references non-existent config key: nope"
    );
    assert_eq!(
        missing(json!({"name": "v", "secret": {"secretName": "db", "items": [{"key": "nope", "path": "p"}]}})),
        "references non-existent secret key: nope"
    );
    assert_eq!(
        files_of(json!({"name": "v", "configMap": {"name": "absent", "optional": true}})).unwrap(),
        []
    );
    let optional_key = json!({"name": "v", "configMap": {"name": "cfg", "optional": true,
        "items": [{"key": "nope", "path": "p"}, {"key": "mode", "path": "m"}]}});
    assert_eq!(files_of(optional_key).unwrap(), [file("m", "fast", 0o644)]);
    assert_eq!(
        files_of(json!({"name": "v", "configMap": {"name": "unread"}})),
        Err(ProjectionError::NotReadYet)
    );
}

#[test]
fn the_downward_api_writes_fields_and_maps_as_kubernetes_does() {
    let files = files_of(json!({"name": "v", "downwardAPI": {"items": [
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
        {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}, "mode": 0o400},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        {"path": "tier", "fieldRef": {"fieldPath": "metadata.labels['tier']"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}},
        {"path": "cpu", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu", "divisor": "1m"}}]}}));
    assert_eq!(
        files.unwrap(),
        [
            file("annotations", "note=\"say \\\"hi\\\"\\n\\tbye\\\\\"", 0o644),
            file("cpu", "4000", 0o644),
            file("labels", "app=\"web\"\ntier=\"front\"", 0o644),
            file("mem", "64", 0o644),
            file("name", "web", 0o644),
            file("ns", "prod", 0o644),
            file("tier", "front", 0o644),
            file("uid", "uid-1", 0o400),
        ]
    );
}

#[test]
fn projected_volumes_merge_their_sources_under_one_default_mode() {
    let files = files_of(json!({"name": "v", "projected": {"defaultMode": 0o440, "sources": [
        {"configMap": {"name": "cfg", "items": [{"key": "mode", "path": "mode"}]}},
        {"secret": {"name": "db"}},
        {"secret": {"name": "absent", "optional": true}},
        {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}]}}));
    assert_eq!(
        files.unwrap(),
        [
            file("mode", "fast", 0o440),
            file("name", "web", 0o440),
            file("password", "hunter2", 0o440)
        ]
    );
}

#[test]
fn a_service_account_token_is_the_token_asked_for_its_audience_and_lifetime() {
    let volume = json!({"name": "kube-api-access-x1y2z", "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
        {"serviceAccountToken": {"path": "vault-token", "audience": "vault"}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}});
    let pod = pod(json!([volume]));
    let node = NodeFacts {
        host_ip: "10.0.0.5".into(),
        cpu_millis: 4000,
        memory_bytes: 8 << 30,
    };
    // ((audience, lifetime), the token or why there is none)
    type Given<'a> = ((&'a str, i64), Result<&'a str, &'a str>);
    let files = |tokens: &[Given<'_>]| {
        let mut objects = objects();
        let issued = tokens
            .iter()
            .map(|((audience, life), token)| {
                let key = ("uid-1".to_string(), audience.to_string(), *life);
                (key, token.map(str::to_string).map_err(str::to_string))
            })
            .collect();
        objects.set_tokens(issued);
        let inputs = Inputs {
            pod: &pod,
            objects: &objects,
            node: &node,
        };
        payload(&pod.spec.volumes.as_ref().unwrap()[0], &inputs)
            .unwrap()
            .map(|p| {
                p.into_iter()
                    .map(|(path, f)| (path, String::from_utf8(f.data).unwrap(), f.mode))
                    .collect::<Vec<_>>()
            })
    };
    // Not asked for yet: the volume waits.
    assert_eq!(files(&[(("", 3607), Ok("t1"))]), Err(ProjectionError::NotReadYet));
    // Refused: the refusal is the volume's error (the pod's FailedMount).
    assert_eq!(
        files(&[(("", 3607), Ok("t1")), (("vault", 3600), Err("forbidden"))]),
        Err(ProjectionError::Missing("forbidden".into()))
    );
    assert_eq!(
        files(&[(("", 3607), Ok("t1")), (("vault", 3600), Ok("t2"))]).unwrap(),
        [
            file("namespace", "prod", 0o644),
            file("token", "t1", 0o644),
            file("vault-token", "t2", 0o644)
        ]
    );
}

#[test]
fn go_quoting() {
    assert_eq!(go_quote("plain"), "\"plain\"");
    assert_eq!(go_quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\x01é\"");
}
