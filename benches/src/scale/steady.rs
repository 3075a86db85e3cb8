//! What one more node costs the control plane at rest: every node Ready, nothing
//! else changing, over a window of --steady. The counters of every API server's
//! and store replica's `/metrics` and each process's CPU time are read before and
//! after; their differences, per node and per second, should not grow with the
//! number of nodes (run two sizes to see it).
//!
//! ```text
//!  API servers  apiserver_request_total (all; Lease PUTs)  ─┐
//!               apiserver_watch_events_total                 │ after − before
//!  store        etcd_debugging_mvcc_current_revision (max)   ├─► ÷ window ÷ nodes
//!               etcd_server_proposals_committed_total (max)  │
//!               etcd_debugging_mvcc_events_total (sum)       │
//!  processes    CPU seconds (/proc/PID/stat), RSS at the end ┘
//! ```

use serde_json::{Value, json};

use crate::api::http::Connection;

/// The counters at one moment, summed over the API servers (or, for the store's
/// revision and log index, the furthest replica's).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    pub api_requests: f64,
    pub lease_puts: f64,
    pub api_watch_events: f64,
    pub revision: f64,
    pub log_index: f64,
    pub store_watch_events: f64,
    /// The highest Raft term of the replicas: each election raises it.
    pub term: f64,
}

/// The sum of the series `name` (with any labels) whose lines contain every one
/// of `labels`, in a Prometheus text body.
pub fn series_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    (text.lines())
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

impl Counters {
    /// Adds one API server's `/metrics`.
    pub fn add_api(&mut self, text: &str) {
        self.api_requests += series_sum(text, "apiserver_request_total", &[]);
        self.lease_puts += series_sum(
            text,
            "apiserver_request_total",
            &["resource=\"leases\"", "verb=\"PUT\""],
        );
        self.api_watch_events += series_sum(text, "apiserver_watch_events_total", &[]);
    }

    /// Adds one store replica's `/metrics`.
    pub fn add_store(&mut self, text: &str) {
        let revision = series_sum(text, "etcd_debugging_mvcc_current_revision", &[]);
        let log_index = series_sum(text, "etcd_server_proposals_committed_total", &[]);
        self.revision = self.revision.max(revision);
        self.log_index = self.log_index.max(log_index);
        self.store_watch_events += series_sum(text, "etcd_debugging_mvcc_events_total", &[]);
        self.term = self.term.max(series_sum(text, "etcd_server_term", &[]));
    }
}

/// Reads every API server's and store replica's counters (authorities, `host:port`).
pub async fn read(apis: &[String], stores: &[String]) -> anyhow::Result<Counters> {
    let mut counters = Counters::default();
    for (authorities, add) in [
        (apis, Counters::add_api as fn(&mut Counters, &str)),
        (stores, Counters::add_store),
    ] {
        for authority in authorities {
            let mut c = Connection::open(authority).await?;
            let body = c.get("/metrics").await?.expect(200)?;
            add(&mut counters, &String::from_utf8_lossy(&body));
        }
    }
    Ok(counters)
}

/// The cost per node of one steady window.
#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    pub nodes: u32,
    pub window_s: f64,
    pub api_requests_per_node_s: f64,
    pub lease_puts_per_node_s: f64,
    pub revisions_per_node_s: f64,
    pub log_entries_per_node_s: f64,
    pub api_watch_events_per_node_s: f64,
    pub store_watch_events_per_node_s: f64,
    /// The control plane's (every server's) CPU over the window, in millicores per node.
    pub cpu_millicores_per_node: f64,
    /// Every server's resident memory at the end of the window, summed, in MiB.
    pub servers_rss_mib: f64,
}

/// The per-node rates between two readings `window_s` apart, with the servers'
/// CPU seconds spent in between.
pub fn cost(
    nodes: u32,
    window_s: f64,
    before: &Counters,
    after: &Counters,
    server_cpu_s: f64,
    servers_rss_mib: f64,
) -> Cost {
    let per = |delta: f64| delta / window_s.max(1e-9) / f64::from(nodes.max(1));
    Cost {
        nodes,
        window_s,
        api_requests_per_node_s: per(after.api_requests - before.api_requests),
        lease_puts_per_node_s: per(after.lease_puts - before.lease_puts),
        revisions_per_node_s: per(after.revision - before.revision),
        log_entries_per_node_s: per(after.log_index - before.log_index),
        api_watch_events_per_node_s: per(after.api_watch_events - before.api_watch_events),
        store_watch_events_per_node_s: per(after.store_watch_events - before.store_watch_events),
        cpu_millicores_per_node: per(server_cpu_s) * 1000.0,
        servers_rss_mib,
    }
}

impl Cost {
    pub fn print(&self) {
        println!(
            "  steady state, per node        ({:.0} s with every node Ready, nothing else changing)",
            self.window_s
        );
        let rows = [
            ("API requests", self.api_requests_per_node_s, "/s"),
            ("  of which Lease PUTs", self.lease_puts_per_node_s, "/s"),
            ("store revisions", self.revisions_per_node_s, "/s"),
            ("Raft log entries", self.log_entries_per_node_s, "/s"),
            ("API watch events sent", self.api_watch_events_per_node_s, "/s"),
            ("store watch events sent", self.store_watch_events_per_node_s, "/s"),
            ("servers' CPU", self.cpu_millicores_per_node, " millicores"),
        ];
        for (name, value, unit) in rows {
            println!("    {name:<27} {value:>10.4}{unit}");
        }
        println!(
            "    servers' RSS (all nodes)    {:>10.0} MiB, {:.3} MiB per node",
            self.servers_rss_mib,
            self.servers_rss_mib / f64::from(self.nodes.max(1))
        );
    }

    pub fn to_json(&self) -> Value {
        json!({
            "window_s": self.window_s,
            "api_requests_per_node_s": self.api_requests_per_node_s,
            "lease_puts_per_node_s": self.lease_puts_per_node_s,
            "revisions_per_node_s": self.revisions_per_node_s,
            "log_entries_per_node_s": self.log_entries_per_node_s,
            "api_watch_events_per_node_s": self.api_watch_events_per_node_s,
            "store_watch_events_per_node_s": self.store_watch_events_per_node_s,
            "cpu_millicores_per_node": self.cpu_millicores_per_node,
            "servers_rss_mib": self.servers_rss_mib,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_summed_over_their_labels_and_told_from_longer_names() {
        let text = "# TYPE apiserver_request_total counter\n\
            apiserver_request_total{code=\"200\",resource=\"leases\",verb=\"PUT\"} 40\n\
            apiserver_request_total{code=\"409\",resource=\"leases\",verb=\"PUT\"} 2\n\
            apiserver_request_total{code=\"200\",resource=\"pods\",verb=\"LIST\"} 3\n\
            apiserver_request_total_other 100\n";
        assert_eq!(series_sum(text, "apiserver_request_total", &[]), 45.0);
        assert_eq!(
            series_sum(
                text,
                "apiserver_request_total",
                &["resource=\"leases\"", "verb=\"PUT\""]
            ),
            42.0
        );
        assert_eq!(
            series_sum(
                "etcd_debugging_mvcc_current_revision 1234\n",
                "etcd_debugging_mvcc_current_revision",
                &[]
            ),
            1234.0
        );
    }

    #[test]
    fn the_cost_is_per_node_and_second_and_the_store_counts_its_furthest_replica() {
        let mut before = Counters::default();
        before.add_store("etcd_debugging_mvcc_current_revision 100\netcd_server_proposals_committed_total 50\n");
        before.add_store("etcd_debugging_mvcc_current_revision 98\netcd_server_proposals_committed_total 49\n");
        before.add_api("apiserver_request_total{resource=\"leases\",verb=\"PUT\"} 10\n");
        let mut after = Counters::default();
        after.add_store(
            "etcd_debugging_mvcc_current_revision 300\netcd_server_proposals_committed_total 70\n\
             etcd_debugging_mvcc_events_total 40\n",
        );
        after.add_api(
            "apiserver_request_total{resource=\"leases\",verb=\"PUT\"} 210\napiserver_watch_events_total 20\n",
        );
        let cost = cost(10, 20.0, &before, &after, 2.0, 300.0);
        assert_eq!(cost.lease_puts_per_node_s, 1.0);
        assert_eq!(cost.api_requests_per_node_s, 1.0);
        assert_eq!(cost.revisions_per_node_s, 1.0);
        assert_eq!(cost.log_entries_per_node_s, 0.1);
        assert_eq!(cost.store_watch_events_per_node_s, 0.2);
        assert_eq!(cost.api_watch_events_per_node_s, 0.1);
        assert_eq!(cost.cpu_millicores_per_node, 10.0);
    }

    #[test]
    fn the_term_is_the_highest_replicas() {
        let mut counters = Counters::default();
        counters.add_store(
            "etcd_server_term 3
etcd_server_termination_total 9
",
        );
        counters.add_store(
            "# TYPE etcd_server_term gauge
etcd_server_term 4
",
        );
        counters.add_store(
            "etcd_server_term 2
",
        );
        assert_eq!(counters.term, 4.0);
    }
}
