//! Turns Kubernetes' message descriptions (`proto/`: the .proto files reduced to
//! names, numbers and types, and `go-fields.txt`) into the static table the protobuf
//! decoder reads (`src/protobuf/descriptor.rs`):
//!
//! ```text
//! proto/**/generated.proto ──protoc──► FileDescriptorSet ──┐ (build/descriptor_set.rs)
//! proto/go-fields.txt (pointer, inline) ───────────────────┴─► $OUT_DIR/k8s_messages.rs
//! ```
//!
//! protoc comes from `protoc-bin-vendored`, as for berth-proto, so a fresh machine
//! needs only the Rust toolchain. Every line of go-fields.txt must name a field of
//! the right type, or the build fails.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

// The wire reader the server decodes request bodies with reads protoc's output here.
#[allow(dead_code)]
#[path = "src/protobuf/wire.rs"]
mod wire;

#[path = "build/descriptor_set.rs"]
mod descriptor_set;

use descriptor_set::{FieldProto, File, LABEL_OPTIONAL, LABEL_REPEATED, MessageProto, TYPE_GROUP, TYPE_MESSAGE};

/// The files whose messages requests may carry; their imports come along.
const ROOTS: &[&str] = &[
    "k8s.io/api/core/v1/generated.proto",
    "k8s.io/api/apps/v1/generated.proto",
    "k8s.io/api/policy/v1/generated.proto",
    "k8s.io/api/autoscaling/v1/generated.proto",
    "k8s.io/api/autoscaling/v2/generated.proto",
    "k8s.io/api/rbac/v1/generated.proto",
    "k8s.io/api/networking/v1/generated.proto",
    "k8s.io/api/authorization/v1/generated.proto",
    "k8s.io/api/authentication/v1/generated.proto",
];

type BuildResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> BuildResult<()> {
    let proto_dir = PathBuf::from("proto");
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=build");
    println!("cargo:rerun-if-changed=src/protobuf/wire.rs");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let files = compile(&proto_dir, &out_dir.join("k8s.desc"))?;
    let facts = std::fs::read_to_string(proto_dir.join("go-fields.txt"))?;
    let table = Table::new(&files, &facts)?;
    std::fs::write(out_dir.join("k8s_messages.rs"), table.render())?;
    Ok(())
}

fn compile(proto_dir: &Path, descriptor_path: &Path) -> BuildResult<Vec<File>> {
    let status = Command::new(protoc_bin_vendored::protoc_bin_path()?)
        .arg(format!("--proto_path={}", proto_dir.display()))
        .arg(format!("--descriptor_set_out={}", descriptor_path.display()))
        .arg("--include_imports")
        .args(ROOTS)
        .status()?;
    if !status.success() {
        return Err(format!("protoc failed on {ROOTS:?}: {status}").into());
    }
    let bytes = std::fs::read(descriptor_path)?;
    Ok(descriptor_set::read_set(&bytes).map_err(|e| format!("protoc's descriptor set: {e}"))?)
}

/// A field as the generated table has it.
struct Field {
    number: u64,
    name: String,
    value: String,
    shape: String,
    is_pointer: bool,
    is_inline: bool,
}

struct Table {
    /// Full name (without the leading dot) → fields, in name order.
    messages: BTreeMap<String, Vec<Field>>,
}

impl Table {
    fn new(files: &[File], facts: &str) -> BuildResult<Table> {
        let mut descriptors: BTreeMap<String, &MessageProto> = BTreeMap::new();
        let mut map_entries: BTreeMap<String, &MessageProto> = BTreeMap::new();
        for file in files {
            for message in &file.messages {
                let name = format!("{}.{}", file.package, message.name);
                for nested in &message.nested {
                    if !nested.is_map_entry {
                        return Err(format!("{name}.{}: nested messages are not expected", nested.name).into());
                    }
                    map_entries.insert(format!("{name}.{}", nested.name), nested);
                }
                descriptors.insert(name, message);
            }
        }
        let (pointers, inlines) = read_facts(facts)?;
        let index: BTreeMap<&str, usize> = descriptors.keys().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let value_of = |field: &FieldProto| -> BuildResult<String> {
            Ok(match field.type_number {
                TYPE_MESSAGE => {
                    let target = field.type_name.trim_start_matches('.');
                    let i = index
                        .get(target)
                        .ok_or_else(|| format!("{}: no message {target}", field.name))?;
                    format!("ValueType::Message({i})")
                }
                TYPE_GROUP => return Err(format!("{}: groups are not expected", field.name).into()),
                other => format!("ValueType::Scalar(Scalar::{})", scalar(other)?),
            })
        };
        let mut messages = BTreeMap::new();
        let mut used = BTreeSet::new();
        for (name, message) in &descriptors {
            let mut fields = Vec::new();
            for field in &message.fields {
                let qualified = format!("{name}.{}", field.name);
                let entry = map_entries.get(field.type_name.trim_start_matches('.'));
                let (value, shape) = match (field.label, entry) {
                    (LABEL_REPEATED, Some(entry)) => {
                        let [key, value] = &entry.fields[..] else {
                            return Err(format!("{qualified}: a map entry has a key and a value").into());
                        };
                        let shape = format!("Shape::Map {{ key: Scalar::{} }}", scalar(key.type_number)?);
                        (value_of(value)?, shape)
                    }
                    (LABEL_REPEATED, None) => (value_of(field)?, "Shape::Repeated".to_string()),
                    _ => (value_of(field)?, "Shape::Single".to_string()),
                };
                let is_message = field.type_number == TYPE_MESSAGE;
                let is_pointer = pointers.contains(&qualified);
                let is_inline = inlines.contains(&qualified);
                if is_pointer && (is_message || field.label != LABEL_OPTIONAL) {
                    return Err(format!("go-fields.txt: {qualified} is not an optional scalar").into());
                }
                if is_inline && (!is_message || field.label == LABEL_REPEATED) {
                    return Err(format!("go-fields.txt: {qualified} is not a single message").into());
                }
                if is_pointer || is_inline {
                    used.insert(qualified);
                }
                fields.push(Field {
                    number: field.number,
                    name: field.name.clone(),
                    value,
                    shape,
                    is_pointer,
                    is_inline,
                });
            }
            fields.sort_by_key(|f| f.number);
            messages.insert(name.clone(), fields);
        }
        let unknown: Vec<_> = pointers.union(&inlines).filter(|f| !used.contains(*f)).collect();
        if !unknown.is_empty() {
            return Err(format!("go-fields.txt names fields the .proto files do not have: {unknown:?}").into());
        }
        Ok(Table { messages })
    }

    fn render(&self) -> String {
        let mut out = String::from("// Written by build.rs from proto/; see src/protobuf/descriptor.rs.\n\n");
        out.push_str("pub static MESSAGES: &[Message] = &[\n");
        for (name, fields) in &self.messages {
            let _ = writeln!(out, "    Message {{\n        name: {name:?},\n        fields: &[");
            for f in fields {
                let _ = writeln!(
                    out,
                    "            Field {{ number: {}, json_name: {:?}, value: {}, shape: {}, is_pointer: {}, is_inline: {} }},",
                    f.number, f.name, f.value, f.shape, f.is_pointer, f.is_inline
                );
            }
            out.push_str("        ],\n    },\n");
        }
        out.push_str("];\n");
        out
    }
}

/// The `pointer` and `inline` lines of go-fields.txt, as `<message>.<field>` names.
fn read_facts(text: &str) -> BuildResult<(BTreeSet<String>, BTreeSet<String>)> {
    let (mut pointers, mut inlines) = (BTreeSet::new(), BTreeSet::new());
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        match line.split_once(' ') {
            Some(("pointer", field)) => pointers.insert(field.trim().to_string()),
            Some(("inline", field)) => inlines.insert(field.trim().to_string()),
            _ => return Err(format!("go-fields.txt: cannot read {line:?}").into()),
        };
    }
    Ok((pointers, inlines))
}

/// The `Scalar` variant of a `FieldDescriptorProto.Type` number.
fn scalar(type_number: u64) -> BuildResult<&'static str> {
    Ok(match type_number {
        1 => "Double",
        2 => "Float",
        3 => "Int64",
        4 => "UInt64",
        5 => "Int32",
        6 => "Fixed64",
        7 => "Fixed32",
        8 => "Bool",
        9 => "String",
        12 => "Bytes",
        13 => "UInt32",
        14 => "Enum",
        15 => "SFixed32",
        16 => "SFixed64",
        17 => "SInt32",
        18 => "SInt64",
        other => return Err(format!("field type {other} is not a scalar").into()),
    })
}
