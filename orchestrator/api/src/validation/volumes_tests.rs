use k8s_openapi::api::core::v1::{Container, PodSpec, Volume};

use super::super::NOT_IMPLEMENTED;
use super::*;

fn errors_of(spec: serde_json::Value) -> Vec<String> {
    let spec: PodSpec = serde_json::from_value(spec).expect("a pod spec");
    let mut errors = Vec::new();
    pod_spec(&spec, "spec", &mut errors);
    errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect()
}

fn with(volumes: serde_json::Value, mounts: serde_json::Value) -> Vec<String> {
    errors_of(serde_json::json!({
        "containers": [{"name": "app", "image": "busybox", "volumeMounts": mounts}],
        "volumes": volumes,
    }))
}

#[test]
fn the_implemented_sources_are_accepted() {
    let errors = with(
        serde_json::json!([
            {"name": "scratch", "emptyDir": {}},
            {"name": "ram", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
            {"name": "logs", "hostPath": {"path": "/var/log", "type": "Directory"}},
            {"name": "cfg", "configMap": {"name": "app", "defaultMode": 0o440,
                "items": [{"key": "a.conf", "path": "conf/a", "mode": 0o400}], "optional": true}},
            {"name": "creds", "secret": {"secretName": "db"}},
            {"name": "info", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "tier", "fieldRef": {"fieldPath": "metadata.labels['tier']"}},
                {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory"}}]}},
            {"name": "all", "projected": {"sources": [
                {"configMap": {"name": "app"}}, {"secret": {"name": "db"}},
                {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}]}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "data", "readOnly": true}},
        ]),
        serde_json::json!([
            {"name": "scratch", "mountPath": "/scratch"},
            {"name": "cfg", "mountPath": "/etc/app", "readOnly": true},
            {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "conf/a"},
            {"name": "data", "mountPath": "/data", "mountPropagation": "None"},
        ]),
    );
    assert_eq!(errors, Vec::<String>::new());
}

#[test]
fn names_must_be_unique_dns_labels_with_one_source() {
    let errors = with(
        serde_json::json!([
            {"name": "a", "emptyDir": {}},
            {"name": "a", "emptyDir": {}},
            {"name": "Bad_Name", "emptyDir": {}},
            {"name": "none"},
            {"name": "two", "emptyDir": {}, "hostPath": {"path": "/tmp"}},
        ]),
        serde_json::json!([]),
    );
    assert_eq!(
        errors,
        [
            "spec.volumes[1].name: Duplicate value: \"a\"",
            "spec.volumes[2].name: \"Bad_Name\" is not a DNS label",
            "spec.volumes[3]: Required value: must specify a volume type",
            "spec.volumes[4].hostPath: Forbidden: may not specify more than 1 volume type",
        ]
    );
}

#[test]
fn other_sources_are_refused_by_name() {
    let volumes: Vec<Volume> = serde_json::from_value(serde_json::json!([
        {"name": "n", "nfs": {"server": "s", "path": "/x"}},
        {"name": "i", "iscsi": {"targetPortal": "p", "iqn": "q", "lun": 0}},
        {"name": "c", "csi": {"driver": "d"}},
        {"name": "e", "ephemeral": {}},
        {"name": "im", "image": {"reference": "busybox"}},
        {"name": "b", "projected": {"sources": [{"clusterTrustBundle": {"path": "ca"}}]}},
    ]))
    .unwrap();
    let spec = spec_with(volumes);
    let mut errors = Vec::new();
    pod_spec(&spec, "spec", &mut errors);
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.volumes[0].nfs",
            "spec.volumes[1].iscsi",
            "spec.volumes[2].csi",
            "spec.volumes[3].ephemeral",
            "spec.volumes[4].image",
            "spec.volumes[5].projected.sources[0].clusterTrustBundle",
        ]
    );
    assert!(
        errors.iter().all(|e| e.message.starts_with(NOT_IMPLEMENTED)),
        "{errors:?}"
    );
}

#[test]
fn mounts_name_a_volume_at_a_unique_absolute_path() {
    let errors = with(
        serde_json::json!([{"name": "v", "emptyDir": {}}]),
        serde_json::json!([
            {"name": "missing", "mountPath": "/a"},
            {"name": "v", "mountPath": "relative"},
            {"name": "v", "mountPath": "/c:d"},
            {"name": "v", "mountPath": "/e"},
            {"name": "v", "mountPath": "/e/"},
            {"name": "v", "mountPath": "/f", "subPath": "/abs"},
            {"name": "v", "mountPath": "/g", "subPath": "a/../../b"},
            {"name": "v", "mountPath": "/h", "subPath": "..hidden/ok"},
            {"name": "v", "mountPath": "/i", "subPathExpr": "$(POD)"},
            {"name": "v", "mountPath": "/j", "mountPropagation": "Bidirectional"},
        ]),
    );
    let m = "spec.containers[0].volumeMounts";
    assert_eq!(
        errors,
        [
            format!("{m}[0].name: Not found: \"missing\""),
            format!("{m}[1].mountPath: Invalid value: \"relative\": must be an absolute path"),
            format!("{m}[2].mountPath: Invalid value: \"/c:d\": must not contain ':'"),
            format!("{m}[4].mountPath: Invalid value: \"/e/\": must be unique"),
            format!("{m}[5].subPath: Invalid value: \"/abs\": must be a relative path"),
            format!("{m}[6].subPath: Invalid value: \"a/../../b\": must not contain '..'"),
            format!("{m}[8].subPathExpr: {NOT_IMPLEMENTED}"),
            format!("{m}[9].mountPropagation: {NOT_IMPLEMENTED} (only None)"),
        ]
    );
}

#[test]
fn items_paths_modes_and_host_path_types_are_checked() {
    let errors = with(
        serde_json::json!([
            {"name": "a", "configMap": {"name": "c", "defaultMode": 0o1000,
                "items": [{"key": "k", "path": "/etc/k"}, {"key": "k", "path": "../k"},
                          {"key": "k", "path": "..k"}, {"key": "k", "path": "k", "mode": -1}]}},
            {"name": "b", "hostPath": {"path": "/x", "type": "Pipe"}},
            {"name": "c", "hostPath": {"path": "rel"}},
            {"name": "d", "secret": {}},
            {"name": "disk", "emptyDir": {"sizeLimit": "1Gi"}},
            {"name": "e", "downwardAPI": {"items": [
                {"path": "p", "fieldRef": {"fieldPath": "spec.nodeName"}},
                {"path": "q", "resourceFieldRef": {"resource": "limits.cpu"}}]}},
            {"name": "f", "projected": {"sources": [
                {"configMap": {"name": "x", "items": [{"key": "a", "path": "same"}]}},
                {"secret": {"name": "y", "items": [{"key": "b", "path": "same"}]}}]}},
        ]),
        serde_json::json!([]),
    );
    let v = "spec.volumes";
    assert_eq!(
        errors,
        [
            format!("{v}[0].configMap.defaultMode: Invalid value: 512: {MODE_MESSAGE}"),
            format!("{v}[0].configMap.items[0].path: Invalid value: \"/etc/k\": must be a relative path"),
            format!("{v}[0].configMap.items[1].path: Invalid value: \"../k\": must not contain '..'"),
            format!("{v}[0].configMap.items[2].path: Invalid value: \"..k\": must not start with '..'"),
            format!("{v}[0].configMap.items[3].mode: Invalid value: -1: {MODE_MESSAGE}"),
            format!(
                "{v}[1].hostPath.type: Unsupported value: \"Pipe\": supported values: \"\", \"DirectoryOrCreate\", \
                 \"Directory\", \"FileOrCreate\", \"File\", \"Socket\", \"CharDevice\", \"BlockDevice\""
            ),
            format!("{v}[2].hostPath.path: must be an absolute path"),
            format!("{v}[3].secret.secretName: Required value"),
            format!(
                "{v}[4].emptyDir.sizeLimit: {NOT_IMPLEMENTED} (only with medium: Memory, as the size of its tmpfs)"
            ),
            format!(
                "{v}[5].downwardAPI.items[0].fieldRef.fieldPath: Unsupported value: \"spec.nodeName\": supported \
                 values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"metadata.labels\", \
                 \"metadata.annotations\""
            ),
            format!("{v}[5].downwardAPI.items[1].resourceFieldRef.containerName: Required value"),
            format!("{v}[6].projected.sources[1].secret.items[0].path: conflicting duplicate paths \"same\""),
        ]
    );
}

#[test]
fn a_projected_token_needs_a_relative_path_and_a_life_of_ten_minutes_to_2_32_seconds() {
    let volumes: Vec<Volume> = serde_json::from_value(serde_json::json!([
        {"name": "ok", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 600, "audience": "vault"}},
            {"serviceAccountToken": {"path": "other"}}]}},
        {"name": "bad", "projected": {"sources": [
            {"serviceAccountToken": {"path": "/abs", "expirationSeconds": 599}},
            {"serviceAccountToken": {"path": "", "expirationSeconds": 4294967297_i64}},
            {"serviceAccountToken": {"path": "t"}},
            {"secret": {"name": "s", "items": [{"key": "k", "path": "t"}]}}]}},
    ]))
    .unwrap();
    let spec = spec_with(volumes);
    let mut errors = Vec::new();
    pod_spec(&spec, "spec", &mut errors);
    let found: Vec<(&str, &str)> = errors.iter().map(|e| (e.field.as_str(), e.message.as_str())).collect();
    let at = "spec.volumes[1].projected.sources";
    assert_eq!(
        found,
        [
            (
                &*format!("{at}[0].serviceAccountToken.path"),
                "Invalid value: \"/abs\": must be a relative path"
            ),
            (
                &*format!("{at}[0].serviceAccountToken.expirationSeconds"),
                "Invalid value: 599: may not specify a duration less than 10 minutes"
            ),
            (&*format!("{at}[1].serviceAccountToken.path"), "Required value"),
            (
                &*format!("{at}[1].serviceAccountToken.expirationSeconds"),
                "Invalid value: 4294967297: may not specify a duration larger than 2^32 seconds"
            ),
            (
                &*format!("{at}[3].secret.items[0].path"),
                "conflicting duplicate paths \"t\""
            ),
        ]
    );
}

/// A pod spec of one container, `app`, with `volumes`.
fn spec_with(volumes: Vec<Volume>) -> PodSpec {
    PodSpec {
        containers: vec![Container {
            name: "app".into(),
            ..Default::default()
        }],
        volumes: Some(volumes),
        ..Default::default()
    }
}
