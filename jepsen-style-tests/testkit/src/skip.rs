//! Tests that need something of the host (root, a writable cgroup, kubectl, the
//! Python client) skip without it on a developer's machine, and fail without it in CI:
//! the test runner hides a skipped test's note, so a CI run that skipped would still
//! say that everything passed.

/// Whether this run is CI's (`CI=true`, as `.ci/run` sets it).
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Called by a test that cannot run here, with what it lacks: prints that it skips,
/// or panics under CI, where the set-up script provides everything the tests need.
pub fn skip(lacking: &str) {
    assert!(
        !is_ci(),
        "CI=true and this host lacks what the test needs: {lacking} (scripts/test.sh sets it up)"
    );
    eprintln!("skipping: {lacking}");
}
