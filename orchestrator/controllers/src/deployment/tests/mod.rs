//! The Deployment controller's pure pass, alone and in a small simulated world where
//! its writes land and each ReplicaSet's pods follow its replicas: the world and its
//! helpers here, rollouts and conditions in `rollout`, revisions and the history in
//! `history`.

use std::time::{Duration, SystemTime};

use super::revision::{
    CHANGE_CAUSE_ANNOTATION, DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, REVISION_HISTORY_ANNOTATION,
};
use super::status::*;
use super::*;
use berth_api::meta::selector_matches;
use berth_api::objects::{
    DeploymentCondition, DeploymentStatus, DeploymentStrategy, IntOrString, ReplicaSetStatus, RollingUpdateDeployment,
};
use berth_api::time::from_system_time;

const T0: u64 = 1_800_000_000;

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + seconds)
}

fn image_of(rs: &ReplicaSet) -> &str {
    let spec = rs.spec.template.as_ref().and_then(|t| t.spec.as_ref());
    spec.and_then(|s| s.containers[0].image.as_deref()).unwrap_or_default()
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations().get(key).map(String::as_str)
}

/// A stored Deployment of the Recreate strategy (with a uid, generation,
/// resourceVersion and the defaults the API server fills in).
fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    let mut d = berth_api::testing::deployment(name, replicas, image, "100m");
    d.metadata.uid = Some(format!("uid-{name}"));
    d.metadata.generation = Some(1);
    d.metadata.resource_version = Some("5".into());
    d.spec.revision_history_limit = Some(10);
    d.spec.progress_deadline_seconds = Some(600);
    d.spec.strategy = Some(DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    });
    d
}

/// A stored Deployment of the RollingUpdate strategy, with `maxSurge` and
/// `maxUnavailable` as given.
fn rolling(name: &str, replicas: i32, image: &str, surge: IntOrString, unavailable: IntOrString) -> Deployment {
    let mut d = deployment(name, replicas, image);
    d.spec.strategy = Some(DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(surge),
            max_unavailable: Some(unavailable),
        }),
    });
    d
}

fn progressing(d: &Deployment) -> DeploymentCondition {
    condition(&d.status, PROGRESSING)
        .cloned()
        .expect("a Progressing condition")
}

fn available(d: &Deployment) -> DeploymentCondition {
    condition(&d.status, AVAILABLE)
        .cloned()
        .expect("an Available condition")
}

fn reason_and_message(c: &DeploymentCondition) -> (&str, &str, &str) {
    (
        c.status.as_str(),
        c.reason.as_deref().unwrap_or_default(),
        c.message.as_deref().unwrap_or_default(),
    )
}

/// The store, as the Deployment controller's writes and the ReplicaSet controller
/// leave it: every pass's actions applied, and each ReplicaSet's pods following its
/// replicas (ready and available if `pods_ready`).
struct World {
    deployment: Deployment,
    sets: Vec<ReplicaSet>,
    now: SystemTime,
    pods_ready: bool,
    version: i64,
    /// The messages of the rollbacks written (each one a Warning Event).
    rollbacks: Vec<String>,
    /// Pods being deleted but not yet finished, by the uid of their ReplicaSet.
    terminating: BTreeMap<String, i32>,
}

impl World {
    fn new(deployment: Deployment) -> World {
        World {
            deployment,
            sets: Vec::new(),
            now: at(0),
            pods_ready: true,
            version: 5,
            rollbacks: Vec::new(),
            terminating: BTreeMap::new(),
        }
    }

    fn next_version(&mut self) -> Option<String> {
        self.version += 1;
        Some(self.version.to_string())
    }

    /// One pass of the controller, its writes applied as the store would.
    fn pass(&mut self) -> Plan {
        let owned: Vec<&ReplicaSet> = self.sets.iter().collect();
        let plan = reconcile_with_terminating(&self.deployment, &owned, &self.terminating, self.now);
        for action in plan.actions.clone() {
            match action {
                Action::CreateReplicaSet(mut rs) => {
                    assert!(
                        self.sets.iter().all(|s| s.metadata.name != rs.metadata.name),
                        "created twice: {}",
                        rs.metadata.name()
                    );
                    rs.metadata.uid = Some(format!("uid-{}", rs.metadata.name()));
                    rs.metadata.creation_timestamp = Some(from_system_time(self.now));
                    rs.metadata.generation = Some(1);
                    rs.metadata.resource_version = self.next_version();
                    self.sets.push(rs);
                }
                Action::UpdateReplicaSet(mut rs) => {
                    let i = self
                        .sets
                        .iter()
                        .position(|s| s.metadata.name == rs.metadata.name)
                        .unwrap();
                    let stored = &self.sets[i];
                    assert_eq!(rs.metadata.resource_version, stored.metadata.resource_version);
                    assert_eq!(rs.status, stored.status, "the status is the ReplicaSet controller's");
                    if rs.spec != stored.spec {
                        rs.metadata.generation = Some(stored.metadata.generation() + 1);
                    }
                    rs.metadata.resource_version = self.next_version();
                    self.sets[i] = rs;
                }
                Action::DeleteReplicaSet(rs) => {
                    let before = self.sets.len();
                    self.sets.retain(|s| s.metadata.name != rs.metadata.name);
                    assert_eq!(self.sets.len(), before - 1);
                }
                Action::UpdateDeployment(mut d) => {
                    assert_eq!(d.spec, self.deployment.spec, "the controller writes no spec");
                    assert_eq!(d.metadata.resource_version, self.deployment.metadata.resource_version);
                    d.metadata.resource_version = self.next_version();
                    self.deployment = d;
                }
                Action::RollBackDeployment(mut d, message) => {
                    assert_ne!(
                        d.spec.template, self.deployment.spec.template,
                        "a rollback changes the template"
                    );
                    assert_eq!(d.metadata.resource_version, self.deployment.metadata.resource_version);
                    d.metadata.generation = Some(self.deployment.metadata.generation() + 1);
                    d.metadata.resource_version = self.next_version();
                    self.deployment = d;
                    self.rollbacks.push(message);
                }
            }
        }
        plan
    }

    /// The ReplicaSet controller: each ReplicaSet has as many pods as it wants.
    fn pods(&mut self) {
        for rs in &mut self.sets {
            let n = spec_replicas(rs.spec.replicas);
            let ready = if self.pods_ready { n } else { 0 };
            rs.status = ReplicaSetStatus {
                replicas: n,
                fully_labeled_replicas: Some(n),
                ready_replicas: Some(ready),
                available_replicas: Some(ready),
                observed_generation: Some(rs.metadata.generation()),
                ..Default::default()
            };
        }
    }

    /// The ReplicaSet controller a step at a time: each ReplicaSet has as many pods
    /// as it wants, pods it no longer wants go at once (the ready ones first
    /// counted gone), and one more of its pods becomes ready (and available) if
    /// its image `works`.
    fn pods_step(&mut self, works: impl Fn(&str) -> bool) {
        for rs in &mut self.sets {
            let n = spec_replicas(rs.spec.replicas);
            let before = rs.status.ready_replicas.unwrap_or_default();
            let ready = if works(image_of(rs)) { (before + 1).min(n) } else { 0 };
            rs.status = ReplicaSetStatus {
                replicas: n,
                fully_labeled_replicas: Some(n),
                ready_replicas: Some(ready),
                available_replicas: Some(ready),
                observed_generation: Some(rs.metadata.generation()),
                ..Default::default()
            };
        }
    }

    /// Pods wanted and pods available over every ReplicaSet.
    fn counts(&self) -> (i32, i32) {
        let wanted = self.sets.iter().map(|rs| spec_replicas(rs.spec.replicas)).sum();
        let available = self
            .sets
            .iter()
            .map(|rs| rs.status.available_replicas.unwrap_or_default())
            .sum();
        (wanted, available)
    }

    /// Passes a second apart, the pods following, until a pass writes nothing.
    fn settle(&mut self) {
        for _ in 0..30 {
            self.now += Duration::from_secs(1);
            self.pods();
            if self.pass().actions.is_empty() {
                return;
            }
        }
        panic!("no fixed point: {:#?}\n{:#?}", self.deployment, self.sets);
    }

    /// A user's change of the spec (the generation moves).
    fn edit(&mut self, change: impl FnOnce(&mut Deployment)) {
        change(&mut self.deployment);
        self.deployment.metadata.generation = Some(self.deployment.metadata.generation() + 1);
        self.deployment.metadata.resource_version = self.next_version();
    }

    /// `kubectl set image` with a change cause.
    fn set_image(&mut self, image: &str) {
        self.edit(|d| {
            let spec = d.spec.template.spec.as_mut().unwrap();
            spec.containers[0].image = Some(image.into());
            d.metadata
                .annotations_mut()
                .insert(CHANGE_CAUSE_ANNOTATION.into(), format!("set image {image}"));
        });
    }

    fn rs_of(&self, image: &str) -> &ReplicaSet {
        self.sets
            .iter()
            .find(|rs| image_of(rs) == image)
            .unwrap_or_else(|| panic!("no ReplicaSet of {image}"))
    }

    /// (image, revision, replicas) of every ReplicaSet, by revision.
    fn history(&self) -> Vec<(String, String, i32)> {
        let mut history: Vec<(String, String, i32)> = self
            .sets
            .iter()
            .map(|rs| {
                (
                    image_of(rs).to_string(),
                    annotation(&rs.metadata, REVISION_ANNOTATION)
                        .unwrap_or_default()
                        .to_string(),
                    spec_replicas(rs.spec.replicas),
                )
            })
            .collect();
        history.sort_by_key(|(_, revision, _)| revision.parse::<i64>().unwrap_or_default());
        history
    }
}

fn history(entries: &[(&str, &str, i32)]) -> Vec<(String, String, i32)> {
    entries
        .iter()
        .map(|(image, revision, replicas)| (image.to_string(), revision.to_string(), *replicas))
        .collect()
}

fn available_of(status: &DeploymentStatus) -> &DeploymentCondition {
    condition(status, AVAILABLE).unwrap()
}

mod auto_rollback;
mod history;
mod rolling;
mod rollout;
