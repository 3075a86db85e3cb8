//! An image from nothing but the host's static busybox: the binary, the applets as
//! symlinks to it, and the few files of `/etc` a container expects. Most container
//! tests run it, and `berth up` serves its example web pods from it, so that neither
//! needs the internet.

use std::path::{Path, PathBuf};

use super::ImageBuilder;

/// The applets linked in `/bin`. Enough for shells, probes (`wget`, `nc`), identity
/// checks (`id`, `hostname`), memory and CPU hogs (`dd`, `yes`, `head`) and an HTTP
/// server (`httpd`, which the example web pods run).
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh",
    "ls",
    "cat",
    "echo",
    "sleep",
    "id",
    "hostname",
    "wget",
    "nc",
    "tar",
    "ps",
    "grep",
    "mkdir",
    "env",
    "dd",
    "head",
    "yes",
    "tail",
    "cp",
    "mv",
    "rm",
    "touch",
    "chmod",
    "stat",
    "readlink",
    "timeout",
    "kill",
    "sed",
    "wc",
    "cut",
    "sort",
    "true",
    "false",
    "test",
    "[",
    "printf",
    "pwd",
    "uname",
    "whoami",
    "httpd",
    "ip",
    "ifconfig",
    "netstat",
    "nslookup",
    "mount",
    "seq",
    "date",
    "sha256sum",
    "find",
    "xargs",
    "which",
    "tee",
    "sync",
];

/// Where Debian's busybox-static installs its binary (`/bin` is a link to `/usr/bin`
/// on merged-/usr systems, not on older ones).
const CANDIDATES: &[&str] = &["/usr/bin/busybox", "/bin/busybox"];

/// The host's busybox, if it is statically linked (it then runs in an image that holds
/// nothing else). Debian's dynamically linked `busybox` package installs at the same
/// path: that one does not count.
pub fn busybox_binary() -> Option<PathBuf> {
    CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|path| is_static_executable(path))
}

/// A one-layer image of the static busybox at `busybox` (see [`busybox_binary`]):
/// `/bin/busybox` and links to it for [`BUSYBOX_APPLETS`], `/etc/passwd` with root,
/// `user` (1000) and `nobody` (65534), the matching `/etc/group`, `/root`,
/// `/home/user` and a sticky `/tmp`; its config runs `sh` with Docker's default
/// `PATH`. The layer is closed, so what a caller adds goes to a second layer; it may
/// still set the config.
pub fn busybox_image_from(busybox: &Path) -> ImageBuilder {
    let mut image = ImageBuilder::new()
        .dir("/bin", 0o755)
        .file("/bin/busybox", busybox, 0o755);
    for applet in BUSYBOX_APPLETS {
        image = image.symlink(&format!("/bin/{applet}"), "busybox");
    }
    image
        .dir("/etc", 0o755)
        .contents("/etc/passwd", PASSWD, 0o644)
        .contents("/etc/group", GROUP, 0o644)
        .dir("/root", 0o700)
        .dir("/home/user", 0o755)
        .dir("/tmp", 0o1777)
        .dir("/usr/bin", 0o755)
        .cmd(&["sh"])
        .env("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .layer()
}

/// The version of a busybox binary as its banner prints it ("1.35.0" from
/// "BusyBox v1.35.0 (Debian 1:1.35.0-4+b3) multi-call binary."), read from the
/// binary itself so that nothing is run; `None` when the banner is not found.
pub fn busybox_version(busybox: &Path) -> Option<String> {
    let bytes = std::fs::read(busybox).ok()?;
    let marker = b"BusyBox v";
    let at = bytes.windows(marker.len()).position(|window| window == marker)? + marker.len();
    let version: String = bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b'.')
        .map(|b| *b as char)
        .collect();
    let version = version.trim_end_matches('.').to_string();
    (!version.is_empty()).then_some(version)
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
user:x:1000:1000:user:/home/user:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";

const GROUP: &str = "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n";

/// An ELF executable without a program interpreter (`PT_INTERP`), which is what a
/// static binary is; read from the ELF header, so no `file` or `ldd` is needed.
fn is_static_executable(path: &Path) -> bool {
    let Ok(elf) = std::fs::read(path) else {
        return false;
    };
    const PT_INTERP: u32 = 3;
    let is_64_bit_little_endian = elf.len() > 64 && elf[..4] == *b"\x7fELF" && elf[4] == 2 && elf[5] == 1;
    if !is_64_bit_little_endian {
        return false;
    }
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let program_headers = u64::from_le_bytes(elf[0x20..0x28].try_into().expect("8 bytes")) as usize;
    let (entry_size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).all(|n| {
        let at = program_headers + n * entry_size;
        elf.get(at..at + 4)
            .is_some_and(|kind| u32::from_le_bytes(kind.try_into().expect("4 bytes")) != PT_INTERP)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_static_binary_is_told_from_a_dynamic_one() {
        // The shell of every Linux host is dynamically linked.
        assert!(!is_static_executable(Path::new("/bin/sh")));
        assert!(!is_static_executable(Path::new("/etc/passwd")));
        if let Some(busybox) = crate::tests::static_busybox() {
            assert!(is_static_executable(&busybox));
            let version = busybox_version(&busybox).expect("busybox prints its version");
            assert!(version.split('.').all(|part| part.parse::<u32>().is_ok()), "{version}");
        }
    }
}
