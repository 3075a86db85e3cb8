//! A container's OCI bundle and its root filesystem.
//!
//! ```text
//! state_dir/oci/bundles/<id>/config.json
//!                           rootfs/          the overlay's mount point (root.path)
//!                           upper/ work/     the container's own writable layer
//!                           runc.log         runc's log (JSON lines)
//!                           container.pid    the container's init pid, from runc
//! ```
//!
//! The overlay stacks the image's layers read-only (`lowerdir` lists the top layer
//! first) under the container's `upper/`; the layers are shared with every other
//! container of the image and never written.

use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

use super::super::RuntimeError;
use super::config::Spec;

/// mount(2) copies at most a page of options.
const MOUNT_DATA_MAX: usize = 4096;

#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
}

impl Bundle {
    pub fn new(bundles_dir: &Path, id: &str) -> Bundle {
        Bundle {
            dir: bundles_dir.join(id),
        }
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Makes the directories and mounts the overlay of `layers` (lowest first) on
    /// `rootfs/`. On error nothing stays mounted (the caller removes the directory).
    pub fn create(&self, layers: &[PathBuf]) -> Result<(), RuntimeError> {
        for sub in ["rootfs", "upper", "work"] {
            let dir = self.dir.join(sub);
            std::fs::create_dir_all(&dir).map_err(|source| RuntimeError::StateDir {
                what: "cannot create the bundle directory",
                path: dir,
                source,
            })?;
        }
        let options = overlay_options(layers, &self.dir.join("upper"), &self.dir.join("work"));
        if options.len() >= MOUNT_DATA_MAX {
            return Err(RuntimeError::StateDir {
                what: "the overlay options of this many layers exceed what mount(2) takes, for",
                path: self.rootfs(),
                source: std::io::Error::other(format!(
                    "{} layers, {} bytes of options (at most {})",
                    layers.len(),
                    options.len(),
                    MOUNT_DATA_MAX - 1
                )),
            });
        }
        let options = std::ffi::CString::new(options).map_err(|_| RuntimeError::StateDir {
            what: "a layer path holds a NUL byte",
            path: self.dir.clone(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })?;
        rustix::mount::mount(
            "overlay",
            self.rootfs(),
            "overlay",
            MountFlags::empty(),
            options.as_c_str(),
        )
        .map_err(|errno| RuntimeError::StateDir {
            what: "cannot mount the container's root filesystem (overlay) on",
            path: self.rootfs(),
            source: errno.into(),
        })
    }

    pub fn write_config(&self, spec: &Spec) -> Result<(), RuntimeError> {
        let path = self.dir.join("config.json");
        let bytes = serde_json::to_vec_pretty(spec).expect("a config serializes");
        std::fs::write(&path, bytes).map_err(|source| RuntimeError::StateDir {
            what: "cannot write the container's config",
            path,
            source,
        })
    }

    /// Unmounts the root filesystem (if mounted) and removes the bundle directory;
    /// a bundle already gone is fine.
    pub fn destroy(&self) -> Result<(), RuntimeError> {
        let rootfs = self.rootfs();
        if is_mount_point(&rootfs) {
            let unmounted = rustix::mount::unmount(&rootfs, UnmountFlags::empty()).or_else(|errno| {
                if errno == rustix::io::Errno::BUSY {
                    // Something still has a file open in it (an exec that outlived
                    // the container): detach now, the kernel finishes later.
                    rustix::mount::unmount(&rootfs, UnmountFlags::DETACH)
                } else {
                    Err(errno)
                }
            });
            unmounted.map_err(|errno| RuntimeError::StateDir {
                what: "cannot unmount the container's root filesystem",
                path: rootfs.clone(),
                source: errno.into(),
            })?;
        }
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(RuntimeError::StateDir {
                what: "cannot remove the bundle",
                path: self.dir.clone(),
                source,
            }),
        }
    }
}

/// `lowerdir=TOP:...:BOTTOM,upperdir=U,workdir=W`. A `:` or `,` in a path would
/// need escaping; layer directories are digests, and the state directory is the
/// agent's own.
pub fn overlay_options(layers: &[PathBuf], upper: &Path, work: &Path) -> String {
    let lower: Vec<String> = layers.iter().rev().map(|l| l.display().to_string()).collect();
    format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    )
}

/// Whether `path` is a mount point, from /proc/self/mountinfo (field 5).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = path.display().to_string();
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mount_point| unescape_mountinfo(mount_point) == wanted)
}

/// mountinfo writes space, tab, newline and backslash as octal escapes (`\040`).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(digits) = std::str::from_utf8(&bytes[i + 1..i + 4])
            && let Ok(value) = u8::from_str_radix(digits, 8)
        {
            out.push(value);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowerdir_lists_the_top_layer_first() {
        let layers = [PathBuf::from("/l/base"), PathBuf::from("/l/app")];
        assert_eq!(
            overlay_options(&layers, Path::new("/b/upper"), Path::new("/b/work")),
            "lowerdir=/l/app:/l/base,upperdir=/b/upper,workdir=/b/work"
        );
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert!(is_mount_point(Path::new("/proc")));
        assert!(!is_mount_point(Path::new("/proc/self")));
    }
}
