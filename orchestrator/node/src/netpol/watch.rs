//! The filter's loop: the pods, namespaces and NetworkPolicies of the whole
//! cluster, listed then watched (three reflectors, from the store or, with
//! `--kubeconfig`, the API server as `system:nodes`, bound to
//! `system:berth:network-policy-filter`), and after every change a sync of the
//! filter; a burst of changes is taken together by the next sync.
//!
//! ```text
//!  reflector pods             ─┐
//!  reflector namespaces        ├─► caches ─► changed ─► pod_filters (pure)
//!  reflector networkpolicies  ─┘   ─► Filter::sync (blocking pool)
//!  every RESYNC, or after a failure: a full sync (the host read again)
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_api::kinds::namespace::NAMESPACE;
use berth_api::kinds::network_policy::{NETWORK_POLICY, NetworkPolicy};
use berth_api::kinds::pod::POD;
use berth_client::api_source::Source;
use berth_client::kv::AbortOnDrop;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use tokio::sync::watch;

use super::filter::Filter;
use super::model::pod_filters;
use crate::proxy::watch::{Cache, RESYNC};

const RETRY: Duration = Duration::from_secs(1);

/// Keeps the host's filter that of the cluster's policies for `node`'s pods,
/// forever; the agent aborts it, then calls [`Filter::stop`].
pub async fn run(filter: Arc<Filter>, source: Source, node: String) {
    let (changed_tx, mut changed) = watch::channel(());
    let pods = Arc::new(Cache::<Pod>::new(changed_tx.clone()));
    let namespaces = Arc::new(Cache::<Namespace>::new(changed_tx.clone()));
    let policies = Arc::new(Cache::<NetworkPolicy>::new(changed_tx));
    let _pods = AbortOnDrop(tokio::spawn(source.clone().reflect(&POD, None, pods.clone())));
    let _namespaces = AbortOnDrop(tokio::spawn(source.clone().reflect(
        &NAMESPACE,
        None,
        namespaces.clone(),
    )));
    let _policies = AbortOnDrop(tokio::spawn(source.reflect(&NETWORK_POLICY, None, policies.clone())));
    let mut last_full: Option<Instant> = None;
    let mut failed = false;
    loop {
        // Nothing is written before the three lists came in: a partial picture
        // would open (or close) pods a restarted agent's predecessor filtered.
        if let (Some(pods), Some(namespaces), Some(policies)) =
            (pods.snapshot(), namespaces.snapshot(), policies.snapshot())
        {
            let filters = pod_filters(&node, &pods, &namespaces, &policies);
            let full = failed || last_full.is_none_or(|at| at.elapsed() >= RESYNC);
            let started = Instant::now();
            let sync = filter.clone();
            let outcome = tokio::task::spawn_blocking(move || sync.sync(&filters, full)).await;
            failed = !matches!(outcome, Ok(Ok(())));
            match outcome {
                Ok(Ok(())) => {
                    if full {
                        last_full = Some(started);
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot write the network policy filter; retrying"),
                Err(e) => tracing::warn!(error = %e, "the network policy filter's sync failed; retrying"),
            }
        }
        let wait = if failed { RETRY } else { RESYNC };
        tokio::select! {
            result = changed.changed() => if result.is_err() { return },
            () = tokio::time::sleep(wait) => {}
        }
    }
}
