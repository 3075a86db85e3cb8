//! `berth apply -f FILE|DIR|-`: every object of the manifests is created, or
//! replaced when it differs from what the server holds, or left alone.
//!
//! Everything is validated before the first request, so a bad manifest writes
//! nothing. For an object that exists, [`plan`] decides, from the manifest and
//! the live object alone:
//!
//! - the manifest's spec, labels and annotations match → `unchanged`;
//! - else a PUT of the manifest's spec and labels onto the live object's metadata
//!   (its resourceVersion, so a concurrent write is a 409 and apply retries) and
//!   status → `configured`.
//!
//! Fields the system writes into a spec are kept (a pod's `spec.nodeName`, the
//! scheduler's binding), and annotations the manifest does not name are kept (a
//! controller's), so applying the same file twice says `unchanged`.

use std::collections::BTreeMap;

use clap::Parser;

use super::client::{ApiClient, read_object};
use super::error::CliError;
use super::kinds::{KindInfo, all_kinds};
use super::manifest::{load, prepare_all};
use super::table::desired_replicas;
use super::{Common, out};
use berth_api::meta::{MetaExt, ObjectMeta};
use berth_api::objects::{Deployment, Object, Pod, PodSpec, PodTemplateSpec, ReplicaSet};

#[derive(Parser, Debug)]
#[command(name = "berth apply", about = "Create or update objects from YAML or JSON manifests")]
pub struct ApplyArgs {
    /// A manifest file, a directory of .yaml/.yml/.json files, or - for stdin
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-", required = true)]
    pub filenames: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

/// What apply does to an object that already exists.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    Unchanged,
    /// PUT this object.
    Configure(Box<Object>),
}

/// Decides from the manifest's object and the live one (of the same kind).
pub fn plan(desired: &Object, live: &Object) -> Result<Plan, String> {
    if desired.descriptor() != live.descriptor() {
        return Err(format!(
            "the server holds a {} where the manifest has a {}",
            live.kind(),
            desired.kind()
        ));
    }
    let (spec, same_spec) = spec_to_apply(desired, live);
    let annotations = merged_annotations(desired.metadata(), live.metadata());
    let labels = desired.metadata().labels();
    if same_spec && labels == live.metadata().labels() && &annotations == live.metadata().annotations() {
        return Ok(Plan::Unchanged);
    }
    // The live object with the manifest's spec, labels and annotations.
    let mut put = live.to_value();
    put["apiVersion"] = desired.to_value()["apiVersion"].clone();
    put["kind"] = desired.to_value()["kind"].clone();
    put["spec"] = spec;
    let mut put = Object::from_value(put).map_err(|e| e.to_string())?;
    put.metadata_mut().labels = non_empty(labels.clone());
    put.metadata_mut().annotations = non_empty(annotations);
    Ok(Plan::Configure(Box::new(put)))
}

/// The spec to PUT, and whether it is the live one: the manifest's, compared as
/// it is for most kinds; a pod keeps its binding, and pod specs compare with the
/// restart policy defaulted.
fn spec_to_apply(desired: &Object, live: &Object) -> (serde_json::Value, bool) {
    let spec_of = |object: &Object| object.to_value()["spec"].clone();
    if let (Some(d), Some(l)) = (desired.downcast_ref::<Pod>(), live.downcast_ref::<Pod>()) {
        let mut spec = d.spec.clone();
        if spec.node_name.as_deref().unwrap_or_default().is_empty() {
            spec.node_name = l.spec.node_name.clone();
        }
        let same = same_pod_spec(&spec, &l.spec);
        return (serde_json::to_value(spec).expect("specs serialize"), same);
    }
    let same = if let (Some(d), Some(l)) = (desired.downcast_ref::<Deployment>(), live.downcast_ref::<Deployment>()) {
        desired_replicas(d.spec.replicas) == desired_replicas(l.spec.replicas)
            && d.spec.selector == l.spec.selector
            && same_template(Some(&d.spec.template), Some(&l.spec.template))
    } else if let (Some(d), Some(l)) = (desired.downcast_ref::<ReplicaSet>(), live.downcast_ref::<ReplicaSet>()) {
        desired_replicas(d.spec.replicas) == desired_replicas(l.spec.replicas)
            && d.spec.selector == l.spec.selector
            && same_template(d.spec.template.as_ref(), l.spec.template.as_ref())
    } else {
        spec_of(desired) == spec_of(live)
    };
    (spec_of(desired), same)
}

/// Templates equal once an absent template, metadata or spec reads as an empty one.
fn same_template(a: Option<&PodTemplateSpec>, b: Option<&PodTemplateSpec>) -> bool {
    let (a, b) = (a.cloned().unwrap_or_default(), b.cloned().unwrap_or_default());
    a.metadata.unwrap_or_default() == b.metadata.unwrap_or_default()
        && same_pod_spec(&a.spec.unwrap_or_default(), &b.spec.unwrap_or_default())
}

/// Pod specs equal once an unset restart policy reads as the default it means.
fn same_pod_spec(a: &PodSpec, b: &PodSpec) -> bool {
    let defaulted = |spec: &PodSpec| {
        let mut spec = spec.clone();
        if spec.restart_policy.as_deref().unwrap_or_default().is_empty() {
            spec.restart_policy = Some("Always".into());
        }
        spec
    };
    defaulted(a) == defaulted(b)
}

fn merged_annotations(desired: &ObjectMeta, live: &ObjectMeta) -> BTreeMap<String, String> {
    let mut annotations = live.annotations().clone();
    annotations.extend(desired.annotations().clone());
    annotations
}

/// A map to write into metadata: empty is absent, so the object stays as lean as the manifest.
fn non_empty(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
}

pub fn kind_of(object: &Object) -> Result<KindInfo, CliError> {
    all_kinds()
        .into_iter()
        .find(|k| k.kind == object.kind())
        .ok_or_else(|| CliError::message(format!("berth's CLI does not know the kind {}", object.kind())))
}

pub async fn run(args: ApplyArgs) -> Result<(), CliError> {
    let documents = load(&args.filenames).map_err(CliError::Message)?;
    let objects = match prepare_all(&documents, args.common.namespace.as_deref()) {
        Ok(objects) => objects,
        Err(lines) => {
            for line in lines {
                crate::err_line(format_args!("error: {line}"));
            }
            return Err(CliError::Reported);
        }
    };
    if objects.is_empty() {
        return Err(CliError::message("no objects passed to apply"));
    }
    let client = args.common.client()?;
    let mut failed = false;
    for object in &objects {
        let kind = kind_of(object)?;
        match apply_one(&client, &kind, object).await {
            Ok(outcome) => out(&format!(
                "{}/{} {outcome}\n",
                kind.qualified(),
                object.metadata().name()
            )),
            Err(e @ CliError::Unreachable(_)) => return Err(e),
            Err(e) => {
                crate::err_line(format_args!("{e}"));
                failed = true;
            }
        }
    }
    if failed { Err(CliError::Reported) } else { Ok(()) }
}

/// Creates or replaces one object; a 409 (someone wrote in between) is retried
/// from a fresh GET.
async fn apply_one(client: &ApiClient, kind: &KindInfo, object: &Object) -> Result<&'static str, CliError> {
    const ATTEMPTS: usize = 3;
    let meta = object.metadata();
    let path = kind.object_path(meta.namespace(), meta.name());
    let mut attempt = 1;
    loop {
        let result = match client.get_optional(&path).await? {
            None => {
                let collection = kind.collection_path(Some(meta.namespace()));
                client.post(&collection, &object.to_value()).await.map(|_| "created")
            }
            Some(live) => match plan(object, &read_object(kind, live)?).map_err(CliError::Message)? {
                Plan::Unchanged => Ok("unchanged"),
                Plan::Configure(replacement) => client.put(&path, &replacement.to_value()).await.map(|_| "configured"),
            },
        };
        match result {
            Err(e) if e.is_conflict() && attempt < ATTEMPTS => attempt += 1,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(replicas: i32) -> serde_json::Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "http", "command": ["python3"]}]}}}
        })
    }

    /// What the server would hold after creating `manifest`: metadata and status filled in.
    fn live(mut manifest: serde_json::Value) -> Object {
        manifest["metadata"]["resourceVersion"] = json!("42");
        manifest["metadata"]["uid"] = json!("u-1");
        manifest["metadata"]["creationTimestamp"] = json!("2026-11-22T02:18:30Z");
        manifest["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "1"});
        manifest["status"] = json!({"replicas": 3, "readyReplicas": 3});
        Object::from_value(manifest).unwrap()
    }

    fn object(value: serde_json::Value) -> Object {
        Object::from_value(value).unwrap()
    }

    #[test]
    fn the_same_manifest_is_unchanged() {
        assert_eq!(plan(&object(deployment(3)), &live(deployment(3))), Ok(Plan::Unchanged));
    }

    #[test]
    fn a_changed_spec_is_configured_onto_the_live_metadata_and_status() {
        let Ok(Plan::Configure(put)) = plan(&object(deployment(5)), &live(deployment(3))) else {
            panic!("expected configure");
        };
        let Ok(put) = put.downcast::<Deployment>() else {
            panic!("not a deployment")
        };
        assert_eq!(put.spec.replicas, Some(5));
        assert_eq!(
            put.metadata.resource_version(),
            "42",
            "the PUT carries the fetched resourceVersion"
        );
        assert_eq!(put.metadata.uid(), "u-1");
        assert_eq!(put.status.ready_replicas, Some(3), "the fetched status is kept");
        assert_eq!(put.metadata.annotations()["deployment.kubernetes.io/revision"], "1");
    }

    #[test]
    fn changed_labels_are_configured() {
        let mut relabelled = deployment(3);
        relabelled["metadata"]["labels"] = json!({"app": "web", "tier": "front"});
        let plan = plan(&object(relabelled), &live(deployment(3))).unwrap();
        let Plan::Configure(put) = plan else {
            panic!("expected configure")
        };
        assert_eq!(put.metadata().labels().len(), 2);
    }

    #[test]
    fn a_scheduled_pod_and_a_defaulted_restart_policy_are_unchanged() {
        let manifest = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "a", "command": ["sleep", "9"]}]}
        });
        let mut server = manifest.clone();
        server["spec"]["nodeName"] = json!("node-1");
        server["spec"]["restartPolicy"] = json!("Always");
        server["status"] = json!({"phase": "Running"});
        assert_eq!(
            plan(&object(manifest.clone()), &object(server.clone())),
            Ok(Plan::Unchanged)
        );

        let mut changed = manifest;
        changed["spec"]["containers"][0]["command"] = json!(["sleep", "10"]);
        let Ok(Plan::Configure(put)) = plan(&object(changed), &object(server)) else {
            panic!("expected configure");
        };
        let Ok(put) = put.downcast::<Pod>() else {
            panic!("not a pod")
        };
        assert_eq!(put.spec.node_name.as_deref(), Some("node-1"), "the binding is kept");
        assert_eq!(put.status.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn a_kind_mismatch_is_an_error() {
        let ns = object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}));
        assert!(plan(&object(deployment(1)), &ns).is_err());
    }
}
