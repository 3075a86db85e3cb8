//! Load generator and benchmarks for berth against etcd (filled in by a later issue).
