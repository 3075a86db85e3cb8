//! Failover on real processes (three `berth server` replicas, two agents on loopback):
//! the controllers resume on a new leader, an agent cut off from the store fences
//! itself, and a leader deposed while still running makes no write after its
//! successor's first. Each test prints the figures it measured (run with
//! `--no-capture` to see them); only "it hangs" timeouts are asserted.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit::eventually_blocking;
use common::links::{Link, PeerLinks};
use common::*;
use serde_json::Value;

fn deployment(marker: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: sleeper
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: sleeper
  template:
    metadata:
      labels:
        app: sleeper
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        command: [\"sleep\", \"{marker}\"]
        resources:
          requests:
            cpu: 100m
            memory: 32Mi
"
    )
}

fn sleepers(cluster: &TestCluster) -> Vec<Value> {
    cluster
        .pods()
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "sleeper")
        .collect()
}

fn name_of(pod: &Value) -> String {
    pod["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

/// Running sleepers as (name, node).
fn running(cluster: &TestCluster) -> Vec<(String, String)> {
    sleepers(cluster)
        .iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .map(|p| {
            (
                name_of(p),
                p["spec"]["nodeName"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The pod each of this cluster's workload processes runs for (the process runtime
/// puts the pod's name in its environment).
fn workload_pods(marker: &str) -> Vec<String> {
    workload_pids(marker)
        .into_iter()
        .filter_map(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            environ.split(|b| *b == 0).find_map(|variable| {
                variable
                    .strip_prefix(b"BERTH_POD_NAME=")
                    .map(|name| String::from_utf8_lossy(name).to_string())
            })
        })
        .collect()
}

/// etcdctl against one replica's store, its output in `format`: reads are
/// linearizable, so a replica cut off from its peers does not answer with what it
/// last knew.
fn etcdctl(client_port: u16, args: &[&str], format: &str) -> Option<String> {
    let out = Command::new("etcdctl")
        .args([
            "--endpoints",
            &format!("127.0.0.1:{client_port}"),
            "--command-timeout=2s",
        ])
        .args(args)
        .args(["-w", format])
        .env("ETCDCTL_API", "3")
        .output()
        .expect("etcdctl (the test script installs it)");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

/// The leadership record as replica `via` reads it: (holder's name, term, revision).
fn leader_record(cluster: &TestCluster, via: usize) -> Option<(String, u64, i64)> {
    let fields = etcdctl(
        cluster.servers.replicas[via].client_port,
        &["get", "/berth/leader"],
        "fields",
    )?;
    let field = |name: &str| {
        fields
            .lines()
            .find_map(|line| line.strip_prefix(&format!("\"{name}\" : ")))
            .map(|value| value.trim().trim_matches('"').to_string())
    };
    let value = field("Value")?;
    // "{term} {node id} {name}"
    let mut words = value.split(' ');
    let (term, name) = (words.next()?, words.nth(1)?);
    Some((
        name.to_string(),
        term.parse().ok()?,
        field("ModRevision")?.parse().ok()?,
    ))
}

/// Replica `index`'s view of the Raft leader: (its member ID, the leader's).
fn raft_status(cluster: &TestCluster, index: usize) -> Option<(u64, u64)> {
    let json = etcdctl(
        cluster.servers.replicas[index].client_port,
        &["endpoint", "status"],
        "json",
    )?;
    let status: Value = serde_json::from_str(&json).ok()?;
    let status = &status[0]["Status"];
    Some((status["header"]["member_id"].as_u64()?, status["leader"].as_u64()?))
}

/// A log line without the terminal colours the replicas' logger may add.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn index_of(cluster: &TestCluster, name: &str) -> usize {
    cluster.servers.replicas.iter().position(|s| s.name == name).unwrap()
}

fn berth_via(cluster: &TestCluster, server: usize, args: &[&str]) -> std::process::Output {
    Command::new(BERTH)
        .args(args)
        .env(
            "BERTH_SERVER",
            format!("http://127.0.0.1:{}", cluster.api_ports[server]),
        )
        .output()
        .unwrap()
}

/// kill -9 of the leading replica: as soon as the survivors agree on a new Raft
/// leader, a ReplicaSet is scaled up, and the new leader's controllers create the
/// pods and its scheduler binds them. Prints how long after the election the change
/// was acted on (berth aims at under 2 s: the leadership record is claimed and every
/// loop starts at once).
#[test]
fn controllers_resume_on_a_new_leader_and_act_on_a_change_made_right_after_its_election() {
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let manifest = cluster.write_manifest(
        "rs.yaml",
        &deployment(&cluster.marker, 2).replace("kind: Deployment", "kind: ReplicaSet"),
    );
    stdout(&cluster.berth(&["apply", "-f", manifest.to_str().unwrap()]));
    eventually_blocking("2 running pods of the ReplicaSet", || {
        (running(&cluster).len() == 2).then_some(())
    });

    let (old_name, old_term, _) = leader_record(&cluster, 0).expect("a leadership record");
    let old = index_of(&cluster, &old_name);
    let survivors: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    cluster.servers.kill(old);
    let killed = Instant::now();
    // The election: both survivors name one leader among them (etcd's Status).
    let elected = eventually_blocking("the survivors to elect a leader", || {
        let statuses: Vec<(u64, u64)> = survivors.iter().filter_map(|i| raft_status(&cluster, *i)).collect();
        let agreed = statuses.len() == 2
            && statuses[0].1 != 0
            && statuses[0].1 == statuses[1].1
            && statuses.iter().any(|(member, _)| *member == statuses[0].1);
        agreed.then(Instant::now)
    });
    eventually_blocking("the scale to be accepted", || {
        let out = berth_via(
            &cluster,
            survivors[0],
            &["scale", "replicaset", "sleeper", "--replicas=4"],
        );
        out.status.success().then_some(())
    });
    let scaled = Instant::now();
    eventually_blocking("the new leader's ReplicaSet controller to create 2 pods", || {
        (sleepers(&cluster).len() == 4).then_some(())
    });
    let acted = Instant::now();
    let bound = eventually_blocking("the new leader's scheduler to bind them", || {
        sleepers(&cluster)
            .iter()
            .all(|p| p["spec"]["nodeName"].as_str().is_some_and(|node| !node.is_empty()))
            .then(Instant::now)
    });
    let (new_name, new_term, _) = leader_record(&cluster, survivors[0]).unwrap();
    assert_ne!(new_name, old_name);
    assert!(new_term > old_term, "term {new_term} after {old_term}");
    eprintln!(
        "failover figures: election {:?} after the kill; the scale was accepted {:?} after the election \
         and acted on {:?} after it ({:?} after the election); the new pods were bound {:?} after the election",
        elected - killed,
        scaled - elected,
        acted - scaled,
        acted - elected,
        bound - elected
    );
    eventually_blocking("4 running pods", || (running(&cluster).len() == 4).then_some(()));
}

/// An agent alive but cut off from every store replica stops its workloads once it
/// cannot renew its lease within its TTL (3 s here); the control plane replaces its
/// pods on the other node; at no moment do both run; and when the agent can reach
/// the store again it does not bring the replaced pods back.
#[test]
fn an_agent_cut_off_from_the_store_stops_its_workloads_and_does_not_resurrect_them() {
    let mut cluster = TestCluster::new("3s");
    // node-0 reaches every replica's store through a link the test can cut.
    let links: Vec<Link> = cluster
        .servers
        .replicas
        .iter()
        .map(|r| Link::start(SocketAddr::from(([127, 0, 0, 1], r.client_port))))
        .collect();
    let through = links.iter().map(Link::url).collect::<Vec<_>>().join(",");
    let args: Vec<String> = cluster.agents[0]
        .args()
        .iter()
        .map(|arg| {
            if arg.starts_with("--store=") {
                format!("--store={through}")
            } else {
                arg.clone()
            }
        })
        .collect();
    cluster.agents[0].set_args(args);
    cluster.start_all();
    wait_for_nodes(&mut cluster);
    let marker = cluster.marker.clone();
    let manifest = cluster.write_manifest("sleeper.yaml", &deployment(&marker, 4));
    stdout(&cluster.berth(&["apply", "-f", manifest.to_str().unwrap()]));
    let on_node_0: Vec<String> = eventually_blocking("4 running pods on both nodes, 4 processes", || {
        let running = running(&cluster);
        let on_0: Vec<String> = running
            .iter()
            .filter(|(_, node)| node == "node-0")
            .map(|(name, _)| name.clone())
            .collect();
        (running.len() == 4 && !on_0.is_empty() && on_0.len() < 4 && workload_pods(&marker).len() == 4).then_some(on_0)
    });

    for link in &links {
        link.cut();
    }
    let cut = Instant::now();
    let mut most = 0;
    let mut stopped = None;
    let replaced = eventually_blocking("node-0's pods to be replaced on node-1", || {
        let processes = workload_pods(&marker);
        most = most.max(processes.len());
        if stopped.is_none() && !processes.iter().any(|pod| on_node_0.contains(pod)) {
            stopped = Some(cut.elapsed());
        }
        let running = running(&cluster);
        let done = running.len() == 4
            && running.iter().all(|(_, node)| node == "node-1")
            && sleepers(&cluster).len() == 4
            && processes.len() == 4
            && stopped.is_some();
        done.then(|| cut.elapsed())
    });
    let stopped = stopped.unwrap();
    eprintln!(
        "failover figures: the cut-off agent stopped its workloads {stopped:?} after the cut \
         (lease TTL 3 s); its pods ran again on node-1 {replaced:?} after the cut"
    );
    assert!(
        most <= 4,
        "{most} workload processes at once: a replaced pod ran beside its replacement"
    );

    for link in &links {
        link.heal();
    }
    wait_for_nodes(&mut cluster);
    // Two lease periods after it is back, the agent has synced with the store: the
    // replaced pods stay gone, and the four replacements run on node-1.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        let processes = workload_pods(&marker);
        assert!(
            !processes.iter().any(|pod| on_node_0.contains(pod)),
            "the healed agent resurrected a replaced pod: {processes:?} (replaced: {on_node_0:?})"
        );
        assert_eq!(processes.len(), 4, "{processes:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(running(&cluster).iter().all(|(_, node)| node == "node-1"));
}

/// A write a replica logged as fenced by the leadership record: (fence, revision).
/// (The API server fences writes by other records, a namespace's say.)
fn fenced_writes(log: &str) -> Vec<(i64, i64)> {
    let number = |line: &str, field: &str| -> Option<i64> {
        let at = line.find(&format!(" {field}="))? + field.len() + 2;
        line[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    log.lines()
        .map(plain)
        .filter(|line| line.contains("fenced write record=/berth/leader "))
        .filter_map(|line| Some((number(&line, "fence")?, number(&line, "revision")?)))
        .collect()
}

/// The revisions at which replicas claimed the leadership record and started the
/// control loops, from every replica's log.
fn claims(cluster: &TestCluster) -> BTreeSet<i64> {
    let mut claims = BTreeSet::new();
    for replica in &cluster.servers.replicas {
        for line in replica.log_text().lines().map(plain) {
            if line.contains("leading: starting the control loops")
                && let Some(at) = line.find(" revision=")
            {
                let digits: String = line[at + 10..].chars().take_while(char::is_ascii_digit).collect();
                claims.insert(digits.parse().unwrap());
            }
        }
    }
    claims
}

/// The leading replica is cut off from its peers while it keeps running and its
/// controllers are busy (a ReplicaSet scaling up); the others elect a successor,
/// which is given work of its own (a scale down); then the partition heals. Every
/// fenced write any replica made lies between its own claim and the next one: the
/// deposed leader wrote nothing after its successor's claim, which precedes the
/// successor's first write. The workload ends as the successor was told.
#[test]
fn a_leader_deposed_while_running_makes_no_write_after_its_successors_first() {
    let mut cluster = TestCluster::new("3s");
    let peers = PeerLinks::wire(&mut cluster.servers);
    cluster.start_all();
    wait_for_nodes(&mut cluster);
    let marker = cluster.marker.clone();
    let manifest = cluster.write_manifest("sleeper.yaml", &deployment(&marker, 2));
    stdout(&cluster.berth(&["apply", "-f", manifest.to_str().unwrap()]));
    eventually_blocking("2 running pods", || (running(&cluster).len() == 2).then_some(()));

    let (old_name, old_term, old_claim) = leader_record(&cluster, 0).expect("a leadership record");
    let old = index_of(&cluster, &old_name);
    let others: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    // The old leader's controllers get work, and the partition comes while they do it.
    stdout(&berth_via(
        &cluster,
        old,
        &["scale", "deployment", "sleeper", "--replicas=12"],
    ));
    std::thread::sleep(Duration::from_millis(100));
    peers.isolate(old, true);
    let (new_name, new_term, new_claim) = eventually_blocking("a successor's leadership record", || {
        leader_record(&cluster, others[0]).filter(|(name, ..)| *name != old_name)
    });
    assert!(new_term > old_term && new_claim > old_claim);
    // The successor's own work, while the old leader still runs on the other side.
    eventually_blocking("the scale down to be accepted", || {
        berth_via(&cluster, others[0], &["scale", "deployment", "sleeper", "--replicas=3"])
            .status
            .success()
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(4));
    peers.isolate(old, false);

    eventually_blocking("3 running pods and 3 processes after the heal", || {
        (running(&cluster).len() == 3 && sleepers(&cluster).len() == 3 && workload_pids(&marker).len() == 3)
            .then_some(())
    });
    // The healed replica follows: the record still names the successor's term.
    let (holder, term, _) = eventually_blocking("the old leader to read the record", || leader_record(&cluster, old));
    assert!(
        term >= new_term,
        "{holder} holds the record at term {term}, before {new_term}"
    );

    let claims = claims(&cluster);
    assert!(claims.contains(&old_claim) && claims.contains(&new_claim), "{claims:?}");
    let old_log = cluster.servers.replicas[old].log_text();
    // Its writes under the fence of the term it was deposed from (should it lead
    // again later, it does so under a new claim, checked below like every other).
    let old_writes: Vec<(i64, i64)> = fenced_writes(&old_log)
        .into_iter()
        .filter(|(fence, _)| *fence == old_claim)
        .collect();
    let refused = old_log
        .lines()
        .filter(|l| plain(l).contains("fenced write refused: the record changed record=/berth/leader"))
        .count();
    eprintln!(
        "failover figures: the deposed leader {old_name} made {} fenced writes (the last at revision {:?}); \
         {refused} were refused by the fence; its successor {new_name} claimed at revision {new_claim}",
        old_writes.len(),
        old_writes.iter().map(|(_, r)| r).max()
    );
    assert!(!old_writes.is_empty(), "the old leader's writes are not logged");
    for (index, replica) in cluster.servers.replicas.iter().enumerate() {
        for (fence, revision) in fenced_writes(&replica.log_text()) {
            let later_claim = claims.range(fence + 1..revision).next();
            assert_eq!(
                later_claim, None,
                "{} (replica {index}) wrote at revision {revision} under the fence {fence} \
                 after another leader claimed the record",
                replica.name
            );
        }
    }
    let late: Vec<&(i64, i64)> = old_writes.iter().filter(|(_, r)| *r > new_claim).collect();
    assert!(
        late.is_empty(),
        "the deposed leader wrote after its successor's claim: {late:?}"
    );
}

fn is_ready(object: &Value) -> Option<bool> {
    let conditions = object["status"]["conditions"].as_array()?;
    let ready = conditions.iter().find(|c| c["type"] == "Ready")?;
    Some(ready["status"] == "True")
}

/// berth's default `--node-monitor-grace-period`.
const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// With berth's defaults (the agent's lease TTL and the node grace period, 10 s
/// each; the replicas get no grace flag): kill -9 of an agent makes its node
/// NotReady and its pods not ready (so they leave their Services' endpoints) once
/// its lease expires, within 10 s of its last heartbeat, and its pods move a grace
/// period later, not before.
#[test]
fn a_dead_nodes_pods_are_not_ready_within_its_lease_ttl_and_move_after_the_grace_period() {
    let mut cluster = TestCluster::with_default_grace();
    // node-0 keeps the agent's default lease TTL.
    let args: Vec<String> = cluster.agents[0]
        .args()
        .iter()
        .filter(|arg| !arg.starts_with("--lease-ttl"))
        .cloned()
        .collect();
    cluster.agents[0].set_args(args);
    cluster.start_all();
    wait_for_nodes(&mut cluster);
    let marker = cluster.marker.clone();
    let manifest = cluster.write_manifest("sleeper.yaml", &deployment(&marker, 4));
    stdout(&cluster.berth(&["apply", "-f", manifest.to_str().unwrap()]));
    let on_node_0: Vec<String> = eventually_blocking("4 ready pods on both nodes", || {
        let pods = sleepers(&cluster);
        let on_0: Vec<String> = pods
            .iter()
            .filter(|p| p["spec"]["nodeName"] == "node-0")
            .map(name_of)
            .collect();
        let all_ready = pods.len() == 4 && pods.iter().all(|p| is_ready(p) == Some(true));
        (all_ready && !on_0.is_empty() && on_0.len() < 4).then_some(on_0)
    });

    cluster.agents[0].kill();
    let killed = Instant::now();
    let not_ready = eventually_blocking("node-0 and its pods to be not ready", || {
        let (_, node) = cluster.get("/api/v1/nodes/node-0");
        let pods = sleepers(&cluster);
        let marked = on_node_0.iter().all(|name| {
            pods.iter()
                .find(|p| name_of(p) == *name)
                .is_some_and(|p| is_ready(p) == Some(false))
        });
        (is_ready(&node) == Some(false) && marked).then(|| killed.elapsed())
    });
    // The grace counts from when the leader saw the heartbeat gone, before it marked
    // them: half a default grace after the marks were seen, node-0's pods are still
    // there (a grace much shorter than 10 s would have deleted them by now).
    std::thread::sleep(DEFAULT_GRACE / 2);
    let pods = sleepers(&cluster);
    let gone: Vec<&String> = on_node_0
        .iter()
        .filter(|name| {
            !pods
                .iter()
                .any(|p| name_of(p) == **name && p["spec"]["nodeName"] == "node-0")
        })
        .collect();
    assert!(
        gone.is_empty(),
        "{gone:?} left node-0 within half the default grace ({DEFAULT_GRACE:?}) of its marking"
    );
    let moved = eventually_blocking("node-0's pods to be replaced on node-1", || {
        let running = running(&cluster);
        (sleepers(&cluster).len() == 4 && running.len() == 4 && running.iter().all(|(_, node)| node == "node-1"))
            .then(|| killed.elapsed())
    });
    eprintln!(
        "failover figures: with the default lease TTL (10 s) and grace (10 s), a killed agent's node and \
         pods were not ready {not_ready:?} after the kill, and its pods ran on node-1 {moved:?} after it"
    );
    let (_, events) = cluster.get("/api/v1/namespaces/default/events?fieldSelector=reason%3DNodeNotReady");
    let about: BTreeSet<String> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["message"] == "Node is not ready")
        .filter_map(|e| e["involvedObject"]["name"].as_str().map(str::to_string))
        .collect();
    assert!(
        on_node_0.iter().all(|name| about.contains(name)),
        "a NodeNotReady event for each of {on_node_0:?}: {events}"
    );
}
