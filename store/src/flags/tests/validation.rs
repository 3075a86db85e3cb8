//! The checks across flags: this member in the initial cluster, and the election timeout.

use super::*;

#[test]
fn this_member_must_be_in_the_initial_cluster() {
    let message = parse_err(&format!("--name n4 --initial-cluster {THREE_MEMBERS}"));
    assert!(message.contains(r#""n4""#), "{message}");
    assert!(message.contains("--initial-cluster"), "{message}");
    assert!(message.contains("n1, n2, n3"), "{message}");
    // Joining an existing cluster still needs the name.
    let message = parse_err(&format!(
        "--name n4 --initial-cluster-state existing --initial-cluster {THREE_MEMBERS}"
    ));
    assert!(message.contains(r#""n4""#), "{message}");
}

#[test]
fn this_member_must_have_exactly_its_advertised_peer_urls() {
    let message = parse_err(&format!(
        "--name n1 --initial-advertise-peer-urls http://127.0.0.1:9999 \
         --initial-cluster {THREE_MEMBERS}"
    ));
    assert_eq!(
        message,
        "--initial-cluster has n1=http://127.0.0.1:2380 but --initial-advertise-peer-urls \
         is http://127.0.0.1:9999 (member \"n1\" must have exactly its advertised peer URLs)"
    );
    // A subset is not enough either.
    let message = parse_err(
        "--name n1 --initial-advertise-peer-urls http://a:1,http://b:1 \
         --initial-cluster n1=http://a:1",
    );
    assert!(message.contains("--initial-cluster has n1=http://a:1 but"), "{message}");
    // etcd only checks the URLs when bootstrapping a new cluster.
    parse(&format!(
        "--name n1 --initial-advertise-peer-urls http://127.0.0.1:9999 \
         --initial-cluster-state existing --initial-cluster {THREE_MEMBERS}"
    ))
    .unwrap();
    // The etcd default initial cluster does not follow a changed advertise URL.
    let message = parse_err(
        "--initial-advertise-peer-urls http://127.0.0.1:2380 \
         --initial-cluster default=http://localhost:2380",
    );
    assert!(message.contains("default=http://localhost:2380"), "{message}");
    assert!(message.contains("http://127.0.0.1:2380"), "{message}");
}

#[test]
fn election_timeout_must_be_five_heartbeats_and_at_most_fifty_seconds() {
    assert_eq!(
        parse_err("--election-timeout 100"),
        "--election-timeout[100ms] should be at least as 5 times as \
         --heartbeat-interval[100ms]"
    );
    assert_eq!(
        parse_err("--heartbeat-interval 1000 --election-timeout 1"),
        "--election-timeout[1ms] should be at least as 5 times as \
         --heartbeat-interval[1000ms]"
    );
    parse("--heartbeat-interval 200 --election-timeout 1000").unwrap();
    assert_eq!(
        parse_err("--election-timeout 60000"),
        "--election-timeout[60000ms] is too long, and should be set less than 50000ms"
    );
}
