//! Manifests: files, directories or stdin of YAML (several documents split by `---`)
//! or JSON, read into objects and validated before anything is sent, so a bad
//! document stops the whole command and names its field. A field the kind does not
//! define (a typo such as `spec.replicaz`) is refused, as kubectl's default
//! `--validate=strict` refuses it, rather than silently dropped.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::kinds::all_kinds;
use berth_api::kinds::by_kind;
use berth_api::objects::Object;
use berth_api::validation::{FieldError, Parsed, parse_value, unknown_fields};

/// One document of a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The file it came from (`-` for stdin).
    pub source: String,
    /// Its position in the file, counting from 1; documents of a `kind: List` share it.
    pub index: usize,
    pub value: Value,
}

impl Document {
    /// `deployment "web"` when the document says what it is, else where it is.
    pub fn label(&self) -> String {
        let kind = self.value.get("kind").and_then(Value::as_str).unwrap_or_default();
        let name = self
            .value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind.is_empty() || name.is_empty() {
            return format!("{} document {}", self.source, self.index);
        }
        let singular = all_kinds()
            .into_iter()
            .find(|k| k.kind == kind)
            .map_or_else(|| kind.to_ascii_lowercase(), |k| k.singular.to_string());
        format!("{singular} {name:?}")
    }
}

/// Reads every `-f` argument: a file, a directory (its `.yaml`, `.yml` and `.json`
/// files, sorted by name, not recursing) or `-` for stdin.
pub fn load(paths: &[String]) -> Result<Vec<Document>, String> {
    let mut documents = Vec::new();
    for path in paths {
        if path == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| format!("reading the manifest from stdin: {e}"))?;
            let is_json = text.trim_start().starts_with(['{', '[']);
            documents.extend(parse_documents("-", &text, is_json)?);
            continue;
        }
        let metadata = std::fs::metadata(path).map_err(|e| format!("the path {path:?} does not exist: {e}"))?;
        let files = if metadata.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| format!("reading the directory {path:?}: {e}"))?
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|p| p.is_file() && manifest_extension(p).is_some())
                .collect();
            files.sort();
            files
        } else {
            vec![Path::new(path).to_path_buf()]
        };
        for file in files {
            let source = file.display().to_string();
            let text = std::fs::read_to_string(&file).map_err(|e| format!("reading {source:?}: {e}"))?;
            let is_json = manifest_extension(&file) == Some("json");
            documents.extend(parse_documents(&source, &text, is_json)?);
        }
    }
    Ok(documents)
}

fn manifest_extension(path: &Path) -> Option<&'static str> {
    match path.extension()?.to_str()? {
        "yaml" | "yml" => Some("yaml"),
        "json" => Some("json"),
        _ => None,
    }
}

/// Splits a file into its documents; empty documents are skipped (but counted, so
/// an index matches what the user sees in the file), a `kind: List` is unpacked.
pub fn parse_documents(source: &str, text: &str, is_json: bool) -> Result<Vec<Document>, String> {
    let mut values = Vec::new();
    if is_json {
        for (i, value) in serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .enumerate()
        {
            let value = value.map_err(|e| format!("{source}: document {}: not valid JSON: {e}", i + 1))?;
            values.push((i + 1, value));
        }
    } else {
        for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let value = Value::deserialize(document)
                .map_err(|e| format!("{source}: document {}: not valid YAML: {e}", i + 1))?;
            values.push((i + 1, value));
        }
    }
    let mut documents = Vec::new();
    for (index, value) in values {
        match value {
            Value::Null => {}
            Value::Object(_) if value.get("kind").and_then(Value::as_str) == Some("List") => {
                let items = value
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                documents.extend(items.into_iter().map(|value| Document {
                    source: source.to_string(),
                    index,
                    value,
                }));
            }
            Value::Object(_) => documents.push(Document {
                source: source.to_string(),
                index,
                value,
            }),
            other => {
                return Err(format!(
                    "{source}: document {index}: expected an object with apiVersion, kind and metadata, found {}",
                    type_name(&other)
                ));
            }
        }
    }
    Ok(documents)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Gives a namespaced object its namespace (the manifest's, else `-n`'s, else
/// `default`) and checks the object; every problem is one printable line. A field
/// the kind does not define is a problem (kubectl's `--validate=strict`), named
/// with its path, beside whatever else is wrong with the object.
pub fn prepare(document: &Document, namespace_flag: Option<&str>) -> Result<Object, Vec<String>> {
    let label = document.label();
    let mut value = document.value.clone();
    set_namespace(&mut value, namespace_flag).map_err(|e| vec![format!("{label}: {e}")])?;
    let unknown_line = |field: &String| format!("{label}: unknown field {field:?}");
    let invalid_line = |e: &FieldError| match e.field.as_str() {
        "<document>" => format!("{label}: {}", e.message),
        _ => format!("{label}: {e}"),
    };
    match parse_value(value.clone()) {
        Ok(Parsed { object, unknown_fields }) if unknown_fields.is_empty() => Ok(object),
        Ok(Parsed { unknown_fields, .. }) => Err(unknown_fields.iter().map(unknown_line).collect()),
        Err(errors) => {
            // An invalid object may have a misspelt field behind its error (`containerz`
            // behind "containers: required"): both are named.
            let unknown = Object::from_value(value.clone())
                .map(|object| unknown_fields(&value, &object.to_value()))
                .unwrap_or_default();
            Err(unknown
                .iter()
                .map(unknown_line)
                .chain(errors.iter().map(invalid_line))
                .collect())
        }
    }
}

fn set_namespace(value: &mut Value, namespace_flag: Option<&str>) -> Result<(), String> {
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default();
    let is_namespaced = by_kind(kind).is_some_and(|k| k.namespaced);
    if !is_namespaced {
        return Ok(());
    }
    let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Ok(()); // validation names the missing metadata
    };
    let given = metadata.get("namespace").and_then(Value::as_str).unwrap_or_default();
    match (given, namespace_flag) {
        ("", flag) => {
            metadata.insert("namespace".into(), Value::from(flag.unwrap_or("default")));
        }
        (given, Some(flag)) if given != flag => {
            return Err(format!(
                "the namespace from the provided object {given:?} does not match the namespace {flag:?}. \
                 You must pass '--namespace={given}' to perform this operation."
            ));
        }
        _ => {}
    }
    Ok(())
}

/// Every object of the manifests, or every line of what is wrong with them.
pub fn prepare_all(documents: &[Document], namespace_flag: Option<&str>) -> Result<Vec<Object>, Vec<String>> {
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for document in documents {
        match prepare(document, namespace_flag) {
            Ok(object) => objects.push(object),
            Err(lines) => errors.extend(lines),
        }
    }
    if errors.is_empty() { Ok(objects) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::meta::MetaExt;

    const TWO: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
# a comment only
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: http
        command: [python3, -m, http.server]
";

    #[test]
    fn yaml_documents_in_order_skipping_empty_ones() {
        let documents = parse_documents("app.yaml", TWO, false).unwrap();
        assert_eq!(documents.len(), 2);
        assert_eq!(documents[0].index, 1);
        assert_eq!(documents[1].index, 3, "the empty document still counts");
        assert_eq!(documents[1].label(), "deployment \"web\"");
        let objects = prepare_all(&documents, None).unwrap();
        assert_eq!(
            (
                objects[1].kind(),
                objects[1].metadata().namespace(),
                objects[1].metadata().name()
            ),
            ("Deployment", "shop", "web")
        );
    }

    #[test]
    fn a_bad_document_names_its_index() {
        let broken = format!("{TWO}---\nkind: [unclosed\n");
        let err = parse_documents("app.yaml", &broken, false).unwrap_err();
        assert!(err.starts_with("app.yaml: document 4: not valid YAML"), "{err}");
        let scalar = format!("{TWO}---\njust a string\n");
        let err = parse_documents("app.yaml", &scalar, false).unwrap_err();
        assert!(err.starts_with("app.yaml: document 4: expected an object"), "{err}");
        let err = parse_documents("x.json", "{\"kind\":\"Pod\"} {oops", true).unwrap_err();
        assert!(err.starts_with("x.json: document 2: not valid JSON"), "{err}");
    }

    #[test]
    fn json_and_lists() {
        let text = r#"{"kind":"List","apiVersion":"v1","items":[
            {"kind":"Namespace","apiVersion":"v1","metadata":{"name":"a"}},
            {"kind":"Namespace","apiVersion":"v1","metadata":{"name":"b"}}]}"#;
        let documents = parse_documents("l.json", text, true).unwrap();
        assert_eq!(documents.len(), 2);
        assert_eq!(documents[1].value["metadata"]["name"], "b");
    }

    #[test]
    fn validation_errors_name_the_object_and_field() {
        let bad = TWO.replace("replicas: 2", "replicas: -1");
        let documents = parse_documents("app.yaml", &bad, false).unwrap();
        let errors = prepare_all(&documents, None).unwrap_err();
        assert_eq!(errors, ["deployment \"web\": spec.replicas: must be 0 or more, not -1"]);

        let nameless = "apiVersion: v1\nkind: Pod\nmetadata: {}\nspec: {containers: [{name: a, command: [x]}]}\n";
        let documents = parse_documents("pod.yaml", nameless, false).unwrap();
        assert_eq!(
            prepare_all(&documents, None).unwrap_err(),
            ["pod.yaml document 1: metadata.name: required"]
        );
    }

    #[test]
    fn unknown_fields_are_refused_naming_each_field() {
        let typos = TWO
            .replace("  replicas: 2", "  replicaz: 2")
            .replace("      - name: http\n", "      - name: http\n        portz: [8000]\n");
        let documents = parse_documents("app.yaml", &typos, false).unwrap();
        assert_eq!(
            prepare_all(&documents, None).unwrap_err(),
            [
                "deployment \"web\": unknown field \"spec.replicaz\"",
                "deployment \"web\": unknown field \"spec.template.spec.containers[0].portz\"",
            ]
        );

        let misspelt = TWO.replace("      containers:", "      containerz:");
        let documents = parse_documents("app.yaml", &misspelt, false).unwrap();
        assert_eq!(
            prepare_all(&documents, None).unwrap_err(),
            [
                "deployment \"web\": unknown field \"spec.template.spec.containerz\"",
                "deployment \"web\": spec.template.spec.containers: required: at least one container",
            ],
            "the unknown field is named beside the error it causes"
        );

        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labelz: {a: b}}\n\
                   spec: {containers: [{name: a, command: [x]}]}\n";
        let documents = parse_documents("pod.yaml", pod, false).unwrap();
        assert_eq!(
            prepare_all(&documents, None).unwrap_err(),
            ["pod \"p\": unknown field \"metadata.labelz\""]
        );
    }

    #[test]
    fn namespaces_from_the_manifest_the_flag_or_default() {
        let pod = |ns: &str| Document {
            source: "p.yaml".into(),
            index: 1,
            value: serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": ns},
                "spec": {"containers": [{"name": "a", "command": ["sleep", "1"]}]}
            }),
        };
        assert_eq!(prepare(&pod(""), None).unwrap().metadata().namespace(), "default");
        assert_eq!(prepare(&pod(""), Some("dev")).unwrap().metadata().namespace(), "dev");
        assert_eq!(prepare(&pod("dev"), Some("dev")).unwrap().metadata().namespace(), "dev");
        let errors = prepare(&pod("prod"), Some("dev")).unwrap_err();
        assert!(errors[0].contains("does not match the namespace \"dev\""), "{errors:?}");
        let node = Document {
            source: "n.yaml".into(),
            index: 1,
            value: serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
        };
        assert_eq!(
            prepare(&node, Some("dev")).unwrap().metadata().namespace(),
            "",
            "nodes have none"
        );
    }
}
