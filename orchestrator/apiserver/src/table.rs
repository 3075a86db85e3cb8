//! Server-side tables (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), what
//! `kubectl get` asks for: the kind's printer columns and, per object, its cells
//! (computed by the kind's row function in berth-api) and its metadata.

use std::time::SystemTime;

use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::codec::preferred_form;
use super::route::Kind;
use super::status::ApiError;

/// What each row carries besides its cells (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    /// `PartialObjectMetadata`: what kubectl reads namespaces and labels from.
    Metadata,
    Object,
}

impl Include {
    pub fn parse(text: &str) -> Result<Include, ApiError> {
        match text {
            "" | "Metadata" => Ok(Include::Metadata),
            "None" => Ok(Include::None),
            "Object" => Ok(Include::Object),
            other => Err(ApiError::bad_request(format!(
                "includeObject: {other:?} is not one of None, Metadata, Object"
            ))),
        }
    }
}

/// The Table version the client prefers to the objects themselves, as its API
/// version (`meta.k8s.io/v1`); `None` for the objects.
pub fn wants_table(headers: &HeaderMap) -> Option<&'static str> {
    match preferred_form(headers, "Table", "meta.k8s.io", &["v1", "v1beta1"])? {
        "v1" => Some("meta.k8s.io/v1"),
        _ => Some("meta.k8s.io/v1beta1"),
    }
}

/// The column definitions of a kind's tables.
pub fn columns(kind: &Kind) -> Vec<Value> {
    kind.printer_columns()
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.type_,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect()
}

/// One row of an object as stored.
pub fn row(kind: &Kind, object: &Value, include: Include, now: SystemTime) -> Value {
    let cells = match (kind.decode)(object) {
        Ok(typed) => (kind.cells)(&typed, now),
        Err(e) => {
            tracing::warn!(error = %e, "a stored object does not decode; its row is its name only");
            let name = object.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
            let mut cells = vec![Value::Null; kind.printer_columns().len()];
            if let Some(first) = cells.first_mut() {
                *first = name;
            }
            cells
        }
    };
    let mut row = json!({ "cells": cells });
    match include {
        Include::None => {}
        Include::Metadata => {
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
            });
        }
        Include::Object => row["object"] = object.clone(),
    }
    row
}

/// A Table of a list (`items` and the list's `metadata`) or of one object.
pub fn table(kind: &Kind, api_version: &str, answer: &Value, is_list: bool, include: Include) -> Value {
    let now = SystemTime::now();
    let (rows, metadata): (Vec<Value>, Value) = if is_list {
        let items = answer
            .get("items")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let rows = items.iter().map(|item| row(kind, item, include, now)).collect();
        (rows, answer.get("metadata").cloned().unwrap_or_else(|| json!({})))
    } else {
        let version = answer
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(Value::Null);
        (
            vec![row(kind, answer, include, now)],
            json!({ "resourceVersion": version }),
        )
    };
    json!({
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": metadata,
        "columnDefinitions": columns(kind),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use axum::http::header::ACCEPT;

    use super::*;
    use crate::tests::kind;

    fn accept(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn kubectl_get_asks_for_tables() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(wants_table(&accept(kubectl)), Some("meta.k8s.io/v1"));
        assert_eq!(
            wants_table(&accept("application/json;as=Table;v=v1beta1;g=meta.k8s.io")),
            Some("meta.k8s.io/v1beta1")
        );
        assert_eq!(wants_table(&accept("application/json")), None);
        assert_eq!(
            wants_table(&accept(
                "application/json, application/json;as=Table;v=v1;g=meta.k8s.io"
            )),
            None
        );
        assert_eq!(wants_table(&HeaderMap::new()), None);
    }

    #[test]
    fn rows_have_the_kinds_cells_and_metadata() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "dev", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "command": ["sleep"]}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.0.0.5"}});
        let list = json!({"metadata": {"resourceVersion": "7"}, "items": [pod]});
        let table = table(kind("pods"), "meta.k8s.io/v1", &list, true, Include::Metadata);
        let names: Vec<&str> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ]
        );
        assert_eq!(table["metadata"]["resourceVersion"], "7");
        let row = &table["rows"][0];
        assert_eq!(row["cells"][0], "p");
        assert_eq!(row["cells"][1], "0/1");
        assert_eq!(row["cells"][2], "Running");
        assert_eq!(row["cells"][3], 0);
        assert_eq!(row["cells"][5], "10.0.0.5");
        assert_eq!(row["cells"][6], "n1");
        assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(row["object"]["metadata"]["labels"]["app"], "web");
        let bare = super::row(kind("pods"), &list["items"][0], Include::None, SystemTime::now());
        assert_eq!(bare.get("object"), None);
        assert_eq!(Include::parse("Object").unwrap(), Include::Object);
        assert!(Include::parse("All").is_err());
    }
}
