//! The help text. It lists every flag of the [`Flag`](super::flag::Flag) table (a test
//! checks that) with etcd's descriptions, so that it reads like `etcd --help`.

/// `berth store --help`, laid out like etcd's.
pub const STORE_USAGE: &str = "\
Usage:

  berth store [flags]
    Start a berth store replica: an etcd-compatible key-value server (etcdctl works).

  berth store --version
    Show the version of berth.

  berth store -h | --help
    Show this help.

Flags are etcd's: `--flag value` or `--flag=value`; a true/false flag alone means
true (`--flag=false` to turn it off). Each can also be set by an
environment variable, ETCD_ followed by the flag name in upper case with dashes as
underscores (ETCD_NAME, ETCD_INITIAL_CLUSTER, ...); a flag on the command line wins.

Member:
  --name 'default'
    Human-readable name for this member.
  --data-dir '${name}.etcd'
    Path to the data directory.
  --snapshot-count '100000'
    Number of committed transactions to trigger a snapshot to disk.
  --heartbeat-interval '100'
    Time (in milliseconds) of a heartbeat interval.
  --election-timeout '1000'
    Time (in milliseconds) for an election to timeout. At least 5 times the heartbeat
    interval, at most 50000.
  --listen-peer-urls 'http://localhost:2380'
    List of URLs to listen on for peer traffic.
  --listen-client-urls 'http://localhost:2379'
    List of URLs to listen on for client traffic.
  --quota-backend-bytes '0'
    Raise alarms when backend size exceeds the given quota (0 defaults to 2 GiB).
  --max-request-bytes '1572864'
    Maximum client request size in bytes the server will accept.

Clustering:
  --initial-advertise-peer-urls 'http://localhost:2380'
    List of this member's peer URLs to advertise to the rest of the cluster.
    Defaults to --listen-peer-urls when those are set and name a host.
  --initial-cluster 'default=http://localhost:2380'
    Initial cluster configuration for bootstrapping: name=peer-url,... (a name
    repeats for each of its URLs). Defaults to ${name}=${initial-advertise-peer-urls}.
  --initial-cluster-state 'new'
    Initial cluster state ('new' or 'existing').
  --initial-cluster-token 'etcd-cluster'
    Initial cluster token for the etcd cluster during bootstrap.
  --advertise-client-urls 'http://localhost:2379'
    List of this member's client URLs to advertise to the public.
    Defaults to --listen-client-urls when those are set and name a host.
  --auto-compaction-retention '0'
    Auto compaction retention length. 0 means disable auto compaction.
  --auto-compaction-mode 'periodic'
    Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for
    duration based retention, defaulting to hours if no time unit is provided (e.g.
    '5m'). 'revision' for revision number based retention.
  --strict-reconfig-check 'true'
    Reject reconfiguration requests that would cause quorum loss.

Profiling and Monitoring:
  --listen-metrics-urls ''
    List of URLs to listen on for the metrics and health endpoints.

Logging:
  --log-level 'info'
    Configures log level. Only supports debug, info, warn, error, panic, or fatal.

Experimental feature:
  --experimental-initial-corrupt-check 'false'
    Enable to check data corruption before serving any client/peer traffic.
  --experimental-watch-progress-notify-interval '10m'
    Duration of periodical watch progress notification.
  --experimental-corrupt-check-time '0s'
    Duration of time between cluster corruption check passes.

berth's own flags:
  --dial-peer-urls ''
    Reach the named members through these URLs instead of their advertised peer
    URLs, as name=url,name=url (a proxy in front of them; the fault-injection
    suite routes every peer link through one).
  --test-fault ''
    Deliberately break a guarantee or slow the store, for the fault-injection
    suite: stale-reads (linearizable reads served locally, without a read index);
    slow-disk (each raft log sync first waits the milliseconds written in the
    file test-fault-slow-disk-ms in the data dir, if there is one).
    Never use it for real data.

URLs are http://host:port; TLS (https) and unix sockets are not supported yet.
Other etcd flags (--wal-dir, --cert-file, --discovery, --proxy, ...) are refused
by name until berth supports them.
";
