//! Exit codes, stop, adoption by a restarted runtime, start failures, and that
//! removal leaves nothing behind.

use std::path::Path;
use std::time::Duration;

use super::super::super::{ContainerSpec, ContainerState, RootFs, Runtime, RuntimeError};
use super::fixture::Fixture;
use super::fixture::bundle_dir;

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// What a container may leave on the host: (mounts naming the state dir, cgroup
/// directories of its pod in any hierarchy).
fn leftovers(fixture: &Fixture, spec: &ContainerSpec) -> (Vec<String>, Vec<String>) {
    let state = fixture.state.path().display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|line| line.contains(&state))
        .map(str::to_owned)
        .collect();
    let cgroups = fixture
        .runtime()
        .cgroup_mounts
        .iter()
        .map(|m| m.join("berth").join(&spec.pod_uid))
        .filter(|dir| dir.exists())
        .map(|dir| dir.display().to_string())
        .collect();
    (mounts, cgroups)
}

fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut entries| entries.next().is_none())
        .unwrap_or(true)
}

#[test]
fn exit_codes_are_reported_and_removal_leaves_nothing_behind() {
    let Some(fixture) = Fixture::new() else { return };
    let spec = fixture.spec("exit", &["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"]);
    let id = fixture.runtime().start(&spec).unwrap();
    assert!(bundle_dir(fixture.state.path(), &id).join("config.json").is_file());
    match fixture.wait_exited(&id) {
        ContainerState::Exited {
            exit_code,
            signal,
            oom_killed,
            ..
        } => assert_eq!((exit_code, signal, oom_killed), (3, None, false)),
        running => unreachable!("{running:?}"),
    }
    let log = fixture.log(&spec);
    assert!(log.contains("to-stdout") && log.contains("to-stderr"), "{log}");
    let (mounts, cgroups) = leftovers(&fixture, &spec);
    assert_eq!(mounts.len(), 1, "the rootfs stays mounted until remove: {mounts:?}");
    assert!(!cgroups.is_empty(), "the cgroup stays until remove (for its OOM count)");

    fixture.runtime().remove(&id).unwrap();
    assert_eq!(leftovers(&fixture, &spec), (vec![], vec![]));
    assert!(!bundle_dir(fixture.state.path(), &id).exists());
    assert!(
        is_empty_dir(&fixture.state.path().join("oci/runc")),
        "runc's state is gone"
    );
    assert!(fixture.runtime().state(&id).unwrap_err().is_not_found());
    assert!(fixture.runtime().list().is_empty());
    // The log stays until the pod's logs go.
    assert!(fixture.log(&spec).contains("to-stdout"));

    let (code, _) = fixture.run(&fixture.spec("exit0", &["true"]));
    assert_eq!(code, 0);
}

#[test]
fn stop_sends_term_then_kill_after_the_grace_period() {
    let Some(fixture) = Fixture::new() else { return };
    let runtime = fixture.runtime();
    // As PID 1 of its namespace, sleep has no handler and so never sees SIGTERM.
    let deaf = fixture.spec("deaf", &["sleep", "1000"]);
    let polite = fixture.spec(
        "polite",
        &[
            "sh",
            "-c",
            "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.1; done",
        ],
    );
    let deaf_id = runtime.start(&deaf).unwrap();
    let polite_id = runtime.start(&polite).unwrap();
    assert!(runtime.state(&deaf_id).unwrap().is_running());
    fixture.wait_for_log(&polite, "ready");

    block_on(runtime.stop(&polite_id, Duration::from_secs(60))).unwrap();
    match runtime.state(&polite_id).unwrap() {
        ContainerState::Exited { exit_code, signal, .. } => assert_eq!((exit_code, signal), (7, None)),
        running => unreachable!("{running:?}"),
    }
    assert!(fixture.log(&polite).contains("got TERM"));

    block_on(runtime.stop(&deaf_id, Duration::from_millis(300))).unwrap();
    match runtime.state(&deaf_id).unwrap() {
        ContainerState::Exited {
            exit_code,
            signal,
            oom_killed,
            ..
        } => assert_eq!((exit_code, signal, oom_killed), (137, Some(9), false)),
        running => unreachable!("{running:?}"),
    }
    // Stopping an exited container is a no-op.
    block_on(runtime.stop(&deaf_id, Duration::from_millis(300))).unwrap();
}

#[test]
fn a_restarted_runtime_adopts_a_running_container_and_learns_its_exit() {
    let Some(mut fixture) = Fixture::new() else { return };
    let spec = fixture.spec(
        "adopt",
        &[
            "sh",
            "-c",
            "echo ready; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo bye; exit 5",
        ],
    );
    let id = fixture.runtime().start(&spec).unwrap();
    fixture.wait_for_log(&spec, "ready");
    let ContainerState::Running { pid, .. } = fixture.runtime().state(&id).unwrap() else {
        panic!("not running");
    };

    fixture.restart_runtime();
    let listed = fixture.runtime().list();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].pod_uid, spec.pod_uid);
    assert_eq!(listed[0].state, fixture.runtime().state(&id).unwrap());
    match listed[0].state {
        ContainerState::Running { pid: adopted_pid, .. } => assert_eq!(adopted_pid, pid),
        exited => panic!("adopted as {exited:?}"),
    }
    // A new container of the new runtime gets a new id.
    let other = fixture.runtime().start(&fixture.spec("adopt2", &["true"])).unwrap();
    assert_ne!(other, id);
    assert_eq!(fixture.exit_code(&other), 0);
    fixture.runtime().remove(&other).unwrap();

    // Through the container's root filesystem, as the host sees it.
    std::fs::write(bundle_dir(fixture.state.path(), &id).join("rootfs/tmp/go"), "").unwrap();
    assert_eq!(fixture.exit_code(&id), 5);
    assert!(fixture.log(&spec).contains("bye"));
    // Known the same way by yet another runtime.
    fixture.restart_runtime();
    assert_eq!(fixture.exit_code(&id), 5);
    fixture.runtime().remove(&id).unwrap();
    assert_eq!(leftovers(&fixture, &spec), (vec![], vec![]));
}

#[test]
fn a_removal_of_a_running_container_is_refused() {
    let Some(fixture) = Fixture::new() else { return };
    let id = fixture
        .runtime()
        .start(&fixture.spec("busy", &["sleep", "1000"]))
        .unwrap();
    assert!(matches!(
        fixture.runtime().remove(&id),
        Err(RuntimeError::StillRunning { .. })
    ));
}

#[test]
fn start_failures_say_why_and_leave_nothing_behind() {
    let Some(fixture) = Fixture::new() else { return };
    let spec = fixture.spec("missing", &["no-such-command"]);
    match fixture.runtime().start(&spec) {
        Err(RuntimeError::CommandNotFound { command, cause, .. }) => {
            assert_eq!(command, "no-such-command");
            assert!(cause.contains("no-such-command"), "{cause}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(leftovers(&fixture, &spec), (vec![], vec![]));
    assert!(is_empty_dir(&fixture.state.path().join("oci/bundles")));
    assert!(fixture.runtime().list().is_empty());

    let mut spec = fixture.spec("nolayers", &["true"]);
    spec.rootfs = None;
    assert!(matches!(
        fixture.runtime().start(&spec),
        Err(RuntimeError::Unsupported { .. })
    ));
    spec.rootfs = Some(RootFs::default());
    assert!(matches!(
        fixture.runtime().start(&spec),
        Err(RuntimeError::Unsupported { .. })
    ));
    let mut spec = fixture.spec("badcap", &["true"]);
    spec.security.capabilities_add = vec!["NOT_A_CAP".into()];
    match fixture.runtime().start(&spec) {
        Err(RuntimeError::Config { message, .. }) => assert!(message.contains("NOT_A_CAP"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(is_empty_dir(&fixture.state.path().join("oci/bundles")));
}

/// Set in the environment of the test binary re-run as an agent: the state
/// directory, then the layers and the pod uid.
const AGENT_STATE_ENV: &str = "BERTH_OCI_TEST_AGENT_STATE";
const AGENT_LAYERS_ENV: &str = "BERTH_OCI_TEST_AGENT_LAYERS";
const AGENT_POD_ENV: &str = "BERTH_OCI_TEST_AGENT_POD";
/// What the agent prints, followed by the container's id.
const STARTED: &str = "agent started container ";
const AGENT_TEST: &str = "runtime::oci::tests::lifecycle::a_container_outlives_its_agent_killed_by_sigkill";

/// The agent's process, SIGKILLed (if still there) and reaped on drop.
struct AgentProcess(std::process::Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_container_outlives_its_agent_killed_by_sigkill() {
    if let Ok(state) = std::env::var(AGENT_STATE_ENV) {
        return act_as_agent(state);
    }
    let Some(mut fixture) = Fixture::new() else { return };
    let spec = fixture.spec("sigkill", &[]);
    let layers: Vec<String> = fixture.layers.iter().map(|l| l.display().to_string()).collect();
    let mut agent = AgentProcess(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", AGENT_TEST, "--nocapture", "--test-threads=1"])
            .env(AGENT_STATE_ENV, fixture.state.path())
            .env(AGENT_LAYERS_ENV, layers.join(":"))
            .env(AGENT_POD_ENV, &spec.pod_uid)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = std::io::BufReader::new(agent.0.stdout.take().unwrap());
    let id = std::io::BufRead::lines(stdout)
        .map_while(Result::ok)
        // libtest prints the test's name without a newline before it.
        .find_map(|line| line.split_once(STARTED).map(|(_, id)| id.trim().to_owned()))
        .expect("the agent started a container");
    fixture.wait_for_log(&spec, "ready");
    agent.0.kill().unwrap();
    agent.0.wait().unwrap();

    // The dropped runtime of this process knew nothing; a new one finds it running.
    fixture.restart_runtime();
    assert!(fixture.runtime().state(&id).unwrap().is_running());
    std::fs::write(bundle_dir(fixture.state.path(), &id).join("rootfs/tmp/go"), "").unwrap();
    assert_eq!(fixture.exit_code(&id), 5);
    fixture.runtime().remove(&id).unwrap();
    assert_eq!(leftovers(&fixture, &spec), (vec![], vec![]));
}

/// The re-run test binary: starts the container, says so, and waits to be killed
/// (ending by itself after a while should the test that runs it have died).
fn act_as_agent(state: String) {
    let runtime = super::super::OciRuntime::new(state.into()).unwrap();
    let spec = ContainerSpec {
        pod_uid: std::env::var(AGENT_POD_ENV).unwrap(),
        pod: "default/sigkill".into(),
        name: "app".into(),
        argv: [
            "sh",
            "-c",
            "echo ready; while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 5",
        ]
        .map(str::to_owned)
        .to_vec(),
        rootfs: Some(RootFs {
            layers: std::env::var(AGENT_LAYERS_ENV)
                .unwrap()
                .split(':')
                .map(Into::into)
                .collect(),
            image_digest: "sha256:test".into(),
        }),
        ..ContainerSpec::default()
    };
    let id = runtime.start(&spec).unwrap();
    println!("{STARTED}{id}");
    std::thread::sleep(super::fixture::DEADLINE * 2);
}

#[test]
fn a_container_whose_supervisor_is_killed_is_killed_too_and_reported_as_137() {
    let Some(fixture) = Fixture::new() else { return };
    let id = fixture
        .runtime()
        .start(&fixture.spec("orphan", &["sleep", "1000"]))
        .unwrap();
    let ContainerState::Running { pid: init_pid, .. } = fixture.runtime().state(&id).unwrap() else {
        panic!("not running");
    };
    let supervisor_pid = fixture.runtime().lock().by_id[&id].record.pid;
    assert_ne!(supervisor_pid, init_pid);
    let supervisor = rustix::process::Pid::from_raw(supervisor_pid as i32).unwrap();
    rustix::process::kill_process(supervisor, rustix::process::Signal::KILL).unwrap();
    assert_eq!(fixture.exit_code(&id), 137);
    let start = std::time::Instant::now();
    while std::path::Path::new(&format!("/proc/{init_pid}")).exists() {
        assert!(
            start.elapsed() < super::fixture::DEADLINE,
            "the container outlived its supervisor"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
