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
}

impl FaultKind {
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
        }
    }

    /// The faults of the named families (`kill`, `pause`, `partition`, `delay`,
    /// `loss`, or `all`).
    pub fn parse_families(names: &[String]) -> Result<Vec<FaultKind>, String> {
        use FaultKind::*;
        let all = [
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
        ];
        let mut kinds = Vec::new();
        for name in names {
            let matched: Vec<FaultKind> = all
                .iter()
                .copied()
                .filter(|k| name == "all" || k.family() == name)
                .collect();
            if matched.is_empty() {
                return Err(format!(
                    "unknown nemesis {name:?}: choose from kill, pause, partition, delay, loss, all"
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
        let description = match inject(&cluster, kind, &mut rng).await {
            Ok(description) => description,
            Err(e) => format!("could not inject: {e}"),
        };
        tokio::time::sleep(hold).await;
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

async fn inject(cluster: &Arc<Mutex<Cluster>>, kind: FaultKind, rng: &mut Rng) -> anyhow::Result<String> {
    let leader = cluster.lock().await.leader().await;
    let mut c = cluster.lock().await;
    let n = c.nodes.len();
    let name = |c: &Cluster, i: usize| c.nodes[i].name.clone();
    let random = rng.below(n as u64) as usize;
    let leader_or_random = leader.unwrap_or(random);
    let mut shuffled: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        shuffled.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let majority = n / 2 + 1;
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
            let delay = Duration::from_millis(rng.between(20, 120));
            for from in 0..n {
                for to in 0..n {
                    c.set_link(from, to, delay, 0);
                }
            }
            format!("delay every peer link by {delay:?}")
        }
        FaultKind::Loss => {
            let percent = rng.between(5, 30);
            for from in 0..n {
                for to in 0..n {
                    c.set_link(from, to, Duration::ZERO, percent);
                }
            }
            format!("{percent}% of chunks stall on every peer link")
        }
    })
}
