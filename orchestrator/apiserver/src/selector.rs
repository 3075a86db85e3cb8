//! The `labelSelector` and `fieldSelector` query parameters of lists and watches, with
//! Kubernetes' syntax: `app=web,tier!=db,canary,!legacy,env in (a,b),zone notin (x)`
//! for labels; `metadata.name=web,spec.nodeName!=n1` for the few fields each kind
//! indexes.

use std::collections::BTreeMap;

use serde_json::Value;

use super::route::Kind;
use super::status::lookup;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    DoesNotExist(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            // As in Kubernetes, an object without the label matches `!=` and `notin`.
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
            Requirement::In(k, values) => labels.get(k).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(k, values) => labels.get(k).is_none_or(|v| !values.contains(v)),
        }
    }
}

/// Every requirement must hold; no requirements select everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

impl LabelSelector {
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let mut requirements = Vec::new();
        if text.trim().is_empty() {
            return Ok(LabelSelector { requirements });
        }
        for term in split_outside_parentheses(text) {
            requirements.push(parse_requirement(term.trim()).map_err(|why| {
                format!(
                    "unable to parse requirement {:?} of label selector {text:?}: {why}",
                    term.trim()
                )
            })?);
        }
        Ok(LabelSelector { requirements })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }
}

fn split_outside_parentheses(text: &str) -> Vec<&str> {
    let (mut terms, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
}

fn parse_requirement(term: &str) -> Result<Requirement, String> {
    if term.is_empty() {
        return Err("empty requirement".into());
    }
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(label_key(key.trim())?));
    }
    if let Some((head, values)) = term.split_once('(') {
        let values = values.strip_suffix(')').ok_or("a set of values must end with ')'")?;
        let values = values
            .split(',')
            .map(|v| label_value(v.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut words = head.split_whitespace();
        let (key, operator) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
        if words.next().is_some() {
            return Err("expected `key in (values)` or `key notin (values)`".into());
        }
        return match operator {
            "in" => Ok(Requirement::In(label_key(key)?, values)),
            "notin" => Ok(Requirement::NotIn(label_key(key)?, values)),
            other => Err(format!("unknown set operator {other:?}; expected in or notin")),
        };
    }
    for (operator, negated) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = term.split_once(operator) {
            let (key, value) = (label_key(key.trim())?, label_value(value.trim())?);
            return Ok(if negated {
                Requirement::NotEquals(key, value)
            } else {
                Requirement::Equals(key, value)
            });
        }
    }
    Ok(Requirement::Exists(label_key(term)?))
}

fn label_key(key: &str) -> Result<String, String> {
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid {
        Ok(key.to_string())
    } else {
        Err(format!("{key:?} is not a valid label key"))
    }
}

fn label_value(value: &str) -> Result<String, String> {
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Ok(value.to_string())
    } else {
        Err(format!("{value:?} is not a valid label value"))
    }
}

/// `field=value` (or `==`) and `field!=value` terms over the fields a kind indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// (field path, value, negated)
    pub terms: Vec<(String, String, bool)>,
}

/// The fields every kind can be selected by; each kind lists its own besides.
const COMMON_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

impl FieldSelector {
    pub fn parse(text: &str, kind: &Kind) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        if text.trim().is_empty() {
            return Ok(FieldSelector { terms });
        }
        let allowed: Vec<&str> = COMMON_FIELDS.iter().chain(kind.field_selectors).copied().collect();
        for term in text.split(',') {
            let term = term.trim();
            let (field, value, negated) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, v, false)
            } else {
                return Err(format!(
                    "invalid field selector {text:?}: {term:?} is not field=value or field!=value"
                ));
            };
            let field = field.trim();
            if !allowed.contains(&field) {
                let quoted: Vec<String> = allowed.iter().map(|f| format!("{f:?}")).collect();
                return Err(format!(
                    "{field:?} is not a known field selector: only {}",
                    quoted.join(", ")
                ));
            }
            terms.push((field.to_string(), value.trim().to_string(), negated));
        }
        Ok(FieldSelector { terms })
    }

    /// Whether the object's fields satisfy every term; an absent field reads as "".
    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|(field, value, negated)| {
            // An event's `source` is its reporting component.
            let path = if field == "source" {
                "source.component"
            } else {
                field.as_str()
            };
            let actual = match lookup(object, path) {
                Some(Value::String(text)) => text.clone(),
                None | Some(Value::Null) => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == *value) != *negated
        })
    }

    pub fn is_everything(&self) -> bool {
        self.terms.is_empty()
    }
}

/// The label and field selectors of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn matches(&self, object: &Value) -> bool {
        self.fields.matches(object) && (self.labels.is_everything() || self.labels.matches(&labels_of(object)))
    }

    pub fn is_everything(&self) -> bool {
        self.labels.is_everything() && self.fields.is_everything()
    }
}

fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::kind;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_equality_and_set_requirements() {
        let s = LabelSelector::parse("app=web, tier!=db,canary,!legacy,env in (a, b),zone notin (x),k==v").unwrap();
        assert_eq!(
            s.requirements,
            vec![
                Requirement::Equals("app".into(), "web".into()),
                Requirement::NotEquals("tier".into(), "db".into()),
                Requirement::Exists("canary".into()),
                Requirement::DoesNotExist("legacy".into()),
                Requirement::In("env".into(), vec!["a".into(), "b".into()]),
                Requirement::NotIn("zone".into(), vec!["x".into()]),
                Requirement::Equals("k".into(), "v".into()),
            ]
        );
        assert!(LabelSelector::parse("").unwrap().is_everything());
        assert!(LabelSelector::parse("app.kubernetes.io/name=web").is_ok());
    }

    #[test]
    fn rejects_malformed_selectors() {
        for bad in ["a=b,", ",", "a b", "a=b c", "env in (a", "env within (a)", "!", "a=(b)"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matches_as_kubernetes_does() {
        let web = labels(&[("app", "web"), ("env", "a"), ("canary", "")]);
        let db = labels(&[("app", "db")]);
        let m = |s: &str, l: &BTreeMap<String, String>| LabelSelector::parse(s).unwrap().matches(l);
        assert!(m("app=web", &web) && !m("app=web", &db));
        assert!(m("app!=db", &web) && m("tier!=db", &web), "absent labels match !=");
        assert!(m("canary", &web) && !m("canary", &db));
        assert!(m("!canary", &db) && !m("!canary", &web));
        assert!(m("env in (a,b)", &web) && !m("env in (a,b)", &db));
        assert!(m("env notin (b)", &web) && m("env notin (b)", &db) && !m("env notin (a)", &web));
        assert!(m("app=web,env=a", &web) && !m("app=web,env=b", &web));
    }

    #[test]
    fn field_selectors_know_their_fields() {
        let pods = kind("pods");
        let pod = json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"nodeName": "n1"}});
        let unscheduled = json!({"metadata": {"name": "q", "namespace": "default"}, "spec": {}});
        let m = |s: &str, o: &Value| FieldSelector::parse(s, pods).unwrap().matches(o);
        assert!(m("metadata.name=p", &pod) && !m("metadata.name=p", &unscheduled));
        assert!(m("spec.nodeName=n1,metadata.namespace==default", &pod));
        assert!(m("spec.nodeName=", &unscheduled) && !m("spec.nodeName!=", &unscheduled));
        assert!(m("spec.nodeName!=n2", &pod));
        let error = FieldSelector::parse("spec.nodeName=n1", kind("deployments")).unwrap_err();
        assert_eq!(
            error,
            "\"spec.nodeName\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
        assert!(FieldSelector::parse("metadata.name", pods).is_err());
    }

    #[test]
    fn filters_combine_both() {
        let pods = kind("pods");
        let filter = Filter {
            labels: LabelSelector::parse("app=web").unwrap(),
            fields: FieldSelector::parse("metadata.name=p", pods).unwrap(),
        };
        assert!(filter.matches(&json!({"metadata": {"name": "p", "labels": {"app": "web"}}})));
        assert!(!filter.matches(&json!({"metadata": {"name": "p", "labels": {"app": "db"}}})));
        assert!(!filter.matches(&json!({"metadata": {"name": "q", "labels": {"app": "web"}}})));
        assert!(Filter::default().is_everything());
    }
}
