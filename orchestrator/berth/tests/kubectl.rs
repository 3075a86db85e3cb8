//! The real `kubectl` against a cluster of real processes (three servers, two
//! agents), running the everyday verbs a Kubernetes user types, and checking both
//! what kubectl prints and what the server stored.
//!
//! The test script installs kubectl (Debian's `kubernetes-client`) when it is
//! missing; without it these tests say so and pass nothing off as checked.

mod common;

use berth_testkit::eventually_blocking;
use common::*;
use serde_json::Value;

struct Kubectl<'a> {
    cluster: &'a TestCluster,
}

impl Kubectl<'_> {
    fn ok(&self, args: &[&str]) -> String {
        self.cluster.kubectl_ok(args)
    }

    fn fails(&self, args: &[&str]) -> String {
        self.cluster.kubectl_fails(args)
    }
}

fn web(marker: &str, replicas: u32, image: &str, extra_env: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: {image}
        command: [sleep]
        args: [\"{marker}\"]
        env:
        - {{name: MODE, value: test}}{extra_env}
        resources:
          requests: {{cpu: 100m, memory: 32Mi}}
          limits: {{memory: 128Mi}}
"
    )
}

/// The first line of a table: its column headers, spaces squeezed.
fn header(table: &str) -> String {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn container(cluster: &TestCluster) -> Value {
    let (status, deployment) = cluster.get("/apis/apps/v1/namespaces/default/deployments/web");
    assert_eq!(status, 200, "{deployment}");
    deployment["spec"]["template"]["spec"]["containers"][0].clone()
}

#[test]
fn everyday_kubectl_verbs_work_and_lose_nothing() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let marker = cluster.marker.clone();
    let kubectl = Kubectl { cluster: &cluster };

    // apply validates on the server (no --validate=false needed) and creates.
    let manifest = cluster.write_manifest("web.yaml", &web(&marker, 2, "busybox:1", ""));
    let manifest = manifest.to_str().unwrap();
    assert_eq!(
        kubectl.ok(&["apply", "-f", manifest]).trim(),
        "deployment.apps/web created"
    );
    eventually_blocking("two running pods", || {
        let pods = kubectl.ok(&["get", "pods", "-l", "app=web", "--no-headers"]);
        (pods.lines().filter(|l| l.contains(" Running ")).count() == 2).then_some(())
    });

    // Tables with Kubernetes' columns, short names and `all`.
    let pods = kubectl.ok(&["get", "po"]);
    assert_eq!(header(&pods), "NAME READY STATUS RESTARTS AGE", "{pods}");
    assert!(
        pods.lines().skip(1).all(|l| l.contains("1/1") && l.contains("Running")),
        "{pods}"
    );
    let wide = kubectl.ok(&["get", "pods", "-o", "wide"]);
    assert_eq!(
        header(&wide),
        "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES",
        "{wide}"
    );
    let deployments = kubectl.ok(&["get", "deploy"]);
    assert_eq!(
        header(&deployments),
        "NAME READY UP-TO-DATE AVAILABLE AGE",
        "{deployments}"
    );
    let replica_sets = kubectl.ok(&["get", "rs"]);
    assert_eq!(
        header(&replica_sets),
        "NAME DESIRED CURRENT READY AGE",
        "{replica_sets}"
    );
    assert_eq!(header(&kubectl.ok(&["get", "ns"])), "NAME STATUS AGE");
    assert_eq!(header(&kubectl.ok(&["get", "no"])), "NAME STATUS ROLES AGE VERSION");
    let all = kubectl.ok(&["get", "all"]);
    for kind in ["pod/web-", "replicaset.apps/web-", "deployment.apps/web"] {
        assert!(all.contains(kind), "{kind} in:\n{all}");
    }

    // set image sends a strategic merge patch: the rest of the container stays.
    kubectl.ok(&["set", "image", "deployment/web", "main=busybox:2"]);
    let main = container(&cluster);
    assert_eq!(main["image"], "busybox:2");
    assert_eq!(main["command"], serde_json::json!(["sleep"]));
    assert_eq!(main["args"], serde_json::json!([marker]));
    assert_eq!(main["resources"]["limits"]["memory"], "128Mi");

    // An edited manifest applied again changes only what changed.
    let edited = web(&marker, 3, "busybox:1", "\n        - {name: LEVEL, value: debug}");
    let edited_path = cluster.write_manifest("web.yaml", &edited);
    assert_eq!(
        kubectl.ok(&["apply", "-f", edited_path.to_str().unwrap()]).trim(),
        "deployment.apps/web configured"
    );
    let (_, deployment) = cluster.get("/apis/apps/v1/namespaces/default/deployments/web");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let main = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(main["image"], "busybox:1");
    assert_eq!(
        main["env"],
        serde_json::json!([{"name": "MODE", "value": "test"}, {"name": "LEVEL", "value": "debug"}])
    );
    assert_eq!(main["resources"]["requests"]["cpu"], "100m");

    // A field the kind does not have is refused, as kube-apiserver refuses it.
    let typo = cluster.write_manifest("typo.yaml", &edited.replace("replicas: 3", "replicaz: 3"));
    let error = kubectl.fails(&["apply", "-f", typo.to_str().unwrap()]);
    assert!(error.contains(r#"unknown field "spec.replicaz""#), "{error}");

    // JSON patch.
    kubectl.ok(&[
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/spec/replicas","value":3},{"op":"replace","path":"/spec/replicas","value":1}]"#,
    ]);
    let (_, deployment) = cluster.get("/apis/apps/v1/namespaces/default/deployments/web");
    assert_eq!(deployment["spec"]["replicas"], 1);

    // Typed commands send protobuf bodies.
    assert_eq!(
        kubectl.ok(&["create", "namespace", "team-a"]).trim(),
        "namespace/team-a created"
    );
    let typed = kubectl.ok(&[
        "create",
        "deployment",
        "typed",
        "--image=busybox",
        "--replicas=2",
        "--",
        "sleep",
        &marker,
    ]);
    assert_eq!(typed.trim(), "deployment.apps/typed created");
    let (_, stored) = cluster.get("/apis/apps/v1/namespaces/default/deployments/typed");
    assert_eq!(stored["spec"]["replicas"], 2);
    assert_eq!(
        stored["spec"]["template"]["spec"]["containers"][0]["command"],
        serde_json::json!(["sleep", marker])
    );
    eventually_blocking("the typed deployment's pods running", || {
        let pods = kubectl.ok(&["get", "pods", "-l", "app=typed", "--no-headers"]);
        (pods.lines().filter(|l| l.contains(" Running ")).count() == 2).then_some(())
    });
    kubectl.ok(&["delete", "deployment", "typed"]);

    // explain reads the OpenAPI documents.
    let explained = kubectl.ok(&["explain", "deployment.spec.replicas"]);
    assert!(explained.contains("FIELD: replicas <integer>"), "{explained}");
    let explained = kubectl.ok(&["explain", "pods.spec.containers.env"]);
    assert!(explained.contains("FIELD: env <[]EnvVar>"), "{explained}");

    // Events: listed, and at the end of describe.
    let events = eventually_blocking("Scheduled events", || {
        let events = kubectl.ok(&["get", "events"]);
        events.contains("Scheduled").then_some(events)
    });
    assert_eq!(header(&events), "LAST SEEN TYPE REASON OBJECT MESSAGE", "{events}");
    assert!(events.contains("Successfully assigned default/web-"), "{events}");
    let pod = kubectl.ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
    let pod = pod.lines().next().unwrap().to_string();
    let described = eventually_blocking("the pod's events in describe", || {
        let described = kubectl.ok(&["describe", &pod]);
        described.contains("Started container main").then_some(described)
    });
    assert!(described.contains("default-scheduler"), "{described}");
    let described = kubectl.ok(&["describe", "deployment", "web"]);
    assert!(described.contains("ScalingReplicaSet"), "{described}");
    assert!(described.contains("Scaled up replica set web-"), "{described}");

    // replace and delete. The controllers may write the Deployment's status between
    // the read and the replace, which then gets a Conflict (as in Kubernetes): read
    // again and replace again, as a user would.
    let replaced = eventually_blocking("a replace from a fresh read", || {
        let mut current: Value = serde_json::from_str(&kubectl.ok(&["get", "deploy", "web", "-o", "json"])).unwrap();
        current["spec"]["replicas"] = 2.into();
        let manifest = cluster.write_manifest("replaced.json", &current.to_string());
        let out = cluster.kubectl_output(&["replace", "-f", manifest.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() || stderr.contains("(Conflict)"), "{stderr}");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert_eq!(replaced.trim(), "deployment.apps/web replaced");
    assert_eq!(
        kubectl.ok(&["delete", "deployment", "web"]).trim(),
        "deployment.apps \"web\" deleted"
    );
    assert_eq!(cluster.get("/apis/apps/v1/namespaces/default/deployments/web").0, 404);
    // The agents stop the pods that went with it, and say so.
    let killing = eventually_blocking("Killing events", || {
        let events = kubectl.ok(&["get", "events", "--field-selector", "reason=Killing"]);
        events.contains("Stopping container main").then_some(events)
    });
    assert!(killing.contains("pod/web-"), "{killing}");
}
