//! The executor running pods from images, against the fake runtime, the fake images
//! and the fake pod network, with a made-up clock: pulls in progress and failing with
//! the kubelet's back-off, sandboxes set up once and torn down after the containers,
//! pull secrets, and what a restarted agent does with the networks it finds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::background::SecretSource;
use super::executor::Executor;
use super::fixtures::{BASE, container_statuses, desired, later, now, pod, running_of, waiting_of};
use super::memory::Now;
use super::plan::Action;
use crate::agent::workloads::{Runtimes, Workloads};
use crate::image::fake::{FakeImages, pulled};
use crate::image::{PullError, PullPolicy, RegistryCredentials};
use crate::network::PodNetwork;
use crate::network::testing::FakeNetwork;
use crate::runtime::{FakeRuntime, Runtime};
use berth_api::objects::{ContainerStatus, Pod, PodStatus};

pub(super) const IMAGE: &str = "registry.example:5000/app:1.0";

pub(super) struct Node {
    pub(super) runtime: Arc<FakeRuntime>,
    pub(super) images: Arc<FakeImages>,
    pub(super) network: Arc<FakeNetwork>,
    pub(super) dir: tempfile::TempDir,
}

impl Node {
    pub(super) fn new() -> Self {
        Node {
            runtime: Arc::new(FakeRuntime::new()),
            images: Arc::new(FakeImages::new()),
            network: Arc::new(FakeNetwork::new()),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// An executor whose one runtime ("fake") runs images; a second one on the same
    /// node is a restarted agent.
    pub(super) fn executor(&self) -> Executor {
        let workloads = Workloads {
            runtimes: Runtimes::new(self.runtime.clone(), true),
            images: Some(self.images.clone()),
            network: Some(self.network.clone()),
        };
        Executor::new(workloads, BASE, "10.0.0.1".into()).with_sandbox_dir(self.dir.path().to_path_buf(), "n1")
    }
}

pub(super) fn image_pod(name: &str) -> Pod {
    let mut p = pod(name, "Always");
    p.spec.containers[0].command = None;
    p.spec.containers[0].image = Some(IMAGE.into());
    p
}

/// One pass; the statuses it reports, by pod uid, confirmed as written.
pub(super) fn pass(executor: &mut Executor, pods: &BTreeMap<String, Pod>, now: Now) -> BTreeMap<String, PodStatus> {
    let mut written = BTreeMap::new();
    for action in executor.pass(pods, now) {
        let Action::ReportStatus { pod_uid, status } = action else {
            panic!("a pass returns only statuses to write: {action:?}");
        };
        executor.reported(&pod_uid, (*status).clone());
        written.insert(pod_uid, *status);
    }
    written
}

/// The pod's status as last reported.
fn status(executor: &Executor, uid: &str) -> PodStatus {
    executor.memory().pods[uid].reported.clone().expect("reported")
}

fn main_status(executor: &Executor, uid: &str) -> ContainerStatus {
    container_statuses(&status(executor, uid))[0].clone()
}

fn waiting(executor: &Executor, uid: &str) -> (String, String) {
    let c = main_status(executor, uid);
    let w = waiting_of(&c).unwrap_or_else(|| panic!("not waiting: {c:?}"));
    (
        w.reason.clone().unwrap_or_default(),
        w.message.clone().unwrap_or_default(),
    )
}

/// Passes at `now` until `what` holds, letting the background work run between them
/// (it never takes long: every piece of it is a fake).
pub(super) async fn pass_until(
    executor: &mut Executor,
    pods: &BTreeMap<String, Pod>,
    now: Now,
    what: impl Fn(&Executor) -> bool,
) {
    for _ in 0..500 {
        pass(executor, pods, now);
        if what(executor) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the background work never finished");
}

#[tokio::test]
async fn a_pod_waits_in_container_creating_while_its_image_is_pulled_then_runs_from_it() {
    let node = Node::new();
    let mut executor = node.executor();
    let web = image_pod("web");
    let pods = desired(&[&web]);
    let t = now();
    // The sandbox and the pull are two background tasks: wait for both to be under way.
    pass_until(&mut executor, &pods, t, |e| {
        e.memory().pods["uid-web"].sandbox.ready().is_some() && !node.images.ensures().is_empty()
    })
    .await;
    assert_eq!(
        waiting(&executor, "uid-web"),
        ("ContainerCreating".into(), String::new())
    );
    assert_eq!(
        main_status(&executor, "uid-web").image_id,
        "",
        "no digest before the pull"
    );
    assert_eq!(status(&executor, "uid-web").pod_ip.as_deref(), Some("10.88.0.1"));
    assert!(
        node.runtime.starts().is_empty(),
        "nothing starts before its image is here"
    );
    let ensures = node.images.ensures();
    assert_eq!(ensures.len(), 1, "one pull, however many passes: {ensures:?}");
    assert_eq!(
        (ensures[0].image.as_str(), ensures[0].policy),
        (IMAGE, PullPolicy::IfNotPresent)
    );

    node.images.has(IMAGE);
    pass_until(&mut executor, &pods, t, |_| !node.runtime.running().is_empty()).await;
    let c = main_status(&executor, "uid-web");
    assert!(running_of(&c).is_some(), "{c:?}");
    assert_eq!(c.image, IMAGE);
    assert_eq!(c.image_id, pulled(IMAGE).image_id, "imageID is the pulled digest");
    let spec = node.runtime.starts().pop().unwrap();
    assert_eq!(spec.argv, ["/bin/app", "--serve"], "ENTRYPOINT + CMD");
    assert_eq!(spec.rootfs.as_ref().unwrap().layers, pulled(IMAGE).layers);
    let sandbox = spec.sandbox.expect("a sandbox");
    assert_eq!(
        sandbox.netns.as_deref(),
        Some(std::path::Path::new("/run/netns/uid-web"))
    );
    assert_eq!(sandbox.hostname, "web");
    let hosts = std::fs::read_to_string(sandbox.etc_hosts.unwrap()).unwrap();
    assert!(hosts.contains("127.0.0.1\tlocalhost\n"), "{hosts}");
    assert!(hosts.ends_with("10.88.0.1\tweb\n"), "{hosts}");
    assert_eq!(std::fs::read_to_string(sandbox.etc_hostname.unwrap()).unwrap(), "web\n");
    assert!(sandbox.resolv_conf.unwrap().exists());
    assert_eq!(node.network.setups().len(), 1, "one sandbox per pod");
    assert_eq!(node.images.ensures().len(), 1);
}

#[tokio::test]
async fn a_failed_pull_says_err_image_pull_then_backs_off_as_the_kubelet() {
    let node = Node::new();
    let mut executor = node.executor();
    let missing = "registry.example:5000/app:missing";
    node.images.answer(
        missing,
        Err(PullError::Pull {
            image: missing.into(),
            message: "manifest unknown: manifest unknown".into(),
        }),
    );
    let mut web = image_pod("web");
    web.spec.containers[0].image = Some(missing.into());
    let pods = desired(&[&web]);
    let t0 = now();
    pass_until(&mut executor, &pods, t0, |e| {
        waiting(e, "uid-web").0 != "ContainerCreating"
    })
    .await;
    let (reason, message) = waiting(&executor, "uid-web");
    assert_eq!(reason, "ErrImagePull");
    assert!(message.contains("manifest unknown"), "the registry's words: {message}");
    pass(&mut executor, &pods, t0);
    let (reason, backing_off) = waiting(&executor, "uid-web");
    assert_eq!(reason, "ImagePullBackOff");
    assert!(
        backing_off.starts_with(&format!("Back-off pulling image {missing:?}: ErrImagePull: "))
            && backing_off.contains("manifest unknown"),
        "the back-off names the registry's error: {backing_off}"
    );
    // Pulled again after 10 s, 20 s, 40 s...: never before.
    let mut t = t0;
    let mut waits = Vec::new();
    while waits.len() < 3 {
        let pulls = node.images.ensures().len();
        let since = t;
        while node.images.ensures().len() == pulls {
            t = later(t, Duration::from_secs(1));
            pass_until(&mut executor, &pods, t, |e| {
                !matches!(
                    e.memory().pods["uid-web"].containers["main"].image.state,
                    super::pull::ImageState::Pulling
                )
            })
            .await;
        }
        waits.push((t.instant - since.instant).as_secs());
        assert_eq!(
            waiting(&executor, "uid-web").0,
            "ErrImagePull",
            "each failure is reported"
        );
    }
    assert_eq!(waits, [10, 20, 40]);
    assert!(node.runtime.starts().is_empty());
}

#[tokio::test]
async fn never_pull_and_invalid_names_keep_their_own_reasons() {
    for (error, reason) in [
        (PullError::NeverPull { image: IMAGE.into() }, "ErrImageNeverPull"),
        (
            PullError::InvalidName {
                image: IMAGE.into(),
                why: "invalid reference format".into(),
            },
            "InvalidImageName",
        ),
    ] {
        let node = Node::new();
        let mut executor = node.executor();
        node.images.answer(IMAGE, Err(error.clone()));
        let pods = desired(&[&image_pod("web")]);
        pass_until(&mut executor, &pods, now(), |e| {
            waiting(e, "uid-web").0 != "ContainerCreating"
        })
        .await;
        for _ in 0..2 {
            assert_eq!(waiting(&executor, "uid-web"), (reason.to_string(), error.to_string()));
            pass(&mut executor, &pods, now());
        }
    }
}

#[tokio::test]
async fn a_deleted_pod_s_sandbox_goes_after_its_containers() {
    let node = Node::new();
    node.images.has(IMAGE);
    let mut executor = node.executor();
    let mut web = image_pod("web");
    let t = now();
    pass_until(&mut executor, &desired(&[&web]), t, |_| {
        !node.runtime.running().is_empty()
    })
    .await;
    let files = node.dir.path().join("uid-web");
    assert!(files.join("hosts").exists());
    web.metadata.deletion_timestamp = Some(berth_api::time::from_system_time(t.wall));
    pass(&mut executor, &desired(&[&web]), t);
    for _ in 0..500 {
        if !node.network.teardowns().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(node.network.teardowns(), ["uid-web"]);
    assert!(node.runtime.list().is_empty(), "containers stopped first");
    assert!(!files.exists(), "the pod's files are removed");
    assert!(node.network.pods().is_empty());
}

#[tokio::test]
async fn a_restarted_agent_keeps_its_pods_networks_and_tears_down_the_others() {
    let node = Node::new();
    node.images.has(IMAGE);
    let keep = image_pod("keep");
    let mut first = node.executor();
    pass_until(&mut first, &desired(&[&keep]), now(), |_| {
        !node.runtime.running().is_empty()
    })
    .await;
    let ip = status(&first, "uid-keep").pod_ip;
    // A network left behind by a pod deleted while no agent ran.
    node.network
        .setup(&crate::network::PodNetworkSpec {
            pod_uid: "uid-orphan".into(),
            ..Default::default()
        })
        .unwrap();
    drop(first);

    let mut second = node.executor();
    pass_until(&mut second, &desired(&[&keep]), now(), |e| {
        e.memory().pods["uid-keep"].sandbox.ready().is_some()
    })
    .await;
    for _ in 0..500 {
        if !node.network.teardowns().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(node.network.teardowns(), ["uid-orphan"]);
    assert_eq!(node.network.pods(), ["uid-keep"]);
    assert_eq!(status(&second, "uid-keep").pod_ip, ip, "the same address");
    assert_eq!(node.runtime.starts().len(), 1, "adopted, not started again");
}

/// Secrets from a map, as the store would give them.
struct Secrets(Mutex<BTreeMap<(String, String), serde_json::Value>>);

impl SecretSource for Secrets {
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Option<serde_json::Value>, String>> + Send + 'a>> {
        let found = self.0.lock().unwrap().get(&(namespace.into(), name.into())).cloned();
        Box::pin(async move { Ok(found) })
    }
}

#[tokio::test]
async fn pull_secrets_become_credentials_and_a_missing_one_is_skipped() {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let config = serde_json::json!({"auths": {"registry.example:5000": {"auth": b64("alice:pw")}}});
    let secret = serde_json::json!({
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": b64(&config.to_string())},
    });
    let secrets = Secrets(Mutex::new(BTreeMap::from([(
        ("default".into(), "regcred".into()),
        secret,
    )])));
    let node = Node::new();
    node.images.has(IMAGE);
    let mut executor = node.executor().with_secrets(Arc::new(secrets));
    let mut web = image_pod("web");
    web.spec.image_pull_secrets = Some(
        ["missing", "regcred"]
            .map(|name| berth_api::objects::LocalObjectReference { name: name.into() })
            .to_vec(),
    );
    pass_until(&mut executor, &desired(&[&web]), now(), |_| {
        !node.runtime.running().is_empty()
    })
    .await;
    assert_eq!(
        node.images.ensures()[0].credentials,
        [RegistryCredentials {
            registry: "registry.example:5000".into(),
            username: "alice".into(),
            password: "pw".into(),
        }]
    );
}

#[tokio::test]
async fn the_process_runtime_pulls_nothing_and_sets_up_no_sandbox() {
    let node = Node::new();
    let workloads = Workloads {
        runtimes: Runtimes::new(node.runtime.clone(), false),
        images: Some(node.images.clone()),
        network: Some(node.network.clone()),
    };
    let mut executor = Executor::new(workloads, BASE, "10.0.0.1".into());
    let mut web = pod("web", "Always");
    web.spec.containers[0].image = Some(IMAGE.into());
    pass(&mut executor, &desired(&[&web]), now());
    let spec = node.runtime.starts().pop().expect("started in the first pass");
    assert_eq!(spec.argv, ["serve", "main"], "the command, on the host");
    assert!(spec.rootfs.is_none() && spec.sandbox.is_none());
    assert!(node.images.ensures().is_empty() && node.network.setups().is_empty());
    assert_eq!(status(&executor, "uid-web").pod_ip.as_deref(), Some("10.0.0.1"));
}

#[tokio::test]
async fn host_network_pods_share_the_node_s_address_and_a_class_not_offered_never_starts() {
    let node = Node::new();
    node.images.has(IMAGE);
    let mut executor = node.executor();
    let mut host = image_pod("host");
    host.spec.host_network = Some(true);
    let mut other = image_pod("other");
    other.spec.runtime_class_name = Some("kata".into());
    let pods = desired(&[&host, &other]);
    pass_until(&mut executor, &pods, now(), |_| !node.runtime.running().is_empty()).await;
    assert!(node.network.setups().is_empty(), "no pod network for host networking");
    assert_eq!(status(&executor, "uid-host").pod_ip.as_deref(), Some("10.0.0.1"));
    let spec = node.runtime.starts().pop().unwrap();
    assert_eq!(spec.sandbox.unwrap().netns, None);
    let (reason, message) = waiting(&executor, "uid-other");
    assert_eq!(reason, "ContainerCreating");
    assert!(message.contains("no runtime for \"kata\""), "{message}");
    assert_eq!(node.runtime.starts().len(), 1);
}

/// A user's RuntimeClass (`fast`) runs its pods with the handler it names, once the
/// agent has read the class from the store.
#[tokio::test]
async fn a_runtime_class_runs_with_the_handler_it_names() {
    let node = Node::new();
    node.images.has(IMAGE);
    let mut executor = node.executor();
    executor.learn_class("fast", "fake".into());
    let mut fast = image_pod("fast");
    fast.spec.runtime_class_name = Some("fast".into());
    let pods = desired(&[&fast]);
    pass_until(&mut executor, &pods, now(), |_| !node.runtime.running().is_empty()).await;
    assert_eq!(executor.memory().pods["uid-fast"].handler, "fake");
}

#[tokio::test]
async fn unused_images_are_collected_every_five_minutes_keeping_those_in_use() {
    let node = Node::new();
    node.images.has(IMAGE);
    let mut executor = node.executor();
    let t = now();
    let pods = desired(&[&image_pod("web")]);
    pass_until(&mut executor, &pods, t, |_| !node.runtime.running().is_empty()).await;
    let in_use = vec![pulled(IMAGE).config_digest];
    for _ in 0..500 {
        if !node.images.collected().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(node.images.collected(), std::slice::from_ref(&in_use));
    pass(&mut executor, &pods, later(t, Duration::from_secs(299)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(node.images.collected().len(), 1, "not before the period");
    pass(&mut executor, &pods, later(t, Duration::from_secs(300)));
    for _ in 0..500 {
        if node.images.collected().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(node.images.collected(), [in_use.clone(), in_use]);
}

#[tokio::test]
async fn host_ports_reach_the_pod_network_as_port_mappings() {
    let node = Node::new();
    let mut executor = node.executor();
    let mut web: Pod = image_pod("web");
    web.spec.containers[0].ports = Some(vec![
        serde_json::from_value(serde_json::json!({"containerPort": 80, "hostPort": 8080})).unwrap(),
        serde_json::from_value(
            serde_json::json!({"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "127.0.0.1"}),
        )
        .unwrap(),
        serde_json::from_value(serde_json::json!({"containerPort": 9090})).unwrap(),
    ]);
    pass_until(&mut executor, &desired(&[&web]), now(), |_| {
        !node.network.setups().is_empty()
    })
    .await;
    let ports: Vec<(u16, u16, String, String)> = node.network.setups()[0]
        .ports
        .iter()
        .map(|p| (p.host_port, p.container_port, p.protocol.clone(), p.host_ip.clone()))
        .collect();
    assert_eq!(
        ports,
        [
            (8080, 80, "tcp".to_string(), String::new()),
            (5353, 53, "udp".to_string(), "127.0.0.1".to_string()),
        ],
        "only ports with a hostPort, in CNI's spelling"
    );
}

#[tokio::test]
async fn a_pod_without_an_image_runs_on_the_host_where_the_default_runs_images() {
    let node = Node::new();
    let host = Arc::new(crate::runtime::ProcessRuntime::new(node.dir.path().join("process")).unwrap());
    let workloads = Workloads {
        runtimes: Runtimes::new(node.runtime.clone(), true).with(host.clone(), false),
        images: Some(node.images.clone()),
        network: Some(node.network.clone()),
    };
    let mut executor = Executor::new(workloads, BASE, "10.0.0.1".into());
    let mut sleeper = pod("sleeper", "Always");
    sleeper.spec.containers[0].command = Some(vec!["sleep".into(), "30".into()]);
    pass(&mut executor, &desired(&[&sleeper]), now());
    assert_eq!(executor.memory().pods["uid-sleeper"].handler, "process");
    assert!(node.runtime.starts().is_empty() && node.images.ensures().is_empty());
    let started = host.list();
    assert_eq!(started.len(), 1, "{started:?}");
    for c in started {
        host.stop(&c.id, Duration::from_secs(1)).await.unwrap();
        host.remove(&c.id).unwrap();
    }
}
