//! `POST /api/v1/namespaces/{ns}/pods/{name}/eviction`: the Eviction subresource
//! that `kubectl drain` uses. A pod that runs is evicted only if the one
//! PodDisruptionBudget that selects it allows a disruption; the allowance is spent
//! (`status.disruptionsAllowed` less one, the pod recorded in
//! `status.disruptedPods`) in the same store transaction that deletes the pod, so
//! two evictions can never both spend the last one. Refused: 429 `TooManyRequests`
//! with Kubernetes' message, which kubectl retries. The answer to an eviction done
//! is a `Status` of success, code 201, as kube-apiserver gives.
//!
//! ```text
//!  read pod ─► not running or already deleted? ─► delete (the DELETE path)
//!      ▲          budgets that select it: none ─► delete (the DELETE path)
//!      │                               one ─► judge (pure) ─► refuse (429)
//!      │                                          └─► spend + delete pod: one txn
//!      └────────── the budget or the pod changed in between ───────┘
//! ```

use std::time::SystemTime;

use serde_json::{Value, json};

use super::ApiServer;
use super::graceful;
use super::rest;
use super::route::Kind;
use super::status::ApiError;
use berth_api::conditions::is_pod_ready;
use berth_api::kinds::pod_disruption_budget::{ALWAYS_ALLOW, update_disruption_allowed};
use berth_api::meta::{MetaExt, selector_is_empty, selector_matches};
use berth_api::objects::{Pod, PodDisruptionBudget, PodDisruptionBudgetSpec, prefix};
use berth_api::pod_deletion::Deletion;
use berth_api::time::from_system_time;
use berth_client::kv::{KvError, Record, Write};
use berth_client::registry::decode;

/// The group versions whose `Eviction` the subresource takes.
const EVICTION_VERSIONS: &[&str] = &["policy/v1", "policy/v1beta1"];

/// How often an eviction whose budget or pod changed under it is judged again.
const ATTEMPTS: usize = 16;

/// Kubernetes' words for an eviction the budget does not allow.
pub const VIOLATES_BUDGET: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// Evicts the pod `name` as `eviction` asks.
pub async fn evict(
    api: &ApiServer,
    pods: &Kind,
    namespace: &str,
    name: &str,
    eviction: &Value,
) -> Result<Value, ApiError> {
    check(eviction, namespace, name)?;
    let options = eviction.get("deleteOptions").filter(|o| !o.is_null());
    let is_dry_run = options
        .and_then(|o| o.get("dryRun"))
        .and_then(Value::as_array)
        .is_some_and(|d| !d.is_empty());
    let store_error = |e: KvError| ApiError::from_kv(e, pods, name);
    for _ in 0..ATTEMPTS {
        let Some(record) = api.kv.get(&pods.key(namespace, name)).await.map_err(store_error)? else {
            return Err(ApiError::not_found(pods, name));
        };
        let pod: Pod = decode(&record).map_err(|e| ApiError::internal(e.to_string()))?;
        let budgets = if can_ignore_budgets(&pod) {
            Vec::new()
        } else {
            budgets_of(api, &pod).await?
        };
        let verdict = judge(&pod, &budgets, SystemTime::now())?;
        if is_dry_run {
            return Ok(success());
        }
        let Verdict::Spend(budget) = verdict else {
            rest::delete(api, pods, namespace, name, options, false).await?;
            return Ok(success());
        };
        check_preconditions(options, &pod, &record, pods, name)?;
        let grace_seconds = graceful::options_of(options)?.grace_seconds;
        let stored = serde_json::to_value(&pod).map_err(|e| ApiError::internal(e.to_string()))?;
        let deletion = graceful::decide_for_pod(api, &stored, grace_seconds).await?;
        let writes = [
            Write::Update {
                key: budget.budget.key(),
                value: budget.budget.stored_form(),
                mod_revision: budget.mod_revision,
            },
            pod_deletion(pod, &record, deletion),
        ];
        match api.kv.commit(&writes, None).await {
            Ok(_) => return Ok(success()),
            // The budget was spent or changed, or the pod changed: judge again.
            Err(KvError::Conflict { .. } | KvError::NotFound) => continue,
            Err(e) => return Err(store_error(e)),
        }
    }
    Err(ApiError::conflict(pods, name))
}

/// The write that deletes the evicted pod along with the budget's update: the pod
/// marked for a graceful deletion, as a DELETE marks it, or removed when the decision
/// says at once.
fn pod_deletion(mut pod: Pod, record: &Record, deletion: Deletion) -> Write {
    match deletion {
        Deletion::Mark { at, grace_seconds } => {
            let meta = &mut pod.metadata;
            // Kubernetes counts the start of a graceful deletion as a new generation.
            if meta.deletion_timestamp.is_none() {
                meta.generation = meta.generation.map(|g| g + 1);
            }
            meta.deletion_timestamp = Some(at);
            meta.deletion_grace_period_seconds = Some(grace_seconds);
            Write::Update {
                key: record.key.clone(),
                value: pod.stored_form(),
                mod_revision: record.mod_revision,
            }
        }
        // A pod being deleted ignores budgets, so it is not here.
        Deletion::Now | Deletion::Pending => Write::Delete {
            key: record.key.clone(),
            mod_revision: record.mod_revision,
        },
    }
}

fn success() -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "code": 201,
    })
}

/// A pod that does not run (pending, or finished) or is already being deleted
/// disrupts nothing: its eviction is its deletion (Kubernetes' `canIgnorePDB`).
fn can_ignore_budgets(pod: &Pod) -> bool {
    let phase = pod.status.phase.as_deref().unwrap_or("Pending");
    matches!(phase, "Pending" | "Succeeded" | "Failed") || pod.metadata.deletion_timestamp.is_some()
}

/// A budget as read, with the revision its update is conditional on.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadBudget {
    pub budget: PodDisruptionBudget,
    pub mod_revision: i64,
}

/// The budgets of the pod's namespace whose selector selects it. A budget without
/// a selector, or with an empty one, selects nothing here, as in Kubernetes.
async fn budgets_of(api: &ApiServer, pod: &Pod) -> Result<Vec<ReadBudget>, ApiError> {
    let namespace = pod.metadata.namespace();
    let (records, _) = api
        .kv
        .list(&prefix::<PodDisruptionBudgetSpec>(Some(namespace)))
        .await
        .map_err(ApiError::internal)?;
    let mut selecting = Vec::new();
    for record in records {
        let budget: PodDisruptionBudget = decode(&record).map_err(|e| ApiError::internal(e.to_string()))?;
        let selects = budget
            .spec
            .selector
            .as_ref()
            .is_some_and(|s| !selector_is_empty(s) && selector_matches(s, pod.metadata.labels()));
        if selects {
            selecting.push(ReadBudget {
                budget,
                mod_revision: record.mod_revision,
            });
        }
    }
    Ok(selecting)
}

/// What an eviction of a running pod may do.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Delete the pod; no budget is spent.
    Free,
    /// Write this budget (its allowance spent on the pod) with the pod's deletion.
    Spend(Box<ReadBudget>),
}

/// Kubernetes' rules for evicting `pod` under the `budgets` that select it (pure):
/// more than one is an error; an unready pod goes without spending anything when
/// the budget says so (`AlwaysAllow`, or the budget is met); otherwise the budget
/// must have been computed for its current spec and allow a disruption.
pub fn judge(pod: &Pod, budgets: &[ReadBudget], now: SystemTime) -> Result<Verdict, ApiError> {
    let budget = match budgets {
        [] => return Ok(Verdict::Free),
        [budget] => budget,
        _ => {
            return Err(ApiError::new(
                500,
                "InternalError",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
    };
    let (spec, status) = (&budget.budget.spec, &budget.budget.status);
    if !is_pod_ready(pod) {
        let always = spec.unhealthy_pod_eviction_policy.as_deref() == Some(ALWAYS_ALLOW);
        if always || (status.current_healthy >= status.desired_healthy && status.desired_healthy > 0) {
            return Ok(Verdict::Free);
        }
    }
    let name = budget.budget.metadata.name();
    if status.observed_generation.unwrap_or_default() < budget.budget.metadata.generation.unwrap_or_default() {
        return Err(refused(
            format!("The disruption budget {name} is still being processed by the server."),
            10,
        ));
    }
    if status.disruptions_allowed < 0 {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!("poddisruptionbudgets.policy {name:?} is forbidden: pdb disruptions allowed is negative"),
        ));
    }
    if status.disruptions_allowed == 0 {
        return Err(refused(
            format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                status.desired_healthy, status.current_healthy
            ),
            0,
        ));
    }
    let mut spent = budget.clone();
    let status = &mut spent.budget.status;
    status.disruptions_allowed -= 1;
    if status.disruptions_allowed == 0 {
        update_disruption_allowed(status, from_system_time(now));
    }
    status
        .disrupted_pods
        .get_or_insert_with(Default::default)
        .insert(pod.metadata.name().to_string(), from_system_time(now));
    Ok(Verdict::Spend(Box::new(spent)))
}

/// 429 with the budget's reason as the cause, and, when given, when to try again.
fn refused(cause: String, retry_after_seconds: u64) -> ApiError {
    let mut details = json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]});
    if retry_after_seconds > 0 {
        details["retryAfterSeconds"] = retry_after_seconds.into();
    }
    ApiError {
        details: Some(details),
        ..ApiError::new(429, "TooManyRequests", VIOLATES_BUDGET)
    }
}

/// The DeleteOptions' preconditions, for an eviction that writes the pod's
/// deletion itself.
fn check_preconditions(
    options: Option<&Value>,
    pod: &Pod,
    record: &Record,
    pods: &Kind,
    name: &str,
) -> Result<(), ApiError> {
    let field = |path: &str| options.and_then(|o| o.pointer(path)).and_then(Value::as_str);
    if field("/preconditions/resourceVersion").is_some_and(|v| v != record.mod_revision.to_string()) {
        return Err(ApiError::conflict(pods, name));
    }
    if let Some(uid) = field("/preconditions/uid")
        && Some(uid) != pod.metadata.uid.as_deref()
    {
        return Err(ApiError::conflict(pods, name));
    }
    Ok(())
}

/// The body is an Eviction of this pod.
fn check(eviction: &Value, namespace: &str, name: &str) -> Result<(), ApiError> {
    let text = |pointer: &str| eviction.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
    let kind = text("/kind");
    if !kind.is_empty() && kind != "Eviction" {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({kind}) does not match the kind served at this URL (Eviction)"
        )));
    }
    let api_version = text("/apiVersion");
    if !api_version.is_empty() && !EVICTION_VERSIONS.contains(&api_version) {
        return Err(ApiError::bad_request(format!(
            "Eviction of apiVersion {api_version} is not served: use one of {EVICTION_VERSIONS:?}"
        )));
    }
    let given_namespace = text("/metadata/namespace");
    if !given_namespace.is_empty() && given_namespace != namespace {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if text("/metadata/name") != name {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_must_be_an_eviction_of_this_pod() {
        let eviction = |body: Value| check(&body, "default", "web-1");
        let ok = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-1"}});
        assert_eq!(eviction(ok), Ok(()));
        let other_pod = eviction(json!({"kind": "Eviction", "metadata": {"name": "web-2"}})).unwrap_err();
        assert_eq!(
            (other_pod.code, other_pod.message.as_str()),
            (400, "name in URL does not match name in Eviction object")
        );
        let no_name = eviction(json!({"kind": "Eviction"})).unwrap_err();
        assert_eq!(no_name.code, 400);
        let pod = eviction(json!({"kind": "Pod", "metadata": {"name": "web-1"}})).unwrap_err();
        assert!(pod.message.contains("(Pod)"), "{}", pod.message);
        let elsewhere = eviction(json!({"metadata": {"name": "web-1", "namespace": "dev"}})).unwrap_err();
        assert!(elsewhere.message.contains("namespace"), "{}", elsewhere.message);
        let v2 = eviction(json!({"apiVersion": "policy/v2", "metadata": {"name": "web-1"}})).unwrap_err();
        assert_eq!(v2.code, 400);
    }
}

#[cfg(test)]
mod judging {
    use super::*;
    use berth_api::meta::named;
    use berth_api::objects::{PodCondition, PodSpec, PodStatus};

    fn pod(ready: bool) -> Pod {
        let mut pod = Pod::new(named("default", "web-1"), PodSpec::default());
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

    fn budget(allowed: i32, current: i32, desired: i32) -> ReadBudget {
        let mut budget = PodDisruptionBudget::new(named("default", "web"), PodDisruptionBudgetSpec::default());
        budget.metadata.generation = Some(1);
        budget.status.observed_generation = Some(1);
        budget.status.disruptions_allowed = allowed;
        budget.status.current_healthy = current;
        budget.status.desired_healthy = desired;
        ReadBudget {
            budget,
            mod_revision: 7,
        }
    }

    #[test]
    fn a_ready_pod_spends_the_allowance_or_is_refused() {
        let now = SystemTime::now();
        let Ok(Verdict::Spend(spent)) = judge(&pod(true), &[budget(1, 3, 2)], now) else {
            panic!("one disruption is allowed");
        };
        assert_eq!(spent.mod_revision, 7, "the update is conditional on the budget read");
        assert_eq!(spent.budget.status.disruptions_allowed, 0);
        assert!(spent.budget.status.disrupted_pods.unwrap().contains_key("web-1"));
        let condition = &spent.budget.status.conditions.unwrap()[0];
        assert_eq!(
            (
                condition.type_.as_str(),
                condition.status.as_str(),
                condition.reason.as_str()
            ),
            ("DisruptionAllowed", "False", "InsufficientPods")
        );

        let refused = judge(&pod(true), &[budget(0, 2, 2)], now).unwrap_err();
        assert_eq!((refused.code, refused.reason), (429, "TooManyRequests"));
        assert_eq!(refused.message, VIOLATES_BUDGET);
        assert_eq!(
            refused.details.unwrap()["causes"][0]["message"],
            "The disruption budget web needs 2 healthy pods and has 2 currently"
        );
    }

    #[test]
    fn a_budget_not_yet_computed_refuses_for_now() {
        let mut stale = budget(1, 3, 2);
        stale.budget.metadata.generation = Some(2);
        let refused = judge(&pod(true), &[stale], SystemTime::now()).unwrap_err();
        assert_eq!(refused.code, 429);
        assert_eq!(refused.retry_after_seconds(), Some(10));
    }

    #[test]
    fn unready_pods_go_freely_while_the_budget_is_met() {
        let now = SystemTime::now();
        assert_eq!(judge(&pod(false), &[budget(0, 2, 2)], now), Ok(Verdict::Free));
        // Below the budget, an unready pod must wait like any other.
        assert_eq!(judge(&pod(false), &[budget(0, 1, 2)], now).unwrap_err().code, 429);
        let mut always = budget(0, 1, 2);
        always.budget.spec.unhealthy_pod_eviction_policy = Some("AlwaysAllow".into());
        assert_eq!(judge(&pod(false), &[always], now), Ok(Verdict::Free));
    }

    #[test]
    fn no_budget_frees_and_two_budgets_are_an_error() {
        let now = SystemTime::now();
        assert_eq!(judge(&pod(true), &[], now), Ok(Verdict::Free));
        let two = judge(&pod(true), &[budget(1, 3, 2), budget(1, 3, 2)], now).unwrap_err();
        assert_eq!(two.code, 500);
        assert!(
            two.message.contains("more than one PodDisruptionBudget"),
            "{}",
            two.message
        );
    }

    #[test]
    fn pods_that_do_not_run_ignore_budgets() {
        let mut pending = pod(false);
        pending.status.phase = Some("Pending".into());
        assert!(can_ignore_budgets(&pending));
        let mut deleted = pod(true);
        deleted.metadata.deletion_timestamp = Some(berth_api::time::now());
        assert!(can_ignore_budgets(&deleted));
        assert!(!can_ignore_budgets(&pod(true)));
    }
}
