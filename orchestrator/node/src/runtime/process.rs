//! The `process` runtime: each container is a process group on this host, started
//! under the wrapper shell (`wrapper`), limited by cgroups where the host allows
//! (`cgroup`), its stdout and stderr appended to a log file, and recorded on disk
//! (`record`) so that another agent process adopts it.
//!
//! ```text
//! state_dir/containers/   records, exit files, the id sequence   (see record)
//! state_dir/logs/<pod_uid>/<container>.log
//! ```
//!
//! How a container's end is learnt, best source first:
//!
//! 1. its record already holds the exit (this or an earlier agent saw it);
//! 2. started by this runtime: `waitid(WNOWAIT)` says the wrapper exited; what the
//!    command left in its process group is SIGKILLed (the zombie wrapper still holds
//!    the group id, so the signal cannot reach anyone else), then the wrapper is reaped;
//! 3. adopted: `/proc/<pid>/stat` is gone, shows a zombie, or another start time;
//!
//! then the exit file the wrapper wrote, else the wrapper's own status, else 137
//! (SIGKILL: nothing survived to write anything). The result is written back to the
//! record, so it stays the same across agent restarts.
//!
//! Locks: one, `containers`; never held across an await or while waiting for a process
//! (reaping a zombie aside, which does not wait; `remove` may retry a busy cgroup
//! directory for up to 200 ms under it).
//! Dropping the runtime leaves every container running (an agent that crashes must not
//! take its pods down; the next one adopts them).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

use super::cgroup::{self, CgroupLayout, ContainerCgroup};
use super::record::{self, ContainerRecord, ExitRecord, RecordStore};
use super::wrapper::{self, Launch};
use super::{ContainerInfo, ContainerSpec, ContainerState, Runtime, RuntimeError, StopFuture};

/// How often `stop` looks whether the container has gone.
const STOP_POLL: Duration = Duration::from_millis(25);
/// How long `stop` waits after SIGKILL before it reports the container as stuck
/// (a process in uninterruptible sleep can outlive SIGKILL for a while).
const KILL_WAIT: Duration = Duration::from_secs(10);

pub struct ProcessRuntime {
    logs_dir: PathBuf,
    records: RecordStore,
    cgroups: CgroupLayout,
    has_warned_about_cgroups: AtomicBool,
    containers: Mutex<Containers>,
}

struct Containers {
    by_id: BTreeMap<String, Container>,
    last_sequence: u64,
}

struct Container {
    record: ContainerRecord,
    /// The wrapper, when this runtime started it; None when adopted from an earlier
    /// agent (it is then not our child: /proc tells whether it runs).
    child: Option<Child>,
}

impl ProcessRuntime {
    /// Opens (or creates) `state_dir` and adopts the containers recorded there.
    pub fn new(state_dir: PathBuf) -> Result<ProcessRuntime, RuntimeError> {
        ProcessRuntime::with_cgroup_layout(state_dir, CgroupLayout::detect())
    }

    fn with_cgroup_layout(state_dir: PathBuf, cgroups: CgroupLayout) -> Result<ProcessRuntime, RuntimeError> {
        let records = RecordStore::open(state_dir.join("containers"))?;
        let logs_dir = state_dir.join("logs");
        std::fs::create_dir_all(&logs_dir).map_err(|source| RuntimeError::StateDir {
            what: "cannot create the logs directory",
            path: logs_dir.clone(),
            source,
        })?;
        let found = records.load_all()?;
        let last_sequence = found
            .iter()
            .map(|r| r.sequence)
            .max()
            .unwrap_or(0)
            .max(records.load_sequence());
        let by_id: BTreeMap<String, Container> = found
            .into_iter()
            .map(|record| (record.id.clone(), Container { record, child: None }))
            .collect();
        if !by_id.is_empty() {
            tracing::info!(
                containers = by_id.len(),
                state_dir = %state_dir.display(),
                "found the containers of an earlier agent"
            );
        }
        tracing::debug!(?cgroups, "process runtime cgroup layout");
        Ok(ProcessRuntime {
            logs_dir,
            records,
            cgroups,
            has_warned_about_cgroups: AtomicBool::new(false),
            containers: Mutex::new(Containers { by_id, last_sequence }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Containers> {
        // The map stays consistent through a panic elsewhere: every change is one insert
        // or remove.
        self.containers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_sequence(&self) -> Result<u64, RuntimeError> {
        let mut containers = self.lock();
        let sequence = containers.last_sequence + 1;
        self.records.save_sequence(sequence)?;
        containers.last_sequence = sequence;
        Ok(sequence)
    }

    /// The container's cgroups, or none (with a warning, once) when the host will not
    /// give us any: the container then runs without limits.
    fn create_cgroup(&self, id: &str, spec: &ContainerSpec) -> ContainerCgroup {
        match self.cgroups.create(id, spec.memory_limit_bytes, spec.cpu_limit_millis) {
            Ok(cgroup) => cgroup,
            Err(reason) => {
                if !self.has_warned_about_cgroups.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        container = id, %reason,
                        "cgroups are unavailable: containers run without CPU and memory limits"
                    );
                } else {
                    tracing::debug!(container = id, %reason, "running without cgroup limits");
                }
                ContainerCgroup::default()
            }
        }
    }

    fn spawn(
        &self,
        spec: &ContainerSpec,
        id: &str,
        sequence: u64,
        launch: Launch<'_>,
        cgroup: &ContainerCgroup,
    ) -> Result<Container, RuntimeError> {
        let spawn_error = |source| RuntimeError::Spawn {
            container: spec.name.clone(),
            command: spec.argv[0].clone(),
            source,
        };
        let started_at = SystemTime::now();
        let mut child = launch.command().and_then(|mut c| c.spawn()).map_err(spawn_error)?;
        let pid = child.id();
        // Readable even if the wrapper has already exited: it stays a zombie until we
        // reap it.
        let process_start_ticks = record::ProcStat::read(pid).map_or(0, |s| s.start_ticks);
        let record = ContainerRecord {
            id: id.to_owned(),
            pod_uid: spec.pod_uid.clone(),
            pod: spec.pod.clone(),
            name: spec.name.clone(),
            sequence,
            pid,
            process_start_ticks,
            started_at,
            cgroup_dirs: cgroup.dirs.clone(),
            exit: None,
        };
        if let Err(error) = self.records.save(&record) {
            // Without a record the next agent would not know this process: it must not
            // outlive this call.
            let _ = signal_group(id, pid, Signal::KILL);
            let _ = child.wait();
            return Err(error);
        }
        // The go-ahead the wrapper waits for before it runs anything (see `wrapper`).
        // A wrapper that is gone already shows as exited at the next look.
        if let Some(mut go_ahead) = child.stdin.take() {
            let _ = go_ahead.write_all(b"go\n");
        }
        tracing::info!(container = id, pod = %spec.pod, pid, "container started");
        Ok(Container {
            record,
            child: Some(child),
        })
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let ContainerState::Running { pid, .. } = self.state(id)? else {
            return Ok(());
        };
        // A SIGTERM that reaches the wrapper before it has started the command is taken
        // by its trap and never seen by the command; so it waits for the command.
        let deadline = Instant::now() + grace;
        let mut is_term_sent = false;
        loop {
            if !self.state(id)?.is_running() {
                return Ok(());
            }
            if !is_term_sent && wrapper::has_started_command(pid) {
                signal_group(id, pid, Signal::TERM)?;
                is_term_sent = true;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep(STOP_POLL.min(deadline - now)).await;
        }
        tracing::info!(
            container = id,
            pid,
            ?grace,
            "still running after the grace period: SIGKILL"
        );
        signal_group(id, pid, Signal::KILL)?;
        let killed_at = Instant::now();
        loop {
            if !self.state(id)?.is_running() {
                return Ok(());
            }
            if killed_at.elapsed() >= KILL_WAIT {
                return Err(RuntimeError::StopTimeout {
                    id: id.to_owned(),
                    pid,
                    waited_ms: KILL_WAIT.as_millis() as u64,
                });
            }
            tokio::time::sleep(STOP_POLL).await;
        }
    }
}

impl Container {
    fn observe(&mut self, records: &RecordStore) -> ContainerState {
        if self.record.exit.is_none()
            && let Some(mut exit) = self.poll_exit(records)
        {
            // The exit file's mtime comes from the kernel's coarse clock, which may lag
            // the clock that stamped the start by a tick.
            exit.finished_at = exit.finished_at.max(self.record.started_at);
            self.record.exit = Some(exit);
            tracing::info!(
                container = %self.record.id, exit_code = exit.exit_code, signal = ?exit.signal,
                "container exited"
            );
            if let Err(error) = records.save(&self.record) {
                // Still known in memory; after an agent restart the exit file (or 137)
                // would answer instead.
                tracing::warn!(%error, "cannot record a container's exit");
            }
        }
        let record = &self.record;
        match record.exit {
            None => ContainerState::Running {
                pid: record.pid,
                started_at: record.started_at,
            },
            Some(exit) => ContainerState::Exited {
                exit_code: exit.exit_code,
                signal: exit.signal,
                started_at: record.started_at,
                finished_at: exit.finished_at,
            },
        }
    }

    /// The exit, if the container has ended since it was last looked at.
    fn poll_exit(&mut self, records: &RecordStore) -> Option<ExitRecord> {
        let id = &self.record.id;
        let pid = self.record.pid;
        if let Some(child) = &mut self.child {
            let peek = Pid::from_child(child);
            let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
            match rustix::process::waitid(WaitId::Pid(peek), options) {
                Ok(None) => return None,
                Ok(Some(_)) => {
                    // The wrapper is a zombie, so its pid still names the group: kill
                    // what the command left behind, then reap.
                    let _ = signal_group(id, pid, Signal::KILL);
                    match child.wait() {
                        Ok(status) => {
                            let now = SystemTime::now();
                            return Some(match records.read_exit(id) {
                                Some((code, at)) => ExitRecord::from_status(code, at),
                                None => match (status.code(), status.signal()) {
                                    (Some(code), _) => ExitRecord::from_status(code, now),
                                    (None, Some(signal)) => ExitRecord::from_status(128 + signal, now),
                                    (None, None) => ExitRecord::killed(now),
                                },
                            });
                        }
                        Err(error) => tracing::warn!(container = %id, %error, "cannot reap the container's wrapper"),
                    }
                }
                // Someone else reaped it (ECHILD): fall back to what /proc and the exit
                // file say.
                Err(error) => tracing::warn!(container = %id, %error, "cannot wait for the container's wrapper"),
            }
            self.child = None;
        }
        if record::is_alive(pid, self.record.process_start_ticks) {
            return None;
        }
        Some(match records.read_exit(id) {
            Some((code, at)) => ExitRecord::from_status(code, at),
            None => ExitRecord::killed(SystemTime::now()),
        })
    }
}

impl Runtime for ProcessRuntime {
    fn start(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        check_name(spec, "pod uid", &spec.pod_uid)?;
        check_name(spec, "container name", &spec.name)?;
        let Some((command, args)) = spec.argv.split_first() else {
            return Err(RuntimeError::EmptyCommand {
                container: spec.name.clone(),
            });
        };
        let env = wrapper::container_env(&spec.env);
        let cwd = spec.working_dir.clone().unwrap_or_else(|| PathBuf::from("/"));
        check_working_dir(spec, &cwd)?;
        let path_var = env.iter().find(|(k, _)| k == "PATH").map_or("", |(_, v)| v.as_str());
        let program =
            wrapper::resolve_command(command, path_var, &cwd).map_err(|cause| RuntimeError::CommandNotFound {
                container: spec.name.clone(),
                command: command.clone(),
                cause,
            })?;
        let log_path = self.log_path(&spec.pod_uid, &spec.name);
        let log = open_log(&log_path)?;

        let sequence = self.next_sequence()?;
        let id = format!("{}-{}-{sequence}", spec.pod_uid, spec.name);
        let exit_file = self.records.exit_path(&id);
        let _ = std::fs::remove_file(&exit_file);
        let cgroup = self.create_cgroup(&id, spec);
        let launch = Launch {
            exit_file: &exit_file,
            cgroup_procs: &cgroup.procs_files,
            program: &program,
            args,
            env: &env,
            cwd: &cwd,
            log,
        };
        match self.spawn(spec, &id, sequence, launch, &cgroup) {
            Ok(container) => {
                self.lock().by_id.insert(id.clone(), container);
                Ok(id)
            }
            Err(error) => {
                cgroup::remove_dirs(&cgroup.dirs);
                Err(error)
            }
        }
    }

    fn state(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        let mut containers = self.lock();
        let container = containers
            .by_id
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_owned() })?;
        Ok(container.observe(&self.records))
    }

    fn list(&self) -> Vec<ContainerInfo> {
        let mut containers = self.lock();
        containers
            .by_id
            .values_mut()
            .map(|container| {
                let state = container.observe(&self.records);
                let record = &container.record;
                ContainerInfo {
                    id: record.id.clone(),
                    pod_uid: record.pod_uid.clone(),
                    pod: record.pod.clone(),
                    name: record.name.clone(),
                    state,
                }
            })
            .collect()
    }

    fn stop(&self, id: &str, grace: Duration) -> StopFuture<'_> {
        let id = id.to_owned();
        Box::pin(async move { self.stop_container(&id, grace).await })
    }

    fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let mut containers = self.lock();
        let container = containers
            .by_id
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_owned() })?;
        if let ContainerState::Running { pid, .. } = container.observe(&self.records) {
            return Err(RuntimeError::StillRunning { id: id.to_owned(), pid });
        }
        cgroup::remove_dirs(&container.record.cgroup_dirs);
        self.records.remove(id)?;
        containers.by_id.remove(id);
        Ok(())
    }

    fn log_path(&self, pod_uid: &str, container: &str) -> PathBuf {
        self.logs_dir
            .join(path_component(pod_uid))
            .join(format!("{}.log", path_component(container)))
    }

    fn remove_pod_logs(&self, pod_uid: &str) {
        let dir = self.logs_dir.join(path_component(pod_uid));
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(dir = %dir.display(), %error, "cannot remove a pod's logs"),
        }
    }

    fn name(&self) -> &'static str {
        "process"
    }
}

/// SIGNAL to the container's process group, whose id is the wrapper's pid. A group
/// that no longer exists is not an error.
fn signal_group(id: &str, pid: u32, signal: Signal) -> Result<(), RuntimeError> {
    // Group 1 would mean "every process we may signal"; 0 our own group.
    let pgid = i32::try_from(pid)
        .ok()
        .filter(|&raw| raw > 1)
        .and_then(Pid::from_raw)
        .ok_or_else(|| RuntimeError::Signal {
            id: id.to_owned(),
            pgid: pid,
            source: std::io::Error::other("not a container's process group"),
        })?;
    match rustix::process::kill_process_group(pgid, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(errno) => Err(RuntimeError::Signal {
            id: id.to_owned(),
            pgid: pid,
            source: errno.into(),
        }),
    }
}

fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Pod uids and container names become file and cgroup names.
fn check_name(spec: &ContainerSpec, field: &'static str, value: &str) -> Result<(), RuntimeError> {
    if is_safe_name(value) {
        return Ok(());
    }
    Err(RuntimeError::InvalidName {
        container: spec.name.clone(),
        field,
        value: value.to_owned(),
    })
}

/// The name itself when it is safe (every name `start` accepts), else a mangled one
/// that stays inside the logs directory.
fn path_component(name: &str) -> String {
    if is_safe_name(name) {
        return name.to_owned();
    }
    let mangled: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("_{mangled}")
}

fn check_working_dir(spec: &ContainerSpec, dir: &Path) -> Result<(), RuntimeError> {
    let cause = match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => "Not a directory".to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "No such file or directory".to_owned(),
        Err(e) => e.to_string(),
    };
    Err(RuntimeError::WorkingDir {
        container: spec.name.clone(),
        dir: dir.to_path_buf(),
        cause,
    })
}

fn open_log(path: &Path) -> Result<std::fs::File, RuntimeError> {
    let state_dir_error = |source| RuntimeError::StateDir {
        what: "cannot open the log file",
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(state_dir_error)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(state_dir_error)
}

#[cfg(test)]
mod tests {
    //! Against real processes (`sh`, `sleep`, `true`, `false`, `cat`, `head`, `tail`).
    //! Waits are polls with generous deadlines; no assertion rests on a sleep.

    use super::*;

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
            eprintln!("skipping: no cgroup v1 memory controller ({layout:?})");
            return None;
        };
        if let Err(error) = std::fs::create_dir_all(memory.join("berth")) {
            eprintln!("skipping: cannot write {}: {error}", memory.display());
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
        let oom_control = std::fs::read_to_string(memory.join("berth").join(&id).join("memory.oom_control")).unwrap();
        let oom_kills: u64 = oom_control
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .map_or(0, |n| n.parse().unwrap());
        assert!(oom_kills >= 1, "{oom_control}");
        runtime.remove(&id).unwrap();
        runtime.remove_pod_logs(&uid);
    }
}
