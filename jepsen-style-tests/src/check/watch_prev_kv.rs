//! `prev_kv` on put events: it must be the key's value just before the put.
//!
//! The put before a put is found through etcd's key metadata rather than through
//! "the previous event anyone saw": a key's puts within one life (one
//! `create_revision`) have versions 1, 2, 3…, so the put before version v is the
//! one with version v-1 and the same create_revision. That stays exact when no
//! session saw the revisions in between, which "the previous event in the union"
//! would not.
//!
//! - version 1 (the put created the key): there was no previous value, so no prev_kv;
//! - version v > 1 and the version v-1 put was seen: prev_kv must be present and equal
//!   its value (every session asks for prev_kv);
//! - otherwise nothing is known, and nothing is claimed.
//!
//! Delete events carry no version, so their prev_kv is not checked.

use std::collections::{BTreeSet, HashMap};

use super::Findings;
use super::watch_coverage::Coverage;
use crate::history::WatchEvent;

pub(crate) fn check(coverage: &[Coverage], findings: &mut Findings) {
    let mut puts: HashMap<(&str, i64, i64), &WatchEvent> = HashMap::new();
    for c in coverage {
        for e in c.events.values().flatten().filter(|e| !e.is_delete) {
            puts.entry((&e.key, e.create_revision, e.version)).or_insert(e);
        }
    }
    // One report per (session, key, revision), however many times it was delivered.
    let mut judged: BTreeSet<(u64, &str, i64)> = BTreeSet::new();
    for c in coverage {
        for e in c.events.values().flatten().filter(|e| !e.is_delete) {
            let problem = if e.version == 1 {
                e.prev_value
                    .as_ref()
                    .map(|p| format!("it created the key, yet carried prev_kv {p:?}"))
            } else if let Some(before) = puts.get(&(e.key.as_str(), e.create_revision, e.version - 1)) {
                match &e.prev_value {
                    Some(p) if *p == before.value => None,
                    Some(p) => Some(format!(
                        "it carried prev_kv {p:?}, but the put before it (revision {}, version {}) wrote {:?}",
                        before.mod_revision, before.version, before.value
                    )),
                    None => Some(format!(
                        "it carried no prev_kv, but the put before it (revision {}, version {}) wrote {:?}",
                        before.mod_revision, before.version, before.value
                    )),
                }
            } else {
                None
            };
            if let Some(problem) = problem
                && judged.insert((c.session.watcher, &e.key, e.mod_revision))
            {
                findings.flag(
                    "watch-wrong-prev-kv",
                    Vec::new(),
                    format!(
                        "{} delivered put {:?}={:?} at revision {} (version {}): {problem}",
                        c.label(),
                        e.key,
                        e.value,
                        e.mod_revision,
                        e.version
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::check::fixture::{delete, put, session};
    use crate::check::{Verdict, watch};

    #[test]
    fn prev_kv_must_be_the_value_before() {
        let good = session(
            1,
            1,
            vec![
                vec![put("r/a", "1", 2, 2, 1, None)],
                vec![put("r/a", "2", 3, 2, 2, Some("1"))],
            ],
        );
        assert_eq!(watch::check(&[good], &[], "r/").verdict, Verdict::Valid);
        let wrong = session(
            1,
            1,
            vec![
                vec![put("r/a", "1", 2, 2, 1, None)],
                vec![put("r/a", "2", 3, 2, 2, Some("0"))],
            ],
        );
        let r = watch::check(&[wrong], &[], "r/");
        assert_eq!(r.anomalies.len(), 1, "{r:?}");
        assert_eq!(r.anomalies[0].kind, "watch-wrong-prev-kv");
        assert!(r.anomalies[0].description.contains("wrote \"1\""), "{:?}", r.anomalies);
    }

    #[test]
    fn the_previous_put_seen_by_another_session_counts() {
        let early = session(1, 1, vec![vec![put("r/a", "1", 2, 2, 1, None)]]);
        let late_missing = session(2, 3, vec![vec![put("r/a", "2", 3, 2, 2, None)]]);
        let r = watch::check(&[early, late_missing], &[], "r/");
        assert_eq!(r.anomalies.len(), 1, "{r:?}");
        assert!(
            r.anomalies[0].description.contains("carried no prev_kv"),
            "{:?}",
            r.anomalies
        );
    }

    #[test]
    fn a_put_that_creates_the_key_has_no_prev_kv() {
        let s = session(
            1,
            1,
            vec![
                vec![put("r/a", "1", 2, 2, 1, None)],
                vec![delete("r/a", 3, Some("1"))],
                vec![put("r/a", "2", 4, 4, 1, Some("1"))],
            ],
        );
        let r = watch::check(&[s], &[], "r/");
        assert_eq!(r.anomalies.len(), 1, "{r:?}");
        assert!(
            r.anomalies[0].description.contains("created the key"),
            "{:?}",
            r.anomalies
        );
    }

    #[test]
    fn an_unseen_previous_put_proves_nothing() {
        // Version 3's predecessor (version 2) was never seen; version 1 was. The
        // previous event anyone saw is not the previous put, so no claim is made.
        let s = session(1, 1, vec![vec![put("r/a", "1", 2, 2, 1, None)]]);
        let t = session(2, 5, vec![vec![put("r/a", "3", 5, 2, 3, Some("2"))]]);
        assert_eq!(watch::check(&[s, t], &[], "r/").verdict, Verdict::Valid);
    }
}
