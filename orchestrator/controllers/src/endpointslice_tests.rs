//! The EndpointSlice controller's pure parts: which pods become endpoints with which
//! conditions, named ports resolved per pod, and the plan of writes as pods come
//! and go.

use berth_api::conditions::set_condition;
use berth_api::kinds::service::ServicePort;
use berth_api::meta::named;
use berth_api::objects::{Container, ContainerPort, PodCondition};

use super::*;

fn service(selector: &[(&str, &str)], ports: Vec<ServicePort>) -> Service {
    let mut service = Service::new(
        named("default", "web"),
        ServiceSpec {
            selector: Some(selector.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ports: Some(ports),
            ..Default::default()
        },
    );
    service.metadata.uid = Some("svc-uid".into());
    service
}

fn port(name: &str, port: i32, target: IntOrString) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(target),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// A pod labelled app=web, on node n1, with `ip` (none when empty), Ready as given,
/// serving `http` on `http_port`.
fn pod(name: &str, ip: &str, ready: bool, http_port: i32) -> Pod {
    let mut meta = named("default", name);
    meta.labels = Some([("app".to_string(), "web".to_string())].into());
    meta.uid = Some(format!("{name}-uid"));
    let mut pod = Pod::new(
        meta,
        PodSpec {
            node_name: Some("n1".into()),
            containers: vec![Container {
                name: "main".into(),
                ports: Some(vec![ContainerPort {
                    name: Some("http".into()),
                    container_port: http_port,
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    if !ip.is_empty() {
        pod.status.pod_ip = Some(ip.into());
    }
    pod.status.phase = Some("Running".into());
    let status = if ready { "True" } else { "False" };
    set_condition(
        pod.status.conditions.get_or_insert_default(),
        PodCondition {
            type_: "Ready".into(),
            status: status.into(),
            ..Default::default()
        },
        &berth_api::time::now(),
    );
    pod
}

fn conditions(endpoint: &Endpoint) -> (bool, bool, bool) {
    let c = endpoint.conditions.clone().unwrap();
    (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
}

#[test]
fn endpoints_carry_kubernetes_conditions() {
    let svc = service(&[("app", "web")], vec![port("http", 80, IntOrString::Int(8080))]);
    let ready = pod("a", "10.1.0.2", true, 8080);
    let e = endpoint(&svc, &ready).unwrap();
    assert_eq!(e.addresses, ["10.1.0.2"]);
    assert_eq!(conditions(&e), (true, true, false));
    assert_eq!(e.node_name.as_deref(), Some("n1"));
    let target = e.target_ref.unwrap();
    assert_eq!(
        (target.kind.as_deref(), target.name.as_deref(), target.uid.as_deref()),
        (Some("Pod"), Some("a"), Some("a-uid"))
    );

    assert_eq!(
        conditions(&endpoint(&svc, &pod("b", "10.1.0.3", false, 8080)).unwrap()),
        (false, false, false)
    );
    let mut terminating = pod("c", "10.1.0.4", true, 8080);
    terminating.metadata.deletion_timestamp = Some(berth_api::time::now());
    assert_eq!(
        conditions(&endpoint(&svc, &terminating).unwrap()),
        (false, true, true),
        "serving but not ready"
    );
    assert!(
        endpoint(&svc, &pod("d", "", true, 8080)).is_none(),
        "no IP, no endpoint"
    );
    let mut done = pod("e", "10.1.0.5", false, 8080);
    done.status.phase = Some("Succeeded".into());
    assert!(endpoint(&svc, &done).is_none());

    // A terminating pod of a node whose heartbeat is gone, once the node lifecycle
    // controller marked it: neither ready nor serving, so no proxy's
    // serving-terminating fallback picks it.
    let marked = crate::node_lifecycle::marked_not_ready(&terminating);
    assert_eq!(
        conditions(&endpoint(&svc, &marked).unwrap()),
        (false, false, true),
        "terminating on a lost node: not serving"
    );

    let mut publish = svc.clone();
    publish.spec.publish_not_ready_addresses = Some(true);
    assert_eq!(
        conditions(&endpoint(&publish, &pod("b", "10.1.0.3", false, 8080)).unwrap()),
        (true, false, false)
    );
}

#[test]
fn a_pod_whose_subdomain_is_the_service_gets_its_hostname() {
    let svc = service(&[("app", "web")], vec![port("http", 80, IntOrString::Int(8080))]);
    let with = |hostname: Option<&str>, subdomain: Option<&str>| {
        let mut p = pod("a", "10.1.0.2", true, 8080);
        p.spec.hostname = hostname.map(Into::into);
        p.spec.subdomain = subdomain.map(Into::into);
        p
    };
    let named = endpoint(&svc, &with(Some("web-0"), Some("web"))).unwrap();
    assert_eq!(named.hostname.as_deref(), Some("web-0"));
    for (hostname, subdomain, why) in [
        (Some("web-0"), Some("other"), "a subdomain naming another Service"),
        (Some("web-0"), None, "no subdomain"),
        (None, Some("web"), "no hostname"),
        (Some(""), Some("web"), "an empty hostname"),
    ] {
        let e = endpoint(&svc, &with(hostname, subdomain)).unwrap();
        assert_eq!(e.hostname, None, "{why}");
    }
    // The subdomain names a Service of the pod's own namespace only.
    let mut elsewhere = svc.clone();
    elsewhere.metadata.namespace = Some("prod".into());
    assert_eq!(endpoint_hostname(&elsewhere, &with(Some("web-0"), Some("web"))), None);
    // The controller's slices carry it, and a change of hostname updates the slice.
    let first = plan([&svc], &[&with(Some("web-0"), Some("web"))], &[]);
    let created = first.create[0].clone();
    assert_eq!(created.endpoints[0].hostname.as_deref(), Some("web-0"));
    let renamed = plan([&svc], &[&with(Some("web-1"), Some("web"))], &[(created, 7)]);
    assert_eq!(renamed.update.len(), 1);
    assert_eq!(renamed.update[0].endpoints[0].hostname.as_deref(), Some("web-1"));
}

#[test]
fn named_target_ports_resolve_per_pod_and_group_slices() {
    let svc = service(
        &[("app", "web")],
        vec![
            port("http", 80, IntOrString::String("http".into())),
            port("admin", 9000, IntOrString::Int(9000)),
        ],
    );
    let pods = [
        pod("a", "10.1.0.2", true, 8080),
        pod("b", "10.1.0.3", true, 8081),
        pod("c", "10.1.0.4", true, 8080),
    ];
    let slices = desired(&svc, pods.iter());
    assert_eq!(slices.len(), 2, "two port mappings, two slices");
    let summary: Vec<(Vec<i32>, Vec<String>)> = slices
        .iter()
        .map(|(ports, endpoints)| {
            (
                ports.iter().map(|p| p.port.unwrap()).collect(),
                endpoints.iter().map(|e| e.addresses[0].clone()).collect(),
            )
        })
        .collect();
    assert!(
        summary.contains(&(vec![8080, 9000], vec!["10.1.0.2".into(), "10.1.0.4".into()])),
        "{summary:?}"
    );
    assert!(
        summary.contains(&(vec![8081, 9000], vec!["10.1.0.3".into()])),
        "{summary:?}"
    );
    assert_eq!(slices[0].0[0].name.as_deref(), Some("http"));
    // A pod without the named port serves only the others.
    let mut no_http = pod("d", "10.1.0.5", true, 8080);
    no_http.spec.containers[0].ports = None;
    let ports = ports_for(&svc.spec, &no_http.spec);
    assert_eq!(ports.iter().map(|p| p.port.unwrap()).collect::<Vec<_>>(), [9000]);
}

#[test]
fn only_matching_pods_in_the_namespace_count_and_big_sets_split() {
    let svc = service(&[("app", "web")], vec![port("", 80, IntOrString::Int(80))]);
    let mut other = pod("x", "10.1.0.9", true, 80);
    other.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
    let mut elsewhere = pod("y", "10.1.0.10", true, 80);
    elsewhere.metadata.namespace = Some("prod".into());
    let many: Vec<Pod> = (0..250)
        .map(|i| {
            pod(
                &format!("p{i:03}"),
                &format!("10.2.{}.{}", i / 200, i % 200 + 1),
                true,
                80,
            )
        })
        .collect();
    let all: Vec<&Pod> = many.iter().chain([&other, &elsewhere]).collect();
    let slices = desired(&svc, all.iter().copied());
    assert_eq!(slices.iter().map(|(_, e)| e.len()).collect::<Vec<_>>(), [100, 100, 50]);
    let no_selector = Service::new(named("default", "manual"), ServiceSpec::default());
    assert!(desired(&no_selector, all.iter().copied()).is_empty());
    let none = desired(&svc, std::iter::empty());
    assert_eq!(none.len(), 1, "an empty slice still shows the ports");
    assert!(none[0].1.is_empty());
}

#[test]
fn the_plan_follows_pods_coming_and_going() {
    let svc = service(&[("app", "web")], vec![port("http", 80, IntOrString::Int(8080))]);
    let a = pod("a", "10.1.0.2", true, 8080);
    let first = plan([&svc], &[&a], &[]);
    assert_eq!((first.create.len(), first.update.len(), first.delete.len()), (1, 0, 0));
    let created = first.create[0].clone();
    assert!(
        created.metadata.name().starts_with("web-"),
        "{}",
        created.metadata.name()
    );
    let labels = created.metadata.labels();
    assert_eq!(labels.get(SERVICE_NAME_LABEL).map(String::as_str), Some("web"));
    assert_eq!(labels.get(MANAGED_BY_LABEL).map(String::as_str), Some(CONTROLLER_NAME));
    let owner = &created.metadata.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Service", "svc-uid", Some(true))
    );
    assert_eq!(created.address_type, "IPv4");

    // Stored as planned (and read back as the store gives it): nothing to do.
    let created: EndpointSlice = serde_json::from_value(serde_json::to_value(&created).unwrap()).unwrap();
    let stored = vec![(created.clone(), 10)];
    let same = plan([&svc], &[&a], &stored);
    assert_eq!((same.create.len(), same.update.len(), same.delete.len()), (0, 0, 0));

    // A second pod comes, the first turns unready: the one slice is updated.
    let b = pod("b", "10.1.0.3", true, 8080);
    let a_unready = pod("a", "10.1.0.2", false, 8080);
    let changed = plan([&svc], &[&a_unready, &b], &stored);
    assert_eq!(
        (changed.create.len(), changed.update.len(), changed.delete.len()),
        (0, 1, 0)
    );
    let updated = &changed.update[0];
    assert_eq!(updated.metadata.name(), created.metadata.name());
    assert_eq!(updated.metadata.resource_version.as_deref(), Some("10"));
    let ready: Vec<(String, bool)> = updated
        .endpoints
        .iter()
        .map(|e| (e.addresses[0].clone(), conditions(e).0))
        .collect();
    assert_eq!(ready, [("10.1.0.2".to_string(), false), ("10.1.0.3".to_string(), true)]);

    // The Service goes: its managed slices go; a user's slice stays.
    let mut users = slice(&svc, "web-manual".into(), vec![], vec![]);
    users.metadata.labels.as_mut().unwrap().remove(MANAGED_BY_LABEL);
    let gone = plan(
        std::iter::empty::<&Service>(),
        &[&a],
        &[(created.clone(), 10), (users, 11)],
    );
    assert_eq!(
        gone.delete,
        [(
            format!("/registry/endpointslices/default/{}", created.metadata.name()),
            10
        )]
    );

    // A Service recreated under the same name does not adopt the old one's slices.
    let mut again = svc.clone();
    again.metadata.uid = Some("new-uid".into());
    let renewed = plan([&again], &[&a], &stored);
    assert_eq!((renewed.create.len(), renewed.delete.len()), (1, 1));
}
