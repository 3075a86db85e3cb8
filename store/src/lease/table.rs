//! The replicated lease table: which leases exist, their granted TTL and the keys
//! attached to them. It lives in the state machine and changes only through apply;
//! when a lease expires is the leader's business (see `lessor`).

use std::collections::{BTreeMap, BTreeSet};

use crate::backend::BackendError;
use crate::backend::{SharedBackend, Tree, WriteBatch};

const LEASE_KEY_PREFIX: u8 = b'l';

fn lease_key(id: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(LEASE_KEY_PREFIX);
    key.extend_from_slice(&(id as u64).to_be_bytes());
    key
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lease {
    pub ttl_seconds: i64,
    pub keys: BTreeSet<Vec<u8>>,
}

#[derive(Debug, Clone, Default)]
pub struct LeaseTable {
    leases: BTreeMap<i64, Lease>,
}

impl LeaseTable {
    /// Loads the leases from the backend and attaches the given live keys.
    pub fn open(backend: &SharedBackend, attached: Vec<(Vec<u8>, i64)>) -> Result<Self, BackendError> {
        let mut leases = BTreeMap::new();
        for (key, value) in backend.scan(Tree::State, &[LEASE_KEY_PREFIX], Some(&[LEASE_KEY_PREFIX + 1]), 0)? {
            let corrupt = |reason: &str| BackendError::Corrupt {
                path: String::new(),
                reason: reason.to_string(),
            };
            let id_bytes: [u8; 8] = key
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt("bad lease key"))?;
            let ttl_bytes: [u8; 8] = value.as_slice().try_into().map_err(|_| corrupt("bad lease record"))?;
            let lease = Lease {
                ttl_seconds: i64::from_be_bytes(ttl_bytes),
                keys: BTreeSet::new(),
            };
            leases.insert(u64::from_be_bytes(id_bytes) as i64, lease);
        }
        let mut table = Self { leases };
        for (key, id) in attached {
            // A key whose lease is gone would have been deleted with it; keep what is there.
            if let Some(lease) = table.leases.get_mut(&id) {
                lease.keys.insert(key);
            }
        }
        Ok(table)
    }

    pub fn get(&self, id: i64) -> Option<&Lease> {
        self.leases.get(&id)
    }

    pub fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    pub fn ids(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.leases.iter().map(|(id, lease)| (*id, lease.ttl_seconds))
    }

    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    pub fn grant(&mut self, id: i64, ttl_seconds: i64, batch: &mut WriteBatch) {
        self.leases.insert(
            id,
            Lease {
                ttl_seconds,
                keys: BTreeSet::new(),
            },
        );
        batch.put(lease_key(id), ttl_seconds.to_be_bytes().to_vec());
    }

    /// Removes the lease and returns the keys that were attached to it.
    pub fn revoke(&mut self, id: i64, batch: &mut WriteBatch) -> Option<BTreeSet<Vec<u8>>> {
        let lease = self.leases.remove(&id)?;
        batch.delete(lease_key(id));
        Some(lease.keys)
    }

    pub fn attach(&mut self, id: i64, key: &[u8]) {
        if let Some(lease) = self.leases.get_mut(&id) {
            lease.keys.insert(key.to_vec());
        }
    }

    pub fn detach(&mut self, id: i64, key: &[u8]) {
        if let Some(lease) = self.leases.get_mut(&id) {
            lease.keys.remove(key);
        }
    }
}
