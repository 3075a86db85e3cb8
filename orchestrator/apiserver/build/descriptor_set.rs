//! The parts of protoc's `FileDescriptorSet` (google/protobuf/descriptor.proto) that
//! the table needs, read with the server's own wire reader:
//!
//! ```text
//! FileDescriptorSet   1 file (repeated FileDescriptorProto)
//! FileDescriptorProto 2 package, 4 message_type (repeated DescriptorProto)
//! DescriptorProto     1 name, 2 field, 3 nested_type, 7 options (MessageOptions: 7 map_entry)
//! FieldDescriptorProto 1 name, 3 number, 4 label, 5 type, 6 type_name
//! ```

use super::wire::{Records, WireValue};

/// `FieldDescriptorProto.Label`.
pub const LABEL_OPTIONAL: u64 = 1;
pub const LABEL_REPEATED: u64 = 3;

/// `FieldDescriptorProto.Type`: the scalar types by number, and the two others.
pub const TYPE_GROUP: u64 = 10;
pub const TYPE_MESSAGE: u64 = 11;

pub struct File {
    pub package: String,
    pub messages: Vec<MessageProto>,
}

#[derive(Default)]
pub struct MessageProto {
    pub name: String,
    pub fields: Vec<FieldProto>,
    pub nested: Vec<MessageProto>,
    pub is_map_entry: bool,
}

#[derive(Default)]
pub struct FieldProto {
    pub name: String,
    pub number: u64,
    pub label: u64,
    pub type_number: u64,
    /// `.k8s.io.api.core.v1.PodSpec` for messages, empty for scalars.
    pub type_name: String,
}

type Result<T> = std::result::Result<T, String>;

fn text(value: WireValue<'_>) -> Result<String> {
    match value {
        WireValue::Bytes(b) => String::from_utf8(b.to_vec()).map_err(|e| e.to_string()),
        other => Err(format!("a {} value where a string belongs", other.wire_type_name())),
    }
}

fn nested(value: WireValue<'_>) -> Result<&[u8]> {
    match value {
        WireValue::Bytes(b) => Ok(b),
        other => Err(format!("a {} value where a message belongs", other.wire_type_name())),
    }
}

fn number(value: WireValue<'_>) -> Result<u64> {
    match value {
        WireValue::Varint(v) => Ok(v),
        other => Err(format!("a {} value where a number belongs", other.wire_type_name())),
    }
}

pub fn read_set(bytes: &[u8]) -> Result<Vec<File>> {
    let mut files = Vec::new();
    for record in Records::new(bytes) {
        if let (1, value) = record? {
            files.push(read_file(nested(value)?)?);
        }
    }
    Ok(files)
}

fn read_file(bytes: &[u8]) -> Result<File> {
    let mut file = File {
        package: String::new(),
        messages: Vec::new(),
    };
    for record in Records::new(bytes) {
        match record? {
            (2, value) => file.package = text(value)?,
            (4, value) => file.messages.push(read_message(nested(value)?)?),
            _ => {}
        }
    }
    Ok(file)
}

fn read_message(bytes: &[u8]) -> Result<MessageProto> {
    let mut message = MessageProto::default();
    for record in Records::new(bytes) {
        match record? {
            (1, value) => message.name = text(value)?,
            (2, value) => message.fields.push(read_field(nested(value)?)?),
            (3, value) => message.nested.push(read_message(nested(value)?)?),
            (7, value) => {
                for option in Records::new(nested(value)?) {
                    if let (7, value) = option? {
                        message.is_map_entry = number(value)? != 0;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(message)
}

fn read_field(bytes: &[u8]) -> Result<FieldProto> {
    let mut field = FieldProto::default();
    for record in Records::new(bytes) {
        match record? {
            (1, value) => field.name = text(value)?,
            (3, value) => field.number = number(value)?,
            (4, value) => field.label = number(value)?,
            (5, value) => field.type_number = number(value)?,
            (6, value) => field.type_name = text(value)?,
            _ => {}
        }
    }
    Ok(field)
}
