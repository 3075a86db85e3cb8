//! A kind's shape as a strategic merge patch needs it: which fields are objects, lists
//! or scalars, which OpenAPI definition each object is, and (from the table in
//! `strategy.rs`) each field's patch strategy. Built once per kind from the JSON schema
//! that `k8s-openapi` (feature `schemars`) generates, whose definitions are named as in
//! Kubernetes' OpenAPI (`io.k8s.api.core.v1.Container`).
//!
//! ```text
//!  schemars::Schema (root + $defs)
//!        │ compile: follow $ref once per definition (recursive definitions are fine),
//!        │          look each field of each named definition up in PATCH_STRATEGIES
//!        ▼
//!  PatchSchema: shapes[] ── Object { definition, fields: name → (shape, strategy), values }
//!                        ├─ List { items }
//!                        └─ Opaque (scalars, and whatever the schema leaves open)
//! ```
//!
//! Where the schema says nothing (unknown fields, `PatchSchema::unknown()`), maps merge
//! and lists are replaced: JSON merge patch semantics, with the directives still honoured.

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;

use super::strategy::{FieldStrategy, strategy_of};

type ShapeId = usize;

#[derive(Debug, Clone)]
enum Shape {
    Object {
        definition: Option<String>,
        fields: BTreeMap<String, Field>,
        /// The shape of every member of a map (`additionalProperties`).
        values: Option<ShapeId>,
    },
    List {
        items: ShapeId,
    },
    Opaque,
}

#[derive(Debug, Clone)]
struct Field {
    shape: ShapeId,
    strategy: FieldStrategy,
}

/// The patch-relevant shape of one kind.
#[derive(Debug, Clone)]
pub struct PatchSchema {
    shapes: Vec<Shape>,
    root: Option<ShapeId>,
}

impl PatchSchema {
    /// The schema of `T`, e.g. `k8s_openapi::api::apps::v1::Deployment`.
    pub fn for_type<T: JsonSchema>() -> Self {
        let schema = SchemaGenerator::default().into_root_schema_for::<T>();
        Self::compile(schema.as_value(), Some(T::schema_name().into_owned()))
    }

    /// The schema a kind's descriptor generates ([`KindDescriptor::schema`]).
    ///
    /// [`KindDescriptor::schema`]: crate::kinds::KindDescriptor::schema
    pub fn for_kind(kind: &crate::kinds::KindDescriptor) -> Self {
        let mut generator = SchemaGenerator::default();
        let mut root = (kind.schema)(&mut generator).as_value().clone();
        if let Value::Object(fields) = &mut root {
            fields.insert("$defs".into(), Value::Object(generator.take_definitions(true)));
        }
        Self::compile(&root, None)
    }

    /// The schema of a root schema with its definitions; the root's definition name is
    /// its `title` (schemars sets it to the type's schema name).
    pub fn from_schema(schema: &Schema) -> Self {
        let root = schema.as_value();
        let name = root.get("title").and_then(Value::as_str).map(str::to_owned);
        Self::compile(root, name)
    }

    /// No schema: every map merges, every list is replaced.
    pub fn unknown() -> Self {
        PatchSchema {
            shapes: Vec::new(),
            root: None,
        }
    }

    fn compile(root: &Value, name: Option<String>) -> Self {
        let mut compiler = Compiler {
            root,
            shapes: Vec::new(),
            by_reference: BTreeMap::new(),
        };
        let root_shape = compiler.compile(root, name);
        PatchSchema {
            shapes: compiler.shapes,
            root: Some(root_shape),
        }
    }

    pub(crate) fn root(&self) -> SchemaNode<'_> {
        SchemaNode {
            schema: self,
            shape: self.root,
        }
    }

    /// The definition name of the object at `path` (field names; lists are passed
    /// through to their elements), e.g. `["spec", "template", "spec", "containers"]` of
    /// a Deployment is `io.k8s.api.core.v1.Container`.
    pub fn definition_at(&self, path: &[&str]) -> Option<&str> {
        self.node_at(path).0.element().definition()
    }

    /// The strategy of the field at `path` (as for `definition_at`).
    pub fn strategy_at(&self, path: &[&str]) -> FieldStrategy {
        self.node_at(path).1
    }

    fn node_at(&self, path: &[&str]) -> (SchemaNode<'_>, FieldStrategy) {
        path.iter()
            .fold((self.root(), FieldStrategy::default()), |(node, _), name| {
                node.element().field(name)
            })
    }
}

/// A position in a `PatchSchema` while a patch walks an object; `shape: None` where the
/// schema has nothing to say.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SchemaNode<'a> {
    schema: &'a PatchSchema,
    shape: Option<ShapeId>,
}

impl<'a> SchemaNode<'a> {
    fn shape(self) -> Option<&'a Shape> {
        self.shape.map(|id| &self.schema.shapes[id])
    }

    fn at(self, shape: Option<ShapeId>) -> Self {
        SchemaNode {
            schema: self.schema,
            shape,
        }
    }

    /// The field `name` of this object (or the value of any member, for a map), with
    /// the field's strategy.
    pub fn field(self, name: &str) -> (Self, FieldStrategy) {
        match self.shape() {
            Some(Shape::Object { fields, values, .. }) => match fields.get(name) {
                Some(field) => (self.at(Some(field.shape)), field.strategy),
                None => (self.at(*values), FieldStrategy::default()),
            },
            _ => (self.at(None), FieldStrategy::default()),
        }
    }

    /// The elements of this list.
    pub fn items(self) -> Self {
        match self.shape() {
            Some(Shape::List { items }) => self.at(Some(*items)),
            _ => self.at(None),
        }
    }

    /// The elements if this is a list, else itself.
    fn element(self) -> Self {
        match self.shape() {
            Some(Shape::List { .. }) => self.items(),
            _ => self,
        }
    }

    /// The OpenAPI definition name of this object, if it has one.
    pub fn definition(self) -> Option<&'a str> {
        match self.shape() {
            Some(Shape::Object { definition, .. }) => definition.as_deref(),
            _ => None,
        }
    }

    /// What the schema says this is.
    pub(crate) fn form(self) -> SchemaForm {
        match self.shape() {
            None => SchemaForm::Unknown,
            Some(Shape::Opaque) => SchemaForm::Opaque,
            Some(Shape::List { .. }) => SchemaForm::List,
            Some(Shape::Object { fields, values, .. }) => SchemaForm::Object {
                has_fields: !fields.is_empty(),
                has_values: values.is_some(),
            },
        }
    }

    /// Whether this object declares a field `name` (a struct's field, not a map's member).
    pub(crate) fn declares(self, name: &str) -> bool {
        matches!(self.shape(), Some(Shape::Object { fields, .. }) if fields.contains_key(name))
    }
}

/// The kind of schema at a node, for walks that need more than strategies (server-side
/// apply's field sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SchemaForm {
    /// The schema says nothing here.
    Unknown,
    /// A scalar, or a value the schema leaves open.
    Opaque,
    List,
    /// A struct (named fields), a map (`additionalProperties`), or both.
    Object {
        has_fields: bool,
        has_values: bool,
    },
}

struct Compiler<'r> {
    root: &'r Value,
    shapes: Vec<Shape>,
    /// Each `$ref` compiled so far; entered before its definition is compiled, so a
    /// definition that refers to itself ends.
    by_reference: BTreeMap<String, ShapeId>,
}

impl<'r> Compiler<'r> {
    fn push(&mut self, shape: Shape) -> ShapeId {
        self.shapes.push(shape);
        self.shapes.len() - 1
    }

    fn compile(&mut self, schema: &'r Value, definition: Option<String>) -> ShapeId {
        let schema = single_alternative(schema);
        let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
            let shape = self.shape_of(schema, definition);
            return self.push(shape);
        };
        if let Some(&id) = self.by_reference.get(reference) {
            return id;
        }
        let id = self.push(Shape::Opaque);
        self.by_reference.insert(reference.to_owned(), id);
        if let Some(target) = resolve(self.root, reference) {
            let shape = self.shape_of(target, Some(definition_name(reference)));
            self.shapes[id] = shape;
        }
        id
    }

    fn shape_of(&mut self, schema: &'r Value, definition: Option<String>) -> Shape {
        let schema = single_alternative(schema);
        if schema.get("$ref").is_some() {
            // A definition that only names another one.
            let id = self.compile(schema, None);
            return self.shapes[id].clone();
        }
        let is = |kind: &str| match schema.get("type") {
            Some(Value::String(single)) => single == kind,
            Some(Value::Array(kinds)) => kinds.iter().any(|k| k == kind),
            _ => false,
        };
        if is("object") || schema.get("properties").is_some() {
            let mut fields = BTreeMap::new();
            if let Some(Value::Object(properties)) = schema.get("properties") {
                for (name, property) in properties {
                    let strategy = definition
                        .as_deref()
                        .map(|definition| strategy_of(definition, name))
                        .unwrap_or_default();
                    let shape = self.compile(property, None);
                    fields.insert(name.clone(), Field { shape, strategy });
                }
            }
            let values = match schema.get("additionalProperties") {
                Some(values @ Value::Object(_)) => Some(self.compile(values, None)),
                _ => None,
            };
            return Shape::Object {
                definition,
                fields,
                values,
            };
        }
        if is("array") || schema.get("items").is_some() {
            let items = match schema.get("items") {
                Some(items @ Value::Object(_)) => self.compile(items, None),
                _ => self.push(Shape::Opaque),
            };
            return Shape::List { items };
        }
        Shape::Opaque
    }
}

/// `allOf` of one schema, or `anyOf`/`oneOf` whose alternatives are one schema and
/// `null` (how generators spell optional values), stands for that schema.
fn single_alternative(schema: &Value) -> &Value {
    for combinator in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(alternatives)) = schema.get(combinator) {
            let mut real = alternatives
                .iter()
                .filter(|alternative| alternative.get("type") != Some(&Value::from("null")));
            if let (Some(only), None) = (real.next(), real.next()) {
                return single_alternative(only);
            }
        }
    }
    schema
}

/// The schema a `$ref` names within the root: `#/$defs/...`, `#/definitions/...` or any
/// other pointer into the document.
fn resolve<'r>(root: &'r Value, reference: &str) -> Option<&'r Value> {
    root.pointer(reference.strip_prefix('#')?)
}

/// A definition is named by the last token of its reference.
fn definition_name(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    last.replace("~1", "/").replace("~0", "~")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::strategy::{PATCH_STRATEGIES, StrategyFact};
    use k8s_openapi::api::{apps, core};
    use std::collections::BTreeSet;

    /// The kinds whose fields the strategy table covers, and berth's kinds.
    fn kinds() -> Vec<(&'static str, PatchSchema)> {
        vec![
            ("Pod", PatchSchema::for_type::<core::v1::Pod>()),
            ("PodTemplate", PatchSchema::for_type::<core::v1::PodTemplate>()),
            ("Node", PatchSchema::for_type::<core::v1::Node>()),
            ("Namespace", PatchSchema::for_type::<core::v1::Namespace>()),
            ("Service", PatchSchema::for_type::<core::v1::Service>()),
            ("Endpoints", PatchSchema::for_type::<core::v1::Endpoints>()),
            ("ConfigMap", PatchSchema::for_type::<core::v1::ConfigMap>()),
            ("Secret", PatchSchema::for_type::<core::v1::Secret>()),
            ("Event", PatchSchema::for_type::<core::v1::Event>()),
            ("ServiceAccount", PatchSchema::for_type::<core::v1::ServiceAccount>()),
            (
                "PersistentVolumeClaim",
                PatchSchema::for_type::<core::v1::PersistentVolumeClaim>(),
            ),
            (
                "ReplicationController",
                PatchSchema::for_type::<core::v1::ReplicationController>(),
            ),
            ("ComponentStatus", PatchSchema::for_type::<core::v1::ComponentStatus>()),
            ("Deployment", PatchSchema::for_type::<apps::v1::Deployment>()),
            ("ReplicaSet", PatchSchema::for_type::<apps::v1::ReplicaSet>()),
            ("StatefulSet", PatchSchema::for_type::<apps::v1::StatefulSet>()),
            ("DaemonSet", PatchSchema::for_type::<apps::v1::DaemonSet>()),
        ]
    }

    #[test]
    fn definitions_carry_kubernetes_names() {
        let deployment = PatchSchema::for_type::<apps::v1::Deployment>();
        let cases: &[(&[&str], &str)] = &[
            (&[], "io.k8s.api.apps.v1.Deployment"),
            (&["metadata"], "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"),
            (&["spec"], "io.k8s.api.apps.v1.DeploymentSpec"),
            (&["spec", "strategy"], "io.k8s.api.apps.v1.DeploymentStrategy"),
            (&["spec", "template"], "io.k8s.api.core.v1.PodTemplateSpec"),
            (&["spec", "template", "spec"], "io.k8s.api.core.v1.PodSpec"),
            (
                &["spec", "template", "spec", "containers"],
                "io.k8s.api.core.v1.Container",
            ),
            (
                &["spec", "template", "spec", "containers", "env"],
                "io.k8s.api.core.v1.EnvVar",
            ),
            (&["status", "conditions"], "io.k8s.api.apps.v1.DeploymentCondition"),
        ];
        for (path, expected) in cases {
            assert_eq!(deployment.definition_at(path), Some(*expected), "{path:?}");
        }
        assert_eq!(deployment.definition_at(&["spec", "replicas"]), None);
        assert_eq!(deployment.definition_at(&["spec", "nonsense"]), None);
    }

    #[test]
    fn every_served_kind_has_its_schema() {
        for kind in crate::kinds::KINDS {
            let schema = PatchSchema::for_kind(kind);
            let name = schema.definition_at(&[]).unwrap_or_default();
            assert!(name.ends_with(&format!(".{}", kind.kind)), "{}: {name}", kind.kind);
            assert_eq!(
                schema.definition_at(&["metadata"]),
                Some("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            );
        }
        let deployment = PatchSchema::for_kind(&crate::kinds::deployment::DEPLOYMENT);
        assert!(
            deployment
                .strategy_at(&["spec", "template", "spec", "containers"])
                .merge
        );
    }

    #[test]
    fn from_schema_names_the_root_by_its_title() {
        let schema = SchemaGenerator::default().into_root_schema_for::<core::v1::Pod>();
        let pod = PatchSchema::from_schema(&schema);
        assert_eq!(pod.definition_at(&[]), Some("io.k8s.api.core.v1.Pod"));
        assert!(pod.strategy_at(&["spec", "containers"]).merge);
    }

    #[test]
    fn strategies_are_found_at_their_paths() {
        let deployment = PatchSchema::for_type::<apps::v1::Deployment>();
        let containers = deployment.strategy_at(&["spec", "template", "spec", "containers"]);
        assert_eq!((containers.merge, containers.merge_key), (true, Some("name")));
        let ports = deployment.strategy_at(&["spec", "template", "spec", "containers", "ports"]);
        assert_eq!(ports.merge_key, Some("containerPort"));
        let finalizers = deployment.strategy_at(&["metadata", "finalizers"]);
        assert_eq!((finalizers.merge, finalizers.merge_key), (true, None));
        assert!(deployment.strategy_at(&["spec", "strategy"]).retain_keys);
        assert_eq!(
            deployment.strategy_at(&["spec", "template", "spec", "tolerations"]),
            FieldStrategy::default()
        );
        let pod = PatchSchema::for_type::<core::v1::Pod>();
        assert_eq!(pod.strategy_at(&["status", "podIPs"]).merge_key, Some("ip"));
        let node = PatchSchema::for_type::<core::v1::Node>();
        assert_eq!(node.strategy_at(&["status", "addresses"]).merge_key, Some("type"));
        let service = PatchSchema::for_type::<core::v1::Service>();
        assert_eq!(service.strategy_at(&["spec", "ports"]).merge_key, Some("port"));
        // Endpoints' subsets and their addresses have no strategy: replaced whole.
        let endpoints = PatchSchema::for_type::<core::v1::Endpoints>();
        assert_eq!(endpoints.strategy_at(&["subsets"]), FieldStrategy::default());
        assert_eq!(
            endpoints.strategy_at(&["subsets", "addresses"]),
            FieldStrategy::default()
        );
    }

    /// Every line of the table names a field that one of the kinds has, of the shape its
    /// strategy needs: a list of objects that have the merge key, a list of scalars for
    /// a set, an object for retainKeys alone.
    #[test]
    fn every_fact_names_a_field_of_the_right_shape() {
        let mut found = BTreeSet::new();
        for (kind, schema) in kinds() {
            for shape in &schema.shapes {
                let Shape::Object {
                    definition: Some(definition),
                    fields,
                    ..
                } = shape
                else {
                    continue;
                };
                for (name, field) in fields {
                    let Some(fact) = PATCH_STRATEGIES
                        .iter()
                        .find(|fact| fact.definition == definition && fact.field == name)
                    else {
                        continue;
                    };
                    check_shape(&schema, fact, field.shape, kind);
                    found.insert((fact.definition, fact.field));
                }
            }
        }
        let missing: Vec<&StrategyFact> = PATCH_STRATEGIES
            .iter()
            .filter(|fact| !found.contains(&(fact.definition, fact.field)))
            .collect();
        assert!(missing.is_empty(), "facts no kind reaches: {missing:?}");
    }

    fn check_shape(schema: &PatchSchema, fact: &StrategyFact, shape: ShapeId, kind: &str) {
        let is_merge = fact.strategy.split(',').any(|word| word == "merge");
        match (&schema.shapes[shape], is_merge, fact.merge_key) {
            (Shape::List { items }, true, Some(key)) => match &schema.shapes[*items] {
                Shape::Object { fields, .. } => {
                    assert!(fields.contains_key(key), "{kind}: {fact:?}: elements lack {key}")
                }
                other => panic!("{kind}: {fact:?}: elements are {other:?}"),
            },
            (Shape::List { items }, true, None) => {
                assert!(
                    matches!(schema.shapes[*items], Shape::Opaque),
                    "{kind}: {fact:?}: not scalars"
                )
            }
            (Shape::Object { .. }, false, None) => {}
            (other, ..) => panic!("{kind}: {fact:?} does not fit {other:?}"),
        }
    }

    #[test]
    fn recursive_definitions_compile() {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let crd = PatchSchema::for_type::<CustomResourceDefinition>();
        let props = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps";
        let path = ["spec", "versions", "schema", "openAPIV3Schema"];
        assert_eq!(crd.definition_at(&path), Some(props));
        // `properties` is a map of JSONSchemaProps: the definition refers to itself.
        let nested = [
            "spec",
            "versions",
            "schema",
            "openAPIV3Schema",
            "properties",
            "x",
            "properties",
            "y",
        ];
        assert_eq!(crd.definition_at(&nested), Some(props));
    }

    #[test]
    fn unknown_schema_has_no_strategies() {
        let unknown = PatchSchema::unknown();
        assert_eq!(unknown.strategy_at(&["spec", "containers"]), FieldStrategy::default());
        assert_eq!(unknown.definition_at(&[]), None);
    }

    #[test]
    fn references_resolve_by_pointer() {
        let root = serde_json::json!({"definitions": {"a/b": {"type": "string"}}});
        assert_eq!(
            resolve(&root, "#/definitions/a~1b"),
            Some(&serde_json::json!({"type": "string"}))
        );
        assert_eq!(
            definition_name("#/$defs/io.k8s.api.core.v1.Pod"),
            "io.k8s.api.core.v1.Pod"
        );
        assert_eq!(definition_name("#/definitions/a~1b"), "a/b");
    }
}
