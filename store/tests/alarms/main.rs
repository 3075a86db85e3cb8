//! Alarms as etcd raises them, on clusters of real `berth store` processes: the
//! backend quota (NOSPACE), a full disk (NOSPACE, on a small tmpfs), and the leader's
//! periodic corruption check (CORRUPT). Listed and disarmed with etcdctl. And a
//! replica whose Raft core stops notices, so that it does not answer on as a zombie.

#[path = "../common/mod.rs"]
mod common;

mod corruption;
mod disk_full;
mod health;
mod quota;
mod stopped_core;
