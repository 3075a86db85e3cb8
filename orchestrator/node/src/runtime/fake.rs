//! An in-memory [`Runtime`] for tests of the agent: nothing runs. A test decides when a
//! container exits and with what code, makes starts fail, and reads back what the
//! agent asked for (starts, stops with their grace, removals, log removals).
//!
//! A simulated agent restart is a second supervisor given the same
//! `Arc<FakeRuntime>`: what the first left running is in `list()` for the second to
//! adopt, as the process runtime's state directory makes it for a real agent.
//!
//! ```text
//!   start ──► Running ──(exit / exit_after | stop: 143 at once,
//!                        or 137 after the grace when ignore_sigterm)──► Exited
//!                                                                         │ remove
//!                                                                         ▼
//!                                                                     forgotten
//! ```
//!
//! Lock: one, `state`; never held across an await.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use super::{ContainerInfo, ContainerSpec, ContainerState, Runtime, RuntimeError, StopFuture};

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

#[derive(Default)]
pub struct FakeRuntime {
    state: Mutex<FakeState>,
}

#[derive(Default)]
struct FakeState {
    containers: BTreeMap<String, ContainerInfo>,
    last_sequence: u64,
    start_error: Option<String>,
    ignores_sigterm: BTreeSet<String>,
    starts: Vec<ContainerSpec>,
    stops: Vec<(String, Duration)>,
    removed: Vec<String>,
    removed_logs: Vec<String>,
    /// "exec <id> <argv...>" and "stop <id>", in the order they came.
    calls: Vec<String>,
}

impl FakeRuntime {
    pub fn new() -> Self {
        FakeRuntime::default()
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The running container `id` exits now with `exit_code` (above 128: death by the
    /// signal `exit_code - 128`, as the process runtime reports it).
    ///
    /// Panics if `id` is not running: a test that says so is wrong.
    pub fn exit(&self, id: &str, exit_code: i32) {
        self.end(id, exit_code, None);
    }

    /// As [`exit`](Self::exit), but the container ran for `ran` (its `finished_at` is
    /// `started_at + ran`), for the back-off reset of a long run.
    pub fn exit_after(&self, id: &str, exit_code: i32, ran: Duration) {
        self.end(id, exit_code, Some(ran));
    }

    /// The running container `id` is killed now for reaching its memory limit: 137
    /// (SIGKILL), marked as the kernel's OOM kill.
    pub fn oom_kill(&self, id: &str) {
        self.end(id, 128 + SIGKILL, None);
        let mut state = self.lock();
        if let Some(ContainerState::Exited { oom_killed, .. }) = state.containers.get_mut(id).map(|c| &mut c.state) {
            *oom_killed = true;
        }
    }

    fn end(&self, id: &str, exit_code: i32, ran: Option<Duration>) {
        let mut state = self.lock();
        let container = state
            .containers
            .get_mut(id)
            .unwrap_or_else(|| panic!("no container {id}"));
        let ContainerState::Running { started_at, .. } = container.state else {
            panic!("container {id} has already exited");
        };
        container.state = ContainerState::Exited {
            exit_code,
            signal: (exit_code > 128).then_some(exit_code - 128),
            started_at,
            finished_at: ran.map_or_else(SystemTime::now, |ran| started_at + ran),
            oom_killed: false,
        };
    }

    /// Every later start fails with `message` (as a command that cannot be found);
    /// `None`: starts succeed again.
    pub fn fail_starts(&self, message: Option<&str>) {
        self.lock().start_error = message.map(str::to_owned);
    }

    /// `stop` on `id` then waits the whole grace before the container dies of SIGKILL
    /// (otherwise it dies of SIGTERM at once).
    pub fn ignore_sigterm(&self, id: &str) {
        self.lock().ignores_sigterm.insert(id.to_owned());
    }

    /// Every spec `start` was given, failed starts included, in order.
    pub fn starts(&self) -> Vec<ContainerSpec> {
        self.lock().starts.clone()
    }

    /// Every `stop`: the id and its grace, in order.
    pub fn stops(&self) -> Vec<(String, Duration)> {
        self.lock().stops.clone()
    }

    /// Every id `remove` forgot, in order.
    /// The execs and stops asked for, in order ("exec <id> <argv>", "stop <id>").
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    pub fn removed(&self) -> Vec<String> {
        self.lock().removed.clone()
    }

    /// Every pod uid whose logs were removed, in order.
    pub fn removed_logs(&self) -> Vec<String> {
        self.lock().removed_logs.clone()
    }

    /// The ids of the containers running now, sorted.
    pub fn running(&self) -> Vec<String> {
        self.lock()
            .containers
            .values()
            .filter(|c| c.state.is_running())
            .map(|c| c.id.clone())
            .collect()
    }
}

impl Runtime for FakeRuntime {
    fn start(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let mut state = self.lock();
        state.starts.push(spec.clone());
        let Some(command) = spec.argv.first() else {
            return Err(RuntimeError::EmptyCommand {
                container: spec.name.clone(),
            });
        };
        if let Some(cause) = state.start_error.clone() {
            return Err(RuntimeError::CommandNotFound {
                container: spec.name.clone(),
                command: command.clone(),
                cause,
            });
        }
        state.last_sequence += 1;
        let sequence = state.last_sequence;
        let id = format!("{}-{}-{sequence}", spec.pod_uid, spec.name);
        let info = ContainerInfo {
            id: id.clone(),
            pod_uid: spec.pod_uid.clone(),
            pod: spec.pod.clone(),
            name: spec.name.clone(),
            state: ContainerState::Running {
                pid: 10_000 + u32::try_from(sequence).unwrap_or(u32::MAX - 10_000),
                started_at: SystemTime::now(),
            },
            cgroup_dirs: Vec::new(),
        };
        state.containers.insert(id.clone(), info);
        Ok(id)
    }

    fn state(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        self.lock()
            .containers
            .get(id)
            .map(|c| c.state)
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_owned() })
    }

    fn list(&self) -> Vec<ContainerInfo> {
        self.lock().containers.values().cloned().collect()
    }

    fn stop(&self, id: &str, grace: Duration) -> StopFuture<'_> {
        let id = id.to_owned();
        Box::pin(async move {
            let ignores_sigterm = {
                let mut state = self.lock();
                state.stops.push((id.clone(), grace));
                state.calls.push(format!("stop {id}"));
                match state.containers.get(&id) {
                    None => return Err(RuntimeError::NotFound { id }),
                    Some(c) if !c.state.is_running() => return Ok(()),
                    Some(_) => state.ignores_sigterm.contains(&id),
                }
            };
            let signal = if ignores_sigterm {
                tokio::time::sleep(grace).await;
                SIGKILL
            } else {
                SIGTERM
            };
            let mut state = self.lock();
            if let Some(c) = state.containers.get_mut(&id)
                && let ContainerState::Running { started_at, .. } = c.state
            {
                c.state = ContainerState::Exited {
                    exit_code: 128 + signal,
                    signal: Some(signal),
                    started_at,
                    finished_at: SystemTime::now(),
                    oom_killed: false,
                };
            }
            Ok(())
        })
    }

    fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let mut state = self.lock();
        match state.containers.get(id).map(|c| c.state) {
            None => Err(RuntimeError::NotFound { id: id.to_owned() }),
            Some(ContainerState::Running { pid, .. }) => Err(RuntimeError::StillRunning { id: id.to_owned(), pid }),
            Some(ContainerState::Exited { .. }) => {
                state.containers.remove(id);
                state.removed.push(id.to_owned());
                Ok(())
            }
        }
    }

    /// A path nothing is ever written to: the fake keeps no logs.
    fn log_path(&self, pod_uid: &str, container: &str) -> PathBuf {
        PathBuf::from(format!("/nonexistent/berth-fake-runtime/{pod_uid}/{container}.log"))
    }

    fn remove_pod_logs(&self, pod_uid: &str) {
        self.lock().removed_logs.push(pod_uid.to_owned());
    }

    /// Records the exec and runs `true` on the host in its place (the caller gets a
    /// real child to wait for); NotRunning for a container that is not running.
    fn exec(&self, id: &str, spec: &super::ExecSpec) -> Result<super::ExecSession, RuntimeError> {
        let mut state = self.lock();
        if !state.containers.get(id).is_some_and(|c| c.state.is_running()) {
            return Err(RuntimeError::NotRunning { id: id.to_owned() });
        }
        state.calls.push(format!("exec {id} {}", spec.argv.join(" ")));
        let child = std::process::Command::new("true")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|source| RuntimeError::Spawn {
                container: id.to_owned(),
                command: "true".into(),
                source,
            })?;
        Ok(super::ExecSession { child, pty: None })
    }

    fn name(&self) -> &'static str {
        "fake"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> ContainerSpec {
        ContainerSpec {
            pod_uid: "u1".into(),
            pod: "default/p".into(),
            name: name.into(),
            argv: vec!["serve".into()],
            ..Default::default()
        }
    }

    #[test]
    fn a_container_runs_until_the_test_says_it_exits() {
        let runtime = FakeRuntime::new();
        let id = runtime.start(&spec("main")).unwrap();
        assert_eq!(id, "u1-main-1");
        assert!(runtime.state(&id).unwrap().is_running());
        assert_eq!(runtime.running(), vec![id.clone()]);
        assert!(matches!(runtime.remove(&id), Err(RuntimeError::StillRunning { .. })));
        runtime.exit_after(&id, 137, Duration::from_secs(700));
        let ContainerState::Exited {
            exit_code,
            signal,
            started_at,
            finished_at,
            oom_killed,
        } = runtime.state(&id).unwrap()
        else {
            panic!("still running");
        };
        assert_eq!((exit_code, signal, oom_killed), (137, Some(9), false));
        assert_eq!(
            finished_at.duration_since(started_at).unwrap(),
            Duration::from_secs(700)
        );
        runtime.remove(&id).unwrap();
        assert!(runtime.state(&id).unwrap_err().is_not_found());
        assert_eq!(runtime.removed(), vec![id]);
        assert_eq!(
            runtime.start(&spec("main")).unwrap(),
            "u1-main-2",
            "ids are never reused"
        );
    }

    #[test]
    fn failing_starts_are_recorded_and_start_nothing() {
        let runtime = FakeRuntime::new();
        runtime.fail_starts(Some("not found"));
        let e = runtime.start(&spec("main")).unwrap_err();
        assert!(e.to_string().contains("not found"), "{e}");
        assert!(runtime.list().is_empty());
        assert_eq!(runtime.starts().len(), 1);
        runtime.fail_starts(None);
        runtime.start(&spec("main")).unwrap();
        assert_eq!(runtime.list().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn stop_waits_the_grace_only_for_what_ignores_sigterm() {
        let runtime = FakeRuntime::new();
        let heeds = runtime.start(&spec("a")).unwrap();
        let ignores = runtime.start(&spec("b")).unwrap();
        runtime.ignore_sigterm(&ignores);
        let begin = tokio::time::Instant::now();
        runtime.stop(&heeds, Duration::from_secs(30)).await.unwrap();
        assert_eq!(begin.elapsed(), Duration::ZERO);
        runtime.stop(&ignores, Duration::from_secs(30)).await.unwrap();
        assert_eq!(begin.elapsed(), Duration::from_secs(30));
        let exit = |id: &str| match runtime.state(id).unwrap() {
            ContainerState::Exited { exit_code, .. } => exit_code,
            ContainerState::Running { .. } => panic!("{id} still runs"),
        };
        assert_eq!((exit(&heeds), exit(&ignores)), (143, 137));
        assert_eq!(
            runtime.stops(),
            vec![(heeds, Duration::from_secs(30)), (ignores, Duration::from_secs(30))]
        );
        assert!(runtime.stop("nope", Duration::ZERO).await.unwrap_err().is_not_found());
    }
}
