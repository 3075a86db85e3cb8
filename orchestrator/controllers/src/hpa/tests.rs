use std::time::{Duration, SystemTime};

use berth_api::kinds::horizontal_pod_autoscaler::{HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler};

use super::behavior::{self, Memory, normalize, record_scale};
use super::decide::{Samples, decide};
use super::replicas::{PodSample, Target, Usage, proposal};

fn t(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
}

/// A running pod, ready for long, requesting 100m, using `millis` (None: no metrics).
fn pod(name: &str, millis: Option<i64>) -> PodSample {
    PodSample {
        name: name.into(),
        phase: "Running".into(),
        deleting: false,
        ready: Some((true, t(0))),
        start_time: Some(t(0)),
        request: Ok(100),
        usage: millis.map(|value| Usage {
            value,
            timestamp: t(1000),
            window: Duration::from_secs(10),
        }),
    }
}

fn replicas(current: i32, pods: &[PodSample], target: i32) -> i32 {
    proposal(current, pods, "cpu", Target::Utilization(target), t(1000))
        .unwrap()
        .replicas
}

#[test]
fn usage_within_ten_percent_of_the_target_changes_nothing() {
    let at = |millis| [pod("a", Some(millis)), pod("b", Some(millis)), pod("c", Some(millis))];
    assert_eq!(replicas(3, &at(54), 50), 3, "108% of the target");
    assert_eq!(replicas(3, &at(46), 50), 3, "92% of the target");
    assert_eq!(replicas(3, &at(75), 50), 5, "150%: ceil(1.5 × 3)");
    assert_eq!(replicas(3, &at(10), 50), 1, "20%: ceil(0.2 × 3)");
    let p = proposal(3, &at(75), "cpu", Target::Utilization(50), t(1000)).unwrap();
    assert_eq!((p.utilization, p.average), (Some(75), 75));
}

#[test]
fn missing_metrics_count_as_zero_up_and_as_the_request_down() {
    // Up: two pods at 200% of a 50% target, one without metrics counted as 0.
    let up = [pod("a", Some(100)), pod("b", Some(100)), pod("c", None)];
    assert_eq!(replicas(3, &up, 50), 4, "(100+100+0)/300 = 66% → ceil(1.33 × 3)");
    // Down: two pods at 10%, one without metrics counted as 100% of its request:
    // (10+10+100)/300 = 40% of a 50% target → ceil(0.8 × 3) = 3, no change.
    let down = [pod("a", Some(10)), pod("b", Some(10)), pod("c", None)];
    assert_eq!(replicas(3, &down, 50), 3);
    // Without the missing pod the two would have gone to one.
    assert_eq!(replicas(2, &down[..2], 50), 1);
}

#[test]
fn unready_pods_are_left_out_and_count_as_zero_on_a_scale_up() {
    let mut pending = pod("b", None);
    pending.phase = "Pending".into();
    // One ready pod at twice the target, one pending counted as 0: exactly the
    // target, within the tolerance.
    assert_eq!(replicas(2, &[pod("a", Some(200)), pending.clone()], 100), 2);
    // A cpu sample taken before a full window since the pod became ready is
    // the pod's start, not its load: the pod counts as unready.
    let mut starting = pod("b", Some(500));
    starting.start_time = Some(t(990));
    starting.ready = Some((true, t(995)));
    assert_eq!(replicas(2, &[pod("a", Some(100)), starting.clone()], 100), 2);
    // The same pod long ready counts: (100+500)/200 = 300% → 6.
    assert_eq!(replicas(2, &[pod("a", Some(100)), pod("b", Some(500))], 100), 6);
    // Deleting and failed pods are ignored altogether.
    let mut gone = pod("c", Some(900));
    gone.deleting = true;
    assert_eq!(replicas(1, &[pod("a", Some(100)), gone], 100), 1);
}

#[test]
fn errors_name_what_is_missing() {
    let mut no_request = pod("a", Some(10));
    no_request.request = Err("app".into());
    let error = proposal(1, &[no_request], "cpu", Target::Utilization(50), t(1000)).unwrap_err();
    assert_eq!(error, "missing request for cpu in container app of Pod a");
    let error = proposal(1, &[pod("a", None)], "cpu", Target::Utilization(50), t(1000)).unwrap_err();
    assert!(error.contains("did not receive metrics"), "{error}");
    assert!(proposal(1, &[], "cpu", Target::Utilization(50), t(1000)).is_err());
}

#[test]
fn average_value_targets_divide_by_the_pods() {
    let pods = [pod("a", Some(300)), pod("b", Some(100))];
    let p = proposal(2, &pods, "cpu", Target::AverageValue(100), t(1000)).unwrap();
    assert_eq!((p.replicas, p.utilization, p.average), (4, None, 200));
}

fn rules(window: i32, policies: &[(&str, i32, i32)], select: &str) -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: Some(window),
        select_policy: Some(select.into()),
        policies: Some(
            policies
                .iter()
                .map(|(type_, value, period_seconds)| HPAScalingPolicy {
                    type_: (*type_).into(),
                    value: *value,
                    period_seconds: *period_seconds,
                })
                .collect(),
        ),
        tolerance: None,
    }
}

#[test]
fn scale_down_waits_for_the_stabilization_window() {
    let (up, down) = behavior::rules(None);
    let mut memory = Memory::default();
    let first = normalize(&mut memory, 5, 5, 1, 10, &up, &down, t(0));
    assert_eq!(first.replicas, 5);
    let held = normalize(&mut memory, 5, 2, 1, 10, &up, &down, t(60));
    assert_eq!(held.replicas, 5, "the 5 of a minute ago is within 300 s");
    assert_eq!(held.able_to_scale.1, "ScaleDownStabilized");
    let released = normalize(&mut memory, 5, 2, 1, 10, &up, &down, t(301));
    assert_eq!(released.replicas, 2, "every recommendation of the window is 2 now");
    assert_eq!(released.able_to_scale.1, "ReadyForNewScale");
}

#[test]
fn scale_up_stabilization_takes_the_lowest_recent_recommendation() {
    let up = rules(60, &[("Percent", 100, 15)], "Max");
    let down = rules(0, &[("Percent", 100, 15)], "Max");
    let mut memory = Memory::default();
    assert_eq!(normalize(&mut memory, 2, 3, 1, 10, &up, &down, t(0)).replicas, 3);
    let second = normalize(&mut memory, 2, 8, 1, 10, &up, &down, t(30));
    assert_eq!((second.replicas, second.able_to_scale.1), (3, "ScaleUpStabilized"));
}

#[test]
fn policies_limit_the_rate_from_the_start_of_their_period() {
    let up = rules(0, &[("Pods", 1, 60)], "Max");
    let down = rules(0, &[("Percent", 50, 60)], "Max");
    let mut memory = Memory::default();
    let step = normalize(&mut memory, 2, 6, 1, 10, &up, &down, t(0));
    assert_eq!((step.replicas, step.scaling_limited.1), (3, "ScaleUpLimit"));
    record_scale(&mut memory, 2, 3, &up, &down, t(0));
    assert_eq!(
        normalize(&mut memory, 3, 6, 1, 10, &up, &down, t(30)).replicas,
        3,
        "one pod per minute"
    );
    assert_eq!(normalize(&mut memory, 3, 6, 1, 10, &up, &down, t(61)).replicas, 4);
    // Down by half at most: 8 → 4, then nothing more within the minute.
    let mut memory = Memory::default();
    assert_eq!(normalize(&mut memory, 8, 1, 1, 10, &up, &down, t(0)).replicas, 4);
    record_scale(&mut memory, 8, 4, &up, &down, t(0));
    assert_eq!(normalize(&mut memory, 4, 1, 1, 10, &up, &down, t(10)).replicas, 4);
}

#[test]
fn select_policy_picks_the_largest_or_smallest_change_or_none() {
    let policies = [("Pods", 1, 60), ("Percent", 100, 60)];
    let down = rules(0, &[("Percent", 100, 15)], "Max");
    let memory = Memory::default();
    let limit = |select| behavior::scale_up_limit(&memory, 4, &rules(0, &policies, select), t(0));
    assert_eq!((limit("Max"), limit("Min"), limit("Disabled")), (8, 5, 4));
    let mut memory = Memory::default();
    let disabled = rules(0, &policies, "Disabled");
    assert_eq!(normalize(&mut memory, 4, 9, 1, 10, &disabled, &down, t(0)).replicas, 4);
}

#[test]
fn min_and_max_bound_the_result() {
    let (up, down) = behavior::rules(None);
    let mut memory = Memory::default();
    let high = normalize(&mut memory, 4, 20, 1, 5, &up, &down, t(0));
    assert_eq!(
        (high.replicas, high.scaling_limited),
        (
            5,
            (
                true,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count"
            )
        )
    );
    let down0 = behavior::rules(None).1;
    let mut memory = Memory::default();
    let low = normalize(
        &mut memory,
        4,
        1,
        2,
        5,
        &up,
        &rules(0, &[("Percent", 100, 15)], "Max"),
        t(0),
    );
    assert_eq!((low.replicas, low.scaling_limited.1), (2, "TooFewReplicas"));
    assert_eq!(down0.stabilization_window_seconds, Some(300));
}

struct Fixed(Vec<PodSample>);

impl Samples for Fixed {
    fn of(&self, _resource: &str) -> Vec<PodSample> {
        self.0.clone()
    }
}

fn autoscaler() -> HorizontalPodAutoscaler {
    let value = serde_json::json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default", "generation": 1},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 1, "maxReplicas": 5,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                              "target": {"type": "Utilization", "averageUtilization": 50}}}]}});
    serde_json::from_value(value).unwrap()
}

#[test]
fn a_pass_rescales_with_kubernetes_words() {
    let hpa = autoscaler();
    let mut memory = Memory::default();
    let pods = Fixed(vec![pod("a", Some(100)), pod("b", Some(100))]);
    let decision = decide(&hpa, Ok(2), &pods, &mut memory, t(1000));
    assert_eq!(decision.rescale, Some(4));
    assert_eq!(
        decision.events,
        [(
            berth_client::events::EventType::Normal,
            "SuccessfulRescale",
            "New size: 4; reason: cpu resource utilization (percentage of request) above target".to_string()
        )]
    );
    let status = &decision.status;
    assert_eq!((status.current_replicas, status.desired_replicas), (Some(2), 4));
    assert!(status.last_scale_time.is_some());
    let current = &status.current_metrics.as_ref().unwrap()[0];
    let resource = current.resource.as_ref().unwrap();
    assert_eq!(
        (
            resource.current.average_utilization,
            resource.current.average_value.as_ref().map(|q| q.0.as_str())
        ),
        (Some(100), Some("100m"))
    );
    let reasons: Vec<(&str, &str, &str)> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| {
            (
                c.type_.as_str(),
                c.status.as_str(),
                c.reason.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("ScalingActive", "True", "ValidMetricFound"),
            ("AbleToScale", "True", "SucceededRescale"),
            ("ScalingLimited", "False", "DesiredWithinRange"),
        ]
    );
    // The target's replicas at zero turn autoscaling off.
    let off = decide(&hpa, Ok(0), &pods, &mut Memory::default(), t(1000));
    assert_eq!(off.rescale, None);
    // A target that is gone says so.
    let gone = decide(
        &hpa,
        Err("deployments.apps \"web\" not found".into()),
        &pods,
        &mut Memory::default(),
        t(1000),
    );
    assert_eq!(gone.rescale, None);
    assert_eq!(gone.events[0].1, "FailedGetScale");
    // No metrics: ScalingActive False, nothing scaled.
    let blind = decide(
        &hpa,
        Ok(2),
        &Fixed(vec![pod("a", None)]),
        &mut Memory::default(),
        t(1000),
    );
    assert_eq!(blind.rescale, None);
    let active = blind
        .status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "ScalingActive")
        .unwrap();
    assert_eq!(
        (active.status.as_str(), active.reason.as_deref()),
        ("False", Some("FailedGetResourceMetric"))
    );
}
