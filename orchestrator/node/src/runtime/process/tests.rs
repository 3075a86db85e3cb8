//! Against real processes (`sh`, `sleep`, `true`, `false`, `cat`, `head`, `tail`).
//! Waits are polls with generous deadlines; no assertion rests on a sleep.

use super::*;
use std::path::Path;

/// Far longer than anything here should take, even on a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(20);

fn runtime(dir: &tempfile::TempDir) -> ProcessRuntime {
    ProcessRuntime::new(dir.path().to_path_buf()).unwrap()
}

fn spec(pod_uid: &str, name: &str, argv: &[&str]) -> ContainerSpec {
    ContainerSpec {
        pod_uid: pod_uid.to_owned(),
        pod: format!("default/{pod_uid}"),
        name: name.to_owned(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        ..ContainerSpec::default()
    }
}

/// A pod uid no other test process on this host uses (cgroup names are host-wide).
fn unique_uid(tag: &str) -> String {
    format!("{tag}-{}", std::process::id())
}

/// Polls until the container has exited; its (exit_code, signal).
fn wait_exited(runtime: &ProcessRuntime, id: &str) -> (i32, Option<i32>) {
    let start = Instant::now();
    loop {
        match runtime.state(id).unwrap() {
            ContainerState::Exited { exit_code, signal, .. } => return (exit_code, signal),
            running => assert!(start.elapsed() < DEADLINE, "{id} still {running:?} after {DEADLINE:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls until the log holds `text` (a container saying it is ready).
fn wait_for_log(path: &Path, text: &str) {
    let start = Instant::now();
    while !std::fs::read_to_string(path).unwrap_or_default().contains(text) {
        assert!(start.elapsed() < DEADLINE, "{} never held {text:?}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn running_pid(runtime: &ProcessRuntime, id: &str) -> u32 {
    match runtime.state(id).unwrap() {
        ContainerState::Running { pid, .. } => pid,
        exited => panic!("{id} is {exited:?}"),
    }
}

/// Processes (not zombies) in process group `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(after_comm) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        // Fields 3 (state) and 5 (process group) of /proc/<pid>/stat.
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            members.push(pid);
        }
    }
    members
}

fn wait_group_gone(pgid: u32) {
    let start = Instant::now();
    loop {
        let members = group_members(pgid);
        if members.is_empty() {
            return;
        }
        assert!(start.elapsed() < DEADLINE, "group {pgid} still has {members:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn exit_codes_zero_one_and_three() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(&dir);
    let ok = runtime.start(&spec("u1", "ok", &["true"])).unwrap();
    let fails = runtime.start(&spec("u1", "fails", &["false"])).unwrap();
    let three = runtime.start(&spec("u1", "three", &["sh", "-c", "exit 3"])).unwrap();
    assert_eq!(wait_exited(&runtime, &ok), (0, None));
    assert_eq!(wait_exited(&runtime, &fails), (1, None));
    assert_eq!(wait_exited(&runtime, &three), (3, None));
    let ContainerState::Exited {
        started_at,
        finished_at,
        ..
    } = runtime.state(&three).unwrap()
    else {
        unreachable!()
    };
    assert!(started_at <= finished_at, "{started_at:?} > {finished_at:?}");
}

#[test]
fn death_by_signal_names_the_signal() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(&dir);
    let killed = runtime.start(&spec("u1", "k", &["sh", "-c", "kill -KILL $$"])).unwrap();
    let terminated = runtime.start(&spec("u1", "t", &["sh", "-c", "kill -TERM $$"])).unwrap();
    assert_eq!(wait_exited(&runtime, &killed), (137, Some(9)));
    assert_eq!(wait_exited(&runtime, &terminated), (143, Some(15)));
}

#[test]
fn ids_are_unique_across_restarts_and_removals() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let runtime = runtime(&dir);
        let a = runtime.start(&spec("u1", "web", &["true"])).unwrap();
        let b = runtime.start(&spec("u1", "web", &["true"])).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("u1-web-"), "{a}");
        wait_exited(&runtime, &a);
        wait_exited(&runtime, &b);
        runtime.remove(&a).unwrap();
        runtime.remove(&b).unwrap();
        vec![a, b]
    };
    let runtime = runtime(&dir);
    let again = runtime.start(&spec("u1", "web", &["true"])).unwrap();
    assert!(!first.contains(&again), "{again} reused from {first:?}");
}

#[test]
fn stdout_and_stderr_are_appended_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(&dir);
    let script = "echo to-stdout; echo to-stderr >&2";
    for _ in 0..2 {
        let id = runtime.start(&spec("u1", "talk", &["sh", "-c", script])).unwrap();
        assert_eq!(wait_exited(&runtime, &id), (0, None));
    }
    let log_path = runtime.log_path("u1", "talk");
    assert_eq!(log_path, dir.path().join("logs/u1/talk.log"));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(log, "to-stdout\nto-stderr\n".repeat(2));
}

#[test]
fn env_is_the_spec_on_a_minimal_base_and_working_dir_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(&dir);
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let mut spec = spec("u1", "env", &["sh", "-c", "pwd; echo ---; env"]);
    spec.env = vec![("GREETING".into(), "hello world".into())];
    spec.working_dir = Some(work.clone());
    let id = runtime.start(&spec).unwrap();
    assert_eq!(wait_exited(&runtime, &id), (0, None));

    let log = std::fs::read_to_string(runtime.log_path("u1", "env")).unwrap();
    let (pwd, env) = log.split_once("---\n").unwrap();
    assert_eq!(Path::new(pwd.trim_end()), work.canonicalize().unwrap());
    let mut names: Vec<&str> = env.lines().filter_map(|l| l.split_once('=')).map(|(k, _)| k).collect();
    names.sort();
    // sh adds PWD itself; nothing else of the agent's environment gets through.
    assert_eq!(names, ["GREETING", "HOME", "PATH", "PWD"], "{env}");
    assert!(env.contains("GREETING=hello world\n"), "{env}");
    assert!(
        env.contains(&format!("PATH={}\n", std::env::var("PATH").unwrap())),
        "{env}"
    );
}

#[test]
fn a_missing_program_fails_at_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(&dir);
    let error = runtime
        .start(&spec("u1", "web", &["pyhton3-berth-missing"]))
        .unwrap_err();
    assert!(matches!(&error, RuntimeError::CommandNotFound { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with("container web: cannot start \"pyhton3-berth-missing\": No such file or directory"),
        "{message}"
    );

    let error = runtime.start(&spec("u1", "web", &["/nonexistent/bin/x"])).unwrap_err();
    assert_eq!(
        error.to_string(),
        "container web: cannot start \"/nonexistent/bin/x\": No such file or directory"
    );

    std::fs::write(dir.path().join("data"), "not a program").unwrap();
    let mut not_executable = spec("u1", "web", &["./data"]);
    not_executable.working_dir = Some(dir.path().to_path_buf());
    let error = runtime.start(&not_executable).unwrap_err();
    assert_eq!(
        error.to_string(),
        "container web: cannot start \"./data\": Permission denied"
    );

    let mut no_dir = spec("u1", "web", &["true"]);
    no_dir.working_dir = Some(dir.path().join("absent"));
    let error = runtime.start(&no_dir).unwrap_err();
    assert!(
        error.to_string().ends_with("absent: No such file or directory"),
        "{error}"
    );

    assert!(matches!(
        runtime.start(&spec("u1", "web", &[])),
        Err(RuntimeError::EmptyCommand { .. })
    ));
    assert!(matches!(
        runtime.start(&spec("../u1", "web", &["true"])),
        Err(RuntimeError::InvalidName { .. })
    ));
    assert_eq!(runtime.list(), vec![]);
}

#[tokio::test]
async fn stop_kills_after_the_grace_period_what_ignores_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(&dir);
    let script = "trap '' TERM; echo ready; sleep 30";
    let id = runtime.start(&spec("u1", "stubborn", &["sh", "-c", script])).unwrap();
    wait_for_log(&runtime.log_path("u1", "stubborn"), "ready");
    let pid = running_pid(&runtime, &id);

    let grace = Duration::from_millis(500);
    let start = Instant::now();
    runtime.stop(&id, grace).await.unwrap();
    let took = start.elapsed();
    assert!(took >= grace, "stopped after {took:?}, before the grace period");
    assert!(took < DEADLINE, "stop took {took:?}");
    assert_eq!(wait_exited(&runtime, &id), (137, Some(9)));
    // The `sleep` went too, not only the shells.
    wait_group_gone(pid);
}

#[tokio::test]
async fn stop_ends_on_sigterm_what_heeds_it() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(&dir);
    let id = runtime.start(&spec("u1", "sleeper", &["sleep", "30"])).unwrap();
    let start = Instant::now();
    runtime.stop(&id, Duration::from_secs(60)).await.unwrap();
    assert!(start.elapsed() < DEADLINE, "stop took {:?}", start.elapsed());
    assert_eq!(wait_exited(&runtime, &id), (143, Some(15)));

    // Idempotent, also for a container that ended by itself.
    runtime.stop(&id, Duration::from_secs(60)).await.unwrap();
    let done = runtime.start(&spec("u1", "done", &["true"])).unwrap();
    wait_exited(&runtime, &done);
    runtime.stop(&done, Duration::from_secs(60)).await.unwrap();
    assert_eq!(wait_exited(&runtime, &done), (0, None));
    assert!(runtime.stop("nope", Duration::ZERO).await.unwrap_err().is_not_found());
}

#[test]
fn processes_left_behind_in_the_group_end_with_the_container() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(&dir);
    let script = "sleep 30 & echo ready";
    let id = runtime.start(&spec("u1", "leaves", &["sh", "-c", script])).unwrap();
    let pid = running_pid(&runtime, &id);
    wait_for_log(&runtime.log_path("u1", "leaves"), "ready");
    assert_eq!(wait_exited(&runtime, &id), (0, None));
    wait_group_gone(pid);
}

#[tokio::test]
async fn remove_forgets_a_stopped_container_but_keeps_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(&dir);
    let id = runtime
        .start(&spec("u1", "web", &["sh", "-c", "echo hi; sleep 30"]))
        .unwrap();
    assert!(matches!(runtime.remove(&id), Err(RuntimeError::StillRunning { .. })));
    runtime.stop(&id, Duration::from_secs(10)).await.unwrap();
    runtime.remove(&id).unwrap();
    assert_eq!(runtime.list(), vec![]);
    assert!(runtime.state(&id).unwrap_err().is_not_found());
    assert!(runtime.remove(&id).unwrap_err().is_not_found());
    let records: Vec<_> = std::fs::read_dir(dir.path().join("containers"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|name| name != "sequence")
        .collect();
    assert_eq!(records, Vec::<String>::new());
    // A new runtime on the same directory does not bring it back.
    assert_eq!(ProcessRuntime::new(dir.path().to_path_buf()).unwrap().list(), vec![]);

    let log = runtime.log_path("u1", "web");
    assert!(log.exists());
    runtime.remove_pod_logs("u1");
    assert!(!log.exists());
    assert!(!dir.path().join("logs/u1").exists());
    runtime.remove_pod_logs("u1");
}

#[tokio::test]
async fn a_new_runtime_adopts_running_containers_and_learns_exits() {
    let dir = tempfile::tempdir().unwrap();
    let (sleeper, seven, sleeper_state) = {
        let crashed = runtime(&dir);
        let sleeper = crashed.start(&spec("u1", "sleeper", &["sleep", "30"])).unwrap();
        let seven = crashed
            .start(&spec("u1", "seven", &["sh", "-c", "sleep 1; exit 7"]))
            .unwrap();
        let sleeper_state = crashed.state(&sleeper).unwrap();
        assert!(sleeper_state.is_running());
        assert!(crashed.state(&seven).unwrap().is_running());
        (sleeper, seven, sleeper_state)
        // Dropped without stopping anything, like an agent that crashed.
    };

    let adopting = runtime(&dir);
    let listed = adopting.list();
    let ids: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
    let mut expected = vec![sleeper.as_str(), seven.as_str()];
    expected.sort();
    assert_eq!(ids, expected);
    let info = listed.iter().find(|c| c.id == sleeper).unwrap();
    assert_eq!(
        (info.pod_uid.as_str(), info.pod.as_str(), info.name.as_str()),
        ("u1", "default/u1", "sleeper")
    );
    assert_eq!(adopting.state(&sleeper).unwrap(), sleeper_state);

    assert_eq!(wait_exited(&adopting, &seven), (7, None));
    let ContainerState::Running { pid, .. } = sleeper_state else {
        unreachable!()
    };
    adopting.stop(&sleeper, Duration::from_secs(10)).await.unwrap();
    assert_eq!(wait_exited(&adopting, &sleeper), (143, Some(15)));
    wait_group_gone(pid);
    assert_eq!(adopting.list().len(), 2);
}

#[test]
fn an_exit_seen_by_the_agent_survives_its_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (id, before) = {
        let first = runtime(&dir);
        let id = first.start(&spec("u1", "four", &["sh", "-c", "exit 4"])).unwrap();
        assert_eq!(wait_exited(&first, &id), (4, None));
        (id.clone(), first.state(&id).unwrap())
    };
    // Only the record can answer now.
    std::fs::remove_file(dir.path().join(format!("containers/{id}.exit"))).unwrap();
    assert_eq!(runtime(&dir).state(&id).unwrap(), before);
}

#[test]
fn a_container_killed_with_its_wrapper_while_no_agent_ran_reports_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (id, pid) = {
        let crashed = runtime(&dir);
        let id = crashed.start(&spec("u1", "victim", &["sleep", "30"])).unwrap();
        let pid = running_pid(&crashed, &id);
        (id, pid)
    };
    let pgid = Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process_group(pgid, Signal::KILL).unwrap();
    let adopting = runtime(&dir);
    assert_eq!(wait_exited(&adopting, &id), (137, Some(9)));
}

#[test]
fn without_cgroups_limits_are_skipped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = ProcessRuntime::with_cgroup_layout(dir.path().to_path_buf(), CgroupLayout::Unavailable).unwrap();
    let mut limited = spec("u1", "limited", &["true"]);
    limited.memory_limit_bytes = Some(50 << 20);
    limited.cpu_limit_millis = Some(500);
    let id = runtime.start(&limited).unwrap();
    assert_eq!(wait_exited(&runtime, &id), (0, None));
    runtime.remove(&id).unwrap();
}

/// The v1 memory mount, when this host has one we may write (else None, with a note).
fn writable_v1_memory_cgroup() -> Option<PathBuf> {
    let layout = CgroupLayout::detect();
    let CgroupLayout::V1 {
        memory: Some(memory), ..
    } = layout
    else {
        berth_testkit::skip(&format!("a cgroup v1 memory controller ({layout:?})"));
        return None;
    };
    if let Err(error) = std::fs::create_dir_all(memory.join("berth")) {
        berth_testkit::skip(&format!("a writable {}: {error}", memory.display()));
        return None;
    }
    Some(memory)
}

#[tokio::test]
async fn cgroup_v1_limits_are_set_before_the_command_runs() {
    let Some(memory) = writable_v1_memory_cgroup() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(&dir);
    let uid = unique_uid("cgroup-limits");

    // The command's own view: it starts inside the cgroup.
    let mut cat = spec(&uid, "cat", &["cat", "/proc/self/cgroup"]);
    cat.memory_limit_bytes = Some(50 << 20);
    let cat_id = runtime.start(&cat).unwrap();
    assert_eq!(wait_exited(&runtime, &cat_id), (0, None));
    let seen = std::fs::read_to_string(runtime.log_path(&uid, "cat")).unwrap();
    assert!(seen.contains(&format!(":memory:/berth/{cat_id}\n")), "{seen}");

    let mut sleeper = spec(&uid, "sleeper", &["sleep", "30"]);
    sleeper.memory_limit_bytes = Some(50 << 20);
    sleeper.cpu_limit_millis = Some(250);
    let id = runtime.start(&sleeper).unwrap();
    let pid = running_pid(&runtime, &id);
    let memory_dir = memory.join("berth").join(&id);
    let limit = std::fs::read_to_string(memory_dir.join("memory.limit_in_bytes")).unwrap();
    assert_eq!(limit.trim(), (50u64 << 20).to_string());
    // The wrapper joins right after it starts (and before it runs `sleep`).
    let start = Instant::now();
    loop {
        let procs = std::fs::read_to_string(memory_dir.join("cgroup.procs")).unwrap();
        if procs.lines().any(|l| l == pid.to_string()) {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "{pid} never in {procs}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu_dir = match CgroupLayout::detect() {
        CgroupLayout::V1 { cpu: Some(cpu), .. } => {
            let dir = cpu.join("berth").join(&id);
            let quota = std::fs::read_to_string(dir.join("cpu.cfs_quota_us")).unwrap();
            assert_eq!(quota.trim(), "25000");
            let period = std::fs::read_to_string(dir.join("cpu.cfs_period_us")).unwrap();
            assert_eq!(period.trim(), "100000");
            Some(dir)
        }
        _ => None,
    };

    runtime.stop(&id, Duration::from_secs(10)).await.unwrap();
    runtime.remove(&id).unwrap();
    runtime.remove(&cat_id).unwrap();
    assert!(!memory_dir.exists(), "{} left behind", memory_dir.display());
    if let Some(cpu_dir) = cpu_dir {
        assert!(!cpu_dir.exists(), "{} left behind", cpu_dir.display());
    }
    runtime.remove_pod_logs(&uid);
}

#[test]
fn cgroup_v1_memory_limit_kills_what_exceeds_it() {
    let Some(memory) = writable_v1_memory_cgroup() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(&dir);
    let uid = unique_uid("cgroup-oom");
    // `tail -c N` from a pipe holds the last N bytes in memory: 200 MiB here.
    let script = "head -c 209715200 /dev/zero | tail -c 209715200 > /dev/null";
    let mut hog = spec(&uid, "hog", &["sh", "-c", script]);
    hog.memory_limit_bytes = Some(50 << 20);
    let id = runtime.start(&hog).unwrap();
    assert_eq!(wait_exited(&runtime, &id), (137, Some(9)));
    assert!(
        matches!(
            runtime.state(&id).unwrap(),
            ContainerState::Exited { oom_killed: true, .. }
        ),
        "the exit is the OOM killer's"
    );
    let oom_control = std::fs::read_to_string(memory.join("berth").join(&id).join("memory.oom_control")).unwrap();
    let oom_kills: u64 = oom_control
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .map_or(0, |n| n.parse().unwrap());
    assert!(oom_kills >= 1, "{oom_control}");
    runtime.remove(&id).unwrap();

    // A SIGKILL from elsewhere, within the same limit, is no OOM kill.
    let mut killed = spec(&uid, "killed", &["sh", "-c", "kill -KILL $$"]);
    killed.memory_limit_bytes = Some(50 << 20);
    let id = runtime.start(&killed).unwrap();
    assert_eq!(wait_exited(&runtime, &id), (137, Some(9)));
    assert!(
        matches!(
            runtime.state(&id).unwrap(),
            ContainerState::Exited { oom_killed: false, .. }
        ),
        "a SIGKILL the OOM killer did not send"
    );
    runtime.remove(&id).unwrap();
    runtime.remove_pod_logs(&uid);
}
