//! ResourceQuota status (Kubernetes' resource quota controller): every quota's
//! `status.hard` is its `spec.hard`, and `status.used` what its namespace's objects
//! use of each hard resource, recalculated from the store on every change of a
//! quota, a pod or a Service, and on each resync (which is when deletions of other
//! kinds, and pods that ended, are taken off).
//!
//! Admission charges each new object to `status.used` in the write that creates
//! it; this recalculation reads the quota first and writes only if the quota is
//! still at that revision, so a create charged meanwhile is never lost: the write
//! fails, and the next pass counts it.

use std::time::Duration;

use berth_api::admission::quota;
use berth_api::kinds::{self, KINDS, KindDescriptor, Object};
use berth_api::meta::MetaExt;
use berth_api::objects::{Resource, ResourceQuotaSpec};
use berth_client::kv::{Kv, KvError};
use berth_client::registry::decode_value;
use berth_controller_runtime::informer::Informer;
use berth_controller_runtime::{Context, RETRY_SOON, Requeue, benign, drive, sooner};

/// Runs the quota controller until fenced.
pub async fn run(ctx: Context, resync: Duration) {
    let quotas: Informer<ResourceQuotaSpec> = Informer::start(ctx.registry.kv.clone());
    quotas.wait_synced().await;
    ctx.caches.pods.wait_synced().await;
    let triggers = vec![
        quotas.subscribe(),
        ctx.caches.pods.subscribe(),
        ctx.caches.services.subscribe(),
    ];
    drive("resourcequota", triggers, resync, || pass(&ctx, &quotas)).await;
}

async fn pass(ctx: &Context, quotas: &Informer<ResourceQuotaSpec>) -> Result<Requeue, KvError> {
    let mut requeue = None;
    for cached in quotas.snapshot().iter() {
        let (namespace, name) = (cached.metadata.namespace(), cached.metadata.name());
        // The quota as stored now: the write below is conditional on this revision.
        let Some(current) = ctx.registry.get::<ResourceQuotaSpec>(namespace, name).await? else {
            continue;
        };
        let objects = counted_objects(&ctx.registry.kv, namespace, &current.spec).await?;
        let status = quota::status_of(&current.spec, &objects);
        if status == current.status {
            continue;
        }
        let mut updated: Resource<ResourceQuotaSpec> = current.clone();
        updated.status = status;
        if benign(ctx.registry.update(&updated, ctx.fence()).await)?.is_none() {
            requeue = sooner(requeue, Some(RETRY_SOON));
        }
    }
    Ok(requeue)
}

/// The kind whose objects a hard resource counts.
pub fn kind_counted(resource: &str) -> Option<&'static KindDescriptor> {
    let by_plural = |plural: &str, group: &str| {
        KINDS
            .iter()
            .copied()
            .find(|k| k.plural == plural && k.group == group && k.conversion.is_none())
    };
    if let Some(counted) = resource.strip_prefix("count/") {
        let (plural, group) = counted.split_once('.').unwrap_or((counted, ""));
        return by_plural(plural, group);
    }
    if resource == "requests.storage" || resource.contains(".storageclass.storage.k8s.io/") {
        return Some(&kinds::persistent_volume_claim::PERSISTENT_VOLUME_CLAIM);
    }
    if resource.starts_with("services") {
        return Some(&kinds::service::SERVICE);
    }
    if ["cpu", "memory", "ephemeral-storage", "pods"].contains(&resource)
        || resource.starts_with("requests.")
        || resource.starts_with("limits.")
    {
        return Some(&kinds::pod::POD);
    }
    by_plural(resource, "")
}

/// Every object of the namespace of a kind one of the quota's hard resources counts.
async fn counted_objects(kv: &Kv, namespace: &str, spec: &ResourceQuotaSpec) -> Result<Vec<Object>, KvError> {
    let mut kinds: Vec<&'static KindDescriptor> = Vec::new();
    for resource in spec.hard.iter().flatten().map(|(r, _)| r) {
        if let Some(kind) = kind_counted(resource)
            && kind.namespaced
            && !kinds.contains(&kind)
        {
            kinds.push(kind);
        }
    }
    let mut objects = Vec::new();
    for kind in kinds {
        let (records, _) = kv.list(&kind.prefix(Some(namespace))).await?;
        for record in &records {
            match decode_value(record, kind.kind)
                .and_then(|v| (kind.decode)(&v).map_err(|e| KvError::Other(e.to_string())))
            {
                Ok(object) => objects.push(object),
                Err(e) => tracing::warn!(key = %record.key, error = %e, "a stored object the quota cannot count"),
            }
        }
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_hard_resource_names_the_kind_it_counts() {
        let plural = |r: &str| kind_counted(r).map(|k| k.qualified_resource());
        assert_eq!(plural("pods").as_deref(), Some("pods"));
        assert_eq!(plural("requests.cpu").as_deref(), Some("pods"));
        assert_eq!(plural("limits.memory").as_deref(), Some("pods"));
        assert_eq!(plural("requests.storage").as_deref(), Some("persistentvolumeclaims"));
        assert_eq!(
            plural("fast.storageclass.storage.k8s.io/persistentvolumeclaims").as_deref(),
            Some("persistentvolumeclaims")
        );
        assert_eq!(plural("services.nodeports").as_deref(), Some("services"));
        assert_eq!(plural("count/deployments.apps").as_deref(), Some("deployments.apps"));
        assert_eq!(plural("configmaps").as_deref(), Some("configmaps"));
        assert_eq!(plural("count/widgets.example.com"), None);
    }
}
