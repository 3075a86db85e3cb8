//! A host program in an image, with the shared libraries it loads, for test workloads
//! written in Rust (a dynamically linked binary needs its loader and libc beside it).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ImageBuilder;

/// The shared libraries `binary` loads (its ELF interpreter among them), as `ldd`
/// lists them: host paths, which the image holds at the same paths.
pub fn shared_libraries(binary: &Path) -> io::Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(binary).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ldd {}: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(parse_ldd(&String::from_utf8_lossy(&out.stdout)))
}

/// The absolute paths of `ldd`'s lines: `libc.so.6 => /lib/.../libc.so.6 (0x...)`
/// and `/lib64/ld-linux-x86-64.so.2 (0x...)`; the kernel's vDSO has none.
fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let path = line.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

impl ImageBuilder {
    /// The host's `binary` at `path` (mode 0755), and the shared libraries it loads at
    /// their host paths (their symlinks resolved: each is a regular file).
    pub fn host_binary(self, path: &str, binary: impl AsRef<Path>) -> io::Result<Self> {
        let binary = binary.as_ref();
        let mut builder = self.file(path, binary, 0o755);
        for library in shared_libraries(binary)? {
            let resolved = std::fs::canonicalize(&library)?;
            let in_image = library.to_string_lossy().into_owned();
            builder = builder.file(&in_image, resolved, 0o755);
        }
        Ok(builder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines_give_the_libraries_and_the_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007fcf)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fcf)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007fcf)\n";
        assert_eq!(
            parse_ldd(text),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }
}
