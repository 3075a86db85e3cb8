use crate::backend::BackendError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MvccError {
    #[error("mvcc: required revision {requested} has been compacted (compacted at {compacted})")]
    Compacted { requested: i64, compacted: i64 },
    #[error("mvcc: required revision {requested} is a future revision (current {current})")]
    FutureRevision { requested: i64, current: i64 },
    #[error("mvcc: corrupt record at revision {revision:?}: {reason}")]
    CorruptRecord { revision: super::Revision, reason: String },
    #[error(transparent)]
    Backend(#[from] BackendError),
}
