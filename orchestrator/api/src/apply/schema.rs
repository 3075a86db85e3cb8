//! A kind's shape as server-side apply reads it, over the same schema strategic merge
//! patches use (`PatchSchema`): which objects are structs (named fields), maps or
//! atomic, and how each list merges:
//!
//! - `map`: items are told apart by key fields (`x-kubernetes-list-map-keys`) and
//!   merge item by item: containers by `name`, env by `name`, ...;
//! - `set`: items are scalars, told apart by value (finalizers);
//! - `atomic`: the list is one value, replaced whole (args, tolerations).
//!
//! Kubernetes derives these from its types' `+listType` tags, and, where a list has
//! none, from its patch strategy: a merge strategy with a merge key makes a map keyed
//! by it, a merge strategy without one a set, no strategy an atomic list. berth does
//! the same from `PATCH_STRATEGIES`, with the table below for the lists whose tags say
//! something else. Structs tagged `+structType=atomic` are one value too.
//!
//! Where the schema says nothing (fields it does not know), objects are maps and lists
//! are atomic, as Kubernetes treats values it cannot type.

use serde_json::{Map, Value};

use super::path::PathElement;
use crate::patch::PatchSchema;
use crate::patch::schema::{SchemaForm, SchemaNode};

/// How a list merges and which items are the same item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListType {
    #[default]
    Atomic,
    Set,
    Map(MapKeys),
}

/// The key fields of a `map` list, with the values of keys that have a default (a
/// port's `protocol` is `TCP` when left out, so `{containerPort: 80}` is the item
/// keyed `{"containerPort":80,"protocol":"TCP"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapKeys {
    first: &'static str,
    rest: &'static [&'static str],
    defaults: &'static [(&'static str, &'static str)],
}

impl MapKeys {
    const fn one(name: &'static str) -> MapKeys {
        MapKeys {
            first: name,
            rest: &[],
            defaults: &[],
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.first).chain(self.rest.iter().copied())
    }

    fn default_of(&self, name: &str) -> Option<Value> {
        self.defaults
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| Value::from(*value))
    }
}

/// A list whose `+listType` tags say other than its patch strategy does.
struct ListFact {
    definition: &'static str,
    field: &'static str,
    list: ListType,
}

const PORT_KEYS: ListType = ListType::Map(MapKeys {
    first: "containerPort",
    rest: &["protocol"],
    defaults: &[("protocol", "TCP")],
});

/// Kubernetes 1.32's `core/v1` types: ports are keyed by port and protocol (the merge
/// key is the port alone), spread constraints by topology key and what to do when
/// unsatisfiable, resource claims by name without a patch strategy; host IPs are
/// atomic despite theirs.
const LIST_TYPES: &[ListFact] = &[
    ListFact {
        definition: "io.k8s.api.core.v1.Container",
        field: "ports",
        list: PORT_KEYS,
    },
    ListFact {
        definition: "io.k8s.api.core.v1.EphemeralContainer",
        field: "ports",
        list: PORT_KEYS,
    },
    ListFact {
        definition: "io.k8s.api.core.v1.ServiceSpec",
        field: "ports",
        list: ListType::Map(MapKeys {
            first: "port",
            rest: &["protocol"],
            defaults: &[("protocol", "TCP")],
        }),
    },
    ListFact {
        definition: "io.k8s.api.core.v1.PodSpec",
        field: "topologySpreadConstraints",
        list: ListType::Map(MapKeys {
            first: "topologyKey",
            rest: &["whenUnsatisfiable"],
            defaults: &[],
        }),
    },
    ListFact {
        definition: "io.k8s.api.core.v1.ResourceRequirements",
        field: "claims",
        list: ListType::Map(MapKeys::one("name")),
    },
    ListFact {
        definition: "io.k8s.api.core.v1.PodStatus",
        field: "hostIPs",
        list: ListType::Atomic,
    },
];

/// Structs tagged `+structType=atomic`: owned and replaced as one value.
const ATOMIC_STRUCTS: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.EndpointAddress",
    "io.k8s.api.core.v1.EndpointPort",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.NodeSelector",
    "io.k8s.api.core.v1.NodeSelectorTerm",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "io.k8s.api.core.v1.ScopeSelector",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.SecretReference",
    "io.k8s.api.core.v1.TopologySelectorTerm",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
];

/// The list type of `field` of the struct named `definition`, whose strategic merge
/// strategy is `merge` (with `merge_key`).
fn list_type(definition: Option<&str>, field: &str, merge: bool, merge_key: Option<&'static str>) -> ListType {
    if let Some(fact) = LIST_TYPES
        .iter()
        .find(|fact| Some(fact.definition) == definition && fact.field == field)
    {
        return fact.list;
    }
    match (merge, merge_key) {
        (true, Some(key)) => ListType::Map(MapKeys::one(key)),
        (true, None) => ListType::Set,
        (false, _) => ListType::Atomic,
    }
}

/// How a value is walked at one place of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// An object with named fields: a field with members is not itself a member.
    Struct,
    /// An object whose members are all alike (labels), or one the schema does not
    /// know: every member is itself a member of a field set.
    Map,
    List(ListType),
    /// A scalar, an atomic struct or list, or null: one value.
    Leaf,
}

/// A place in a kind's schema during a walk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<'a> {
    at: SchemaNode<'a>,
    /// The list type, when this place is a list.
    list: ListType,
}

impl<'a> Node<'a> {
    pub(crate) fn root(schema: &'a PatchSchema) -> Node<'a> {
        Node {
            at: schema.root(),
            list: ListType::Atomic,
        }
    }

    /// How `value`, found here, is walked. A value of another shape than the schema
    /// says is one value (validation reports it later).
    pub(crate) fn form(self, value: &Value) -> Form {
        let is_atomic = self.at.definition().is_some_and(|name| ATOMIC_STRUCTS.contains(&name));
        match (self.at.form(), value) {
            (SchemaForm::Object { .. }, Value::Object(_)) if is_atomic => Form::Leaf,
            (SchemaForm::Object { has_fields: true, .. }, Value::Object(_)) => Form::Struct,
            (SchemaForm::Object { .. } | SchemaForm::Opaque | SchemaForm::Unknown, Value::Object(_)) => Form::Map,
            (SchemaForm::List, Value::Array(_)) => Form::List(self.list),
            _ => Form::Leaf,
        }
    }

    /// The field `name` of this object (a map's member, an unknown field: what the
    /// schema says about it, perhaps nothing).
    pub(crate) fn field(self, name: &str) -> Node<'a> {
        let definition = self.at.definition();
        let (at, strategy) = self.at.field(name);
        Node {
            at,
            list: list_type(definition, name, strategy.merge, strategy.merge_key),
        }
    }

    /// Whether `name` is a named field of this struct (not a map's member).
    pub(crate) fn declares(self, name: &str) -> bool {
        self.at.declares(name)
    }

    /// Whether this object may have a field `name`: a struct only has its own, unless
    /// it also takes any member.
    pub(crate) fn accepts(self, name: &str) -> bool {
        match self.at.form() {
            SchemaForm::Object {
                has_fields: true,
                has_values: false,
            } => self.at.declares(name),
            _ => true,
        }
    }

    /// The items of this list. Lists of lists are atomic.
    pub(crate) fn items(self) -> Node<'a> {
        Node {
            at: self.at.items(),
            list: ListType::Atomic,
        }
    }
}

/// The element that names `item` in a list of type `list`: its key fields, or for a
/// set, its value.
pub(crate) fn item_element(list: ListType, item: &Value) -> Result<PathElement, String> {
    match list {
        ListType::Set => Ok(PathElement::value(item)),
        ListType::Map(keys) => {
            let Value::Object(fields) = item else {
                return Err(format!(
                    "associative list with keys has an element that is not an object: {item}"
                ));
            };
            let mut key = Map::new();
            for name in keys.names() {
                let value = match fields.get(name) {
                    Some(value) if !value.is_null() => value.clone(),
                    _ => keys.default_of(name).ok_or_else(|| {
                        format!(
                            "associative list with keys has an element that omits key field {name:?} \
                             (and doesn't have default value)"
                        )
                    })?,
                };
                key.insert(name.to_owned(), value);
            }
            Ok(PathElement::key(key))
        }
        ListType::Atomic => Err("an atomic list's items have no names".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::{apps, core};
    use serde_json::json;

    fn node_at<'a>(schema: &'a PatchSchema, path: &[&str]) -> Node<'a> {
        path.iter().fold(Node::root(schema), |node, name| match *name {
            "[]" => node.items(),
            name => node.field(name),
        })
    }

    #[test]
    fn lists_merge_by_their_kubernetes_list_types() {
        let deployment = PatchSchema::for_type::<apps::v1::Deployment>();
        let pod_spec = ["spec", "template", "spec"];
        let at = |rest: &[&str]| {
            let path: Vec<&str> = pod_spec.iter().chain(rest).copied().collect();
            node_at(&deployment, &path).list
        };
        let names = |list: ListType| match list {
            ListType::Map(keys) => keys.names().collect::<Vec<_>>(),
            other => panic!("{other:?} is not a map"),
        };
        assert_eq!(names(at(&["containers"])), ["name"]);
        assert_eq!(names(at(&["containers", "[]", "env"])), ["name"]);
        assert_eq!(names(at(&["containers", "[]", "ports"])), ["containerPort", "protocol"]);
        assert_eq!(names(at(&["containers", "[]", "volumeMounts"])), ["mountPath"]);
        assert_eq!(names(at(&["containers", "[]", "resources", "claims"])), ["name"]);
        assert_eq!(
            names(at(&["topologySpreadConstraints"])),
            ["topologyKey", "whenUnsatisfiable"]
        );
        assert_eq!(at(&["containers", "[]", "args"]), ListType::Atomic);
        assert_eq!(at(&["tolerations"]), ListType::Atomic);
        assert_eq!(node_at(&deployment, &["metadata", "finalizers"]).list, ListType::Set);
        assert_eq!(
            names(node_at(&deployment, &["metadata", "ownerReferences"]).list),
            ["uid"]
        );
        let pod = PatchSchema::for_type::<core::v1::Pod>();
        assert_eq!(node_at(&pod, &["status", "hostIPs"]).list, ListType::Atomic);
        assert_eq!(names(node_at(&pod, &["status", "podIPs"]).list), ["ip"]);
        let service = PatchSchema::for_type::<core::v1::Service>();
        assert_eq!(names(node_at(&service, &["spec", "ports"]).list), ["port", "protocol"]);
    }

    #[test]
    fn forms_follow_the_schema_and_the_value() {
        let deployment = PatchSchema::for_type::<apps::v1::Deployment>();
        let object = json!({"a": 1});
        assert_eq!(node_at(&deployment, &["spec"]).form(&object), Form::Struct);
        assert_eq!(node_at(&deployment, &["metadata", "labels"]).form(&object), Form::Map);
        assert_eq!(node_at(&deployment, &["spec", "selector"]).form(&object), Form::Leaf);
        assert_eq!(node_at(&deployment, &["spec", "replicas"]).form(&json!(3)), Form::Leaf);
        // A value of the wrong shape is one value; so is null.
        assert_eq!(node_at(&deployment, &["spec"]).form(&json!(3)), Form::Leaf);
        assert_eq!(node_at(&deployment, &["spec"]).form(&Value::Null), Form::Leaf);
        // Where the schema knows nothing: objects are maps, lists atomic.
        let unknown = node_at(&deployment, &["spec", "nonsense"]);
        assert_eq!(unknown.form(&object), Form::Map);
        assert_eq!(unknown.form(&json!([1])), Form::Leaf);
        // Quantities and int-or-strings are scalars.
        let limits = [
            "spec",
            "template",
            "spec",
            "containers",
            "[]",
            "resources",
            "limits",
            "cpu",
        ];
        assert_eq!(node_at(&deployment, &limits).form(&json!("1")), Form::Leaf);
        let surge = ["spec", "strategy", "rollingUpdate", "maxSurge"];
        assert_eq!(node_at(&deployment, &surge).form(&json!("25%")), Form::Leaf);
    }

    #[test]
    fn structs_accept_only_their_fields() {
        let deployment = PatchSchema::for_type::<apps::v1::Deployment>();
        let spec = node_at(&deployment, &["spec"]);
        assert!(spec.accepts("replicas") && spec.declares("replicas"));
        assert!(!spec.accepts("replicaz"));
        let labels = node_at(&deployment, &["metadata", "labels"]);
        assert!(labels.accepts("anything") && !labels.declares("anything"));
    }

    #[test]
    fn items_are_named_by_keys_with_defaults() {
        let ports = PORT_KEYS;
        assert_eq!(
            item_element(ports, &json!({"containerPort": 80})),
            Ok(PathElement::from_fields_v1(r#"k:{"containerPort":80,"protocol":"TCP"}"#).unwrap())
        );
        assert_eq!(
            item_element(ports, &json!({"containerPort": 53, "protocol": "UDP", "name": "dns"})),
            Ok(PathElement::from_fields_v1(r#"k:{"containerPort":53,"protocol":"UDP"}"#).unwrap())
        );
        let by_name = ListType::Map(MapKeys::one("name"));
        assert_eq!(
            item_element(by_name, &json!({"image": "x"})).unwrap_err(),
            r#"associative list with keys has an element that omits key field "name" (and doesn't have default value)"#
        );
        assert!(item_element(by_name, &json!("c")).is_err());
        assert_eq!(
            item_element(ListType::Set, &json!("a")),
            Ok(PathElement::value(&json!("a")))
        );
    }

    /// Every definition the tables name is one of Kubernetes' (a misspelt name would
    /// silently do nothing).
    #[test]
    fn the_tables_name_real_definitions() {
        use schemars::SchemaGenerator;
        let mut generator = SchemaGenerator::default();
        generator.subschema_for::<core::v1::Pod>();
        generator.subschema_for::<core::v1::Service>();
        generator.subschema_for::<core::v1::Endpoints>();
        generator.subschema_for::<core::v1::Event>();
        generator.subschema_for::<core::v1::ResourceQuota>();
        generator.subschema_for::<core::v1::PersistentVolume>();
        generator.subschema_for::<apps::v1::Deployment>();
        generator.subschema_for::<k8s_openapi::api::storage::v1::StorageClass>();
        let definitions = generator.take_definitions(true);
        for name in ATOMIC_STRUCTS
            .iter()
            .chain(LIST_TYPES.iter().map(|fact| &fact.definition))
        {
            assert!(definitions.contains_key(*name), "{name}");
        }
        for fact in LIST_TYPES {
            let fields = &definitions[fact.definition]["properties"];
            assert!(fields.get(fact.field).is_some(), "{}.{}", fact.definition, fact.field);
        }
    }
}
