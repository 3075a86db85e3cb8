//! etcd's HashKV of this member (peers compare theirs on raft streams, see
//! `corruption`).

use berth_proto::etcdserverpb::HashKvResponse;

use super::*;

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
}
