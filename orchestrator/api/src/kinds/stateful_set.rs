//! StatefulSets: pods with stable names (`<set>-<ordinal>`), stable claims (one per
//! `volumeClaimTemplates` entry and ordinal) and an order of creation, deletion and
//! update. The checks are Kubernetes 1.32's, with its messages
//! (`validation/stateful_set.rs`); an update may change only the fields Kubernetes
//! lets change ([`validate_update`]).

use std::time::SystemTime;

use super::cells::{self, Cells, desired_replicas};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources};
use crate::objects::{Spec, StatefulSet, StatefulSetSpec, StatefulSetStatus};
use crate::validation::{self, FieldError};

pub static STATEFUL_SET: KindDescriptor = KindDescriptor {
    group: "apps",
    version: "v1",
    kind: "StatefulSet",
    plural: "statefulsets",
    singular: "statefulset",
    short_names: &["sts"],
    namespaced: true,
    names_are_dns_labels: false,
    field_selectors: &[],
    categories: &["all"],
    subresources: Subresources {
        status: true,
        scale: true,
    },
    printer_columns: &[
        PrinterColumn::NAME,
        PrinterColumn::new(
            "Ready",
            "string",
            "",
            "The number of ready pods out of the number wanted.",
        ),
        PrinterColumn::AGE,
        PrinterColumn::new(
            "Containers",
            "string",
            "",
            "The names of the containers of the pod template.",
        )
        .wide(),
        PrinterColumn::new(
            "Images",
            "string",
            "",
            "The images of the containers of the pod template.",
        )
        .wide(),
    ],
    status_on_create: StatusOnCreate::Cleared,
    decode: Object::decode::<StatefulSetSpec>,
    defaults,
    validate,
    validate_update,
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<k8s_openapi::api::apps::v1::StatefulSet>(),
};

impl Spec for StatefulSetSpec {
    type Status = StatefulSetStatus;
    const DESCRIPTOR: &'static KindDescriptor = &STATEFUL_SET;
}

/// Pods are created one at a time, each once the one before is Running and Ready,
/// and deleted the other way round (the default).
pub const ORDERED_READY: &str = "OrderedReady";
/// Pods are created and deleted all at once.
pub const PARALLEL: &str = "Parallel";
/// Pods are replaced from the highest ordinal down to `partition` (the default).
pub const ROLLING_UPDATE: &str = "RollingUpdate";
/// Pods take a new template only when they are deleted.
pub const ON_DELETE: &str = "OnDelete";
/// A claim outlives its pod (the default of both retention policies).
pub const RETAIN: &str = "Retain";
/// A claim goes with its set (`whenDeleted`) or its scaled-down pod (`whenScaled`).
pub const DELETE: &str = "Delete";
/// `spec.revisionHistoryLimit` when a client leaves it out.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;

/// Kubernetes' defaults: 1 replica, OrderedReady, RollingUpdate from partition 0,
/// claims retained, 10 revisions; volume claim templates' `volumeMode: Filesystem`
/// and `status.phase: Pending`.
fn defaults(object: &mut Object) {
    let Some(object) = object.downcast_mut::<StatefulSet>() else {
        return;
    };
    let spec = &mut object.spec;
    spec.replicas.get_or_insert(1);
    if spec.pod_management_policy.as_deref().is_none_or(str::is_empty) {
        spec.pod_management_policy = Some(ORDERED_READY.into());
    }
    let strategy = spec.update_strategy.get_or_insert_default();
    if strategy.type_.as_deref().is_none_or(str::is_empty) {
        strategy.type_ = Some(ROLLING_UPDATE.into());
    }
    if strategy.type_.as_deref() == Some(ROLLING_UPDATE) {
        strategy
            .rolling_update
            .get_or_insert_default()
            .partition
            .get_or_insert(0);
    }
    let policy = spec.persistent_volume_claim_retention_policy.get_or_insert_default();
    for field in [&mut policy.when_deleted, &mut policy.when_scaled] {
        if field.as_deref().is_none_or(str::is_empty) {
            *field = Some(RETAIN.into());
        }
    }
    spec.revision_history_limit
        .get_or_insert(DEFAULT_REVISION_HISTORY_LIMIT);
    if let Some(pod) = &mut spec.template.spec {
        crate::probes::set_defaults(pod);
    }
    for claim in spec.volume_claim_templates.iter_mut().flatten() {
        let claim_spec = claim.spec.get_or_insert_default();
        claim_spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
        claim
            .status
            .get_or_insert_default()
            .phase
            .get_or_insert_with(|| "Pending".into());
    }
}

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    if let Some(object) = object.downcast_ref::<StatefulSet>() {
        validation::stateful_set::spec(&object.spec, errors);
        crate::depends_on::validate(&object.metadata, errors);
    }
}

/// Kubernetes' rule: an update may change only `replicas`, `ordinals`, `template`,
/// `updateStrategy`, `persistentVolumeClaimRetentionPolicy` and `minReadySeconds`.
fn validate_update(old: &Object, new: &Object, errors: &mut Vec<FieldError>) {
    let (Some(old), Some(new)) = (old.downcast_ref::<StatefulSet>(), new.downcast_ref::<StatefulSet>()) else {
        return;
    };
    let mut changed = new.spec.clone();
    changed.replicas = old.spec.replicas;
    changed.ordinals = old.spec.ordinals.clone();
    changed.template = old.spec.template.clone();
    changed.update_strategy = old.spec.update_strategy.clone();
    changed.persistent_volume_claim_retention_policy = old.spec.persistent_volume_claim_retention_policy.clone();
    changed.min_ready_seconds = old.spec.min_ready_seconds;
    if changed != old.spec {
        errors.push(FieldError {
            field: "spec".into(),
            message: "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', \
                      'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and \
                      'minReadySeconds' are forbidden"
                .into(),
        });
    }
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(set) = object.downcast_ref::<StatefulSet>() else {
        return cells::from_paths(&STATEFUL_SET, object, now);
    };
    let [containers, images, _] = cells::template(Some(&set.spec.template), &set.spec.selector);
    vec![
        cells::name(object),
        format!(
            "{}/{}",
            set.status.ready_replicas.unwrap_or_default(),
            desired_replicas(set.spec.replicas)
        )
        .into(),
        cells::age(object, now),
        containers,
        images,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::parse_value;

    fn manifest() -> serde_json::Value {
        serde_json::json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"serviceName": "web", "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "www"},
                    "spec": {"accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}}}}]}})
    }

    fn parsed(value: serde_json::Value) -> StatefulSet {
        parse_value(value).unwrap().object.downcast::<StatefulSet>().unwrap()
    }

    #[test]
    fn kubernetes_defaults_are_filled_in() {
        let set = parsed(manifest());
        let spec = &set.spec;
        assert_eq!(spec.pod_management_policy.as_deref(), Some(ORDERED_READY));
        let strategy = spec.update_strategy.as_ref().unwrap();
        assert_eq!(strategy.type_.as_deref(), Some(ROLLING_UPDATE));
        assert_eq!(strategy.rolling_update.as_ref().unwrap().partition, Some(0));
        let policy = spec.persistent_volume_claim_retention_policy.as_ref().unwrap();
        assert_eq!(
            (policy.when_deleted.as_deref(), policy.when_scaled.as_deref()),
            (Some(RETAIN), Some(RETAIN))
        );
        assert_eq!(spec.revision_history_limit, Some(10));
        let claim = &spec.volume_claim_templates.as_ref().unwrap()[0];
        assert_eq!(claim.spec.as_ref().unwrap().volume_mode.as_deref(), Some("Filesystem"));
    }

    fn update_errors(change: impl FnOnce(&mut StatefulSet)) -> Vec<String> {
        let old = parsed(manifest());
        let mut new = old.clone();
        change(&mut new);
        let mut errors = Vec::new();
        (STATEFUL_SET.validate_update)(&Object::new(old), &Object::new(new), &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn only_kubernetes_mutable_fields_may_change() {
        assert!(update_errors(|s| s.spec.replicas = Some(5)).is_empty());
        assert!(update_errors(|s| s.spec.min_ready_seconds = Some(3)).is_empty());
        assert!(
            update_errors(|s| {
                let rolling = s
                    .spec
                    .update_strategy
                    .as_mut()
                    .unwrap()
                    .rolling_update
                    .as_mut()
                    .unwrap();
                rolling.partition = Some(2);
            })
            .is_empty()
        );
        assert!(
            update_errors(|s| s.spec.template.spec.as_mut().unwrap().containers[0].image = Some("b".into())).is_empty()
        );
        for change in [
            (|s: &mut StatefulSet| s.spec.pod_management_policy = Some(PARALLEL.into())) as fn(&mut StatefulSet),
            |s| s.spec.service_name = Some("other".into()),
            |s| s.spec.volume_claim_templates = None,
            |s| s.spec.revision_history_limit = Some(1),
        ] {
            assert_eq!(
                update_errors(change),
                [
                    "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', \
                  'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' \
                  are forbidden"
                ]
            );
        }
    }

    #[test]
    fn the_row_shows_ready_out_of_wanted() {
        let mut set = parsed(manifest());
        set.status.ready_replicas = Some(2);
        let row = cells(&Object::new(set), SystemTime::now());
        assert_eq!(row[1], "2/3");
        assert_eq!((row[3].as_str(), row[4].as_str()), (Some("c"), Some("busybox")));
    }
}
