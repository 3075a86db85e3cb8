//! The environment built from ConfigMaps, Secrets, the pod's fields and the
//! containers' resources, and the kubelet's errors for what is missing.

use serde_json::{Value, json};

use super::*;

fn pod(containers: Value) -> Pod {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "prod", "uid": "uid-1",
            "labels": {"app": "web"}, "annotations": {"note": "hello"}},
        "spec": {"nodeName": "node-a", "containers": containers}}))
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

fn node() -> NodeFacts {
    NodeFacts {
        host_ip: "10.0.0.5".into(),
        cpu_millis: 4000,
        memory_bytes: 8 << 30,
    }
}

fn resolve_one(container: Value) -> Result<Vec<(String, String)>, EnvError> {
    let pod = pod(json!([container]));
    resolve(
        &pod,
        &pod.spec.containers[0],
        &objects(),
        &node(),
        "10.244.0.7".parse().ok(),
    )
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn env_from_comes_first_with_its_prefix_and_env_overrides_it() {
    let env = resolve_one(json!({"name": "app",
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"secretRef": {"name": "db"}},
            {"configMapRef": {"name": "absent", "optional": true}}],
        "env": [{"name": "CFG_mode", "value": "slow"},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "level"}}},
            {"name": "MISSING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope", "optional": true}}},
            {"name": "GONE", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": true}}}]}))
    .unwrap();
    assert_eq!(
        env,
        pairs(&[
            ("CFG_level", "3"),
            ("CFG_mode", "slow"),
            ("CFG_raw", "hi"),
            ("password", "hunter2"),
            ("PASSWORD", "hunter2"),
            ("LEVEL", "3"),
        ])
    );
}

#[test]
fn what_is_missing_is_named_as_the_kubelet_names_it_without_values() {
    let missing =
        |env: Value, env_from: Value| match resolve_one(json!({"name": "app", "env": env, "envFrom": env_from})) {
            Err(EnvError::Missing(message)) => message,
            other => panic!("{other:?}"),
        };
    assert_eq!(
        missing(json!([]), json!([{"configMapRef": {"name": "absent"}}])),
        "configmap \"absent\" not found"
    );
    assert_eq!(
        missing(json!([]), json!([{"secretRef": {"name": "absent"}}])),
        "secret \"absent\" not found"
    );
    assert_eq!(
        missing(
            json!([{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope"}}}]),
            json!([])
        ),
        "couldn't find key nope in ConfigMap prod/cfg"
    );
    assert_eq!(
        missing(
            json!([{"name": "A", "valueFrom": {"secretKeyRef": {"name": "db", "key": "user"}}}]),
            json!([])
        ),
        "couldn't find key user in Secret prod/db"
    );
    let unread = json!([{"name": "A", "valueFrom": {"secretKeyRef": {"name": "unread", "key": "k"}}}]);
    assert_eq!(
        resolve_one(json!({"name": "app", "env": unread})),
        Err(EnvError::NotReadYet),
        "not an error to report: the next pass reads it"
    );
    let printed = format!("{:?}", objects());
    assert!(printed.contains("Secret prod/db keys password"), "{printed}");
    assert!(printed.contains("ConfigMap prod/absent not found"), "{printed}");
    assert!(
        !printed.contains("hunter2") && !printed.contains("aHVudGVyMg"),
        "{printed}"
    );
}

#[test]
fn field_refs_read_the_pod_and_the_node() {
    let field = |path: &str| json!({"name": "V", "valueFrom": {"fieldRef": {"fieldPath": path}}});
    let cases = [
        ("metadata.name", "web"),
        ("metadata.namespace", "prod"),
        ("metadata.uid", "uid-1"),
        ("metadata.labels['app']", "web"),
        ("metadata.labels['none']", ""),
        ("metadata.annotations['note']", "hello"),
        ("spec.nodeName", "node-a"),
        ("spec.serviceAccountName", "default"),
        ("status.podIP", "10.244.0.7"),
        ("status.podIPs", "10.244.0.7"),
        ("status.hostIP", "10.0.0.5"),
        ("status.hostIPs", "10.0.0.5"),
    ];
    for (path, want) in cases {
        let env = resolve_one(json!({"name": "app", "env": [field(path)]})).unwrap();
        assert_eq!(env, pairs(&[("V", want)]), "{path}");
    }
}

#[test]
fn resource_refs_divide_and_round_up_and_a_missing_limit_is_the_nodes() {
    let resource = |name: &str, resource: &str, divisor: Option<&str>| {
        let mut r = json!({"resource": resource, "containerName": name});
        if let Some(d) = divisor {
            r["divisor"] = json!(d);
        }
        json!({"name": "V", "valueFrom": {"resourceFieldRef": r}})
    };
    let limited = json!({"name": "limited", "resources":
        {"limits": {"cpu": "250m", "memory": "100Mi"}, "requests": {"memory": "10Mi"}}});
    let cases = [
        ("limited", "limits.cpu", None, "1"),
        ("limited", "limits.cpu", Some("1m"), "250"),
        ("limited", "requests.cpu", Some("1m"), "250"),
        ("limited", "limits.memory", Some("1Mi"), "100"),
        ("limited", "requests.memory", None, "10485760"),
        ("limited", "requests.memory", Some("1M"), "11"),
        ("open", "limits.cpu", Some("1m"), "4000"),
        ("open", "limits.memory", Some("1Gi"), "8"),
        ("open", "requests.cpu", None, "0"),
    ];
    for (name, field, divisor, want) in cases {
        let open = json!({"name": "open", "env": [resource(name, field, divisor)]});
        let pod = pod(json!([open, limited.clone()]));
        let env = resolve(&pod, &pod.spec.containers[0], &objects(), &node(), None).unwrap();
        assert_eq!(env, pairs(&[("V", want)]), "{name} {field} {divisor:?}");
    }
}

#[test]
fn references_are_the_objects_any_container_names() {
    let pod = pod(json!([
        {"name": "a", "envFrom": [{"configMapRef": {"name": "cfg"}}],
            "env": [{"name": "S", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}]},
        {"name": "b", "env": [{"name": "C", "valueFrom": {"configMapKeyRef": {"name": "other", "key": "k"}}},
            {"name": "P", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
    ]));
    let found: Vec<(Source, String)> = references(&pod).into_iter().collect();
    assert_eq!(
        found,
        [
            (Source::ConfigMap, "cfg".to_string()),
            (Source::ConfigMap, "other".to_string()),
            (Source::Secret, "db".to_string()),
        ]
    );
}

/// The plan with a missing key: the container waits with the kubelet's reason,
/// said once, until a pass finds the key; then it starts, not counted as a restart.
#[test]
fn a_missing_key_holds_the_container_until_a_pass_finds_it() {
    use super::super::fixtures::{container_statuses, desired, memory, now, pod_of, starts, status_of, waiting_of};
    use super::super::plan::{Action, Observed, plan};
    let mut web = pod_of("web", "", &["a"]);
    web.spec.containers[0].env = Some(vec![
        serde_json::from_value(json!({"name": "MODE",
            "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}}))
        .unwrap(),
    ]);
    let config =
        |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": data});
    let mut memory = memory();
    let t = now();
    let nothing = Observed::default();
    // Not read before the pass: nothing to say yet.
    assert_eq!(plan(&mut memory, &desired(&[&web]), &nothing, t), vec![]);

    let mut objects = ConfigObjects::default();
    objects.insert(
        Source::ConfigMap,
        "default",
        "cfg",
        Some(&config(json!({"other": "x"}))),
    );
    memory.config = objects.clone();
    let message = "couldn't find key mode in ConfigMap default/cfg";
    assert_eq!(
        plan(&mut memory, &desired(&[&web]), &nothing, t),
        vec![Action::ConfigError {
            pod: "default/web".into(),
            pod_uid: "uid-web".into(),
            container: "a".into(),
            message: message.into(),
        }]
    );
    let status = status_of(&memory, &web, t);
    let waiting = waiting_of(&container_statuses(&status)[0]).unwrap().clone();
    assert_eq!(
        (waiting.reason.as_deref(), waiting.message.as_deref()),
        (Some(CREATE_CONTAINER_CONFIG_ERROR), Some(message))
    );
    assert_eq!(
        plan(&mut memory, &desired(&[&web]), &nothing, t),
        vec![],
        "said once, looked at again with no back-off"
    );

    objects.insert(
        Source::ConfigMap,
        "default",
        "cfg",
        Some(&config(json!({"mode": "fast"}))),
    );
    memory.config = objects;
    let actions = plan(&mut memory, &desired(&[&web]), &nothing, t);
    assert_eq!(starts(&actions), ["default/web/a"]);
    let Action::Start { spec, links, .. } = &actions[0] else {
        panic!("{actions:?}")
    };
    assert!(spec.env.contains(&("MODE".into(), "fast".into())), "{:?}", spec.env);
    assert_eq!(links.declared, ["MODE"]);
    let container = memory.pods["uid-web"].containers.get("a").unwrap();
    assert_eq!(container.error, None);
}
