//! Every namespace's `default` ServiceAccount and `kube-root-ca.crt` ConfigMap, as
//! Kubernetes' serviceaccount controller and root-ca-cert-publisher make them: each
//! active namespace gets both, a deleted one is made again, and a ConfigMap whose
//! `ca.crt` is not the cluster's CA is set back to it. Terminating namespaces are
//! left alone, so that their deletion can empty them.
//!
//! ```text
//!  namespaces ─┐
//!  serviceaccounts (keys) ─┼─► plan (pure) ─► creates / updates, fenced
//!  configmaps kube-root-ca.crt ─┘
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::kinds::Object;
use berth_api::kinds::config_map::{CONFIG_MAP, ConfigMap};
use berth_api::kinds::namespace::NAMESPACE;
use berth_api::kinds::service_account::{DEFAULT_SERVICE_ACCOUNT, SERVICE_ACCOUNT, ServiceAccount};
use berth_api::meta::ObjectMeta;
use berth_client::kv::{Event, KvError, Record};
use berth_client::reflector::{Sink, reflect};
use berth_controller_runtime::{Context, RETRY_SOON, Requeue, benign, drive};
use tokio::sync::watch;

/// The ConfigMap every namespace has with the cluster's CA.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// Its one key.
pub const ROOT_CA_KEY: &str = "ca.crt";
/// The annotation Kubernetes puts on it, and its text.
const DESCRIPTION: (&str, &str) = (
    "kubernetes.io/description",
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.",
);

/// What the pass sees: the namespaces (name → active), the namespaces that have a
/// `default` ServiceAccount, and each namespace's root CA ConfigMap as stored.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub namespaces: BTreeMap<String, bool>,
    pub with_default_account: BTreeSet<String>,
    pub root_cas: BTreeMap<String, ConfigMap>,
}

/// One write the pass makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreateAccount(ServiceAccount),
    CreateRootCa(ConfigMap),
    UpdateRootCa(ConfigMap),
}

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        ..Default::default()
    }
}

/// What is missing or wrong in the active namespaces, given the cluster's CA
/// (`None`: no ConfigMaps are made). Pure.
pub fn plan(seen: &Seen, root_ca: Option<&str>) -> Vec<Action> {
    let mut actions = Vec::new();
    for (namespace, _) in seen.namespaces.iter().filter(|(_, active)| **active) {
        if !seen.with_default_account.contains(namespace) {
            actions.push(Action::CreateAccount(ServiceAccount {
                metadata: meta(namespace, DEFAULT_SERVICE_ACCOUNT),
                ..Default::default()
            }));
        }
        let Some(ca) = root_ca else { continue };
        let data: BTreeMap<String, String> = [(ROOT_CA_KEY.to_string(), ca.to_string())].into();
        match seen.root_cas.get(namespace) {
            None => {
                let mut metadata = meta(namespace, ROOT_CA_CONFIG_MAP);
                metadata.annotations = Some([(DESCRIPTION.0.to_string(), DESCRIPTION.1.to_string())].into());
                actions.push(Action::CreateRootCa(ConfigMap {
                    metadata,
                    data: Some(data),
                    ..Default::default()
                }));
            }
            Some(stored) if stored.data.as_ref() != Some(&data) || stored.binary_data.is_some() => {
                let mut fixed = stored.clone();
                fixed.data = Some(data);
                fixed.binary_data = None;
                actions.push(Action::UpdateRootCa(fixed));
            }
            Some(_) => {}
        }
    }
    actions
}

/// The records under one prefix that `keep` takes, by key; every change bumps
/// `changed`.
struct Records {
    records: Mutex<(BTreeMap<String, Record>, bool)>,
    keep: fn(&str) -> bool,
    changed: watch::Sender<u64>,
}

impl Sink for Records {
    fn replace(&self, records: Vec<Record>, _revision: i64) {
        let mut state = self.records.lock().unwrap_or_else(|e| e.into_inner());
        state.0 = records
            .into_iter()
            .filter(|r| (self.keep)(&r.key))
            .map(|r| (r.key.clone(), r))
            .collect();
        state.1 = true;
        drop(state);
        self.changed.send_modify(|n| *n += 1);
    }

    fn apply(&self, events: Vec<Event>, _revision: i64) {
        let mut state = self.records.lock().unwrap_or_else(|e| e.into_inner());
        for event in events {
            match event {
                Event::Put(record) if (self.keep)(&record.key) => drop(state.0.insert(record.key.clone(), record)),
                Event::Put(_) => {}
                Event::Delete { prev, .. } => drop(state.0.remove(&prev.key)),
            }
        }
        drop(state);
        self.changed.send_modify(|n| *n += 1);
    }
}

impl Records {
    fn new(keep: fn(&str) -> bool) -> Arc<Records> {
        Arc::new(Records {
            records: Mutex::new((BTreeMap::new(), false)),
            keep,
            changed: watch::channel(0).0,
        })
    }

    fn listed(&self) -> bool {
        self.records.lock().is_ok_and(|s| s.1)
    }

    fn values(&self) -> Vec<Record> {
        let state = self.records.lock().unwrap_or_else(|e| e.into_inner());
        state.0.values().cloned().collect()
    }
}

/// The namespace of `/registry/<plural>/<ns>/<name>`.
fn namespace_of(key: &str) -> Option<&str> {
    key.strip_prefix("/registry/")?.split('/').nth(1)
}

fn is_default_account(key: &str) -> bool {
    key.rsplit('/').next() == Some(DEFAULT_SERVICE_ACCOUNT)
}

fn is_root_ca(key: &str) -> bool {
    key.rsplit('/').next() == Some(ROOT_CA_CONFIG_MAP)
}

fn seen(namespaces: &Records, accounts: &Records, config_maps: &Records) -> Seen {
    let mut seen = Seen::default();
    for record in namespaces.values() {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&record.value) else {
            continue;
        };
        let Some(name) = value["metadata"]["name"].as_str() else {
            continue;
        };
        let active = value["metadata"]["deletionTimestamp"].is_null() && value["status"]["phase"] != "Terminating";
        seen.namespaces.insert(name.to_string(), active);
    }
    for record in accounts.values() {
        if let Some(namespace) = namespace_of(&record.key) {
            seen.with_default_account.insert(namespace.to_string());
        }
    }
    for record in config_maps.values() {
        match serde_json::from_slice::<ConfigMap>(&record.value) {
            Ok(mut config) => {
                config.metadata.resource_version = Some(record.mod_revision.to_string());
                if let Some(namespace) = namespace_of(&record.key) {
                    seen.root_cas.insert(namespace.to_string(), config);
                }
            }
            Err(e) => tracing::warn!(key = %record.key, error = %e, "a ConfigMap that cannot be read is ignored"),
        }
    }
    seen
}

/// Runs the controller until fenced; `root_ca` is the PEM of the cluster's CA
/// (`--root-ca-file`, else the client CA), if the cluster has one.
pub async fn run(ctx: Context, root_ca: Option<String>, resync: Duration) {
    let namespaces = Records::new(|_| true);
    let accounts = Records::new(is_default_account);
    let config_maps = Records::new(is_root_ca);
    let kv = &ctx.registry.kv;
    let tasks = [
        tokio::spawn(reflect(kv.clone(), NAMESPACE.prefix(None), namespaces.clone(), None)),
        tokio::spawn(reflect(
            kv.clone(),
            SERVICE_ACCOUNT.prefix(None),
            accounts.clone(),
            None,
        )),
        tokio::spawn(reflect(kv.clone(), CONFIG_MAP.prefix(None), config_maps.clone(), None)),
    ];
    let all = [&namespaces, &accounts, &config_maps];
    let mut triggers: Vec<_> = all.iter().map(|r| r.changed.subscribe()).collect();
    // Acts only once all three were listed: before, a missing object may be unread.
    let mut listed = triggers.clone();
    for (records, trigger) in all.iter().zip(&mut listed) {
        if trigger.wait_for(|_| records.listed()).await.is_err() {
            return;
        }
    }
    triggers.iter_mut().for_each(|t| drop(t.borrow_and_update()));
    drive("serviceaccount", triggers, resync, || {
        pass(&ctx, seen(&namespaces, &accounts, &config_maps), root_ca.as_deref())
    })
    .await;
    tasks.iter().for_each(|t| t.abort());
}

async fn pass(ctx: &Context, seen: Seen, root_ca: Option<&str>) -> Result<Requeue, KvError> {
    let mut requeue = None;
    for action in plan(&seen, root_ca) {
        let (what, written) = match action {
            Action::CreateAccount(account) => (
                "created the default ServiceAccount",
                benign(ctx.registry.create(&Object::new(account), ctx.fence()).await)?.map(|_| ()),
            ),
            Action::CreateRootCa(config) => (
                "published the root CA",
                benign(ctx.registry.create(&Object::new(config), ctx.fence()).await)?.map(|_| ()),
            ),
            Action::UpdateRootCa(config) => (
                "set the root CA back",
                benign(ctx.registry.update(&Object::new(config), ctx.fence()).await)?.map(|_| ()),
            ),
        };
        match written {
            Some(()) => tracing::info!("{what}"),
            None => requeue = Some(RETRY_SOON),
        }
    }
    Ok(requeue)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(namespaces: &[(&str, bool)]) -> Seen {
        Seen {
            namespaces: namespaces.iter().map(|(n, a)| (n.to_string(), *a)).collect(),
            ..Default::default()
        }
    }

    fn names(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::CreateAccount(sa) => format!("sa {}", sa.metadata.namespace.as_deref().unwrap()),
                Action::CreateRootCa(cm) => format!("ca {}", cm.metadata.namespace.as_deref().unwrap()),
                Action::UpdateRootCa(cm) => format!("fix {}", cm.metadata.namespace.as_deref().unwrap()),
            })
            .collect()
    }

    #[test]
    fn active_namespaces_get_a_default_account_and_the_root_ca() {
        let mut state = seen(&[("a", true), ("going", false)]);
        let actions = plan(&state, Some("PEM"));
        assert_eq!(names(&actions), ["sa a", "ca a"]);
        let Action::CreateRootCa(config) = &actions[1] else {
            panic!()
        };
        assert_eq!(config.metadata.name.as_deref(), Some("kube-root-ca.crt"));
        assert_eq!(config.data.as_ref().unwrap()["ca.crt"], "PEM");
        assert!(
            config
                .metadata
                .annotations
                .as_ref()
                .unwrap()
                .contains_key("kubernetes.io/description")
        );
        // Without a CA, accounts only.
        assert_eq!(names(&plan(&state, None)), ["sa a"]);
        // Both there: nothing to do.
        state.with_default_account.insert("a".into());
        state.root_cas.insert("a".into(), config.clone());
        assert!(plan(&state, Some("PEM")).is_empty());
        // Changed by someone: set back, keeping what else it has.
        let mut changed = config.clone();
        changed.data = Some([("ca.crt".to_string(), "other".to_string())].into());
        changed.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        state.root_cas.insert("a".into(), changed);
        let actions = plan(&state, Some("PEM"));
        let [Action::UpdateRootCa(fixed)] = &actions[..] else {
            panic!("{actions:?}")
        };
        assert_eq!(fixed.data.as_ref().unwrap()["ca.crt"], "PEM");
        assert!(fixed.metadata.labels.is_some());
    }

    #[test]
    fn keys_name_their_namespace() {
        assert_eq!(namespace_of("/registry/serviceaccounts/dev/default"), Some("dev"));
        assert!(is_default_account("/registry/serviceaccounts/dev/default"));
        assert!(!is_default_account("/registry/serviceaccounts/dev/builder"));
        assert!(is_root_ca("/registry/configmaps/dev/kube-root-ca.crt"));
    }
}
