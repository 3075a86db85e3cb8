//! Writes a volume's files so that a container never sees half an update, as the
//! kubelet's atomic writer does:
//!
//! ```text
//!  <volume>/..2026_12_06_07_30_00.123456789/   the files of one version, with their modes
//!  <volume>/..data -> ..2026_12_06_07_30_00.123456789
//!  <volume>/<key>  -> ..data/<key>             what the container reads
//! ```
//!
//! An update writes a new timestamped directory, points a `..data_tmp` link at it
//! and renames that over `..data` (one atomic step), adds the links of new keys,
//! removes those of keys no longer there, and then the old directory. A payload
//! equal to what is there writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::SystemTime;

/// One file of a volume: its content and mode.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct FileProjection {
    pub(crate) data: Vec<u8>,
    pub(crate) mode: u32,
}

/// Sizes only: the content may be a secret.
impl std::fmt::Debug for FileProjection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes, mode {:o}", self.data.len(), self.mode)
    }
}

/// A volume's files by their path relative to the volume.
pub(crate) type Payload = BTreeMap<String, FileProjection>;

const DATA_DIR: &str = "..data";
const DATA_DIR_TMP: &str = "..data_tmp";

/// Makes `dir` hold `payload`; true when it wrote (the payload differed).
pub(crate) fn write(dir: &Path, payload: &Payload) -> io::Result<bool> {
    for path in payload.keys() {
        if let Some(problem) = berth_api::validation::volumes::local_path_problem(path) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path:?}: {problem}"),
            ));
        }
    }
    std::fs::create_dir_all(dir)?;
    let old = std::fs::read_link(dir.join(DATA_DIR))
        .ok()
        .and_then(|target| target.to_str().map(str::to_owned));
    let tops: BTreeSet<&str> = payload.keys().map(|p| p.split('/').next().unwrap_or(p)).collect();
    if let Some(old) = &old
        && read_payload(&dir.join(old)).is_ok_and(|current| current == *payload)
    {
        link_visible(dir, &tops)?;
        return Ok(false);
    }
    let version = new_version_dir(dir)?;
    let new = dir.join(&version);
    for (path, file) in payload {
        let target = new.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &file.data)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(file.mode))?;
    }
    let tmp = dir.join(DATA_DIR_TMP);
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&version, &tmp)?;
    std::fs::rename(&tmp, dir.join(DATA_DIR))?;
    link_visible(dir, &tops)?;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("..") || tops.contains(name) {
            continue;
        }
        // Only what this writer made: a link into ..data.
        if std::fs::read_link(entry.path()).is_ok_and(|t| t.starts_with(DATA_DIR)) {
            std::fs::remove_file(entry.path())?;
        }
    }
    if let Some(old) = old.filter(|old| *old != version) {
        std::fs::remove_dir_all(dir.join(old))?;
    }
    Ok(true)
}

/// The links `<top> -> ..data/<top>` for each top-level name.
fn link_visible(dir: &Path, tops: &BTreeSet<&str>) -> io::Result<()> {
    for top in tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_DIR).join(top), &link)?;
        }
    }
    Ok(())
}

/// The files under `dir` with their modes.
fn read_payload(dir: &Path) -> io::Result<Payload> {
    fn walk(root: &Path, dir: &Path, found: &mut Payload) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                walk(root, &path, found)?;
            } else {
                let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
                let mode = entry.metadata()?.permissions().mode() & 0o7777;
                found.insert(
                    relative,
                    FileProjection {
                        data: std::fs::read(&path)?,
                        mode,
                    },
                );
            }
        }
        Ok(())
    }
    let mut found = Payload::new();
    walk(dir, dir, &mut found)?;
    Ok(found)
}

/// Makes `..<UTC time>.<nanoseconds>`, the kubelet's name for a version; a name
/// taken (two writes in one nanosecond) gets a suffix.
fn new_version_dir(dir: &Path) -> io::Result<String> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rest = secs % 86_400;
    let base = format!(
        "..{year:04}_{month:02}_{day:02}_{:02}_{:02}_{:02}.{:09}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        now.subsec_nanos()
    );
    for n in 0.. {
        let name = if n == 0 { base.clone() } else { format!("{base}{n}") };
        match std::fs::create_dir(dir.join(&name)) {
            Ok(()) => {
                std::fs::set_permissions(dir.join(&name), std::fs::Permissions::from_mode(0o755))?;
                return Ok(name);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("some suffix is free")
}

/// The proleptic Gregorian date of a day counted from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn file(data: &str, mode: u32) -> FileProjection {
        FileProjection {
            data: data.as_bytes().to_vec(),
            mode,
        }
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("..2"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn days_become_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_428), (2025, 12, 6));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn writes_then_swaps_a_new_version_and_drops_removed_keys() {
        let tmp = tempdir();
        let dir = tmp.join("vol");
        let mut payload = Payload::new();
        payload.insert("a".into(), file("one", 0o644));
        payload.insert("b".into(), file("two", 0o400));
        payload.insert("conf/c".into(), file("three", 0o600));
        assert!(write(&dir, &payload).unwrap());
        assert_eq!(listing(&dir), ["..data", "a", "b", "conf"]);
        assert_eq!(std::fs::read_link(dir.join("a")).unwrap(), Path::new("..data/a"));
        assert_eq!(std::fs::read_to_string(dir.join("conf/c")).unwrap(), "three");
        let mode = |p: &str| std::fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode("a"), mode("b"), mode("conf/c")), (0o644, 0o400, 0o600));
        let first = std::fs::read_link(dir.join(DATA_DIR)).unwrap();
        assert!(first.to_str().unwrap().starts_with("..20"), "{first:?}");

        // The same payload again: nothing written.
        assert!(!write(&dir, &payload).unwrap());
        assert_eq!(std::fs::read_link(dir.join(DATA_DIR)).unwrap(), first);

        // An update that changes a value and removes a key.
        payload.insert("a".into(), file("uno", 0o644));
        payload.remove("b");
        assert!(write(&dir, &payload).unwrap());
        assert_eq!(listing(&dir), ["..data", "a", "conf"]);
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "uno");
        let second = std::fs::read_link(dir.join(DATA_DIR)).unwrap();
        assert_ne!(second, first);
        assert!(!dir.join(&first).exists(), "the old version is removed");
        let versions = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("..20"))
            .count();
        assert_eq!(versions, 1);
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn paths_leaving_the_volume_are_refused() {
        let tmp = tempdir();
        let mut payload = Payload::new();
        payload.insert("../escape".into(), file("x", 0o644));
        assert!(write(&tmp.join("vol"), &payload).is_err());
        assert!(!tmp.join("escape").exists());
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    pub(crate) fn tempdir() -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("berth-atomic-writer-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
