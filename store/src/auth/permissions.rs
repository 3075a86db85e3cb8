//! Key-range permissions as etcd decides them: a request's range is allowed when the
//! union of the ranges a user's roles grant for that access covers all of it.
//!
//! A permission or request names a key and a range end as etcd's API does: an empty
//! range end means the one key, `"\0"` means every key from the key on (`--from-key`),
//! anything else the half-open range `[key, range_end)` (`--prefix` is the prefix's
//! range end).

use berth_proto::authpb::{Permission, permission};

/// What a request does to a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    /// Whether a permission of etcd's type `perm_type` grants this access.
    pub fn granted_by(self, perm_type: i32) -> bool {
        match permission::Type::try_from(perm_type) {
            Ok(permission::Type::Readwrite) => true,
            Ok(permission::Type::Read) => self == Access::Read,
            Ok(permission::Type::Write) => self == Access::Write,
            Err(_) => false,
        }
    }
}

/// A half-open range of keys `[start, end)`; no end is the end of the key space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub start: Vec<u8>,
    pub end: Option<Vec<u8>>,
}

impl Span {
    /// The keys a key and range end of etcd's API name.
    pub fn of(key: &[u8], range_end: &[u8]) -> Span {
        let end = match range_end {
            [] => {
                // The one key: everything from it up to its first successor.
                let mut next = key.to_vec();
                next.push(0);
                Some(next)
            }
            [0] => None,
            end if end <= key => {
                // An empty range: etcd reads nothing there; treat it as the key alone,
                // which asks for no more than the request could touch.
                let mut next = key.to_vec();
                next.push(0);
                Some(next)
            }
            end => Some(end.to_vec()),
        };
        Span {
            start: key.to_vec(),
            end,
        }
    }
}

/// Whether the `granted` spans together cover all of `wanted`.
pub fn covers(granted: &mut [Span], wanted: &Span) -> bool {
    granted.sort_by(|a, b| a.start.cmp(&b.start));
    // `reached`: every key before it (and from wanted.start) is covered; None: all.
    let mut reached = wanted.start.clone();
    for span in granted.iter() {
        if span.start > reached {
            break;
        }
        match &span.end {
            None => return true,
            Some(end) if *end > reached => reached = end.clone(),
            Some(_) => {}
        }
        if let Some(wanted_end) = &wanted.end
            && reached >= *wanted_end
        {
            return true;
        }
    }
    false
}

/// The spans of `perms` that grant `access`.
pub fn spans_for<'a>(perms: impl IntoIterator<Item = &'a Permission>, access: Access) -> Vec<Span> {
    perms
        .into_iter()
        .filter(|perm| access.granted_by(perm.perm_type))
        .map(|perm| Span::of(&perm.key, &perm.range_end))
        .collect()
}
