//! The decoder on whole bodies: envelopes built here byte by byte, bodies kubectl
//! 1.32 sent (captured in `testdata/`, compared with what `kubectl create ...
//! --dry-run=client -o json` prints for the same command), and the table checked
//! field by field against the JSON schemas of the kinds served.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::descriptor::{self, ValueType};
use super::wire::testing::{bytes, envelope as body, int, message};
use super::*;

fn metadata(name: &str) -> Vec<u8> {
    bytes(1, message(&[bytes(1, name), bytes(8, [])]))
}

#[test]
fn a_namespace_body_reads_as_its_json() {
    let namespace = decode(&body(
        "v1",
        "Namespace",
        &message(&[metadata("team-a"), bytes(2, []), bytes(3, [])]),
    ))
    .unwrap();
    assert_eq!(
        namespace,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}, "spec": {}, "status": {}})
    );
}

#[test]
fn a_deployment_body_reads_as_its_json() {
    // Deployment { 1 metadata, 2 spec { 1 replicas, 2 selector, 3 template } }
    let selector = message(&[bytes(1, message(&[bytes(1, "app"), bytes(2, "web")]))]);
    let container = message(&[
        bytes(1, "nginx"),
        bytes(2, "nginx"),
        bytes(4, "sleep"),
        bytes(4, "1000"),
    ]);
    let template = message(&[
        bytes(1, message(&[bytes(11, message(&[bytes(1, "app"), bytes(2, "web")]))])),
        bytes(2, message(&[bytes(2, container)])),
    ]);
    let spec = message(&[int(1, 3), bytes(2, selector), bytes(3, template)]);
    let deployment = decode(&body(
        "apps/v1",
        "Deployment",
        &message(&[metadata("web"), bytes(2, spec)]),
    ))
    .unwrap();
    assert_eq!(
        deployment,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx", "args": ["sleep", "1000"]}]},
                },
            },
        })
    );
}

#[test]
fn a_network_policy_body_reads_as_its_json() {
    // NetworkPolicy { 1 metadata, 2 spec { 1 podSelector, 2 ingress { 1 ports
    // { 1 protocol, 2 port, 3 endPort }, 2 from { 3 ipBlock { 1 cidr, 2 except } } },
    // 4 policyTypes } }; endPort is a pointer, so a zero one is the client's.
    let selector = message(&[bytes(1, message(&[bytes(1, "app"), bytes(2, "db")]))]);
    let port = message(&[
        bytes(1, "TCP"),
        bytes(2, message(&[int(1, 0), int(2, 5432)])),
        int(3, 0),
    ]);
    let block = message(&[bytes(1, "10.0.0.0/8"), bytes(2, "10.1.0.0/16")]);
    let rule = message(&[bytes(1, port), bytes(2, message(&[bytes(3, block)]))]);
    let spec = message(&[bytes(1, selector), bytes(2, rule), bytes(4, "Ingress")]);
    let policy = decode(&body(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        &message(&[metadata("db"), bytes(2, spec)]),
    ))
    .unwrap();
    assert_eq!(
        policy,
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "db"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "db"}},
                "ingress": [{"ports": [{"protocol": "TCP", "port": 5432, "endPort": 0}],
                             "from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}],
                "policyTypes": ["Ingress"],
            },
        })
    );
}

#[test]
fn delete_options_of_any_group_are_meta_v1s() {
    // DeleteOptions: 1 gracePeriodSeconds (*int64), 4 propagationPolicy (*string).
    let raw = message(&[int(1, 0), bytes(4, "Background")]);
    for api_version in ["v1", "apps/v1", "meta.k8s.io/v1"] {
        let options = decode(&body(api_version, "DeleteOptions", &raw)).unwrap();
        assert_eq!(options["gracePeriodSeconds"], 0, "{api_version}");
        assert_eq!(options["propagationPolicy"], "Background", "{api_version}");
    }
}

#[test]
fn bodies_that_cannot_be_read_are_400s_that_say_why() {
    let error = |bytes: &[u8]| {
        let e = decode(bytes).unwrap_err();
        assert_eq!((e.code, e.reason), (400, "BadRequest"), "{e}");
        e.message
    };
    assert!(error(br#"{"kind": "Pod"}"#).contains("magic bytes"));
    let unknown = error(&body("batch/v1", "Job", &[]));
    assert_eq!(
        unknown,
        "cannot decode kind \"Job\" of apiVersion \"batch/v1\" from protobuf: the server does not know that message"
    );
    assert!(error(&body("v1", "", &[])).contains("names no kind"));
    let broken = error(&body("v1", "Pod", &[0x0a, 0x05, 0x0a]));
    assert!(
        broken.starts_with("the protobuf request body is malformed: v1 Pod: "),
        "{broken}"
    );
    let wrong = error(&body("v1", "Pod", &message(&[bytes(1, message(&[int(1, 7)]))])));
    assert_eq!(
        wrong,
        "the protobuf request body is malformed: v1 Pod: metadata.name: a varint value where a String belongs"
    );
    let mut gzipped = b"k8s\0".to_vec();
    gzipped.extend(message(&[
        bytes(1, message(&[bytes(1, "v1"), bytes(2, "Pod")])),
        bytes(3, "gzip"),
    ]));
    assert!(error(&gzipped).contains("content encoding \"gzip\""));
    let mut truncated = body("v1", "Pod", &[]);
    truncated.truncate(8);
    assert!(error(&truncated).starts_with("the protobuf request body is malformed: the envelope: "));
}

#[test]
fn flat_kinds_decode() {
    // ConfigMap (no spec): 1 metadata, 2 data.
    let raw = message(&[metadata("settings"), bytes(2, message(&[bytes(1, "k"), bytes(2, "v")]))]);
    let config_map = decode(&body("v1", "ConfigMap", &raw)).unwrap();
    assert_eq!(config_map["data"], json!({"k": "v"}));
}

/// Bodies kubectl 1.32 sent to a recording proxy (testdata/README.md says which).
mod kubectl {
    use super::*;

    fn read(name: &str) -> Value {
        let path = format!("{}/src/protobuf/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        decode(&bytes).unwrap()
    }

    #[test]
    fn create_deployment() {
        let deployment = read("create-deployment.pb");
        assert_eq!(
            deployment,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{
                            "name": "nginx",
                            "image": "nginx",
                            "command": ["sleep", "1000"],
                            "resources": {},
                        }]},
                    },
                    "strategy": {},
                },
                "status": {},
            })
        );
    }

    #[test]
    fn create_namespace() {
        assert_eq!(
            read("create-namespace.pb"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}, "spec": {}, "status": {}})
        );
    }

    #[test]
    fn create_deployment_with_zero_replicas() {
        // replicas is a pointer in Go: a zero on the wire is the client's zero, not
        // "unset" (which would default to 1).
        let deployment = read("create-deployment-zero-replicas.pb");
        assert_eq!(deployment["metadata"]["name"], "zero");
        assert_eq!(deployment["spec"]["replicas"], 0);
    }

    #[test]
    fn drain_delete_options() {
        // `kubectl drain --disable-eviction` deletes each pod with empty options.
        assert_eq!(
            read("drain-delete-options.pb"),
            json!({"apiVersion": "v1", "kind": "DeleteOptions"})
        );
    }
}

#[test]
fn an_eviction_carries_its_delete_options() {
    // Eviction: 1 metadata, 2 deleteOptions { 1 gracePeriodSeconds, 2 preconditions
    // { 2 resourceVersion }, 5 dryRun }.
    let options = message(&[int(1, 30), bytes(2, message(&[bytes(2, "42")])), bytes(5, "All")]);
    let meta = bytes(1, message(&[bytes(1, "web-1"), bytes(3, "default")]));
    let eviction = decode(&body("policy/v1", "Eviction", &message(&[meta, bytes(2, options)]))).unwrap();
    assert_eq!(
        eviction,
        json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": "web-1", "namespace": "default"},
            "deleteOptions": {
                "gracePeriodSeconds": 30,
                "preconditions": {"resourceVersion": "42"},
                "dryRun": ["All"],
            },
        })
    );
}

/// Every object schema the server publishes (OpenAPI, from the kinds' Rust types)
/// has exactly the fields of the message of the same name, by JSON name, with the
/// embedded (inline) structs' fields in their parent.
#[test]
fn json_names_match_the_published_schemas() {
    let mut compared = 0;
    for document in [
        "api/v1",
        "apis/apps/v1",
        "apis/autoscaling/v2",
        "apis/autoscaling/v1",
        "apis/rbac.authorization.k8s.io/v1",
    ] {
        let document = crate::openapi::group_version_document(document).unwrap();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        for (name, schema) in schemas {
            let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                continue;
            };
            let Some(rest) = name.strip_prefix("io.k8s.") else {
                continue;
            };
            let message = descriptor::message(&format!("k8s.io.{rest}"))
                .unwrap_or_else(|| panic!("no message for the schema {name}"));
            let in_message = json_names(message);
            // apiVersion and kind of an object travel in the envelope, not in its
            // message; a field of that name elsewhere (AzureDiskVolumeSource.kind) is
            // a field like any other.
            let in_schema: BTreeSet<&str> = properties
                .keys()
                .map(String::as_str)
                .filter(|p| !matches!(*p, "apiVersion" | "kind") || in_message.contains(p))
                .collect();
            assert_eq!(in_message, in_schema, "{name}");
            compared += 1;
        }
    }
    assert!(compared > 50, "only {compared} schemas compared");
}

fn json_names(message: &descriptor::Message) -> BTreeSet<&'static str> {
    let mut names = BTreeSet::new();
    for field in message.fields {
        match (field.is_inline, field.value) {
            (true, ValueType::Message(index)) => names.extend(json_names(descriptor::at(index))),
            _ => {
                names.insert(field.json_name);
            }
        }
    }
    names
}
