//! Images: references as Docker and Kubernetes write them, pulls from OCI/Docker
//! registries with every digest verified, and the node's content-addressed cache of
//! unpacked layers that the OCI runtime stacks into containers' root filesystems.
//!
//! ```text
//!  "registry:5000/app:1.2" ──► reference ──► registry (manifest, config, layers;
//!                                             HTTPS; unchecked HTTPS, else HTTP,
//!                                             for insecure and loopback registries)
//!                                    │ every blob's digest checked before use
//!                                    ▼
//!  store: state_dir/images/blobs/sha256/<hex>        blobs as pulled
//!         state_dir/images/layers/sha256/<diff_id>/  unpacked (whiteouts applied)
//!         state_dir/images/refs.json                 name:tag ──► manifest digest
//! ```
//!
//! The agent asks [`Images::ensure`] for each container's image before it starts it
//! ([`NodeImages`] is the real one); `berth image import|ls|rm` reach the same store
//! for air-gapped nodes ([`import`]). The parts:
//!
//! - `reference`: names as Docker normalizes them, and which registries are insecure;
//! - `registry`: the distribution API client (auth, redirects, digests while streaming);
//! - `manifest`: indexes, manifests, configs, and the host's platform;
//! - `unpack`: one layer into a directory, whiteouts as overlayfs's markers;
//! - `store`: the directories above, written by temp + rename under a file lock;
//! - `gc`: the kubelet's image garbage collection, as a pure plan;
//! - `credentials`: pull secrets (`.dockerconfigjson`) into [`RegistryCredentials`].

pub mod credentials;
pub mod digest;
pub mod gc;
pub mod import;
pub mod manifest;
mod node_images;
#[cfg(test)]
mod real_registry_tests;
pub mod reference;
pub mod registry;
#[cfg(test)]
mod registry_stub;
pub mod store;
#[cfg(test)]
mod testing;
pub mod unpack;

pub use node_images::{ImagesConfig, NodeImages, local_image};

#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod pull_secrets;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

/// `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// Kubernetes' default: Always for `:latest` or no tag, IfNotPresent otherwise.
    pub fn parse(value: Option<&str>, image: &str) -> Result<PullPolicy, String> {
        match value {
            Some("Always") => Ok(PullPolicy::Always),
            Some("IfNotPresent") => Ok(PullPolicy::IfNotPresent),
            Some("Never") => Ok(PullPolicy::Never),
            Some("") | None => {
                let last = image.rsplit('/').next().unwrap_or(image);
                let digest = image.contains('@');
                let tag = last.split_once(':').map(|(_, t)| t);
                Ok(if !digest && tag.is_none_or(|t| t == "latest") {
                    PullPolicy::Always
                } else {
                    PullPolicy::IfNotPresent
                })
            }
            Some(other) => Err(format!(
                "unsupported imagePullPolicy {other:?}: supported values are \"Always\", \"IfNotPresent\", \"Never\""
            )),
        }
    }
}

/// The user name and password for one registry, from a pod's `imagePullSecrets`
/// (`kubernetes.io/dockerconfigjson`: `auths.<registry>.auth` or `username`/`password`).
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredentials {
    /// The registry as the secret names it ("registry.example:5000", or a URL).
    pub registry: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// What the image's config says about running it (OCI image config `config`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// "NAME=value" entries.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

/// An image in the node's store, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// The normalized reference it was asked for ("docker.io/library/busybox:1.36").
    pub reference: String,
    /// The manifest's digest as `<repository>@sha256:<hex>`: Kubernetes'
    /// `status.containerStatuses[].imageID`.
    pub image_id: String,
    /// `sha256:<hex>` of the image config, the image's identity in the store.
    pub config_digest: String,
    pub config: ImageConfig,
    /// The unpacked layer directories, lowest first.
    pub layers: Vec<PathBuf>,
}

/// Why an image could not be had; the agent reports it as the container's waiting
/// reason and message.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum PullError {
    /// `InvalidImageName`.
    #[error("Failed to apply default image tag {image:?}: couldn't parse image name {image:?}: {why}")]
    InvalidName { image: String, why: String },
    /// `ErrImageNeverPull`: the policy is Never and the image is not here.
    #[error("Container image {image:?} is not present with pull policy of Never")]
    NeverPull { image: String },
    /// `ErrImagePull`: the registry refused or could not be reached, a digest did
    /// not match, a layer could not be unpacked. `message` carries the registry's own
    /// words where it gave any.
    #[error("failed to pull and unpack image {image:?}: {message}")]
    Pull { image: String, message: String },
}

impl PullError {
    /// The container's waiting reason while this error stands (before back-off).
    pub fn reason(&self) -> &'static str {
        match self {
            PullError::InvalidName { .. } => "InvalidImageName",
            PullError::NeverPull { .. } => "ErrImageNeverPull",
            PullError::Pull { .. } => "ErrImagePull",
        }
    }
}

/// The future [`Images::ensure`] returns.
pub type EnsureFuture<'a> = Pin<Box<dyn Future<Output = Result<PulledImage, PullError>> + Send + 'a>>;

/// The node's images, as the agent uses them.
pub trait Images: Send + Sync + 'static {
    /// The image `image` (as a pod spec writes it), pulled first when `policy` says
    /// so, with `credentials` for the registries that need them.
    fn ensure<'a>(
        &'a self,
        image: &'a str,
        policy: PullPolicy,
        credentials: &'a [RegistryCredentials],
    ) -> EnsureFuture<'a>;
    /// Garbage collection: removes images no container uses (`in_use`: config
    /// digests) while the store's disk is above its high threshold.
    fn collect_garbage(&self, in_use: &[String]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_defaults_as_kubernetes() {
        assert_eq!(PullPolicy::parse(None, "busybox").unwrap(), PullPolicy::Always);
        assert_eq!(PullPolicy::parse(None, "busybox:latest").unwrap(), PullPolicy::Always);
        assert_eq!(
            PullPolicy::parse(None, "localhost:5000/app").unwrap(),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::parse(None, "localhost:5000/app:1.2").unwrap(),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::parse(None, "app@sha256:0123").unwrap(),
            PullPolicy::IfNotPresent
        );
        assert_eq!(PullPolicy::parse(Some("Never"), "app").unwrap(), PullPolicy::Never);
        assert!(
            PullPolicy::parse(Some("Sometimes"), "app")
                .unwrap_err()
                .contains("Sometimes")
        );
    }
}
