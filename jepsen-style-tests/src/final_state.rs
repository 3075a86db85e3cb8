//! The checks that ask the healed cluster, after the workloads stopped: acknowledged
//! writes are still there (`durability`), the replicas agree (`convergence`), none
//! exited by itself (`crashes`), unattended leases expire (`lease-expiry`), and a TLS
//! run's cluster refuses clients without a certificate (`client-auth`).
//!
//! Unlike the history checkers these talk to the cluster, but their verdicts follow the
//! same rules (`Findings`): a cluster that does not answer is an anomaly, never a
//! pass, and a check with nothing to check is not valid.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::GetOptions;
use tokio::sync::Mutex;

use crate::check::{CheckResult, Findings, describe};
use crate::cluster::Cluster;
use crate::history::{Completed, Kind, Op};
use crate::workload::{self, ClientTls, append, lease};

/// The key the runner writes once the cluster is healed.
pub const RECOVERED_KEY: &str = "jepsen/recovered";

/// How long the lease-expiry check waits, with nobody sending keepalives, before it
/// looks: longer than a TTL plus an election.
pub const LEASE_EXPIRY_WAIT: Duration = Duration::from_secs(lease::TTL_S as u64 * 2 + 3);

/// What an acknowledged write left at its revision: one value per key.
struct Written<'a> {
    op: &'a Completed,
    revision: i64,
    /// (key, what reading it at `revision` must give).
    values: Vec<(&'a str, Expected)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Expected {
    Text(String),
    /// An append leaves the list it read plus its element.
    List(Vec<u64>),
}

fn written(c: &Completed) -> Option<Written<'_>> {
    if c.kind != Kind::Ok {
        return None;
    }
    let revision = c.revision?;
    let values = match &c.op {
        Op::Write { key, value } => vec![(key.as_str(), Expected::Text(value.clone()))],
        Op::Cas {
            key,
            to,
            succeeded: Some(true),
            ..
        } => vec![(key.as_str(), Expected::Text(to.clone()))],
        Op::Append {
            keys,
            element,
            read: Some(lists),
        } if lists.len() == keys.len() => keys
            .iter()
            .zip(lists)
            .map(|(key, list)| {
                let mut after = list.clone();
                after.push(*element);
                (key.as_str(), Expected::List(after))
            })
            .collect(),
        _ => return None,
    };
    Some(Written {
        op: c,
        revision,
        values,
    })
}

/// Every acknowledged write (register writes, successful compare-and-swaps, appends)
/// is still there: reading its keys at its revision gives what it wrote, written at
/// that revision. A write whose revision was compacted away is not counted as checked.
pub async fn durability_check(endpoints: &[String], tls: Option<&ClientTls>, completed: &[Completed]) -> CheckResult {
    const NAME: &str = "durability";
    let started = Instant::now();
    let mut findings = Findings::default();
    let writes: Vec<Written> = completed.iter().filter_map(written).collect();
    let mut checked = 0;
    let Some(mut client) = workload::connect(endpoints, tls).await else {
        findings.flag("unavailable", Vec::new(), "the healed cluster does not answer".into());
        return findings.finish(NAME, checked, started);
    };
    'writes: for w in &writes {
        for (key, expected) in &w.values {
            let options = GetOptions::new().with_revision(w.revision);
            let found = match client.get(*key, Some(options)).await {
                Ok(resp) => resp.kvs().first().map(|kv| {
                    let text = workload::text(kv.value());
                    let value = match expected {
                        Expected::Text(_) => Expected::Text(text),
                        Expected::List(_) => Expected::List(append::parse_list(&text)),
                    };
                    (value, kv.mod_revision())
                }),
                Err(e) if e.to_string().contains("compacted") => continue 'writes,
                Err(e) => {
                    let description = format!("reading {key} at revision {} failed: {e}", w.revision);
                    findings.flag("unreadable", vec![w.op.index], description);
                    continue 'writes;
                }
            };
            if found.as_ref() != Some(&(expected.clone(), w.revision)) {
                let description = format!(
                    "acknowledged {} at revision {} is gone: reading {key} at {} gives {found:?}",
                    describe(w.op),
                    w.revision,
                    w.revision
                );
                findings.flag("lost-write", vec![w.op.index], description);
            }
        }
        checked += 1;
    }
    findings.finish(NAME, checked, started)
}

/// Every replica reports the same HashKV at the same revision, and serves.
/// `ops_checked` counts the replicas that answered.
pub async fn convergence_check(cluster: &Arc<Mutex<Cluster>>, endpoints: &[String]) -> CheckResult {
    const NAME: &str = "convergence";
    let started = Instant::now();
    let mut findings = Findings::default();
    let tls = cluster.lock().await.client_tls().cloned();
    let tls = tls.as_ref();
    let revision = match workload::connect(endpoints, tls).await {
        Some(mut c) => c
            .get(RECOVERED_KEY, None)
            .await
            .ok()
            .and_then(|r| r.header().map(|h| h.revision())),
        None => None,
    };
    let Some(revision) = revision else {
        findings.flag("unavailable", Vec::new(), "no revision after healing".into());
        return findings.finish(NAME, 0, started);
    };
    let names: Vec<String> = cluster.lock().await.names();
    let mut hashes = Vec::new();
    for (endpoint, name) in endpoints.iter().zip(&names) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut got = None;
        while Instant::now() < deadline {
            // The linearizable read first makes the replica apply everything
            // committed (a compaction, say, changes no revision).
            if let Some(mut c) = workload::connect(std::slice::from_ref(endpoint), tls).await
                && c.get(RECOVERED_KEY, None).await.is_ok()
                && let Ok(resp) = c.hash_kv(revision).await
                && resp.header().is_some_and(|h| h.revision() >= revision)
            {
                got = Some(resp.hash());
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        match got {
            Some(hash) => hashes.push((name.clone(), hash)),
            None => findings.flag(
                "not-serving",
                Vec::new(),
                format!("{name} did not answer HashKV at revision {revision} within 20 s of healing"),
            ),
        }
    }
    if hashes.windows(2).any(|w| w[0].1 != w[1].1) {
        let description = format!("replicas disagree on HashKV at revision {revision}: {hashes:?}");
        findings.flag("divergence", Vec::new(), description);
    }
    findings.finish(NAME, hashes.len(), started)
}

/// No replica exited on its own (a panic, a fatal storage error) during the run.
/// `ops_checked` counts the replicas watched.
pub async fn crash_check(cluster: &Arc<Mutex<Cluster>>) -> CheckResult {
    let started = Instant::now();
    let mut findings = Findings::default();
    let mut c = cluster.lock().await;
    let late = c.reap_crashed();
    c.crashes.extend(late);
    for description in &c.crashes {
        findings.flag("crash", Vec::new(), description.clone());
    }
    findings.finish("crashes", c.len(), started)
}

/// A TLS run's cluster takes only clients with a certificate of its CA: every replica
/// serves a read to a client that presents the run's certificate, and refuses one
/// that trusts the CA but presents none. A replica that does not serve the certified
/// client leaves the question open (its refusal would prove nothing); one that
/// answers the uncertified client is an anomaly. `ops_checked` counts the replicas
/// that were asked both ways.
pub async fn client_auth_check(endpoints: &[String], tls: &ClientTls, uncertified: &ClientTls) -> CheckResult {
    const NAME: &str = "client-auth";
    let started = Instant::now();
    let mut findings = Findings::default();
    let mut checked = 0;
    for endpoint in endpoints {
        let endpoint = std::slice::from_ref(endpoint);
        let certified = match workload::connect(endpoint, Some(tls)).await {
            Some(mut c) => c.get(RECOVERED_KEY, None).await.map(|_| ()).map_err(|e| e.to_string()),
            None => Err("no connection".to_string()),
        };
        if let Err(e) = certified {
            let description = format!("{} did not serve a client with the certificate: {e}", endpoint[0]);
            findings.undecided("unavailable", Vec::new(), description);
            continue;
        }
        if let Some(mut c) = workload::connect(endpoint, Some(uncertified)).await
            && let Ok(resp) = c.get(RECOVERED_KEY, None).await
        {
            let description = format!(
                "{} served a client without a certificate (revision {})",
                endpoint[0],
                resp.header().map_or(0, |h| h.revision())
            );
            findings.flag("no-client-auth", Vec::new(), description);
        }
        checked += 1;
    }
    findings.finish(NAME, checked, started)
}

/// Once nothing keeps them alive, every lease expires and takes its key with it.
/// After `wait`, every granted lease's key is read; a key still there is an anomaly,
/// and so is a cluster that cannot be asked (the check then says what it could not
/// read, rather than pass on keys it never saw). `ops_checked` counts the keys read.
pub async fn lease_expiry_check(
    endpoints: &[String],
    tls: Option<&ClientTls>,
    completed: &[Completed],
    wait: Duration,
) -> CheckResult {
    const NAME: &str = "lease-expiry";
    let started = Instant::now();
    let mut findings = Findings::default();
    let granted: Vec<(&Completed, &str, i64)> = completed
        .iter()
        .filter(|c| c.kind == Kind::Ok)
        .filter_map(|c| match &c.op {
            Op::LeaseGrant { key, lease, .. } => Some((c, key.as_str(), *lease)),
            _ => None,
        })
        .collect();
    if granted.is_empty() {
        return findings.finish(NAME, 0, started);
    }
    tokio::time::sleep(wait).await;
    let mut checked = 0;
    let Some(mut client) = workload::connect(endpoints, tls).await else {
        let description = format!(
            "could not connect to the healed cluster ({}) to see whether {} leases expired",
            endpoints.join(", "),
            granted.len()
        );
        findings.flag("unavailable", Vec::new(), description);
        return findings.finish(NAME, checked, started);
    };
    for (g, key, lease) in &granted {
        match client.get(*key, None).await {
            Ok(resp) if resp.count() > 0 => {
                let description = format!("key {key} of lease {lease:x} is still there long after its last keepalive");
                findings.flag("lease-never-expired", vec![g.index], description);
            }
            Ok(_) => {}
            Err(e) => {
                // One unanswered read says the cluster is gone; the rest would only
                // wait for the same timeout.
                let description = format!(
                    "could not read {key} of lease {lease:x} from the healed cluster ({}), so {} of {} leases were not checked: {e}",
                    endpoints.join(", "),
                    granted.len() - checked,
                    granted.len()
                );
                findings.flag("unavailable", vec![g.index], description);
                break;
            }
        }
        checked += 1;
    }
    findings.finish(NAME, checked, started)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::fixture::History;
    use crate::check::{NOTHING_CHECKED, UNDECIDED, Verdict};

    fn unreachable_endpoint() -> Vec<String> {
        vec![format!("http://127.0.0.1:{}", berth_testkit::free_port())]
    }

    fn one_grant() -> History {
        let mut h = History::new();
        let grant = Op::LeaseGrant {
            lease: 0x1234,
            ttl_s: lease::TTL_S,
            key: "l/0".into(),
        };
        h.ok(1, grant, 0, 10, Some(2));
        h
    }

    #[tokio::test]
    async fn lease_expiry_fails_when_the_cluster_cannot_be_reached() {
        let h = one_grant();
        let r = lease_expiry_check(&unreachable_endpoint(), None, &h.ops, Duration::ZERO).await;
        assert_eq!(r.verdict, Verdict::Invalid, "{r:?}");
        assert_eq!(r.ops_checked, 0);
        let a = &r.anomalies[0];
        assert_eq!(a.kind, "unavailable", "{r:?}");
        assert!(
            a.description.contains("l/0") && a.description.contains("1 of 1 leases were not checked"),
            "{}",
            a.description
        );
    }

    #[tokio::test]
    async fn lease_expiry_with_no_granted_lease_is_not_valid_and_does_not_wait() {
        let mut h = History::new();
        h.info(
            1,
            Op::LeaseGrant {
                lease: 0,
                ttl_s: lease::TTL_S,
                key: "l/0".into(),
            },
            0,
        );
        let r = lease_expiry_check(&unreachable_endpoint(), None, &h.ops, Duration::from_secs(3600)).await;
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
        assert_eq!(r.anomalies[0].kind, format!("{UNDECIDED}{NOTHING_CHECKED}"));
        assert!(r.anomalies[0].description.contains("lease-expiry"), "{r:?}");
    }

    #[tokio::test]
    async fn durability_of_an_empty_history_is_not_valid() {
        let r = durability_check(&unreachable_endpoint(), None, &[]).await;
        assert_ne!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(r.ops_checked, 0);
    }

    #[tokio::test]
    async fn durability_fails_when_the_cluster_cannot_be_reached() {
        let mut h = History::new();
        h.ok(1, crate::check::fixture::write("r/0", "a"), 0, 10, Some(2));
        let r = durability_check(&unreachable_endpoint(), None, &h.ops).await;
        assert_eq!(r.verdict, Verdict::Invalid, "{r:?}");
        assert_eq!(r.anomalies[0].kind, "unreadable", "{r:?}");
    }

    #[test]
    fn an_append_is_expected_to_leave_what_it_read_plus_its_element() {
        let mut h = History::new();
        let op = Op::Append {
            keys: vec!["a/0".into(), "a/1".into()],
            element: 7,
            read: Some(vec![vec![1, 2], vec![]]),
        };
        h.ok(1, op, 0, 10, Some(5));
        let w = written(&h.ops[0]).expect("an acknowledged append is a write");
        assert_eq!(w.revision, 5);
        assert_eq!(
            w.values,
            vec![("a/0", Expected::List(vec![1, 2, 7])), ("a/1", Expected::List(vec![7]))]
        );
    }
}
