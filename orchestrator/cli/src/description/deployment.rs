//! `berth describe deployment`, with the ReplicaSets it owns sorted into the one that
//! runs its current template and the old ones still holding pods.

use super::pod_template::pod_template;
use std::collections::BTreeMap;

use super::text::{Text, meta_lines, time_text};
use crate::table::{desired_replicas, selector_text};
use berth_api::meta::MetaExt;
use berth_api::objects::{Deployment, PodTemplateSpec, ReplicaSet};

/// A template's labels; absent is none.
fn template_labels(template: Option<&PodTemplateSpec>) -> BTreeMap<String, String> {
    template
        .and_then(|t| t.metadata.as_ref())
        .map(|m| m.labels().clone())
        .unwrap_or_default()
}

/// Whether a ReplicaSet runs the deployment's current template (the controller
/// adds `pod-template-hash` to the labels, so that one label is not compared).
fn runs_template(rs: &ReplicaSet, d: &Deployment) -> bool {
    let mut labels = template_labels(rs.spec.template.as_ref());
    labels.remove("pod-template-hash");
    let rs_spec = rs
        .spec
        .template
        .as_ref()
        .and_then(|t| t.spec.clone())
        .unwrap_or_default();
    rs_spec == d.spec.template.spec.clone().unwrap_or_default() && labels == template_labels(Some(&d.spec.template))
}

/// `replica_sets`: those the deployment owns.
pub fn deployment(d: &Deployment, replica_sets: &[ReplicaSet]) -> String {
    let mut text = Text::default();
    text.line(0, format!("Name:\t{}", d.metadata.name()));
    text.line(0, format!("Namespace:\t{}", d.metadata.namespace()));
    text.line(
        0,
        format!(
            "CreationTimestamp:\t{}",
            time_text(d.metadata.creation_timestamp.as_ref())
        ),
    );
    meta_lines(&mut text, &d.metadata);
    text.line(0, format!("Selector:\t{}", selector_text(&d.spec.selector)));
    let s = &d.status;
    let (desired, available) = (
        desired_replicas(d.spec.replicas),
        s.available_replicas.unwrap_or_default(),
    );
    text.line(
        0,
        format!(
            "Replicas:\t{desired} desired | {} updated | {} total | {available} available | {} unavailable",
            s.updated_replicas.unwrap_or_default(),
            s.replicas.unwrap_or_default(),
            (desired - available).max(0)
        ),
    );
    pod_template(&mut text, Some(&d.spec.template));
    let describe = |sets: Vec<&ReplicaSet>| {
        if sets.is_empty() {
            return "<none>".to_string();
        }
        let parts: Vec<String> = sets
            .iter()
            .map(|rs| {
                format!(
                    "{} ({}/{} replicas created)",
                    rs.metadata.name(),
                    rs.status.replicas,
                    desired_replicas(rs.spec.replicas)
                )
            })
            .collect();
        parts.join(", ")
    };
    let (new, old): (Vec<&ReplicaSet>, Vec<&ReplicaSet>) = replica_sets.iter().partition(|rs| runs_template(rs, d));
    let old = old
        .into_iter()
        .filter(|rs| desired_replicas(rs.spec.replicas) > 0 || rs.status.replicas > 0)
        .collect();
    text.line(0, format!("OldReplicaSets:\t{}", describe(old)));
    text.line(0, format!("NewReplicaSet:\t{}", describe(new)));
    text.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::description::typed;

    fn deployment() -> Deployment {
        typed(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d1",
                         "creationTimestamp": "2026-11-22T02:18:30Z"},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "http", "image": "nginx"}]}}},
            "status": {"replicas": 4, "updatedReplicas": 4, "readyReplicas": 4, "availableReplicas": 4}
        }))
    }

    #[test]
    fn a_deployment_with_its_replica_sets() {
        let d = deployment();
        let rs = |name: &str, image: &str, replicas: i32| -> ReplicaSet {
            typed(json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "h"}},
                                      "spec": {"containers": [{"name": "http", "image": image}]}}},
                "status": {"replicas": replicas}
            }))
        };
        let text = super::deployment(&d, &[rs("web-old", "httpd", 0), rs("web-new", "nginx", 4)]);
        assert_eq!(
            text,
            "\
Name:               web
Namespace:          default
CreationTimestamp:  Sun, 22 Nov 2026 02:18:30 +0000
Labels:             <none>
Annotations:        <none>
Selector:           app=web
Replicas:           4 desired | 4 updated | 4 total | 4 available | 0 unavailable
Pod Template:
  Labels:  app=web
  Containers:
   http:
    Image:        nginx
    Port:         <none>
    Host Port:    <none>
    Environment:  <none>
OldReplicaSets:   <none>
NewReplicaSet:    web-new (4/4 replicas created)
"
        );
    }
}
