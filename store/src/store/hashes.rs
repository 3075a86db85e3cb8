//! Hashes of the keyspace, to compare replicas: HashKV here and on a peer (for the
//! corruption check, see `corruption_check`).

use berth_proto::etcdserverpb::{HashKvRequest, HashKvResponse};

use super::*;
use crate::corruption_check::LocalHash;

impl Store {
    /// etcd's HashKV: the hash of every key's history up to `revision` (0: the current
    /// one) since the last compaction, with this member's current revision in the
    /// header.
    pub fn hash_kv(&self, revision: i64) -> Result<HashKvResponse> {
        let state = self.inner.state.read();
        let at = state.kv.check_revision(revision)?;
        let hash = state.kv.hash_kv(at)?;
        Ok(HashKvResponse {
            header: Some(self.header(state.kv.current_revision())),
            hash,
            compact_revision: state.kv.compact_revision(),
        })
    }

    /// This member's hash at its current revision.
    pub(crate) fn local_hash(&self) -> Result<LocalHash> {
        let state = self.inner.state.read();
        let revision = state.kv.current_revision();
        Ok(LocalHash {
            hash: state.kv.hash_kv(revision)?,
            revision,
            compact_revision: state.kv.compact_revision(),
        })
    }

    /// Member `id`'s HashKV at `revision`, asked on the peer port.
    pub(crate) async fn peer_hash_kv(&self, id: NodeId, revision: i64) -> Result<HashKvResponse> {
        let mut client = self.peer(id)?;
        let mut request = tonic::Request::new(HashKvRequest { revision });
        request.set_timeout(self.request_timeout());
        client
            .hash_kv(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| crate::grpc::status::status_to_error(&status))
    }
}
