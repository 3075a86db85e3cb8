use std::io::Read;

use serde_json::Value;

use super::*;

/// (path, kind, mode, link target, contents) of each tar entry, in order.
fn entries(tar: &[u8]) -> Vec<(String, char, u32, String, Vec<u8>)> {
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let kind = match header.entry_type() {
                tar::EntryType::Directory => 'd',
                tar::EntryType::Symlink => 'l',
                tar::EntryType::Link => 'h',
                tar::EntryType::Regular => 'f',
                other => panic!("unexpected entry type {other:?}"),
            };
            assert_eq!(header.mtime().unwrap(), 0);
            assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
            let target = entry
                .link_name()
                .unwrap()
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            let path = entry.path().unwrap().display().to_string();
            let mut contents = Vec::new();
            entry.read_to_end(&mut contents).unwrap();
            (path, kind, header.mode().unwrap(), target, contents)
        })
        .collect()
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn two_layers() -> ImageBuilder {
    ImageBuilder::new()
        .contents("/etc/motd", "hello\n", 0o644)
        .dir("/var/cache/app", 0o750)
        .contents("/var/cache/app/old", "stale", 0o600)
        .symlink("/usr/bin/tool", "../../bin/tool")
        .layer()
        .whiteout("/etc/motd")
        .opaque("/var/cache/app")
        .contents("/var/cache/app/new", "fresh", 0o600)
        .hardlink("/etc/motd-copy", "/var/cache/app/new")
        .config(&["/bin/app"], &["--serve"], &["A=1", "B=2"], "/srv", "1000:1000")
}

#[test]
fn layers_hold_their_entries_after_their_parents_with_whiteouts_named_as_oci_says() {
    let image = two_layers().build().unwrap();
    let lower = entries(image.layer_tar(0));
    let lower_summary: Vec<(&str, char, u32, &str)> = lower
        .iter()
        .map(|(path, kind, mode, target, _)| (path.as_str(), *kind, *mode, target.as_str()))
        .collect();
    assert_eq!(
        lower_summary,
        [
            ("etc/", 'd', 0o755, ""),
            ("etc/motd", 'f', 0o644, ""),
            ("var/", 'd', 0o755, ""),
            ("var/cache/", 'd', 0o755, ""),
            ("var/cache/app/", 'd', 0o750, ""),
            ("var/cache/app/old", 'f', 0o600, ""),
            ("usr/", 'd', 0o755, ""),
            ("usr/bin/", 'd', 0o755, ""),
            ("usr/bin/tool", 'l', 0o777, "../../bin/tool"),
        ]
    );
    assert_eq!(lower[1].4, b"hello\n");

    let upper: Vec<(String, char)> = entries(image.layer_tar(1))
        .into_iter()
        .map(|(path, kind, ..)| (path, kind))
        .collect();
    let upper: Vec<(&str, char)> = upper.iter().map(|(p, k)| (p.as_str(), *k)).collect();
    assert_eq!(
        upper,
        [
            ("etc/", 'd'),
            ("etc/.wh.motd", 'f'),
            ("var/", 'd'),
            ("var/cache/", 'd'),
            ("var/cache/app/", 'd'),
            ("var/cache/app/.wh..wh..opq", 'f'),
            ("var/cache/app/new", 'f'),
            ("etc/motd-copy", 'h'),
        ]
    );
}

#[test]
fn the_config_and_manifest_describe_the_layers_by_digest() {
    let image = two_layers().build().unwrap();
    let config = json(image.config());
    assert_eq!(config["os"], "linux");
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/bin/app"]));
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["--serve"]));
    assert_eq!(config["config"]["Env"], serde_json::json!(["A=1", "B=2"]));
    assert_eq!(config["config"]["WorkingDir"], "/srv");
    assert_eq!(config["config"]["User"], "1000:1000");
    let diff_ids: Vec<String> = (0..2).map(|n| sha256_digest(image.layer_tar(n))).collect();
    assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!(diff_ids));
    assert_eq!(image.diff_ids(), diff_ids);

    let manifest = json(image.manifest());
    assert_eq!(manifest["mediaType"], MEDIA_TYPE_OCI_MANIFEST);
    assert_eq!(manifest["config"]["digest"], image.config_digest());
    assert_eq!(manifest["config"]["size"], image.config().len());
    let blobs = image.blobs();
    for (n, layer) in manifest["layers"].as_array().unwrap().iter().enumerate() {
        assert_eq!(layer["mediaType"], MEDIA_TYPE_OCI_LAYER_GZIP);
        let blob = blobs.iter().find(|b| b.digest == layer["digest"]).unwrap();
        assert_eq!(layer["size"], blob.bytes.len());
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(blob.bytes.as_slice())
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(tar, image.layer_tar(n), "layer {n} is its tar, gzipped");
    }
    assert_eq!(image.manifest_digest(), sha256_digest(image.manifest()));
    assert_eq!(
        two_layers().build().unwrap().manifest_digest(),
        image.manifest_digest(),
        "deterministic"
    );
}

#[test]
fn an_image_without_entrypoint_or_cmd_leaves_them_unset_and_docker_media_types_are_available() {
    let image = ImageBuilder::new()
        .contents("/a", "a", 0o644)
        .compression(LayerCompression::None)
        .format(ManifestFormat::Docker)
        .build()
        .unwrap();
    let config = json(image.config());
    assert!(config["config"].get("Entrypoint").is_none());
    assert!(config["config"].get("Cmd").is_none());
    let manifest = json(image.manifest());
    assert_eq!(manifest["mediaType"], MEDIA_TYPE_DOCKER_MANIFEST);
    assert_eq!(manifest["config"]["mediaType"], MEDIA_TYPE_DOCKER_CONFIG);
    assert_eq!(manifest["layers"][0]["mediaType"], MEDIA_TYPE_DOCKER_LAYER);
    assert_eq!(
        manifest["layers"][0]["digest"],
        image.diff_ids()[0],
        "an uncompressed layer is its tar"
    );
}

#[test]
fn a_layout_holds_each_tag_once_and_every_blob_by_digest() {
    let dir = tempfile::tempdir().unwrap();
    let first = two_layers().write_layout(dir.path(), "v1").unwrap();
    let second = ImageBuilder::new()
        .contents("/b", "b", 0o644)
        .write_layout(dir.path(), "v2")
        .unwrap();
    let replaced = ImageBuilder::new()
        .contents("/c", "c", 0o644)
        .write_layout(dir.path(), "v2")
        .unwrap();

    assert_eq!(
        json(&std::fs::read(dir.path().join("oci-layout")).unwrap()),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );
    let index = json(&std::fs::read(dir.path().join("index.json")).unwrap());
    let tagged: Vec<(&str, &str)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["annotations"][REF_NAME_ANNOTATION].as_str().unwrap(),
                m["digest"].as_str().unwrap(),
            )
        })
        .collect();
    let (first_digest, replaced_digest) = (first.manifest_digest(), replaced.manifest_digest());
    assert_eq!(
        tagged,
        [("v1", first_digest.as_str()), ("v2", replaced_digest.as_str())]
    );
    assert_ne!(second.manifest_digest(), replaced.manifest_digest());

    for image in [&first, &replaced] {
        let mut digests = vec![image.manifest_digest(), image.config_digest()];
        digests.extend(image.layer_digests());
        for digest in digests {
            let blob = std::fs::read(dir.path().join("blobs/sha256").join(digest_hex(&digest))).unwrap();
            assert_eq!(sha256_digest(&blob), digest);
        }
    }
    let (digest, manifest, _) = image::layout_manifest(dir.path(), "v1").unwrap();
    assert_eq!(
        (digest, manifest["layers"].as_array().unwrap().len()),
        (first_digest, 2)
    );
    assert!(image::layout_manifest(dir.path(), "v3").is_err());
    assert!(
        image::layout_manifest(dir.path(), "").is_err(),
        "two images, no tag: ambiguous"
    );
}

#[test]
fn a_docker_archive_lists_config_and_uncompressed_layers_in_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let image = two_layers().build().unwrap();
    let path = dir.path().join("image.tar");
    image.write_docker_archive(&path, "example.com/app:1.0").unwrap();

    let files = entries(&std::fs::read(&path).unwrap());
    let file = |name: &str| {
        files
            .iter()
            .find(|(path, ..)| path == name)
            .map(|entry| entry.4.clone())
    };
    let manifest = json(&file("manifest.json").unwrap());
    let config_name = manifest[0]["Config"].as_str().unwrap();
    assert_eq!(file(config_name).unwrap(), image.config());
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["example.com/app:1.0"]));
    let layers = manifest[0]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for (n, layer) in layers.iter().enumerate() {
        assert_eq!(file(layer.as_str().unwrap()).unwrap(), image.layer_tar(n));
    }
    let repositories = json(&file("repositories").unwrap());
    assert_eq!(repositories["example.com/app"]["1.0"], digest_hex(&image.diff_ids()[1]));
}

#[test]
fn a_missing_host_file_is_an_error_naming_it() {
    let error = ImageBuilder::new()
        .file("/bin/app", "/nonexistent/app", 0o755)
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("/nonexistent/app"), "{error}");
}

#[test]
fn the_busybox_image_links_its_applets_and_knows_its_users() {
    let Some(busybox) = static_busybox() else { return };
    let builder = busybox_image_from(&busybox);
    let image = builder.build().unwrap();
    assert_eq!(image.diff_ids().len(), 1, "one layer, closed");
    let files = entries(image.layer_tar(0));
    let find = |name: &str| files.iter().find(|(path, ..)| path == name).unwrap();
    assert_eq!(find("bin/busybox").2, 0o755);
    for applet in ["sh", "wget", "nc", "id", "yes"] {
        assert_eq!(find(&format!("bin/{applet}")).3, "busybox");
    }
    let passwd = String::from_utf8(find("etc/passwd").4.clone()).unwrap();
    assert!(passwd.contains("nobody:x:65534:65534:"), "{passwd}");
    assert!(passwd.contains(":1000:1000:"), "{passwd}");
    assert_eq!(find("tmp/").2, 0o1777);
    let config = json(image.config());
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["sh"]));

    let extended = busybox_image_from(&busybox)
        .contents("/app/run.sh", "echo hi", 0o755)
        .build()
        .unwrap();
    assert_eq!(extended.diff_ids().len(), 2, "what a test adds is a second layer");
}

/// The host's static busybox; without one, `None` on a developer's machine and a
/// failure under `CI=true`, as the test kit's `skip` does (this crate may not use the
/// test kit, which is built on it).
pub(crate) fn static_busybox() -> Option<std::path::PathBuf> {
    let found = busybox_binary();
    if found.is_none() {
        let note = "a static busybox (Debian's busybox-static; scripts/test.sh installs it)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI lacks {note}");
        eprintln!("skipping: this host lacks {note}");
    }
    found
}
