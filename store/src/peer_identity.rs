//! Who is asking, on the peer port. Every raft stream (in its greeting, see
//! `raft::wire`) and every gRPC peer request (in metadata) says which cluster it
//! belongs to, which member sends it, and how far the sender's membership goes (the
//! log index of its latest configuration); a replica serves only members of its own
//! cluster, and checks again before each request. This holds whatever the transport
//! is: with peer TLS on, the certificates say the same thing once more.
//!
//! A sender this replica's membership does not name is refused, unless the sender's
//! membership is newer: then this replica is behind (it was down while members were
//! added), and the sender may well be the leader it has to catch up from. A removed
//! member's membership is never newer than that of a replica which applied its
//! removal. A replica that has not learned its membership at all (one that joins and
//! has not had its first entries) checks the cluster alone, as etcd does.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use tokio::sync::watch;
use tonic::metadata::MetadataMap;

use crate::error::StoreError;
use crate::raft::{NodeId, TypeConfig};

/// The metadata entry of a gRPC peer request that names the sender's cluster (hex).
pub const CLUSTER_ID_HEADER: &str = "berth-cluster-id";
/// The metadata entry that names the sending member (hex); `0` from a replica that
/// is joining and does not know its ID yet (only `Join` accepts that).
pub const MEMBER_ID_HEADER: &str = "berth-member-id";
/// The metadata entry with the log index of the sender's latest membership (hex).
pub const MEMBERSHIP_INDEX_HEADER: &str = "berth-membership-index";

/// A sender as it names itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerIdentity {
    pub cluster_id: u64,
    pub member_id: NodeId,
    /// The log index of the sender's latest membership configuration.
    pub membership_index: u64,
}

/// The bytes of a [`PeerIdentity`] in a raft stream's greeting: the three numbers,
/// u64 LE each.
pub const IDENTITY_BYTES: usize = 24;

impl PeerIdentity {
    pub fn to_bytes(self) -> [u8; IDENTITY_BYTES] {
        let mut bytes = [0u8; IDENTITY_BYTES];
        bytes[..8].copy_from_slice(&self.cluster_id.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.member_id.to_le_bytes());
        bytes[16..].copy_from_slice(&self.membership_index.to_le_bytes());
        bytes
    }

    pub fn from_bytes(bytes: [u8; IDENTITY_BYTES]) -> Self {
        let word = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(word)
        };
        Self {
            cluster_id: word(0),
            member_id: word(8),
            membership_index: word(16),
        }
    }

    /// Reads the sender from a gRPC request's metadata.
    pub fn from_metadata(metadata: &MetadataMap) -> Result<Self, StoreError> {
        let read = |name: &str| -> Result<u64, StoreError> {
            let value = metadata.get(name).ok_or_else(|| {
                StoreError::PeerRefused(format!(
                    "the request does not name its {name} (a replica of an earlier berth version? \
                     every member must run the same version)"
                ))
            })?;
            value
                .to_str()
                .ok()
                .and_then(|text| u64::from_str_radix(text, 16).ok())
                .ok_or_else(|| StoreError::PeerRefused(format!("{name} {value:?} is not a hexadecimal number")))
        };
        Ok(Self {
            cluster_id: read(CLUSTER_ID_HEADER)?,
            member_id: read(MEMBER_ID_HEADER)?,
            membership_index: read(MEMBERSHIP_INDEX_HEADER)?,
        })
    }

    fn stamp(self, metadata: &mut MetadataMap) -> Result<(), tonic::Status> {
        for (name, number) in [
            (CLUSTER_ID_HEADER, self.cluster_id),
            (MEMBER_ID_HEADER, self.member_id),
            (MEMBERSHIP_INDEX_HEADER, self.membership_index),
        ] {
            let value = format!("{number:x}")
                .parse()
                .map_err(|_| tonic::Status::internal("a number that is not ASCII"))?;
            metadata.insert(name, value);
        }
        Ok(())
    }
}

type Metrics = watch::Receiver<openraft::RaftMetrics<NodeId, crate::raft::MemberInfo>>;

/// This replica as it names itself to its peers: its cluster and member IDs, and
/// its membership's index as Raft has it when a message leaves (0 before Raft runs).
#[derive(Debug, Clone, Default)]
pub struct Me {
    cluster_id: u64,
    member_id: NodeId,
    metrics: Arc<OnceLock<Metrics>>,
}

impl Me {
    pub fn new(cluster_id: u64, member_id: NodeId) -> Self {
        Self {
            cluster_id,
            member_id,
            metrics: Arc::default(),
        }
    }

    /// From now on, the membership index comes from `raft`.
    pub fn follow(&self, raft: &openraft::Raft<TypeConfig>) {
        let _ = self.metrics.set(raft.metrics());
    }

    pub fn identity(&self) -> PeerIdentity {
        PeerIdentity {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            membership_index: self
                .metrics
                .get()
                .map_or(0, |metrics| membership_index(&metrics.borrow())),
        }
    }
}

/// The log index of the latest membership configuration in `metrics`.
pub fn membership_index(metrics: &openraft::RaftMetrics<NodeId, crate::raft::MemberInfo>) -> u64 {
    metrics.membership_config.log_id().map_or(0, |log_id| log_id.index)
}

/// Stamps this replica's identity on every gRPC peer request it sends.
impl tonic::service::Interceptor for Me {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        self.identity().stamp(request.metadata_mut())?;
        Ok(request)
    }
}

/// What a replica knows of its cluster when a request comes: its ID, its members
/// (empty: not known yet) and the log index of that membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub cluster_id: u64,
    pub members: BTreeSet<NodeId>,
    pub index: u64,
}

/// Whether `sender` may be served (see the module's doc).
pub fn admit(local: &Membership, sender: PeerIdentity) -> Result<(), StoreError> {
    let cluster_id = local.cluster_id;
    if sender.cluster_id != cluster_id {
        return Err(StoreError::PeerRefused(format!(
            "cluster ID mismatch: this replica belongs to cluster {cluster_id:x}, the sender ({:x}) to cluster {:x}",
            sender.member_id, sender.cluster_id
        )));
    }
    let is_behind = sender.membership_index > local.index;
    if local.members.is_empty() || local.members.contains(&sender.member_id) || is_behind {
        return Ok(());
    }
    Err(StoreError::PeerRefused(format!(
        "member ID mismatch: {:x} is not a member of cluster {cluster_id:x} (its members are {} as of log index {}; \
         the sender's membership is as of {})",
        sender.member_id,
        local
            .members
            .iter()
            .map(|id| format!("{id:x}"))
            .collect::<Vec<_>>()
            .join(", "),
        local.index,
        sender.membership_index
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENDER: PeerIdentity = PeerIdentity {
        cluster_id: 0xc1,
        member_id: 0xa,
        membership_index: 7,
    };

    fn local(members: &[NodeId], index: u64) -> Membership {
        Membership {
            cluster_id: 0xc1,
            members: members.iter().copied().collect(),
            index,
        }
    }

    #[test]
    fn only_members_of_the_same_cluster_are_admitted() {
        assert_eq!(admit(&local(&[0xa, 0xb], 7), SENDER), Ok(()));
        let stranger = PeerIdentity {
            cluster_id: 0xc2,
            ..SENDER
        };
        let error = admit(&local(&[0xa, 0xb], 7), stranger).unwrap_err().to_string();
        assert!(error.contains("cluster ID mismatch") && error.contains("c2"), "{error}");
        let removed = PeerIdentity {
            member_id: 0xd,
            ..SENDER
        };
        let error = admit(&local(&[0xa, 0xb], 7), removed).unwrap_err().to_string();
        assert!(error.contains("member ID mismatch") && error.contains(" d "), "{error}");
        // A replica that does not know its membership yet checks the cluster only.
        assert_eq!(admit(&local(&[], 0), removed), Ok(()));
        assert!(admit(&local(&[], 0), stranger).is_err());
    }

    #[test]
    fn a_replica_behind_the_sender_admits_a_member_it_has_not_heard_of() {
        let added_later = PeerIdentity {
            member_id: 0xd,
            membership_index: 12,
            ..SENDER
        };
        assert_eq!(admit(&local(&[0xa, 0xb], 7), added_later), Ok(()));
        // Once this replica has the sender's membership (or a newer one), it does not.
        assert!(admit(&local(&[0xa, 0xb], 12), added_later).is_err());
        assert!(admit(&local(&[0xa, 0xb], 20), added_later).is_err());
    }

    #[test]
    fn an_identity_survives_the_greeting_and_the_metadata() {
        assert_eq!(PeerIdentity::from_bytes(SENDER.to_bytes()), SENDER);
        let mut metadata = MetadataMap::new();
        SENDER.stamp(&mut metadata).unwrap();
        assert_eq!(PeerIdentity::from_metadata(&metadata), Ok(SENDER));
        let mut me = Me::new(0xc1, 0xa);
        let request = tonic::service::Interceptor::call(&mut me, tonic::Request::new(())).unwrap();
        let before_raft = PeerIdentity {
            membership_index: 0,
            ..SENDER
        };
        assert_eq!(PeerIdentity::from_metadata(request.metadata()), Ok(before_raft));
        let error = PeerIdentity::from_metadata(&MetadataMap::new())
            .unwrap_err()
            .to_string();
        assert!(error.contains(CLUSTER_ID_HEADER), "{error}");
    }
}
