//! What an agent runs pods with: its runtimes by handler name (the RuntimeClass
//! handlers it advertises in `status.runtimeHandlers`), the node's images and the pod
//! network. A node without root or runc offers the process runtime alone and needs
//! neither images nor a network; one with runc offers both runtimes.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::image::Images;
use crate::network::PodNetwork;
use crate::runtime::Runtime;

/// A runtime and whether it runs images (an OCI runtime) rather than commands on
/// the host (the process runtime).
#[derive(Clone)]
struct Entry {
    runtime: Arc<dyn Runtime>,
    runs_images: bool,
}

/// The runtimes an agent offers, by handler (each runtime's `name()`).
#[derive(Clone)]
pub struct Runtimes {
    entries: BTreeMap<String, Entry>,
    default: String,
}

impl Runtimes {
    /// Offers `runtime`, the default for pods that name no RuntimeClass.
    pub fn new(runtime: Arc<dyn Runtime>, runs_images: bool) -> Self {
        let default = runtime.name().to_string();
        Runtimes {
            entries: BTreeMap::from([(default.clone(), Entry { runtime, runs_images })]),
            default,
        }
    }

    /// Offers `runtime` too.
    pub fn with(mut self, runtime: Arc<dyn Runtime>, runs_images: bool) -> Self {
        self.entries
            .insert(runtime.name().to_string(), Entry { runtime, runs_images });
        self
    }

    /// Makes `handler` the default; Err naming the handlers offered when it is not one.
    pub fn set_default(&mut self, handler: &str) -> Result<(), String> {
        if !self.entries.contains_key(handler) {
            return Err(format!(
                "no runtime {handler:?} on this node (it offers {})",
                self.handlers().join(", ")
            ));
        }
        self.default = handler.to_string();
        Ok(())
    }

    pub fn default_handler(&self) -> &str {
        &self.default
    }

    pub fn get(&self, handler: &str) -> Option<&Arc<dyn Runtime>> {
        self.entries.get(handler).map(|e| &e.runtime)
    }

    /// The handlers offered, sorted.
    pub fn handlers(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Each handler and whether it runs images.
    pub(crate) fn runs_images(&self) -> BTreeMap<String, bool> {
        self.entries.iter().map(|(h, e)| (h.clone(), e.runs_images)).collect()
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = (&str, &Arc<dyn Runtime>)> {
        self.entries.iter().map(|(h, e)| (h.as_str(), &e.runtime))
    }
}

/// Everything the agent runs pods with.
#[derive(Clone)]
pub struct Workloads {
    pub runtimes: Runtimes,
    /// None: no runtime here runs images.
    pub images: Option<Arc<dyn Images>>,
    /// None: pods of runtimes that run images cannot have their own network (only
    /// `hostNetwork: true` ones start).
    pub network: Option<Arc<dyn PodNetwork>>,
}

/// A node that runs commands on the host with `runtime` alone.
impl<R: Runtime> From<Arc<R>> for Workloads {
    fn from(runtime: Arc<R>) -> Self {
        Workloads {
            runtimes: Runtimes::new(runtime, false),
            images: None,
            network: None,
        }
    }
}
