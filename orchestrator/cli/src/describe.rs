//! `berth describe TYPE [NAME...]`: fetches each object and what belongs to it
//! (a deployment's ReplicaSets, a ReplicaSet's pods, a node's pods), then
//! writes it out with [`super::description`].

use std::time::SystemTime;

use clap::Parser;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::client::{ApiClient, list_items, read_object};
use super::description;
use super::error::CliError;
use super::kinds::{KindInfo, lookup, parse_targets};
use super::table::selector_text;
use super::{Common, out};
use berth_api::kinds::event::Event;
use berth_api::meta::{MetaExt, ObjectMeta};
use berth_api::objects::{Deployment, Namespace, Node, Object, Pod, ReplicaSet};

#[derive(Parser, Debug)]
#[command(name = "berth describe", about = "Show the details of objects")]
pub struct DescribeArgs {
    /// TYPE [NAME...] or TYPE/NAME...; no name: every object of the type
    #[arg(value_name = "TYPE[/NAME]", required = true)]
    pub targets: Vec<String>,
    /// Only objects with these labels: key=value[,key=value...]
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(args: DescribeArgs) -> Result<(), CliError> {
    let targets = parse_targets(&args.targets).map_err(CliError::Message)?;
    let client = args.common.client()?;
    let namespace = args.common.namespace();
    let selector = args.selector.as_deref().unwrap_or_default();
    let mut descriptions = Vec::new();
    let mut failed = false;
    for target in &targets {
        let kind = &target.kind;
        let mut objects = Vec::new();
        if target.names.is_empty() {
            let list = client
                .get(&kind.collection_url(Some(namespace), &[("labelSelector", selector)]))
                .await?;
            for item in list_items(kind, &list) {
                objects.push(read_object(kind, item)?);
            }
        }
        for name in &target.names {
            match client.get(&kind.object_path(namespace, name)).await {
                Ok(value) => objects.push(read_object(kind, value)?),
                Err(e @ CliError::Unreachable(_)) => return Err(e),
                Err(e) => {
                    crate::err_line(format_args!("{e}"));
                    failed = true;
                }
            }
        }
        for object in &objects {
            descriptions.push(describe(&client, object).await?);
        }
    }
    if descriptions.is_empty() && !failed {
        crate::err_line(format_args!("No resources found in {namespace} namespace."));
    }
    out(&descriptions.join("\n"));
    if failed { Err(CliError::Reported) } else { Ok(()) }
}

/// The object's description, and the events about it, as kubectl ends every
/// description with them.
async fn describe(client: &ApiClient, object: &Object) -> Result<String, CliError> {
    let body = describe_object(client, object).await?;
    let meta = object.metadata();
    let field_selector = format!(
        "involvedObject.kind={},involvedObject.name={},involvedObject.uid={}",
        object.kind(),
        meta.name(),
        meta.uid()
    );
    let namespace = if object.is_namespaced() {
        meta.namespace()
    } else {
        "default"
    };
    let events: Vec<Event> = list(client, "ev", namespace, "", &field_selector).await?;
    let events: Vec<Event> = events
        .into_iter()
        .filter(|e| e.involved_object.uid.as_deref() == Some(meta.uid()))
        .collect();
    Ok(format!("{body}{}", description::events(&events, SystemTime::now())))
}

async fn describe_object(client: &ApiClient, object: &Object) -> Result<String, CliError> {
    if let Some(pod) = object.downcast_ref::<Pod>() {
        return Ok(description::pod(pod));
    }
    if let Some(ns) = object.downcast_ref::<Namespace>() {
        return Ok(description::namespace(ns));
    }
    if let Some(d) = object.downcast_ref::<Deployment>() {
        let selector = selector_text(&d.spec.selector);
        let sets: Vec<ReplicaSet> = list(client, "rs", d.metadata.namespace(), &selector, "").await?;
        let owned: Vec<ReplicaSet> = sets
            .into_iter()
            .filter(|rs| is_controlled_by(&rs.metadata, &d.metadata, "Deployment"))
            .collect();
        return Ok(description::deployment(d, &owned));
    }
    if let Some(rs) = object.downcast_ref::<ReplicaSet>() {
        let selector = selector_text(&rs.spec.selector);
        let pods: Vec<Pod> = list(client, "po", rs.metadata.namespace(), &selector, "").await?;
        let owned: Vec<Pod> = pods
            .into_iter()
            .filter(|p| is_controlled_by(&p.metadata, &rs.metadata, "ReplicaSet"))
            .collect();
        return Ok(description::replica_set(rs, &owned));
    }
    if let Some(node) = object.downcast_ref::<Node>() {
        let name = node.metadata.name();
        // The server may not filter by field; the pods are filtered here too.
        let field_selector = format!("spec.nodeName={name}");
        let pods: Vec<Pod> = list(client, "po", "", "", &field_selector).await?;
        let bound: Vec<Pod> = pods
            .into_iter()
            .filter(|p| p.spec.node_name.as_deref().unwrap_or_default() == name)
            .collect();
        return Ok(description::node(node, &bound, SystemTime::now()));
    }
    Ok(description::any(object))
}

/// The objects of a kind in a namespace (empty: all), typed; items that do not
/// read as the kind are skipped.
async fn list<T: DeserializeOwned>(
    client: &ApiClient,
    kind: &str,
    namespace: &str,
    label_selector: &str,
    field_selector: &str,
) -> Result<Vec<T>, CliError> {
    let kind: KindInfo = lookup(kind).ok_or_else(|| CliError::message(format!("no kind {kind}")))?;
    let namespace = (!namespace.is_empty()).then_some(namespace);
    let label_selector = if label_selector == "<none>" { "" } else { label_selector };
    let url = kind.collection_url(
        namespace,
        &[("labelSelector", label_selector), ("fieldSelector", field_selector)],
    );
    let list: Value = client.get(&url).await?;
    Ok(list_items(&kind, &list)
        .into_iter()
        .filter_map(|item| serde_json::from_value(item).ok())
        .collect())
}

/// Whether `owner` (of kind `kind`) is the controller of the object with `meta`:
/// by uid where both have one, else by name.
fn is_controlled_by(meta: &ObjectMeta, owner: &ObjectMeta, kind: &str) -> bool {
    meta.owner_references().iter().any(|r| {
        r.kind == kind
            && r.controller != Some(false)
            && if r.uid.is_empty() || owner.uid().is_empty() {
                r.name == owner.name()
            } else {
                r.uid == owner.uid()
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::meta::OwnerReference;

    #[test]
    fn ownership_by_uid_else_by_name() {
        let owner = ObjectMeta {
            name: Some("web".into()),
            uid: Some("u1".into()),
            ..ObjectMeta::default()
        };
        let owned = |name: &str, uid: &str| ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: name.into(),
                uid: uid.into(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        };
        assert!(is_controlled_by(&owned("web", "u1"), &owner, "Deployment"));
        assert!(
            !is_controlled_by(&owned("web", "u0"), &owner, "Deployment"),
            "a namesake's leftover"
        );
        assert!(is_controlled_by(&owned("web", ""), &owner, "Deployment"));
        assert!(!is_controlled_by(&owned("web", "u1"), &owner, "ReplicaSet"));
        assert!(!is_controlled_by(&ObjectMeta::default(), &owner, "Deployment"));
    }
}
