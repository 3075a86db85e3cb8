//! ClusterRole aggregation, as Kubernetes' clusterrole-aggregation controller: a
//! ClusterRole with an `aggregationRule` gets as its `rules` those of every
//! ClusterRole its selectors match (berth-api's `rbac::aggregation`), written
//! whenever a ClusterRole changes. A role that feeds another (`view` feeds `edit`)
//! is aggregated first by the same pass, so a chain settles in a few passes.
//!
//! ClusterRoles are flat objects, not spec/status ones, so this loop keeps its own
//! cache of them, fed by the one list-then-watch loop.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use berth_api::kinds::Object;
use berth_api::kinds::cluster_role::CLUSTER_ROLE;
use berth_api::meta::MetaExt;
use berth_api::rbac::ClusterRole;
use berth_api::rbac::aggregation::aggregated_rules;
use berth_client::kv::{Event, KvError, Record};
use berth_client::reflector::{Sink, reflect};
use berth_controller_runtime::{Context, RETRY_SOON, Requeue, benign, drive};
use tokio::sync::watch;

/// The aggregated roles whose rules are not what their selectors gather, with the
/// rules they should have. Pure.
pub fn plan(roles: &[ClusterRole]) -> Vec<ClusterRole> {
    let mut changed = Vec::new();
    for role in roles {
        if let Some(rules) = aggregated_rules(role, roles.iter())
            && role.rules.clone().unwrap_or_default() != rules
        {
            let mut role = role.clone();
            role.rules = Some(rules);
            changed.push(role);
        }
    }
    changed
}

/// Every ClusterRole by key, with the revision it was read at.
struct Roles {
    roles: RwLock<(BTreeMap<String, ClusterRole>, bool)>,
    changed: watch::Sender<u64>,
}

impl Roles {
    fn put(map: &mut BTreeMap<String, ClusterRole>, record: &Record) {
        match serde_json::from_slice::<ClusterRole>(&record.value) {
            Ok(mut role) => {
                role.metadata.resource_version = Some(record.mod_revision.to_string());
                map.insert(record.key.clone(), role);
            }
            Err(e) => tracing::warn!(key = %record.key, error = %e, "a ClusterRole that cannot be read is ignored"),
        }
    }
}

impl Sink for Roles {
    fn replace(&self, records: Vec<Record>, _revision: i64) {
        let mut state = self.roles.write().unwrap_or_else(|e| e.into_inner());
        state.0.clear();
        for record in &records {
            Self::put(&mut state.0, record);
        }
        state.1 = true;
        drop(state);
        self.changed.send_modify(|n| *n += 1);
    }

    fn apply(&self, events: Vec<Event>, _revision: i64) {
        let mut state = self.roles.write().unwrap_or_else(|e| e.into_inner());
        for event in &events {
            match event {
                Event::Put(record) => Self::put(&mut state.0, record),
                Event::Delete { prev, .. } => drop(state.0.remove(&prev.key)),
            }
        }
        drop(state);
        self.changed.send_modify(|n| *n += 1);
    }
}

/// Runs the aggregation controller until fenced.
pub async fn run(ctx: Context, resync: Duration) {
    let roles = Arc::new(Roles {
        roles: RwLock::new((BTreeMap::new(), false)),
        changed: watch::channel(0).0,
    });
    let task = tokio::spawn(reflect(
        ctx.registry.kv.clone(),
        CLUSTER_ROLE.prefix(None),
        roles.clone(),
        None,
    ));
    let mut listed = roles.changed.subscribe();
    if listed.wait_for(|_| roles.roles.read().is_ok_and(|s| s.1)).await.is_ok() {
        let triggers = vec![roles.changed.subscribe()];
        drive("clusterrole-aggregation", triggers, resync, || pass(&ctx, &roles)).await;
    }
    task.abort();
}

async fn pass(ctx: &Context, roles: &Roles) -> Result<Requeue, KvError> {
    let snapshot: Vec<ClusterRole> = {
        let state = roles.roles.read().unwrap_or_else(|e| e.into_inner());
        state.0.values().cloned().collect()
    };
    let mut requeue = None;
    for role in plan(&snapshot) {
        let name = role.metadata.name().to_string();
        match benign(ctx.registry.update(&Object::new(role), ctx.fence()).await)? {
            Some(_) => tracing::info!(role = %name, "aggregated the rules of a ClusterRole"),
            None => requeue = Some(RETRY_SOON),
        }
    }
    Ok(requeue)
}

#[cfg(test)]
mod tests {
    use berth_api::rbac::bootstrap::{self, rule};

    use super::*;

    #[test]
    fn an_aggregated_role_follows_the_roles_it_selects() {
        let mut roles = bootstrap::cluster_roles();
        assert!(plan(&roles).is_empty(), "the defaults start aggregated");
        // A new role labelled to aggregate into `view`: view changes, then edit, then admin.
        let mut extra = ClusterRole {
            metadata: berth_api::meta::ObjectMeta {
                name: Some("widgets-view".into()),
                labels: Some([(bootstrap::AGGREGATE_TO_VIEW.to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            rules: Some(vec![rule(&["get"], &["example.com"], &["widgets"])]),
            aggregation_rule: None,
        };
        roles.push(extra.clone());
        let mut passes = 0;
        loop {
            let changed = plan(&roles);
            if changed.is_empty() {
                break;
            }
            for role in changed {
                let at = roles
                    .iter()
                    .position(|r| r.metadata.name == role.metadata.name)
                    .unwrap();
                roles[at] = role;
            }
            passes += 1;
            assert!(passes < 5, "aggregation settles");
        }
        for name in ["view", "edit", "admin"] {
            let role = roles.iter().find(|r| r.metadata.name.as_deref() == Some(name)).unwrap();
            assert!(
                role.rules
                    .iter()
                    .flatten()
                    .any(|r| r.resources.as_deref() == Some(&["widgets".to_string()][..])),
                "{name}"
            );
        }
        let cluster_admin = roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some("cluster-admin"))
            .unwrap();
        assert_eq!(cluster_admin.rules.as_ref().unwrap().len(), 2, "not aggregated");
        // Its label removed, the rule leaves view again.
        extra.metadata.labels = None;
        let at = roles
            .iter()
            .position(|r| r.metadata.name.as_deref() == Some("widgets-view"))
            .unwrap();
        roles[at] = extra;
        let view = plan(&roles)
            .into_iter()
            .find(|r| r.metadata.name.as_deref() == Some("view"))
            .unwrap();
        assert!(
            !view
                .rules
                .iter()
                .flatten()
                .any(|r| r.resources.as_deref() == Some(&["widgets".to_string()][..]))
        );
    }
}
