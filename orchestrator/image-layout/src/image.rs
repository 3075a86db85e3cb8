//! A built image (its blobs and their digests) and the two ways it is written to disk:
//! an OCI image layout, and the archive `docker save` writes.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::builder::{LayerCompression, ManifestFormat, gzip};
use super::*;

/// The parts of the image config ("config" in the config JSON) a test sets.
#[derive(Clone, Debug, Default)]
pub(super) struct ImageConfigSpec {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub exposed_ports: BTreeSet<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub(super) struct Layer {
    /// The uncompressed tar; its digest is the layer's diff ID.
    tar: Vec<u8>,
    /// What the manifest points to: the gzipped tar, or the tar itself.
    blob: Vec<u8>,
    compression: LayerCompression,
}

impl Layer {
    pub(super) fn new(tar: Vec<u8>, compression: LayerCompression) -> io::Result<Self> {
        let blob = match compression {
            LayerCompression::Gzip => gzip(&tar)?,
            LayerCompression::None => tar.clone(),
        };
        Ok(Self { tar, blob, compression })
    }
}

/// One content-addressed blob of an image, as a registry stores it.
#[derive(Clone, Debug)]
pub struct Blob {
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// An image in memory: layers, config and manifest, with digests.
#[derive(Clone, Debug)]
pub struct Image {
    layers: Vec<Layer>,
    config: Vec<u8>,
    manifest: Vec<u8>,
    format: ManifestFormat,
}

/// What is wrong with an OCI layout that this crate reads (the registry push does).
#[derive(Debug)]
pub struct LayoutError(pub String);

impl std::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LayoutError {}

impl Image {
    pub(super) fn new(layers: Vec<Layer>, spec: ImageConfigSpec, format: ManifestFormat) -> Self {
        let config = config_json(&layers, &spec);
        let (manifest_type, config_type) = match format {
            ManifestFormat::Oci => (MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_OCI_CONFIG),
            ManifestFormat::Docker => (MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_DOCKER_CONFIG),
        };
        let layer_descriptors: Vec<Value> = layers
            .iter()
            .map(|layer| {
                json!({
                    "mediaType": layer_media_type(format, layer.compression),
                    "digest": sha256_digest(&layer.blob),
                    "size": layer.blob.len(),
                })
            })
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "digest": sha256_digest(&config), "size": config.len()},
            "layers": layer_descriptors,
        });
        let manifest = serde_json::to_vec(&manifest).expect("a JSON value serialises");
        Self {
            layers,
            config,
            manifest,
            format,
        }
    }

    /// The digest of the manifest: what a registry answers in `Docker-Content-Digest`
    /// and what `status.containerStatuses[].imageID` names.
    pub fn manifest_digest(&self) -> String {
        sha256_digest(&self.manifest)
    }

    pub fn manifest(&self) -> &[u8] {
        &self.manifest
    }

    pub fn manifest_media_type(&self) -> &'static str {
        match self.format {
            ManifestFormat::Oci => MEDIA_TYPE_OCI_MANIFEST,
            ManifestFormat::Docker => MEDIA_TYPE_DOCKER_MANIFEST,
        }
    }

    /// The digest of the config JSON, which Docker calls the image ID.
    pub fn config_digest(&self) -> String {
        sha256_digest(&self.config)
    }

    pub fn config(&self) -> &[u8] {
        &self.config
    }

    /// The digests of the layer blobs as the manifest lists them, lowest first.
    pub fn layer_digests(&self) -> Vec<String> {
        self.layers.iter().map(|layer| sha256_digest(&layer.blob)).collect()
    }

    /// The digests of the uncompressed layer tars (the config's `rootfs.diff_ids`).
    pub fn diff_ids(&self) -> Vec<String> {
        self.layers.iter().map(|layer| sha256_digest(&layer.tar)).collect()
    }

    /// The uncompressed tar of layer `index` (0 is the lowest).
    pub fn layer_tar(&self, index: usize) -> &[u8] {
        &self.layers[index].tar
    }

    /// The config and the layers, each once, as a registry push sends them before the
    /// manifest.
    pub fn blobs(&self) -> Vec<Blob> {
        let config_type = match self.format {
            ManifestFormat::Oci => MEDIA_TYPE_OCI_CONFIG,
            ManifestFormat::Docker => MEDIA_TYPE_DOCKER_CONFIG,
        };
        let mut blobs = vec![Blob {
            digest: self.config_digest(),
            media_type: config_type.to_string(),
            bytes: self.config.clone(),
        }];
        for layer in &self.layers {
            let digest = sha256_digest(&layer.blob);
            if blobs.iter().all(|blob| blob.digest != digest) {
                blobs.push(Blob {
                    digest,
                    media_type: layer_media_type(self.format, layer.compression).to_string(),
                    bytes: layer.blob.clone(),
                });
            }
        }
        blobs
    }

    /// Writes the image into the OCI image layout `dir` (created if missing) under
    /// `tag`: `oci-layout`, the blobs under `blobs/sha256/`, and an entry in
    /// `index.json` annotated with the tag. An existing layout keeps its other
    /// images; an entry of the same tag is replaced. `skopeo` and `umoci` read it as
    /// `oci:DIR:TAG`.
    pub fn write_layout(&self, dir: impl AsRef<Path>, tag: &str) -> io::Result<()> {
        let dir = dir.as_ref();
        let blobs_dir = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs_dir)?;
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        for blob in self.blobs() {
            std::fs::write(blobs_dir.join(digest_hex(&blob.digest)), &blob.bytes)?;
        }
        std::fs::write(blobs_dir.join(digest_hex(&self.manifest_digest())), &self.manifest)?;

        let index_path = dir.join("index.json");
        let mut manifests: Vec<Value> = match std::fs::read(&index_path) {
            Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
                .map_err(|e| io::Error::other(format!("{}: {e}", index_path.display())))?["manifests"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        manifests.retain(|entry| entry["annotations"][REF_NAME_ANNOTATION] != tag);
        manifests.push(json!({
            "mediaType": self.manifest_media_type(),
            "digest": self.manifest_digest(),
            "size": self.manifest.len(),
            "annotations": {REF_NAME_ANNOTATION: tag},
        }));
        let index = json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_OCI_INDEX, "manifests": manifests});
        std::fs::write(index_path, serde_json::to_vec(&index).expect("a JSON value serialises"))
    }

    /// Writes what `docker save REPO:TAG` writes (the format before Docker 25, which
    /// image importers accept): `manifest.json`, `repositories`, the config as
    /// `<hex>.json`, and each layer as an uncompressed `<hex>/layer.tar`, where hex is
    /// the layer's diff ID.
    pub fn write_docker_archive(&self, path: impl AsRef<Path>, repo_tag: &str) -> io::Result<()> {
        let config_name = format!("{}.json", digest_hex(&self.config_digest()));
        let layer_dirs: Vec<String> = self.diff_ids().iter().map(|id| digest_hex(id).to_string()).collect();
        let manifest = json!([{
            "Config": config_name,
            "RepoTags": [repo_tag],
            "Layers": layer_dirs.iter().map(|dir| format!("{dir}/layer.tar")).collect::<Vec<_>>(),
        }]);
        let (repo, tag) = repo_tag.rsplit_once(':').unwrap_or((repo_tag, "latest"));
        let repositories = match layer_dirs.last() {
            Some(top) => json!({repo: {tag: top}}),
            None => json!({}),
        };

        let mut tar = tar::Builder::new(std::fs::File::create(path.as_ref())?);
        let mut append = |name: &str, bytes: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            header.set_size(bytes.len() as u64);
            tar.append_data(&mut header, name, bytes)
        };
        for (dir, layer) in layer_dirs.iter().zip(&self.layers) {
            append(&format!("{dir}/VERSION"), b"1.0")?;
            append(&format!("{dir}/json"), format!(r#"{{"id":"{dir}"}}"#).as_bytes())?;
            append(&format!("{dir}/layer.tar"), &layer.tar)?;
        }
        append(&config_name, &self.config)?;
        append(
            "manifest.json",
            &serde_json::to_vec(&manifest).expect("a JSON value serialises"),
        )?;
        append(
            "repositories",
            &serde_json::to_vec(&repositories).expect("a JSON value serialises"),
        )?;
        tar.into_inner()?.sync_all()
    }
}

/// The manifest of `tag` in the OCI layout `dir`, with its digest: the one whose
/// `org.opencontainers.image.ref.name` is `tag`, or the only one when `tag` is empty.
pub fn layout_manifest(dir: &Path, tag: &str) -> Result<(String, Value, Vec<u8>), LayoutError> {
    let read = |path: PathBuf| std::fs::read(&path).map_err(|e| LayoutError(format!("{}: {e}", path.display())));
    let parse = |bytes: &[u8], what: &str| {
        serde_json::from_slice::<Value>(bytes).map_err(|e| LayoutError(format!("{what}: {e}")))
    };
    let index = parse(&read(dir.join("index.json"))?, "index.json")?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    let matches: Vec<&Value> = manifests
        .iter()
        .filter(|entry| tag.is_empty() || entry["annotations"][REF_NAME_ANNOTATION] == tag)
        .collect();
    let [entry] = matches.as_slice() else {
        return Err(LayoutError(format!(
            "{}: {} manifests tagged {tag:?} in index.json",
            dir.display(),
            matches.len()
        )));
    };
    let digest = entry["digest"]
        .as_str()
        .ok_or_else(|| LayoutError("an index.json entry without a digest".to_string()))?
        .to_string();
    let bytes = read(layout_blob_path(dir, &digest))?;
    if sha256_digest(&bytes) != digest {
        return Err(LayoutError(format!("blob {digest} does not match its digest")));
    }
    let manifest = parse(&bytes, &digest)?;
    Ok((digest, manifest, bytes))
}

pub fn layout_blob_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs").join("sha256").join(digest_hex(digest))
}

fn layer_media_type(format: ManifestFormat, compression: LayerCompression) -> &'static str {
    match (format, compression) {
        (ManifestFormat::Oci, LayerCompression::Gzip) => MEDIA_TYPE_OCI_LAYER_GZIP,
        (ManifestFormat::Oci, LayerCompression::None) => MEDIA_TYPE_OCI_LAYER,
        (ManifestFormat::Docker, LayerCompression::Gzip) => MEDIA_TYPE_DOCKER_LAYER_GZIP,
        (ManifestFormat::Docker, LayerCompression::None) => MEDIA_TYPE_DOCKER_LAYER,
    }
}

/// The config JSON: platform of this host, the container settings, and the diff IDs.
fn config_json(layers: &[Layer], spec: &ImageConfigSpec) -> Vec<u8> {
    let mut config = serde_json::Map::new();
    if !spec.user.is_empty() {
        config.insert("User".into(), json!(spec.user));
    }
    if !spec.exposed_ports.is_empty() {
        let ports: serde_json::Map<String, Value> = spec
            .exposed_ports
            .iter()
            .map(|port| (port.clone(), json!({})))
            .collect();
        config.insert("ExposedPorts".into(), Value::Object(ports));
    }
    if !spec.env.is_empty() {
        config.insert("Env".into(), json!(spec.env));
    }
    if let Some(entrypoint) = &spec.entrypoint {
        config.insert("Entrypoint".into(), json!(entrypoint));
    }
    if let Some(cmd) = &spec.cmd {
        config.insert("Cmd".into(), json!(cmd));
    }
    if !spec.working_dir.is_empty() {
        config.insert("WorkingDir".into(), json!(spec.working_dir));
    }
    if !spec.labels.is_empty() {
        config.insert("Labels".into(), json!(spec.labels));
    }
    let created = "1970-01-01T00:00:00Z";
    let diff_ids: Vec<String> = layers.iter().map(|layer| sha256_digest(&layer.tar)).collect();
    let history: Vec<Value> = (0..layers.len())
        .map(|n| json!({"created": created, "created_by": format!("berth image layer {n}")}))
        .collect();
    let document = json!({
        "created": created,
        "architecture": architecture(),
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    });
    serde_json::to_vec(&document).expect("a JSON value serialises")
}

/// This host's architecture in Go's words, as image configs name it.
fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}
