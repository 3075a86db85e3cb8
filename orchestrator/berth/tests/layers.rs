//! The crates' layers, as ARCHITECTURE.md draws them: every workspace crate may use
//! only the berth crates listed for it here. The compiler already refuses a `use` of a
//! crate a manifest does not list; this test refuses a manifest that lists a crate the
//! layering forbids, so a new arrow is a decision made here and in ARCHITECTURE.md,
//! not an accident.

use std::collections::BTreeSet;
use std::path::Path;

/// (crate folder, crate name, the berth crates its [dependencies] may name).
const LAYERS: &[(&str, &str, &[&str])] = &[
    ("proto", "berth-proto", &[]),
    ("store", "berth-store", &["berth-proto"]),
    ("orchestrator/api", "berth-api", &[]),
    (
        "orchestrator/client",
        "berth-client",
        &["berth-api", "berth-proto", "berth-store", "berth-testkit"],
    ),
    (
        "orchestrator/controller-runtime",
        "berth-controller-runtime",
        &["berth-api", "berth-client"],
    ),
    (
        "orchestrator/apiserver",
        "berth-apiserver",
        &["berth-api", "berth-client", "berth-pki"],
    ),
    (
        "orchestrator/controllers",
        "berth-controllers",
        &["berth-api", "berth-client", "berth-controller-runtime"],
    ),
    (
        "orchestrator/scheduler",
        "berth-scheduler",
        &["berth-api", "berth-client", "berth-controller-runtime"],
    ),
    (
        "orchestrator/control-plane",
        "berth-control-plane",
        &[
            "berth-api",
            "berth-client",
            "berth-controller-runtime",
            "berth-controllers",
            "berth-scheduler",
        ],
    ),
    // Image layouts and a registry push from host files: `berth up` and the tests.
    ("orchestrator/image-layout", "berth-image-layout", &[]),
    // The cluster DNS: served by every agent, fed by reflectors.
    ("orchestrator/dns", "berth-dns", &["berth-api", "berth-client"]),
    (
        "orchestrator/node",
        "berth-node",
        &["berth-api", "berth-client", "berth-dns", "berth-pki"],
    ),
    (
        "orchestrator/cli",
        "berth-cli",
        &["berth-api", "berth-client", "berth-pki"],
    ),
    // Certificates and kubeconfigs: the binary's roles, the API server, the CLI.
    ("orchestrator/pki", "berth-pki", &[]),
    // Launches real processes for every crate's tests, so it may use none of them but
    // the image layouts, which use no berth crate either.
    ("jepsen-style-tests/testkit", "berth-testkit", &["berth-image-layout"]),
];

fn workspace_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The berth crates named in one section (`[dependencies]`, ...) of a manifest.
fn berth_dependencies(manifest: &str, section: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut inside = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == section;
            continue;
        }
        if !inside {
            continue;
        }
        let name = line.split(['.', '=', ' ']).next().unwrap_or_default();
        if name.starts_with("berth") {
            names.insert(name.to_string());
        }
    }
    names
}

fn manifest(folder: &str) -> String {
    let path = workspace_root().join(folder).join("Cargo.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn every_crate_uses_only_the_layers_below_it() {
    for &(folder, name, allowed) in LAYERS {
        let text = manifest(folder);
        assert!(
            text.contains(&format!("name = \"{name}\"")),
            "{folder}/Cargo.toml is not the crate {name}"
        );
        let allowed: BTreeSet<String> = allowed.iter().map(|s| s.to_string()).collect();
        let used = berth_dependencies(&text, "[dependencies]");
        let forbidden: Vec<&String> = used.difference(&allowed).collect();
        assert!(
            forbidden.is_empty(),
            "{name} depends on {forbidden:?}, which its layer may not use (see ARCHITECTURE.md)"
        );
    }
}

#[test]
fn the_scheduler_and_the_controllers_never_use_each_other() {
    for (folder, other) in [
        ("orchestrator/scheduler", "berth-controllers"),
        ("orchestrator/controllers", "berth-scheduler"),
    ] {
        let text = manifest(folder);
        for section in ["[dependencies]", "[dev-dependencies]"] {
            assert!(
                !berth_dependencies(&text, section).contains(other),
                "{folder} lists {other} in {section}"
            );
        }
    }
}

#[test]
fn the_store_uses_no_orchestrator_crate() {
    let orchestrator: BTreeSet<&str> = LAYERS
        .iter()
        .filter(|(folder, ..)| folder.starts_with("orchestrator/"))
        .map(|&(_, name, _)| name)
        .chain(["berth"])
        .collect();
    let text = manifest("store");
    for section in ["[dependencies]", "[dev-dependencies]"] {
        for name in berth_dependencies(&text, section) {
            assert!(
                !orchestrator.contains(name.as_str()),
                "the store lists the orchestrator crate {name} in {section}"
            );
        }
    }
}

#[test]
fn every_workspace_member_has_a_layer() {
    let root = manifest(".");
    let members_start = root.find("members = [").expect("the workspace lists its members");
    let members_end = members_start + root[members_start..].find(']').expect("the list ends");
    let members: Vec<&str> = root[members_start..members_end].split('"').skip(1).step_by(2).collect();
    let layered: BTreeSet<&str> = LAYERS.iter().map(|&(folder, ..)| folder).collect();
    // The binary uses every layer; the test and bench tools sit beside the product.
    let beside = |m: &str| matches!(m, "orchestrator/berth" | "jepsen-style-tests" | "benches");
    for member in members {
        assert!(
            layered.contains(member) || beside(member),
            "the workspace member {member} has no layer here nor in ARCHITECTURE.md"
        );
    }
}
