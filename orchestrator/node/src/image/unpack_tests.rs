use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::image::testing::{LayerTar, gzip, is_root};

fn unpack(dir: &Path, name: &str, tar: &[u8], compressed: bool) -> Result<PathBuf, String> {
    let blob = dir.join(format!("{name}.blob"));
    std::fs::write(&blob, if compressed { gzip(tar) } else { tar.to_vec() }).unwrap();
    let dest = dir.join(name);
    std::fs::create_dir(&dest).unwrap();
    unpack_layer(&blob, &dest, &Digest::of(tar)).map(|_| dest)
}

/// Unmounts the overlay a test mounted, even when the test fails.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn whiteouts_hide_lower_files_and_opaque_dirs_hide_lower_trees() {
    if !is_root() {
        berth_testkit::skip("root (whiteouts are device nodes and trusted.* xattrs)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lower = LayerTar::new()
        .dir("etc/")
        .file("etc/gone", "old")
        .file("etc/kept", "kept")
        .dir("var/")
        .file("var/old", "old")
        .tar();
    let upper = LayerTar::new()
        .dir("etc/")
        .file("etc/.wh.gone", "")
        .dir("var/")
        .file("var/.wh..wh..opq", "")
        .file("var/new", "new")
        .tar();
    let lower = unpack(tmp.path(), "lower", &lower, true).unwrap();
    let upper = unpack(tmp.path(), "upper", &upper, false).unwrap();

    // The markers are overlayfs's own.
    let whiteout = std::fs::symlink_metadata(upper.join("etc/gone")).unwrap();
    assert!(whiteout.file_type().is_char_device());
    assert_eq!(whiteout.rdev(), 0);
    let mut value = [0u8; 4];
    let n = rustix::fs::lgetxattr(upper.join("var"), "trusted.overlay.opaque", &mut value).unwrap();
    assert_eq!(&value[..n], b"y");
    assert!(upper.join("var/new").exists());

    // And overlayfs reads them so: the stack shows what the image means.
    let merged = tmp.path().join("merged");
    std::fs::create_dir(&merged).unwrap();
    let options = format!("lowerdir={}:{}", upper.display(), lower.display());
    let status = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(&merged)
        .status()
        .unwrap();
    if !status.success() {
        berth_testkit::skip("an overlayfs mount over the test's temporary directory");
        return;
    }
    let _mounted = Mounted(merged.clone());
    assert!(!merged.join("etc/gone").exists());
    assert_eq!(std::fs::read_to_string(merged.join("etc/kept")).unwrap(), "kept");
    assert!(!merged.join("var/old").exists());
    assert_eq!(std::fs::read_to_string(merged.join("var/new")).unwrap(), "new");
}

#[test]
fn a_whiteout_does_not_hide_its_own_layers_file() {
    if !is_root() {
        berth_testkit::skip("root (whiteouts are device nodes)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layer = LayerTar::new()
        .file("a", "mine")
        .file(".wh.a", "")
        .file(".wh.b", "")
        .tar();
    let dest = unpack(tmp.path(), "l", &layer, true).unwrap();
    assert_eq!(std::fs::read_to_string(dest.join("a")).unwrap(), "mine");
    assert!(
        std::fs::symlink_metadata(dest.join("b"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn entries_escaping_the_layer_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let parent = LayerTar::new().file("../escaped", "x").tar();
    let err = unpack(tmp.path(), "parent", &parent, false).unwrap_err();
    assert!(err.contains("escapes the layer directory"), "{err}");
    assert!(!tmp.path().join("escaped").exists());

    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let through_symlink = LayerTar::new()
        .link(tar::EntryType::Symlink, "evil", outside.to_str().unwrap())
        .file("evil/planted", "x")
        .tar();
    let err = unpack(tmp.path(), "symlink", &through_symlink, true).unwrap_err();
    assert!(err.contains("passes through a symbolic link"), "{err}");
    assert!(!outside.join("planted").exists());

    let hard = LayerTar::new()
        .link(tar::EntryType::Link, "h", "../../etc/passwd")
        .tar();
    let err = unpack(tmp.path(), "hard", &hard, false).unwrap_err();
    assert!(err.contains("escapes the layer directory"), "{err}");
}

#[test]
fn a_layer_whose_digest_differs_from_its_diff_id_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let layer = LayerTar::new().file("a", "a").tar();
    let blob = tmp.path().join("blob");
    std::fs::write(&blob, gzip(&layer)).unwrap();
    let claimed = Digest::of(b"another layer");
    let err = unpack_layer(&blob, tmp.path(), &claimed).unwrap_err();
    assert!(
        err.contains(claimed.as_str()) && err.contains(Digest::of(&layer).as_str()),
        "{err}"
    );
}

#[test]
fn files_keep_their_kind_mode_owner_and_links() {
    let tmp = tempfile::tempdir().unwrap();
    let (uid, gid) = if is_root() { (1234, 5678) } else { (0, 0) };
    let layer = LayerTar::new()
        .dir("bin/")
        .file_owned("bin/tool", "#!/bin/sh\n", 0o4755, uid, gid)
        .link(tar::EntryType::Symlink, "bin/alias", "tool")
        .link(tar::EntryType::Link, "bin/hard", "bin/tool")
        .link(tar::EntryType::Symlink, "abs", "/etc/passwd")
        .tar();
    let dest = unpack(tmp.path(), "l", &layer, true).unwrap();
    let tool = std::fs::metadata(dest.join("bin/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o4755);
    if is_root() {
        assert_eq!((tool.uid(), tool.gid()), (1234, 5678));
    }
    assert_eq!(tool.mtime(), 1_700_000_000);
    assert_eq!(std::fs::read_link(dest.join("bin/alias")).unwrap(), Path::new("tool"));
    assert_eq!(std::fs::metadata(dest.join("bin/hard")).unwrap().ino(), tool.ino());
    // An absolute symlink is kept as written: it is resolved inside the container.
    assert_eq!(std::fs::read_link(dest.join("abs")).unwrap(), Path::new("/etc/passwd"));
}
