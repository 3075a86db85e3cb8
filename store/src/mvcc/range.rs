//! Key ranges as etcd clients spell them, and the options of a range read.

use berth_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use berth_proto::mvccpb::KeyValue;

/// `[key, range_end)` with etcd's conventions: an empty `range_end` means the key
/// alone, `"\0"` means every key from `key` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub start: Vec<u8>,
    /// `None`: to the end of the key space.
    pub end: Option<Vec<u8>>,
    pub is_single: bool,
}

impl KeyRange {
    pub fn new(key: &[u8], range_end: &[u8]) -> Self {
        if range_end.is_empty() {
            return Self {
                start: key.to_vec(),
                end: None,
                is_single: true,
            };
        }
        let end = (range_end != [0u8]).then(|| range_end.to_vec());
        Self {
            start: key.to_vec(),
            end,
            is_single: false,
        }
    }

    pub fn single(key: &[u8]) -> Self {
        Self::new(key, &[])
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        if self.is_single {
            return key == self.start.as_slice();
        }
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }
}

#[derive(Debug, Clone, Default)]
pub struct RangeOptions {
    /// 0: the current revision.
    pub revision: i64,
    /// 0: no limit.
    pub limit: i64,
    pub keys_only: bool,
    pub count_only: bool,
    pub sort_order: i32,
    pub sort_target: i32,
    pub min_mod_revision: i64,
    pub max_mod_revision: i64,
    pub min_create_revision: i64,
    pub max_create_revision: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    pub more: bool,
    pub count: i64,
    /// The store's current revision when the read was served.
    pub current_revision: i64,
}

impl RangeOptions {
    /// Whether every key must be read before `limit` can be applied.
    pub(crate) fn needs_full_scan(&self) -> bool {
        self.sort_order() != SortOrder::None
            || self.min_mod_revision != 0
            || self.max_mod_revision != 0
            || self.min_create_revision != 0
            || self.max_create_revision != 0
    }

    pub(crate) fn sort_order(&self) -> SortOrder {
        let order = SortOrder::try_from(self.sort_order).unwrap_or(SortOrder::None);
        let target = SortTarget::try_from(self.sort_target).unwrap_or(SortTarget::Key);
        // etcd sorts ascending when a target other than the key is named without an order.
        if order == SortOrder::None && target != SortTarget::Key {
            SortOrder::Ascend
        } else {
            order
        }
    }

    pub(crate) fn keep(&self, kv: &KeyValue) -> bool {
        (self.min_mod_revision == 0 || kv.mod_revision >= self.min_mod_revision)
            && (self.max_mod_revision == 0 || kv.mod_revision <= self.max_mod_revision)
            && (self.min_create_revision == 0 || kv.create_revision >= self.min_create_revision)
            && (self.max_create_revision == 0 || kv.create_revision <= self.max_create_revision)
    }

    pub(crate) fn sort(&self, kvs: &mut [KeyValue]) {
        let order = self.sort_order();
        if order == SortOrder::None {
            return;
        }
        let target = SortTarget::try_from(self.sort_target).unwrap_or(SortTarget::Key);
        if target == SortTarget::Key && order == SortOrder::Ascend {
            return; // already in key order
        }
        match target {
            SortTarget::Key => kvs.sort_by(|a, b| a.key.cmp(&b.key)),
            SortTarget::Version => kvs.sort_by_key(|kv| kv.version),
            SortTarget::Create => kvs.sort_by_key(|kv| kv.create_revision),
            SortTarget::Mod => kvs.sort_by_key(|kv| kv.mod_revision),
            SortTarget::Value => kvs.sort_by(|a, b| a.value.cmp(&b.value)),
        }
        if order == SortOrder::Descend {
            kvs.reverse();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_range_conventions() {
        let single = KeyRange::new(b"a", b"");
        assert!(single.contains(b"a") && !single.contains(b"ab"));
        let from = KeyRange::new(b"b", b"\0");
        assert!(from.contains(b"zzz") && from.contains(b"b") && !from.contains(b"a"));
        let prefix = KeyRange::new(b"p/", b"p0");
        assert!(prefix.contains(b"p/x") && !prefix.contains(b"p0"));
    }
}
