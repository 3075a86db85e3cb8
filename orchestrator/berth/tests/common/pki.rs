//! Clusters with certificates, for the tests of authentication and of agents that
//! reach the API server as their node's user: `berth pki` run and checked, a
//! `berth server` over HTTPS, kubectl with a kubeconfig of its own.

use std::path::Path;
use std::process::{Command, Output};

use berth_testkit::{Cluster, ClusterSpec, QUIET_RAFT_LOG, System, free_port};

use super::BERTH;

/// Runs `berth` with `args`; its standard output, or a panic with its errors.
pub fn berth(args: &[&str]) -> String {
    let out = Command::new(BERTH).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "berth {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs kubectl with no kubeconfig but the one `args` name, in `home`.
pub fn kubectl(home: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", "/dev/null")
        .env("HOME", home)
        .output()
        .expect("kubectl runs")
}

/// A command's standard output and error together.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A temporary work dir holding a cluster CA and the control plane's certificates
/// (`berth pki init`) in its `pki` folder; the dir, and that folder.
pub fn work_dir_with_ca() -> (tempfile::TempDir, std::path::PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let pki = work.path().join("pki");
    berth(&["pki", "init", "--dir", pki.to_str().unwrap()]);
    (work, pki)
}

/// `berth pki issue` of `name` for `cn` in `org`, signed by the CA in `pki`.
pub fn issue(pki: &str, name: &str, cn: &str, org: &str, extra: &[&str]) {
    let mut args = vec!["pki", "issue", "--dir", pki, "--name", name, "--cn", cn, "--org", org];
    args.extend_from_slice(extra);
    berth(&args);
}

/// `berth pki kubeconfig` for certificate `name` of the CA in `pki`, to the API
/// server at `url`, written in `dir` (named after the certificate); returns its path.
pub fn kubeconfig(pki: &str, name: &str, url: &str, dir: &Path) -> std::path::PathBuf {
    let path = dir.join(format!("{}.kubeconfig", name.replace('/', "-")));
    berth(&[
        "pki",
        "kubeconfig",
        "--dir",
        pki,
        "--name",
        name,
        "--server",
        url,
        "--out",
        path.to_str().unwrap(),
    ]);
    path
}

/// One `berth server` with `flags`, its API on a port of its own; returns it and
/// the port.
pub fn start_server(flags: Vec<String>) -> (Cluster, u16) {
    let api_port = free_port();
    let spec = ClusterSpec::new(System::BerthServer, BERTH, 1)
        .args(flags)
        .env("RUST_LOG", QUIET_RAFT_LOG);
    let mut servers = Cluster::new(spec).unwrap();
    servers.replicas[0].args = vec![format!("--api-listen=127.0.0.1:{api_port}")];
    servers.start_all().unwrap();
    (servers, api_port)
}
