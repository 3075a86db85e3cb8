//! The workloads an autoscaler can scale: those with a scale subresource, read from
//! the leader's caches and written with a fenced update of `spec.replicas`. A kind
//! joins with an implementation of [`Scalable`] and one line in [`with_target`].

use berth_api::meta::{LabelSelector, MetaExt};
use berth_api::objects::{DeploymentSpec, ReplicaSetSpec, Resource, Spec, StatefulSetSpec};
use berth_client::kv::KvError;
use berth_controller_runtime::Context;
use berth_controller_runtime::informer::Informer;

/// A kind with a scale subresource: its replicas and its pods' selector.
pub trait Scalable: Spec {
    fn replicas(object: &Resource<Self>) -> i32;
    fn set_replicas(object: &mut Resource<Self>, replicas: i32);
    fn selector(object: &Resource<Self>) -> Option<&LabelSelector>;
}

impl Scalable for DeploymentSpec {
    fn replicas(object: &Resource<Self>) -> i32 {
        crate::spec_replicas(object.spec.replicas)
    }
    fn set_replicas(object: &mut Resource<Self>, replicas: i32) {
        object.spec.replicas = Some(replicas);
    }
    fn selector(object: &Resource<Self>) -> Option<&LabelSelector> {
        Some(&object.spec.selector)
    }
}

impl Scalable for ReplicaSetSpec {
    fn replicas(object: &Resource<Self>) -> i32 {
        crate::spec_replicas(object.spec.replicas)
    }
    fn set_replicas(object: &mut Resource<Self>, replicas: i32) {
        object.spec.replicas = Some(replicas);
    }
    fn selector(object: &Resource<Self>) -> Option<&LabelSelector> {
        Some(&object.spec.selector)
    }
}

impl Scalable for StatefulSetSpec {
    fn replicas(object: &Resource<Self>) -> i32 {
        crate::spec_replicas(object.spec.replicas)
    }
    fn set_replicas(object: &mut Resource<Self>, replicas: i32) {
        object.spec.replicas = Some(replicas);
    }
    fn selector(object: &Resource<Self>) -> Option<&LabelSelector> {
        Some(&object.spec.selector)
    }
}

/// A target's scale as the autoscaler reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    pub replicas: i32,
    pub selector: LabelSelector,
}

/// What to do with the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    /// Set `spec.replicas` (fenced).
    Set(i32),
}

/// Reads or sets the scale of `kind`/`name` in `namespace`. `Err(Ok(why))`: the
/// target cannot be scaled (no such kind or object); `Err(Err(_))`: the store failed.
pub async fn with_target(
    ctx: &Context,
    api_version: Option<&str>,
    kind: &str,
    namespace: &str,
    name: &str,
    op: Op,
) -> Result<Scale, Result<String, KvError>> {
    let group = api_version.and_then(|v| v.split_once('/')).map_or("", |(g, _)| g);
    match (group, kind) {
        ("apps" | "", "Deployment") => scale(ctx, &ctx.caches.deployments, namespace, name, op).await,
        ("apps" | "", "ReplicaSet") => scale(ctx, &ctx.caches.replica_sets, namespace, name, op).await,
        ("apps" | "", "StatefulSet") => scale(ctx, &ctx.caches.stateful_sets, namespace, name, op).await,
        _ => Err(Ok(format!(
            "no matches for kind {kind:?} in group {group:?} with a scale subresource"
        ))),
    }
}

async fn scale<S: Scalable>(
    ctx: &Context,
    informer: &Informer<S>,
    namespace: &str,
    name: &str,
    op: Op,
) -> Result<Scale, Result<String, KvError>> {
    let key = S::DESCRIPTOR.key(namespace, name);
    let snapshot = informer.snapshot();
    let Some(object) = snapshot.get(&key).filter(|o| !o.metadata.is_deleting()) else {
        return Err(Ok(format!("{} {name:?} not found", S::DESCRIPTOR.qualified_resource())));
    };
    let Some(selector) = S::selector(object).cloned() else {
        return Err(Ok(format!(
            "{} {name:?} has no selector",
            S::DESCRIPTOR.qualified_resource()
        )));
    };
    let replicas = match op {
        Op::Read => S::replicas(object),
        Op::Set(replicas) => {
            let mut updated = object.clone();
            S::set_replicas(&mut updated, replicas);
            ctx.registry.update(&updated, ctx.fence()).await.map_err(Err)?;
            replicas
        }
    };
    Ok(Scale { replicas, selector })
}
