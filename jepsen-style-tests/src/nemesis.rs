//! The nemesis: injects faults on a schedule drawn from the run's seed, and records
//! each with the real time it started and ended.
//!
//! The schedule alternates a quiet spell and a fault; every fault is healed before
//! the next begins, so the history shows the cluster both under faults and after.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Mutex;

use crate::cluster::Cluster;
use crate::recorder::Recorder;
use crate::rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    KillLeader,
    KillRandom,
    KillMajority,
    PauseLeader,
    PauseRandom,
    PartitionMajority,
    PartitionLeader,
    PartitionBridge,
    PartitionOneWay,
    Delay,
    Loss,
    /// Remove a member, wipe it, and add it back as a new member.
    Membership,
    /// Every raft log sync of the leader waits (a slow disk; see `Cluster::slow_disk`).
    SlowDiskLeader,
    /// Every raft log sync of a majority waits: commits wait for slow disks.
    SlowDiskMajority,
}

impl FaultKind {
    pub const ALL: [FaultKind; 14] = [
        FaultKind::KillLeader,
        FaultKind::KillRandom,
        FaultKind::KillMajority,
        FaultKind::PauseLeader,
        FaultKind::PauseRandom,
        FaultKind::PartitionMajority,
        FaultKind::PartitionLeader,
        FaultKind::PartitionBridge,
        FaultKind::PartitionOneWay,
        FaultKind::Delay,
        FaultKind::Loss,
        FaultKind::Membership,
        FaultKind::SlowDiskLeader,
        FaultKind::SlowDiskMajority,
    ];

    pub fn family(self) -> &'static str {
        match self {
            FaultKind::KillLeader | FaultKind::KillRandom | FaultKind::KillMajority => "kill",
            FaultKind::PauseLeader | FaultKind::PauseRandom => "pause",
            FaultKind::PartitionMajority
            | FaultKind::PartitionLeader
            | FaultKind::PartitionBridge
            | FaultKind::PartitionOneWay => "partition",
            FaultKind::Delay => "delay",
            FaultKind::Loss => "loss",
            FaultKind::Membership => "membership",
            FaultKind::SlowDiskLeader | FaultKind::SlowDiskMajority => "disk",
        }
    }

    /// Whether the replicas must run with `--test-fault slow-disk` for this fault.
    pub fn needs_slow_disk(self) -> bool {
        self.family() == "disk"
    }

    /// The faults of the named families (`kill`, `pause`, `partition`, `delay`,
    /// `loss`, `membership`, `disk`, or `all`).
    pub fn parse_families(names: &[String]) -> Result<Vec<FaultKind>, String> {
        let mut kinds = Vec::new();
        for name in names {
            let matched: Vec<FaultKind> = Self::ALL
                .iter()
                .copied()
                .filter(|k| name == "all" || k.family() == name)
                .collect();
            if matched.is_empty() {
                return Err(format!(
                    "unknown nemesis {name:?}: choose from kill, pause, partition, delay, loss, membership, disk, all"
                ));
            }
            kinds.extend(matched);
        }
        kinds.dedup();
        Ok(kinds)
    }
}

/// One injected fault, with real times (ns since the run started).
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    pub kind: FaultKind,
    pub description: String,
    pub start_ns: u64,
    pub end_ns: u64,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub kinds: Vec<FaultKind>,
    pub quiet: (Duration, Duration),
    pub fault: (Duration, Duration),
}

impl Schedule {
    pub fn new(kinds: Vec<FaultKind>) -> Self {
        Self {
            kinds,
            quiet: (Duration::from_secs(2), Duration::from_secs(4)),
            fault: (Duration::from_secs(3), Duration::from_secs(6)),
        }
    }
}

fn between(rng: &mut Rng, (lo, hi): (Duration, Duration)) -> Duration {
    Duration::from_millis(rng.between(lo.as_millis() as u64, hi.as_millis() as u64))
}

/// Runs the schedule until `deadline`; returns what it did. Everything it broke is
/// healed before it returns.
pub async fn run(
    cluster: Arc<Mutex<Cluster>>,
    schedule: Schedule,
    mut rng: Rng,
    recorder: Recorder,
    deadline: tokio::time::Instant,
) -> Vec<FaultRecord> {
    let mut records = Vec::new();
    if schedule.kinds.is_empty() {
        return records;
    }
    loop {
        let quiet = between(&mut rng, schedule.quiet);
        let hold = between(&mut rng, schedule.fault);
        if tokio::time::Instant::now() + quiet + hold > deadline {
            break;
        }
        tokio::time::sleep(quiet).await;
        let kind = *rng.pick(&schedule.kinds);
        let start_ns = recorder.now_ns();
        let (description, removed) = match inject(&cluster, kind, &mut rng).await {
            Ok(Injected { description, removed }) => (description, removed),
            Err(e) => (format!("could not inject: {e}"), None),
        };
        tokio::time::sleep(hold).await;
        if let Some(i) = removed
            && let Err(e) = add_back(&cluster, i).await
        {
            eprintln!("nemesis: adding a removed member back failed: {e:#}");
        }
        if let Err(e) = cluster.lock().await.heal_all() {
            eprintln!("nemesis: healing failed: {e}");
        }
        records.push(FaultRecord {
            kind,
            description,
            start_ns,
            end_ns: recorder.now_ns(),
        });
    }
    records
}

struct Injected {
    description: String,
    /// A member the fault removed, to add back when it heals.
    removed: Option<usize>,
}

impl From<String> for Injected {
    fn from(description: String) -> Self {
        Self {
            description,
            removed: None,
        }
    }
}

async fn member_client(c: &Cluster, except: usize) -> anyhow::Result<etcd_client::Client> {
    let endpoints: Vec<String> = (0..c.len())
        .filter(|i| *i != except && !c.is_removed(*i))
        .map(|i| c.endpoint(i))
        .collect();
    crate::workload::connect(&endpoints, c.client_tls())
        .await
        .ok_or_else(|| anyhow::anyhow!("no member answers"))
}

/// Retries a membership call while the cluster is busy with another change.
async fn retry<T, F, Fut>(mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Removes a follower from the membership, kills it and wipes its data.
async fn remove_member(c: &mut Cluster, victim: usize) -> anyhow::Result<Injected> {
    let peer_url = c.peer_url(victim);
    let client = member_client(c, victim).await?;
    let members = retry(|| {
        let mut client = client.clone();
        async move { client.member_list().await }
    })
    .await?;
    let id = members
        .members()
        .iter()
        .find(|m| m.peer_urls().contains(&peer_url))
        .map(|m| m.id())
        .ok_or_else(|| anyhow::anyhow!("{} is not a member", c.name(victim)))?;
    retry(|| {
        let mut client = client.clone();
        async move { client.member_remove(id).await }
    })
    .await?;
    c.remove(victim)?;
    Ok(Injected {
        description: format!("remove {} from the membership and wipe it", c.name(victim)),
        removed: Some(victim),
    })
}

/// Adds a removed replica back as a new member and starts it empty.
async fn add_back(cluster: &Arc<Mutex<Cluster>>, i: usize) -> anyhow::Result<()> {
    let mut c = cluster.lock().await;
    let peer_url = c.peer_url(i);
    let client = member_client(&c, i).await?;
    retry(|| {
        let mut client = client.clone();
        let urls = vec![peer_url.clone()];
        async move { client.member_add(urls, None).await }
    })
    .await?;
    c.rejoin(i)
}

async fn inject(cluster: &Arc<Mutex<Cluster>>, kind: FaultKind, rng: &mut Rng) -> anyhow::Result<Injected> {
    let leader = cluster.lock().await.leader().await;
    let mut c = cluster.lock().await;
    let n = c.len();
    let name = |c: &Cluster, i: usize| c.name(i);
    let random = rng.below(n as u64) as usize;
    let leader_or_random = leader.unwrap_or(random);
    let mut shuffled: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        shuffled.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let majority = n / 2 + 1;
    if kind == FaultKind::Membership {
        let Some(leader) = leader else {
            return Ok("no leader to change the membership through".to_string().into());
        };
        let followers: Vec<usize> = (0..n).filter(|i| *i != leader && !c.is_removed(*i)).collect();
        if followers.len() < majority {
            return Ok("too few members to remove one".to_string().into());
        }
        let victim = *rng.pick(&followers);
        return remove_member(&mut c, victim).await;
    }
    Ok(match kind {
        FaultKind::KillLeader => {
            c.kill(leader_or_random);
            format!("kill -9 leader {}", name(&c, leader_or_random))
        }
        FaultKind::KillRandom => {
            c.kill(random);
            format!("kill -9 {}", name(&c, random))
        }
        FaultKind::KillMajority => {
            let victims = &shuffled[..majority];
            for v in victims {
                c.kill(*v);
            }
            format!(
                "kill -9 majority {:?}",
                victims.iter().map(|v| name(&c, *v)).collect::<Vec<_>>()
            )
        }
        FaultKind::PauseLeader => {
            c.pause(leader_or_random)?;
            format!("SIGSTOP leader {}", name(&c, leader_or_random))
        }
        FaultKind::PauseRandom => {
            c.pause(random)?;
            format!("SIGSTOP {}", name(&c, random))
        }
        FaultKind::PartitionMajority => {
            let (big, small) = shuffled.split_at(majority);
            c.partition(&[big.to_vec(), small.to_vec()]);
            format!(
                "partition {:?} | {:?}",
                big.iter().map(|v| name(&c, *v)).collect::<Vec<_>>(),
                small.iter().map(|v| name(&c, *v)).collect::<Vec<_>>()
            )
        }
        FaultKind::PartitionLeader => {
            let rest: Vec<usize> = (0..n).filter(|i| *i != leader_or_random).collect();
            c.partition(&[vec![leader_or_random], rest]);
            format!("isolate leader {}", name(&c, leader_or_random))
        }
        FaultKind::PartitionBridge => {
            // One node talks to both halves; the halves do not talk to each other.
            let bridge = shuffled[0];
            let others = &shuffled[1..];
            let (left, right) = others.split_at(others.len() / 2);
            for a in left {
                for b in right {
                    c.block(*a, *b);
                    c.block(*b, *a);
                }
            }
            format!(
                "bridge {}: {:?} | {:?}",
                name(&c, bridge),
                left.iter().map(|v| name(&c, *v)).collect::<Vec<_>>(),
                right.iter().map(|v| name(&c, *v)).collect::<Vec<_>>()
            )
        }
        FaultKind::PartitionOneWay => {
            // The leader hears its followers but cannot reach them.
            for other in (0..n).filter(|i| *i != leader_or_random) {
                c.block(leader_or_random, other);
            }
            format!("one-way: {} cannot send to anyone", name(&c, leader_or_random))
        }
        FaultKind::Delay => {
            // The links to and from one replica, chosen at random.
            let delay = Duration::from_millis(rng.between(20, 120));
            for other in (0..n).filter(|o| *o != random) {
                c.set_link(random, other, delay, 0);
                c.set_link(other, random, delay, 0);
            }
            format!("delay every link of {} by {delay:?}", name(&c, random))
        }
        FaultKind::Loss => {
            let percent = rng.between(5, 30);
            for other in (0..n).filter(|o| *o != random) {
                c.set_link(random, other, Duration::ZERO, percent);
                c.set_link(other, random, Duration::ZERO, percent);
            }
            format!("{percent}% of chunks stall on every link of {}", name(&c, random))
        }
        FaultKind::SlowDiskLeader => {
            let delay = Duration::from_millis(rng.between(20, 300));
            c.slow_disk(leader_or_random, delay)?;
            format!(
                "slow disk on leader {}: every raft log sync waits {delay:?}",
                name(&c, leader_or_random)
            )
        }
        FaultKind::SlowDiskMajority => {
            let delay = Duration::from_millis(rng.between(20, 300));
            let victims = &shuffled[..majority];
            for v in victims {
                c.slow_disk(*v, delay)?;
            }
            format!(
                "slow disks on majority {:?}: every raft log sync waits {delay:?}",
                victims.iter().map(|v| name(&c, *v)).collect::<Vec<_>>()
            )
        }
        FaultKind::Membership => unreachable!("handled above"),
    }
    .into())
}
