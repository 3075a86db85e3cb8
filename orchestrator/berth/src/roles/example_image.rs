//! What `berth up` does so that `examples/web.yaml` runs in real containers on a host
//! without the internet: it decides whether the host can run containers at all, builds
//! the example's image from the host's static busybox, and hands it to the agents, through
//! a local `docker-registry` when the host has one, else by importing it into each
//! agent's image store.
//!
//! ```text
//!  ContainerSupport::detect ── root, runc, overlayfs, cgroups (the OCI runtime's own
//!     │                        check), the CNI plugins, a static busybox
//!     │   none of them missing
//!     ▼
//!  build ── busybox image → <dir>/image (an OCI layout, tags <version> and stable)
//!     │
//!     ├── docker-registry installed and 127.0.0.1:5000 free
//!     │      registry_config → docker-registry serve (a child of berth up)
//!     │      push_when_serving → 127.0.0.1:5000/berth/busybox:{<version>,stable}
//!     └── otherwise
//!            import_into(<agent data dir>) for each agent, before it starts
//! ```
//!
//! The image is named after the registry berth up would run (`127.0.0.1:5000/...`)
//! either way: an imported image is found in the store under that name, and a tag other
//! than `latest` is pulled only if not present, so the example's pods need no registry.

use std::net::{SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_image_layout::registry::{self, Pusher};
use berth_image_layout::{busybox_binary, busybox_image_from, busybox_version};
use berth_node::image::import::import;
use berth_node::image::manifest::host_platform;
use berth_node::image::store::Store;
use berth_node::network::{CniNetwork, CniSettings, default_bin_dir};
use berth_node::runtime::OciRuntime;

/// Where `berth up` runs its registry: Docker's customary local registry port, on
/// loopback, where the agents pull over plain HTTP without `--insecure-registry`.
pub const REGISTRY_HOST: &str = "127.0.0.1:5000";
/// The example image's repository in that registry.
pub const REPOSITORY: &str = "berth/busybox";
/// The tag `examples/web.yaml` names, beside the busybox version's own tag.
pub const STABLE_TAG: &str = "stable";

/// The image `examples/web.yaml` runs.
pub fn example_image() -> String {
    format!("{REGISTRY_HOST}/{REPOSITORY}:{STABLE_TAG}")
}

/// Whether this host can run the example in containers, and with what.
pub enum ContainerSupport {
    /// The OCI runtime and the pod network work here; the busybox to build from.
    Containers { busybox: PathBuf },
    /// Pods run as host processes; why containers cannot.
    Processes { why: String },
}

impl ContainerSupport {
    /// What the agents will offer (they make the same checks at start) and whether the
    /// example's image can be built.
    pub fn detect() -> ContainerSupport {
        if let Err(why) = OciRuntime::available() {
            return ContainerSupport::Processes { why };
        }
        let cni = CniSettings {
            bin_dir: default_bin_dir(),
            ..CniSettings::new(PathBuf::new())
        };
        if let Err(why) = CniNetwork::available(&cni) {
            return ContainerSupport::Processes {
                why: format!("no pod network: {why} (install containernetworking-plugins)"),
            };
        }
        match busybox_binary() {
            Some(busybox) => ContainerSupport::Containers { busybox },
            None => ContainerSupport::Processes {
                why: "no static busybox to build the example's image from (install busybox-static)".into(),
            },
        }
    }
}

/// The example image, built and written to disk.
#[derive(Clone)]
pub struct BuiltImage {
    /// An OCI layout holding the image under both tags.
    pub layout: PathBuf,
    /// The busybox version, the image's other tag ("stable" when unknown).
    pub version_tag: String,
    pub image: berth_image_layout::Image,
}

/// Builds the busybox image into the OCI layout `<dir>/image`.
pub fn build(busybox: &Path, dir: &Path) -> Result<BuiltImage, String> {
    let version_tag = busybox_version(busybox).unwrap_or_else(|| STABLE_TAG.to_string());
    let image = busybox_image_from(busybox)
        .label("org.opencontainers.image.title", "berth up's example image")
        .build()
        .map_err(|e| format!("building the example image from {}: {e}", busybox.display()))?;
    let layout = dir.join("image");
    for tag in [version_tag.as_str(), STABLE_TAG] {
        image
            .write_layout(&layout, tag)
            .map_err(|e| format!("writing {}: {e}", layout.display()))?;
    }
    Ok(BuiltImage {
        layout,
        version_tag,
        image,
    })
}

/// Whether `berth up` can run its registry: the binary is installed and its port free.
pub fn registry_binary() -> Result<PathBuf, String> {
    let binary =
        registry::docker_registry_binary().ok_or_else(|| format!("{} is not installed", registry::DOCKER_REGISTRY))?;
    let addr: SocketAddrV4 = REGISTRY_HOST.parse().expect("a socket address");
    TcpListener::bind(addr).map_err(|e| format!("{REGISTRY_HOST} is taken ({e})"))?;
    Ok(binary)
}

/// Writes the registry's config under `<dir>/registry` (its blobs beside it) and
/// returns the arguments of `docker-registry`.
pub fn registry_config(dir: &Path) -> Result<Vec<String>, String> {
    let root = dir.join("registry");
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let root = root.canonicalize().map_err(|e| format!("{}: {e}", root.display()))?;
    let config = registry::config_yaml(&root.join("storage"), REGISTRY_HOST, "berth-up", None);
    let path = root.join("config.yml");
    std::fs::write(&path, config).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(vec!["serve".into(), path.display().to_string()])
}

/// Waits (up to a minute) for the registry to answer, then pushes the image under both
/// tags. Blocking: run it off the async runtime.
pub fn push_when_serving(built: &BuiltImage) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !registry::is_serving(REGISTRY_HOST) {
        if Instant::now() > deadline {
            return Err(format!("docker-registry did not answer on {REGISTRY_HOST}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let pusher = Pusher::new(REGISTRY_HOST);
    for tag in [built.version_tag.as_str(), STABLE_TAG] {
        pusher
            .push(&built.image, REPOSITORY, tag)
            .map_err(|e| format!("pushing {REGISTRY_HOST}/{REPOSITORY}:{tag}: {e:#}"))?;
    }
    Ok(())
}

/// Imports the image into the image store of the agent whose data directory is
/// `agent_dir`, under the name it would have in the registry (both tags).
pub fn import_into(agent_dir: &Path, built: &BuiltImage) -> Result<(), String> {
    let root = agent_dir.join("images");
    let store = Store::open(&root).map_err(|e| format!("image store {}: {e}", root.display()))?;
    for tag in [built.version_tag.as_str(), STABLE_TAG] {
        let name = format!("{REGISTRY_HOST}/{REPOSITORY}:{tag}");
        // The layout holds the image under both tags: one import per name.
        let single = agent_dir.join(format!("import-{tag}"));
        let _ = std::fs::remove_dir_all(&single);
        built
            .image
            .write_layout(&single, tag)
            .map_err(|e| format!("writing {}: {e}", single.display()))?;
        let result = import(&store, &single, Some(&name), &host_platform());
        let _ = std::fs::remove_dir_all(&single);
        result.map_err(|e| format!("importing {name} into {}: {e}", root.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a registry, the agents find the example's image in their stores under
    /// the name `examples/web.yaml` gives, with the digest the registry would serve.
    #[test]
    fn the_built_image_is_imported_under_both_tags_with_its_digest() {
        let Some(busybox) = busybox_binary() else {
            berth_testkit::skip("a static busybox (Debian's busybox-static)");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let built = build(&busybox, dir.path()).unwrap();
        assert_ne!(built.version_tag, STABLE_TAG, "busybox-static names its version");
        assert!(built.layout.join("index.json").is_file());

        let agent = dir.path().join("node-0");
        import_into(&agent, &built).unwrap();
        let store = Store::open(&agent.join("images")).unwrap();
        let index = store.read_index().unwrap();
        let refs: Vec<&String> = index.refs.keys().collect();
        assert_eq!(refs.len(), 2, "{refs:?}");
        assert!(
            refs.iter()
                .any(|key| key.ends_with(&format!("{REPOSITORY}:{STABLE_TAG}"))),
            "{refs:?}"
        );
        let digest = built.image.manifest_digest();
        for (key, record) in &index.refs {
            assert_eq!(record.manifest, digest, "{key}");
        }
        assert_eq!(example_image(), "127.0.0.1:5000/berth/busybox:stable");
    }
}
