//! A StatefulSet's spec, by Kubernetes 1.32's rules and with its messages: the
//! policies and strategies by name, counts not negative, a selector that matches the
//! template's labels, a template whose pods restart `Always`, and claim templates
//! each with a name, an access mode and a storage request.

use std::collections::BTreeSet;

use super::{Errors, err, is_dns_label, is_dns_subdomain, non_negative, pod_spec, unsupported};
use crate::kinds::stateful_set::{DELETE, ON_DELETE, ORDERED_READY, PARALLEL, RETAIN, ROLLING_UPDATE};
use crate::meta::{MetaExt, selector_is_empty, selector_matches};
use crate::objects::{PersistentVolumeClaimVolumeSource, StatefulSetSpec, Volume};

pub fn spec(spec: &StatefulSetSpec, errors: &mut Errors) {
    match spec.pod_management_policy.as_deref().unwrap_or_default() {
        "" => err(errors, "spec.podManagementPolicy", "Required value"),
        ORDERED_READY | PARALLEL => {}
        other => err(
            errors,
            "spec.podManagementPolicy",
            format!("Invalid value: {other:?}: must be '{ORDERED_READY}' or '{PARALLEL}'"),
        ),
    }
    update_strategy(spec, errors);
    if let Some(policy) = &spec.persistent_volume_claim_retention_policy {
        for (value, field) in [
            (&policy.when_deleted, "whenDeleted"),
            (&policy.when_scaled, "whenScaled"),
        ] {
            let value = value.as_deref().unwrap_or_default();
            if value != RETAIN && value != DELETE {
                err(
                    errors,
                    format!("spec.persistentVolumeClaimRetentionPolicy.{field}"),
                    format!("Unsupported value: {value:?}: supported values: \"{RETAIN}\", \"{DELETE}\""),
                );
            }
        }
    }
    non_negative(spec.replicas, "spec.replicas", errors);
    non_negative(
        spec.ordinals.as_ref().and_then(|o| o.start),
        "spec.ordinals.start",
        errors,
    );
    non_negative(spec.min_ready_seconds, "spec.minReadySeconds", errors);
    non_negative(spec.revision_history_limit, "spec.revisionHistoryLimit", errors);
    if let Some(service) = spec.service_name.as_deref().filter(|s| !s.is_empty())
        && !is_dns_label(service)
    {
        err(
            errors,
            "spec.serviceName",
            format!(
                "Invalid value: {service:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
            ),
        );
    }
    template(spec, errors);
    claim_templates(spec, errors);
}

fn update_strategy(spec: &StatefulSetSpec, errors: &mut Errors) {
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let at = "spec.updateStrategy";
    match strategy.type_.as_deref().unwrap_or_default() {
        "" => err(errors, at, "Required value"),
        ON_DELETE => {
            if strategy.rolling_update.is_some() {
                err(
                    errors,
                    format!("{at}.rollingUpdate"),
                    format!("Invalid value: only allowed for updateStrategy '{ROLLING_UPDATE}'"),
                );
            }
        }
        ROLLING_UPDATE => {
            if let Some(rolling) = &strategy.rolling_update {
                non_negative(rolling.partition, &format!("{at}.rollingUpdate.partition"), errors);
                unsupported::check(
                    errors,
                    rolling.max_unavailable.is_some(),
                    format!("{at}.rollingUpdate.maxUnavailable"),
                    "an alpha field in Kubernetes 1.32, behind the MaxUnavailableStatefulSet gate",
                );
            }
        }
        other => err(
            errors,
            at,
            format!("Invalid value: {other:?}: must be '{ROLLING_UPDATE}' or '{ON_DELETE}'"),
        ),
    }
}

fn template(spec: &StatefulSetSpec, errors: &mut Errors) {
    let labels = spec
        .template
        .metadata
        .as_ref()
        .map(|m| m.labels().clone())
        .unwrap_or_default();
    if selector_is_empty(&spec.selector) {
        err(
            errors,
            "spec.selector",
            "Invalid value: empty selector is invalid for statefulset",
        );
    } else if !selector_matches(&spec.selector, &labels) {
        err(
            errors,
            "spec.template.metadata.labels",
            format!("Invalid value: {labels:?}: `selector` does not match template `labels`"),
        );
    }
    let Some(pod) = &spec.template.spec else {
        err(errors, "spec.template.spec", "Required value");
        return;
    };
    // The pods get a claim volume per claim template (the controller adds them),
    // which the containers' volumeMounts may name.
    let mut with_claims = pod.clone();
    let volumes = with_claims.volumes.get_or_insert_default();
    for claim in spec.volume_claim_templates.iter().flatten() {
        let name = claim.metadata.name.clone().unwrap_or_default();
        if !volumes.iter().any(|v| v.name == name) {
            volumes.push(Volume {
                name: name.clone(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: format!("{name}-pod"),
                    read_only: None,
                }),
                ..Default::default()
            });
        }
    }
    pod_spec(&with_claims, "spec.template.spec", errors);
    let restart = pod.restart_policy.as_deref().unwrap_or("Always");
    if restart != "Always" {
        err(
            errors,
            "spec.template.spec.restartPolicy",
            format!("Unsupported value: {restart:?}: supported values: \"Always\""),
        );
    }
    if pod.active_deadline_seconds.is_some() {
        err(
            errors,
            "spec.template.spec.activeDeadlineSeconds",
            "Forbidden: activeDeadlineSeconds in StatefulSet is not Supported",
        );
    }
}

fn claim_templates(spec: &StatefulSetSpec, errors: &mut Errors) {
    let mut names = BTreeSet::new();
    for (i, claim) in spec.volume_claim_templates.iter().flatten().enumerate() {
        let at = format!("spec.volumeClaimTemplates[{i}]");
        let name = claim.metadata.name();
        if name.is_empty() {
            err(
                errors,
                format!("{at}.metadata.name"),
                "Required value: name or generateName is required",
            );
        } else if !is_dns_label(name) || !is_dns_subdomain(name) {
            err(
                errors,
                format!("{at}.metadata.name"),
                format!(
                    "Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
                ),
            );
        } else if !names.insert(name) {
            err(
                errors,
                format!("{at}.metadata.name"),
                format!("Duplicate value: {name:?}"),
            );
        }
        let claim_spec = claim.spec.clone().unwrap_or_default();
        if claim_spec.access_modes.as_ref().is_none_or(Vec::is_empty) {
            err(
                errors,
                format!("{at}.spec.accessModes"),
                "Required value: at least 1 access mode is required",
            );
        }
        for (j, mode) in claim_spec.access_modes.iter().flatten().enumerate() {
            const MODES: [&str; 4] = ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"];
            if !MODES.contains(&mode.as_str()) {
                err(
                    errors,
                    format!("{at}.spec.accessModes[{j}]"),
                    format!(
                        "Unsupported value: {mode:?}: supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\""
                    ),
                );
            }
        }
        let has_storage = claim_spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .is_some_and(|r| r.contains_key("storage"));
        if !has_storage {
            err(errors, format!("{at}.spec.resources[storage]"), "Required value");
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::validation::parse_value;

    fn errors(change: impl FnOnce(&mut serde_json::Value)) -> Vec<String> {
        let mut value = serde_json::json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"serviceName": "web",
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "www"},
                    "spec": {"accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}}}}]}});
        change(&mut value["spec"]);
        match parse_value(value) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_well_formed_set_passes() {
        assert_eq!(errors(|_| {}), Vec::<String>::new());
        assert_eq!(
            errors(|s| {
                s["podManagementPolicy"] = "Parallel".into();
                s["updateStrategy"] = serde_json::json!({"type": "OnDelete"});
                s["persistentVolumeClaimRetentionPolicy"] =
                    serde_json::json!({"whenDeleted": "Delete", "whenScaled": "Delete"});
                s["ordinals"] = serde_json::json!({"start": 5});
            }),
            Vec::<String>::new()
        );
    }

    #[test]
    fn policies_and_strategies_are_named_as_kubernetes_names_them() {
        assert_eq!(
            errors(|s| s["podManagementPolicy"] = "Random".into()),
            ["spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'"]
        );
        assert_eq!(
            errors(|s| s["updateStrategy"] = serde_json::json!({"type": "Recreate"})),
            ["spec.updateStrategy: Invalid value: \"Recreate\": must be 'RollingUpdate' or 'OnDelete'"]
        );
        assert_eq!(
            errors(|s| s["updateStrategy"] = serde_json::json!({"type": "OnDelete", "rollingUpdate": {}})),
            ["spec.updateStrategy.rollingUpdate: Invalid value: only allowed for updateStrategy 'RollingUpdate'"]
        );
        assert_eq!(
            errors(|s| s["updateStrategy"] = serde_json::json!({"rollingUpdate": {"partition": -1}})),
            ["spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be greater than or equal to 0"]
        );
        let refused = errors(|s| s["updateStrategy"] = serde_json::json!({"rollingUpdate": {"maxUnavailable": 2}}));
        assert_eq!(refused.len(), 1);
        assert!(
            refused[0].starts_with("spec.updateStrategy.rollingUpdate.maxUnavailable: berth does not implement"),
            "{refused:?}"
        );
        assert_eq!(
            errors(|s| s["persistentVolumeClaimRetentionPolicy"] = serde_json::json!({"whenScaled": "Keep"})),
            [
                "spec.persistentVolumeClaimRetentionPolicy.whenScaled: Unsupported value: \"Keep\": supported values: \"Retain\", \"Delete\""
            ]
        );
        assert_eq!(
            errors(|s| s["ordinals"] = serde_json::json!({"start": -2})),
            ["spec.ordinals.start: Invalid value: -2: must be greater than or equal to 0"]
        );
    }

    #[test]
    fn containers_mount_the_claim_templates() {
        let mount = |name: &str| serde_json::json!([{"name": name, "mountPath": "/data"}]);
        assert!(errors(|s| s["template"]["spec"]["containers"][0]["volumeMounts"] = mount("www")).is_empty());
        assert_eq!(
            errors(|s| s["template"]["spec"]["containers"][0]["volumeMounts"] = mount("other")),
            ["spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"other\""]
        );
    }

    #[test]
    fn the_template_must_match_the_selector_and_restart_always() {
        assert_eq!(
            errors(|s| s["selector"] = serde_json::json!({"matchLabels": {"app": "db"}})),
            [
                "spec.template.metadata.labels: Invalid value: {\"app\": \"web\"}: `selector` does not match template `labels`"
            ]
        );
        assert_eq!(
            errors(|s| s["selector"] = serde_json::json!({})),
            ["spec.selector: Invalid value: empty selector is invalid for statefulset"]
        );
        assert_eq!(
            errors(|s| s["template"]["spec"]["restartPolicy"] = "Never".into()),
            ["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]
        );
    }

    #[test]
    fn claim_templates_need_a_name_an_access_mode_and_a_size() {
        assert_eq!(
            errors(|s| s["volumeClaimTemplates"] = serde_json::json!([{"metadata": {"name": "www"}}])),
            [
                "spec.volumeClaimTemplates[0].spec.accessModes: Required value: at least 1 access mode is required",
                "spec.volumeClaimTemplates[0].spec.resources[storage]: Required value"
            ]
        );
        let twice = serde_json::json!({"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}});
        assert_eq!(
            errors(|s| s["volumeClaimTemplates"] = serde_json::json!([twice, twice])),
            ["spec.volumeClaimTemplates[1].metadata.name: Duplicate value: \"www\""]
        );
    }
}
