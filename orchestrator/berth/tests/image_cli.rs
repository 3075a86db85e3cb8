//! `berth image import|ls|rm` through the binary, on a data directory of its own: what
//! an operator of an air-gapped node types.

use std::process::{Command, Output};

use berth_testkit::oci::ImageBuilder;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

fn berth_image(args: &[&str], data_dir: &std::path::Path) -> Output {
    Command::new(BERTH)
        .arg("image")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_docker_save_tarball_is_imported_listed_and_removed() {
    let image = ImageBuilder::new()
        .contents("/bin/tool", "tool", 0o755)
        .layer()
        .cmd(&["/bin/tool"])
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("tool.tar");
    image.write_docker_archive(&archive, "registry.lan/tool:1").unwrap();
    let data_dir = tmp.path().join("n1.agent");

    let imported = berth_image(&["import", archive.to_str().unwrap()], &data_dir);
    assert!(imported.status.success(), "{imported:?}");
    assert!(stdout(&imported).starts_with("Loaded image: registry.lan/tool:1 (registry.lan/tool@sha256:"));

    let listed = berth_image(&["ls"], &data_dir);
    let lines: Vec<Vec<String>> = stdout(&listed)
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[1][..2], ["registry.lan/tool", "1"]);
    let short_id: String = image.config_digest()["sha256:".len()..][..13].to_string();
    assert_eq!(lines[1][3], short_id);

    let removed = berth_image(&["rm", "registry.lan/tool:1"], &data_dir);
    assert_eq!(stdout(&removed), "Deleted: registry.lan/tool:1\n");
    assert_eq!(stdout(&berth_image(&["ls"], &data_dir)).lines().count(), 1);
    assert!(
        std::fs::read_dir(data_dir.join("images/layers/sha256"))
            .unwrap()
            .next()
            .is_none()
    );

    let again = berth_image(&["rm", "registry.lan/tool:1"], &data_dir);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no such image"));
}

#[test]
fn a_bad_source_or_store_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("n1.agent");
    let listed = berth_image(&["ls"], &data_dir);
    assert_eq!(listed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&listed.stderr).contains("no image store"));

    let not_an_image = tmp.path().join("notes.txt");
    std::fs::write(&not_an_image, "hello").unwrap();
    let imported = berth_image(&["import", not_an_image.to_str().unwrap()], &data_dir);
    assert_eq!(imported.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&imported.stderr).contains("not a readable tar archive"),
        "{imported:?}"
    );
}
