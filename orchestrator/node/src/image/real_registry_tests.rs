//! Pulls from a real registry: Debian's `docker-registry` (the CNCF distribution
//! registry) on loopback, started by the test kit, with images the kit builds. What
//! the in-process stub cannot show: the real server's media types, digests, headers,
//! error bodies and its htpasswd authentication.

use std::os::unix::fs::FileTypeExt;

use berth_testkit::oci::{ImageBuilder, ManifestFormat};
use berth_testkit::registry::Registry;

use crate::image::{Images, ImagesConfig, NodeImages, PullError, PullPolicy, RegistryCredentials};

fn node_images(dir: &std::path::Path) -> NodeImages {
    NodeImages::new(ImagesConfig::new(dir)).unwrap()
}

#[tokio::test]
async fn an_image_pushed_to_a_real_registry_pulls_and_a_missing_tag_says_so() {
    let Some(registry) = Registry::start_or_skip() else {
        return;
    };
    let image = ImageBuilder::new()
        .contents("/bin/hello", "hello from the registry", 0o755)
        .layer()
        .cmd(&["/bin/hello"])
        .format(ManifestFormat::Docker)
        .build()
        .unwrap();
    let digest = registry.push(&image, "team/hello", "1.0").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let images = node_images(tmp.path());

    let reference = registry.reference("team/hello", "1.0");
    let pulled = images.ensure(&reference, PullPolicy::Always, &[]).await.unwrap();
    assert_eq!(pulled.config.cmd, ["/bin/hello"]);
    assert_eq!(pulled.config_digest, image.config_digest());
    assert_eq!(pulled.image_id, registry.reference_by_digest("team/hello", &digest));
    let hello = std::fs::read_to_string(pulled.layers[0].join("bin/hello")).unwrap();
    assert_eq!(hello, "hello from the registry");

    let missing = registry.reference("team/hello", "2.0");
    let err = images
        .ensure(&missing, PullPolicy::IfNotPresent, &[])
        .await
        .unwrap_err();
    let PullError::Pull { message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        message,
        &format!("failed to resolve reference \"{missing}\": {missing}: not found: manifest unknown: manifest unknown")
    );
}

#[tokio::test]
async fn layers_pulled_from_a_real_registry_keep_their_whiteouts() {
    if !rustix::process::geteuid().is_root() {
        berth_testkit::skip("root (whiteouts are device nodes and trusted.* xattrs)");
        return;
    }
    let Some(registry) = Registry::start_or_skip() else {
        return;
    };
    let image = ImageBuilder::new()
        .contents("/etc/gone", "old", 0o644)
        .contents("/var/lib/old", "old", 0o644)
        .layer()
        .whiteout("/etc/gone")
        .opaque("/var/lib")
        .contents("/var/lib/new", "new", 0o644)
        .layer()
        .build()
        .unwrap();
    registry.push(&image, "layered", "1").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let pulled = node_images(tmp.path())
        .ensure(&registry.reference("layered", "1"), PullPolicy::Always, &[])
        .await
        .unwrap();
    let upper = &pulled.layers[1];
    assert!(
        std::fs::symlink_metadata(upper.join("etc/gone"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
    let mut value = [0u8; 4];
    let n = rustix::fs::lgetxattr(upper.join("var/lib"), "trusted.overlay.opaque", &mut value).unwrap();
    assert_eq!(&value[..n], b"y");
    assert_eq!(std::fs::read_to_string(upper.join("var/lib/new")).unwrap(), "new");
}

#[tokio::test]
async fn a_registry_behind_htpasswd_takes_the_pull_secrets_credentials() {
    let Some(registry) = Registry::start_with_htpasswd_or_skip("puller", "s3cret") else {
        return;
    };
    let image = ImageBuilder::new()
        .contents("/app", "private", 0o755)
        .layer()
        .build()
        .unwrap();
    registry.push(&image, "private/app", "1").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let images = node_images(tmp.path());
    let reference = registry.reference("private/app", "1");

    let err = images.ensure(&reference, PullPolicy::Always, &[]).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("pull access denied"), "{message}");
    assert!(message.contains("unauthorized: authentication required"), "{message}");

    let credentials = RegistryCredentials {
        registry: registry.host().to_string(),
        username: "puller".into(),
        password: "s3cret".into(),
    };
    let pulled = images
        .ensure(&reference, PullPolicy::Always, &[credentials])
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(pulled.layers[0].join("app")).unwrap(),
        "private"
    );
}
