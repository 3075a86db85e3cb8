//! Builders for the checkers' tests: hand-written histories read like the scenario
//! they describe. History indices are deliberately not positions (op `n` gets index
//! `2n + 1`), so a checker that confuses the two fails its tests.

use crate::history::{Completed, Consistency, Kind, Op, WatchEvent, WatchSession};

#[derive(Debug, Default)]
pub(crate) struct History {
    pub ops: Vec<Completed>,
}

impl History {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn push(
        &mut self,
        process: u64,
        kind: Kind,
        op: Op,
        invoke_ns: u64,
        complete_ns: Option<u64>,
        revision: Option<i64>,
    ) -> usize {
        let index = 2 * self.ops.len() + 1;
        self.ops.push(Completed {
            index,
            process,
            kind,
            op,
            invoke_ns,
            complete_ns,
            revision,
        });
        index
    }

    /// An operation that completed `ok`; returns its history index.
    pub(crate) fn ok(
        &mut self,
        process: u64,
        op: Op,
        invoke_ns: u64,
        complete_ns: u64,
        revision: Option<i64>,
    ) -> usize {
        self.push(process, Kind::Ok, op, invoke_ns, Some(complete_ns), revision)
    }

    /// An operation whose outcome is unknown.
    pub(crate) fn info(&mut self, process: u64, op: Op, invoke_ns: u64) -> usize {
        self.push(process, Kind::Info, op, invoke_ns, None, None)
    }

    /// An operation that certainly did not happen.
    pub(crate) fn fail(&mut self, process: u64, op: Op, invoke_ns: u64, complete_ns: u64) -> usize {
        self.push(process, Kind::Fail, op, invoke_ns, Some(complete_ns), None)
    }
}

pub(crate) fn read(key: &str, value: Option<&str>) -> Op {
    Op::Read {
        key: key.into(),
        consistency: Consistency::Linearizable,
        value: value.map(Into::into),
    }
}

pub(crate) fn sread(key: &str, value: Option<&str>) -> Op {
    Op::Read {
        key: key.into(),
        consistency: Consistency::Serializable,
        value: value.map(Into::into),
    }
}

pub(crate) fn write(key: &str, value: &str) -> Op {
    Op::Write {
        key: key.into(),
        value: value.into(),
    }
}

pub(crate) fn cas(key: &str, from: &str, to: &str, succeeded: Option<bool>) -> Op {
    Op::Cas {
        key: key.into(),
        from: from.into(),
        to: to.into(),
        succeeded,
    }
}

pub(crate) fn append(keys: &[&str], element: u64, read: Option<Vec<Vec<u64>>>) -> Op {
    Op::Append {
        keys: keys.iter().map(|k| k.to_string()).collect(),
        element,
        read,
    }
}

pub(crate) fn grant(lease: i64, ttl_s: i64, key: &str) -> Op {
    Op::LeaseGrant {
        lease,
        ttl_s,
        key: key.into(),
    }
}

pub(crate) fn keepalive(lease: i64, ttl_s: Option<i64>) -> Op {
    Op::LeaseKeepAlive { lease, ttl_s }
}

pub(crate) fn revoke(lease: i64) -> Op {
    Op::LeaseRevoke { lease }
}

pub(crate) fn lease_read(lease: i64, key: &str, present: Option<bool>) -> Op {
    Op::LeaseRead {
        lease,
        key: key.into(),
        present,
    }
}

/// A put event. `version` 1 creates the key at this revision.
pub(crate) fn put(
    key: &str,
    value: &str,
    revision: i64,
    create_revision: i64,
    version: i64,
    prev: Option<&str>,
) -> WatchEvent {
    WatchEvent {
        key: key.into(),
        is_delete: false,
        value: value.into(),
        mod_revision: revision,
        create_revision,
        version,
        prev_value: prev.map(Into::into),
    }
}

pub(crate) fn delete(key: &str, revision: i64, prev: Option<&str>) -> WatchEvent {
    WatchEvent {
        key: key.into(),
        is_delete: true,
        value: String::new(),
        mod_revision: revision,
        create_revision: 0,
        version: 0,
        prev_value: prev.map(Into::into),
    }
}

pub(crate) fn session(watcher: u64, start_revision: i64, responses: Vec<Vec<WatchEvent>>) -> WatchSession {
    WatchSession {
        watcher,
        start_revision,
        created_revision: 0,
        responses,
        progress_revision: 0,
        compacted: None,
    }
}

/// Seconds as nanoseconds, for lease timelines.
pub(crate) const S: u64 = 1_000_000_000;
