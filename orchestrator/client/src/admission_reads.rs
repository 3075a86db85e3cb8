//! The serializable reads admission makes (ServiceAccounts, PriorityClasses, the
//! namespace, LimitRanges, ResourceQuotas), either straight from the store or shared
//! among creates made together: a ReplicaSet's batch of pods all ask for the same
//! few keys, and each is read once for the batch, as kube-controller-manager's
//! admission reads shared informer caches instead of the store. Only serializable
//! reads are shared; a failed read is not kept (the next create asks again), and the
//! linearizable reads admission falls back to go to the store every time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::kv::{Kv, KvError, Record};

/// Reads shared by the creates of one batch; made for the batch and dropped with it.
#[derive(Default)]
pub struct SharedReads {
    gets: Mutex<HashMap<String, Arc<OnceCell<Option<Record>>>>>,
    lists: Mutex<HashMap<String, Arc<OnceCell<Vec<Record>>>>>,
}

/// Where admission reads: the store, through `kv`, and the batch's shared reads.
#[derive(Clone, Copy)]
pub struct Reads<'a> {
    pub kv: &'a Kv,
    shared: Option<&'a SharedReads>,
}

impl<'a> Reads<'a> {
    /// Serializable reads shared through `shared`; without it every read asks the
    /// store.
    pub fn new(kv: &'a Kv, shared: Option<&'a SharedReads>) -> Self {
        Reads { kv, shared }
    }

    /// Every read asks the store.
    pub fn direct(kv: &'a Kv) -> Self {
        Reads::new(kv, None)
    }

    /// `key`, read serializably.
    pub async fn get(&self, key: &str) -> Result<Option<Record>, KvError> {
        let Some(shared) = self.shared else {
            return self.kv.get_serializable(key).await;
        };
        let cell = cell(&shared.gets, key);
        cell.get_or_try_init(|| self.kv.get_serializable(key)).await.cloned()
    }

    /// The records under `prefix`, read serializably.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Record>, KvError> {
        let read = || async { Ok(self.kv.list_serializable(prefix).await?.0) };
        let Some(shared) = self.shared else {
            return read().await;
        };
        let cell = cell(&shared.lists, prefix);
        cell.get_or_try_init(read).await.cloned()
    }
}

/// The cell of `key`, made empty the first time.
fn cell<T>(cells: &Mutex<HashMap<String, Arc<OnceCell<T>>>>, key: &str) -> Arc<OnceCell<T>> {
    let mut cells = cells.lock().expect("shared reads lock");
    match cells.get(key) {
        Some(cell) => cell.clone(),
        None => cells.entry(key.to_string()).or_default().clone(),
    }
}
