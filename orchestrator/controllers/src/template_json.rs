//! The bytes a pod template is hashed from ([`crate::deployment::template_hash`]).
//!
//! The hash names every ReplicaSet a Deployment made (`<deployment>-<hash>`, the
//! `pod-template-hash` label), so it must not change for a template that did not:
//! a new hash makes every Deployment roll out a new ReplicaSet on the next leader's
//! first pass. The hash was first taken over the JSON of berth's own API types; the
//! types are now Kubernetes' (other field order, other rules for empty values), so
//! the template is written here in that first layout: its fields in their old order,
//! the fields it always wrote written even when absent, the fields it skipped when
//! empty skipped. Fields it did not have follow, sorted by name, and only when not
//! empty (a field that is absent or empty changes no hash).

use serde_json::{Map, Value};

/// The JSON of `template` (a `PodTemplateSpec` as JSON) in the first layout.
pub(crate) fn template_bytes(template: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(template, Shape::Template, &mut out);
    out
}

/// The object types of a template, each with the fields of its first layout.
#[derive(Clone, Copy)]
enum Shape {
    Template,
    Meta,
    OwnerReference,
    PodSpec,
    Container,
    EnvVar,
    ContainerPort,
    Resources,
    Toleration,
    /// Any other value: written as serde_json writes it, object keys sorted.
    Plain,
}

/// What the first layout did with a field.
#[derive(Clone, Copy)]
enum Rule {
    /// Always written; this when absent.
    Always(Empty),
    /// Skipped when absent or empty (`""`, `[]`, `{}`, `0`).
    SkipEmpty,
    /// Skipped only when absent (an `Option`).
    SkipAbsent,
}

#[derive(Clone, Copy)]
enum Empty {
    String,
    Object,
    Array,
    Zero,
}

impl Empty {
    fn value(self) -> Value {
        match self {
            Empty::String => Value::String(String::new()),
            Empty::Object => Value::Object(Map::new()),
            Empty::Array => Value::Array(Vec::new()),
            Empty::Zero => Value::from(0),
        }
    }
}

type Field = (&'static str, Rule, Shape);

fn fields(shape: Shape) -> &'static [Field] {
    use Empty as E;
    use Rule::{Always, SkipAbsent, SkipEmpty};
    use Shape as S;
    match shape {
        S::Template => &[
            ("metadata", Always(E::Object), S::Meta),
            ("spec", Always(E::Object), S::PodSpec),
        ],
        S::Meta => &[
            ("name", Always(E::String), S::Plain),
            ("namespace", SkipEmpty, S::Plain),
            ("uid", SkipEmpty, S::Plain),
            ("labels", SkipEmpty, S::Plain),
            ("annotations", SkipEmpty, S::Plain),
            ("resourceVersion", SkipEmpty, S::Plain),
            ("generation", SkipEmpty, S::Plain),
            ("creationTimestamp", SkipEmpty, S::Plain),
            ("deletionTimestamp", SkipAbsent, S::Plain),
            ("ownerReferences", SkipEmpty, S::OwnerReference),
        ],
        S::OwnerReference => &[
            ("apiVersion", Always(E::String), S::Plain),
            ("kind", Always(E::String), S::Plain),
            ("name", Always(E::String), S::Plain),
            ("uid", Always(E::String), S::Plain),
            ("controller", SkipAbsent, S::Plain),
        ],
        S::PodSpec => &[
            ("containers", Always(E::Array), S::Container),
            ("restartPolicy", Always(E::String), S::Plain),
            ("nodeSelector", SkipEmpty, S::Plain),
            ("tolerations", SkipEmpty, S::Toleration),
            ("terminationGracePeriodSeconds", SkipAbsent, S::Plain),
            ("nodeName", SkipEmpty, S::Plain),
        ],
        S::Container => &[
            ("name", Always(E::String), S::Plain),
            ("image", Always(E::String), S::Plain),
            ("command", SkipEmpty, S::Plain),
            ("args", SkipEmpty, S::Plain),
            ("env", SkipEmpty, S::EnvVar),
            ("workingDir", SkipEmpty, S::Plain),
            ("ports", SkipEmpty, S::ContainerPort),
            ("resources", Always(E::Object), S::Resources),
        ],
        S::EnvVar => &[
            ("name", Always(E::String), S::Plain),
            ("value", Always(E::String), S::Plain),
        ],
        S::ContainerPort => &[
            ("containerPort", Always(E::Zero), S::Plain),
            ("hostPort", SkipAbsent, S::Plain),
            ("name", SkipEmpty, S::Plain),
        ],
        S::Resources => &[("requests", SkipEmpty, S::Plain), ("limits", SkipEmpty, S::Plain)],
        S::Toleration => &[
            ("key", Always(E::String), S::Plain),
            ("operator", Always(E::String), S::Plain),
            ("value", Always(E::String), S::Plain),
            ("effect", Always(E::String), S::Plain),
        ],
        S::Plain => &[],
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(n) => n.as_i64() == Some(0),
        Value::Bool(_) => false,
    }
}

fn scalar(value: &Value, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, value).expect("JSON values serialize");
}

fn write(value: &Value, shape: Shape, out: &mut Vec<u8>) {
    match value {
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, shape, out);
            }
            out.push(b']');
        }
        Value::Object(object) => write_object(object, shape, out),
        Value::Null if !matches!(shape, Shape::Plain) => write_object(&Map::new(), shape, out),
        _ => scalar(value, out),
    }
}

fn write_object(object: &Map<String, Value>, shape: Shape, out: &mut Vec<u8>) {
    let known = fields(shape);
    let mut entries: Vec<(&str, Value, Shape)> = Vec::new();
    for &(name, rule, inner) in known {
        let value = object.get(name);
        match (rule, value) {
            (Rule::Always(empty), None | Some(Value::Null)) => entries.push((name, empty.value(), inner)),
            (Rule::Always(_), Some(value)) => entries.push((name, value.clone(), inner)),
            (Rule::SkipEmpty, Some(value)) if !is_empty(value) => entries.push((name, value.clone(), inner)),
            (Rule::SkipAbsent, Some(value)) if !value.is_null() => entries.push((name, value.clone(), inner)),
            _ => {}
        }
    }
    let mut others: Vec<(&String, &Value)> = object
        .iter()
        .filter(|(name, value)| {
            let is_known = known.iter().any(|(known, _, _)| known == name);
            // An object of a plain value is written whole, as serde_json would.
            matches!(shape, Shape::Plain) || (!is_known && !is_empty(value))
        })
        .collect();
    others.sort_by(|a, b| a.0.cmp(b.0));
    entries.extend(
        others
            .into_iter()
            .map(|(name, value)| (name.as_str(), value.clone(), Shape::Plain)),
    );
    out.push(b'{');
    for (i, (name, value, inner)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        scalar(&Value::from(*name), out);
        out.push(b':');
        write(value, *inner, out);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: Value) -> String {
        String::from_utf8(template_bytes(&value)).unwrap()
    }

    #[test]
    fn templates_are_written_in_the_first_layout() {
        let template = serde_json::json!({
            "metadata": {"labels": {"b": "2", "a": "1"}},
            "spec": {
                "containers": [{"name": "c", "command": ["x"], "imagePullPolicy": "Always", "workingDir": "",
                                "env": [{"name": "E"}], "ports": [{"containerPort": 80, "protocol": "TCP"}]}],
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "dnsPolicy": "ClusterFirst",
                "volumes": [],
            }
        });
        assert_eq!(
            text(template),
            concat!(
                r#"{"metadata":{"name":"","labels":{"a":"1","b":"2"}},"spec":{"containers":[{"name":"c","image":"","#,
                r#""command":["x"],"env":[{"name":"E","value":""}],"ports":[{"containerPort":80,"protocol":"TCP"}],"#,
                r#""resources":{},"imagePullPolicy":"Always"}],"restartPolicy":"","#,
                r#""tolerations":[{"key":"k","operator":"Exists","value":"","effect":""}],"dnsPolicy":"ClusterFirst"}}"#
            )
        );
        assert_eq!(
            text(serde_json::json!({})),
            r#"{"metadata":{"name":""},"spec":{"containers":[],"restartPolicy":""}}"#
        );
    }
}
