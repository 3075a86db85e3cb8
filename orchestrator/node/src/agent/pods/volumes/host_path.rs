//! A `hostPath` volume's `type` check, as the kubelet makes it before the pod
//! starts: `DirectoryOrCreate` and `FileOrCreate` make what is missing (a directory
//! 0755 with its parents; a file 0644, whose parent must exist), the other types
//! only look; "" checks nothing. A failure holds the pod with the kubelet's message
//! (`hostPath type check failed: /x is not a directory`).

use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Checks (and for the `...OrCreate` types, makes) `path` as `kind` says.
pub(crate) fn check(path: &Path, kind: &str) -> Result<(), String> {
    let failed = |what: &str| Err(format!("hostPath type check failed: {} is not {what}", path.display()));
    let meta = std::fs::metadata(path);
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" | "Directory" => {
            if meta.is_err() && kind == "DirectoryOrCreate" {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(path)
                    .map_err(|e| format!("hostPath type check failed: cannot create {}: {e}", path.display()))?;
            }
            match std::fs::metadata(path) {
                Ok(m) if m.is_dir() => Ok(()),
                _ => failed("a directory"),
            }
        }
        "FileOrCreate" | "File" => {
            if meta.is_err() && kind == "FileOrCreate" {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644)
                    .open(path)
                    .map_err(|e| format!("hostPath type check failed: cannot create {}: {e}", path.display()))?;
            }
            match std::fs::metadata(path) {
                Ok(m) if m.is_file() => Ok(()),
                _ => failed("a file"),
            }
        }
        "Socket" => match meta {
            Ok(m) if m.file_type().is_socket() => Ok(()),
            _ => failed("a socket file"),
        },
        "CharDevice" => match meta {
            Ok(m) if m.file_type().is_char_device() => Ok(()),
            _ => failed("a character device"),
        },
        "BlockDevice" => match meta {
            Ok(m) if m.file_type().is_block_device() => Ok(()),
            _ => failed("a block device"),
        },
        other => Err(format!("hostPath type check failed: unknown type {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::atomic_writer::tests::tempdir;
    use super::*;

    #[test]
    fn each_type_checks_what_is_there_and_the_create_types_make_it() {
        let tmp = tempdir();
        let dir = tmp.join("a/b");
        let file = tmp.join("f");
        check(&dir, "DirectoryOrCreate").unwrap();
        assert!(dir.is_dir());
        check(&dir, "Directory").unwrap();
        check(&file, "FileOrCreate").unwrap();
        assert!(file.is_file());
        check(&file, "File").unwrap();
        let missing = tmp.join("missing");
        assert_eq!(
            check(&missing, "Directory"),
            Err(format!(
                "hostPath type check failed: {} is not a directory",
                missing.display()
            ))
        );
        assert_eq!(
            check(&dir, "File"),
            Err(format!("hostPath type check failed: {} is not a file", dir.display()))
        );
        assert_eq!(
            check(&file, "Socket"),
            Err(format!(
                "hostPath type check failed: {} is not a socket file",
                file.display()
            ))
        );
        assert_eq!(
            check(&file, "BlockDevice"),
            Err(format!(
                "hostPath type check failed: {} is not a block device",
                file.display()
            ))
        );
        check(Path::new("/dev/null"), "CharDevice").unwrap();
        assert!(check(&tmp.join("no/parent/file"), "FileOrCreate").is_err());
        check(&missing, "").unwrap();
        assert!(!missing.exists());
        let socket = tmp.join("s");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        check(&socket, "Socket").unwrap();
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
