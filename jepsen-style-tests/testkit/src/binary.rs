//! Where the `berth` binary under test is.

use std::path::{Path, PathBuf};

/// The `berth` binary of the build that built the running program: tests run from
/// `target/<profile>/deps/`, binaries from `target/<profile>/`, and `berth` is built
/// into `target/<profile>/`. Panics, saying how to build it, when it is missing.
pub fn berth_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the running binary's path");
    let berth = berth_next_to(&exe);
    assert!(
        berth.exists(),
        "{} is missing: build it first with `cargo build -p berth` (scripts/test.sh builds the whole workspace)",
        berth.display()
    );
    berth
}

fn berth_next_to(exe: &Path) -> PathBuf {
    let dir = exe.parent().expect("a binary lives in a directory");
    let profile_dir = match dir.file_name() {
        Some(name) if name == "deps" => dir.parent().expect("target/<profile>"),
        _ => dir,
    };
    profile_dir.join("berth")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_binary_finds_berth_in_the_profile_dir_and_a_binary_next_to_itself() {
        assert_eq!(
            berth_next_to(Path::new("/t/target/debug/deps/store_api-0123")),
            Path::new("/t/target/debug/berth")
        );
        assert_eq!(
            berth_next_to(Path::new("/t/target/release/berth-bench")),
            Path::new("/t/target/release/berth")
        );
    }
}
