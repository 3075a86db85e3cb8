//! Namespaces isolated by default (`--isolate-namespaces`, which `berth up` turns
//! on): a namespace created gets `berth.io/isolation: namespace`, and the agents'
//! packet filter then admits only the namespace's own pods (plus what its
//! NetworkPolicies allow). A namespace created with the label keeps the value it
//! was given (`none` opts out); a later update may change or remove it.

use std::collections::BTreeMap;

use berth_api::kinds::namespace::NAMESPACE;
use berth_api::kinds::network_policy::{ISOLATE_NAMESPACE, ISOLATION_LABEL};
use berth_api::kinds::{KindDescriptor, Object};

/// The labels an isolated namespace starts with.
pub fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([(ISOLATION_LABEL.to_string(), ISOLATE_NAMESPACE.to_string())])
}

/// Labels a namespace being created, unless it names its isolation itself.
pub fn label_new_namespace(kind: &KindDescriptor, object: &mut Object) {
    if *kind != NAMESPACE {
        return;
    }
    let labels = object.metadata_mut().labels.get_or_insert_default();
    labels
        .entry(ISOLATION_LABEL.to_string())
        .or_insert_with(|| ISOLATE_NAMESPACE.to_string());
}
