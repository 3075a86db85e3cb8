//! The node's content-addressed image store, shared by the agent and `berth image`:
//!
//! ```text
//!   images/blobs/sha256/<hex>            manifests, indexes and configs, as pulled
//!   images/layers/sha256/<diff_id hex>/  one unpacked layer (whiteouts as overlayfs's)
//!   images/refs.json                     names ──► manifest and config; images ──► layers
//!   images/tmp/<pid>-<n>-<what>          downloads and unpacks under way
//!   images/lock                          flock held while refs.json is rewritten
//! ```
//!
//! Every file and directory appears whole or not at all: it is written under tmp/
//! and renamed into place, so a crash leaves at most a stray temporary, which the
//! next open removes once its process is gone. Layer archives are not kept once
//! unpacked: the unpacked tree is what containers use, and keeping both would double
//! the disk an image takes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::digest::{Digest, mismatch};
use super::unpack::unpack_layer;

/// A name's entry: what `name:tag` (or `name@digest`) resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefRecord {
    /// The digest the registry gave for the name (an index's, for a multi-platform
    /// image): the digest in the image ID.
    pub manifest: String,
    pub config: String,
}

/// One image, by its config digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Its layers' diff_ids, lowest first.
    pub layers: Vec<String>,
    /// The manifest-like blobs that describe it (indexes, manifests, the config).
    pub blobs: BTreeSet<String>,
    /// When a container last used it, or it was pulled (Unix milliseconds).
    pub last_used_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub refs: BTreeMap<String, RefRecord>,
    pub images: BTreeMap<String, ImageRecord>,
    /// Unpacked bytes of each layer, by diff_id.
    pub layer_sizes: BTreeMap<String, u64>,
}

impl Index {
    /// The bytes of an image's layers.
    pub fn image_size(&self, config: &str) -> u64 {
        self.images.get(config).map_or(0, |image| {
            image
                .layers
                .iter()
                .map(|l| self.layer_sizes.get(l).copied().unwrap_or(0))
                .sum()
        })
    }
}

pub struct Store {
    root: PathBuf,
    counter: AtomicU64,
}

fn context(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl Store {
    /// Opens (creating) the store at `root` and removes temporaries of processes
    /// that are gone.
    pub fn open(root: &Path) -> io::Result<Store> {
        for dir in ["blobs/sha256", "layers/sha256", "tmp"] {
            fs::create_dir_all(root.join(dir)).map_err(context(root.join(dir).display()))?;
        }
        let store = Store {
            root: root.to_path_buf(),
            counter: AtomicU64::new(0),
        };
        for entry in fs::read_dir(root.join("tmp"))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').next().unwrap_or_default();
            if pid.is_empty() || !Path::new("/proc").join(pid).exists() {
                let _ = remove_any(&entry.path());
            }
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh path under tmp/ for `what`, owned by this process.
    pub fn temp_path(&self, what: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.root.join("tmp").join(format!("{}-{n}-{what}", std::process::id()))
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers/sha256").join(diff_id.hex())
    }

    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_path(diff_id).is_dir()
    }

    /// A blob's bytes, checked against its digest (a blob changed on disk is an error).
    pub fn read_blob(&self, digest: &Digest) -> io::Result<Vec<u8>> {
        let bytes = fs::read(self.blob_path(digest)).map_err(context(format!("blob {digest}")))?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                mismatch("stored blob", digest, &actual),
            ));
        }
        Ok(bytes)
    }

    /// Stores `bytes` under their digest.
    pub fn put_blob(&self, bytes: &[u8]) -> io::Result<Digest> {
        let digest = Digest::of(bytes);
        let path = self.blob_path(&digest);
        if !path.exists() {
            let temp = self.temp_path("blob");
            write_synced(&temp, bytes)?;
            fs::rename(&temp, &path).map_err(context(path.display()))?;
        }
        Ok(digest)
    }

    /// Unpacks the layer archive at `archive` as layer `diff_id`, unless another pull
    /// got there first. Gives the unpacked size.
    pub fn unpack_layer(&self, archive: &Path, diff_id: &Digest) -> Result<u64, String> {
        let target = self.layer_path(diff_id);
        let temp = self.temp_path("layer");
        fs::create_dir(&temp).map_err(|e| format!("create {}: {e}", temp.display()))?;
        let size = match unpack_layer(archive, &temp, diff_id) {
            Ok(size) => size,
            Err(e) => {
                let _ = remove_any(&temp);
                return Err(e);
            }
        };
        if let Err(e) = fs::rename(&temp, &target) {
            let _ = remove_any(&temp);
            if !target.is_dir() {
                return Err(format!("move layer {diff_id} into place: {e}"));
            }
        }
        Ok(size)
    }

    /// Removes a layer's directory.
    pub fn remove_layer(&self, diff_id: &Digest) -> io::Result<()> {
        // Renamed away first, so that no half-removed layer is ever seen as present.
        let path = self.layer_path(diff_id);
        if !path.exists() {
            return Ok(());
        }
        let temp = self.temp_path("removed-layer");
        fs::rename(&path, &temp)?;
        remove_any(&temp)
    }

    pub fn remove_blob(&self, digest: &Digest) -> io::Result<()> {
        match fs::remove_file(self.blob_path(digest)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The index as it is on disk.
    pub fn read_index(&self) -> io::Result<Index> {
        let path = self.root.join("refs.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(context(path.display())(e)),
        }
    }

    /// Reads, changes and rewrites the index under the store's file lock, so that
    /// the agent and `berth image` do not lose each other's changes.
    pub fn update_index<T>(&self, change: impl FnOnce(&mut Index) -> T) -> io::Result<T> {
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("lock"))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
        let mut index = self.read_index()?;
        let out = change(&mut index);
        let temp = self.temp_path("refs.json");
        write_synced(&temp, &serde_json::to_vec_pretty(&index).map_err(io::Error::other)?)?;
        fs::rename(&temp, self.root.join("refs.json"))?;
        Ok(out)
        // The lock goes with the file.
    }
}

/// An image to record once its blobs and layers are in the store.
pub struct NewImage<'a> {
    /// The name it is known by (`Reference::store_key`).
    pub key: String,
    /// The digest of the document the name resolved to.
    pub manifest: &'a Digest,
    /// The manifest-like documents, kept as blobs (the config included).
    pub blobs: Vec<&'a [u8]>,
    pub config: &'a Digest,
    pub layers: &'a [Digest],
    /// Unpacked sizes of the layers unpacked for it.
    pub layer_sizes: Vec<(Digest, u64)>,
    pub now_ms: u64,
}

/// What removing names or images deleted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub refs: Vec<String>,
    pub images: Vec<String>,
}

impl Store {
    /// Records an image and the name it was pulled or imported by.
    pub fn commit_image(&self, image: NewImage<'_>) -> io::Result<()> {
        for blob in &image.blobs {
            self.put_blob(blob)?;
        }
        self.update_index(|index| {
            index.refs.insert(
                image.key.clone(),
                RefRecord {
                    manifest: image.manifest.to_string(),
                    config: image.config.to_string(),
                },
            );
            let record = index.images.entry(image.config.to_string()).or_default();
            record.layers = image.layers.iter().map(Digest::to_string).collect();
            record
                .blobs
                .extend(image.blobs.iter().map(|b| Digest::of(b).to_string()));
            record.last_used_ms = image.now_ms;
            for (layer, size) in &image.layer_sizes {
                index.layer_sizes.insert(layer.to_string(), *size);
            }
        })
    }

    /// Removes the name `key`, and its image when no other name is left for it.
    pub fn remove_ref(&self, key: &str) -> io::Result<Option<Removed>> {
        let removal = self.update_index(|index| {
            let record = index.refs.remove(key)?;
            let mut removed = Removed {
                refs: vec![key.to_string()],
                images: Vec::new(),
            };
            let mut gone = Vec::new();
            if !index.refs.values().any(|r| r.config == record.config)
                && let Some(image) = index.images.remove(&record.config)
            {
                gone.push(image);
                removed.images.push(record.config);
            }
            Some((removed, unreferenced(index, &gone)))
        })?;
        let Some((removed, garbage)) = removal else {
            return Ok(None);
        };
        self.delete(garbage)?;
        Ok(Some(removed))
    }

    /// Removes images (by config digest) with every name they have.
    pub fn remove_images(&self, configs: &[String]) -> io::Result<Removed> {
        let (removed, garbage) = self.update_index(|index| {
            let mut removed = Removed::default();
            index.refs.retain(|name, r| {
                let gone = configs.contains(&r.config);
                if gone {
                    removed.refs.push(name.clone());
                }
                !gone
            });
            let mut gone = Vec::new();
            for config in configs {
                if let Some(image) = index.images.remove(config) {
                    gone.push(image);
                    removed.images.push(config.clone());
                }
            }
            (removed, unreferenced(index, &gone))
        })?;
        self.delete(garbage)?;
        Ok(removed)
    }

    fn delete(&self, (layers, blobs): (Vec<Digest>, Vec<Digest>)) -> io::Result<()> {
        for layer in layers {
            self.remove_layer(&layer)?;
        }
        for blob in blobs {
            self.remove_blob(&blob)?;
        }
        Ok(())
    }
}

/// The layers and blobs of `gone` (records just removed from `index`) that no
/// image left in it holds; the layers are dropped from its sizes.
fn unreferenced(index: &mut Index, gone: &[ImageRecord]) -> (Vec<Digest>, Vec<Digest>) {
    let kept_layers: BTreeSet<&String> = index.images.values().flat_map(|i| &i.layers).collect();
    let kept_blobs: BTreeSet<&String> = index.images.values().flat_map(|i| &i.blobs).collect();
    let layers: BTreeSet<String> = gone
        .iter()
        .flat_map(|i| &i.layers)
        .filter(|l| !kept_layers.contains(l))
        .cloned()
        .collect();
    let blobs: BTreeSet<String> = gone
        .iter()
        .flat_map(|i| &i.blobs)
        .filter(|b| !kept_blobs.contains(b))
        .cloned()
        .collect();
    for layer in &layers {
        index.layer_sizes.remove(layer);
    }
    let parse = |set: BTreeSet<String>| set.iter().filter_map(|d| Digest::parse(d).ok()).collect();
    (parse(layers), parse(blobs))
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut file = fs::File::create_new(path).map_err(context(path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn remove_any(path: &Path) -> io::Result<()> {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_content_addressed_and_checked_on_read() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let digest = store.put_blob(b"config").unwrap();
        assert_eq!(store.read_blob(&digest).unwrap(), b"config");
        std::fs::write(store.blob_path(&digest), b"tampered").unwrap();
        let err = store.read_blob(&digest).unwrap_err().to_string();
        assert!(
            err.contains(digest.as_str()) && err.contains(Digest::of(b"tampered").as_str()),
            "{err}"
        );
    }

    #[test]
    fn index_updates_are_kept_and_stale_temporaries_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        store
            .update_index(|index| {
                index.refs.insert(
                    "a:1".into(),
                    RefRecord {
                        manifest: "m".into(),
                        config: "c".into(),
                    },
                );
            })
            .unwrap();
        // A temporary of a process that cannot exist (pid above the kernel's maximum).
        let stale = tmp.path().join("tmp/4194305-0-layer");
        std::fs::create_dir(&stale).unwrap();
        let mine = store.temp_path("blob");
        std::fs::write(&mine, b"x").unwrap();
        let reopened = Store::open(tmp.path()).unwrap();
        assert!(!stale.exists());
        assert!(mine.exists());
        assert_eq!(reopened.read_index().unwrap().refs["a:1"].config, "c");
    }
}
