//! Deployment → ReplicaSets. The ReplicaSet of a Deployment's current pod template
//! is `<deployment>-<hash>`, the hash of the template also being its
//! `pod-template-hash` label (on the ReplicaSet, in its selector and on its pods, so
//! the ReplicaSets of one Deployment never select each other's pods). It follows the
//! Deployment's replicas; every other ReplicaSet the Deployment controls is scaled to
//! 0 and kept, so a rollback to an old template reuses it. (A template change
//! replaces the pods all at once: there is no rolling update yet.)

use std::time::Duration;

use berth_api::meta::{LabelSelector, MetaExt, ObjectMeta};
use berth_api::objects::{
    Deployment, DeploymentStatus, PodTemplateSpec, ReplicaSet, ReplicaSetSpec, ReplicaSetStatus, Resource,
};
use berth_api::owners::{controller_ref, is_controlled_by};
use berth_client::kv::KvError;
use berth_controller_runtime::{Context, RETRY_SOON, Requeue, benign, drive};

use crate::spec_replicas;
use crate::template_json::template_bytes;

pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// A stable hash of a pod template: the first 10 hex digits of the 64-bit FNV-1a
/// of its JSON in the layout of [`crate::template_json`] (fields in a fixed order,
/// maps sorted: the same template always gives the same bytes). A
/// `pod-template-hash` label in the template is ignored, so the hash of a
/// ReplicaSet's template equals its Deployment's. A field that is absent or empty
/// changes no hash, or the hash of every existing template would change (a golden
/// test guards this).
pub fn template_hash(template: &PodTemplateSpec) -> String {
    let mut template = template.clone();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(TEMPLATE_HASH_LABEL);
    }
    let bytes = template_bytes(&serde_json::to_value(&template).expect("templates serialize"));
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")[..10].to_string()
}

/// The ReplicaSet a Deployment wants for its current template.
pub fn desired_replica_set(deployment: &Deployment, hash: &str) -> ReplicaSet {
    let mut template = deployment.spec.template.clone();
    let labels = template.metadata.get_or_insert_default().labels_mut();
    labels.insert(TEMPLATE_HASH_LABEL.to_string(), hash.to_string());
    let labels = labels.clone();
    let mut selector: LabelSelector = deployment.spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_default()
        .insert(TEMPLATE_HASH_LABEL.to_string(), hash.to_string());
    let metadata = ObjectMeta {
        name: Some(format!("{}-{hash}", deployment.metadata.name())),
        namespace: deployment.metadata.namespace.clone(),
        labels: Some(labels),
        owner_references: Some(vec![controller_ref(deployment)]),
        ..Default::default()
    };
    Resource::new(
        metadata,
        ReplicaSetSpec {
            replicas: Some(spec_replicas(deployment.spec.replicas).max(0)),
            selector,
            template: Some(template),
            ..Default::default()
        },
    )
}

/// What a Deployment needs done.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreateReplicaSet(ReplicaSet),
    /// Set the replicas of a ReplicaSet (as read: the write compares its version).
    ScaleReplicaSet {
        replica_set: ReplicaSet,
        replicas: i32,
    },
    UpdateStatus(DeploymentStatus),
}

/// The actions that bring `owned` (the ReplicaSets the Deployment controls) in line
/// with `deployment`. Pure.
pub fn reconcile(deployment: &Deployment, owned: &[&ReplicaSet]) -> Vec<Action> {
    if deployment.metadata.is_deleting() {
        return Vec::new();
    }
    let hash = template_hash(&deployment.spec.template);
    let replicas = spec_replicas(deployment.spec.replicas).max(0);
    let is_current = |rs: &ReplicaSet| rs.metadata.labels().get(TEMPLATE_HASH_LABEL) == Some(&hash);
    let mut actions = Vec::new();
    let current = owned.iter().copied().find(|rs| is_current(rs));
    match current {
        None => actions.push(Action::CreateReplicaSet(desired_replica_set(deployment, &hash))),
        Some(rs) if spec_replicas(rs.spec.replicas) != replicas => actions.push(Action::ScaleReplicaSet {
            replica_set: rs.clone(),
            replicas,
        }),
        Some(_) => {}
    }
    for old in owned
        .iter()
        .filter(|rs| !is_current(rs) && spec_replicas(rs.spec.replicas) != 0)
    {
        actions.push(Action::ScaleReplicaSet {
            replica_set: (*old).clone(),
            replicas: 0,
        });
    }
    let status = status_of(deployment, owned, current);
    if status != deployment.status {
        actions.push(Action::UpdateStatus(status));
    }
    actions
}

/// The Deployment's status from its ReplicaSets' statuses.
pub fn status_of(deployment: &Deployment, owned: &[&ReplicaSet], current: Option<&ReplicaSet>) -> DeploymentStatus {
    let sum = |f: fn(&ReplicaSetStatus) -> i32| Some(owned.iter().map(|rs| f(&rs.status)).sum());
    DeploymentStatus {
        replicas: sum(|s| s.replicas),
        updated_replicas: Some(current.map_or(0, |rs| rs.status.replicas)),
        ready_replicas: sum(|s| s.ready_replicas.unwrap_or_default()),
        available_replicas: sum(|s| s.available_replicas.unwrap_or_default()),
        observed_generation: Some(deployment.metadata.generation()),
        ..Default::default()
    }
}

/// Runs the Deployment controller until fenced.
pub async fn run(ctx: Context, resync: Duration) {
    ctx.caches.deployments.wait_synced().await;
    ctx.caches.replica_sets.wait_synced().await;
    let triggers = vec![ctx.caches.deployments.subscribe(), ctx.caches.replica_sets.subscribe()];
    drive("deployment", triggers, resync, || pass(&ctx)).await;
}

async fn pass(ctx: &Context) -> Result<Requeue, KvError> {
    let deployments = ctx.caches.deployments.snapshot();
    let replica_sets = ctx.caches.replica_sets.snapshot();
    let mut requeue = None;
    for deployment in deployments.iter() {
        let owned: Vec<&ReplicaSet> = replica_sets
            .iter()
            .filter(|rs| {
                rs.metadata.namespace() == deployment.metadata.namespace()
                    && is_controlled_by(&rs.metadata, deployment.metadata.uid())
            })
            .collect();
        for action in reconcile(deployment, &owned) {
            let done = match action {
                Action::CreateReplicaSet(rs) => {
                    if replica_sets.contains(&rs.key()) {
                        // Someone else's ReplicaSet has the name (a Deployment deleted and
                        // recreated under the same name): the garbage collector removes it
                        // and its deletion wakes us.
                        tracing::debug!(replicaset = %rs.key(), "name taken by a ReplicaSet of another owner");
                        continue;
                    }
                    tracing::info!(replicaset = %rs.key(), replicas = spec_replicas(rs.spec.replicas), "creating");
                    benign(ctx.registry.create(&rs, ctx.fence()).await)?.is_some()
                }
                Action::ScaleReplicaSet { replica_set, replicas } => {
                    tracing::info!(replicaset = %replica_set.key(), from = spec_replicas(replica_set.spec.replicas), to = replicas, "scaling");
                    let mut rs = replica_set;
                    rs.spec.replicas = Some(replicas);
                    benign(ctx.registry.update(&rs, ctx.fence()).await)?.is_some()
                }
                Action::UpdateStatus(status) => {
                    let mut deployment = deployment.clone();
                    deployment.status = status;
                    benign(ctx.registry.update(&deployment, ctx.fence()).await)?.is_some()
                }
            };
            if !done {
                requeue = Some(RETRY_SOON);
            }
        }
    }
    Ok(requeue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::meta::selector_matches;

    fn image_of(rs: &ReplicaSet) -> Option<&str> {
        let spec = rs.spec.template.as_ref()?.spec.as_ref()?;
        spec.containers[0].image.as_deref()
    }

    /// A stored Deployment (with a uid, generation and resourceVersion).
    pub(crate) fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
        let mut d = berth_api::testing::deployment(name, replicas, image, "100m");
        d.metadata.uid = Some(format!("uid-{name}"));
        d.metadata.generation = Some(1);
        d.metadata.resource_version = Some("5".into());
        d
    }

    #[test]
    fn the_template_hash_is_stable_and_follows_the_template() {
        let a = deployment("web", 3, "nginx:1");
        let hash = template_hash(&a.spec.template);
        assert_eq!(hash.len(), 10);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{hash}");
        assert_eq!(hash, template_hash(&deployment("web", 3, "nginx:1").spec.template));
        // Golden value: if the hash of an unchanged template changed (say, a new
        // PodSpec field serialized without `skip_serializing_if`), every Deployment
        // would roll out a new ReplicaSet on the next leader's first pass.
        let fixed: PodTemplateSpec = serde_json::from_str(
            r#"{"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1", "command": ["sleep", "1000"]}]}}"#,
        )
        .unwrap();
        assert_eq!(template_hash(&fixed), "358250fcdd");
        let scaled = deployment("web", 7, "nginx:1");
        assert_eq!(
            template_hash(&scaled.spec.template),
            hash,
            "replicas are not part of the template"
        );
        assert_ne!(template_hash(&deployment("web", 3, "nginx:2").spec.template), hash);
        let rs = desired_replica_set(&a, &hash);
        assert_eq!(
            template_hash(rs.spec.template.as_ref().unwrap()),
            hash,
            "the label added to the template is ignored"
        );
    }

    #[test]
    fn a_new_deployment_gets_an_owned_labelled_replica_set() {
        let d = deployment("web", 3, "nginx:1");
        let actions = reconcile(&d, &[]);
        let Some(Action::CreateReplicaSet(rs)) = actions.first() else {
            panic!("{actions:?}")
        };
        let hash = template_hash(&d.spec.template);
        assert_eq!(rs.metadata.name(), format!("web-{hash}"));
        assert_eq!(rs.spec.replicas, Some(3));
        assert_eq!(rs.metadata.labels()[TEMPLATE_HASH_LABEL], hash);
        let match_labels = rs.spec.selector.match_labels.as_ref().unwrap();
        assert_eq!(match_labels[TEMPLATE_HASH_LABEL], hash);
        assert_eq!(match_labels["app"], "web");
        let template = rs.spec.template.as_ref().unwrap();
        assert!(selector_matches(
            &rs.spec.selector,
            template.metadata.as_ref().unwrap().labels()
        ));
        let owner = &rs.metadata.owner_references()[0];
        assert_eq!(
            (
                owner.api_version.as_str(),
                owner.kind.as_str(),
                owner.name.as_str(),
                owner.uid.as_str()
            ),
            ("apps/v1", "Deployment", "web", "uid-web")
        );
        assert_eq!(owner.controller, Some(true));
        assert!(matches!(actions.last(), Some(Action::UpdateStatus(s)) if s.observed_generation == Some(1)));
    }

    #[test]
    fn a_template_change_scales_the_old_replica_set_to_zero() {
        let old_d = deployment("web", 3, "nginx:1");
        let mut old = desired_replica_set(&old_d, &template_hash(&old_d.spec.template));
        old.status.replicas = 3;
        let d = deployment("web", 3, "nginx:2");
        let actions = reconcile(&d, &[&old]);
        assert!(matches!(&actions[0], Action::CreateReplicaSet(rs) if image_of(rs) == Some("nginx:2")));
        assert!(
            matches!(&actions[1], Action::ScaleReplicaSet { replica_set, replicas: 0 } if replica_set.metadata.name == old.metadata.name)
        );

        // Once the new one exists and the old is at 0, only the status is left to write.
        let mut new = desired_replica_set(&d, &template_hash(&d.spec.template));
        new.status.replicas = 3;
        new.status.ready_replicas = Some(2);
        old.spec.replicas = Some(0);
        old.status.replicas = 0;
        let actions = reconcile(&d, &[&old, &new]);
        assert_eq!(
            actions,
            vec![Action::UpdateStatus(DeploymentStatus {
                replicas: Some(3),
                updated_replicas: Some(3),
                ready_replicas: Some(2),
                available_replicas: Some(0),
                observed_generation: Some(1),
                ..Default::default()
            })]
        );
        let mut settled = d.clone();
        settled.status = status_of(&d, &[&old, &new], Some(&new));
        assert!(
            reconcile(&settled, &[&old, &new]).is_empty(),
            "nothing to write when nothing changed"
        );
    }
}
