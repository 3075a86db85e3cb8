//! An applied configuration merged into the live object: every field the
//! configuration names takes its value, every other field stays. Objects merge field
//! by field; keyed lists item by item (an item the configuration names merges into
//! the live item of the same key); sets gain the configuration's items; atomic values
//! are replaced. A null in the configuration removes the field.
//!
//! Order of list items: the configuration's items in its order, each live item the
//! configuration does not name right after the live item it followed (or first, when
//! it led the live list), so a manager's items keep its order and other managers'
//! items keep their neighbours.

use std::collections::BTreeMap;

use serde_json::Value;

use super::path::PathElement;
use super::schema::{Form, ListType, Node, item_element};
use crate::patch::PatchSchema;

/// `config` merged into `live`, objects of the kind `schema` describes. The
/// configuration's keyed lists must name every item (see `applied_fields`).
pub fn merge(live: &Value, config: &Value, schema: &PatchSchema) -> Value {
    merge_at(Some(live), config, Node::root(schema))
}

fn merge_at(live: Option<&Value>, config: &Value, node: Node<'_>) -> Value {
    let Some(live) = live else {
        return without_nulls(config);
    };
    match (node.form(live), node.form(config)) {
        (Form::Struct | Form::Map, Form::Struct | Form::Map) => {
            let (Value::Object(live_fields), Value::Object(config_fields)) = (live, config) else {
                unreachable!("objects have object forms")
            };
            let mut merged = live_fields.clone();
            for (name, value) in config_fields {
                if value.is_null() {
                    merged.remove(name);
                } else {
                    let field = merge_at(live_fields.get(name), value, node.field(name));
                    merged.insert(name.clone(), field);
                }
            }
            Value::Object(merged)
        }
        (Form::List(list @ (ListType::Map(_) | ListType::Set)), Form::List(same)) if list == same => {
            merge_list(live, config, list, node).unwrap_or_else(|| without_nulls(config))
        }
        _ => without_nulls(config),
    }
}

/// The merged list; `None` when the live list's items cannot be told apart (then the
/// configuration replaces it).
fn merge_list(live: &Value, config: &Value, list: ListType, node: Node<'_>) -> Option<Value> {
    let (live_items, config_items) = (live.as_array()?, config.as_array()?);
    let live_elements: Vec<PathElement> = live_items
        .iter()
        .map(|item| item_element(list, item))
        .collect::<Result<_, _>>()
        .ok()?;
    let config_elements: Vec<PathElement> = config_items
        .iter()
        .map(|item| item_element(list, item))
        .collect::<Result<_, _>>()
        .ok()?;
    let named: BTreeMap<&PathElement, usize> = config_elements.iter().enumerate().map(|(i, e)| (e, i)).collect();
    let mut live_by_element: BTreeMap<&PathElement, &Value> = BTreeMap::new();
    // The live items the configuration does not name, after the named live item they
    // followed (`None`: before every named one).
    let mut followers: BTreeMap<Option<&PathElement>, Vec<&Value>> = BTreeMap::new();
    let mut anchor = None;
    for (element, item) in live_elements.iter().zip(live_items) {
        if live_by_element.insert(element, item).is_some() {
            return None;
        }
        if named.contains_key(element) {
            anchor = Some(element);
        } else {
            followers.entry(anchor).or_default().push(item);
        }
    }
    let mut merged: Vec<Value> = Vec::with_capacity(live_items.len() + config_items.len());
    merged.extend(followers.remove(&None).unwrap_or_default().into_iter().cloned());
    for (element, item) in config_elements.iter().zip(config_items) {
        merged.push(match list {
            ListType::Map(_) => merge_at(live_by_element.get(element).copied(), item, node.items()),
            _ => item.clone(),
        });
        merged.extend(
            followers
                .remove(&Some(element))
                .unwrap_or_default()
                .into_iter()
                .cloned(),
        );
    }
    Some(Value::Array(merged))
}

/// A configuration's value as stored: nulls in objects mean "no value".
pub(crate) fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(name, value)| (name.clone(), without_nulls(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    fn merged(live: Value, config: Value) -> Value {
        merge(&live, &config, &PatchSchema::for_type::<Deployment>())
    }

    fn with_containers(containers: Value) -> Value {
        json!({"spec": {"template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn configured_fields_win_the_rest_stays() {
        let live = json!({"metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
                          "spec": {"replicas": 2, "paused": true}});
        let config = json!({"metadata": {"name": "web", "labels": {"app": "shop", "gone": null}},
                            "spec": {"replicas": 5, "paused": null}});
        assert_eq!(
            merged(live, config),
            json!({"metadata": {"name": "web", "labels": {"app": "shop", "tier": "front"}}, "spec": {"replicas": 5}})
        );
    }

    #[test]
    fn keyed_lists_merge_by_key() {
        let live = with_containers(json!([
            {"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}]},
            {"name": "sidecar", "image": "s"}
        ]));
        let config = with_containers(json!([
            {"name": "a", "image": "y", "env": [{"name": "B", "value": "2"}]},
            {"name": "b", "image": "z"}
        ]));
        assert_eq!(
            merged(live, config),
            with_containers(json!([
                {"name": "a", "image": "y", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "sidecar", "image": "s"},
                {"name": "b", "image": "z"}
            ]))
        );
    }

    #[test]
    fn items_keep_the_configurations_order_and_their_neighbours() {
        let live = with_containers(json!([{"name": "x"}, {"name": "a"}, {"name": "y"}, {"name": "b"}]));
        let config = with_containers(json!([{"name": "b"}, {"name": "a"}]));
        assert_eq!(
            merged(live, config),
            with_containers(json!([{"name": "x"}, {"name": "b"}, {"name": "a"}, {"name": "y"}]))
        );
    }

    #[test]
    fn sets_gain_items_atomic_values_are_replaced() {
        let live = json!({"metadata": {"finalizers": ["a", "b"]},
                          "spec": {"selector": {"matchLabels": {"x": "1", "y": "2"}},
                                   "template": {"spec": {"containers": [{"name": "c", "args": ["1", "2"]}]}}}});
        let config = json!({"metadata": {"finalizers": ["c", "a"]},
                            "spec": {"selector": {"matchLabels": {"x": "1"}},
                                     "template": {"spec": {"containers": [{"name": "c", "args": ["3"]}]}}}});
        assert_eq!(
            merged(live, config),
            json!({"metadata": {"finalizers": ["c", "a", "b"]},
                   "spec": {"selector": {"matchLabels": {"x": "1"}},
                            "template": {"spec": {"containers": [{"name": "c", "args": ["3"]}]}}}})
        );
    }

    #[test]
    fn new_values_lose_their_nulls() {
        assert_eq!(
            merged(json!({}), json!({"spec": {"replicas": 1, "paused": null}})),
            json!({"spec": {"replicas": 1}})
        );
        // A live list whose items cannot be told apart is replaced.
        let live = with_containers(json!([{"image": "no name"}]));
        let config = with_containers(json!([{"name": "a"}]));
        assert_eq!(merged(live, config.clone()), config);
    }
}
