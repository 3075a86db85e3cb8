//! Volumes set up on the disk: an emptyDir, a ConfigMap's files updated in place, a
//! Secret on a tmpfs of its own unmounted by the teardown, a hostPath check that
//! holds the pod, a claim not bound.

use serde_json::json;

use super::atomic_writer::tests::tempdir;
use super::*;

fn pod(volumes: serde_json::Value) -> Pod {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "prod", "uid": "uid-1"},
        "spec": {"volumes": volumes, "containers": [{"name": "app",
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"},
                {"name": "cfg", "mountPath": "/etc/app"},
                {"name": "cfg", "mountPath": "/etc/mode", "subPath": "mode"}]}]}}))
    .unwrap()
}

fn config(mode: &str) -> ConfigObjects {
    let mut objects = ConfigObjects::default();
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
        "data": {"mode": mode}});
    objects.insert(Source::ConfigMap, "prod", "cfg", Some(&config));
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
        "data": {"password": "aHVudGVyMg=="}});
    objects.insert(Source::Secret, "prod", "db", Some(&secret));
    objects
}

fn is_tmpfs(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let path = path.to_string_lossy();
    mounts.lines().any(|l| {
        let fields: Vec<&str> = l.split(' ').collect();
        fields.get(1) == Some(&path.as_ref()) && fields.get(2) == Some(&"tmpfs")
    })
}

#[test]
fn volumes_are_set_up_updated_in_place_and_torn_down() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let tmp = tempdir();
    let pods_dir = tmp.join("pods");
    let pod = pod(json!([
        {"name": "scratch", "emptyDir": {}},
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "creds", "secret": {"secretName": "db", "defaultMode": 0o400}},
        {"name": "ram", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
    ]));
    let (claims, node) = (Claims::new(), NodeFacts::default());
    let objects = config("fast");
    let ctx = Context {
        pods_dir: &pods_dir,
        objects: &objects,
        claims: &claims,
        node: &node,
    };
    let mut state = PodVolumes::default();
    assert_eq!(sync(&pod, &ctx, &mut state), None);
    let ready = state.ready.clone().expect("set up");
    let volumes = pods_dir.join("uid-1/volumes");
    assert_eq!(ready["scratch"].path, volumes.join("kubernetes.io~empty-dir/scratch"));
    assert!(!ready["scratch"].read_only && ready["cfg"].read_only);
    let cfg = volumes.join("kubernetes.io~configmap/cfg");
    assert_eq!(std::fs::read_to_string(cfg.join("mode")).unwrap(), "fast");
    let secret = volumes.join("kubernetes.io~secret/creds");
    assert!(is_tmpfs(&secret), "the secret's volume is a tmpfs");
    assert!(!is_tmpfs(&cfg));
    let ram = volumes.join("kubernetes.io~empty-dir/ram");
    assert!(is_tmpfs(&ram), "medium Memory is a tmpfs");
    let stat = rustix::fs::statfs(&ram).unwrap();
    assert_eq!(
        stat.f_blocks as u64 * stat.f_bsize as u64,
        1 << 20,
        "its size is the sizeLimit"
    );
    assert_eq!(std::fs::read_to_string(secret.join("password")).unwrap(), "hunter2");

    let binds = mounts(&pod.spec.containers[0], &ready, |_| true);
    assert_eq!(binds.len(), 3);
    assert_eq!((binds[2].sub_path.as_str(), binds[2].read_only), ("mode", true));

    // The ConfigMap changes: the same directory gets the new content.
    let objects = config("slow");
    let ctx = Context {
        objects: &objects,
        ..ctx
    };
    assert_eq!(sync(&pod, &ctx, &mut state), None);
    assert_eq!(std::fs::read_to_string(cfg.join("mode")).unwrap(), "slow");

    tear_down(&pods_dir, "uid-1");
    assert!(!is_tmpfs(&secret) && !is_tmpfs(&ram), "unmounted");
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn what_is_missing_holds_the_pod_once_reported() {
    let tmp = tempdir();
    let pods_dir = tmp.join("pods");
    let missing = tmp.join("missing");
    let pod = pod(json!([
        {"name": "cfg", "configMap": {"name": "other"}},
    ]));
    let mut objects = config("fast");
    objects.insert(Source::ConfigMap, "prod", "other", None);
    let (claims, node) = (Claims::new(), NodeFacts::default());
    let ctx = Context {
        pods_dir: &pods_dir,
        objects: &objects,
        claims: &claims,
        node: &node,
    };
    let mut state = PodVolumes::default();
    let expected = "MountVolume.SetUp failed for volume \"cfg\" : configmap \"other\" not found";
    assert_eq!(sync(&pod, &ctx, &mut state).as_deref(), Some(expected));
    assert_eq!(sync(&pod, &ctx, &mut state), None, "reported once");
    assert!(state.ready.is_none());

    let host = pod_with(json!([{"name": "h", "hostPath": {"path": missing, "type": "Directory"}}]));
    let mut state = PodVolumes::default();
    let message = sync(&host, &ctx, &mut state).unwrap();
    assert!(
        message.contains(&format!("{} is not a directory", missing.display())),
        "{message}"
    );

    let claimed = pod_with(json!([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]));
    let mut state = PodVolumes::default();
    assert_eq!(sync(&claimed, &ctx, &mut state), None, "the claim is not read yet");
    let claims: Claims = [(
        ("prod".to_string(), "data".to_string()),
        Err("persistentvolumeclaim \"data\" is not bound".to_string()),
    )]
    .into();
    let ctx = Context { claims: &claims, ..ctx };
    let message = sync(&claimed, &ctx, &mut state).unwrap();
    assert!(
        message.ends_with(": persistentvolumeclaim \"data\" is not bound"),
        "{message}"
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}

fn pod_with(volumes: serde_json::Value) -> Pod {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "prod", "uid": "uid-2"},
        "spec": {"volumes": volumes, "containers": [{"name": "app"}]}}))
    .unwrap()
}

#[test]
fn the_process_runtime_holds_a_container_with_volume_mounts_saying_why() {
    use super::super::config_env::CREATE_CONTAINER_CONFIG_ERROR;
    use super::super::fixtures::{container_statuses, desired, memory, now, pod_of, status_of, waiting_of};
    use super::super::plan::{Action, Observed, plan};
    let mut web = pod_of("web", "", &["a"]);
    web.spec.volumes = Some(vec![
        serde_json::from_value(json!({"name": "v", "emptyDir": {}})).unwrap(),
    ]);
    web.spec.containers[0].volume_mounts = Some(vec![
        serde_json::from_value(json!({"name": "v", "mountPath": "/v"})).unwrap(),
    ]);
    let mut memory = memory();
    let t = now();
    let actions = plan(&mut memory, &desired(&[&web]), &Observed::default(), t);
    let [Action::ConfigError { message, .. }] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    assert!(message.contains("cannot mount volumes (volumeMounts)"), "{message}");
    let status = status_of(&memory, &web, t);
    let waiting = waiting_of(&container_statuses(&status)[0]).unwrap().clone();
    assert_eq!(waiting.reason.as_deref(), Some(CREATE_CONTAINER_CONFIG_ERROR));
}
