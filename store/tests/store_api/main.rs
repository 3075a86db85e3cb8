//! The etcd v3 API of a `berth store` cluster of real processes, driven by etcdctl and
//! by the `etcd-client` crate as real users drive etcd; one file per concern.

#[path = "../common/mod.rs"]
mod common;

mod concurrency;
mod etcdctl;
mod gateway;
mod http;
mod http_client;
mod kv;
mod leadership;
mod lease;
mod limits;
mod maintenance;
mod members;
mod revisions;
mod snapshot;
mod watch;
