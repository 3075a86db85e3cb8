//! Several keys written in one transaction, each condition on a key's
//! mod_revision (0: the key is absent): what allocations need, where an object and
//! the records of what it holds (a Service and its cluster IP and node ports) must
//! appear, change or go together, or not at all.

use berth_proto::etcdserverpb::request_op::Request as Op;
use berth_proto::etcdserverpb::{DeleteRangeRequest, RequestOp, TxnRequest};

use super::write::{get_op, mod_revision_is, put_op};
use super::{Kv, Result};

/// What one transaction of [`Kv::write_together`] does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Together {
    /// `(key, mod_revision)`: the key must still be at that revision (0: absent).
    pub conditions: Vec<(String, i64)>,
    pub puts: Vec<(String, Vec<u8>)>,
    pub deletes: Vec<String>,
}

impl Kv {
    /// Writes all of `together` if every condition holds: `Ok(Ok(revision))`. When one
    /// does not, nothing is written: `Ok(Err(i))` names the first condition (by
    /// index) that failed.
    pub async fn write_together(&self, together: &Together) -> Result<std::result::Result<i64, usize>> {
        let compare = together
            .conditions
            .iter()
            .map(|(key, revision)| mod_revision_is(key, *revision))
            .collect();
        let failure = together.conditions.iter().map(|(key, _)| get_op(key)).collect();
        let mut success: Vec<RequestOp> = together
            .puts
            .iter()
            .map(|(key, value)| Ok(put_op(key, self.seal(key, value.clone())?, 0)))
            .collect::<Result<_>>()?;
        success.extend(together.deletes.iter().map(|key| RequestOp {
            request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                key: key.as_bytes().to_vec(),
                ..Default::default()
            })),
        }));
        let response = self
            .txn(TxnRequest {
                compare,
                success,
                failure,
            })
            .await?;
        if response.succeeded {
            return Ok(Ok(response.header.map_or(0, |h| h.revision)));
        }
        let failed = together
            .conditions
            .iter()
            .enumerate()
            .find(|(i, (_, revision))| {
                super::write::first_read(&response, *i).map_or(0, |r| r.mod_revision) != *revision
            })
            .map_or(0, |(i, _)| i);
        Ok(Err(failed))
    }
}
