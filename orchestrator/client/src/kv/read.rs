//! Reads: one key, one key at a revision, or a prefix in pages at one revision;
//! retried across endpoints through an election, since a read can be repeated safely.
//!
//! ```text
//! list(prefix):  page 1: [prefix, end) limit 500 at now ──► revision R (the header's)
//!                page 2: [last key + "\0", end) limit 500 at R ──► ...
//!                ... until the store says there is no more
//! ```
//!
//! Reads are linearizable unless their name says serializable (answered by the
//! endpoint's replica from what it has applied, without a round to the leader).
//!
//! Every page is read at R, so the pages together are the prefix as it was at R, as
//! kube-apiserver's paged lists over etcd are. No read asks for an unbounded range:
//! a page holds at most [`LIST_PAGE`] values of at most the store's request limit.

use std::time::Duration;

use berth_proto::etcdserverpb::RangeRequest;

use super::{Kv, KvError, REQUEST_TIMEOUT, Record, Result, prefix_end, read_error};

/// How many keys one read of a range asks for: kube-apiserver's and kubectl's
/// default chunk size. With values of at most etcd's default request limit (1.5 MiB)
/// a page stays under 750 MiB, inside the client's decoding limit
/// ([`super::MAX_RESPONSE_BYTES`]).
pub const LIST_PAGE: usize = 500;

/// How often [`Kv::list`] starts over when the revision of its first page is
/// compacted away before it reads the last.
const LIST_ATTEMPTS: usize = 3;

/// One page of a range read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The page's keys, in key order.
    pub records: Vec<Record>,
    /// The revision the page was read at: the one asked for, or (asked for 0) the
    /// store's revision at the read.
    pub revision: i64,
    /// Whether the range holds keys after this page's last.
    pub more: bool,
    /// How many keys the range held at `revision`, this page's included.
    pub count: i64,
}

impl Kv {
    /// Reads are idempotent, so one that fails for want of a leader (an election
    /// under way) or an endpoint is retried, on the next endpoint, for up to the
    /// request timeout: callers see an election as a slow read, not an error.
    async fn range(&self, request: RangeRequest) -> Result<Page> {
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        let mut pause = Duration::from_millis(50);
        loop {
            let (i, mut c) = self.clients();
            let error = match c.kv.range(Self::request(request.clone())).await {
                Ok(r) => {
                    let r = r.into_inner();
                    let revision = match request.revision {
                        0 => r.header.map_or(0, |h| h.revision),
                        at => at,
                    };
                    return Ok(Page {
                        records: r.kvs.into_iter().map(|kv| self.open(Record::from(kv))).collect(),
                        revision,
                        more: r.more,
                        count: r.count,
                    });
                }
                Err(s) => read_error(s, request.revision),
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
        let page = self
            .range(RangeRequest {
                key: key.as_bytes().to_vec(),
                ..Default::default()
            })
            .await?;
        Ok(page.records.into_iter().next())
    }

    /// A serializable read of one key: the endpoint's replica answers from what it
    /// has applied, without asking the leader, so the answer may lag the latest
    /// write a little, as an informer's cache does. For reads whose staleness a
    /// later conditional write catches, or does not matter (admission's).
    pub async fn get_serializable(&self, key: &str) -> Result<Option<Record>> {
        let page = self
            .range(RangeRequest {
                key: key.as_bytes().to_vec(),
                serializable: true,
                ..Default::default()
            })
            .await?;
        Ok(page.records.into_iter().next())
    }

    /// A linearizable read of one key as it was at `revision` (its latest version at
    /// or before it); fails with `Compacted` once that revision has been compacted.
    pub async fn get_at(&self, key: &str, revision: i64) -> Result<Option<Record>> {
        let page = self
            .range(RangeRequest {
                key: key.as_bytes().to_vec(),
                revision,
                ..Default::default()
            })
            .await?;
        Ok(page.records.into_iter().next())
    }

    /// A linearizable read of at most `limit` keys (at least 1) under `prefix`, from
    /// key `from` on, at `revision` (0: now). `from` is `prefix` for the first page,
    /// and the last key read with `"\0"` appended for the next.
    pub async fn list_page(&self, prefix: &str, from: &str, revision: i64, limit: usize) -> Result<Page> {
        self.page(prefix, from, revision, limit, false).await
    }

    async fn page(&self, prefix: &str, from: &str, revision: i64, limit: usize, serializable: bool) -> Result<Page> {
        if !from.starts_with(prefix) {
            return Err(KvError::Other(format!(
                "a page of {prefix:?} cannot start at {from:?}, outside it"
            )));
        }
        self.range(RangeRequest {
            key: from.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            limit: i64::try_from(limit.max(1)).unwrap_or(i64::MAX),
            revision,
            serializable,
            ..Default::default()
        })
        .await
    }

    /// The store's current revision, by a linearizable read of the one key
    /// `prefix` (as kube-apiserver asks etcd before serving a consistent list from
    /// its cache): the header's revision, whether or not the key exists.
    pub async fn current_revision(&self, prefix: &str) -> Result<i64> {
        let page = self
            .range(RangeRequest {
                key: prefix.as_bytes().to_vec(),
                keys_only: true,
                ..Default::default()
            })
            .await?;
        Ok(page.revision)
    }

    /// A linearizable read of every key under `prefix`, in key order, and the
    /// store's revision at the read; read in pages of [`LIST_PAGE`] keys at that one
    /// revision.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<Record>, i64)> {
        self.list_with(prefix, false).await
    }

    /// [`list`](Self::list) read serializably (see [`get_serializable`](Self::get_serializable)):
    /// the endpoint's replica's state, at its revision.
    pub async fn list_serializable(&self, prefix: &str) -> Result<(Vec<Record>, i64)> {
        self.list_with(prefix, true).await
    }

    async fn list_with(&self, prefix: &str, serializable: bool) -> Result<(Vec<Record>, i64)> {
        let mut attempt = 1;
        'list: loop {
            let (mut records, mut from, mut revision) = (Vec::new(), prefix.to_string(), 0);
            loop {
                let page = match self.page(prefix, &from, revision, LIST_PAGE, serializable).await {
                    Ok(page) => page,
                    // Compacted between two pages: the list has to start over.
                    Err(KvError::Compacted { .. }) if revision > 0 && attempt < LIST_ATTEMPTS => {
                        tracing::debug!(%prefix, revision, "compacted while listing in pages; listing again");
                        attempt += 1;
                        continue 'list;
                    }
                    Err(e) => return Err(e),
                };
                revision = page.revision;
                let Some(last) = page.records.last() else {
                    return Ok((records, revision));
                };
                from = format!("{}\0", last.key);
                records.extend(page.records);
                if !page.more {
                    return Ok((records, revision));
                }
            }
        }
    }
}
