//! Pulls through `NodeImages` from the in-process registry stub.

use std::sync::atomic::Ordering;

use super::*;
use crate::image::registry::auth::basic;
use crate::image::registry_stub::{Auth, Stub};
use crate::image::testing::{LayerTar, TestImage, gzip};

fn images(dir: &std::path::Path) -> NodeImages {
    NodeImages::new(ImagesConfig::new(dir)).unwrap()
}

fn app_image(content: &str) -> TestImage {
    let base = LayerTar::new().dir("bin/").file("bin/hello", "hello").tar();
    let app = LayerTar::new().dir("app/").file("app/run", content).tar();
    TestImage::new(&[base, app], &["/app/run"])
}

fn creds(registry: &str, username: &str, password: &str) -> RegistryCredentials {
    RegistryCredentials {
        registry: registry.into(),
        username: username.into(),
        password: password.into(),
    }
}

#[tokio::test]
async fn an_image_is_pulled_once_and_then_found_in_the_store() {
    let stub = Stub::start().await;
    let image = app_image("v1");
    stub.push("team/app", "1.0", &image);
    let tmp = tempfile::tempdir().unwrap();
    let images = images(tmp.path());
    let reference = stub.reference("team/app", "1.0");

    let pulled = images.ensure(&reference, PullPolicy::IfNotPresent, &[]).await.unwrap();
    assert_eq!(pulled.reference, reference);
    assert_eq!(
        pulled.image_id,
        format!("{}/team/app@{}", stub.host, image.manifest_digest())
    );
    assert_eq!(pulled.config_digest, image.config_digest().to_string());
    assert_eq!(pulled.config.cmd, ["/app/run"]);
    assert_eq!(std::fs::read_to_string(pulled.layers[1].join("app/run")).unwrap(), "v1");
    assert!(
        pulled
            .layers
            .iter()
            .all(|l| l.starts_with(tmp.path().join("images/layers/sha256")))
    );

    let manifests = stub.state.manifest_requests.load(Ordering::SeqCst);
    let again = images.ensure(&reference, PullPolicy::IfNotPresent, &[]).await.unwrap();
    assert_eq!(again, pulled);
    let never = images.ensure(&reference, PullPolicy::Never, &[]).await.unwrap();
    assert_eq!(never, pulled);
    assert_eq!(
        stub.state.manifest_requests.load(Ordering::SeqCst),
        manifests,
        "the store answered"
    );

    // Always asks the registry again, but downloads no layer it has.
    let blobs = stub.state.blob_requests.load(Ordering::SeqCst);
    images.ensure(&reference, PullPolicy::Always, &[]).await.unwrap();
    assert_eq!(stub.state.manifest_requests.load(Ordering::SeqCst), manifests + 1);
    assert_eq!(stub.state.blob_requests.load(Ordering::SeqCst), blobs);

    // By digest, the image pulled under its tag is the same content.
    let by_digest = format!("{}/team/app@{}", stub.host, image.manifest_digest());
    let pinned = images.ensure(&by_digest, PullPolicy::Never, &[]).await.unwrap();
    assert_eq!(pinned.image_id, pulled.image_id);
}

#[tokio::test]
async fn two_pulls_of_one_image_download_its_layers_once() {
    let stub = Stub::start().await;
    stub.push("app", "1", &app_image("v1"));
    let tmp = tempfile::tempdir().unwrap();
    let images = images(tmp.path());
    let reference = stub.reference("app", "1");
    let (a, b) = tokio::join!(
        images.ensure(&reference, PullPolicy::IfNotPresent, &[]),
        images.ensure(&reference, PullPolicy::IfNotPresent, &[])
    );
    assert_eq!(a.unwrap(), b.unwrap());
    // One config and two layers.
    assert_eq!(stub.state.blob_requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_missing_tag_fails_with_the_registrys_words() {
    let stub = Stub::start().await;
    stub.push("app", "1", &app_image("v1"));
    let tmp = tempfile::tempdir().unwrap();
    let reference = stub.reference("app", "nope");
    let err = images(tmp.path())
        .ensure(&reference, PullPolicy::IfNotPresent, &[])
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "ErrImagePull");
    let PullError::Pull { message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        message,
        &format!(
            "failed to resolve reference \"{reference}\": {reference}: not found: manifest unknown: manifest unknown"
        )
    );
}

#[tokio::test]
async fn never_and_bad_names_fail_without_asking_the_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let images = images(tmp.path());
    let err = images
        .ensure("127.0.0.1:1/app:1", PullPolicy::Never, &[])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PullError::NeverPull {
            image: "127.0.0.1:1/app:1".into()
        }
    );
    let err = images.ensure("Bad:Name:x", PullPolicy::Always, &[]).await.unwrap_err();
    assert_eq!(err.reason(), "InvalidImageName");
    assert!(err.to_string().contains("invalid reference format"), "{err}");
}

#[tokio::test]
async fn a_blob_that_is_not_what_the_manifest_says_is_refused() {
    let stub = Stub::start().await;
    let image = app_image("v1");
    stub.push("app", "1", &image);
    let layer_digest = Digest::of(&image.layers[1]);
    let tampered = gzip(&LayerTar::new().file("app/run", "evil!").tar());
    // Same size as the real blob, so that only the digest can tell.
    let mut tampered = tampered;
    tampered.resize(image.layers[1].len(), 0);
    stub.state
        .blobs
        .lock()
        .unwrap()
        .insert(layer_digest.to_string(), tampered.clone());
    let tmp = tempfile::tempdir().unwrap();
    let images = images(tmp.path());
    let err = images
        .ensure(&stub.reference("app", "1"), PullPolicy::Always, &[])
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains(layer_digest.as_str()), "{message}");
    assert!(message.contains(Digest::of(&tampered).as_str()), "{message}");
    assert!(
        images
            .ensure(&stub.reference("app", "1"), PullPolicy::Never, &[])
            .await
            .is_err()
    );
    assert_eq!(
        std::fs::read_dir(tmp.path().join("images/tmp")).unwrap().count(),
        0,
        "no partial blob left"
    );
}

#[tokio::test]
async fn a_manifest_whose_digest_is_not_the_pinned_one_is_refused() {
    let stub = Stub::start().await;
    let image = app_image("v1");
    stub.push("app", "1", &image);
    // The registry answers a digest request with another manifest.
    let pinned = Digest::of(b"what the user pinned");
    stub.state.manifests.lock().unwrap().insert(
        ("app".into(), pinned.to_string()),
        (super::super::manifest::OCI_MANIFEST.into(), image.manifest.clone()),
    );
    let tmp = tempfile::tempdir().unwrap();
    let reference = format!("{}/app@{pinned}", stub.host);
    let err = images(tmp.path())
        .ensure(&reference, PullPolicy::IfNotPresent, &[])
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("manifest digest mismatch"), "{message}");
    assert!(
        message.contains(pinned.as_str()) && message.contains(image.manifest_digest().as_str()),
        "{message}"
    );
}

#[tokio::test]
async fn a_manifest_that_is_not_the_one_the_registry_names_is_refused() {
    let stub = Stub::start().await;
    let image = app_image("v1");
    stub.push("app", "1", &image);
    *stub.state.wrong_content_digest.lock().unwrap() = true;
    let tmp = tempfile::tempdir().unwrap();
    let err = images(tmp.path())
        .ensure(&stub.reference("app", "1"), PullPolicy::Always, &[])
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("Docker-Content-Digest"), "{message}");
    assert!(message.contains(Digest::of(b"another manifest").as_str()), "{message}");
    assert!(message.contains(image.manifest_digest().as_str()), "{message}");
}

#[tokio::test]
async fn an_index_resolves_to_this_hosts_manifest() {
    let stub = Stub::start().await;
    let ours = app_image("ours");
    let other = app_image("other");
    stub.push("multi", "other-arch", &other);
    stub.push("multi", "this-arch", &ours);
    let platform = super::super::manifest::host_platform();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": super::super::manifest::OCI_INDEX,
        "manifests": [
            {"mediaType": super::super::manifest::OCI_MANIFEST, "digest": other.manifest_digest().to_string(),
             "size": other.manifest.len(), "platform": {"os": "linux", "architecture": "not-this-one"}},
            {"mediaType": super::super::manifest::OCI_MANIFEST, "digest": ours.manifest_digest().to_string(),
             "size": ours.manifest.len(), "platform": {"os": "linux", "architecture": platform.architecture}},
        ],
    });
    let index = serde_json::to_vec(&index).unwrap();
    stub.put_manifest("multi", "1", super::super::manifest::OCI_INDEX, &index);
    let tmp = tempfile::tempdir().unwrap();
    let pulled = images(tmp.path())
        .ensure(&stub.reference("multi", "1"), PullPolicy::Always, &[])
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(pulled.layers[1].join("app/run")).unwrap(),
        "ours"
    );
    assert_eq!(
        pulled.image_id,
        format!("{}/multi@{}", stub.host, Digest::of(&index)),
        "the index's digest"
    );
}

#[tokio::test]
async fn bearer_tokens_are_fetched_with_the_pull_secrets_credentials() {
    let stub = Stub::start().await;
    stub.push("private/app", "1", &app_image("v1"));
    let good = creds(&format!("https://{}", stub.host), "alice", "s3cret");
    *stub.state.auth.lock().unwrap() = Auth::Bearer {
        authorization: basic(&good),
        token: "t0k3n".into(),
    };
    let tmp = tempfile::tempdir().unwrap();
    let images = images(tmp.path());
    let reference = stub.reference("private/app", "1");

    let err = images
        .ensure(&reference, PullPolicy::Always, &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("failed to fetch anonymous token") && err.contains("401"),
        "{err}"
    );
    let wrong = creds(&stub.host, "alice", "wrong");
    let err = images
        .ensure(&reference, PullPolicy::Always, &[wrong])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("failed to fetch oauth token"), "{err}");
    assert!(err.contains("unauthorized: invalid username or password"), "{err}");

    // Credentials of another registry are not sent; the right ones are.
    let unrelated = creds("other.example", "alice", "s3cret");
    let pulled = images
        .ensure(&reference, PullPolicy::Always, &[unrelated, good])
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(pulled.layers[1].join("app/run")).unwrap(), "v1");
}

#[tokio::test]
async fn basic_auth_and_redirects_to_storage() {
    let stub = Stub::start().await;
    stub.push("app", "1", &app_image("v1"));
    let good = creds(&stub.host, "bob", "pw");
    *stub.state.auth.lock().unwrap() = Auth::Basic {
        authorization: basic(&good),
    };
    *stub.state.redirect_blobs.lock().unwrap() = true;
    let tmp = tempfile::tempdir().unwrap();
    let images = images(tmp.path());
    let reference = stub.reference("app", "1");
    let err = images
        .ensure(&reference, PullPolicy::Always, &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pull access denied") && err.contains("unauthorized: authentication required"),
        "{err}"
    );
    // The storage behind the redirect refuses requests that carry the registry's
    // credentials, so this passes only if they were left out.
    let pulled = images.ensure(&reference, PullPolicy::Always, &[good]).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(pulled.layers[0].join("bin/hello")).unwrap(),
        "hello"
    );
}

#[tokio::test]
async fn garbage_collection_removes_unused_images_and_keeps_shared_layers() {
    let stub = Stub::start().await;
    let used = app_image("used");
    let unused = app_image("unused");
    stub.push("app", "used", &used);
    stub.push("app", "unused", &unused);
    let tmp = tempfile::tempdir().unwrap();
    let mut config = ImagesConfig::new(tmp.path());
    config.gc = GcThresholds {
        high_percent: 100,
        low_percent: 0,
    };
    let kept = NodeImages::new(config.clone()).unwrap();
    let used_image = kept
        .ensure(&stub.reference("app", "used"), PullPolicy::Always, &[])
        .await
        .unwrap();
    let unused_image = kept
        .ensure(&stub.reference("app", "unused"), PullPolicy::Always, &[])
        .await
        .unwrap();

    // At 100% the collector never runs.
    kept.collect_garbage(&[]);
    assert!(unused_image.layers[1].exists());

    // At 0% any disk counts as full: every unused image goes.
    config.gc = GcThresholds {
        high_percent: 0,
        low_percent: 0,
    };
    let collecting = NodeImages::new(config).unwrap();
    collecting.collect_garbage(std::slice::from_ref(&used_image.config_digest));
    assert!(!unused_image.layers[1].exists());
    assert!(
        unused_image.layers[0].exists(),
        "the base layer is shared with the used image"
    );
    assert!(used_image.layers.iter().all(|l| l.exists()));
    let err = collecting
        .ensure(&stub.reference("app", "unused"), PullPolicy::Never, &[])
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "ErrImageNeverPull");
    collecting
        .ensure(&stub.reference("app", "used"), PullPolicy::Never, &[])
        .await
        .unwrap();
}
