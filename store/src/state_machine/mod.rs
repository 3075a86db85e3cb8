//! The state machine: the log command's pure apply ([`apply`]) and the adapter that
//! openraft drives ([`StateMachineStore`]), which commits each applied batch with its
//! log id in one atomic backend write and then tells the watch hub.

mod apply;
mod snapshot;
pub(crate) mod store;

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use apply::{Applied, AppliedState, range_options};
pub use snapshot::{PortableError, SnapshotFile, capture};
pub use store::{StateMachineStore, applied_on_disk};

/// Shared access to the applied state. Lock order: this lock is never held across an
/// `.await` and never taken while the backend is being flushed.
#[derive(Debug, Clone)]
pub struct StateHandle(Arc<RwLock<AppliedState>>);

impl StateHandle {
    pub fn new(state: AppliedState) -> Self {
        Self(Arc::new(RwLock::new(state)))
    }

    pub fn read(&self) -> RwLockReadGuard<'_, AppliedState> {
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, AppliedState> {
        self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
