//! What every object carries, as Kubernetes spells it: `apiVersion`, `kind` and
//! `metadata`. `metadata.resourceVersion` is the store's mod_revision of the object.
//!
//! The types are Kubernetes' own (from `k8s-openapi`), where every field is optional;
//! [`MetaExt`] reads the ones berth uses as plain values, and
//! [`selector_matches`] evaluates a label selector as Kubernetes does.

use std::collections::BTreeMap;

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    Condition, LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference, Time,
};

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// The fields of [`ObjectMeta`] as berth reads them: absent is empty (or zero).
pub trait MetaExt {
    fn name(&self) -> &str;
    fn namespace(&self) -> &str;
    fn uid(&self) -> &str;
    fn resource_version(&self) -> &str;
    fn generation(&self) -> i64;
    fn labels(&self) -> &BTreeMap<String, String>;
    fn annotations(&self) -> &BTreeMap<String, String>;
    fn owner_references(&self) -> &[OwnerReference];
    fn finalizers(&self) -> &[String];
    /// `deletionTimestamp` is set: the object is going away.
    fn is_deleting(&self) -> bool;
    fn labels_mut(&mut self) -> &mut BTreeMap<String, String>;
    fn annotations_mut(&mut self) -> &mut BTreeMap<String, String>;
    fn owner_references_mut(&mut self) -> &mut Vec<OwnerReference>;
}

impl MetaExt for ObjectMeta {
    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or_default()
    }

    fn uid(&self) -> &str {
        self.uid.as_deref().unwrap_or_default()
    }

    fn resource_version(&self) -> &str {
        self.resource_version.as_deref().unwrap_or_default()
    }

    fn generation(&self) -> i64 {
        self.generation.unwrap_or_default()
    }

    fn labels(&self) -> &BTreeMap<String, String> {
        self.labels.as_ref().unwrap_or(&NO_LABELS)
    }

    fn annotations(&self) -> &BTreeMap<String, String> {
        self.annotations.as_ref().unwrap_or(&NO_LABELS)
    }

    fn owner_references(&self) -> &[OwnerReference] {
        self.owner_references.as_deref().unwrap_or_default()
    }

    fn finalizers(&self) -> &[String] {
        self.finalizers.as_deref().unwrap_or_default()
    }

    fn is_deleting(&self) -> bool {
        self.deletion_timestamp.is_some()
    }

    fn labels_mut(&mut self) -> &mut BTreeMap<String, String> {
        self.labels.get_or_insert_default()
    }

    fn annotations_mut(&mut self) -> &mut BTreeMap<String, String> {
        self.annotations.get_or_insert_default()
    }

    fn owner_references_mut(&mut self) -> &mut Vec<OwnerReference> {
        self.owner_references.get_or_insert_default()
    }
}

/// Metadata with a name and, for namespaced kinds, a namespace (empty: none).
pub fn named(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
        ..Default::default()
    }
}

/// A selector of exactly these labels (`matchLabels`).
pub fn match_labels(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        match_expressions: None,
    }
}

/// Whether `labels` satisfy every term of `selector` (`matchLabels` and
/// `matchExpressions` with `In`, `NotIn`, `Exists`, `DoesNotExist`). An empty
/// selector matches everything, as in Kubernetes; callers that must not adopt
/// everything refuse empty selectors when they are written.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let plain = selector.match_labels.iter().flatten();
    if !plain.into_iter().all(|(k, v)| labels.get(k) == Some(v)) {
        return false;
    }
    selector.match_expressions.iter().flatten().all(|term| {
        let values = term.values.as_deref().unwrap_or_default();
        let value = labels.get(&term.key);
        match term.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    })
}

/// Whether the selector has no terms at all.
pub fn selector_is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && selector.match_expressions.as_ref().is_none_or(Vec::is_empty)
}

/// The selector in the text form of `?labelSelector=` and `kubectl get -o wide`
/// (`app=web,tier in (a,b),!canary`).
pub fn selector_text(selector: &LabelSelector) -> String {
    let mut terms: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for term in selector.match_expressions.iter().flatten() {
        let values = term.values.as_deref().unwrap_or_default().join(",");
        terms.push(match term.operator.as_str() {
            "In" => format!("{} in ({values})", term.key),
            "NotIn" => format!("{} notin ({values})", term.key),
            "Exists" => term.key.clone(),
            "DoesNotExist" => format!("!{}", term.key),
            other => format!("{} {other} ({values})", term.key),
        });
    }
    terms.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn selectors_match_labels_and_expressions() {
        let term = |key: &str, operator: &str, values: &[&str]| LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: Some(values.iter().map(ToString::to_string).collect()),
        };
        let selector = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                term("tier", "In", &["a", "b"]),
                term("canary", "DoesNotExist", &[]),
                term("zone", "NotIn", &["x"]),
            ]),
        };
        assert!(selector_matches(&selector, &labels(&[("app", "web"), ("tier", "a")])));
        assert!(!selector_matches(&selector, &labels(&[("app", "web"), ("tier", "c")])));
        assert!(!selector_matches(&selector, &labels(&[("app", "api"), ("tier", "a")])));
        let canary = labels(&[("app", "web"), ("tier", "b"), ("canary", "1")]);
        assert!(!selector_matches(&selector, &canary));
        assert!(!selector_matches(
            &selector,
            &labels(&[("app", "web"), ("tier", "a"), ("zone", "x")])
        ));
        assert_eq!(selector_text(&selector), "app=web,tier in (a,b),!canary,zone notin (x)");
        assert!(selector_is_empty(&LabelSelector::default()));
        assert!(selector_matches(&LabelSelector::default(), &labels(&[])));
        let unknown = LabelSelector {
            match_expressions: Some(vec![term("app", "Near", &["web"])]),
            ..Default::default()
        };
        assert!(!selector_matches(&unknown, &labels(&[("app", "web")])));
    }

    #[test]
    fn absent_fields_read_as_empty() {
        let mut meta = named("", "n1");
        assert_eq!((meta.name(), meta.namespace(), meta.uid()), ("n1", "", ""));
        assert!(meta.labels().is_empty() && meta.owner_references().is_empty());
        meta.labels_mut().insert("a".into(), "b".into());
        assert_eq!(meta.labels, Some(labels(&[("a", "b")])));
        assert_eq!(named("dev", "p").namespace, Some("dev".into()));
    }
}
