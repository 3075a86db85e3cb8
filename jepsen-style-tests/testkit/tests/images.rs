//! The test images and the test registry against the tools of record: what the
//! registry serves back after a push, and what skopeo and umoci make of the layouts
//! and archives (the same readers containerd's and Docker's code paths use).

use std::path::Path;
use std::process::Command;

use berth_testkit::oci::{self, ImageBuilder, busybox_image, sha256_digest};
use berth_testkit::registry::{self, Registry};
use serde_json::Value;

/// `tool args…`'s stdout, or `None` after a skip when the tool is missing.
fn run_tool(tool: &str, args: &[&str]) -> Option<String> {
    let output = match Command::new(tool).args(args).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            berth_testkit::skip(&format!("{tool} (scripts/test.sh installs it)"));
            return None;
        }
        Err(e) => panic!("running {tool}: {e}"),
    };
    assert!(
        output.status.success(),
        "{tool} {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8(output.stdout).unwrap())
}

fn json(text: &[u8]) -> Value {
    serde_json::from_slice(text).unwrap()
}

#[test]
fn a_pushed_busybox_image_is_fetched_back_by_tag_and_by_digest() {
    let Some(registry) = Registry::start_or_skip() else {
        return;
    };
    let Some(builder) = busybox_image() else { return };
    let image = builder.build().unwrap();

    let digest = registry.push(&image, "library/busybox", "1.36").unwrap();
    assert_eq!(digest, image.manifest_digest());
    assert_eq!(registry.tags("library/busybox").unwrap(), ["1.36"]);

    for reference in ["1.36", digest.as_str()] {
        let (media_type, manifest) = registry.fetch_manifest("library/busybox", reference).unwrap();
        assert_eq!(media_type, oci::MEDIA_TYPE_OCI_MANIFEST);
        assert_eq!(manifest, image.manifest(), "{reference}");
    }
    let manifest = json(image.manifest());
    let config = registry
        .fetch_blob("library/busybox", manifest["config"]["digest"].as_str().unwrap())
        .unwrap();
    assert_eq!(config, image.config());
    let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap();
    assert!(!registry.fetch_blob("library/busybox", layer_digest).unwrap().is_empty());

    // What a puller sees for what is not there: the registry's own error codes.
    let missing = registry
        .request("GET", "/v2/library/busybox/manifests/nope", &[], &[])
        .unwrap();
    assert_eq!(missing.status, 404);
    assert!(
        missing.body_text().contains("MANIFEST_UNKNOWN"),
        "{}",
        missing.body_text()
    );
    let unknown_blob = registry
        .request(
            "GET",
            &format!("/v2/library/busybox/blobs/{}", sha256_digest(b"absent")),
            &[],
            &[],
        )
        .unwrap();
    assert_eq!(unknown_blob.status, 404);
}

#[test]
fn a_layout_is_pushed_as_written_and_an_image_may_have_several_tags() {
    let Some(registry) = Registry::start_or_skip() else {
        return;
    };
    let layout = tempfile::tempdir().unwrap();
    let app = ImageBuilder::new()
        .contents("/app", "v1", 0o755)
        .layer()
        .contents("/data/x", "x", 0o644)
        .entrypoint(&["/app"])
        .write_layout(layout.path(), "v1")
        .unwrap();
    ImageBuilder::new()
        .contents("/app", "v2", 0o755)
        .write_layout(layout.path(), "v2")
        .unwrap();

    let digest = registry.push_layout(layout.path(), "team/app", "v1").unwrap();
    assert_eq!(digest, app.manifest_digest());
    assert_eq!(
        registry.push_layout(layout.path(), "team/app", "v1").unwrap(),
        digest,
        "a repeated push is a no-op"
    );
    registry
        .put_manifest("team/app", "stable", app.manifest_media_type(), app.manifest())
        .unwrap();
    let mut tags = registry.tags("team/app").unwrap();
    tags.sort();
    assert_eq!(tags, ["stable", "v1"]);
    assert!(
        registry.push_layout(layout.path(), "team/app", "v3").is_err(),
        "no such tag in the layout"
    );
}

#[test]
fn a_registry_behind_htpasswd_refuses_anonymous_pulls_and_serves_its_user() {
    let Some(registry) = Registry::start_with_htpasswd_or_skip("puller", "s3cret") else {
        return;
    };
    let image = ImageBuilder::new().contents("/hello", "hi", 0o644).build().unwrap();
    registry.push(&image, "private/app", "1").unwrap();
    assert_eq!(registry.credentials(), Some(("puller", "s3cret")));

    let path = "/v2/private/app/manifests/1";
    let anonymous = registry::http::request(registry.host(), "GET", path, &[], &[]).unwrap();
    assert_eq!(anonymous.status, 401);
    let challenge = anonymous.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Basic realm="), "{challenge:?}");

    let basic = |user: &str, password: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };
    let wrong = basic("puller", "wrong");
    let refused = registry::http::request(registry.host(), "GET", path, &[("Authorization", &wrong)], &[]).unwrap();
    assert_eq!(refused.status, 401);

    // The pull secret a pod would name carries the same credentials.
    let config = json(registry.docker_config_json("puller", "s3cret").as_bytes());
    let auth = config["auths"][registry.host()]["auth"].as_str().unwrap();
    let accepted = registry::http::request(
        registry.host(),
        "GET",
        path,
        &[
            ("Authorization", &format!("Basic {auth}")),
            ("Accept", oci::MEDIA_TYPE_OCI_MANIFEST),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(accepted.status, 200, "{}", accepted.body_text());
    assert_eq!(accepted.body, image.manifest());
}

#[test]
fn skopeo_reads_the_layout_the_archive_and_the_pushed_image() {
    let Some(builder) = busybox_image() else { return };
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let image = builder
        .user("1000")
        .working_dir("/tmp")
        .write_layout(&layout, "latest")
        .unwrap();

    let Some(inspected) = run_tool("skopeo", &["inspect", &format!("oci:{}:latest", layout.display())]) else {
        return;
    };
    let inspected = json(inspected.as_bytes());
    assert_eq!(inspected["Digest"], image.manifest_digest());
    assert_eq!(inspected["Layers"], serde_json::json!(image.layer_digests()));
    assert_eq!(inspected["Os"], "linux");

    let archive = dir.path().join("busybox.tar");
    image.write_docker_archive(&archive, "busybox:latest").unwrap();
    let config = run_tool(
        "skopeo",
        &["inspect", "--config", &format!("docker-archive:{}", archive.display())],
    )
    .unwrap();
    let config = json(config.as_bytes());
    assert_eq!(config["config"]["User"], "1000");
    assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!(image.diff_ids()));

    let Some(registry) = Registry::start_or_skip() else {
        return;
    };
    registry.push(&image, "busybox", "latest").unwrap();
    let remote = run_tool(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}", registry.reference("busybox", "latest")),
        ],
    )
    .unwrap();
    assert_eq!(json(remote.as_bytes())["Digest"], image.manifest_digest());
}

/// umoci applies layers as the OCI spec says, whiteouts included: the unpacked
/// rootfs is what an unpacker of berth's must produce from the same image.
#[test]
fn umoci_unpacks_the_layers_with_their_whiteouts_applied() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    ImageBuilder::new()
        .contents("/etc/motd", "hello", 0o644)
        .contents("/etc/keep", "kept", 0o644)
        .contents("/var/cache/old", "stale", 0o644)
        .symlink("/bin/sh", "busybox")
        .layer()
        .whiteout("/etc/motd")
        .opaque("/var/cache")
        .contents("/var/cache/new", "fresh", 0o600)
        .write_layout(&layout, "v1")
        .unwrap();

    let bundle = dir.path().join("bundle");
    let image_arg = format!("{}:v1", layout.display());
    let Some(_) = run_tool(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &image_arg,
            &bundle.display().to_string(),
        ],
    ) else {
        return;
    };
    let rootfs = bundle.join("rootfs");
    let read = |path: &str| std::fs::read_to_string(rootfs.join(path)).ok();
    assert_eq!(read("etc/keep").as_deref(), Some("kept"));
    assert_eq!(read("etc/motd"), None, "whited out");
    assert_eq!(read("var/cache/old"), None, "hidden by the opaque marker");
    assert_eq!(read("var/cache/new").as_deref(), Some("fresh"));
    assert!(!rootfs.join("etc/.wh.motd").exists() && !rootfs.join("var/cache/.wh..wh..opq").exists());
    assert_eq!(std::fs::read_link(rootfs.join("bin/sh")).unwrap(), Path::new("busybox"));
}
