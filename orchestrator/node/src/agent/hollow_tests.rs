use super::*;

fn config() -> HollowConfig {
    HollowConfig {
        prefix: "hollow".into(),
        count: 3,
        cpu_millis: 4000,
        memory_bytes: 16 << 30,
        pods: 110,
        labels: BTreeMap::from([("zone".to_string(), "a".to_string())]),
        lease_ttl: Duration::from_secs(40),
        address: "127.0.0.1".into(),
        port: 10250,
    }
}

fn pod(name: &str, node: &str) -> Pod {
    let mut pod = Pod::new(
        berth_api::meta::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        },
        PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("nginx:1.27".into()),
                ..Default::default()
            }],
            node_name: (!node.is_empty()).then(|| node.to_string()),
            ..Default::default()
        },
    );
    pod.status.conditions = Some(vec![PodCondition::new("PodScheduled", "True", "", "")]);
    pod
}

fn record(pod: &Pod, revision: i64) -> Record {
    Record {
        key: format!("/registry/pods/default/{}", pod.metadata.name()),
        value: serde_json::to_vec(pod).unwrap(),
        create_revision: 1,
        mod_revision: revision,
        version: 1,
        lease: 0,
    }
}

fn condition(status: &PodStatus, type_: &str) -> Option<String> {
    (status.conditions.iter().flatten())
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
}

#[test]
fn a_hollow_node_offers_its_flags_capacity_is_ready_and_names_itself() {
    let node = node_object(&config(), "hollow-7");
    let labels = node.metadata.labels();
    assert_eq!(labels["kubernetes.io/hostname"], "hollow-7");
    assert_eq!(labels["zone"], "a");
    let capacity = node.status.capacity.clone().unwrap();
    assert_eq!(capacity["pods"].0, "110");
    assert_eq!(capacity["cpu"].0, "4");
    assert_eq!(capacity["memory"].0, "16Gi");
    assert_eq!(node.status.allocatable, Some(capacity));
    let ready = &node.status.conditions.as_ref().unwrap()[0];
    assert_eq!((ready.type_.as_str(), ready.status.as_str()), ("Ready", "True"));
    let body = serde_json::to_value(&node).unwrap();
    assert!(
        (berth_api::kinds::node::NODE.decode)(&body).is_ok(),
        "a Node as the API decodes it"
    );
}

#[test]
fn each_node_has_its_own_block_of_pod_addresses() {
    let config = config();
    // 110 pods and the block's first address: blocks of 128.
    assert_eq!(config.pod_ip(0, 0), Ipv4Addr::new(100, 64, 0, 1));
    assert_eq!(config.pod_ip(0, 109), Ipv4Addr::new(100, 64, 0, 110));
    assert_eq!(config.pod_ip(1, 0), Ipv4Addr::new(100, 64, 0, 129));
    assert_eq!(config.pod_ip(2, 0), Ipv4Addr::new(100, 64, 1, 1));
    assert_eq!(config.slot_of(1, "100.64.0.140"), Some(11));
    assert_eq!(config.slot_of(1, "100.64.0.1"), None, "node 0's");
    assert_eq!(config.slot_of(1, "100.64.1.1"), None, "node 2's");
    assert_eq!(config.slot_of(1, "10.0.0.1"), None);
    assert!(config.check().is_ok());
    let too_many = HollowConfig {
        count: 40_000,
        ..config
    };
    let error = too_many.check().unwrap_err();
    assert!(error.contains("100.64.0.0/10"), "{error}");
}

#[test]
fn a_hollow_pod_runs_and_is_ready_at_its_address_and_keeps_the_schedulers_condition() {
    let mut pod = pod("web", "hollow-0");
    pod.spec.init_containers = Some(vec![
        Container {
            name: "setup".into(),
            image: Some("busybox".into()),
            ..Default::default()
        },
        Container {
            name: "proxy".into(),
            image: Some("envoy".into()),
            restart_policy: Some("Always".into()),
            ..Default::default()
        },
    ]);
    let started = from_system_time(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let ip = Ipv4Addr::new(100, 64, 0, 1);
    let ours = hollow_status(&pod, "127.0.0.1", Some(ip), &started);
    let merged = crate::agent::pods::merge_status(&pod.status, &ours, &started);
    assert_eq!(merged.phase.as_deref(), Some("Running"));
    for type_ in ["PodScheduled", "Initialized", "Ready", "ContainersReady"] {
        assert_eq!(condition(&merged, type_).as_deref(), Some("True"), "{type_}");
    }
    assert_eq!(merged.pod_ip.as_deref(), Some("100.64.0.1"));
    assert_eq!(merged.host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(merged.start_time, Some(started.clone()));
    let app = &merged.container_statuses.as_ref().unwrap()[0];
    assert!(app.ready && app.started == Some(true));
    let running = app.state.as_ref().unwrap().running.as_ref().unwrap();
    assert_eq!(running.started_at, Some(started.clone()));
    assert!(app.container_id.as_ref().unwrap().starts_with("hollow://"));
    let init = merged.init_container_statuses.as_ref().unwrap();
    let setup = init[0].state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((setup.exit_code, setup.reason.as_deref()), (0, Some("Completed")));
    assert!(init[1].state.as_ref().unwrap().running.is_some(), "the sidecar runs");
    assert_ne!(init[0].container_id, app.container_id, "each container its own id");
    let mut settled = pod.clone();
    settled.status = merged;
    assert!(Bound::of(&settled).settled, "nothing more to report");
    assert!(!Bound::of(&pod).settled);
}

#[test]
fn the_watch_counts_every_pod_and_those_of_other_nodes() {
    let config = config();
    let stats = HollowStats::new(&config);
    let sink = HollowPods::new("hollow-1".into(), stats.clone(), 1);
    let mine = pod("a", "hollow-1");
    let theirs = pod("b", "hollow-2");
    sink.replace(vec![record(&mine, 5), record(&theirs, 6)], 6);
    let counters = &stats.nodes[1].1;
    assert_eq!(counters.events.load(Ordering::Relaxed), 2);
    assert_eq!(counters.foreign.load(Ordering::Relaxed), 1);
    assert_eq!(counters.pods.load(Ordering::Relaxed), 1);
    let dirty = std::mem::take(&mut *sink.dirty.lock().unwrap());
    assert_eq!(dirty, BTreeSet::from(["/registry/pods/default/a".to_string()]));
    let unsettled = |sink: &HollowPods| sink.unsettled.lock().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        unsettled(&sink),
        ["/registry/pods/default/a"],
        "its copy kept for the report"
    );

    // Listed again unchanged: nothing to do.
    sink.replace(vec![record(&mine, 5)], 7);
    assert!(sink.dirty.lock().unwrap().is_empty());

    // Its deletion began: to be finished.
    let mut deleting = mine.clone();
    deleting.metadata.deletion_timestamp = Some(started_time());
    sink.apply(vec![Event::Put(record(&deleting, 8))], 8);
    assert!(sink.bound.lock().unwrap()["/registry/pods/default/a"].deleting);
    assert!(unsettled(&sink).is_empty(), "nothing to report of a pod going");
    assert_eq!(sink.dirty.lock().unwrap().len(), 1);

    // Gone: forgotten, its slot to be freed.
    sink.dirty.lock().unwrap().clear();
    sink.apply(
        vec![Event::Delete {
            revision: 9,
            prev: record(&deleting, 8),
        }],
        9,
    );
    assert_eq!(counters.pods.load(Ordering::Relaxed), 0);
    assert_eq!(sink.dirty.lock().unwrap().len(), 1);
    assert_eq!(counters.events.load(Ordering::Relaxed), 5);
    assert_eq!(counters.foreign.load(Ordering::Relaxed), 1);

    let text = stats.prometheus();
    assert!(
        text.contains("berth_hollow_pod_events_total{node=\"hollow-1\"} 5\n"),
        "{text}"
    );
    assert!(
        text.contains("berth_hollow_foreign_pod_events_total{node=\"hollow-1\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("berth_hollow_pods{node=\"hollow-0\"} 0\n"), "{text}");
}

fn started_time() -> Time {
    from_system_time(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

/// An API server holding one pod, answering a status PUT at another
/// resourceVersion with 409 as kube-apiserver does, and noting every request.
struct FakePods {
    pod: Pod,
    revision: i64,
    requests: Vec<String>,
}

const POD_PATH: &str = "/api/v1/namespaces/default/pods/a";

fn answer_pods(fake: &mut FakePods, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    fake.requests.push(format!("{method} {path}"));
    let served = |fake: &FakePods| {
        let mut pod = fake.pod.clone();
        pod.metadata.resource_version = Some(fake.revision.to_string());
        serde_json::to_string(&pod).unwrap()
    };
    match (method, path) {
        ("GET", POD_PATH) => (200, served(fake)),
        ("PUT", p) if p == format!("{POD_PATH}/status") => {
            let sent: Pod = serde_json::from_slice(body).unwrap();
            if sent.metadata.resource_version != Some(fake.revision.to_string()) {
                let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                "reason": "Conflict", "code": 409, "message": "conflict"});
                return (409, status.to_string());
            }
            fake.pod.status = sent.status;
            fake.revision += 1;
            (200, served(fake))
        }
        _ => (404, "{}".into()),
    }
}

async fn serve_pods(fake: Arc<Mutex<FakePods>>) -> Cluster {
    use axum::http::{Method, StatusCode, Uri};
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, body: axum::body::Bytes| {
        let fake = fake.clone();
        async move {
            let (code, body) = answer_pods(&mut fake.lock().unwrap(), method.as_str(), uri.path(), &body);
            (
                StatusCode::from_u16(code).unwrap(),
                [("content-type", "application/json")],
                body,
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let api =
        berth_client::api_source::ApiSource::new(Arc::new(berth_client::http_client::HttpClient::new(vec![base])));
    // Never dialled: the cluster is reached through the API server alone.
    let store = berth_client::kv::Kv::connect(&["http://127.0.0.1:9".to_string()]).unwrap();
    Cluster::api(api, berth_client::registry::Registry::new(store))
}

/// The watched copy of a pod is what its report starts from: one PUT when the
/// copy is current; when it is stale the PUT is refused and the pod read again.
#[tokio::test]
async fn a_report_starts_from_the_watched_copy_and_reads_again_when_it_is_stale() {
    let config = Arc::new(config());
    let stored = pod("a", "hollow-1");
    let fake = Arc::new(Mutex::new(FakePods {
        pod: stored.clone(),
        revision: 7,
        requests: Vec::new(),
    }));
    let node = HollowNode {
        index: 1,
        name: "hollow-1".into(),
        config: config.clone(),
        cluster: serve_pods(fake.clone()).await,
        stats: HollowStats::new(&config),
        marks: Arc::new(NodeMarks::new(["hollow-1".to_string()])),
    };
    let running = |fake: &Mutex<FakePods>| fake.lock().unwrap().pod.status.phase.clone();
    let mut seen = stored.clone();
    seen.metadata.resource_version = Some("7".into());
    assert!(node.report(&Bound::of(&seen), Some(0), Some(seen.clone())).await);
    assert_eq!(running(&fake).as_deref(), Some("Running"));
    let requests = std::mem::take(&mut fake.lock().unwrap().requests);
    assert_eq!(requests, [format!("PUT {POD_PATH}/status")]);

    // The stored pod moved on (written again meanwhile): the copy is stale.
    fake.lock().unwrap().pod.status = stored.status.clone();
    assert!(node.report(&Bound::of(&seen), Some(0), Some(seen)).await);
    assert_eq!(running(&fake).as_deref(), Some("Running"));
    let requests = std::mem::take(&mut fake.lock().unwrap().requests);
    assert_eq!(
        requests,
        [
            format!("PUT {POD_PATH}/status"),
            format!("GET {POD_PATH}"),
            format!("PUT {POD_PATH}/status")
        ]
    );
}
