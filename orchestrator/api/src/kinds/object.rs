//! An object of any kind, typed inside: what the API server and the CLI hold when
//! the kind is known only at run time (from a manifest's `kind`, or a URL).
//!
//! The typed object sits behind [`TypedObject`], which every [`Resource`] is; code
//! that needs the fields of one kind asks for them with [`Object::downcast_ref`].

use std::any::Any;
use std::fmt;

use serde_json::Value;

use super::KindDescriptor;
use crate::meta::{MetaExt, ObjectMeta};
use crate::objects::{Resource, Spec};
use crate::validation::FieldError;

/// What every typed object offers, whatever its kind.
pub trait TypedObject: Any + Send + Sync + fmt::Debug {
    fn descriptor(&self) -> &'static KindDescriptor;
    fn metadata(&self) -> &ObjectMeta;
    fn metadata_mut(&mut self) -> &mut ObjectMeta;
    fn to_value(&self) -> Value;
    /// The form the store keeps (see [`Resource::stored_form`]).
    fn stored_form(&self) -> Vec<u8>;
    fn clone_boxed(&self) -> Box<dyn TypedObject>;
    /// Whether `other` is of the same kind with an equal `spec` (none counts as
    /// equal to none): what decides whether an update raises the generation.
    fn same_spec(&self, other: &dyn TypedObject) -> bool {
        self.to_value()["spec"] == other.to_value()["spec"]
    }
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl<S: Spec> TypedObject for Resource<S> {
    fn descriptor(&self) -> &'static KindDescriptor {
        S::DESCRIPTOR
    }

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("objects serialize")
    }

    fn stored_form(&self) -> Vec<u8> {
        Resource::stored_form(self)
    }

    fn clone_boxed(&self) -> Box<dyn TypedObject> {
        Box::new(self.clone())
    }

    fn same_spec(&self, other: &dyn TypedObject) -> bool {
        (other.as_any().downcast_ref::<Resource<S>>()).is_some_and(|other| self.spec == other.spec)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Makes a kind whose type is Kubernetes' own, without berth's spec/status envelope
/// (an `Event`, a `ConfigMap`), a [`TypedObject`] described by `$descriptor`.
macro_rules! flat_kind {
    ($type:ty, $descriptor:expr) => {
        impl $crate::kinds::TypedObject for $type {
            fn descriptor(&self) -> &'static $crate::kinds::KindDescriptor {
                &$descriptor
            }

            fn metadata(&self) -> &$crate::meta::ObjectMeta {
                &self.metadata
            }

            fn metadata_mut(&mut self) -> &mut $crate::meta::ObjectMeta {
                &mut self.metadata
            }

            fn to_value(&self) -> serde_json::Value {
                serde_json::to_value(self).expect("objects serialize")
            }

            fn stored_form(&self) -> Vec<u8> {
                let mut object = self.clone();
                object.metadata.resource_version = None;
                serde_json::to_vec(&object).expect("objects serialize")
            }

            fn clone_boxed(&self) -> Box<dyn $crate::kinds::TypedObject> {
                Box::new(self.clone())
            }

            fn as_any(&self) -> &dyn std::any::Any {
                self
            }

            fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
                self
            }

            fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
                self
            }
        }
    };
}
pub(crate) use flat_kind;

/// An object of any kind the API knows, chosen by its `kind` field.
pub struct Object(Box<dyn TypedObject>);

impl Object {
    pub fn new(object: impl TypedObject) -> Object {
        Object(Box::new(object))
    }

    /// Reads an object whose `kind` is one of [`KINDS`](super::KINDS); serde's message names a
    /// missing or mistyped field.
    pub fn from_value(value: Value) -> Result<Object, FieldError> {
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default();
        match super::by_kind(kind) {
            Some(descriptor) => (descriptor.decode)(&value),
            None => Err(FieldError {
                field: "kind".into(),
                message: format!("unknown kind {kind:?}"),
            }),
        }
    }

    /// Reads a JSON object as a typed one: the [`KindDescriptor::decode`] of a kind
    /// whose objects are [`Resource`]s.
    /// A mistyped or missing field is named by its path (`spec.replicas`).
    pub fn decode<S: Spec>(value: &Value) -> Result<Object, FieldError> {
        Object::decode_as::<Resource<S>>(value)
    }

    /// Reads a JSON object as a `T` (a kind without berth's envelope: [`flat_kind!`]).
    pub fn decode_as<T: TypedObject + serde::de::DeserializeOwned>(value: &Value) -> Result<Object, FieldError> {
        serde_path_to_error::deserialize::<_, T>(value)
            .map(Object::new)
            .map_err(|e| {
                let field = e.path().to_string();
                FieldError {
                    field: if field == "." { "<document>".into() } else { field },
                    message: e.into_inner().to_string(),
                }
            })
    }

    pub fn to_value(&self) -> Value {
        self.0.to_value()
    }

    /// See [`TypedObject::same_spec`].
    pub fn same_spec(&self, other: &Object) -> bool {
        self.0.same_spec(other.0.as_ref())
    }

    /// The form the store keeps (see [`Resource::stored_form`]).
    pub fn stored_form(&self) -> Vec<u8> {
        self.0.stored_form()
    }

    pub fn descriptor(&self) -> &'static KindDescriptor {
        self.0.descriptor()
    }

    pub fn kind(&self) -> &'static str {
        self.descriptor().kind
    }

    pub fn is_namespaced(&self) -> bool {
        self.descriptor().namespaced
    }

    pub fn metadata(&self) -> &ObjectMeta {
        self.0.metadata()
    }

    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        self.0.metadata_mut()
    }

    /// The object's store key.
    pub fn key(&self) -> String {
        let metadata = self.metadata();
        self.descriptor().key(metadata.namespace(), metadata.name())
    }

    /// The typed object, if it is a `T` (`object.downcast_ref::<Pod>()`).
    pub fn downcast_ref<T: TypedObject>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref()
    }

    pub fn downcast_mut<T: TypedObject>(&mut self) -> Option<&mut T> {
        self.0.as_any_mut().downcast_mut()
    }

    /// The typed object, or the object back if it is not a `T`.
    pub fn downcast<T: TypedObject>(self) -> Result<T, Object> {
        if self.downcast_ref::<T>().is_none() {
            return Err(self);
        }
        Ok(*self.0.into_any().downcast().expect("checked above"))
    }
}

impl Clone for Object {
    fn clone(&self) -> Self {
        Object(self.0.clone_boxed())
    }
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

// Typed objects serialize one-to-one (what is skipped is what a default reads back
// as), so equal JSON means equal objects.
impl PartialEq for Object {
    fn eq(&self, other: &Self) -> bool {
        self.descriptor() == other.descriptor() && self.to_value() == other.to_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{Namespace, Pod};

    #[test]
    fn objects_read_by_kind_and_downcast() {
        let value = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "dev"}, "spec": {"containers": []}});
        let object = Object::from_value(value).unwrap();
        assert_eq!(object.kind(), "Pod");
        assert!(object.is_namespaced());
        assert_eq!(object.key(), "/registry/pods/dev/p");
        assert_eq!(object.downcast_ref::<Pod>().unwrap().metadata.name(), "p");
        assert!(object.downcast_ref::<Namespace>().is_none());
        let mut object = object;
        object.downcast_mut::<Pod>().unwrap().spec.node_name = Some("n1".into());
        assert_eq!(object.to_value()["spec"]["nodeName"], "n1");
        let object = object.downcast::<Namespace>().unwrap_err();
        assert_eq!(object.clone(), object);
        assert_eq!(object.downcast::<Pod>().unwrap().metadata.namespace(), "dev");
        let unknown = Object::from_value(serde_json::json!({"kind": "Flurb"})).unwrap_err();
        assert_eq!(unknown.to_string(), "kind: unknown kind \"Flurb\"");
    }

    #[test]
    fn the_spec_alone_decides_whether_two_objects_have_the_same() {
        let pod = |node: &str, phase: &str| {
            Object::from_value(serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "dev"},
                "spec": {"containers": [], "nodeName": node}, "status": {"phase": phase}}))
            .unwrap()
        };
        assert!(pod("n1", "Pending").same_spec(&pod("n1", "Running")));
        assert!(!pod("n1", "Pending").same_spec(&pod("n2", "Pending")));
        let namespace = Object::from_value(serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "p"}}))
        .unwrap();
        assert!(!pod("n1", "Pending").same_spec(&namespace), "another kind");
        let lease = |holder: &str| {
            Object::from_value(
                serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "n1", "namespace": "kube-node-lease"}, "spec": {"holderIdentity": holder}}),
            )
            .unwrap()
        };
        assert!(lease("n1").same_spec(&lease("n1")));
        assert!(!lease("n1").same_spec(&lease("n2")));
    }
}
