//! Images brought to an air-gapped node by hand: an OCI image layout (a directory
//! with `oci-layout`, `index.json` and `blobs/`, or a tar of one, as `skopeo copy
//! oci-archive:` writes) or a `docker save` tarball (`manifest.json` naming each
//! image's config, tags and layer tars). Every blob is checked against its digest
//! and every layer against the config's diff_ids, as for a pull.
//!
//! A `docker save` image has no registry manifest; berth writes the OCI manifest
//! that describes it, so that its image ID is a manifest digest like a pulled one's.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::digest::{Digest, HashingWriter, mismatch};
use super::manifest::{
    self, ConfigFile, Descriptor, Document, Manifest, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Platform, parse_document,
    select_platform,
};
use super::node_images::now_ms;
use super::reference::Reference;
use super::store::{NewImage, Store};

/// An image the import stored, under one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub reference: String,
    pub image_id: String,
    pub config_digest: String,
}

/// Imports the images at `path` (a directory or a tar file). `name` names the image
/// when the source holds exactly one, overriding the source's own names.
pub fn import(store: &Store, path: &Path, name: Option<&str>, platform: &Platform) -> Result<Vec<Imported>, String> {
    let name = match name {
        Some(n) => Some(Reference::parse(n).map_err(|e| format!("--name {n:?}: {e}"))?),
        None => None,
    };
    let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let _extracted;
    let dir = if meta.is_dir() {
        path.to_path_buf()
    } else {
        let temp = TempDir(store.temp_path("import"));
        extract(path, &temp.0)?;
        let dir = temp.0.clone();
        _extracted = temp;
        dir
    };
    let dir = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    if dir.join("manifest.json").is_file() {
        docker_archive(store, &dir, name)
    } else if dir.join("index.json").is_file() {
        oci_layout(store, &dir, name, platform)
    } else {
        Err(format!(
            "{}: neither a docker save archive (manifest.json) nor an OCI image layout (index.json)",
            path.display()
        ))
    }
}

/// Removes an extraction when the import ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Unpacks the archive's files and directories (and the symbolic links `docker save`
/// uses for repeated layers); paths leaving the directory are refused.
fn extract(archive: &Path, dest: &Path) -> Result<(), String> {
    fs::create_dir_all(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    let mut file = fs::File::open(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
    let mut magic = [0u8; 2];
    let gzip = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    let file = fs::File::open(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut tar = tar::Archive::new(reader);
    let bad = |e: std::io::Error| format!("{}: not a readable tar archive: {e}", archive.display());
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.into_owned();
        let mut rel = PathBuf::new();
        for component in path.components() {
            match component {
                Component::Normal(c) => rel.push(c),
                Component::CurDir | Component::RootDir => {}
                _ => {
                    return Err(format!(
                        "{}: entry {} leaves the archive",
                        archive.display(),
                        path.display()
                    ));
                }
            }
        }
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = dest.join(&rel);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let written = match entry.header().entry_type() {
            tar::EntryType::Directory => fs::create_dir_all(&target),
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                fs::File::create(&target).and_then(|mut f| std::io::copy(&mut entry, &mut f).map(|_| ()))
            }
            tar::EntryType::Symlink => match entry.link_name() {
                Ok(Some(link)) => std::os::unix::fs::symlink(link, &target),
                _ => Ok(()),
            },
            _ => Ok(()),
        };
        written.map_err(|e| format!("extract {}: {e}", rel.display()))?;
    }
    Ok(())
}

/// `dir/relative`, refused when it resolves (through symbolic links) outside `dir`.
fn inside(dir: &Path, relative: &str) -> Result<PathBuf, String> {
    let path = dir.join(relative);
    let real = path.canonicalize().map_err(|e| format!("{relative}: {e}"))?;
    if !real.starts_with(dir) {
        return Err(format!("{relative} points outside the archive"));
    }
    Ok(real)
}

/// The sha256 of a file, read once.
fn file_digest(path: &Path) -> Result<(Digest, u64), String> {
    let mut file = fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut writer = HashingWriter::new(std::io::sink());
    std::io::copy(&mut file, &mut writer).map_err(|e| format!("{}: {e}", path.display()))?;
    let (digest, size, _) = writer.finish();
    Ok((digest, size))
}

struct Layout<'a> {
    dir: &'a Path,
}

impl Layout<'_> {
    fn blob_path(&self, descriptor: &Descriptor) -> Result<PathBuf, String> {
        let digest = descriptor.digest()?;
        inside(self.dir, &format!("blobs/sha256/{}", digest.hex()))
    }

    fn blob(&self, descriptor: &Descriptor, limit: u64) -> Result<Vec<u8>, String> {
        if descriptor.size > limit {
            return Err(format!(
                "blob {} is {} bytes, more than {limit}",
                descriptor.digest, descriptor.size
            ));
        }
        let bytes = fs::read(self.blob_path(descriptor)?).map_err(|e| format!("blob {}: {e}", descriptor.digest))?;
        let actual = Digest::of(&bytes);
        let expected = descriptor.digest()?;
        if actual != expected {
            return Err(mismatch("blob", &expected, &actual));
        }
        Ok(bytes)
    }
}

fn oci_layout(
    store: &Store,
    dir: &Path,
    name: Option<Reference>,
    platform: &Platform,
) -> Result<Vec<Imported>, String> {
    let index_bytes = fs::read(dir.join("index.json")).map_err(|e| format!("index.json: {e}"))?;
    let Document::Index(index) = parse_document(&index_bytes, Some(manifest::OCI_INDEX))? else {
        return Err("index.json is not an image index".into());
    };
    if name.is_some() && index.manifests.len() != 1 {
        return Err(format!(
            "--name needs a layout with one image; this one has {}",
            index.manifests.len()
        ));
    }
    let layout = Layout { dir };
    let mut imported = Vec::new();
    for top in &index.manifests {
        let reference = match &name {
            Some(n) => n.clone(),
            None => layout_name(top)?,
        };
        let top_bytes = layout.blob(top, manifest::MANIFEST_MAX_BYTES)?;
        let mut documents = vec![top_bytes.clone()];
        let image_manifest = match parse_document(&top_bytes, Some(top.media_type.as_str()).filter(|t| !t.is_empty()))?
        {
            Document::Manifest(m) => m,
            Document::Index(nested) => {
                let chosen = select_platform(&nested, platform)?;
                let bytes = layout.blob(chosen, manifest::MANIFEST_MAX_BYTES)?;
                let Document::Manifest(m) = parse_document(&bytes, None)? else {
                    return Err(format!("{}: an index inside an index is not supported", chosen.digest));
                };
                documents.push(bytes);
                m
            }
        };
        let config_bytes = layout.blob(&image_manifest.config, manifest::CONFIG_MAX_BYTES)?;
        let mut layers = Vec::new();
        for descriptor in &image_manifest.layers {
            let path = layout.blob_path(descriptor)?;
            let (actual, size) = file_digest(&path)?;
            let expected = descriptor.digest()?;
            if actual != expected || size != descriptor.size {
                return Err(mismatch("layer blob", &expected, &actual));
            }
            layers.push(path);
        }
        documents.push(config_bytes.clone());
        let top_digest = top.digest()?;
        imported.push(store_image(
            store,
            &reference,
            &top_digest,
            documents,
            &config_bytes,
            &layers,
        )?);
    }
    Ok(imported)
}

/// The name an OCI layout gives a manifest: containerd's full-name annotation, or
/// the OCI ref name when it is a full reference rather than a bare tag.
fn layout_name(descriptor: &Descriptor) -> Result<Reference, String> {
    let annotations = &descriptor.annotations;
    if let Some(full) = annotations.get("io.containerd.image.name") {
        return Reference::parse(full).map_err(|e| format!("image name {full:?}: {e}"));
    }
    match annotations.get("org.opencontainers.image.ref.name") {
        Some(r) if r.contains('/') => Reference::parse(r).map_err(|e| format!("image name {r:?}: {e}")),
        Some(tag) => Err(format!(
            "the layout names image {} only by the tag {tag:?}: give --name REPOSITORY[:TAG]",
            descriptor.digest
        )),
        None => Err(format!(
            "the layout does not name image {}: give --name REPOSITORY[:TAG]",
            descriptor.digest
        )),
    }
}

/// One image of `docker save`'s manifest.json.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveImage {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn docker_archive(store: &Store, dir: &Path, name: Option<Reference>) -> Result<Vec<Imported>, String> {
    let bytes = fs::read(dir.join("manifest.json")).map_err(|e| format!("manifest.json: {e}"))?;
    let images: Vec<ArchiveImage> =
        serde_json::from_slice(&bytes).map_err(|e| format!("manifest.json: not a docker save manifest: {e}"))?;
    if name.is_some() && images.len() != 1 {
        return Err(format!(
            "--name needs an archive with one image; this one has {}",
            images.len()
        ));
    }
    let mut imported = Vec::new();
    for image in images {
        let config_bytes = fs::read(inside(dir, &image.config)?).map_err(|e| format!("{}: {e}", image.config))?;
        let config_digest = Digest::of(&config_bytes);
        // The config's file name is its digest ("<hex>.json", or "blobs/sha256/<hex>").
        let named_hex = Path::new(&image.config)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned());
        if let Some(hex) = named_hex.filter(|h| h.len() == 64)
            && hex != config_digest.hex()
        {
            let named = Digest::parse(&format!("sha256:{hex}"))?;
            return Err(mismatch(&format!("config {}", image.config), &named, &config_digest));
        }
        let mut layers = Vec::new();
        let mut descriptors = Vec::new();
        for layer in &image.layers {
            let path = inside(dir, layer)?;
            let (digest, size) = file_digest(&path)?;
            let mut head = [0u8; 2];
            let gzip = fs::File::open(&path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && head == [0x1f, 0x8b];
            let media_type = if gzip {
                format!("{OCI_LAYER}+gzip")
            } else {
                OCI_LAYER.to_string()
            };
            descriptors.push(Descriptor {
                media_type,
                digest: digest.to_string(),
                size,
                platform: None,
                annotations: BTreeMap::new(),
            });
            layers.push(path);
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: OCI_MANIFEST.into(),
            config: Descriptor {
                media_type: OCI_CONFIG.into(),
                digest: config_digest.to_string(),
                size: config_bytes.len() as u64,
                platform: None,
                annotations: BTreeMap::new(),
            },
            layers: descriptors,
        };
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
        let manifest_digest = Digest::of(&manifest_bytes);
        let names = match &name {
            Some(n) => vec![n.clone()],
            None => {
                let tags = image.repo_tags.clone().unwrap_or_default();
                if tags.is_empty() {
                    return Err(format!(
                        "image {config_digest} has no name (RepoTags): give --name REPOSITORY[:TAG]"
                    ));
                }
                tags.iter()
                    .map(|t| Reference::parse(t).map_err(|e| format!("RepoTags {t:?}: {e}")))
                    .collect::<Result<_, _>>()?
            }
        };
        for reference in names {
            let documents = vec![manifest_bytes.clone(), config_bytes.clone()];
            imported.push(store_image(
                store,
                &reference,
                &manifest_digest,
                documents,
                &config_bytes,
                &layers,
            )?);
        }
    }
    Ok(imported)
}

/// Unpacks the layers the store lacks and records the image under `reference`.
fn store_image(
    store: &Store,
    reference: &Reference,
    manifest_digest: &Digest,
    documents: Vec<Vec<u8>>,
    config_bytes: &[u8],
    layer_files: &[PathBuf],
) -> Result<Imported, String> {
    let config = ConfigFile::parse(config_bytes)?;
    let diff_ids = config.diff_ids();
    if diff_ids.len() != layer_files.len() {
        return Err(format!(
            "the image lists {} layers but its config {} diff_ids",
            layer_files.len(),
            diff_ids.len()
        ));
    }
    let mut sizes = Vec::new();
    for (file, diff_id) in layer_files.iter().zip(&diff_ids) {
        if !store.has_layer(diff_id) {
            sizes.push((diff_id.clone(), store.unpack_layer(file, diff_id)?));
        }
    }
    let config_digest = Digest::of(config_bytes);
    store
        .commit_image(NewImage {
            key: reference.store_key(),
            manifest: manifest_digest,
            blobs: documents.iter().map(Vec::as_slice).collect(),
            config: &config_digest,
            layers: &diff_ids,
            layer_sizes: sizes,
            now_ms: now_ms(),
        })
        .map_err(|e| format!("image store: {e}"))?;
    Ok(Imported {
        reference: reference.to_string(),
        image_id: format!("{}@{manifest_digest}", reference.repository()),
        config_digest: config_digest.to_string(),
    })
}

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;
