//! The `process` runtime: each container is a process group on this host, started
//! under the wrapper shell (`wrapper`), limited by cgroups where the host allows
//! (`cgroup`), its spec checked first (`spec_check`), its stdout and stderr appended to
//! a log file, and recorded on disk (`record`) so that another agent process adopts it.
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
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

use super::cgroup::{self, CgroupLayout, ContainerCgroup};
use super::log_file::LogFiles;
use super::record::{self, ContainerRecord, ExitRecord, RecordStore};
use super::spec_check::{check_name, check_working_dir};
use super::wrapper::{self, Launch};
use super::{ContainerInfo, ContainerSpec, ContainerState, Runtime, RuntimeError, StopFuture};

/// How often `stop` looks whether the container has gone.
const STOP_POLL: Duration = Duration::from_millis(25);
/// How long `stop` waits after SIGKILL before it reports the container as stuck
/// (a process in uninterruptible sleep can outlive SIGKILL for a while).
const KILL_WAIT: Duration = Duration::from_secs(10);

pub struct ProcessRuntime {
    logs: LogFiles,
    records: RecordStore,
    cgroups: CgroupLayout,
    has_warned_about_cgroups: AtomicBool,
    containers: Mutex<Containers>,
}

struct Containers {
    by_id: BTreeMap<String, Container>,
}

struct Container {
    record: ContainerRecord,
    /// The wrapper, when this runtime started it; None when adopted from an earlier
    /// agent (it is then not our child: /proc tells whether it runs).
    child: Option<Child>,
}

impl ProcessRuntime {
    /// Writes containers' output through the log writer, `program log-writer ...`
    /// (the berth binary), so that their logs have times (`runtime::log_writer`).
    pub fn with_log_writer(mut self, program: PathBuf) -> ProcessRuntime {
        self.logs.set_writer(program);
        self
    }

    /// Opens (or creates) `state_dir` and adopts the containers recorded there.
    pub fn new(state_dir: PathBuf) -> Result<ProcessRuntime, RuntimeError> {
        ProcessRuntime::with_cgroup_layout(state_dir, CgroupLayout::detect())
    }

    fn with_cgroup_layout(state_dir: PathBuf, cgroups: CgroupLayout) -> Result<ProcessRuntime, RuntimeError> {
        let records = RecordStore::open(state_dir.join("containers"))?;
        let logs = LogFiles::open(&state_dir)?;
        let found = records.load_all()?;
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
            logs,
            records,
            cgroups,
            has_warned_about_cgroups: AtomicBool::new(false),
            containers: Mutex::new(Containers { by_id }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Containers> {
        // The map stays consistent through a panic elsewhere: every change is one insert
        // or remove.
        self.containers.lock().unwrap_or_else(PoisonError::into_inner)
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
            && let Some(exit) = self.poll_exit(records)
        {
            self.record.settle_exit(exit, records);
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
                oom_killed: exit.oom_killed,
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
        if spec.rootfs.is_some() {
            return Err(RuntimeError::Unsupported {
                container: spec.name.clone(),
                runtime: self.name(),
                what: "run an image (it runs commands on the host's own filesystem)".into(),
            });
        }
        if !spec.mounts.is_empty() {
            return Err(RuntimeError::Unsupported {
                container: spec.name.clone(),
                runtime: self.name(),
                what: "mount volumes (it runs commands on the host's own filesystem)".into(),
            });
        }
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
        let log = self.logs.open_for_start(&spec.pod_uid, &spec.name)?;

        let sequence = self.records.next_sequence()?;
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
                container.record.info(state)
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
        self.logs.path(pod_uid, container)
    }

    fn remove_pod_logs(&self, pod_uid: &str) {
        self.logs.remove_pod(pod_uid)
    }

    fn exec(&self, id: &str, spec: &super::ExecSpec) -> Result<super::ExecSession, RuntimeError> {
        let mut containers = self.lock();
        let container = containers
            .by_id
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_owned() })?;
        let ContainerState::Running { pid, .. } = container.observe(&self.records) else {
            return Err(RuntimeError::NotRunning { id: id.to_owned() });
        };
        let target = exec::Target {
            container: &container.record.name,
            pid,
            cgroup_dirs: &container.record.cgroup_dirs,
        };
        exec::exec(&target, spec)
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

mod exec;
#[cfg(test)]
mod tests;
