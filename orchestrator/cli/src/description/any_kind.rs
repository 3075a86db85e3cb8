//! `berth describe` of a kind without a describer of its own: the metadata, then
//! the spec and status as YAML, much as kubectl describes a custom resource.

use super::text::{Text, meta_lines};
use berth_api::meta::MetaExt;
use berth_api::objects::Object;

pub fn any(object: &Object) -> String {
    let mut text = Text::default();
    let metadata = object.metadata();
    text.line(0, format!("Name:\t{}", metadata.name()));
    if object.is_namespaced() {
        text.line(0, format!("Namespace:\t{}", metadata.namespace()));
    }
    meta_lines(&mut text, metadata);
    text.line(0, format!("API Version:\t{}", object.descriptor().api_version()));
    text.line(0, format!("Kind:\t{}", object.kind()));
    let value = object.to_value();
    for (field, title) in [("spec", "Spec"), ("status", "Status")] {
        let Some(section) = value
            .get(field)
            .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
        else {
            continue;
        };
        text.line(0, format!("{title}:"));
        let yaml = serde_yaml_ng::to_string(section).unwrap_or_default();
        for line in yaml.lines() {
            text.line(1, line);
        }
    }
    text.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn metadata_then_spec_and_status() {
        let namespace = Object::from_value(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "dev", "labels": {"team": "a"}}, "status": {"phase": "Active"}}))
        .unwrap();
        let text = any(&namespace);
        assert!(text.starts_with("Name:"), "{text}");
        assert!(text.contains("team=a"), "{text}");
        assert!(!text.contains("Namespace:"), "cluster-scoped: {text}");
        assert!(text.contains("Kind:         Namespace\n"), "{text}");
        assert!(!text.contains("Spec:"), "an empty spec: {text}");
        assert!(text.ends_with("Status:\n  phase: Active\n"), "{text}");
    }
}
