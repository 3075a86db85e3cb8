//! Who is asking, on the peer port. Every raft stream (in its greeting, see
//! `raft::wire`) and every gRPC peer request (in two metadata entries) says which
//! cluster it belongs to and which member sends it; a replica serves only members of
//! its own cluster. This holds whatever the transport is: with peer TLS on, the
//! certificates say the same thing once more.
//!
//! A replica that has not learned its membership yet (one that joins and has not had
//! its first entries) knows its cluster only, and checks that alone.

use std::collections::BTreeSet;

use tonic::metadata::MetadataMap;

use crate::error::StoreError;
use crate::raft::NodeId;

/// The metadata entry of a gRPC peer request that names the sender's cluster (hex).
pub const CLUSTER_ID_HEADER: &str = "berth-cluster-id";
/// The metadata entry that names the sending member (hex); `0` from a replica that
/// is joining and does not know its ID yet (only `Join` accepts that).
pub const MEMBER_ID_HEADER: &str = "berth-member-id";

/// A sender as it names itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerIdentity {
    pub cluster_id: u64,
    pub member_id: NodeId,
}

/// The bytes of a [`PeerIdentity`] in a raft stream's greeting.
pub const IDENTITY_BYTES: usize = 16;

impl PeerIdentity {
    pub fn to_bytes(self) -> [u8; IDENTITY_BYTES] {
        let mut bytes = [0u8; IDENTITY_BYTES];
        bytes[..8].copy_from_slice(&self.cluster_id.to_le_bytes());
        bytes[8..].copy_from_slice(&self.member_id.to_le_bytes());
        bytes
    }

    pub fn from_bytes(bytes: [u8; IDENTITY_BYTES]) -> Self {
        let (cluster, member) = bytes.split_at(8);
        Self {
            cluster_id: u64::from_le_bytes(cluster.try_into().unwrap_or_default()),
            member_id: u64::from_le_bytes(member.try_into().unwrap_or_default()),
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
                .ok_or_else(|| StoreError::PeerRefused(format!("{name} {value:?} is not a hexadecimal ID")))
        };
        Ok(Self {
            cluster_id: read(CLUSTER_ID_HEADER)?,
            member_id: read(MEMBER_ID_HEADER)?,
        })
    }
}

/// Stamps this replica's identity on every gRPC peer request it sends.
impl tonic::service::Interceptor for PeerIdentity {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let metadata = request.metadata_mut();
        for (name, id) in [(CLUSTER_ID_HEADER, self.cluster_id), (MEMBER_ID_HEADER, self.member_id)] {
            let value = format!("{id:x}")
                .parse()
                .map_err(|_| tonic::Status::internal("an ID that is not ASCII"))?;
            metadata.insert(name, value);
        }
        Ok(request)
    }
}

/// Whether `sender` may be served by a replica of cluster `cluster_id` whose
/// membership has `members` (empty: not known yet).
pub fn admit(cluster_id: u64, members: &BTreeSet<NodeId>, sender: PeerIdentity) -> Result<(), StoreError> {
    if sender.cluster_id != cluster_id {
        return Err(StoreError::PeerRefused(format!(
            "cluster ID mismatch: this replica belongs to cluster {cluster_id:x}, the sender ({:x}) to cluster {:x}",
            sender.member_id, sender.cluster_id
        )));
    }
    if !members.is_empty() && !members.contains(&sender.member_id) {
        return Err(StoreError::PeerRefused(format!(
            "member ID mismatch: {:x} is not a member of cluster {cluster_id:x} (its members are {})",
            sender.member_id,
            members
                .iter()
                .map(|id| format!("{id:x}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: PeerIdentity = PeerIdentity {
        cluster_id: 0xc1,
        member_id: 0xa,
    };

    #[test]
    fn only_members_of_the_same_cluster_are_admitted() {
        let members = BTreeSet::from([0xa, 0xb]);
        assert_eq!(admit(0xc1, &members, ME), Ok(()));
        let stranger = PeerIdentity { cluster_id: 0xc2, ..ME };
        let error = admit(0xc1, &members, stranger).unwrap_err().to_string();
        assert!(error.contains("cluster ID mismatch") && error.contains("c2"), "{error}");
        let removed = PeerIdentity { member_id: 0xd, ..ME };
        let error = admit(0xc1, &members, removed).unwrap_err().to_string();
        assert!(error.contains("member ID mismatch") && error.contains(" d "), "{error}");
        // A replica that does not know its membership yet checks the cluster only.
        assert_eq!(admit(0xc1, &BTreeSet::new(), removed), Ok(()));
        assert!(admit(0xc1, &BTreeSet::new(), stranger).is_err());
    }

    #[test]
    fn an_identity_survives_the_greeting_and_the_metadata() {
        assert_eq!(PeerIdentity::from_bytes(ME.to_bytes()), ME);
        let mut stamp = ME;
        let request = tonic::service::Interceptor::call(&mut stamp, tonic::Request::new(())).unwrap();
        assert_eq!(PeerIdentity::from_metadata(request.metadata()), Ok(ME));
        let error = PeerIdentity::from_metadata(&MetadataMap::new())
            .unwrap_err()
            .to_string();
        assert!(error.contains(CLUSTER_ID_HEADER), "{error}");
    }
}
