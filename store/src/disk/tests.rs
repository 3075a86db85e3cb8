use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::power_cut::{SECTOR_BYTES, Tear};
use super::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_real_disk_makes_private_files_and_directories() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a/b");
    OsDisk.create_dir_all(&dir).unwrap();
    write_atomically(&OsDisk, &dir, "f", b"hello").unwrap();
    assert_eq!(mode(&root.path().join("a")), 0o700);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("f")), 0o600);
    assert_eq!(read_file(&OsDisk, &dir.join("f")).unwrap(), b"hello");
    assert_eq!(OsDisk.list(&dir).unwrap(), vec!["f".to_string()]);

    // What an earlier version left (or sled made) is brought down to the same modes.
    std::fs::set_permissions(dir.join("f"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(tighten_modes(&root.path().join("a")).unwrap(), 2);
    assert_eq!((mode(&dir), mode(&dir.join("f"))), (0o700, 0o600));
    assert_eq!(tighten_modes(&root.path().join("a")).unwrap(), 0);
}

#[test]
fn a_power_cut_keeps_what_was_synced_and_nothing_else() {
    let disk = PowerCutDisk::new();
    let dir = Path::new("/d");
    disk.create_dir_all(dir).unwrap();
    let synced = disk.create(&dir.join("synced")).unwrap();
    synced.write_all_at(b"kept", 0).unwrap();
    synced.sync_data().unwrap();
    disk.sync_dir(dir).unwrap();
    synced.write_all_at(b"lost", 4).unwrap();
    let unnamed = disk.create(&dir.join("never-named")).unwrap();
    unnamed.write_all_at(b"x", 0).unwrap();
    unnamed.sync_data().unwrap();
    assert_eq!(disk.unsynced_writes(), 1);

    disk.cut_power(Tear::default());
    assert_eq!(disk.contents(&dir.join("synced")).unwrap(), b"kept");
    assert!(
        !disk.exists(&dir.join("never-named")),
        "a name is durable only once its directory is synced"
    );
    assert!(
        synced.size_bytes().is_err(),
        "a file opened before the cut is gone with the process"
    );

    // write_atomically leaves the old or the new contents, whatever it reached.
    write_atomically(&disk, dir, "synced", b"new").unwrap();
    disk.cut_power(Tear::default());
    assert_eq!(disk.contents(&dir.join("synced")).unwrap(), b"new");
}

#[test]
fn a_torn_write_reaches_the_disk_in_whole_sectors() {
    let disk = PowerCutDisk::new();
    let dir = Path::new("/d");
    disk.create_dir_all(dir).unwrap();
    let file = disk.create(&dir.join("f")).unwrap();
    disk.sync_dir(dir).unwrap();
    file.write_all_at(&[1; 100], 0).unwrap();
    file.write_all_at(&[2; 2000], 100).unwrap();
    file.write_all_at(&[3; 10], 2100).unwrap();
    disk.cut_power(Tear {
        whole_writes: 1,
        sectors: 2,
    });
    let data = disk.contents(&dir.join("f")).unwrap();
    assert_eq!(
        data.len() as u64,
        2 * SECTOR_BYTES,
        "the second write, torn after its second sector"
    );
    assert!(data[..100].iter().all(|b| *b == 1));
    assert!(data[100..].iter().all(|b| *b == 2));
}
