//! For the store's process tests: clusters of real `berth store` replicas launched by
//! `berth_testkit` (each replica with its own data dir and log file under one
//! temporary folder, killed when the cluster is dropped), and etcdctl.

#![allow(dead_code)]

use std::process::{Command, Output};

use berth_testkit::{Cluster, ClusterSpec};

/// Starts `n` replicas, each with `extra_args`, and waits until they have a leader.
pub async fn start(n: usize, extra_args: &[&str]) -> Cluster {
    let mut cluster = Cluster::start(ClusterSpec::berth_store(n).args(extra_args)).expect("starting berth store");
    cluster.wait_for_leader().await.expect("a leader");
    cluster
}

/// The client endpoints of every replica but `excluded` (a leader about to be killed).
pub fn endpoints_except(cluster: &Cluster, excluded: usize) -> Vec<String> {
    (0..cluster.replicas.len())
        .filter(|i| *i != excluded)
        .map(|i| cluster.replicas[i].endpoint())
        .collect()
}

pub async fn connect(endpoints: &[String]) -> etcd_client::Client {
    berth_testkit::connect(endpoints).await.expect("connecting to berth")
}

/// Runs etcdctl against `endpoints`, given as URLs, the way etcd's docs write them.
/// (etcdctl 3.4 then names the URL as the HTTP/2 authority of the connections it dials
/// to one endpoint, for `endpoint status` and the like.)
pub fn etcdctl(endpoints: &[String], args: &[&str]) -> Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg("--command-timeout=10s")
        .args(args)
        .output()
        .expect("running etcdctl (Debian package etcd-client)")
}

pub fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "etcdctl failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The member ID of replica `index`, found by its peer URL in a member list.
pub fn member_id_of(cluster: &Cluster, members: &etcd_client::MemberListResponse, index: usize) -> u64 {
    let url = cluster.replicas[index].peer_url();
    members
        .members()
        .iter()
        .find(|m| m.peer_urls().contains(&url))
        .unwrap_or_else(|| panic!("no member has replica {index}'s peer URL {url}"))
        .id()
}
