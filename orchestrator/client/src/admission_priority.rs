//! Kubernetes' Priority admission, its store-side half: a new pod's
//! `priorityClassName` (or the global default class, or none) becomes its
//! `spec.priority` and `spec.preemptionPolicy`; a PriorityClass may become the
//! global default only while no other one is. The rules are
//! `berth_api::kinds::priority_class`'s; the classes are read serializably, as the
//! rest of admission reads.

use berth_api::kinds::Object;
use berth_api::kinds::priority_class::{
    PRIORITY_CLASS, PriorityClass, default_of, from_stored, resolve, second_default,
};
use berth_api::objects::Pod;

use crate::admission::Refusal;
use crate::admission_reads::Reads;
use crate::kv::Kv;

/// Every PriorityClass in the store.
async fn classes(reads: Reads<'_>) -> Result<Vec<PriorityClass>, Refusal> {
    let records = reads.list(&PRIORITY_CLASS.prefix(None)).await?;
    Ok(records.iter().filter_map(|r| from_stored(&r.value)).collect())
}

/// A new pod's priority from its class; refused when the class does not exist or
/// the pod states a priority or policy of its own that disagrees. A PriorityClass
/// marked globalDefault is refused while another is. Other objects pass.
pub(crate) async fn admit(reads: Reads<'_>, object: &mut Object) -> Result<(), Refusal> {
    if let Some(class) = object.downcast_ref::<PriorityClass>() {
        return check_default(reads.kv, class).await;
    }
    let Some(pod) = object.downcast_mut::<Pod>() else {
        return Ok(());
    };
    let class_name = pod.spec.priority_class_name.clone().unwrap_or_default();
    let mut named = None;
    let all = if class_name.is_empty() {
        classes(reads).await?
    } else {
        let mut record = reads.get(&PRIORITY_CLASS.key("", &class_name)).await?;
        if record.is_none() {
            // A class made a moment ago may not have reached this replica yet.
            record = reads.kv.get(&PRIORITY_CLASS.key("", &class_name)).await?;
        }
        named = record.and_then(|r| from_stored(&r.value));
        Vec::new()
    };
    let (name, priority, policy) = resolve(
        &class_name,
        named.as_ref(),
        default_of(&all),
        pod.spec.priority,
        pod.spec.preemption_policy.as_deref(),
    )
    .map_err(Refusal::Forbidden)?;
    pod.spec.priority_class_name = (!name.is_empty()).then_some(name);
    pod.spec.priority = Some(priority);
    pod.spec.preemption_policy = Some(policy);
    Ok(())
}

/// A class that is (or becomes) the global default while another one is, refused.
pub(crate) async fn check_default(kv: &Kv, class: &PriorityClass) -> Result<(), Refusal> {
    if class.global_default != Some(true) {
        return Ok(());
    }
    let all = classes(Reads::direct(kv)).await?;
    match second_default(class, &all) {
        Some(refusal) => Err(Refusal::Forbidden(refusal)),
        None => Ok(()),
    }
}
