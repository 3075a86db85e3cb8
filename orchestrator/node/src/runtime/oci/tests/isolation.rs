//! What a container sees: its namespaces, hostname, user, capabilities, root
//! filesystem, limits and seccomp.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::super::super::{ContainerState, Runtime, RuntimeError, SandboxSpec, SecuritySpec};
use super::fixture::{APP_UID, DEADLINE, Fixture};

const NAMESPACES: [&str; 5] = ["pid", "mnt", "uts", "ipc", "net"];

/// `readlink /proc/self/ns/<each>` for this process: `net:[4026531840]` etc.
fn host_namespaces() -> Vec<String> {
    NAMESPACES
        .iter()
        .map(|ns| {
            std::fs::read_link(format!("/proc/self/ns/{ns}"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect()
}

/// The lines the container printed for each namespace, in NAMESPACES' order.
fn container_namespaces(log: &str) -> Vec<String> {
    NAMESPACES
        .iter()
        .map(|ns| {
            log.lines()
                .find(|line| line.starts_with(&format!("{ns}:[")))
                .unwrap_or_else(|| panic!("no {ns} namespace in {log}"))
                .to_owned()
        })
        .collect()
}

const PRINT_NAMESPACES: &str = "for n in pid mnt uts ipc net; do readlink /proc/self/ns/$n; done";

#[test]
fn a_container_has_its_own_namespaces_hostname_and_the_default_capabilities() {
    let Some(fixture) = Fixture::new() else { return };
    let mut spec = fixture.spec(
        "ns",
        &["sh", "-c", &format!("{PRINT_NAMESPACES}; hostname; id -u; echo pid $$; grep CapEff /proc/self/status; cat /etc/motd; echo HOSTNAME=$HOSTNAME")],
    );
    spec.sandbox = Some(SandboxSpec {
        netns: None,
        hostname: "web-0".into(),
        ..SandboxSpec::default()
    });
    // With a sandbox without a netns (hostNetwork) the net namespace is the host's,
    // and so is the uts one (its hostname), as in Kubernetes.
    let (code, log) = fixture.run(&spec);
    assert_eq!(code, 0, "{log}");
    let host = host_namespaces();
    let inside = container_namespaces(&log);
    for (i, ns) in NAMESPACES.iter().enumerate() {
        if matches!(*ns, "net" | "uts") {
            assert_eq!(inside[i], host[i], "host network: {log}");
        } else {
            assert_ne!(inside[i], host[i], "the {ns} namespace is the host's: {log}");
        }
    }
    let lines: Vec<&str> = log.lines().collect();
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(lines.contains(&host_name.trim()), "the host's hostname: {log}");
    assert!(lines.contains(&"0"), "uid: {log}");
    assert!(lines.contains(&"pid 1"), "own pid namespace: {log}");
    // containerd's (and Docker's) default set: 0xa80425fb.
    assert!(log.contains("CapEff:\t00000000a80425fb"), "{log}");
    assert!(lines.contains(&"from the top layer"), "the last layer is on top: {log}");
    assert!(lines.contains(&"HOSTNAME=web-0"), "{log}");

    // Without a sandbox: a network namespace of its own too (only lo).
    let spec = fixture.spec("ns2", &["sh", "-c", &format!("{PRINT_NAMESPACES}; ls /sys/class/net")]);
    let (code, log) = fixture.run(&spec);
    assert_eq!(code, 0, "{log}");
    let inside = container_namespaces(&log);
    assert_ne!(inside[4], host[4], "{log}");
    assert!(log.lines().any(|l| l == "lo"), "{log}");
}

/// A network namespace made for a test (`ip netns add`), deleted on drop.
struct NetnsGuard {
    name: String,
}

impl NetnsGuard {
    fn add(name: String) -> Option<NetnsGuard> {
        let status = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .ok()?;
        status.success().then_some(NetnsGuard { name })
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn a_container_joins_the_pods_network_namespace_and_sees_its_files() {
    let Some(fixture) = Fixture::new() else { return };
    let Some(netns) = NetnsGuard::add(format!("berth-oci-test-{}", std::process::id())) else {
        berth_testkit::skip("ip netns add");
        return;
    };
    let pod_files = tempfile::tempdir().unwrap();
    let hosts = pod_files.path().join("hosts");
    std::fs::write(&hosts, "10.1.2.3 web-0\n").unwrap();
    let mut spec = fixture.spec("netns", &["sh", "-c", "readlink /proc/self/ns/net; cat /etc/hosts"]);
    spec.sandbox = Some(SandboxSpec {
        netns: Some(netns.path()),
        hostname: "web-0".into(),
        etc_hosts: Some(hosts),
        ..SandboxSpec::default()
    });
    let (code, log) = fixture.run(&spec);
    assert_eq!(code, 0, "{log}");
    let expected = std::process::Command::new("ip")
        .args(["netns", "exec", &netns.name, "readlink", "/proc/self/ns/net"])
        .output()
        .unwrap();
    let expected = String::from_utf8(expected.stdout).unwrap();
    assert!(log.contains(expected.trim()), "want {expected} in {log}");
    assert!(log.contains("10.1.2.3 web-0"), "{log}");
}

#[test]
fn users_groups_and_run_as_non_root() {
    let Some(fixture) = Fixture::new() else { return };
    let probe = "id -u; id -G; grep CapEff /proc/self/status";
    let mut spec = fixture.spec("user", &["sh", "-c", probe]);
    spec.security = SecuritySpec {
        image_user: Some("app".into()),
        supplemental_groups: vec![5000],
        ..SecuritySpec::default()
    };
    let (code, log) = fixture.run(&spec);
    assert_eq!(code, 0, "{log}");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], APP_UID.to_string(), "{log}");
    assert_eq!(lines[1], format!("{APP_UID} 44 5000"), "{log}");
    assert_eq!(
        lines[2], "CapEff:\t0000000000000000",
        "a non-root user has no effective capabilities"
    );

    let mut spec = fixture.spec("nnp", &["grep", "NoNewPrivs", "/proc/self/status"]);
    spec.security.no_new_privileges = true;
    let (code, log) = fixture.run(&spec);
    assert_eq!((code, log.as_str()), (0, "NoNewPrivs:\t1\n"));

    let mut spec = fixture.spec("nonroot", &["true"]);
    spec.security.run_as_non_root = true;
    match fixture.runtime().start(&spec) {
        Err(RuntimeError::Config { message, .. }) => {
            assert_eq!(message, "container has runAsNonRoot and image will run as root")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        fixture.runtime().list().is_empty(),
        "a refused start leaves no container"
    );
}

#[test]
fn capabilities_are_added_and_dropped_and_seccomp_denies_unshare() {
    let Some(fixture) = Fixture::new() else { return };
    let mut spec = fixture.spec("caps", &["sh", "-c", "grep CapEff /proc/self/status"]);
    spec.security.capabilities_drop = vec!["ALL".into()];
    spec.security.capabilities_add = vec!["NET_BIND_SERVICE".into()];
    let (code, log) = fixture.run(&spec);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("CapEff:\t0000000000000400"), "only bit 10: {log}");

    // Privileged: every capability the runtime has, no masked paths (a masked
    // /proc/timer_list is /dev/null: nothing to read), and the host's devices.
    let probe = "grep CapEff /proc/self/status; echo timer_list $(head -c 4 /proc/timer_list | wc -c); \
                 test -c /dev/loop-control && echo host devices";
    let mut spec = fixture.spec("privileged", &["sh", "-c", probe]);
    spec.security.privileged = true;
    let (_, log) = fixture.run(&spec);
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status.lines().find_map(|l| l.strip_prefix("CapBnd:")).unwrap().trim();
    let all = u64::from_str_radix(bounding, 16).unwrap() & ((1 << 41) - 1);
    assert!(log.contains(&format!("CapEff:\t{all:016x}")), "{log}");
    assert!(log.contains("timer_list 4"), "/proc/timer_list is not masked: {log}");
    let has_loop_control = std::path::Path::new("/dev/loop-control").exists();
    assert_eq!(
        log.contains("host devices"),
        has_loop_control,
        "the host's device nodes: {log}"
    );
    let (_, log) = fixture.run(&fixture.spec("unprivileged", &["sh", "-c", probe]));
    assert!(log.contains("timer_list 0"), "/proc/timer_list is masked: {log}");
    assert!(!log.contains("host devices"), "only runc's few device nodes: {log}");

    // With CAP_SYS_ADMIN, unshare works; the default seccomp profile still says no.
    let mut spec = fixture.spec("seccomp", &["unshare", "-u", "true"]);
    spec.security.capabilities_add = vec!["SYS_ADMIN".into()];
    let (code, log) = fixture.run(&spec);
    assert_eq!(code, 0, "unconfined: {log}");
    spec.security.seccomp_runtime_default = true;
    let (code, log) = fixture.run(&spec);
    assert_ne!(code, 0, "RuntimeDefault: {log}");
    assert!(log.contains("Operation not permitted"), "{log}");
}

#[test]
fn a_read_only_root_filesystem_refuses_writes_and_a_writable_one_keeps_them_in_its_upper_layer() {
    let Some(fixture) = Fixture::new() else { return };
    let mut spec = fixture.spec("rofs", &["sh", "-c", "echo hi > /etc/motd"]);
    spec.security.read_only_root_filesystem = true;
    let (code, log) = fixture.run(&spec);
    assert_ne!(code, 0, "{log}");
    assert!(log.contains("Read-only file system"), "{log}");

    let spec = fixture.spec("rwfs", &["sh", "-c", "echo written > /etc/motd; cat /etc/motd"]);
    let (code, log) = fixture.run(&spec);
    assert_eq!((code, log.trim()), (0, "written"));
    for layer in &fixture.layers {
        if let Ok(motd) = std::fs::read_to_string(layer.join("etc/motd")) {
            assert!(motd.starts_with("from the"), "a shared layer was written: {motd}");
        }
    }
}

#[test]
fn a_container_over_its_memory_limit_is_oom_killed() {
    let Some(fixture) = Fixture::new() else { return };
    // dd as the container's init holds a 64 MiB buffer, filled from /dev/zero.
    let mut spec = fixture.spec("oom", &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]);
    spec.memory_limit_bytes = Some(32 << 20);
    let id = fixture.runtime().start(&spec).unwrap();
    match fixture.wait_exited(&id) {
        ContainerState::Exited {
            exit_code, oom_killed, ..
        } => assert_eq!((exit_code, oom_killed), (137, true), "{}", fixture.log(&spec)),
        running => unreachable!("{running:?}"),
    }
    // The same command without a limit ends normally.
    spec.memory_limit_bytes = None;
    let (code, log) = fixture.run(&spec);
    assert_eq!(code, 0, "{log}");
}

#[test]
fn a_cpu_limit_throttles_and_the_request_sets_shares() {
    let Some(fixture) = Fixture::new() else { return };
    let mut spec = fixture.spec("cpu", &["sh", "-c", "while :; do :; done"]);
    spec.cpu_limit_millis = Some(100);
    spec.cpu_request_millis = Some(250);
    let id = fixture.runtime().start(&spec).unwrap();
    let cpu_dir = fixture
        .runtime()
        .cgroup_mounts
        .iter()
        .find(|m| m.ends_with("cpu"))
        .unwrap()
        .join(format!("berth/{}/{id}", spec.pod_uid));
    let read = |file: &str| std::fs::read_to_string(cpu_dir.join(file)).unwrap();
    assert_eq!(read("cpu.cfs_quota_us").trim(), "10000");
    assert_eq!(read("cpu.cfs_period_us").trim(), "100000");
    assert_eq!(read("cpu.shares").trim(), "256");
    let start = Instant::now();
    loop {
        let stat = read("cpu.stat");
        let throttled: u64 = stat
            .lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap();
        if throttled > 0 {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "never throttled: {stat}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let runtime = fixture.runtime();
    let runtime_stop = runtime.stop(&id, Duration::from_millis(100));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(runtime_stop)
        .unwrap();
}
