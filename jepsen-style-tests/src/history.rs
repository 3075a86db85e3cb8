//! The recorded history: every operation a client attempted, as an invocation and a
//! completion, in the order they happened. Written as JSON lines, one event each.
//!
//! A completion is `ok` (it happened, with this result), `fail` (it certainly did
//! not happen) or `info` (unknown: it may or may not have taken effect, as with a
//! write that timed out). Checkers must never treat `info` as absent.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Invoke,
    Ok,
    Fail,
    Info,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    Linearizable,
    Serializable,
}

/// What an operation does, and on completion what it returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum Op {
    /// A register read. `value` is the result on `ok` (None: the key is absent).
    Read {
        key: String,
        consistency: Consistency,
        value: Option<String>,
    },
    /// A register write of a value unique to this operation.
    Write { key: String, value: String },
    /// Compare-and-swap: if the key holds `from`, set it to `to`. On `ok`,
    /// `succeeded` says whether the compare held.
    Cas {
        key: String,
        from: String,
        to: String,
        succeeded: Option<bool>,
    },
    /// A transaction that reads `keys` and appends `element` to the list in each
    /// (list-append). On `ok`, `read` holds the lists it read before appending.
    Append {
        keys: Vec<String>,
        element: u64,
        read: Option<Vec<Vec<u64>>>,
    },
    /// A lease granted with `ttl_s` and `key` attached to it.
    LeaseGrant { lease: i64, ttl_s: i64, key: String },
    /// A keepalive of a lease; `ttl_s` is what the server answered (0: not found).
    LeaseKeepAlive { lease: i64, ttl_s: Option<i64> },
    /// An explicit revocation.
    LeaseRevoke { lease: i64 },
    /// A read of a leased key: whether it was there.
    LeaseRead {
        lease: i64,
        key: String,
        present: Option<bool>,
    },
}

impl Op {
    /// The register key the operation is about, for the per-key checkers.
    pub fn register_key(&self) -> Option<&str> {
        match self {
            Op::Read { key, .. } | Op::Write { key, .. } | Op::Cas { key, .. } => Some(key),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Op::Read { .. } => "read",
            Op::Write { .. } => "write",
            Op::Cas { .. } => "cas",
            Op::Append { .. } => "append",
            Op::LeaseGrant { .. } => "lease-grant",
            Op::LeaseKeepAlive { .. } => "lease-keepalive",
            Op::LeaseRevoke { .. } => "lease-revoke",
            Op::LeaseRead { .. } => "lease-read",
        }
    }
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The client (Jepsen's "process"); a client runs one operation at a time.
    pub process: u64,
    #[serde(rename = "type")]
    pub kind: Kind,
    #[serde(flatten)]
    pub op: Op,
    /// Nanoseconds since the run started, from a monotonic clock.
    pub time_ns: u64,
    /// The store revision in the response header, on `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An invocation paired with its completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// Index of the invocation in the history (a stable name for the operation).
    pub index: usize,
    pub process: u64,
    pub kind: Kind,
    /// The operation as completed (results filled in); for `info`, as invoked.
    pub op: Op,
    pub invoke_ns: u64,
    /// None for `info`: it may take effect at any time after the invocation.
    pub complete_ns: Option<u64>,
    pub revision: Option<i64>,
}

/// Pairs every invocation with the next completion of the same process. An
/// invocation left without a completion (the run ended) counts as `info`.
pub fn pair(events: &[Event]) -> Vec<Completed> {
    let mut open: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    let mut out: Vec<Option<Completed>> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match e.kind {
            Kind::Invoke => {
                open.insert(e.process, out.len());
                out.push(Some(Completed {
                    index: i,
                    process: e.process,
                    kind: Kind::Info,
                    op: e.op.clone(),
                    invoke_ns: e.time_ns,
                    complete_ns: None,
                    revision: None,
                }));
            }
            kind => {
                if let Some(slot) = open.remove(&e.process)
                    && let Some(c) = out[slot].as_mut()
                {
                    c.kind = kind;
                    if kind != Kind::Info {
                        c.op = e.op.clone();
                        c.complete_ns = Some(e.time_ns);
                    }
                    c.revision = e.revision;
                }
            }
        }
    }
    out.into_iter().flatten().collect()
}

/// What one watcher saw: where it started, and each response's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchSession {
    pub watcher: u64,
    /// The revision the watch was created from (0: "from now").
    pub start_revision: i64,
    /// The header revision of the `created` response.
    pub created_revision: i64,
    /// Responses in arrival order; a transaction's events must share one.
    pub responses: Vec<Vec<WatchEvent>>,
    /// The highest revision a progress response vouched for on this session.
    pub progress_revision: i64,
    /// Set when the session was cancelled because its start was compacted.
    pub compacted: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    pub key: String,
    pub is_delete: bool,
    pub value: String,
    pub mod_revision: i64,
    pub create_revision: i64,
    pub version: i64,
    /// The value `prev_kv` carried, if any.
    pub prev_value: Option<String>,
}

pub fn to_json_lines(events: &[Event]) -> String {
    let mut out = String::new();
    for e in events {
        out.push_str(&serde_json::to_string(e).expect("history events serialise"));
        out.push('\n');
    }
    out
}

pub fn from_json_lines(text: &str) -> Result<Vec<Event>, serde_json::Error> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_round_trip() {
        let events = vec![
            Event {
                process: 1,
                kind: Kind::Invoke,
                op: Op::Write {
                    key: "r1".into(),
                    value: "v1".into(),
                },
                time_ns: 10,
                revision: None,
                error: None,
            },
            Event {
                process: 1,
                kind: Kind::Ok,
                op: Op::Write {
                    key: "r1".into(),
                    value: "v1".into(),
                },
                time_ns: 20,
                revision: Some(5),
                error: None,
            },
        ];
        let text = to_json_lines(&events);
        assert!(
            text.contains("\"type\":\"invoke\"") && text.contains("\"f\":\"write\""),
            "{text}"
        );
        assert_eq!(from_json_lines(&text).unwrap(), events);
    }

    #[test]
    fn an_unfinished_invocation_is_unknown() {
        let events = vec![Event {
            process: 3,
            kind: Kind::Invoke,
            op: Op::Write {
                key: "k".into(),
                value: "v".into(),
            },
            time_ns: 1,
            revision: None,
            error: None,
        }];
        let paired = pair(&events);
        assert_eq!(paired.len(), 1);
        assert_eq!(paired[0].kind, Kind::Info);
        assert_eq!(paired[0].complete_ns, None);
    }
}
