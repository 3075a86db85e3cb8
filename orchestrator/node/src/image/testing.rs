//! Layers and images made in tests: tar entries written by hand (the tar crate's
//! builder refuses the malicious paths the unpack tests need), gzip, digests, and
//! OCI layouts.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use super::digest::Digest;
use super::manifest::{Descriptor, Manifest, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};

/// A tar archive built entry by entry.
#[derive(Default)]
pub struct LayerTar {
    builder: Option<tar::Builder<Vec<u8>>>,
}

fn header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    let name = &mut h.as_old_mut().name;
    assert!(path.len() < name.len(), "test paths are short");
    name[..path.len()].copy_from_slice(path.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

impl LayerTar {
    pub fn new() -> LayerTar {
        LayerTar {
            builder: Some(tar::Builder::new(Vec::new())),
        }
    }

    fn append(&mut self, mut h: tar::Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.builder.as_mut().unwrap().append(&h, data).unwrap();
        self
    }

    pub fn dir(&mut self, path: &str) -> &mut Self {
        self.append(header(path, tar::EntryType::Directory, 0o755, 0), &[])
    }

    pub fn file(&mut self, path: &str, content: &str) -> &mut Self {
        self.append(
            header(path, tar::EntryType::Regular, 0o644, content.len() as u64),
            content.as_bytes(),
        )
    }

    pub fn file_owned(&mut self, path: &str, content: &str, mode: u32, uid: u64, gid: u64) -> &mut Self {
        let mut h = header(path, tar::EntryType::Regular, mode, content.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.append(h, content.as_bytes())
    }

    pub fn link(&mut self, kind: tar::EntryType, path: &str, target: &str) -> &mut Self {
        let mut h = header(path, kind, 0o777, 0);
        let link = &mut h.as_old_mut().linkname;
        link[..target.len()].copy_from_slice(target.as_bytes());
        self.append(h, &[])
    }

    pub fn tar(&mut self) -> Vec<u8> {
        self.builder.take().unwrap().into_inner().unwrap()
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// An image's parts: the config, the layers as stored (gzip) and the manifest.
pub struct TestImage {
    pub config: Vec<u8>,
    pub layers: Vec<Vec<u8>>,
    pub manifest: Vec<u8>,
}

impl TestImage {
    /// An image of `tars` (uncompressed layer tars), each gzip-compressed, with `cmd`.
    pub fn new(tars: &[Vec<u8>], cmd: &[&str]) -> TestImage {
        let diff_ids: Vec<String> = tars.iter().map(|t| Digest::of(t).to_string()).collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": super::manifest::host_platform().architecture,
            "os": "linux",
            "config": {"Cmd": cmd, "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let layers: Vec<Vec<u8>> = tars.iter().map(|t| gzip(t)).collect();
        let manifest = Manifest {
            schema_version: 2,
            media_type: OCI_MANIFEST.into(),
            config: descriptor(OCI_CONFIG, &config),
            layers: layers
                .iter()
                .map(|l| descriptor("application/vnd.oci.image.layer.v1.tar+gzip", l))
                .collect(),
        };
        TestImage {
            config,
            layers,
            manifest: serde_json::to_vec(&manifest).unwrap(),
        }
    }

    pub fn manifest_digest(&self) -> Digest {
        Digest::of(&self.manifest)
    }

    pub fn config_digest(&self) -> Digest {
        Digest::of(&self.config)
    }

    /// Writes the image as an OCI layout at `dir`, its manifest named `ref_name`.
    pub fn write_layout(&self, dir: &Path, ref_name: &str) {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        for blob in [&self.config, &self.manifest].into_iter().chain(&self.layers) {
            std::fs::write(blobs.join(Digest::of(blob).hex()), blob).unwrap();
        }
        let mut manifest = descriptor(OCI_MANIFEST, &self.manifest);
        manifest.annotations = BTreeMap::from([("org.opencontainers.image.ref.name".into(), ref_name.into())]);
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [manifest]});
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    }
}

pub fn descriptor(media_type: &str, blob: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: Digest::of(blob).to_string(),
        size: blob.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
    }
}

/// Whether this process may do what unpacking as root does (devices, trusted xattrs).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
