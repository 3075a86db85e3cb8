use super::*;
use crate::image::local_image;
use crate::image::manifest::host_platform;
use crate::image::testing::{LayerTar, TestImage};

fn base_layer() -> Vec<u8> {
    LayerTar::new().dir("bin/").file("bin/hello", "hello").tar()
}

fn app_layer(content: &str) -> Vec<u8> {
    LayerTar::new().dir("app/").file("app/run", content).tar()
}

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

#[test]
fn an_oci_layout_imports_under_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("images")).unwrap();
    let image = TestImage::new(&[base_layer(), app_layer("v1")], &["/app/run"]);
    let layout = tmp.path().join("layout");
    image.write_layout(&layout, "registry.example:5000/team/app:1.0");

    let imported = import(&store, &layout, None, &host_platform()).unwrap();
    assert_eq!(
        imported,
        [Imported {
            reference: "registry.example:5000/team/app:1.0".into(),
            image_id: format!("registry.example:5000/team/app@{}", image.manifest_digest()),
            config_digest: image.config_digest().to_string(),
        }]
    );
    let found = local_image(&store, &reference("registry.example:5000/team/app:1.0"))
        .unwrap()
        .unwrap();
    assert_eq!(found.config.cmd, ["/app/run"]);
    assert_eq!(found.layers.len(), 2);
    assert_eq!(
        std::fs::read_to_string(found.layers[0].join("bin/hello")).unwrap(),
        "hello"
    );
    assert_eq!(std::fs::read_to_string(found.layers[1].join("app/run")).unwrap(), "v1");
}

#[test]
fn a_layout_named_only_by_tag_needs_a_name() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("images")).unwrap();
    let image = TestImage::new(&[base_layer()], &["/bin/hello"]);
    let layout = tmp.path().join("layout");
    image.write_layout(&layout, "latest");
    let err = import(&store, &layout, None, &host_platform()).unwrap_err();
    assert!(err.contains("--name"), "{err}");
    let imported = import(&store, &layout, Some("hello"), &host_platform()).unwrap();
    assert_eq!(imported[0].reference, "docker.io/library/hello:latest");
    assert!(local_image(&store, &reference("hello")).unwrap().is_some());
}

#[test]
fn a_tampered_layer_in_a_layout_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("images")).unwrap();
    let image = TestImage::new(&[base_layer()], &["/bin/hello"]);
    let layout = tmp.path().join("layout");
    image.write_layout(&layout, "example.com/app:1");
    let layer_digest = Digest::of(&image.layers[0]);
    let tampered = crate::image::testing::gzip(&app_layer("evil"));
    std::fs::write(layout.join("blobs/sha256").join(layer_digest.hex()), &tampered).unwrap();
    let err = import(&store, &layout, None, &host_platform()).unwrap_err();
    assert!(
        err.contains(layer_digest.as_str()) && err.contains(Digest::of(&tampered).as_str()),
        "{err}"
    );
    assert!(local_image(&store, &reference("example.com/app:1")).unwrap().is_none());
}

/// A `docker save` archive in the legacy layout: `<id>/layer.tar`, `<hex>.json`,
/// `manifest.json`.
fn docker_save_archive(tars: &[Vec<u8>], repo_tags: &[&str]) -> (Vec<u8>, Digest) {
    let diff_ids: Vec<String> = tars.iter().map(|t| Digest::of(t).to_string()).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/hello"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_digest = Digest::of(&config);
    let layers: Vec<String> = (0..tars.len()).map(|i| format!("layer{i}/layer.tar")).collect();
    let manifest = serde_json::json!([{
        "Config": format!("{}.json", config_digest.hex()),
        "RepoTags": repo_tags,
        "Layers": layers,
    }]);
    let mut archive = LayerTar::new();
    archive.file(
        &format!("{}.json", config_digest.hex()),
        std::str::from_utf8(&config).unwrap(),
    );
    for (i, t) in tars.iter().enumerate() {
        // Layer tars hold only text here, so they pass as a string.
        archive.dir(&format!("layer{i}/"));
        archive.file(&format!("layer{i}/layer.tar"), &String::from_utf8(t.clone()).unwrap());
    }
    archive.file("manifest.json", &manifest.to_string());
    (archive.tar(), config_digest)
}

#[test]
fn a_docker_save_tarball_imports_under_its_repo_tags() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("images")).unwrap();
    let (archive, config_digest) = docker_save_archive(
        &[base_layer(), app_layer("v2")],
        &["busybox:latest", "example.com/tools:2"],
    );
    let path = tmp.path().join("saved.tar");
    std::fs::write(&path, archive).unwrap();

    let imported = import(&store, &path, None, &host_platform()).unwrap();
    let names: Vec<&str> = imported.iter().map(|i| i.reference.as_str()).collect();
    assert_eq!(names, ["docker.io/library/busybox:latest", "example.com/tools:2"]);
    assert!(imported.iter().all(|i| i.config_digest == config_digest.as_str()));
    let found = local_image(&store, &reference("busybox")).unwrap().unwrap();
    assert_eq!(found.image_id, imported[0].image_id);
    assert_eq!(std::fs::read_to_string(found.layers[1].join("app/run")).unwrap(), "v2");
    // The extraction is gone.
    assert_eq!(std::fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn removing_a_name_keeps_layers_other_images_share() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("images")).unwrap();
    let one = TestImage::new(&[base_layer(), app_layer("one")], &["/app/run"]);
    let two = TestImage::new(&[base_layer(), app_layer("two")], &["/app/run"]);
    one.write_layout(&tmp.path().join("one"), "example.com/one:1");
    two.write_layout(&tmp.path().join("two"), "example.com/two:1");
    import(&store, &tmp.path().join("one"), None, &host_platform()).unwrap();
    import(&store, &tmp.path().join("two"), None, &host_platform()).unwrap();
    let one_image = local_image(&store, &reference("example.com/one:1")).unwrap().unwrap();

    let removed = store.remove_ref("example.com/one:1").unwrap().unwrap();
    assert_eq!(removed.images, [one.config_digest().to_string()]);
    assert!(one_image.layers[0].exists(), "the shared base layer stays");
    assert!(!one_image.layers[1].exists(), "the layer only `one` had is gone");
    assert!(!store.blob_path(&one.config_digest()).exists());
    assert!(local_image(&store, &reference("example.com/two:1")).unwrap().is_some());
    assert_eq!(store.remove_ref("example.com/one:1").unwrap(), None);
}

#[test]
fn the_test_kits_docker_archive_and_layout_import() {
    let image = berth_testkit::oci::ImageBuilder::new()
        .contents("/bin/tool", "tool", 0o755)
        .layer()
        .symlink("/bin/alias", "tool")
        .layer()
        .cmd(&["/bin/tool"])
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("images")).unwrap();
    let archive = tmp.path().join("saved.tar");
    image.write_docker_archive(&archive, "example.com/tool:1").unwrap();
    let imported = import(&store, &archive, None, &host_platform()).unwrap();
    assert_eq!(imported[0].reference, "example.com/tool:1");
    assert_eq!(imported[0].config_digest, image.config_digest());

    let layout = tmp.path().join("layout");
    image.write_layout(&layout, "2").unwrap();
    let imported = import(&store, &layout, Some("example.com/tool:2"), &host_platform()).unwrap();
    assert_eq!(
        imported[0].image_id,
        format!("example.com/tool@{}", image.manifest_digest())
    );
    let found = local_image(&store, &reference("example.com/tool:2")).unwrap().unwrap();
    assert_eq!(
        std::fs::read_link(found.layers[1].join("bin/alias")).unwrap(),
        Path::new("tool")
    );
}
