//! Which taints a pod's tolerations tolerate, and how long it stays on a node with
//! a `NoExecute` taint, as Kubernetes' `ToleratesTaint` and its taint eviction
//! controller decide it.

use std::time::Duration;

use crate::objects::{Taint, Toleration};

/// The effect that evicts running pods that do not tolerate it.
pub const NO_EXECUTE: &str = "NoExecute";

/// Whether `toleration` tolerates `taint`: an empty effect or key matches any;
/// `Exists` ignores the value, `Equal` (or no operator) needs it to be the same.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    let key = toleration.key.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect || !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => toleration.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default(),
        "Exists" => true,
        _ => false,
    }
}

/// How long a pod with `tolerations` may stay on a node with `taints`, judged on
/// its `NoExecute` taints: `None` forever (none, or each tolerated without
/// `tolerationSeconds`); `Some(ZERO)` not at all (one is not tolerated, or a
/// toleration's seconds are zero or less); else the smallest `tolerationSeconds`
/// among the tolerations used (the first that matches each taint).
pub fn no_execute_stay(tolerations: &[Toleration], taints: &[Taint]) -> Option<Duration> {
    let mut stay: Option<Duration> = None;
    for taint in taints.iter().filter(|t| t.effect == NO_EXECUTE) {
        // The first toleration that matches is the one used, as Kubernetes'
        // GetMatchingTolerations takes it.
        let Some(used) = tolerations.iter().find(|t| tolerates(t, taint)) else {
            return Some(Duration::ZERO);
        };
        if let Some(seconds) = used.toleration_seconds {
            let this = Duration::from_secs(seconds.max(0) as u64);
            stay = Some(stay.map_or(this, |s| s.min(this)));
        }
    }
    stay
}

/// The taints Kubernetes puts on a node that is not ready, or whose agent stopped
/// posting its status.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Kubernetes' DefaultTolerationSeconds admission: a pod that tolerates neither
/// `not-ready` nor `unreachable` for NoExecute (a toleration of the key, or of every
/// key, for NoExecute or every effect) gets a toleration of each for the seconds
/// given (`None`: not added).
pub fn add_defaults(tolerations: &mut Option<Vec<Toleration>>, not_ready: Option<i64>, unreachable: Option<i64>) {
    for (key, seconds) in [(NOT_READY, not_ready), (UNREACHABLE, unreachable)] {
        let Some(seconds) = seconds else { continue };
        let covers = |t: &Toleration| {
            let (k, effect) = (
                t.key.as_deref().unwrap_or_default(),
                t.effect.as_deref().unwrap_or_default(),
            );
            (k == key || k.is_empty()) && (effect == NO_EXECUTE || effect.is_empty())
        };
        if tolerations.iter().flatten().any(covers) {
            continue;
        }
        tolerations.get_or_insert_default().push(Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(NO_EXECUTE.into()),
            toleration_seconds: Some(seconds),
            ..Default::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: (!value.is_empty()).then(|| value.into()),
            effect: effect.into(),
            ..Default::default()
        }
    }

    fn toleration(key: &str, operator: &str, value: &str, effect: &str, seconds: Option<i64>) -> Toleration {
        let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Toleration {
            key: text(key),
            operator: text(operator),
            value: text(value),
            effect: text(effect),
            toleration_seconds: seconds,
        }
    }

    #[test]
    fn tolerations_match_as_kubernetes_matches_them() {
        let gpu = taint("gpu", "yes", NO_EXECUTE);
        assert!(tolerates(&toleration("gpu", "Equal", "yes", NO_EXECUTE, None), &gpu));
        assert!(tolerates(&toleration("gpu", "", "yes", "", None), &gpu));
        assert!(tolerates(&toleration("gpu", "Exists", "", "", None), &gpu));
        assert!(
            tolerates(&toleration("", "Exists", "", "", None), &gpu),
            "tolerates everything"
        );
        assert!(!tolerates(&toleration("gpu", "Equal", "no", "", None), &gpu));
        assert!(!tolerates(&toleration("gpu", "Exists", "", "NoSchedule", None), &gpu));
        assert!(!tolerates(&toleration("other", "Exists", "", "", None), &gpu));
    }

    #[test]
    fn default_tolerations_are_added_where_the_pod_has_none_of_its_own() {
        let mut none = None;
        add_defaults(&mut none, Some(300), Some(300));
        let keys: Vec<(&str, Option<i64>)> = none
            .iter()
            .flatten()
            .map(|t| (t.key.as_deref().unwrap(), t.toleration_seconds))
            .collect();
        assert_eq!(keys, [(NOT_READY, Some(300)), (UNREACHABLE, Some(300))]);
        let own = toleration(UNREACHABLE, "Exists", "", NO_EXECUTE, Some(5));
        let mut some = Some(vec![own.clone()]);
        add_defaults(&mut some, Some(300), Some(300));
        assert_eq!(
            some.as_ref().unwrap().len(),
            2,
            "not-ready added, unreachable kept: {some:?}"
        );
        assert_eq!(some.as_ref().unwrap()[0], own);
        let mut everything = Some(vec![toleration("", "Exists", "", "", None)]);
        add_defaults(&mut everything, Some(300), Some(300));
        assert_eq!(everything.unwrap().len(), 1);
        let mut off = None;
        add_defaults(&mut off, None, None);
        assert_eq!(off, None);
    }

    #[test]
    fn a_pod_stays_as_long_as_its_shortest_matching_toleration() {
        let taints = [
            taint("gpu", "yes", NO_EXECUTE),
            taint("soft", "", "NoSchedule"),
            taint("maintenance", "", NO_EXECUTE),
        ];
        let forever = [toleration("", "Exists", "", "", None)];
        assert_eq!(no_execute_stay(&forever, &taints), None);
        assert_eq!(no_execute_stay(&[], &taints[1..2]), None, "NoSchedule evicts nobody");
        assert_eq!(no_execute_stay(&[], &taints), Some(Duration::ZERO));
        let timed = [
            toleration("gpu", "Exists", "", NO_EXECUTE, Some(60)),
            toleration("maintenance", "Exists", "", "", Some(30)),
            toleration("", "Exists", "", "", None),
        ];
        assert_eq!(no_execute_stay(&timed, &taints), Some(Duration::from_secs(30)));
        let half = [toleration("gpu", "Exists", "", "", None)];
        assert_eq!(
            no_execute_stay(&half, &taints),
            Some(Duration::ZERO),
            "maintenance is not tolerated"
        );
        let first_wins = [
            toleration("", "Exists", "", "", None),
            toleration("gpu", "Exists", "", "", Some(1)),
        ];
        assert_eq!(no_execute_stay(&first_wins, &taints), None);
        let negative = [toleration("", "Exists", "", "", Some(-5))];
        assert_eq!(no_execute_stay(&negative, &taints), Some(Duration::ZERO));
    }
}
