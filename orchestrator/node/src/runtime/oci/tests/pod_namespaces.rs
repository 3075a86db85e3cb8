//! The containers of one pod share its IPC and UTS namespaces (the sandbox's
//! bind-mounted files), as Kubernetes' do: a POSIX message queue one container makes
//! is there for the next, and both have the pod's hostname; none of it is the host's.

use std::path::{Path, PathBuf};

use super::super::super::SandboxSpec;
use super::fixture::Fixture;
use crate::namespaces::{self, Kind};

/// A pod's IPC and UTS namespaces in a temporary directory, unmounted on drop.
struct PodNamespaces {
    dir: tempfile::TempDir,
}

impl PodNamespaces {
    fn new() -> PodNamespaces {
        let namespaces = PodNamespaces {
            dir: tempfile::tempdir().unwrap(),
        };
        namespaces::create(&[(Kind::Ipc, &namespaces.ipc()), (Kind::Uts, &namespaces.uts())]).unwrap();
        namespaces
    }

    fn ipc(&self) -> PathBuf {
        self.dir.path().join("ipc")
    }

    fn uts(&self) -> PathBuf {
        self.dir.path().join("uts")
    }
}

impl Drop for PodNamespaces {
    fn drop(&mut self) {
        for path in [self.ipc(), self.uts()] {
            let _ = namespaces::remove(&path);
        }
    }
}

/// The `ipc:[…]` and `uts:[…]` links of this process.
fn host_link(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

/// What `nsenter --uts=FILE hostname` prints: the hostname inside the namespace.
fn hostname_in(uts: &Path) -> String {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--uts={}", uts.display()))
        .arg("hostname")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

const PROBE: &str = "readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts; hostname; ls /dev/mqueue";

#[test]
fn containers_given_one_sandbox_share_its_ipc_and_uts_namespaces() {
    let Some(fixture) = Fixture::new() else { return };
    let pod = PodNamespaces::new();
    let sandbox = SandboxSpec {
        ipc: Some(pod.ipc()),
        uts: Some(pod.uts()),
        hostname: "web-0".into(),
        ..SandboxSpec::default()
    };
    let mut first = fixture.spec(
        "first",
        &["sh", "-c", &format!("touch /dev/mqueue/from-first; {PROBE}")],
    );
    first.sandbox = Some(sandbox.clone());
    let mut second = fixture.spec("second", &["sh", "-c", PROBE]);
    second.sandbox = Some(sandbox);

    let (code, first_log) = fixture.run(&first);
    assert_eq!(code, 0, "{first_log}");
    let (code, second_log) = fixture.run(&second);
    assert_eq!(code, 0, "{second_log}");
    let first_lines: Vec<&str> = first_log.lines().collect();
    let second_lines: Vec<&str> = second_log.lines().collect();
    assert_eq!(
        first_lines[..3],
        second_lines[..3],
        "ipc, uts and hostname shared:\n{first_log}\n{second_log}"
    );
    assert_ne!(first_lines[0], host_link("ipc"), "{first_log}");
    assert_ne!(first_lines[1], host_link("uts"), "{first_log}");
    assert_eq!(first_lines[2], "web-0");
    assert!(
        second_lines.contains(&"from-first"),
        "the second container sees the first one's message queue: {second_log}"
    );
    assert_eq!(
        hostname_in(&pod.uts()),
        "web-0",
        "the pod's namespace holds the hostname"
    );

    // Without the sandbox's namespaces: new ones, without the queue.
    let mut alone = fixture.spec("alone", &["sh", "-c", PROBE]);
    alone.sandbox = Some(SandboxSpec {
        hostname: "web-0".into(),
        ..SandboxSpec::default()
    });
    let (code, alone_log) = fixture.run(&alone);
    assert_eq!(code, 0, "{alone_log}");
    let alone_lines: Vec<&str> = alone_log.lines().collect();
    assert_ne!(alone_lines[0], first_lines[0], "{alone_log}");
    assert_ne!(alone_lines[1], first_lines[1], "{alone_log}");
    assert!(!alone_lines.contains(&"from-first"), "{alone_log}");
}
