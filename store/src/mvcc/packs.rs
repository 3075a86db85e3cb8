//! How revision records sit in the backend.
//!
//! A record is the put or tombstone written at one revision. The records one apply
//! writes go to the backend in packs of a few kilobytes: one backend key per pack,
//! the key of its first record, so the engine does its per-key work (a tree insert,
//! a page update, later the garbage of both) once for a dozen records rather than
//! for each. Packs never overlap: each holds a run of consecutive stored records,
//! so the record at revision `r` is in the pack with the greatest key at or before
//! `r`'s key.
//!
//! A stored value is one of:
//! - a lone record, kind byte first (put or tombstone), then the `KeyValue`; its
//!   revision is its key's. Earlier versions stored every record this way, and a
//!   pack of one is still written so;
//! - a pack: [`PACK`], then for each record `main` (u64), `sub` (u64) and the
//!   record's length (u32), all big-endian, then the record itself.
//!
//! A compaction rewrites a pack without its dropped records under the same key (the
//! key may then be older than the pack's first record, which lookups allow), or
//! deletes it when nothing is left.

use super::MvccError;
use super::revision::{REVISION_KEY_LEN, Revision};

/// The kind byte of a pack; a lone record's kind byte is `0` (put) or `1` (tombstone).
pub(super) const PACK: u8 = 2;
/// A pack is closed once its records reach this many bytes. The engine keeps a
/// node's keys and values together, up to 17 keys to a node, and writes a node of
/// more than 128 KiB to a file of its own.
pub(super) const PACK_BYTES: usize = 4096;
const ENTRY_HEADER: usize = 8 + 8 + 4;

/// The records of one stored value, in revision order: `(revision, record)`.
pub(super) struct Records<'a> {
    lone: Option<(Revision, &'a [u8])>,
    rest: &'a [u8],
    key_revision: Revision,
}

impl<'a> Records<'a> {
    pub(super) fn new(key: &[u8], value: &'a [u8]) -> Result<Self, MvccError> {
        let key_revision = Revision::from_key(key).ok_or_else(|| MvccError::CorruptRecord {
            revision: Revision::default(),
            reason: format!("revision key of {} bytes, want {REVISION_KEY_LEN}", key.len()),
        })?;
        Ok(match value.split_first() {
            Some((&PACK, [])) => {
                return Err(MvccError::CorruptRecord {
                    revision: key_revision,
                    reason: "pack: no records".into(),
                });
            }
            Some((&PACK, rest)) => Self {
                lone: None,
                rest,
                key_revision,
            },
            _ => Self {
                lone: Some((key_revision, value)),
                rest: &[],
                key_revision,
            },
        })
    }

    /// The revision of the key the records are stored under.
    pub(super) fn key_revision(&self) -> Revision {
        self.key_revision
    }

    fn corrupt(&mut self, reason: &str) -> MvccError {
        self.rest = &[];
        MvccError::CorruptRecord {
            revision: self.key_revision,
            reason: format!("pack: {reason}"),
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<(Revision, &'a [u8]), MvccError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(lone) = self.lone.take() {
            return Some(Ok(lone));
        }
        if self.rest.is_empty() {
            return None;
        }
        let Some((header, body)) = self.rest.split_at_checked(ENTRY_HEADER) else {
            return Some(Err(self.corrupt("truncated entry header")));
        };
        let field = |at: usize| u64::from_be_bytes(header[at..at + 8].try_into().expect("8 bytes"));
        let revision = Revision::new(field(0) as i64, field(8) as i64);
        let len = u32::from_be_bytes(header[16..20].try_into().expect("4 bytes")) as usize;
        let Some((record, rest)) = body.split_at_checked(len) else {
            return Some(Err(self.corrupt("truncated record")));
        };
        if revision < self.key_revision {
            return Some(Err(self.corrupt("record before the pack's key")));
        }
        self.rest = rest;
        Some(Ok((revision, record)))
    }
}

/// The backend value for `records` (at least one, in revision order) stored under
/// the key of the first: the record alone when there is one, a pack otherwise.
pub(super) fn encode(records: &[(Revision, &[u8])]) -> Vec<u8> {
    if let [(_, record)] = records {
        return record.to_vec();
    }
    encode_pack(records)
}

/// A pack of `records`, whatever their number.
pub(super) fn encode_pack(records: &[(Revision, &[u8])]) -> Vec<u8> {
    let len = records.iter().map(|(_, r)| ENTRY_HEADER + r.len()).sum::<usize>();
    let mut buf = Vec::with_capacity(1 + len);
    buf.push(PACK);
    for (revision, record) in records {
        buf.extend_from_slice(&(revision.main as u64).to_be_bytes());
        buf.extend_from_slice(&(revision.sub as u64).to_be_bytes());
        buf.extend_from_slice(&(record.len() as u32).to_be_bytes());
        buf.extend_from_slice(record);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(key: &[u8], value: &[u8]) -> Vec<(Revision, Vec<u8>)> {
        Records::new(key, value)
            .unwrap()
            .map(|r| r.map(|(rev, bytes)| (rev, bytes.to_vec())).unwrap())
            .collect()
    }

    #[test]
    fn a_pack_round_trips_and_a_lone_record_is_its_key_revision() {
        let (a, b, c) = (Revision::new(5, 0), Revision::new(5, 1), Revision::new(7, 0));
        let records: Vec<(Revision, &[u8])> = vec![(a, b"\x00one"), (b, b"\x01"), (c, b"\x00three")];
        let value = encode(&records);
        assert_eq!(value[0], PACK);
        let owned: Vec<(Revision, Vec<u8>)> = records.iter().map(|(r, b)| (*r, b.to_vec())).collect();
        assert_eq!(all(&a.to_key(), &value), owned);

        let lone = encode(&records[..1]);
        assert_eq!(lone, b"\x00one");
        assert_eq!(all(&a.to_key(), &lone), vec![(a, b"\x00one".to_vec())]);
        assert_eq!(
            all(&a.to_key(), &encode_pack(&records[2..])),
            vec![(c, b"\x00three".to_vec())]
        );
    }

    #[test]
    fn a_damaged_pack_is_reported_not_misread() {
        let a = Revision::new(3, 0);
        let value = encode_pack(&[(a, b"\x00abc"), (Revision::new(4, 0), b"\x00defg")]);
        for cut in [value.len() - 1, 1 + ENTRY_HEADER - 1, 1 + ENTRY_HEADER + 2] {
            let results: Vec<_> = Records::new(&a.to_key(), &value[..cut]).unwrap().collect();
            assert!(
                results.last().unwrap().is_err(),
                "a pack cut at {cut} bytes must end in an error"
            );
        }
        let later_key = Revision::new(4, 0).to_key();
        let first = Records::new(&later_key, &value).unwrap().next().unwrap();
        assert!(first.is_err(), "a record before the pack's key is corrupt");
        assert!(Records::new(b"short", &value).is_err());
        assert!(Records::new(&a.to_key(), &[PACK]).is_err(), "an empty pack is corrupt");
    }
}
