//! Re-encrypting every stored object of a resource with the current first key: the
//! third step of a key rotation, as Kubernetes documents it (1: add the new key
//! second, every server restarted; 2: move it first, restarted again; 3: rewrite
//! every Secret; 4: drop the old key). Until step 3 is done the old key must stay
//! configured: values it sealed are read with it.
//!
//! Each object is read (opened with any configured key) and written back under its
//! mod_revision, so a concurrent write is never overwritten: on a conflict the
//! object is read again. When any value is one no configured key opens, nothing
//! is written and each such value is reported, by key name and object.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Envelope, sealed_with, unreadable};
use crate::kv::{Kv, KvError};

/// What a rewrite did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// Objects written back with the first key.
    pub rewritten: usize,
    /// Objects that could not be read: why, naming the object and its key (left as
    /// they were).
    pub unreadable: Vec<String>,
    /// How the objects are stored afterwards: key name (or "plain text") → count.
    pub stored_with: BTreeMap<String, usize>,
}

/// How many times one object is read again after a concurrent write.
const ATTEMPTS: usize = 10;

/// Rewrites every object under `prefix` (`/registry/secrets/`) with `envelope`'s
/// first provider; `raw` is a client without an envelope, for reading the stored
/// form afterwards.
pub async fn rewrite_all(raw: &Kv, envelope: Arc<Envelope>, prefix: &str) -> Result<Rewritten, KvError> {
    let sealed = raw.clone().with_envelope(envelope);
    let mut report = Rewritten::default();
    let (records, _) = sealed.list(prefix).await?;
    // Nothing is written unless every object opens: a file whose key is wrong
    // (right name, other bytes) must not seal the plain ones with that key.
    report.unreadable = records
        .iter()
        .filter_map(|record| unreadable(&record.key, &record.value))
        .collect();
    let records = if report.unreadable.is_empty() {
        records
    } else {
        Vec::new()
    };
    for mut record in records {
        let mut attempt = 1;
        loop {
            if let Some(message) = unreadable(&record.key, &record.value) {
                // Written meanwhile by a server with a key this file lacks.
                report.unreadable.push(message);
                break;
            }
            match sealed
                .update(&record.key, record.value.clone(), record.mod_revision, None)
                .await
            {
                Ok(_) => {
                    report.rewritten += 1;
                    break;
                }
                Err(KvError::NotFound) => break,
                Err(KvError::Conflict { .. }) if attempt < ATTEMPTS => {
                    attempt += 1;
                    match sealed.get(&record.key).await? {
                        Some(again) => record = again,
                        None => break,
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
    let (stored, _) = raw.list(prefix).await?;
    for record in stored {
        let how = match sealed_with(&record.value) {
            Some((provider, name)) => format!("{provider} key {name:?}"),
            None => "plain text".to_string(),
        };
        *report.stored_with.entry(how).or_default() += 1;
    }
    Ok(report)
}
