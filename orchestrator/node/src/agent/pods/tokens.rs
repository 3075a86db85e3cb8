//! The ServiceAccount tokens of the pods' `serviceAccountToken` projections, as
//! the kubelet's token manager keeps them: one TokenRequest per (pod, audience,
//! lifetime), bound to the pod, asked for again once 80% of its life has passed
//! (or a day, whichever is sooner), so that the file in the pod always holds a token
//! that works. A request that fails is tried again after [`RETRY`]; meanwhile a
//! token still valid stays, and a pod that has none yet waits for its volume with
//! the failure as its `FailedMount` message.
//!
//! Tokens never reach logs, events or errors: only the accounts and pods do.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use berth_api::meta::MetaExt;
use berth_api::objects::Pod;

use super::super::cluster::Cluster;

/// Kubernetes' default `expirationSeconds` of a projection.
pub(crate) const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// How long a failed request waits before the next.
const RETRY: Duration = Duration::from_secs(5);
/// A token is asked for again after this much of its life at most.
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// One projection's token: the pod (uid), the audience (empty: the API
/// server's own) and the lifetime asked for.
pub(crate) type TokenKey = (String, String, i64);

/// The tokens of the projections, as the pass writes them: the token, or why
/// there is none.
pub(crate) type Issued = BTreeMap<TokenKey, Result<String, String>>;

#[derive(Default)]
struct Held {
    token: Option<(String, SystemTime)>,
    /// When the token held was issued.
    issued: Option<SystemTime>,
    /// The last failure, and when the request may be tried again.
    failure: Option<(String, SystemTime)>,
}

impl Held {
    /// Whether a new token is due at `now`.
    fn due(&self, now: SystemTime) -> bool {
        if self.failure.as_ref().is_some_and(|(_, retry)| now < *retry) {
            return false;
        }
        let (Some((_, expires)), Some(issued)) = (&self.token, self.issued) else {
            return true;
        };
        let life = expires.duration_since(issued).unwrap_or_default();
        let refresh_at = issued + (life.mul_f64(0.8)).min(MAX_AGE);
        now >= refresh_at
    }

    fn current(&self, now: SystemTime) -> Result<String, String> {
        match (&self.token, &self.failure) {
            (Some((token, expires)), _) if now < *expires => Ok(token.clone()),
            (_, Some((failure, _))) => Err(failure.clone()),
            _ => Err("the token has expired".into()),
        }
    }
}

/// Every `serviceAccountToken` projection of the pod: (audience, lifetime).
pub(crate) fn projections(pod: &Pod) -> Vec<(String, i64)> {
    pod.spec
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.projected.as_ref())
        .flat_map(|p| p.sources.iter().flatten())
        .filter_map(|source| source.service_account_token.as_ref())
        .map(|t| {
            let lifetime = t.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION_SECONDS);
            (t.audience.clone().unwrap_or_default(), lifetime)
        })
        .collect()
}

/// The tokens the node's pods use.
#[derive(Default)]
pub(crate) struct Tokens {
    held: BTreeMap<TokenKey, Held>,
}

impl Tokens {
    /// Asks for the tokens of `pods` that are missing or due, forgets those of
    /// pods gone, and returns what the pass writes.
    pub(crate) async fn refresh<'a>(&mut self, cluster: &Cluster, pods: impl Iterator<Item = &'a Pod>) -> Issued {
        let mut wanted: BTreeMap<TokenKey, &Pod> = BTreeMap::new();
        for pod in pods {
            for (audience, lifetime) in projections(pod) {
                wanted.insert((pod.metadata.uid().to_string(), audience, lifetime), pod);
            }
        }
        self.held.retain(|key, _| wanted.contains_key(key));
        let mut issued = Issued::new();
        for (key, pod) in wanted {
            let held = self.held.entry(key.clone()).or_default();
            let now = SystemTime::now();
            if held.due(now) {
                let audience = Some(key.1.as_str()).filter(|a| !a.is_empty());
                match cluster.request_token(pod, audience, key.2).await {
                    Ok((token, expires)) => {
                        tracing::debug!(pod = %super::plan::pod_name(pod), "requested a ServiceAccount token");
                        held.token = Some((token, expires));
                        held.issued = Some(now);
                        held.failure = None;
                    }
                    Err(e) => {
                        let account = berth_api::admission::service_account::account_name(&pod.spec);
                        let message = format!(
                            "failed to fetch token: serviceaccounts {account:?} token of pod {}: {e}",
                            super::plan::pod_name(pod)
                        );
                        tracing::warn!("{message}");
                        held.failure = Some((message, now + RETRY));
                    }
                }
            }
            issued.insert(key, held.current(now));
        }
        issued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_due_at_eighty_percent_of_its_life_and_a_failure_waits() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut held = Held::default();
        assert!(held.due(t0), "no token yet");
        held.token = Some(("t".into(), t0 + Duration::from_secs(3600)));
        held.issued = Some(t0);
        assert!(!held.due(t0 + Duration::from_secs(2879)));
        assert!(held.due(t0 + Duration::from_secs(2880)));
        assert_eq!(held.current(t0 + Duration::from_secs(3599)), Ok("t".into()));
        held.failure = Some(("refused".into(), t0 + Duration::from_secs(2885)));
        assert!(!held.due(t0 + Duration::from_secs(2881)), "a failure waits its retry");
        assert!(held.due(t0 + Duration::from_secs(2885)));
        // The old token serves while still valid; once expired the failure shows.
        assert_eq!(held.current(t0 + Duration::from_secs(3000)), Ok("t".into()));
        assert_eq!(held.current(t0 + Duration::from_secs(3600)), Err("refused".into()));
    }

    #[test]
    fn a_long_lived_token_is_asked_for_again_within_a_day() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let held = Held {
            token: Some(("t".into(), t0 + Duration::from_secs(365 * 24 * 3600))),
            issued: Some(t0),
            failure: None,
        };
        assert!(!held.due(t0 + MAX_AGE - Duration::from_secs(1)));
        assert!(held.due(t0 + MAX_AGE));
    }

    #[test]
    fn projections_default_their_lifetime_to_an_hour() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"containers": [], "volumes": [
                {"name": "a", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "token"}},
                    {"serviceAccountToken": {"path": "vault", "audience": "vault", "expirationSeconds": 7200}},
                ]}},
                {"name": "b", "emptyDir": {}},
            ]},
        }))
        .unwrap();
        assert_eq!(
            projections(&pod),
            vec![(String::new(), 3600), ("vault".to_string(), 7200)]
        );
    }
}
