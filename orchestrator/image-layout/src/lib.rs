//! Container images made from files of the host, so that `berth up`'s example and the
//! image and runtime tests need no internet and no image tool: the image layout
//! (layers, config, manifest; an OCI layout or a `docker save` archive) and a push to
//! a registry. No berth crate: the test kit builds on it too.
//!
//! ```text
//!  ImageBuilder ── file / contents / dir / symlink / hardlink / whiteout / opaque
//!     │             .layer() closes a layer; entrypoint, cmd, env, working_dir, user
//!     │ build: each layer a tar (deterministic: mtime 0, owner 0:0, parents first),
//!     │        gzipped; the config names the tars' digests (rootfs.diff_ids)
//!     ▼
//!  Image ── write_layout(dir, tag)    an OCI image layout: oci-layout, index.json,
//!     │                               blobs/sha256/<hex>
//!     ├──── write_docker_archive(..)  what `docker save` writes: manifest.json,
//!     │                               <hex>.json, <hex>/layer.tar
//!     └──── blobs()                   what a registry push sends (registry::Pusher)
//! ```
//!
//! The same builder input gives the same bytes, so digests are stable across runs, and
//! a test can build an image twice to compare. Layers may hold whiteouts (`.wh.NAME`,
//! which deletes NAME of a lower layer) and opaque markers (`.wh..wh..opq`, which hides
//! a directory's lower contents): the unpacker must apply them, and these let its tests
//! say so. [`busybox_image_from`] is the image most tests run and `berth up` serves:
//! Debian's busybox-static and its applets; [`ImageBuilder::host_binary`] adds a
//! dynamically linked host program with its libraries. [`registry`] pushes images to a
//! registry and describes how Debian's `docker-registry` is launched.

mod builder;
mod busybox;
mod host_binary;
pub mod image;
pub mod registry;

pub use builder::{ImageBuilder, LayerCompression, ManifestFormat};
pub use busybox::{BUSYBOX_APPLETS, busybox_binary, busybox_image_from, busybox_version};
pub use host_binary::shared_libraries;
pub use image::{Blob, Image, LayoutError};

use sha2::{Digest, Sha256};

/// `application/vnd.oci.image.index.v1+json`: `index.json` of a layout.
pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_TYPE_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Docker's schema 2 manifest, which most registries still serve for most images.
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MEDIA_TYPE_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker has no media type for an uncompressed layer in a registry; this is the one
/// its distribution code accepts.
pub const MEDIA_TYPE_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// The annotation that names a manifest's tag in a layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// `sha256:<hex>` of `bytes`, as OCI and registries write digests.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex part of a `sha256:<hex>` digest.
pub fn digest_hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

#[cfg(test)]
mod tests;
