//! OpenAPI v3 documents of the kinds served, as kube-apiserver publishes them:
//! `/openapi/v3` lists one document per group version (`api/v1`, `apis/apps/v1`)
//! with a hash in its URL, and each document has the group version's paths and the
//! schemas of its kinds and their fields.
//!
//! kubectl reads them: `kubectl explain` renders the schemas, `kubectl apply` looks
//! for the `fieldValidation` parameter of a kind's PATCH operation (found: the
//! server validates fields, so kubectl needs no schema of its own) and reads the
//! `x-kubernetes-patch-*` extensions to compute strategic merge patches.
//!
//! The schemas come from the kinds' types ([`berth_api::kinds::KindDescriptor::schema`]);
//! the documents are built once, on first use.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::route::{Kind, is_pods};
use berth_api::kinds::{KINDS, group_versions};
use berth_api::patch::PATCH_STRATEGIES;

/// One group version's document, and the hash its URL carries.
struct Document {
    body: Value,
    hash: String,
}

fn documents() -> &'static BTreeMap<String, Document> {
    static DOCUMENTS: OnceLock<BTreeMap<String, Document>> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        group_versions()
            .iter()
            .copied()
            .map(|(group, version)| {
                let body = document(group, version);
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                body.to_string().hash(&mut hasher);
                (
                    document_path(group, version),
                    Document {
                        body,
                        hash: format!("{:016X}", hasher.finish()),
                    },
                )
            })
            .collect()
    })
}

/// `api/v1`, `apis/apps/v1`: where a group version's document is, under `/openapi/v3/`.
fn document_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the documents there are.
pub fn index() -> Value {
    let paths: Map<String, Value> = documents()
        .iter()
        .map(|(path, document)| {
            (
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", document.hash)}),
            )
        })
        .collect();
    json!({ "paths": paths })
}

/// `/openapi/v3/<path>`: one group version's document, if there is one.
pub fn group_version_document(path: &str) -> Option<&'static Value> {
    documents().get(path).map(|document| &document.body)
}

/// The name of a kind's schema among a document's schemas
/// (`io.k8s.api.apps.v1.Deployment`), from the reference its generator returns.
fn schema_name(reference: &schemars::Schema) -> String {
    reference
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
        .unwrap_or_default()
        .to_string()
}

fn document(group: &str, version: &str) -> Value {
    let (paths, schemas) = paths_and_schemas(SchemaSettings::openapi3(), |k| (k.group, k.version) == (group, version));
    json!({
        "openapi": "3.0.0",
        "info": {"title": "berth", "version": format!("v{}", env!("CARGO_PKG_VERSION"))},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// `/openapi/v2`: one Swagger 2.0 document of every kind, in JSON (kube-apiserver
/// also serves it as protobuf, which berth does not: a client that asks only for
/// protobuf gets 406 and, as kubectl does, falls back to OpenAPI v3).
pub fn v2() -> &'static Value {
    static V2: OnceLock<Value> = OnceLock::new();
    V2.get_or_init(|| {
        let settings = SchemaSettings::openapi3().with(|s| s.definitions_path = "/definitions".into());
        let (paths, definitions) = paths_and_schemas(settings, |_| true);
        let text = Value::Object(paths)
            .to_string()
            .replace("#/components/schemas/", "#/definitions/");
        let paths: Value = serde_json::from_str(&text).expect("our own JSON");
        let paths: Map<String, Value> = paths
            .as_object()
            .expect("paths are an object")
            .iter()
            .map(|(path, item)| (path.clone(), v2_path_item(item)))
            .collect();
        json!({
            "swagger": "2.0",
            "info": {"title": "berth", "version": format!("v{}", env!("CARGO_PKG_VERSION"))},
            "paths": paths,
            "definitions": definitions,
        })
    })
}

/// A v3 path item in Swagger 2.0's form: parameters typed in place, a body
/// parameter for the request body, responses with a schema.
fn v2_path_item(item: &Value) -> Value {
    let mut item = item.clone();
    for operation in item.as_object_mut().into_iter().flat_map(|o| o.values_mut()) {
        let Some(operation) = operation.as_object_mut() else {
            continue;
        };
        let mut parameters: Vec<Value> = operation
            .get("parameters")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|mut p| {
                if let Some(schema) = p.as_object_mut().and_then(|p| p.remove("schema")) {
                    p["type"] = schema.get("type").cloned().unwrap_or_else(|| "string".into());
                }
                p
            })
            .collect();
        if let Some(body) = operation.remove("requestBody") {
            let schema = body["content"]
                .as_object()
                .and_then(|c| c.values().next())
                .map(|c| c["schema"].clone())
                .unwrap_or_else(|| json!({"type": "object"}));
            let consumes: Vec<&str> = body["content"]
                .as_object()
                .map(|c| c.keys().map(String::as_str).collect())
                .unwrap_or_default();
            operation.insert("consumes".into(), json!(consumes));
            parameters.push(json!({"name": "body", "in": "body", "required": true, "schema": schema}));
        }
        operation.insert("parameters".into(), Value::Array(parameters));
        if let Some(Value::Object(responses)) = operation.get_mut("responses") {
            for response in responses.values_mut() {
                if let Some(schema) = response.pointer("/content/application~1json/schema").cloned() {
                    response["schema"] = schema;
                }
                if let Some(response) = response.as_object_mut() {
                    response.remove("content");
                }
            }
        }
        operation.insert("produces".into(), json!(["application/json", "application/yaml"]));
    }
    item
}

/// The paths of the kinds `serve` picks, and the schemas of those kinds and their
/// fields, with Kubernetes' extensions (group-version-kind, patch strategies).
fn paths_and_schemas(
    settings: SchemaSettings,
    serve: impl Fn(&Kind) -> bool,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut generator = settings.into_generator();
    let mut paths = Map::new();
    let mut kinds = Vec::new();
    for kind in KINDS.iter().copied().filter(|k| serve(k)) {
        let name = schema_name(&(kind.schema)(&mut generator));
        add_paths(&mut paths, kind, &name);
        kinds.push((kind, name));
    }
    let mut schemas = generator.take_definitions(true);
    for (kind, name) in kinds {
        if let Some(Value::Object(schema)) = schemas.get_mut(&name) {
            schema.insert("x-kubernetes-group-version-kind".into(), json!([gvk(kind)]));
        }
    }
    // The list strategies the server's strategic merge follows, where clients that
    // compute patches (kubectl apply, edit) read them.
    for fact in PATCH_STRATEGIES {
        let Some(Value::Object(field)) = schemas
            .get_mut(fact.definition)
            .and_then(|schema| schema.get_mut("properties"))
            .and_then(|properties| properties.get_mut(fact.field))
        else {
            continue;
        };
        field.insert("x-kubernetes-patch-strategy".into(), fact.strategy.into());
        if let Some(key) = fact.merge_key {
            field.insert("x-kubernetes-patch-merge-key".into(), key.into());
        }
    }
    (paths, schemas)
}

fn gvk(kind: &Kind) -> Value {
    json!({"group": kind.group, "version": kind.version, "kind": kind.kind})
}

fn query(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn path_parameter(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}})
}

/// The parameters of writes: kubectl looks for `fieldValidation` on PATCH.
fn write_parameters() -> Vec<Value> {
    vec![
        query(
            "fieldValidation",
            "Ignore, Warn (the default) or Strict: what the server does with fields the kind does not define.",
        ),
        query("fieldManager", "The name of the actor making the change."),
        query("dryRun", "All: validate the change without persisting it."),
    ]
}

fn operation(kind: &Kind, action: &str, id: &str, schema: &str, parameters: Vec<Value>) -> Value {
    let content = |schema: &str| {
        json!({
            "application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}},
            "application/yaml": {"schema": {"$ref": format!("#/components/schemas/{schema}")}},
        })
    };
    let mut operation = json!({
        "operationId": id,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(kind),
        "parameters": parameters,
        "responses": {"200": {"description": "OK", "content": content(schema)}},
    });
    match action {
        "post" | "put" => {
            operation["requestBody"] = json!({"required": true, "content": content(schema)});
        }
        "patch" => {
            let patch = json!({"schema": {"type": "object"}});
            operation["requestBody"] = json!({"required": true, "content": {
                "application/json-patch+json": patch,
                "application/merge-patch+json": patch,
                "application/strategic-merge-patch+json": patch,
                "application/apply-patch+yaml": patch,
            }});
        }
        _ => {}
    }
    operation
}

fn add_paths(paths: &mut Map<String, Value>, kind: &Kind, schema: &str) {
    let id = |verb: &str| {
        let scope = if kind.namespaced { "Namespaced" } else { "" };
        format!("{verb}{scope}{}", kind.kind)
    };
    let (collection, object) = if kind.namespaced {
        (
            kind.collection_path(Some("{namespace}")),
            kind.object_path("{namespace}", "{name}"),
        )
    } else {
        (kind.collection_path(None), kind.object_path("", "{name}"))
    };
    let scope: Vec<Value> = if kind.namespaced {
        vec![path_parameter("namespace")]
    } else {
        Vec::new()
    };
    let with = |mut parameters: Vec<Value>, extra: Vec<Value>| {
        parameters.extend(extra);
        parameters
    };
    let list_parameters = vec![
        query("labelSelector", "Only objects whose labels match."),
        query("fieldSelector", "Only objects whose fields match."),
        query("resourceVersion", "Where a watch starts."),
        query("watch", "Watch for changes instead of listing."),
        query("timeoutSeconds", "How long a list or watch may take."),
        query("limit", "The most objects one page holds."),
        query("continue", "The token of the next page."),
    ];
    paths.insert(
        collection,
        json!({
            "get": operation(kind, "list", &id("list"), schema, with(scope.clone(), list_parameters.clone())),
            "post": operation(kind, "post", &id("create"), schema, with(scope.clone(), write_parameters())),
        }),
    );
    let named = with(scope.clone(), vec![path_parameter("name")]);
    paths.insert(
        object.clone(),
        json!({
            "get": operation(kind, "get", &id("read"), schema, named.clone()),
            "put": operation(kind, "put", &id("replace"), schema, with(named.clone(), write_parameters())),
            "patch": operation(kind, "patch", &id("patch"), schema, with(named.clone(), {
                let mut parameters = write_parameters();
                parameters.push(query("force", "Server-side apply: take over fields other managers own."));
                parameters
            })),
            "delete": operation(kind, "delete", &id("delete"), schema, named.clone()),
        }),
    );
    if kind.subresources.status {
        paths.insert(
            format!("{object}/status"),
            json!({
                "get": operation(kind, "get", &id("read"), schema, named.clone()),
                "put": operation(kind, "put", &id("replace"), schema, with(named.clone(), write_parameters())),
                "patch": operation(kind, "patch", &id("patch"), schema, with(named.clone(), write_parameters())),
            }),
        );
    }
    if kind.namespaced {
        paths.insert(
            kind.collection_path(None),
            json!({"get": operation(kind, "list", &format!("list{}ForAllNamespaces", kind.kind), schema, list_parameters)}),
        );
    }
    if is_pods(kind) {
        paths.insert(
            format!("{object}/log"),
            json!({"get": {"operationId": "readNamespacedPodLog", "x-kubernetes-action": "get",
                           "parameters": named, "responses": {"200": {"description": "OK"}}}}),
        );
    }
}

/// The group version a path under `/openapi/v3/` names, for routing.
pub fn is_document(path: &str) -> bool {
    group_versions()
        .iter()
        .copied()
        .any(|(group, version)| document_path(group, version) == path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::kinds::group_version;

    #[test]
    fn every_kind_has_a_schema_and_a_patch_operation_with_field_validation() {
        let served: Vec<String> = group_versions()
            .iter()
            .copied()
            .map(|(g, v)| group_version(g, v))
            .collect();
        assert_eq!(
            served,
            [
                "v1",
                "apps/v1",
                "events.k8s.io/v1",
                "node.k8s.io/v1",
                "discovery.k8s.io/v1",
                "policy/v1",
                "autoscaling/v2",
                "autoscaling/v1",
                "storage.k8s.io/v1",
                "rbac.authorization.k8s.io/v1",
                "networking.k8s.io/v1",
                "coordination.k8s.io/v1",
                "scheduling.k8s.io/v1"
            ]
        );
        let index = index();
        for path in [
            "api/v1",
            "apis/apps/v1",
            "apis/events.k8s.io/v1",
            "apis/node.k8s.io/v1",
            "apis/policy/v1",
            "apis/storage.k8s.io/v1",
        ] {
            let url = index["paths"][path]["serverRelativeURL"].as_str().unwrap();
            assert!(url.starts_with(&format!("/openapi/v3/{path}?hash=")), "{url}");
            assert!(is_document(path));
        }
        for kind in KINDS {
            let path = if kind.group.is_empty() {
                format!("api/{}", kind.version)
            } else {
                format!("apis/{}/{}", kind.group, kind.version)
            };
            let document = group_version_document(&path).unwrap();
            let object = if kind.namespaced {
                kind.object_path("{namespace}", "{name}")
            } else {
                kind.object_path("", "{name}")
            };
            let patch = &document["paths"][&object]["patch"];
            assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], kind.kind, "{object}");
            let names: Vec<&str> = patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert!(names.contains(&"fieldValidation"), "{object}: {names:?}");
            let schemas = document["components"]["schemas"].as_object().unwrap();
            let schema = schemas
                .values()
                .find(|s| s["x-kubernetes-group-version-kind"][0]["kind"] == kind.kind)
                .unwrap_or_else(|| panic!("no schema of {}", kind.kind));
            assert!(schema["properties"]["metadata"].is_object(), "{}", kind.kind);
            assert!(!schema["description"].as_str().unwrap_or_default().is_empty());
        }
        let core = group_version_document("api/v1").unwrap();
        let container = &core["components"]["schemas"]["io.k8s.api.core.v1.Container"];
        assert_eq!(
            container["properties"]["livenessProbe"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.Probe"
        );
        assert_eq!(
            core["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]["x-kubernetes-patch-merge-key"],
            "name"
        );
        assert_eq!(container["properties"]["env"]["x-kubernetes-patch-strategy"], "merge");
        assert!(group_version_document("apis/batch/v1").is_none());

        let v2 = v2();
        assert_eq!(v2["swagger"], "2.0");
        let deployment = &v2["definitions"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(deployment["x-kubernetes-group-version-kind"][0]["kind"], "Deployment");
        assert_eq!(
            v2["definitions"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]["items"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.Container"
        );
        let patch = &v2["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        let parameters = patch["parameters"].as_array().unwrap();
        assert!(
            parameters
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["type"] == "string")
        );
        assert!(parameters.iter().any(|p| p["in"] == "body"));
        assert!(!v2.to_string().contains("#/components/"));
    }
}
