//! The description of an image: its layers' entries and its config, turned into bytes
//! by [`ImageBuilder::build`].

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use tar::{EntryType, Header};

use super::image::{Image, ImageConfigSpec, Layer};

/// How the layers travel in a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerCompression {
    /// `…tar+gzip`, as registries nearly always serve them.
    Gzip,
    /// A plain tar, which OCI allows and an unpacker should accept.
    None,
}

/// Which family of media types the manifest and its descriptors use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestFormat {
    /// `application/vnd.oci.image.manifest.v1+json` and the OCI config and layer types.
    Oci,
    /// Docker's schema 2 (`application/vnd.docker.distribution.manifest.v2+json`).
    Docker,
}

/// Builds an image from entries grouped into layers, the lowest first.
///
/// Paths in the image are absolute (`/bin/sh`); they are written to the tar relative
/// to its root (`bin/sh`), as image tools write them. Each entry's missing parent
/// directories are added to its layer (mode 0755) before it, unless the layer declares
/// them itself. Every entry belongs to root (0:0) and has mtime 0.
#[derive(Clone, Debug)]
pub struct ImageBuilder {
    layers: Vec<Vec<Entry>>,
    current: Vec<Entry>,
    config: ImageConfigSpec,
    compression: LayerCompression,
    format: ManifestFormat,
}

#[derive(Clone, Debug)]
pub(super) enum Entry {
    File { path: String, source: Source, mode: u32 },
    Dir { path: String, mode: u32 },
    Symlink { path: String, target: String },
    Hardlink { path: String, target: String },
}

#[derive(Clone, Debug)]
pub(super) enum Source {
    Host(PathBuf),
    Bytes(Vec<u8>),
}

impl Default for ImageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageBuilder {
    /// An image with no layer yet, gzipped OCI layers, and a config with nothing set.
    pub fn new() -> Self {
        Self {
            layers: Vec::new(),
            current: Vec::new(),
            config: ImageConfigSpec::default(),
            compression: LayerCompression::Gzip,
            format: ManifestFormat::Oci,
        }
    }

    /// A regular file at `path` with the contents of the host's `host_path` (read when
    /// the image is built).
    pub fn file(mut self, path: &str, host_path: impl AsRef<Path>, mode: u32) -> Self {
        let source = Source::Host(host_path.as_ref().to_path_buf());
        self.current.push(Entry::File {
            path: relative(path),
            source,
            mode,
        });
        self
    }

    /// A regular file at `path` with the given contents.
    pub fn contents(mut self, path: &str, contents: impl Into<Vec<u8>>, mode: u32) -> Self {
        let source = Source::Bytes(contents.into());
        self.current.push(Entry::File {
            path: relative(path),
            source,
            mode,
        });
        self
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        self.current.push(Entry::Dir {
            path: relative(path),
            mode,
        });
        self
    }

    /// A symbolic link at `path` to `target`, written as given (relative or absolute).
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.current.push(Entry::Symlink {
            path: relative(path),
            target: target.to_string(),
        });
        self
    }

    /// A hard link at `path` to `target`, an absolute path in the image.
    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        self.current.push(Entry::Hardlink {
            path: relative(path),
            target: relative(target),
        });
        self
    }

    /// A whiteout: `path`, present in a lower layer, is deleted by this one
    /// (an empty file `.wh.<name>` beside it).
    pub fn whiteout(self, path: &str) -> Self {
        let path = relative(path);
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", &path));
        let marker = format!("/{dir}/.wh.{name}");
        self.contents(&marker, Vec::new(), 0o644)
    }

    /// An opaque directory: what lower layers hold under `dir` is hidden, and only
    /// what this and higher layers put there shows (`<dir>/.wh..wh..opq`).
    pub fn opaque(self, dir: &str) -> Self {
        let marker = format!("/{}/.wh..wh..opq", relative(dir));
        self.contents(&marker, Vec::new(), 0o644)
    }

    /// Closes the layer built so far (even an empty one); later entries go to the next.
    pub fn layer(mut self) -> Self {
        self.layers.push(std::mem::take(&mut self.current));
        self
    }

    /// The five settings of the image config a pod's container inherits, at once.
    /// An empty `entrypoint` or `cmd` leaves that field unset (null), as an image
    /// without one has it; an empty `working_dir` or `user` likewise.
    pub fn config(self, entrypoint: &[&str], cmd: &[&str], env: &[&str], working_dir: &str, user: &str) -> Self {
        let mut builder = self;
        if !entrypoint.is_empty() {
            builder = builder.entrypoint(entrypoint);
        }
        if !cmd.is_empty() {
            builder = builder.cmd(cmd);
        }
        for variable in env {
            builder = builder.env(variable);
        }
        builder.working_dir(working_dir).user(user)
    }

    pub fn entrypoint(mut self, entrypoint: &[&str]) -> Self {
        self.config.entrypoint = Some(strings(entrypoint));
        self
    }

    pub fn cmd(mut self, cmd: &[&str]) -> Self {
        self.config.cmd = Some(strings(cmd));
        self
    }

    /// Adds `NAME=value` to the config's environment; a later one of the same name
    /// replaces the earlier.
    pub fn env(mut self, variable: &str) -> Self {
        let name = variable.split_once('=').map_or(variable, |(name, _)| name);
        self.config
            .env
            .retain(|existing| existing.split_once('=').map_or(existing.as_str(), |(n, _)| n) != name);
        self.config.env.push(variable.to_string());
        self
    }

    pub fn working_dir(mut self, working_dir: &str) -> Self {
        self.config.working_dir = working_dir.to_string();
        self
    }

    /// `name`, `uid`, `uid:gid` or `name:group`, as the image config's `User`.
    pub fn user(mut self, user: &str) -> Self {
        self.config.user = user.to_string();
        self
    }

    /// A port the image declares (`ExposedPorts`), such as `80/tcp`.
    pub fn exposed_port(mut self, port: &str) -> Self {
        self.config.exposed_ports.insert(port.to_string());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.config.labels.insert(key.to_string(), value.to_string());
        self
    }

    pub fn compression(mut self, compression: LayerCompression) -> Self {
        self.compression = compression;
        self
    }

    pub fn format(mut self, format: ManifestFormat) -> Self {
        self.format = format;
        self
    }

    /// The layers' tars, the config and the manifest, with their digests. An error if
    /// a host file cannot be read.
    pub fn build(&self) -> io::Result<Image> {
        let mut layers: Vec<&[Entry]> = self.layers.iter().map(Vec::as_slice).collect();
        if !self.current.is_empty() || layers.is_empty() {
            layers.push(&self.current);
        }
        let layers = layers
            .into_iter()
            .map(|entries| Layer::new(layer_tar(entries)?, self.compression))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Image::new(layers, self.config.clone(), self.format))
    }

    /// Builds the image and writes it to the OCI layout `dir` under `tag`
    /// ([`Image::write_layout`]).
    pub fn write_layout(&self, dir: impl AsRef<Path>, tag: &str) -> io::Result<Image> {
        let image = self.build()?;
        image.write_layout(dir, tag)?;
        Ok(image)
    }
}

/// `path` without its leading and trailing slashes; an error-free normalisation, since
/// tests write the paths.
fn relative(path: &str) -> String {
    path.trim_matches('/').to_string()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl Entry {
    fn path(&self) -> &str {
        match self {
            Entry::File { path, .. }
            | Entry::Dir { path, .. }
            | Entry::Symlink { path, .. }
            | Entry::Hardlink { path, .. } => path,
        }
    }
}

/// One layer's tar: each entry after its parents, the layer's own directory entries
/// taking the place of the implied ones.
fn layer_tar(entries: &[Entry]) -> io::Result<Vec<u8>> {
    let declared_dirs: Vec<(&str, u32)> = entries
        .iter()
        .filter_map(|entry| match entry {
            Entry::Dir { path, mode } => Some((path.as_str(), *mode)),
            _ => None,
        })
        .collect();
    let mut written_dirs = BTreeSet::new();
    let mut tar = tar::Builder::new(Vec::new());
    for entry in entries {
        let path = entry.path();
        for (index, _) in path.match_indices('/') {
            let parent = &path[..index];
            if written_dirs.insert(parent.to_string()) {
                let mode = declared_dirs
                    .iter()
                    .rev()
                    .find(|(dir, _)| *dir == parent)
                    .map_or(0o755, |(_, mode)| *mode);
                append_dir(&mut tar, parent, mode)?;
            }
        }
        match entry {
            Entry::Dir { path, mode } => {
                if written_dirs.insert(path.clone()) {
                    append_dir(&mut tar, path, *mode)?;
                }
            }
            Entry::File { path, source, mode } => {
                let data = match source {
                    Source::Bytes(bytes) => bytes.clone(),
                    Source::Host(host_path) => std::fs::read(host_path).map_err(|e| {
                        io::Error::new(e.kind(), format!("reading {} for /{path}: {e}", host_path.display()))
                    })?,
                };
                let mut header = header(EntryType::Regular, *mode);
                header.set_size(data.len() as u64);
                tar.append_data(&mut header, path, data.as_slice())?;
            }
            Entry::Symlink { path, target } => {
                let mut header = header(EntryType::Symlink, 0o777);
                tar.append_link(&mut header, path, target)?;
            }
            Entry::Hardlink { path, target } => {
                let mut header = header(EntryType::Link, 0o644);
                tar.append_link(&mut header, path, target)?;
            }
        }
    }
    tar.into_inner()
}

fn append_dir(tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) -> io::Result<()> {
    let mut header = header(EntryType::Directory, mode);
    header.set_size(0);
    tar.append_data(&mut header, format!("{path}/"), io::empty())
}

fn header(kind: EntryType, mode: u32) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(0);
    header
}

/// Gzip with a fixed header (no name, mtime 0), so equal tars give equal blobs.
pub(super) fn gzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = GzBuilder::new().mtime(0).write(Vec::new(), Compression::default());
    io::Write::write_all(&mut encoder, bytes)?;
    encoder.finish()
}
