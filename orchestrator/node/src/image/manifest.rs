//! The JSON documents of an image: OCI image indexes and manifests and their Docker
//! v2 equivalents (manifest lists, schema 2), and the image config, with only the
//! fields berth uses. An index is resolved to the manifest for this host's platform.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ImageConfig;
use super::digest::Digest;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// What a manifest request accepts, as containerd sends it.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
/// Docker refuses manifests larger than this; so does berth.
pub const MANIFEST_MAX_BYTES: u64 = 4 << 20;
/// Image configs carry history and can be large, but not this large.
pub const CONFIG_MAX_BYTES: u64 = 32 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub fn digest(&self) -> Result<Digest, String> {
        Digest::parse(&self.digest)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest (OCI or Docker schema 2: the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// An image index or manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default)]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
}

/// What a manifest document turned out to be.
#[derive(Debug)]
pub enum Document {
    Index(Index),
    Manifest(Manifest),
}

/// Parses a manifest document; the media type comes from the response's
/// Content-Type or, failing that, the document's own `mediaType`, and an OCI
/// document without one is told apart by its `manifests` or `config` field.
pub fn parse_document(bytes: &[u8], content_type: Option<&str>) -> Result<Document, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the manifest is not JSON: {e}"))?;
    let declared = value.get("mediaType").and_then(|v| v.as_str()).unwrap_or_default();
    let media_type = match content_type.map(|c| c.split(';').next().unwrap_or(c).trim()) {
        Some(t) if [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].contains(&t) => t,
        _ => declared,
    };
    let is_index = match media_type {
        OCI_INDEX | DOCKER_LIST => true,
        OCI_MANIFEST | DOCKER_MANIFEST => false,
        "" if value.get("manifests").is_some() => true,
        "" if value.get("config").is_some() => false,
        other => {
            let schema = value.get("schemaVersion").and_then(|v| v.as_u64());
            return Err(if schema == Some(1) {
                "Docker image manifest schema 1 is not supported (the registry serves a deprecated image format)"
                    .to_string()
            } else {
                format!("unsupported manifest media type {other:?}")
            });
        }
    };
    if is_index {
        serde_json::from_value(value)
            .map(Document::Index)
            .map_err(|e| format!("invalid image index: {e}"))
    } else {
        serde_json::from_value(value)
            .map(Document::Manifest)
            .map_err(|e| format!("invalid image manifest: {e}"))
    }
}

/// The host's platform in OCI's words.
pub fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform {
        architecture: architecture.to_string(),
        os: "linux".to_string(),
        variant: None,
    }
}

/// The manifest of `index` for `platform`: the first entry of that OS and
/// architecture, preferring an exact variant (arm64's "v8" is its default).
pub fn select_platform<'a>(index: &'a Index, platform: &Platform) -> Result<&'a Descriptor, String> {
    let matching = |d: &&Descriptor| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == platform.os && p.architecture == platform.architecture)
    };
    let variant_of = |d: &Descriptor| d.platform.as_ref().and_then(|p| p.variant.clone());
    let wanted = platform
        .variant
        .clone()
        .or_else(|| (platform.architecture == "arm64").then(|| "v8".to_string()));
    index
        .manifests
        .iter()
        .filter(matching)
        .find(|d| variant_of(d) == wanted)
        .or_else(|| index.manifests.iter().find(matching))
        .ok_or_else(|| {
            let offered: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| format!("{}/{}", p.os, p.architecture)))
                .collect();
            format!(
                "no match for platform in manifest: the image offers [{}], not {}/{}",
                offered.join(", "),
                platform.os,
                platform.architecture
            )
        })
}

/// The image config file, the fields berth reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: Option<RunConfig>,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

impl ConfigFile {
    pub fn parse(bytes: &[u8]) -> Result<ConfigFile, String> {
        let file: ConfigFile = serde_json::from_slice(bytes).map_err(|e| format!("invalid image config: {e}"))?;
        if file.rootfs.kind != "layers" {
            return Err(format!(
                "invalid image config: rootfs type {:?}, expected \"layers\"",
                file.rootfs.kind
            ));
        }
        for id in &file.rootfs.diff_ids {
            Digest::parse(id).map_err(|e| format!("invalid image config: diff_id: {e}"))?;
        }
        Ok(file)
    }

    pub fn diff_ids(&self) -> Vec<Digest> {
        self.rootfs
            .diff_ids
            .iter()
            .filter_map(|d| Digest::parse(d).ok())
            .collect()
    }

    /// What the runtime needs of it; empty strings count as unset, as in Docker.
    pub fn image_config(&self) -> ImageConfig {
        let c = self.config.clone().unwrap_or_default();
        ImageConfig {
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            working_dir: c.working_dir.filter(|w| !w.is_empty()),
            user: c.user.filter(|u| !u.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(arch: &str, variant: Option<&str>, digest_char: char) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: format!("sha256:{}", digest_char.to_string().repeat(64)),
            size: 1,
            platform: Some(Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: variant.map(Into::into),
            }),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn an_index_resolves_to_the_hosts_platform() {
        let index = Index {
            media_type: OCI_INDEX.into(),
            manifests: vec![
                descriptor("arm", Some("v7"), 'a'),
                descriptor("arm64", Some("v8"), 'b'),
                descriptor("amd64", None, 'c'),
            ],
        };
        let amd64 = Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
        };
        assert!(select_platform(&index, &amd64).unwrap().digest.ends_with('c'));
        let arm64 = Platform {
            architecture: "arm64".into(),
            os: "linux".into(),
            variant: None,
        };
        assert!(select_platform(&index, &arm64).unwrap().digest.ends_with('b'));
        let s390x = Platform {
            architecture: "s390x".into(),
            os: "linux".into(),
            variant: None,
        };
        let err = select_platform(&index, &s390x).unwrap_err();
        assert!(err.contains("linux/amd64") && err.contains("linux/s390x"), "{err}");
    }

    #[test]
    fn documents_are_told_apart() {
        let manifest = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:00","size":1},"layers":[]}"#;
        assert!(matches!(parse_document(manifest, None), Ok(Document::Manifest(_))));
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(parse_document(index, Some(OCI_INDEX)), Ok(Document::Index(_))));
        let schema1 = br#"{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}"#;
        assert!(parse_document(schema1, None).unwrap_err().contains("schema 1"));
    }

    #[test]
    fn the_config_gives_what_the_runtime_needs() {
        let config = ConfigFile::parse(
            br#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/bin/sh"],"Cmd":["-c","echo"],"Env":["PATH=/bin"],"WorkingDir":"","User":"1000:1000"},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        let c = config.image_config();
        assert_eq!(c.entrypoint, ["/bin/sh"]);
        assert_eq!(c.cmd, ["-c", "echo"]);
        assert_eq!(c.env, ["PATH=/bin"]);
        assert_eq!(c.working_dir, None);
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        assert!(ConfigFile::parse(br#"{"rootfs":{"type":"layers","diff_ids":["md5:x"]}}"#).is_err());
    }
}
