//! The leadership record that fences the control loops' writes.
//!
//! The record is the key `/berth/leader` with the value `"{term:020} {leader:020}
//! {name}"`: the Raft leader's id as openraft orders leaders, the term and then the
//! leader's node id (two candidates may both win one term, the greater node id
//! second), zero-padded so that byte order is that order. [`claim`] writes it only
//! over an absent record or one of a smaller leader id, and returns a [`Fence`] on
//! the write's mod_revision; every write of the controllers and the scheduler compares
//! it, so once a newer leader has claimed, a deposed leader's late writes fail with
//! `Fenced` instead of racing the new leader's.

use crate::kv::{Fence, Kv, KvError};

/// The key of the leadership record.
pub const LEADER_KEY: &str = "/berth/leader";

/// The leadership record's value for the Raft leader id (`term`, `leader`) and `name`.
pub fn record(term: u64, leader: u64, name: &str) -> String {
    format!("{term:020} {leader:020} {name}")
}

/// Makes `name` the leader of the control loops for the Raft leader id (`term`,
/// `leader`: its node id): writes the record if it is absent or holds a smaller
/// leader id, and returns the fence of that write. A record of the same or a greater
/// leader id makes it fail with `Fenced`, except that claiming again exactly the
/// record already there (a leader that restarts its loops) returns that record's
/// fence.
pub async fn claim(kv: &Kv, term: u64, leader: u64, name: &str) -> Result<Fence, KvError> {
    let value = record(term, leader, name);
    let fence = |mod_revision| Fence {
        key: LEADER_KEY.to_string(),
        mod_revision,
    };
    // The record may be deleted between our two attempts; a few rounds settle it.
    for _ in 0..3 {
        match kv.create(LEADER_KEY, value.clone().into_bytes(), 0, None).await {
            Ok(revision) => return Ok(fence(revision)),
            Err(KvError::AlreadyExists) => {}
            Err(e) => return Err(e),
        }
        // Any record of a smaller leader id sorts before the bare padded id; one of
        // this id ("{term:020} {leader:020} {name}") sorts after it.
        let id_only = format!("{term:020} {leader:020}");
        match kv
            .put_if_value_less(LEADER_KEY, id_only.as_bytes(), value.clone().into_bytes())
            .await
        {
            Ok(revision) => return Ok(fence(revision)),
            Err(KvError::NotFound) => continue,
            Err(KvError::Conflict { .. }) => {
                return match kv.get(LEADER_KEY).await? {
                    Some(current) if current.value == value.as_bytes() => Ok(fence(current.mod_revision)),
                    Some(_) => Err(KvError::Fenced),
                    None => continue,
                };
            }
            Err(e) => return Err(e),
        }
    }
    Err(KvError::Unavailable(
        "the leadership record kept changing while claiming it".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_sort_by_leader_id() {
        assert_eq!(record(7, 3, "n1"), "00000000000000000007 00000000000000000003 n1");
        assert!(record(9, 5, "zz") < record(10, 1, "aa"), "byte order is term order");
        assert!(record(9, 1, "zz") < record(9, 2, "aa"), "then node id order");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn claims_only_move_forward() {
        let t = crate::testing::store().await;
        let first = claim(&t.kv, 1, 5, "a").await.unwrap();
        assert_eq!(first.key, LEADER_KEY);
        assert_eq!(
            claim(&t.kv, 1, 5, "a").await,
            Ok(first.clone()),
            "re-claiming our own record"
        );
        assert_eq!(
            claim(&t.kv, 1, 4, "b").await,
            Err(KvError::Fenced),
            "same term, a smaller leader"
        );
        // Two leaders of one term (openraft lets a greater node id win it second):
        // the second one's claim goes through.
        let second = claim(&t.kv, 1, 6, "b").await.unwrap();
        assert!(second.mod_revision > first.mod_revision);
        assert_eq!(claim(&t.kv, 1, 5, "a").await, Err(KvError::Fenced), "a deposed leader");
        let third = claim(&t.kv, 2, 1, "a").await.unwrap();
        assert!(
            third.mod_revision > second.mod_revision,
            "a greater term, whatever the node"
        );
        let record_now = t.kv.get(LEADER_KEY).await.unwrap().unwrap();
        assert_eq!(record_now.value, record(2, 1, "a").as_bytes());
        // Terms compare as numbers, not as the strings "9" and "10".
        claim(&t.kv, 9, 1, "a").await.unwrap();
        claim(&t.kv, 10, 1, "b").await.unwrap();
        assert_eq!(claim(&t.kv, 9, 1, "a").await, Err(KvError::Fenced));
    }
}
