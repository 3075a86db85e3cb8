//! The cluster's alarms, as etcd keeps them: a set of (member, alarm type) pairs that
//! changes only through the log (`AlarmRequest` ACTIVATE and DEACTIVATE commands) and
//! is stored with the data, in the `State` tree, so that it survives a restart and
//! travels in snapshots.
//!
//! What an alarm does to requests is etcd's: while NOSPACE is raised, apply refuses
//! what adds data (puts, transactions that put, lease grants) and serves the rest;
//! while CORRUPT is raised it refuses every request that reads or changes keys or
//! leases. See [`AlarmSet::check`].
//!
//! Stored as one key per alarm: `a` + member ID (u64, big-endian) + alarm type (i32,
//! big-endian), with an empty value. No I/O here: changes go into the write batch the
//! state machine commits with the applied log id.

use std::collections::BTreeSet;

use berth_proto::etcdserverpb::{AlarmMember, AlarmType};

use crate::backend::{BackendError, SharedBackend, Tree, WriteBatch};
use crate::error::StoreError;

const ALARM_KEY_PREFIX: u8 = b'a';
const ALARM_KEY_LEN: usize = 1 + 8 + 4;

fn alarm_key(member_id: u64, alarm: i32) -> Vec<u8> {
    let mut key = Vec::with_capacity(ALARM_KEY_LEN);
    key.push(ALARM_KEY_PREFIX);
    key.extend_from_slice(&member_id.to_be_bytes());
    key.extend_from_slice(&alarm.to_be_bytes());
    key
}

/// What a request does, as far as alarms are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Adds data: a put, a transaction with a put in either branch, a lease grant.
    AddsData,
    /// Reads or removes keys or leases, or compacts: served under NOSPACE.
    Other,
}

/// The active alarms, in (member, type) order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlarmSet {
    active: BTreeSet<(u64, i32)>,
}

impl AlarmSet {
    /// Loads the alarms stored in the backend.
    pub fn open(backend: &SharedBackend) -> Result<Self, BackendError> {
        let mut active = BTreeSet::new();
        for (key, _) in backend.scan(Tree::State, &[ALARM_KEY_PREFIX], Some(&[ALARM_KEY_PREFIX + 1]), 0)? {
            let (member, alarm) = parse_key(&key).ok_or_else(|| BackendError::Corrupt {
                path: String::new(),
                reason: format!("alarm record with a key of {} bytes, want {ALARM_KEY_LEN}", key.len()),
            })?;
            active.insert((member, alarm));
        }
        Ok(Self { active })
    }

    /// Raises `alarm` for `member_id`. Returns the alarm when it was not raised
    /// before (etcd answers an ACTIVATE with the alarms it added).
    pub fn activate(&mut self, member_id: u64, alarm: i32, batch: &mut WriteBatch) -> Option<AlarmMember> {
        if !self.active.insert((member_id, alarm)) {
            return None;
        }
        batch.put(alarm_key(member_id, alarm), Vec::new());
        Some(AlarmMember { member_id, alarm })
    }

    /// Clears `alarm` of `member_id`. Returns the alarm when it was raised.
    pub fn deactivate(&mut self, member_id: u64, alarm: i32, batch: &mut WriteBatch) -> Option<AlarmMember> {
        if !self.active.remove(&(member_id, alarm)) {
            return None;
        }
        batch.delete(alarm_key(member_id, alarm));
        Some(AlarmMember { member_id, alarm })
    }

    /// The active alarms of type `alarm`, or all of them for `NONE`, as etcd's GET.
    pub fn get(&self, alarm: AlarmType) -> Vec<AlarmMember> {
        self.active
            .iter()
            .filter(|(_, a)| alarm == AlarmType::None || *a == alarm as i32)
            .map(|&(member_id, alarm)| AlarmMember { member_id, alarm })
            .collect()
    }

    pub fn is_raised(&self, alarm: AlarmType) -> bool {
        self.active.iter().any(|(_, a)| *a == alarm as i32)
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Whether a request of `kind` may run under these alarms: etcd's corrupt applier
    /// refuses every request, its capped applier (NOSPACE) those that add data.
    pub fn check(&self, kind: RequestKind) -> Result<(), StoreError> {
        check(
            self.is_raised(AlarmType::Corrupt),
            self.is_raised(AlarmType::Nospace),
            kind,
        )
    }
}

/// The rule of [`AlarmSet::check`], for a set of alarms given by what is raised.
pub fn check(is_corrupt: bool, is_out_of_space: bool, kind: RequestKind) -> Result<(), StoreError> {
    if is_corrupt {
        return Err(StoreError::Corrupt);
    }
    if is_out_of_space && kind == RequestKind::AddsData {
        return Err(StoreError::NoSpace);
    }
    Ok(())
}

/// etcd's name of an alarm type, as `etcdctl alarm list` and endpoint status print it.
pub fn alarm_name(alarm: i32) -> String {
    match AlarmType::try_from(alarm) {
        Ok(known) => known.as_str_name().to_string(),
        Err(_) => alarm.to_string(),
    }
}

/// One alarm as etcd's endpoint status lists it in `errors` (the protobuf text form of
/// an `AlarmMember`, trailing space included).
pub fn status_error(member: &AlarmMember) -> String {
    format!("memberID:{} alarm:{} ", member.member_id, alarm_name(member.alarm))
}

fn parse_key(key: &[u8]) -> Option<(u64, i32)> {
    if key.len() != ALARM_KEY_LEN || key[0] != ALARM_KEY_PREFIX {
        return None;
    }
    let member = u64::from_be_bytes(key[1..9].try_into().ok()?);
    let alarm = i32::from_be_bytes(key[9..13].try_into().ok()?);
    Some((member, alarm))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::backend::MemoryBackend;

    const NOSPACE: i32 = AlarmType::Nospace as i32;
    const CORRUPT: i32 = AlarmType::Corrupt as i32;

    #[test]
    fn alarms_survive_a_reload_and_a_second_activation_adds_nothing() {
        let backend: SharedBackend = Arc::new(MemoryBackend::new());
        let mut alarms = AlarmSet::default();
        let mut batch = WriteBatch::new();
        assert_eq!(
            alarms.activate(7, NOSPACE, &mut batch),
            Some(AlarmMember {
                member_id: 7,
                alarm: NOSPACE
            })
        );
        assert_eq!(alarms.activate(7, NOSPACE, &mut batch), None);
        alarms.activate(3, CORRUPT, &mut batch);
        backend.write(Tree::State, batch).unwrap();

        let reloaded = AlarmSet::open(&backend).unwrap();
        assert_eq!(reloaded, alarms);
        assert_eq!(
            reloaded.get(AlarmType::None),
            vec![
                AlarmMember {
                    member_id: 3,
                    alarm: CORRUPT
                },
                AlarmMember {
                    member_id: 7,
                    alarm: NOSPACE
                }
            ]
        );
        assert_eq!(reloaded.get(AlarmType::Nospace).len(), 1);

        let mut batch = WriteBatch::new();
        let mut alarms = reloaded;
        assert!(alarms.deactivate(7, NOSPACE, &mut batch).is_some());
        assert!(alarms.deactivate(7, NOSPACE, &mut batch).is_none(), "already cleared");
        backend.write(Tree::State, batch).unwrap();
        assert!(!AlarmSet::open(&backend).unwrap().is_raised(AlarmType::Nospace));
    }

    #[test]
    fn nospace_refuses_only_what_adds_data_and_corrupt_refuses_everything() {
        let mut alarms = AlarmSet::default();
        alarms.check(RequestKind::AddsData).unwrap();
        alarms.activate(1, NOSPACE, &mut WriteBatch::new());
        assert_eq!(alarms.check(RequestKind::AddsData), Err(StoreError::NoSpace));
        alarms.check(RequestKind::Other).unwrap();
        alarms.activate(2, CORRUPT, &mut WriteBatch::new());
        assert_eq!(alarms.check(RequestKind::Other), Err(StoreError::Corrupt));
        assert_eq!(alarms.check(RequestKind::AddsData), Err(StoreError::Corrupt));
    }

    #[test]
    fn status_lists_an_alarm_as_etcd_prints_it() {
        let member = AlarmMember {
            member_id: 42,
            alarm: NOSPACE,
        };
        assert_eq!(status_error(&member), "memberID:42 alarm:NOSPACE ");
        assert_eq!(alarm_name(CORRUPT), "CORRUPT");
    }

    #[test]
    fn a_malformed_alarm_record_is_named() {
        let backend: SharedBackend = Arc::new(MemoryBackend::new());
        let mut batch = WriteBatch::new();
        batch.put(vec![ALARM_KEY_PREFIX, 1, 2], Vec::new());
        backend.write(Tree::State, batch).unwrap();
        let error = AlarmSet::open(&backend).unwrap_err().to_string();
        assert!(error.contains("alarm record"), "{error}");
    }
}
