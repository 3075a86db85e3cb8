//! The store's background duties: following leadership (lessor promotion, member
//! publication), campaigning when the leader falls silent, expiring leases, and
//! automatic compaction. Each is a loop that stops when the store shuts down.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use berth_proto::berthpb::{Command, MemberChange, command, member_change};
use berth_proto::etcdserverpb::{AlarmType, CompactionRequest, LeaseRevokeRequest};
use openraft::ServerState;

use crate::config::AutoCompaction;
use crate::disk_space::RETRY_INTERVAL;
use crate::store::Store;

const LEASE_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// How often the free space is measured while the disk has room.
const SPACE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

pub fn start(store: Store) {
    tokio::spawn(follow_leadership(store.clone()));
    tokio::spawn(crate::election::campaign_when_the_leader_is_silent(store.clone()));
    tokio::spawn(expire_leases(store.clone()));
    tokio::spawn(raise_nospace_when_the_disk_fills(store.clone()));
    if let Some(every) = store.config().corrupt_check_time {
        tokio::spawn(crate::corruption_check::run_periodically(store.clone(), every));
    }
    if let Some(policy) = store.config().auto_compaction.clone() {
        tokio::spawn(auto_compact(store, policy));
    }
}

/// While this replica's disk is full (see `disk_space`): raises NOSPACE for it
/// through the log (it counts one of its own meanwhile, see `Store::alarms`), and
/// tries the state machine's gathered writes again, so that the database learns when
/// space returns even if no write comes to try. The alarm stays until disarmed.
async fn raise_nospace_when_the_disk_fills(store: Store) {
    let mut shutdown = store.shutdown_signal();
    let mut is_full = store.disk_space().subscribe();
    loop {
        if !*is_full.borrow_and_update() {
            tokio::select! {
                changed = is_full.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(SPACE_CHECK_INTERVAL) => store.check_disk_space(),
            }
            continue;
        }
        let mut raised = false;
        while store.disk_space().is_full() {
            if !raised {
                let proposal = store.activate_alarm(store.id(), AlarmType::Nospace);
                match tokio::time::timeout(Duration::from_secs(10), proposal).await {
                    Ok(Ok(())) => raised = true,
                    Ok(Err(e)) => tracing::warn!(error = %e, "raising NOSPACE through the log failed; will retry"),
                    Err(_) => tracing::warn!("raising NOSPACE through the log timed out; will retry"),
                }
            }
            if let Err(e) = store.write_out_state() {
                tracing::debug!(error = %e, "the state machine's writes still wait for space");
            }
            tokio::select! {
                _ = tokio::time::sleep(RETRY_INTERVAL) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

async fn follow_leadership(store: Store) {
    // The server's metrics change with its role, term, leader and membership only,
    // not with every entry written and applied as the whole metrics do.
    let mut metrics = store.raft().server_metrics();
    let mut shutdown = store.shutdown_signal();
    // The term this replica leads in, if it does. By term rather than a flag: a
    // leader that loses a term and wins the next between two looks at the metrics
    // must still take its duties up again (the numbering it began may have failed).
    let mut led_term: Option<u64> = None;
    let mut published = false;
    loop {
        let (leading, leader) = {
            let m = metrics.borrow_and_update();
            (
                (m.state == ServerState::Leader).then_some(m.vote.leader_id().get_term()),
                m.current_leader,
            )
        };
        if leading != led_term {
            if leading.is_some() {
                // The leases to keep are those of the whole log this leader holds: wait
                // until it has applied it (a leader that restarted may have state on disk
                // older than the writes it acknowledged). Keepalives are refused until then.
                if !caught_up_with_own_log(&store).await {
                    tokio::select! {
                        changed = metrics.changed() => if changed.is_err() { return },
                        _ = shutdown.changed() => return,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                    continue;
                }
                let leases: Vec<(i64, i64)> = store.state().read().leases.ids().collect();
                tracing::info!(leases = leases.len(), "became leader; lease deadlines start afresh");
                store.lessor().promote(leases.into_iter());
                tokio::spawn(start_numbering(store.clone()));
            } else {
                store.lessor().demote();
            }
            led_term = leading;
        }
        if !published && leader.is_some() {
            published = publish(&store).await;
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)), if !published => {}
        }
    }
}

/// Has a store that has never been written take etcd's numbering (see
/// `Store::start_numbering`), trying again while this replica leads.
async fn start_numbering(store: Store) {
    while store.is_leader() && store.current_revision() == 0 {
        match store.start_numbering().await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "could not start the revision numbering; trying again");
                tokio::time::sleep(store.config().heartbeat_interval).await;
            }
        }
    }
}

/// Waits (a while) until this replica, as leader, has applied its whole log as it was
/// when the wait began. False when it did not get there, or stopped leading.
async fn caught_up_with_own_log(store: &Store) -> bool {
    let last_log = store.raft().metrics().borrow().last_log_index;
    let applied = store
        .raft()
        .wait(Some(Duration::from_secs(1)))
        .applied_index_at_least(last_log, "a new leader applies its log")
        .await
        .is_ok();
    applied && store.is_leader()
}

/// Records this member's name and client URLs in the membership.
async fn publish(store: &Store) -> bool {
    let me = store.id();
    let config = store.config();
    let wanted = (config.name.clone(), config.advertise_client_urls.clone());
    let current = store.members().into_iter().find(|m| m.id == me);
    match current {
        None => false,
        Some(m) if (m.name.clone(), m.client_ur_ls.clone()) == wanted => true,
        Some(m) => {
            let change = MemberChange {
                action: member_change::Action::Publish as i32,
                id: me,
                peer_urls: m.peer_ur_ls,
                name: wanted.0,
                client_urls: wanted.1,
                ..Default::default()
            };
            match store.change_member(change).await {
                Ok(_) => true,
                Err(e) => {
                    tracing::debug!(error = %e, "publishing member attributes failed; will retry");
                    false
                }
            }
        }
    }
}

async fn expire_leases(store: Store) {
    let mut shutdown = store.shutdown_signal();
    let mut tick = tokio::time::interval(LEASE_CHECK_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if !store.lessor().is_primary() {
            continue;
        }
        let expired = {
            let state = store.state().read();
            store.lessor().take_expired(state.leases.ids())
        };
        for id in expired {
            let store = store.clone();
            tokio::spawn(async move {
                let cmd = Command {
                    command: Some(command::Command::LeaseRevoke(LeaseRevokeRequest { id })),
                };
                match store.propose_as_leader(cmd).await {
                    Ok(_) => tracing::debug!(lease = id, "lease expired and was revoked"),
                    Err(e) => {
                        tracing::warn!(lease = id, error = %e, "revoking an expired lease failed; will retry")
                    }
                }
            });
        }
    }
}

/// etcd's compactors: `periodic` keeps `retention` worth of history, sampling the
/// revision every tenth of it; `revision` keeps the last `retention` revisions,
/// checked every five minutes. Only the leader proposes.
async fn auto_compact(store: Store, policy: AutoCompaction) {
    let mut shutdown = store.shutdown_signal();
    let every = match &policy {
        AutoCompaction::Periodic(retention) => (*retention / 10).max(Duration::from_secs(1)),
        AutoCompaction::Revision(_) => Duration::from_secs(300),
    };
    let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let (current, compacted) = {
            let state = store.state().read();
            (state.kv.current_revision(), state.kv.compact_revision())
        };
        samples.push_back((Instant::now(), current));
        let target = match &policy {
            AutoCompaction::Periodic(retention) => {
                let cutoff = Instant::now().checked_sub(*retention);
                let mut target = None;
                while let (Some(cutoff), Some((at, rev))) = (cutoff, samples.front().copied()) {
                    if at > cutoff {
                        break;
                    }
                    target = Some(rev);
                    samples.pop_front();
                }
                target
            }
            AutoCompaction::Revision(keep) => {
                samples.clear();
                Some(current - keep)
            }
        };
        let Some(target) = target else { continue };
        // As etcd's compactors: never revision 0 or below, which hold nothing.
        if target <= 0 || target <= compacted || !store.is_leader() {
            continue;
        }
        let cmd = Command {
            command: Some(command::Command::Compaction(CompactionRequest {
                revision: target,
                physical: false,
            })),
        };
        match store.propose(cmd).await {
            Ok(_) => tracing::info!(revision = target, "auto-compacted"),
            Err(e) => tracing::warn!(revision = target, error = %e, "auto-compaction failed"),
        }
    }
}
