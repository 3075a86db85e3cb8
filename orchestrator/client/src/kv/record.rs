//! What the store holds for a key at a revision, as the orchestrator sees it: the
//! client's own type, so that nothing above the client names the store's protobuf
//! messages.

use berth_proto::mvccpb::KeyValue;

/// A key's value and its revisions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The key; the orchestrator's keys are UTF-8 (a key that is not is shown lossily).
    pub key: String,
    pub value: Vec<u8>,
    /// The revision of the write that created the key (in its current life).
    pub create_revision: i64,
    /// The revision of the last write to the key.
    pub mod_revision: i64,
    /// The number of writes to the key since it was created.
    pub version: i64,
    /// The lease the key is attached to, or 0.
    pub lease: i64,
}

impl From<KeyValue> for Record {
    fn from(kv: KeyValue) -> Self {
        Record {
            key: match String::from_utf8(kv.key) {
                Ok(key) => key,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            },
            value: kv.value,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        }
    }
}
