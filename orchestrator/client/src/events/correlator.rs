//! What a recorder does with an event before it writes it, as client-go's event
//! correlator: a source may say at most [`SPAM_BURST`] things about one object, one
//! more every [`SPAM_REFILL`] (the rest are dropped); the tenth distinct message of
//! one reason about one object within [`AGGREGATE_WINDOW`] and every one after it
//! become one event, "(combined from similar events): …", whose count rises; and
//! the repeats of one event are counted, so that the first is created without
//! reading the store and the next ones raise its count.
//!
//! Pure: the caller gives the time. Every table is bounded ([`CACHE_ENTRIES`], the
//! least recently used goes), as client-go's LRU caches are.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Events a source may record about one object at once (client-go's
/// `defaultSpamBurst`).
pub const SPAM_BURST: f64 = 25.0;
/// How long it takes to earn one more (client-go's `defaultSpamQPS`, 1/300).
pub const SPAM_REFILL: Duration = Duration::from_secs(300);
/// The distinct messages of one reason about one object from which on they are
/// combined (client-go's `defaultAggregateMaxEvents`).
pub const AGGREGATE_AFTER: usize = 10;
/// How long distinct messages are remembered for that
/// (`defaultAggregateIntervalInSeconds`).
pub const AGGREGATE_WINDOW: Duration = Duration::from_secs(600);
/// How many keys each table keeps (client-go's `maxLruCacheEntries`).
pub const CACHE_ENTRIES: usize = 4096;
/// The prefix of a combined event's message.
pub const COMBINED: &str = "(combined from similar events): ";

/// Who says what about which object, as the correlator tells events apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Said {
    /// Source component and host, the object's kind, namespace, name, uid and
    /// apiVersion: what the spam filter counts by.
    pub about: String,
    /// The event's type and reason.
    pub reason: String,
    pub message: String,
}

/// What to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The message to write (the combined form once aggregated).
    pub message: String,
    /// Whether this is a combined event: named by what it is about and its
    /// reason, not its message.
    pub combined: bool,
    /// How many times this event (by its name) was recorded here, this one too.
    pub count: i32,
}

/// The correlator's memory; see the module's documentation.
#[derive(Default)]
pub struct Correlator {
    buckets: Lru<String, Bucket>,
    similar: Lru<(String, String), Similar>,
    counts: Lru<(String, String, String, bool), i32>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

struct Similar {
    messages: HashSet<String>,
    since: Instant,
}

impl Correlator {
    /// What to record of `said` at `now`: `None` when the spam filter drops it.
    pub fn observe(&mut self, said: &Said, now: Instant) -> Option<Verdict> {
        let bucket = self.buckets.get_or_insert_with(said.about.clone(), || Bucket {
            tokens: SPAM_BURST,
            at: now,
        });
        let earned = now.saturating_duration_since(bucket.at).as_secs_f64() / SPAM_REFILL.as_secs_f64();
        bucket.tokens = (bucket.tokens + earned).min(SPAM_BURST);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            return None;
        }
        bucket.tokens -= 1.0;

        let similar = (self.similar).get_or_insert_with((said.about.clone(), said.reason.clone()), || Similar {
            messages: HashSet::new(),
            since: now,
        });
        if now.saturating_duration_since(similar.since) > AGGREGATE_WINDOW {
            similar.messages.clear();
            similar.since = now;
        }
        similar.messages.insert(said.message.clone());
        let combined = similar.messages.len() >= AGGREGATE_AFTER;
        let message = match combined {
            true => format!("{COMBINED}{}", said.message),
            false => said.message.clone(),
        };
        let key = (
            said.about.clone(),
            said.reason.clone(),
            if combined { String::new() } else { said.message.clone() },
            combined,
        );
        let count = self.counts.get_or_insert_with(key, || 0);
        *count += 1;
        Some(Verdict {
            message,
            combined,
            count: *count,
        })
    }
}

/// A map of at most [`CACHE_ENTRIES`] keys; a new key past that pushes out the one
/// used least recently.
struct Lru<K, V> {
    entries: HashMap<K, (V, u64)>,
    by_use: BTreeMap<u64, K>,
    tick: u64,
}

impl<K, V> Default for Lru<K, V> {
    fn default() -> Self {
        Lru {
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
            tick: 0,
        }
    }
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        self.tick += 1;
        let tick = self.tick;
        if let Some((_, used)) = self.entries.get_mut(&key) {
            self.by_use.remove(used);
            *used = tick;
        } else {
            if self.entries.len() >= CACHE_ENTRIES
                && let Some((_, oldest)) = self.by_use.pop_first()
            {
                self.entries.remove(&oldest);
            }
            self.entries.insert(key.clone(), (make(), tick));
        }
        self.by_use.insert(tick, key.clone());
        &mut self.entries.get_mut(&key).expect("just inserted").0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(about: &str, reason: &str, message: &str) -> Said {
        Said {
            about: about.into(),
            reason: reason.into(),
            message: message.into(),
        }
    }

    #[test]
    fn a_source_says_25_things_about_an_object_then_one_every_five_minutes() {
        let mut c = Correlator::default();
        let start = Instant::now();
        for i in 0..25 {
            let seen = c.observe(&said("rs-a", "SuccessfulCreate", &format!("Created pod: p{i}")), start);
            assert!(seen.is_some(), "event {i} is within the burst");
        }
        assert_eq!(
            c.observe(&said("rs-a", "SuccessfulCreate", "Created pod: p25"), start),
            None
        );
        assert_eq!(
            c.observe(&said("rs-a", "SuccessfulDelete", "Deleted pod: p0"), start),
            None
        );
        // Another object, or another source about it, has a burst of its own.
        assert!(
            c.observe(&said("rs-b", "SuccessfulCreate", "Created pod: q0"), start)
                .is_some()
        );
        // Five minutes earn one more.
        let later = start + SPAM_REFILL;
        assert!(
            c.observe(&said("rs-a", "SuccessfulCreate", "Created pod: p26"), later)
                .is_some()
        );
        assert_eq!(
            c.observe(&said("rs-a", "SuccessfulCreate", "Created pod: p27"), later),
            None
        );
    }

    #[test]
    fn the_tenth_distinct_message_of_a_reason_is_combined_and_then_counted() {
        let mut c = Correlator::default();
        let now = Instant::now();
        for i in 0..9 {
            let v = c
                .observe(&said("rs", "SuccessfulCreate", &format!("Created pod: p{i}")), now)
                .unwrap();
            assert_eq!((v.combined, v.count), (false, 1));
            assert_eq!(v.message, format!("Created pod: p{i}"));
        }
        // A repeat of a message is counted, not a new distinct one.
        let repeat = c
            .observe(&said("rs", "SuccessfulCreate", "Created pod: p0"), now)
            .unwrap();
        assert_eq!((repeat.combined, repeat.count), (false, 2));
        for (i, count) in (9..12).zip(1..) {
            let v = c
                .observe(&said("rs", "SuccessfulCreate", &format!("Created pod: p{i}")), now)
                .unwrap();
            assert!(v.combined);
            assert_eq!(v.count, count, "one combined event, its count rising");
            assert_eq!(v.message, format!("{COMBINED}Created pod: p{i}"));
        }
        // Another reason about the same object is apart.
        let other = c
            .observe(&said("rs", "SuccessfulDelete", "Deleted pod: p0"), now)
            .unwrap();
        assert_eq!((other.combined, other.count), (false, 1));
        // After the window, messages are distinct again.
        let later = now + AGGREGATE_WINDOW + Duration::from_secs(1) + SPAM_REFILL * 25;
        let fresh = c
            .observe(&said("rs", "SuccessfulCreate", "Created pod: p99"), later)
            .unwrap();
        assert_eq!((fresh.combined, fresh.count), (false, 1));
    }

    #[test]
    fn the_tables_keep_the_keys_used_last() {
        let mut c = Correlator::default();
        let now = Instant::now();
        for _ in 0..25 {
            c.observe(&said("busy", "R", "m"), now).unwrap();
        }
        // Many other objects, "busy" touched among them: it stays remembered (and
        // limited); the first of the others is forgotten.
        for i in 0..CACHE_ENTRIES * 2 {
            c.observe(&said(&format!("o{i}"), "R", "m"), now).unwrap();
            if i % 1000 == 0 {
                assert_eq!(c.observe(&said("busy", "R", "m"), now), None);
            }
        }
        assert_eq!(c.observe(&said("busy", "R", "m"), now), None);
        assert!(c.buckets.entries.len() <= CACHE_ENTRIES);
        assert!(c.counts.entries.len() <= CACHE_ENTRIES);
        let again = c.observe(&said("o0", "R", "m"), now).unwrap();
        assert_eq!(again.count, 1, "forgotten: counted afresh");
    }
}
