//! The openraft type configuration: what a log entry carries, what apply returns,
//! and how members are named.

use std::io::Cursor;

use berth_proto::Message;
use berth_proto::berthpb::{CommandBatch, CommandResult, command_result};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// A replica's ID: etcd's member ID, derived from its name and the cluster token.
pub type NodeId = u64;

/// What the Raft membership records of a member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Empty until the member has started and published itself (etcd's "unstarted").
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
}

impl std::fmt::Display for MemberInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.peer_urls.join(","))
    }
}

/// The payload of a normal log entry: a batch of client commands, kept as the
/// protobuf encoding of [`CommandBatch`] so the log format is versioned by proto
/// field numbers rather than by Rust type layout. The encoding is what the log
/// stores and replication sends (read back and passed on as it is, on the leader for
/// each follower and on each follower); the batch is decoded where it is applied.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Request {
    encoded: bytes::Bytes,
}

impl Request {
    pub fn new(batch: &CommandBatch) -> Request {
        Request {
            encoded: batch.encode_to_vec().into(),
        }
    }

    /// A payload of these bytes, as a log read them (a test's torn or foreign entry).
    #[cfg(test)]
    pub(crate) fn from_encoded(encoded: Vec<u8>) -> Request {
        Request {
            encoded: encoded.into(),
        }
    }

    /// The batch, decoded.
    pub fn batch(&self) -> Result<CommandBatch, prost::DecodeError> {
        CommandBatch::decode(&self.encoded[..])
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Request({} bytes)", self.encoded.len())
    }
}

/// What applying one command returns: its response, or the error that every replica
/// decided alike (a compacted revision, an unknown lease), with the error's numbers.
pub type CommandOutcome = Result<command_result::Result, StoreError>;

/// What applying one entry returns: one outcome per command of the batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response(pub Vec<CommandOutcome>);

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "batch of {} bytes", self.encoded.len())
    }
}

impl Serialize for Request {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.encoded)
    }
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: serde_bytes_compat::Bytes = Deserialize::deserialize(d)?;
        Ok(Request {
            encoded: bytes.0.into(),
        })
    }
}

/// A response is never stored: it goes back to the proposer, and on a raft stream to
/// a follower that forwarded the batch (see `raft::forward`). There each outcome is
/// a `Result`: the response as the protobuf encoding of a `CommandResult`, or the
/// error in serde's form (see `error`).
impl Serialize for Response {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|outcome| outcome.as_ref().map(ProtobufResult)))
    }
}

impl<'de> Deserialize<'de> for Response {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let outcomes: Vec<Result<serde_bytes_compat::Bytes, StoreError>> = Deserialize::deserialize(d)?;
        outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Ok(bytes) => match CommandResult::decode(bytes.0.as_slice()).map_err(serde::de::Error::custom)? {
                    CommandResult { result: Some(result) } => Ok(Ok(result)),
                    CommandResult { result: None } => Err(serde::de::Error::custom("an empty command result")),
                },
                Err(e) => Ok(Err(e)),
            })
            .collect::<Result<_, _>>()
            .map(Response)
    }
}

/// A response, serialized as the protobuf encoding of the `CommandResult` holding it.
struct ProtobufResult<'a>(&'a command_result::Result);

impl Serialize for ProtobufResult<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(self.0.encoded_len());
        self.0.encode(&mut bytes);
        s.serialize_bytes(&bytes)
    }
}

/// Deserializes a byte string from formats that send bytes either as a byte buffer
/// or as a sequence (bincode and serde_json differ).
mod serde_bytes_compat {
    use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};

    pub struct Bytes(pub Vec<u8>);

    impl<'de> Deserialize<'de> for Bytes {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct BytesVisitor;
            impl<'de> Visitor<'de> for BytesVisitor {
                type Value = Bytes;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a byte string")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                    Ok(Bytes(v))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
                    let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                    while let Some(b) = seq.next_element::<u8>()? {
                        out.push(b);
                    }
                    Ok(Bytes(out))
                }
            }
            d.deserialize_bytes(BytesVisitor)
        }
    }
}

openraft::declare_raft_types!(
    /// berth's Raft types.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = MemberInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, MemberInfo>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, MemberInfo>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;

/// bincode settings for everything berth writes with serde: fixed-width integers
/// (so a log entry's size does not depend on its values) and big-endian order.
pub fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_fixed_int_encoding().with_big_endian()
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, bincode::error::EncodeError> {
    bincode::serde::encode_to_vec(value, bincode_config())
}

pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::error::DecodeError> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, bincode_config())?;
    if read != bytes.len() {
        return Err(bincode::error::DecodeError::OtherString(format!(
            "{} trailing bytes after the value",
            bytes.len() - read
        )));
    }
    Ok(value)
}
