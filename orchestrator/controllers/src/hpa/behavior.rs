//! From a recommendation to the replicas to set (pure, over the controller's memory
//! of one autoscaler), as Kubernetes applies `behavior`:
//!
//! ```text
//! recommendation ─► stabilized: no higher than the lowest recommendation of the
//!   scale-up window, no lower than the highest of the scale-down window (both
//!   counting this one); remembered
//! ─► rate-limited: the policies of the direction, each from the replicas at the
//!   start of its period (the scale events of the period taken back), Max or Min
//!   of them (Disabled: no change that way), and within minReplicas..maxReplicas
//! ```
//!
//! An autoscaler without `behavior` gets Kubernetes' default rules (0 s up, 300 s
//! down, double or +4 pods per 15 s up, all at once down).

use std::time::{Duration, SystemTime};

use berth_api::kinds::horizontal_pod_autoscaler::{
    DISABLED, HPAScalingRules, MIN_CHANGE, default_scale_down, default_scale_up,
};

/// What the controller remembers of one autoscaler between passes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Memory {
    /// Recommendations, with when they were made.
    pub recommendations: Vec<(SystemTime, i32)>,
    /// Changes of scale made, with when (positive up, negative down).
    pub scale_events: Vec<(SystemTime, i32)>,
    pub last_sync: Option<SystemTime>,
}

/// A condition's status, reason and message.
pub type Said = (bool, &'static str, &'static str);

/// The outcome: the replicas to set, and the AbleToScale and ScalingLimited
/// conditions that explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    pub replicas: i32,
    pub able_to_scale: Said,
    pub scaling_limited: Said,
}

/// The scale-up and scale-down rules in force.
pub fn rules(
    behavior: Option<&berth_api::kinds::horizontal_pod_autoscaler::HorizontalPodAutoscalerBehavior>,
) -> (HPAScalingRules, HPAScalingRules) {
    let up = behavior
        .and_then(|b| b.scale_up.clone())
        .unwrap_or_else(default_scale_up);
    let down = behavior
        .and_then(|b| b.scale_down.clone())
        .unwrap_or_else(default_scale_down);
    (up, down)
}

fn window(rules: &HPAScalingRules) -> Duration {
    Duration::from_secs(rules.stabilization_window_seconds.unwrap_or(0).max(0) as u64)
}

/// Within `until` before `now`.
fn is_after(at: SystemTime, now: SystemTime, span: Duration) -> bool {
    now.checked_sub(span).is_none_or(|cutoff| at > cutoff)
}

/// Applies stabilization and the rate limits to `desired`; records the
/// recommendation. `min..=max` bound the result.
#[allow(clippy::too_many_arguments)]
pub fn normalize(
    memory: &mut Memory,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    up: &HPAScalingRules,
    down: &HPAScalingRules,
    now: SystemTime,
) -> Normalized {
    let (up_window, down_window) = (window(up), window(down));
    let mut up_recommendation = desired;
    let mut down_recommendation = desired;
    for (at, recommended) in &memory.recommendations {
        if is_after(*at, now, up_window) {
            up_recommendation = up_recommendation.min(*recommended);
        }
        if is_after(*at, now, down_window) {
            down_recommendation = down_recommendation.max(*recommended);
        }
    }
    let longest = up_window.max(down_window);
    memory.recommendations.retain(|(at, _)| is_after(*at, now, longest));
    memory.recommendations.push((now, desired));
    let stabilized = current.max(up_recommendation).min(down_recommendation);
    let able_to_scale = if stabilized == desired {
        (true, "ReadyForNewScale", "recommended size matches current size")
    } else if stabilized > desired {
        (
            true,
            "ScaleDownStabilized",
            "recent recommendations were higher than current one, applying the highest recent recommendation",
        )
    } else {
        (
            true,
            "ScaleUpStabilized",
            "recent recommendations were lower than current one, applying the lowest recent recommendation",
        )
    };
    let (replicas, scaling_limited) = rate_limited(memory, current, stabilized, min, max, up, down, now);
    Normalized {
        replicas,
        able_to_scale,
        scaling_limited,
    }
}

/// The changes of scale made within `period` before `now`, up and down.
fn changes_in(memory: &Memory, period_seconds: i32, now: SystemTime) -> (i32, i32) {
    let period = Duration::from_secs(period_seconds.max(0) as u64);
    memory
        .scale_events
        .iter()
        .filter(|(at, _)| is_after(*at, now, period))
        .fold((0, 0), |(added, removed), (_, change)| {
            if *change > 0 {
                (added + change, removed)
            } else {
                (added, removed - change)
            }
        })
}

/// The most replicas the scale-up rules allow now.
pub fn scale_up_limit(memory: &Memory, current: i32, rules: &HPAScalingRules, now: SystemTime) -> i32 {
    let select = rules.select_policy.as_deref().unwrap_or("Max");
    if select == DISABLED {
        return current;
    }
    let proposals = rules.policies.iter().flatten().map(|policy| {
        let (added, removed) = changes_in(memory, policy.period_seconds, now);
        let start = current - added + removed;
        match policy.type_.as_str() {
            "Pods" => start + policy.value,
            _ => (f64::from(start) * (1.0 + f64::from(policy.value) / 100.0)).ceil() as i32,
        }
    });
    let limit = if select == MIN_CHANGE {
        proposals.min()
    } else {
        proposals.max()
    };
    limit.unwrap_or(current)
}

/// The fewest replicas the scale-down rules allow now.
pub fn scale_down_limit(memory: &Memory, current: i32, rules: &HPAScalingRules, now: SystemTime) -> i32 {
    let select = rules.select_policy.as_deref().unwrap_or("Max");
    if select == DISABLED {
        return current;
    }
    let proposals = rules.policies.iter().flatten().map(|policy| {
        let (added, removed) = changes_in(memory, policy.period_seconds, now);
        let start = current - added + removed;
        match policy.type_.as_str() {
            "Pods" => start - policy.value,
            _ => (f64::from(start) * (1.0 - f64::from(policy.value) / 100.0)) as i32,
        }
    });
    // Max is the policy that removes the most pods: the lowest limit.
    let limit = if select == MIN_CHANGE {
        proposals.max()
    } else {
        proposals.min()
    };
    limit.unwrap_or(current)
}

#[allow(clippy::too_many_arguments)]
fn rate_limited(
    memory: &Memory,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    up: &HPAScalingRules,
    down: &HPAScalingRules,
    now: SystemTime,
) -> (i32, Said) {
    if desired > current {
        let limit = scale_up_limit(memory, current, up, now).max(current);
        let (allowed, said) = if max > limit {
            (
                limit,
                (
                    true,
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the maximum scale rate",
                ),
            )
        } else {
            (
                max,
                (
                    true,
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                ),
            )
        };
        if desired > allowed {
            return (allowed, said);
        }
    } else if desired < current {
        let limit = scale_down_limit(memory, current, down, now).min(current);
        let (allowed, said) = if min < limit {
            (
                limit,
                (
                    true,
                    "ScaleDownLimit",
                    "the desired replica count is decreasing faster than the maximum scale rate",
                ),
            )
        } else {
            (
                min,
                (
                    true,
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                ),
            )
        };
        if desired < allowed {
            return (allowed, said);
        }
    }
    (
        desired,
        (
            false,
            "DesiredWithinRange",
            "the desired count is within the acceptable range",
        ),
    )
}

/// Records a change of scale made now, forgetting those older than every policy's
/// period.
pub fn record_scale(
    memory: &mut Memory,
    from: i32,
    to: i32,
    up: &HPAScalingRules,
    down: &HPAScalingRules,
    now: SystemTime,
) {
    let longest = up
        .policies
        .iter()
        .chain(down.policies.iter())
        .flatten()
        .map(|p| p.period_seconds)
        .max()
        .unwrap_or(0);
    let keep = Duration::from_secs(longest.max(0) as u64);
    memory.scale_events.retain(|(at, _)| is_after(*at, now, keep));
    if to != from {
        memory.scale_events.push((now, to - from));
    }
}
