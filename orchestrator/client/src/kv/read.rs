//! Reads: one key, one key at a revision, or a prefix; retried across endpoints
//! through an election, since a read can be repeated safely.

use std::time::Duration;

use berth_proto::etcdserverpb::RangeRequest;

use super::{Kv, KvError, REQUEST_TIMEOUT, Record, Result, prefix_end, status_error};

impl Kv {
    /// Reads are idempotent, so one that fails for want of a leader (an election
    /// under way) or an endpoint is retried, on the next endpoint, for up to the
    /// request timeout: callers see an election as a slow read, not an error.
    async fn range(&self, request: RangeRequest) -> Result<(Vec<Record>, i64)> {
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        let mut pause = Duration::from_millis(50);
        loop {
            let (i, mut c) = self.clients();
            let error = match c.kv.range(Self::request(request.clone())).await {
                Ok(r) => {
                    let r = r.into_inner();
                    let revision = r.header.map_or(0, |h| h.revision);
                    return Ok((r.kvs.into_iter().map(Record::from).collect(), revision));
                }
                Err(s) => status_error(s),
            };
            self.failed(i, &error);
            if !matches!(error, KvError::Unavailable(_)) || tokio::time::Instant::now() + pause >= deadline {
                return Err(error);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// A linearizable read of one key.
    pub async fn get(&self, key: &str) -> Result<Option<Record>> {
        let (mut kvs, _) = self
            .range(RangeRequest {
                key: key.as_bytes().to_vec(),
                ..Default::default()
            })
            .await?;
        Ok(kvs.pop())
    }

    /// A linearizable read of one key as it was at `revision` (its latest version at
    /// or before it); fails once that revision has been compacted.
    pub async fn get_at(&self, key: &str, revision: i64) -> Result<Option<Record>> {
        let (mut kvs, _) = self
            .range(RangeRequest {
                key: key.as_bytes().to_vec(),
                revision,
                ..Default::default()
            })
            .await?;
        Ok(kvs.pop())
    }

    /// A linearizable read of every key under `prefix`, in key order, and the
    /// store's revision at the read.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<Record>, i64)> {
        self.range(RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            ..Default::default()
        })
        .await
    }
}
