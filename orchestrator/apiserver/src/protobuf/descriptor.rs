//! The messages of Kubernetes' protobuf form that the decoder knows: each message's
//! fields by number, with the JSON name, type and shape of each. The table is
//! written at build time (build.rs) from the reduced .proto files in `proto/` and
//! the Go facts beside them; this file holds its types and look-ups.
//!
//! A field's proto name is its JSON name in Kubernetes' protos; the exceptions are
//! the embedded structs (`is_inline`), whose fields the JSON object holds directly.

/// A scalar type of the wire form. Kubernetes' messages use a few of them; all are
/// here so that any .proto file compiles into the table.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    String,
    Bytes,
    Bool,
    Int32,
    Int64,
    UInt32,
    UInt64,
    SInt32,
    SInt64,
    Fixed32,
    Fixed64,
    SFixed32,
    SFixed64,
    Float,
    Double,
    Enum,
}

/// What one value of a field is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Scalar(Scalar),
    /// An index into [`MESSAGES`].
    Message(usize),
}

/// How many values a field has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Single,
    Repeated,
    /// A map: each occurrence is an entry message (1 key, 2 value); the field's
    /// `value` is the entries' value type.
    Map {
        key: Scalar,
    },
}

#[derive(Debug)]
pub struct Field {
    pub number: u32,
    pub json_name: &'static str,
    pub value: ValueType,
    pub shape: Shape,
    /// Go keeps the field behind a pointer: it is on the wire only when set, so a
    /// zero value there is the client's. Other scalar fields are always on the wire,
    /// and their zero value means "not set", as in Go.
    pub is_pointer: bool,
    /// Go embeds the struct: its fields belong to the enclosing JSON object.
    pub is_inline: bool,
}

#[derive(Debug)]
pub struct Message {
    /// The full name, `k8s.io.api.core.v1.Pod`.
    pub name: &'static str,
    /// By number, ascending.
    pub fields: &'static [Field],
}

impl Message {
    pub fn field(&self, number: u32) -> Option<&'static Field> {
        let fields: &'static [Field] = self.fields;
        fields
            .binary_search_by_key(&number, |f| f.number)
            .ok()
            .map(|i| &fields[i])
    }
}

include!(concat!(env!("OUT_DIR"), "/k8s_messages.rs"));

/// The message of a full name (`k8s.io.api.apps.v1.Deployment`).
pub fn message(name: &str) -> Option<&'static Message> {
    MESSAGES
        .binary_search_by(|m| m.name.cmp(name))
        .ok()
        .map(|i| &MESSAGES[i])
}

/// The message at an index of a [`ValueType::Message`].
pub fn at(index: usize) -> &'static Message {
    &MESSAGES[index]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_complete() {
        assert!(MESSAGES.windows(2).all(|w| w[0].name < w[1].name));
        for m in MESSAGES {
            assert!(m.fields.windows(2).all(|w| w[0].number < w[1].number), "{}", m.name);
        }
        for name in [
            "k8s.io.api.core.v1.Pod",
            "k8s.io.api.core.v1.Namespace",
            "k8s.io.api.core.v1.Node",
            "k8s.io.api.apps.v1.ReplicaSet",
            "k8s.io.api.apps.v1.Deployment",
            "k8s.io.api.policy.v1.Eviction",
            "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
            "k8s.io.apimachinery.pkg.runtime.Unknown",
        ] {
            assert!(message(name).is_some(), "{name}");
        }
        assert!(message("k8s.io.api.core.v1.Widget").is_none());
    }

    #[test]
    fn fields_carry_kubernetes_numbers_names_and_go_facts() {
        let deployment_spec = message("k8s.io.api.apps.v1.DeploymentSpec").unwrap();
        let replicas = deployment_spec.field(1).unwrap();
        assert_eq!(replicas.json_name, "replicas");
        assert_eq!(replicas.value, ValueType::Scalar(Scalar::Int32));
        assert!(replicas.is_pointer, "Go's replicas is *int32");
        let paused = deployment_spec.field(7).unwrap();
        assert_eq!(paused.json_name, "paused");
        assert!(!paused.is_pointer);
        let template = deployment_spec.field(3).unwrap();
        assert_eq!(
            at(match template.value {
                ValueType::Message(i) => i,
                other => panic!("{other:?}"),
            })
            .name,
            "k8s.io.api.core.v1.PodTemplateSpec"
        );
        let labels = message("k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .unwrap()
            .field(11)
            .unwrap();
        assert_eq!(
            (labels.json_name, labels.shape, labels.value),
            (
                "labels",
                Shape::Map { key: Scalar::String },
                ValueType::Scalar(Scalar::String)
            )
        );
        let handler = message("k8s.io.api.core.v1.Probe").unwrap().field(1).unwrap();
        assert!(handler.is_inline);
        let containers = message("k8s.io.api.core.v1.PodSpec").unwrap().field(2).unwrap();
        assert_eq!(
            (containers.json_name, containers.shape),
            ("containers", Shape::Repeated)
        );
    }
}
