use super::*;
use berth_api::meta::{LabelSelector, ObjectMeta, OwnerReference, match_labels, named};
use berth_api::objects::{Deployment, PodCondition, PodSpec, PodStatus, ReplicaSet, Resource};

/// A fixed now.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn web() -> LabelSelector {
    match_labels([("app".to_string(), "web".to_string())].into())
}

fn owner(kind: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        kind: kind.into(),
        uid: uid.into(),
        name: uid.into(),
        api_version: "apps/v1".into(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

/// A pod of app=web, ready or not, owned by the ReplicaSet `rs`.
fn pod(name: &str, ready: bool, rs: Option<&str>) -> Pod {
    let mut pod = Pod::new(
        ObjectMeta {
            labels: Some([("app".to_string(), "web".to_string())].into()),
            owner_references: rs.map(|uid| vec![owner("ReplicaSet", uid)]),
            ..named("default", name)
        },
        PodSpec::default(),
    );
    pod.status = PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    pod
}

fn budget(min_available: Option<IntOrString>, max_unavailable: Option<IntOrString>) -> PodDisruptionBudget {
    let mut budget = PodDisruptionBudget::new(
        named("default", "web"),
        PodDisruptionBudgetSpec {
            min_available,
            max_unavailable,
            selector: Some(web()),
            ..Default::default()
        },
    );
    budget.metadata.generation = Some(3);
    budget
}

/// A Deployment `d` of `replicas` whose ReplicaSet `rs` asks for `rs_replicas`
/// (in the middle of a rollout the two differ).
fn owners(replicas: i32, rs_replicas: i32) -> (Snapshot<ReplicaSetSpec>, Snapshot<DeploymentSpec>) {
    let mut deployment: Deployment = Resource::new(
        ObjectMeta {
            uid: Some("d".into()),
            ..named("default", "web")
        },
        DeploymentSpec::default(),
    );
    deployment.spec.replicas = Some(replicas);
    let mut rs: ReplicaSet = Resource::new(
        ObjectMeta {
            uid: Some("rs".into()),
            owner_references: Some(vec![owner("Deployment", "d")]),
            ..named("default", "web-abc")
        },
        ReplicaSetSpec::default(),
    );
    rs.spec.replicas = Some(rs_replicas);
    (Snapshot::from_objects([rs], 1), Snapshot::from_objects([deployment], 1))
}

fn plan(budget: &PodDisruptionBudget, pods: &[Pod], scales: (i32, i32)) -> Plan {
    let (replica_sets, deployments) = owners(scales.0, scales.1);
    let owners = Owners {
        replica_sets: &replica_sets,
        deployments: &deployments,
    };
    let covered = selected(budget, pods);
    reconcile(budget, &covered, &owners, now())
}

fn status(plan: &Plan) -> &PodDisruptionBudgetStatus {
    plan.status.as_ref().expect("a new status")
}

fn condition(status: &PodDisruptionBudgetStatus) -> (String, String) {
    let c = &status.conditions.as_ref().unwrap()[0];
    assert_eq!(c.type_, "DisruptionAllowed");
    (c.status.clone(), c.reason.clone())
}

#[test]
fn a_number_min_available_counts_the_pods() {
    let pods = [
        pod("a", true, Some("rs")),
        pod("b", true, Some("rs")),
        pod("c", true, Some("rs")),
    ];
    let planned = plan(&budget(Some(IntOrString::Int(2)), None), &pods, (3, 3));
    let s = status(&planned);
    assert_eq!(
        (
            s.expected_pods,
            s.desired_healthy,
            s.current_healthy,
            s.disruptions_allowed
        ),
        (3, 2, 3, 1)
    );
    assert_eq!(s.observed_generation, Some(3));
    assert_eq!(condition(s), ("True".into(), "SufficientPods".into()));

    // One unready: nothing may go.
    let pods = [
        pod("a", true, Some("rs")),
        pod("b", false, Some("rs")),
        pod("c", true, Some("rs")),
    ];
    let planned = plan(&budget(Some(IntOrString::Int(2)), None), &pods, (3, 3));
    let s = status(&planned);
    assert_eq!((s.current_healthy, s.disruptions_allowed), (2, 0));
    assert_eq!(condition(s), ("False".into(), "InsufficientPods".into()));
}

#[test]
fn max_unavailable_and_percentages_read_the_deployments_scale() {
    // A Deployment of 4 in a rollout: its ReplicaSet asks for 2, the budget for the 4.
    let pods = [pod("a", true, Some("rs")), pod("b", true, Some("rs"))];
    let planned = plan(&budget(None, Some(IntOrString::Int(1))), &pods, (4, 2));
    let s = status(&planned);
    assert_eq!(
        (
            s.expected_pods,
            s.desired_healthy,
            s.current_healthy,
            s.disruptions_allowed
        ),
        (4, 3, 2, 0)
    );
    // 50% of 3, rounded up, must stay.
    let pods = [
        pod("a", true, Some("rs")),
        pod("b", true, Some("rs")),
        pod("c", true, Some("rs")),
    ];
    let planned = plan(&budget(Some(IntOrString::String("50%".into())), None), &pods, (3, 3));
    let s = status(&planned);
    assert_eq!((s.expected_pods, s.desired_healthy, s.disruptions_allowed), (3, 2, 1));
}

#[test]
fn pods_without_a_known_controller() {
    // Unmanaged pods are a warning; a number minAvailable still works.
    let pods = [pod("a", true, None), pod("b", true, None)];
    let planned = plan(&budget(Some(IntOrString::Int(1)), None), &pods, (0, 0));
    assert_eq!(status(&planned).disruptions_allowed, 1);
    // With maxUnavailable they count for nothing: no pods expected, nothing allowed.
    let planned = plan(&budget(None, Some(IntOrString::Int(1))), &pods, (0, 0));
    assert_eq!(status(&planned).disruptions_allowed, 0);
    assert!(planned.events.iter().any(|(_, reason, _)| *reason == "UnmanagedPods"));
    // A controller berth does not know: the budget allows nothing, and says why.
    let mut stateful = pod("s", true, None);
    stateful.metadata.owner_references = Some(vec![owner("StatefulSet", "ss")]);
    let planned = plan(&budget(None, Some(IntOrString::Int(1))), &[stateful], (0, 0));
    let s = status(&planned);
    assert_eq!(s.disruptions_allowed, 0);
    assert_eq!(condition(s), ("False".into(), "SyncFailed".into()));
    assert!(
        planned
            .events
            .iter()
            .any(|(_, reason, _)| *reason == "CalculateExpectedPodCountFailed")
    );
}

#[test]
fn evicted_pods_do_not_count_until_they_go_or_two_minutes_pass() {
    let pods = [
        pod("a", true, Some("rs")),
        pod("b", true, Some("rs")),
        pod("c", true, Some("rs")),
    ];
    let mut spent = budget(Some(IntOrString::Int(2)), None);
    let recently = from_system_time(now() - Duration::from_secs(30));
    let long_ago = from_system_time(now() - Duration::from_secs(600));
    spent.status.disrupted_pods = Some(
        [
            ("a".to_string(), recently),
            ("b".to_string(), long_ago),
            ("gone".to_string(), from_system_time(now())),
        ]
        .into(),
    );
    let planned = plan(&spent, &pods, (3, 3));
    let s = status(&planned);
    assert_eq!((s.current_healthy, s.disruptions_allowed), (2, 0));
    let kept: Vec<&String> = s.disrupted_pods.as_ref().unwrap().keys().collect();
    assert_eq!(kept, ["a"], "expired and vanished records are dropped");
    assert_eq!(
        planned.recheck,
        Some(Duration::from_secs(90)),
        "looks again when the record expires"
    );

    // A pod being deleted counts neither as healthy nor as disrupted.
    let mut going = pods.clone();
    going[0].metadata.deletion_timestamp = Some(from_system_time(now()));
    let s = plan(&spent, &going, (3, 3)).status.unwrap();
    assert_eq!((s.current_healthy, s.disrupted_pods), (2, None));
}

#[test]
fn selectors_and_quiet_passes() {
    let mut elsewhere = pod("x", true, Some("rs"));
    elsewhere.metadata.namespace = Some("other".into());
    let pods = [pod("a", true, Some("rs")), elsewhere];
    let mut no_selector = budget(Some(IntOrString::Int(0)), None);
    no_selector.spec.selector = None;
    assert!(selected(&no_selector, &pods).is_empty(), "no selector selects nothing");
    no_selector.spec.selector = Some(LabelSelector::default());
    assert_eq!(
        selected(&no_selector, &pods).len(),
        1,
        "an empty one its namespace's pods"
    );

    let first = plan(&budget(Some(IntOrString::Int(1)), None), &pods, (1, 1));
    let mut written = budget(Some(IntOrString::Int(1)), None);
    written.status = first.status.unwrap();
    let again = plan(&written, &pods, (1, 1));
    assert_eq!(again, Plan::default(), "an unchanged budget is not written again");

    let empty = plan(&budget(Some(IntOrString::Int(1)), None), &[], (1, 1));
    assert!(empty.events.iter().any(|(_, reason, _)| *reason == "NoPods"));
    assert_eq!(status(&empty).disruptions_allowed, 0);
}
