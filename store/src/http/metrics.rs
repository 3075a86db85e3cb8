//! `/metrics`: the store's gauges in Prometheus' text format, under etcd's names so
//! that etcd's dashboards and alerts read them.

use hyper::StatusCode;

use super::response::{self, HttpResponse};
use crate::store::Store;

const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn metrics(store: &Store) -> HttpResponse {
    response::whole(StatusCode::OK, PROMETHEUS_TEXT, metrics_text(store))
}

fn metrics_text(store: &Store) -> String {
    let metrics = store.raft().metrics().borrow().clone();
    let (revision, compacted, keys, leases, applied) = {
        let state = store.state().read();
        (
            state.kv.current_revision(),
            state.kv.compact_revision(),
            state.kv.key_count(),
            state.leases.len(),
            state.last_applied.map_or(0, |l| l.index),
        )
    };
    let gauges: [(&str, &str, f64); 9] = [
        (
            "etcd_server_has_leader",
            "Whether a leader exists.",
            f64::from(u8::from(metrics.current_leader.is_some())),
        ),
        (
            "etcd_server_is_leader",
            "Whether this member is the leader.",
            f64::from(u8::from(store.is_leader())),
        ),
        (
            "etcd_server_proposals_committed_total",
            "The last committed log index.",
            metrics.last_log_index.unwrap_or(0) as f64,
        ),
        (
            "etcd_server_proposals_applied_total",
            "The last applied log index.",
            applied as f64,
        ),
        (
            "etcd_server_term",
            "The current Raft term.",
            metrics.current_term as f64,
        ),
        (
            "etcd_mvcc_db_total_size_in_bytes",
            "Backend size on disk.",
            store.backend().size_bytes() as f64,
        ),
        (
            "etcd_debugging_mvcc_current_revision",
            "The current revision.",
            revision as f64,
        ),
        (
            "etcd_debugging_mvcc_compact_revision",
            "The last compacted revision.",
            compacted as f64,
        ),
        ("etcd_debugging_mvcc_keys_total", "Keys with history.", keys as f64),
    ];
    let mut out = String::new();
    for (name, help, value) in gauges {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"));
    }
    out.push_str(&format!(
        "# HELP etcd_debugging_mvcc_events_total Total number of events sent by this member.\n\
         # TYPE etcd_debugging_mvcc_events_total counter\netcd_debugging_mvcc_events_total {}\n",
        store.watch_events_sent()
    ));
    out.push_str(&format!(
        "# HELP etcd_debugging_lease_total Leases granted and alive.\n# TYPE etcd_debugging_lease_total gauge\netcd_debugging_lease_total {leases}\n"
    ));
    out
}
