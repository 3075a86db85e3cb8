//! The agent's [`Images`]: the store and the registry client joined under the pull
//! policy, and garbage collection.
//!
//! Lock order: `pulls` (shared by pulls, exclusive for garbage collection), then a
//! name's lock (one pull per name at a time: the second waits and finds the image
//! there), then a layer's lock (two images sharing a layer download it once), then
//! the store's file lock inside `Store::update_index`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt;

use super::digest::Digest;
use super::gc::{self, DiskUsage, GcThresholds};
use super::manifest::{
    CONFIG_MAX_BYTES, ConfigFile, Document, Platform, host_platform, parse_document, select_platform,
};
use super::reference::Reference;
use super::registry::{RegistryClient, Session};
use super::store::{NewImage, Store};
use super::{EnsureFuture, Images, PullError, PullPolicy, PulledImage, RegistryCredentials};

/// How many layers of one image download at once (containerd's default is 3).
const LAYER_DOWNLOADS: usize = 3;

/// The node's image settings (the agent's flags).
#[derive(Debug, Clone)]
pub struct ImagesConfig {
    /// The store's directory: `images/` under the agent's data directory.
    pub root: PathBuf,
    /// Registries reached over HTTPS without certificate checks, or else plain HTTP
    /// (`--insecure-registry`); loopback ones always are.
    pub insecure_registries: Vec<String>,
    /// The CAs HTTPS registries are checked against; the system's bundle when None.
    pub ca_bundle: Option<PathBuf>,
    pub gc: GcThresholds,
    /// The platform picked from multi-platform images; the host's by default.
    pub platform: Platform,
}

impl ImagesConfig {
    pub fn new(data_dir: &Path) -> ImagesConfig {
        ImagesConfig {
            root: data_dir.join("images"),
            insecure_registries: Vec::new(),
            ca_bundle: None,
            gc: GcThresholds::default(),
            platform: host_platform(),
        }
    }
}

type Locks = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

pub struct NodeImages {
    store: Arc<Store>,
    registry: RegistryClient,
    gc: GcThresholds,
    platform: Platform,
    names: Locks,
    layers: Locks,
    pulls: tokio::sync::RwLock<()>,
}

fn lock_for(locks: &Locks, key: &str) -> Arc<tokio::sync::Mutex<()>> {
    let mut locks = locks.lock().unwrap();
    locks.retain(|_, lock| Arc::strong_count(lock) > 1);
    locks.entry(key.to_string()).or_default().clone()
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl NodeImages {
    pub fn new(config: ImagesConfig) -> Result<NodeImages, String> {
        let store = Store::open(&config.root).map_err(|e| format!("image store {}: {e}", config.root.display()))?;
        Ok(NodeImages {
            store: Arc::new(store),
            registry: RegistryClient::new(config.insecure_registries, config.ca_bundle.as_deref())?,
            gc: config.gc,
            platform: config.platform,
            names: Locks::default(),
            layers: Locks::default(),
            pulls: tokio::sync::RwLock::new(()),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    async fn ensure_image(
        &self,
        image: &str,
        policy: PullPolicy,
        credentials: &[RegistryCredentials],
    ) -> Result<PulledImage, PullError> {
        let reference = Reference::parse(image).map_err(|why| PullError::InvalidName {
            image: image.to_string(),
            why,
        })?;
        let failed = |message: String| PullError::Pull {
            image: image.to_string(),
            message,
        };
        let _pulls = self.pulls.read().await;
        let name_lock = lock_for(&self.names, &reference.store_key());
        let _name = name_lock.lock().await;
        let local = local_image(&self.store, &reference).map_err(failed)?;
        let pulled = match (policy, local) {
            (PullPolicy::Never | PullPolicy::IfNotPresent, Some(found)) => found,
            (PullPolicy::Never, None) => {
                return Err(PullError::NeverPull {
                    image: image.to_string(),
                });
            }
            _ => self.pull(&reference, credentials).await.map_err(failed)?,
        };
        let config = pulled.config_digest.clone();
        self.store
            .update_index(|index| {
                if let Some(record) = index.images.get_mut(&config) {
                    record.last_used_ms = now_ms();
                }
            })
            .map_err(|e| failed(format!("image store: {e}")))?;
        Ok(pulled)
    }

    /// Pulls `reference` from its registry into the store.
    async fn pull(&self, reference: &Reference, credentials: &[RegistryCredentials]) -> Result<PulledImage, String> {
        let session = self.registry.session(reference, credentials)?;
        let top = session.manifest(reference, reference.tag_or_digest()).await?;
        let mut documents = vec![top.bytes.clone()];
        let manifest = match parse_document(&top.bytes, top.content_type.as_deref())? {
            Document::Manifest(m) => m,
            Document::Index(index) => {
                let chosen = select_platform(&index, &self.platform)?;
                let child = session.manifest(reference, &chosen.digest).await?;
                let Document::Manifest(m) = parse_document(&child.bytes, child.content_type.as_deref())? else {
                    return Err(format!("{}: an index inside an index is not supported", chosen.digest));
                };
                documents.push(child.bytes);
                m
            }
        };
        let config_digest = manifest.config.digest()?;
        let config_bytes = match self.store.read_blob(&config_digest) {
            Ok(bytes) => bytes,
            Err(_) => session.blob_bytes(&manifest.config, CONFIG_MAX_BYTES).await?,
        };
        let config = ConfigFile::parse(&config_bytes)?;
        let diff_ids = config.diff_ids();
        if diff_ids.len() != manifest.layers.len() {
            return Err(format!(
                "the manifest lists {} layers but the image config {} diff_ids",
                manifest.layers.len(),
                diff_ids.len()
            ));
        }
        let mut fetches = Vec::with_capacity(diff_ids.len());
        for (descriptor, diff_id) in manifest.layers.iter().zip(&diff_ids) {
            fetches.push(self.fetch_layer(&session, descriptor, diff_id));
        }
        // Every fetch runs to its end before a failure is answered: a download dropped
        // half-way would leave its file, and an unpack on a blocking thread cannot be
        // stopped anyway.
        let fetched: Vec<Result<Option<(Digest, u64)>, String>> = futures::stream::iter(fetches)
            .buffer_unordered(LAYER_DOWNLOADS)
            .collect()
            .await;
        let sizes = fetched.into_iter().collect::<Result<Vec<_>, String>>()?;
        documents.push(config_bytes.clone());
        self.store
            .commit_image(NewImage {
                key: reference.store_key(),
                manifest: &top.digest,
                blobs: documents.iter().map(Vec::as_slice).collect(),
                config: &config_digest,
                layers: &diff_ids,
                layer_sizes: sizes.into_iter().flatten().collect(),
                now_ms: now_ms(),
            })
            .map_err(|e| format!("image store: {e}"))?;
        Ok(pulled_image(
            &self.store,
            reference,
            &top.digest,
            &config_digest,
            &config,
            &diff_ids,
        ))
    }

    /// Downloads and unpacks one layer unless the store has it; gives its size when
    /// this call unpacked it.
    async fn fetch_layer(
        &self,
        session: &Session,
        descriptor: &super::manifest::Descriptor,
        diff_id: &Digest,
    ) -> Result<Option<(Digest, u64)>, String> {
        if self.store.has_layer(diff_id) {
            return Ok(None);
        }
        let lock = lock_for(&self.layers, diff_id.as_str());
        let _layer = lock.lock().await;
        if self.store.has_layer(diff_id) {
            return Ok(None);
        }
        // Removed however this ends: unpacked, failed, or the pull dropped.
        let archive = RemovedOnDrop(self.store.temp_path("blob"));
        session.blob_to_file(descriptor, &archive.0).await?;
        let store = self.store.clone();
        let id = diff_id.clone();
        let size = tokio::task::spawn_blocking(move || store.unpack_layer(&archive.0, &id))
            .await
            .map_err(|e| format!("unpack layer {diff_id}: {e}"))??;
        Ok(Some((diff_id.clone(), size)))
    }
}

/// A temporary file, removed when this is dropped.
struct RemovedOnDrop(PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The image `reference` names in the store, if it is there whole.
pub fn local_image(store: &Store, reference: &Reference) -> Result<Option<PulledImage>, String> {
    let index = store.read_index().map_err(|e| format!("image store: {e}"))?;
    let key = reference.store_key();
    let found = index.refs.get(&key).cloned().or_else(|| {
        // A digest pulled earlier under a tag is the same content.
        let digest = reference.digest.as_ref()?;
        let prefix = format!("{}:", reference.repository());
        index
            .refs
            .iter()
            .find(|(name, r)| name.starts_with(&prefix) && r.manifest == digest.as_str())
            .map(|(_, r)| r.clone())
    });
    let Some(record) = found else { return Ok(None) };
    let (Ok(manifest), Ok(config_digest)) = (Digest::parse(&record.manifest), Digest::parse(&record.config)) else {
        return Ok(None);
    };
    let Ok(config_bytes) = store.read_blob(&config_digest) else {
        return Ok(None);
    };
    let config = ConfigFile::parse(&config_bytes)?;
    let diff_ids = config.diff_ids();
    if !diff_ids.iter().all(|id| store.has_layer(id)) {
        return Ok(None);
    }
    Ok(Some(pulled_image(
        store,
        reference,
        &manifest,
        &config_digest,
        &config,
        &diff_ids,
    )))
}

fn pulled_image(
    store: &Store,
    reference: &Reference,
    manifest: &Digest,
    config_digest: &Digest,
    config: &ConfigFile,
    diff_ids: &[Digest],
) -> PulledImage {
    PulledImage {
        reference: reference.to_string(),
        image_id: format!("{}@{manifest}", reference.repository()),
        config_digest: config_digest.to_string(),
        config: config.image_config(),
        layers: diff_ids.iter().map(|id| store.layer_path(id)).collect(),
    }
}

impl Images for NodeImages {
    fn ensure<'a>(
        &'a self,
        image: &'a str,
        policy: PullPolicy,
        credentials: &'a [RegistryCredentials],
    ) -> EnsureFuture<'a> {
        Box::pin(self.ensure_image(image, policy, credentials))
    }

    /// Reads and removes files: call it from a blocking thread (`spawn_blocking`).
    fn collect_garbage(&self, in_use: &[String]) {
        // A pull under way may be about to use a layer of an unused image.
        let Ok(_exclusive) = self.pulls.try_write() else {
            tracing::debug!("image garbage collection skipped: a pull is under way");
            return;
        };
        let in_use: BTreeSet<String> = in_use.iter().cloned().collect();
        let now = now_ms();
        let marked = self.store.update_index(|index| {
            for config in &in_use {
                if let Some(record) = index.images.get_mut(config) {
                    record.last_used_ms = now;
                }
            }
            index.clone()
        });
        let result = marked.and_then(|index| {
            let usage = DiskUsage::of(self.store.root())?;
            let plan = gc::plan(&index, &in_use, usage, self.gc);
            if plan.is_empty() {
                return Ok(None);
            }
            self.store.remove_images(&plan).map(Some)
        });
        match result {
            Ok(Some(removed)) => {
                tracing::info!(images = ?removed.images, "image garbage collection removed unused images")
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "image garbage collection failed"),
        }
    }
}

#[cfg(test)]
#[path = "pull_tests.rs"]
mod tests;
