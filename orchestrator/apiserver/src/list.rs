//! Lists, whole or in pages, as kube-apiserver serves them over etcd.
//!
//! ```text
//! GET ...?limit=N               read at now ──► revision R; N matching items
//!                               ──► metadata.continue = token(R, last key + "\0"),
//!                                   metadata.remainingItemCount (without selectors)
//! GET ...?limit=N&continue=T    read at T's R from T's key ──► the same R, the next N
//! R compacted in between        410 Expired; its metadata.continue goes on from T's key
//!                               at the current revision (an inconsistent list)
//! ```
//!
//! The store is read in pages of at most [`LIST_PAGE`] keys, all at R, also for a
//! list without `limit`. With selectors a page may match fewer than N items; the
//! reading goes on, page after page at R, until N match or the keys run out, so a
//! response has fewer than N items only at the end, as kube-apiserver's do. Each
//! page's objects are decoded and filtered on the blocking pool.
//!
//! The continue token is kube-apiserver's: unpadded URL-safe base64 of
//! `{"v":"meta.k8s.io/v1","rv":R,"start":"<the next key after the prefix>"}`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ApiServer;
use super::route::Kind;
use super::selector::Filter;
use super::status::ApiError;
use super::storage::decode;
use berth_client::kv::{KvError, LIST_PAGE, Record};

/// What a list asks for.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub filter: Filter,
    /// At most this many items (`limit`; `None` for all of them).
    pub limit: Option<usize>,
    /// Where the previous page ended (`continue`).
    pub continue_token: Option<String>,
    /// Read at exactly this revision (`resourceVersion` with
    /// `resourceVersionMatch=Exact`, or with `limit`) rather than now.
    pub exact_revision: Option<i64>,
    /// Whether, and once it has reached which revision, the watch cache may serve it.
    pub from_cache: FromCache,
}

/// Which lists the watch cache serves, as kube-apiserver 1.32's does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FromCache {
    /// Pages (`limit`, `continue`) and exact revisions: the store serves them.
    #[default]
    No,
    /// `resourceVersion=0`: any revision will do (all of the list: its `limit` is
    /// not honored, as kube-apiserver's cache does not).
    Any,
    /// `resourceVersion=N` (not older than), no `limit`: at N or later.
    AtLeast(i64),
    /// No `resourceVersion`, no `limit`: a consistent list, at the store's current
    /// revision or later.
    Current,
}

const TOKEN_VERSION: &str = "meta.k8s.io/v1";

/// How often a list with no revision of its own starts over when its revision is
/// compacted away between two of its pages.
const ATTEMPTS: usize = 3;

#[derive(Debug, Serialize, Deserialize)]
struct Token {
    #[serde(rename = "v")]
    version: String,
    /// The revision the list is read at; -1: the current one.
    #[serde(rename = "rv")]
    revision: i64,
    /// The key to go on from, after the list's prefix.
    #[serde(rename = "start")]
    start: String,
}

/// The token to go on from `next_key` (under `prefix`) at `revision`.
pub fn encode_continue(prefix: &str, next_key: &str, revision: i64) -> String {
    let token = Token {
        version: TOKEN_VERSION.into(),
        revision,
        start: next_key.strip_prefix(prefix).unwrap_or(next_key).to_string(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).expect("tokens serialize"))
}

/// The key to go on from and the revision to read at (0: the current one), or why
/// the token is not one this server made for `prefix`. As kube-apiserver does, the
/// start key must be a clean path, so that it cannot reach outside the prefix.
pub fn decode_continue(token: &str, prefix: &str) -> Result<(String, i64), String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|e| format!("continue key is not valid: {e}"))?;
    let token: Token = serde_json::from_slice(&bytes).map_err(|e| format!("continue key is not valid: {e}"))?;
    if token.version != TOKEN_VERSION {
        return Err(format!(
            "continue key is not valid: server does not recognize this encoded version {:?}",
            token.version
        ));
    }
    if token.revision == 0 {
        return Err(format!(
            "continue key is not valid: incorrect encoded start resourceVersion (version {TOKEN_VERSION})"
        ));
    }
    if token.start.is_empty() {
        return Err(format!(
            "continue key is not valid: encoded start key empty (version {TOKEN_VERSION})"
        ));
    }
    let key = if token.start.starts_with('/') {
        token.start.clone()
    } else {
        format!("/{}", token.start)
    };
    if !is_clean_path(&key) {
        return Err(format!("continue key is not valid: {}", token.start));
    }
    Ok((format!("{prefix}{}", &key[1..]), token.revision.max(0)))
}

/// Whether Go's `path.Clean` leaves the absolute path as it is.
fn is_clean_path(path: &str) -> bool {
    if path == "/" {
        return true;
    }
    !path.ends_with('/') && path[1..].split('/').all(|part| !matches!(part, "" | "." | ".."))
}

/// One store page's keys, each with its object if it passes the filter.
type Decoded = Vec<(String, Option<Value>)>;

fn decode_page(kind: &'static Kind, filter: &Filter, records: Vec<Record>) -> Decoded {
    records
        .into_iter()
        .map(|record| {
            let object = decode(kind, &record)
                .map_err(|e| tracing::warn!(key = %record.key, error = %e, "skipping a stored object"))
                .ok()
                .filter(|object| filter.matches(object));
            (record.key, object)
        })
        .collect()
}

/// The objects of `kind` (in `namespace`, or all) that pass the filter, as a
/// `<Kind>List`, whole or one page of it.
pub async fn list(
    api: &ApiServer,
    kind: &'static Kind,
    namespace: Option<&str>,
    request: &ListRequest,
) -> Result<Value, ApiError> {
    let prefix = kind.prefix(namespace);
    if request.from_cache != FromCache::No
        && api.settings.watch_cache
        && let Some(list) = from_cache(api, kind, &prefix, request).await?
    {
        return Ok(list);
    }
    let (start, revision) = match &request.continue_token {
        Some(token) => decode_continue(token, &prefix)
            .map_err(|why| ApiError::bad_request(format!("invalid continue token: {why}")))?,
        None => (prefix.clone(), request.exact_revision.unwrap_or(0)),
    };
    let limit = request.limit.filter(|&l| l > 0);
    let mut attempt = 1;
    loop {
        match read(api, kind, &prefix, &start, revision, limit, &request.filter).await {
            Err(KvError::Compacted { .. }) if request.continue_token.is_some() => {
                return Err(ApiError::expired_continue(Some(encode_continue(&prefix, &start, -1))));
            }
            // A list at "now" whose first page's revision went between two pages.
            Err(KvError::Compacted { .. }) if revision == 0 && attempt < ATTEMPTS => attempt += 1,
            Err(e) => return Err(ApiError::from_kv(e, kind, "")),
            Ok(page) => {
                let mut metadata = json!({"resourceVersion": page.revision.to_string()});
                if let Some(next_key) = &page.next_key {
                    metadata["continue"] = encode_continue(&prefix, next_key, page.revision).into();
                    if let Some(remaining) = page.remaining {
                        metadata["remainingItemCount"] = remaining.into();
                    }
                }
                return Ok(json!({
                    "kind": kind.list_kind(),
                    "apiVersion": kind.api_version(),
                    "metadata": metadata,
                    "items": page.items,
                }));
            }
        }
    }
}

/// The list from the kind's watch cache, or `None` when it cannot serve it yet.
async fn from_cache(
    api: &ApiServer,
    kind: &'static Kind,
    prefix: &str,
    request: &ListRequest,
) -> Result<Option<Value>, ApiError> {
    let cache = api.watch_caches.of(&api.kv, kind);
    let node = super::watch_cache::lines::indexed_node(kind, &request.filter);
    let at_least = match request.from_cache {
        FromCache::No | FromCache::Any => 0,
        FromCache::AtLeast(revision) => revision,
        FromCache::Current => (api.kv.current_revision(prefix).await).map_err(|e| ApiError::from_kv(e, kind, ""))?,
    };
    let Some((entries, revision)) = cache.list(prefix, node.as_deref(), at_least).await else {
        return Ok(None);
    };
    let filter = request.filter.clone();
    let items = tokio::task::spawn_blocking(move || {
        let records = entries.iter().map(|e| e.record.clone()).collect();
        decode_page(kind, &filter, records)
            .into_iter()
            .filter_map(|(_, object)| object)
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError::internal(format!("decoding the cached list failed: {e}")))?;
    Ok(Some(json!({
        "kind": kind.list_kind(),
        "apiVersion": kind.api_version(),
        "metadata": {"resourceVersion": revision.to_string()},
        "items": items,
    })))
}

/// What [`read`] found.
struct ListPage {
    items: Vec<Value>,
    revision: i64,
    /// The key to go on from, when the items stopped at the limit before the end.
    next_key: Option<String>,
    /// How many keys are left after the items, when known (no selectors).
    remaining: Option<i64>,
}

/// Reads store pages at one revision from `start` until `limit` items pass the
/// filter or the prefix ends.
async fn read(
    api: &ApiServer,
    kind: &'static Kind,
    prefix: &str,
    start: &str,
    mut revision: i64,
    limit: Option<usize>,
    filter: &Filter,
) -> Result<ListPage, KvError> {
    let mut items = Vec::new();
    let mut from = start.to_string();
    // With selectors each page may match little: ask for more each time, as
    // kube-apiserver does, up to the store client's page.
    let mut page_size = limit.unwrap_or(LIST_PAGE).min(LIST_PAGE);
    let is_everything = filter.is_everything();
    loop {
        let wanted = limit.map_or(LIST_PAGE, |l| l - items.len());
        let size = if is_everything { wanted } else { page_size };
        let page = api
            .kv
            .list_page(prefix, &from, revision, size.clamp(1, LIST_PAGE))
            .await?;
        revision = page.revision;
        let (more, count, read) = (page.more, page.count, page.records.len());
        let page_filter = filter.clone();
        let decoded = tokio::task::spawn_blocking(move || decode_page(kind, &page_filter, page.records))
            .await
            .map_err(|e| KvError::Other(format!("decoding a page of the list failed: {e}")))?;
        let Some((last_key, _)) = decoded.last() else {
            return Ok(ListPage {
                items,
                revision,
                next_key: None,
                remaining: None,
            });
        };
        from = format!("{last_key}\0");
        for (i, (key, object)) in decoded.into_iter().enumerate() {
            let Some(object) = object else { continue };
            items.push(object);
            if limit == Some(items.len()) {
                let is_last = i + 1 == read && !more;
                return Ok(ListPage {
                    items,
                    revision,
                    next_key: (!is_last).then(|| format!("{key}\0")),
                    // The store counted the keys from this page's first on.
                    remaining: (!is_last && is_everything).then(|| count - i as i64 - 1),
                });
            }
        }
        if !more {
            return Ok(ListPage {
                items,
                revision,
                next_key: None,
                remaining: None,
            });
        }
        page_size = (page_size * 2).min(LIST_PAGE);
    }
}
