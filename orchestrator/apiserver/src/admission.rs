//! Admission on the API server's creates: Pod Security, LimitRanges and
//! ResourceQuotas, through the steps the controllers use too
//! (`berth_client::admission`); this maps their refusals to Kubernetes' 403s
//! (`pods "x" is forbidden: exceeded quota: ...`).

use super::ApiServer;
use super::route::Kind;
use super::status::ApiError;
use berth_api::kinds::Object;
use berth_api::meta::MetaExt;
use berth_client::admission::{self, Charge, Refusal};

fn refused(kind: &Kind, name: &str, refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Forbidden(why) => ApiError::forbidden(kind, name, &why),
        Refusal::Store(e) => ApiError::from_kv(e, kind, name),
    }
}

/// Pod Security and LimitRanges for a new object (a pod may get default requests
/// and limits); the warnings for the client.
pub async fn prepare(api: &ApiServer, kind: &Kind, object: &mut Object) -> Result<Vec<String>, ApiError> {
    let name = object.metadata().name().to_string();
    let prepared = api
        .settings
        .admission
        .prepare_audited(&api.kv, object)
        .await
        .map_err(|r| refused(kind, &name, r))?;
    super::audit::annotate(prepared.audit);
    Ok(prepared.warnings)
}

/// The quota writes a new object needs; a quota it would exceed refuses it.
/// `fresh` reads the quotas linearizably (after a write found one moved).
pub async fn charges(api: &ApiServer, kind: &Kind, object: &Object, fresh: bool) -> Result<Vec<Charge>, ApiError> {
    admission::charges(&api.kv, object, fresh)
        .await
        .map_err(|r| refused(kind, object.metadata().name(), r))
}

/// Pod Security on an update (a pod's new images, a workload's new template), and
/// a PriorityClass made the global default while another is; the warnings for the
/// client.
pub async fn check_update(api: &ApiServer, kind: &Kind, old: &Object, new: &Object) -> Result<Vec<String>, ApiError> {
    use berth_api::kinds::priority_class::PRIORITY_CLASS;
    use berth_api::kinds::{deployment::DEPLOYMENT, pod::POD, replica_set::REPLICA_SET, stateful_set::STATEFUL_SET};
    if ![&POD, &DEPLOYMENT, &REPLICA_SET, &STATEFUL_SET, &PRIORITY_CLASS].contains(&kind) {
        return Ok(Vec::new());
    }
    let prepared = api
        .settings
        .admission
        .check_update(&api.kv, old, new)
        .await
        .map_err(|r| refused(kind, new.metadata().name(), r))?;
    super::audit::annotate(prepared.audit);
    Ok(prepared.warnings)
}

/// The quota writes an update's growth needs (a Service's new node ports, a
/// claim's larger request), to be written with it.
pub async fn update_charges(api: &ApiServer, kind: &Kind, old: &Object, new: &Object) -> Result<Vec<Charge>, ApiError> {
    use berth_api::kinds::{persistent_volume_claim::PERSISTENT_VOLUME_CLAIM, pod::POD, service::SERVICE};
    if ![&POD, &SERVICE, &PERSISTENT_VOLUME_CLAIM].contains(&kind) {
        return Ok(Vec::new());
    }
    admission::update_charges(&api.kv, old, new)
        .await
        .map_err(|r| refused(kind, new.metadata().name(), r))
}

/// A namespace relabelled to a new enforced Pod Security policy: Kubernetes' warnings
/// naming the pods already in it that the new policy would refuse
/// (`existing pods in namespace "dev" violate the new PodSecurity enforce level
/// "restricted:latest"`, then `<pod> (and N other pods): <reasons>`).
pub async fn namespace_warnings(api: &ApiServer, stored: &serde_json::Value, new: &Object) -> Vec<String> {
    use berth_api::admission::pod_security::{self, EXEMPT_NAMESPACES, Level};
    let default = api.settings.admission.pod_security_default;
    let old_labels: std::collections::BTreeMap<String, String> =
        serde_json::from_value(stored["metadata"]["labels"].clone()).unwrap_or_default();
    let old = pod_security::namespace_policy(&old_labels, default).enforce;
    let enforce = pod_security::namespace_policy(new.metadata().labels(), default).enforce;
    let namespace = new.metadata().name();
    if old == enforce || enforce.level == Level::Privileged || EXEMPT_NAMESPACES.contains(&namespace) {
        return Vec::new();
    }
    let Ok((pods, _)) = api.registry.list::<berth_api::objects::PodSpec>(Some(namespace)).await else {
        return Vec::new();
    };
    // Each distinct set of reasons once: the first pod with it, and how many more.
    let mut found: Vec<(String, String, usize)> = Vec::new();
    for pod in &pods {
        let violations = pod_security::check(&pod.spec, enforce.level);
        if violations.is_empty() {
            continue;
        }
        let reasons = violations.iter().map(|v| v.reason).collect::<Vec<_>>().join(", ");
        match found.iter_mut().find(|(_, r, _)| *r == reasons) {
            Some((_, _, others)) => *others += 1,
            None => found.push((pod.metadata.name().to_string(), reasons, 0)),
        }
    }
    if found.is_empty() {
        return Vec::new();
    }
    let mut warnings = vec![format!(
        "existing pods in namespace {namespace:?} violate the new PodSecurity enforce level \"{enforce}\""
    )];
    for (pod, reasons, others) in found {
        warnings.push(match others {
            0 => format!("{pod}: {reasons}"),
            n => format!("{pod} (and {n} other pods): {reasons}"),
        });
    }
    warnings
}
