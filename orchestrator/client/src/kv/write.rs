//! Writes: conditional transactions (create if absent, update or delete if unchanged
//! since a revision), each optionally fenced by a leadership record. A write is never
//! retried here: after a failure its outcome is unknown.

use berth_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use berth_proto::etcdserverpb::request_op::Request as Op;
use berth_proto::etcdserverpb::response_op::Response as OpResponse;
use berth_proto::etcdserverpb::{Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest};

use super::{Fence, Kv, KvError, Record, Result, status_error};

/// Each fenced write that landed, with its fence (the record and its revision) and
/// its own revision, at debug level under this target: the failover tests read a
/// deposed leader's log for a write under the leadership record whose revision lies
/// past its successor's claim (there must be none).
const FENCE_LOG: &str = "berth_client::fence";

pub(super) fn log_fenced(key: &str, fence: &Fence, revision: i64) {
    tracing::debug!(target: FENCE_LOG, record = %fence.key, key, fence = fence.mod_revision, revision, "fenced write");
}

pub(super) fn log_refused(key: &str, fence: &Fence) {
    tracing::debug!(target: FENCE_LOG, record = %fence.key, key, fence = fence.mod_revision, "fenced write refused: the record changed");
}

impl Kv {
    pub(super) async fn txn(&self, request: TxnRequest) -> Result<berth_proto::etcdserverpb::TxnResponse> {
        let (i, mut c) = self.clients();
        match c.kv.txn(Self::request(request)).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => {
                let e = status_error(s);
                self.failed(i, &e);
                Err(e)
            }
        }
    }

    /// Runs `success` if every compare holds; otherwise works out why not from the
    /// keys read in the failure branch: the fence first, then the object.
    async fn guarded(
        &self,
        key: &str,
        object: Compare,
        fence: Option<&Fence>,
        success: Vec<RequestOp>,
    ) -> Result<berth_proto::etcdserverpb::TxnResponse> {
        let mut compare = vec![object];
        let mut failure = vec![get_op(key)];
        if let Some(fence) = fence {
            compare.push(mod_revision_is(&fence.key, fence.mod_revision));
            failure.push(get_op(&fence.key));
        }
        let response = self
            .txn(TxnRequest {
                compare,
                success,
                failure,
            })
            .await?;
        if response.succeeded {
            if let Some(fence) = fence {
                log_fenced(key, fence, response.header.as_ref().map_or(0, |h| h.revision));
            }
            return Ok(response);
        }
        let read = |n: usize| first_read(&response, n);
        if let Some(fence) = fence
            && read(1).map(|kv| kv.mod_revision) != Some(fence.mod_revision)
        {
            log_refused(key, fence);
            return Err(KvError::Fenced);
        }
        Err(match read(0) {
            None => KvError::NotFound,
            Some(kv) => KvError::Conflict {
                current: kv.mod_revision,
            },
        })
    }

    /// Writes `key` only if it does not exist; returns the write's revision.
    pub async fn create(&self, key: &str, value: Vec<u8>, lease: i64, fence: Option<&Fence>) -> Result<i64> {
        let put = put_op(key, self.seal(key, value)?, lease);
        match self.guarded(key, create_revision_is(key, 0), fence, vec![put]).await {
            Ok(r) => Ok(r.header.map_or(0, |h| h.revision)),
            Err(KvError::Conflict { .. }) => Err(KvError::AlreadyExists),
            Err(e) => Err(e),
        }
    }

    /// Replaces `key` only if its mod_revision is still `mod_revision`; the key keeps
    /// its lease, if it has one (an event keeps its time to live).
    pub async fn update(&self, key: &str, value: Vec<u8>, mod_revision: i64, fence: Option<&Fence>) -> Result<i64> {
        let mut put = put_op(key, self.seal(key, value)?, 0);
        if let Some(Op::RequestPut(put)) = &mut put.request {
            put.ignore_lease = true;
        }
        let r = self
            .guarded(key, mod_revision_is(key, mod_revision), fence, vec![put])
            .await?;
        Ok(r.header.map_or(0, |h| h.revision))
    }

    /// Deletes `key` if it exists (and, when given, is still at `mod_revision`);
    /// returns the deleted value.
    pub async fn delete(&self, key: &str, mod_revision: Option<i64>, fence: Option<&Fence>) -> Result<Record> {
        let compare = match mod_revision {
            Some(rev) => mod_revision_is(key, rev),
            None => Compare {
                result: CompareResult::Greater as i32,
                target: CompareTarget::Create as i32,
                key: key.as_bytes().to_vec(),
                target_union: Some(TargetUnion::CreateRevision(0)),
                ..Default::default()
            },
        };
        let delete = RequestOp {
            request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                key: key.as_bytes().to_vec(),
                prev_kv: true,
                ..Default::default()
            })),
        };
        let r = self.guarded(key, compare, fence, vec![delete]).await?;
        match r.responses.first().and_then(|r| r.response.as_ref()) {
            Some(OpResponse::ResponseDeleteRange(d)) => d
                .prev_kvs
                .first()
                .cloned()
                .map(|kv| self.open(Record::from(kv)))
                .ok_or(KvError::NotFound),
            _ => Err(KvError::NotFound),
        }
    }

    /// An unconditional put (for records that have a single writer, such as a
    /// node's heartbeat key); returns the write's revision.
    pub async fn put(&self, key: &str, value: Vec<u8>, lease: i64) -> Result<i64> {
        let (i, mut c) = self.clients();
        let request = PutRequest {
            key: key.as_bytes().to_vec(),
            value: self.seal(key, value)?,
            lease,
            ..Default::default()
        };
        match c.kv.put(Self::request(request)).await {
            Ok(r) => Ok(r.into_inner().header.map_or(0, |h| h.revision)),
            Err(s) => {
                let e = status_error(s);
                self.failed(i, &e);
                Err(e)
            }
        }
    }

    /// Puts `value` only if `key` exists and its value sorts strictly before `than`
    /// (byte order); returns the write's revision. `Conflict` when the stored value
    /// is not smaller, `NotFound` when the key is absent. The leadership record uses
    /// it: its value starts with a zero-padded term, so byte order is term order.
    pub async fn put_if_value_less(&self, key: &str, than: &[u8], value: Vec<u8>) -> Result<i64> {
        let compare = Compare {
            result: CompareResult::Less as i32,
            target: CompareTarget::Value as i32,
            key: key.as_bytes().to_vec(),
            target_union: Some(TargetUnion::Value(than.to_vec())),
            ..Default::default()
        };
        let response = self
            .txn(TxnRequest {
                compare: vec![compare],
                success: vec![put_op(key, self.seal(key, value)?, 0)],
                failure: vec![get_op(key)],
            })
            .await?;
        if response.succeeded {
            return Ok(response.header.map_or(0, |h| h.revision));
        }
        match first_read(&response, 0) {
            None => Err(KvError::NotFound),
            Some(kv) => Err(KvError::Conflict {
                current: kv.mod_revision,
            }),
        }
    }

    /// Replaces `key` only if its mod_revision is still `mod_revision` and every
    /// `(other key, mod_revision)` in `also` is unchanged too (a missing key has
    /// mod_revision 0); fenced like [`Kv::update`]. The scheduler binds a pod with
    /// it, comparing the node it read. A changed `also` key gives `Conflict` with
    /// that key's current mod_revision.
    pub async fn update_if(
        &self,
        key: &str,
        value: Vec<u8>,
        mod_revision: i64,
        also: &[(&str, i64)],
        fence: Option<&Fence>,
    ) -> Result<i64> {
        let mut compare = vec![mod_revision_is(key, mod_revision)];
        let mut failure = vec![get_op(key)];
        for (other, revision) in also {
            compare.push(mod_revision_is(other, *revision));
            failure.push(get_op(other));
        }
        if let Some(fence) = fence {
            compare.push(mod_revision_is(&fence.key, fence.mod_revision));
            failure.push(get_op(&fence.key));
        }
        let response = self
            .txn(TxnRequest {
                compare,
                success: vec![put_op(key, self.seal(key, value)?, 0)],
                failure,
            })
            .await?;
        if response.succeeded {
            let revision = response.header.map_or(0, |h| h.revision);
            if let Some(fence) = fence {
                log_fenced(key, fence, revision);
            }
            return Ok(revision);
        }
        let mod_of = |n: usize| first_read(&response, n).map_or(0, |kv| kv.mod_revision);
        if let Some(fence) = fence
            && mod_of(1 + also.len()) != fence.mod_revision
        {
            log_refused(key, fence);
            return Err(KvError::Fenced);
        }
        match first_read(&response, 0) {
            None => return Err(KvError::NotFound),
            Some(kv) if kv.mod_revision != mod_revision => {
                return Err(KvError::Conflict {
                    current: kv.mod_revision,
                });
            }
            Some(_) => {}
        }
        let changed = also
            .iter()
            .enumerate()
            .find(|(i, (_, revision))| mod_of(1 + i) != *revision);
        Err(KvError::Conflict {
            current: changed.map_or(0, |(i, _)| mod_of(1 + i)),
        })
    }
}

/// One write of [`Kv::commit`], conditional on the key's mod_revision.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Replaces the key if it is still at `mod_revision` (keeping its lease).
    Update {
        key: String,
        value: Vec<u8>,
        mod_revision: i64,
    },
    /// Removes the key if it is still at `mod_revision`.
    Delete { key: String, mod_revision: i64 },
}

impl Write {
    fn key(&self) -> &str {
        match self {
            Write::Update { key, .. } | Write::Delete { key, .. } => key,
        }
    }

    fn mod_revision(&self) -> i64 {
        match self {
            Write::Update { mod_revision, .. } | Write::Delete { mod_revision, .. } => *mod_revision,
        }
    }
}

impl Kv {
    /// Makes every write at once, or none: one transaction whose compares are each
    /// key's mod_revision (and the fence's, when given). The Eviction subresource
    /// spends a disruption budget's allowance and deletes the pod with it, so two
    /// evictions cannot both spend the last one. `NotFound` when a key is gone,
    /// `Conflict` with the first changed key's mod_revision otherwise.
    pub async fn commit(&self, writes: &[Write], fence: Option<&Fence>) -> Result<i64> {
        let mut compare: Vec<Compare> = writes
            .iter()
            .map(|w| mod_revision_is(w.key(), w.mod_revision()))
            .collect();
        let mut failure: Vec<RequestOp> = writes.iter().map(|w| get_op(w.key())).collect();
        if let Some(fence) = fence {
            compare.push(mod_revision_is(&fence.key, fence.mod_revision));
            failure.push(get_op(&fence.key));
        }
        let success = writes
            .iter()
            .map(|write| match write {
                Write::Update { key, value, .. } => {
                    let mut put = put_op(key, self.seal(key, value.clone())?, 0);
                    if let Some(Op::RequestPut(put)) = &mut put.request {
                        put.ignore_lease = true;
                    }
                    Ok(put)
                }
                Write::Delete { key, .. } => Ok(RequestOp {
                    request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                        key: key.as_bytes().to_vec(),
                        ..Default::default()
                    })),
                }),
            })
            .collect::<Result<Vec<_>>>()?;
        let response = self
            .txn(TxnRequest {
                compare,
                success,
                failure,
            })
            .await?;
        if response.succeeded {
            return Ok(response.header.map_or(0, |h| h.revision));
        }
        if let Some(fence) = fence
            && first_read(&response, writes.len()).map(|kv| kv.mod_revision) != Some(fence.mod_revision)
        {
            return Err(KvError::Fenced);
        }
        for (i, write) in writes.iter().enumerate() {
            match first_read(&response, i) {
                None => return Err(KvError::NotFound),
                Some(kv) if kv.mod_revision != write.mod_revision() => {
                    return Err(KvError::Conflict {
                        current: kv.mod_revision,
                    });
                }
                Some(_) => {}
            }
        }
        Err(KvError::Conflict { current: 0 })
    }
}

pub(super) fn get_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(RangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        })),
    }
}

/// The first key read by the `n`th operation of a txn's response, if any.
pub(super) fn first_read(response: &berth_proto::etcdserverpb::TxnResponse, n: usize) -> Option<Record> {
    match response.responses.get(n)?.response.as_ref()? {
        OpResponse::ResponseRange(r) => r.kvs.first().cloned().map(Record::from),
        _ => None,
    }
}

pub(super) fn put_op(key: &str, value: Vec<u8>, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: key.as_bytes().to_vec(),
            value,
            lease,
            ..Default::default()
        })),
    }
}

pub(super) fn mod_revision_is(key: &str, revision: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Mod as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(TargetUnion::ModRevision(revision)),
        ..Default::default()
    }
}

fn create_revision_is(key: &str, revision: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(TargetUnion::CreateRevision(revision)),
        ..Default::default()
    }
}
