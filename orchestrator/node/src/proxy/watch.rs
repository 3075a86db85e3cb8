//! The proxy's loop: the Services and EndpointSlices of every namespace, listed then
//! watched (two reflectors; both decoded as Kubernetes' own types, the store keeping
//! them in their API form), and after every change a sync of the rules. Changes that
//! come while a sync runs are taken together by the next one, so the rules follow a
//! burst of changes with one write at its end, and an endpoint change reaches the
//! kernel one `iptables-restore` after the store has it.
//!
//! ```text
//!  reflector /registry/services/       ─┐
//!  reflector /registry/endpointslices/ ─┴─► caches ─► changed ─► service_ports (pure)
//!        ─► Proxier::sync (blocking pool) ─► iptables-restore --noflush
//!  every RESYNC, or after a failure: a full sync (jumps, kernel settings, route)
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_api::kinds::endpoint_slice::ENDPOINT_SLICE;
use berth_api::kinds::service::SERVICE;
use berth_client::api_source::Source;
use berth_client::kv::{AbortOnDrop, Event, Record};
use berth_client::reflector::Sink;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::model::service_ports;
use super::proxier::Proxier;

/// How often the rules are written whole and the host checked even when nothing
/// changed (someone may have flushed a table).
pub const RESYNC: Duration = Duration::from_secs(30);
/// How soon a failed sync is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// The objects of one prefix, as the reflector last saw them.
pub(crate) struct Cache<T> {
    objects: Mutex<BTreeMap<String, T>>,
    /// Whether the first list came in (the caches are not empty for want of one).
    listed: Mutex<bool>,
    changed: watch::Sender<()>,
}

impl<T: DeserializeOwned + Clone + Send + 'static> Cache<T> {
    pub(crate) fn new(changed: watch::Sender<()>) -> Cache<T> {
        Cache {
            objects: Mutex::default(),
            listed: Mutex::new(false),
            changed,
        }
    }

    fn put(objects: &mut BTreeMap<String, T>, record: &Record) {
        match serde_json::from_slice::<T>(&record.value) {
            Ok(object) => {
                objects.insert(record.key.clone(), object);
            }
            Err(e) => {
                tracing::warn!(key = %record.key, error = %e, "the agent skips an object that does not decode")
            }
        }
    }

    pub(crate) fn snapshot(&self) -> Option<Vec<T>> {
        if !*self.listed.lock().expect("cache lock") {
            return None;
        }
        Some(self.objects.lock().expect("cache lock").values().cloned().collect())
    }
}

impl<T: DeserializeOwned + Clone + Send + 'static> Sink for Cache<T> {
    fn replace(&self, records: Vec<Record>, _revision: i64) {
        let mut objects = self.objects.lock().expect("cache lock");
        objects.clear();
        for record in &records {
            Self::put(&mut objects, record);
        }
        *self.listed.lock().expect("cache lock") = true;
        self.changed.send_replace(());
    }

    fn apply(&self, events: Vec<Event>, _revision: i64) {
        let mut objects = self.objects.lock().expect("cache lock");
        for event in &events {
            match event {
                Event::Put(record) => Self::put(&mut objects, record),
                Event::Delete { prev, .. } => {
                    objects.remove(&prev.key);
                }
            }
        }
        self.changed.send_replace(());
    }
}

/// Keeps the host's rules those of the store's Services and EndpointSlices,
/// forever; the agent aborts it, then calls [`Proxier::stop`].
pub async fn run(proxier: Arc<Proxier>, source: impl Into<Source>) {
    let source: Source = source.into();
    let (changed_tx, mut changed) = watch::channel(());
    let services = Arc::new(Cache::<Service>::new(changed_tx.clone()));
    let slices = Arc::new(Cache::<EndpointSlice>::new(changed_tx));
    let _services = AbortOnDrop(tokio::spawn(source.clone().reflect(&SERVICE, None, services.clone())));
    let _slices = AbortOnDrop(tokio::spawn(source.reflect(&ENDPOINT_SLICE, None, slices.clone())));
    let mut last_full: Option<Instant> = None;
    let mut failed = false;
    loop {
        // Nothing is written before both lists came in: an empty cache would remove
        // the rules a restarted agent's predecessor left for live Services.
        if let (Some(services), Some(slices)) = (services.snapshot(), slices.snapshot()) {
            let ports = service_ports(&services, &slices);
            let full = failed || last_full.is_none_or(|at| at.elapsed() >= RESYNC);
            let started = Instant::now();
            let sync = proxier.clone();
            let outcome = tokio::task::spawn_blocking(move || sync.sync(&ports, full)).await;
            failed = !matches!(outcome, Ok(Ok(())));
            match outcome {
                Ok(Ok(())) => {
                    if full {
                        last_full = Some(started);
                    }
                    tracing::debug!(
                        full,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "service rules synced"
                    );
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot write the service rules; retrying"),
                Err(e) => tracing::warn!(error = %e, "the service rules' sync failed; retrying"),
            }
        }
        let wait = if failed { RETRY } else { RESYNC };
        tokio::select! {
            result = changed.changed() => if result.is_err() { return },
            () = tokio::time::sleep(wait) => {}
        }
    }
}
