//! Container runtimes for the node agent: the `Runtime` trait the agent drives, the
//! `process` runtime (a process group per container, cgroup limits where the host
//! has them, logs to files), the `oci` one (image root filesystems and namespaces,
//! through runc), and, for tests, the in-memory `fake` one.
//!
//! The agent holds an `Arc<dyn Runtime>` and is level-triggered: it compares the pods
//! bound to its node with `list()` and starts, stops and removes until they agree. So
//! the runtime's own state must survive the agent: a runtime created on the state
//! directory of an agent that crashed adopts the containers still running and knows how
//! the others ended, and never starts a second copy of anything by itself.
//!
//! ```text
//!   start ──► Running { pid } ──(exits | stop: TERM, grace, KILL)──► Exited { exit_code }
//!                                                                       │ remove
//!                                                                       ▼
//!                                                          forgotten (log file kept until
//!                                                          remove_pod_logs)
//! ```

mod cgroup;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod log_file;
pub mod log_writer;
pub(crate) mod oci;
mod process;
mod record;
mod spec_check;
mod terminal;
pub mod usage;
mod wrapper;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

#[cfg(any(test, feature = "testing"))]
pub use fake::FakeRuntime;
pub use oci::OciRuntime;
pub use process::ProcessRuntime;
pub use terminal::{open_pty, resize_terminal};

/// What to run: one container of one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Unique per pod incarnation. Letters, digits, `.`, `_` and `-` only.
    pub pod_uid: String,
    /// "namespace/name", for logs and messages.
    pub pod: String,
    /// The container's name. Letters, digits, `.`, `_` and `-` only.
    pub name: String,
    /// The command followed by its arguments; a command without a `/` is looked up in
    /// the container's `PATH`, one with a `/` relative to its working directory.
    pub argv: Vec<String>,
    /// On top of a minimal base environment (`PATH` and `HOME`, taken from the agent's);
    /// a later entry wins over an earlier one and over the base.
    pub env: Vec<(String, String)>,
    /// `/` when not given.
    pub working_dir: Option<PathBuf>,
    pub cpu_limit_millis: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    /// The CPU the container asked for (`resources.requests.cpu`), for CPU shares.
    pub cpu_request_millis: Option<u64>,
    /// The image's unpacked layers the container's root filesystem is made of. The
    /// process runtime, which runs on the host's own filesystem, refuses a spec with
    /// one; the OCI runtime refuses a spec without one.
    pub rootfs: Option<RootFs>,
    /// What the pod's containers share: its network namespace, hostname and the files
    /// the agent writes per pod. None for the process runtime.
    pub sandbox: Option<SandboxSpec>,
    /// The container's security context, pod and container levels merged.
    pub security: SecuritySpec,
    /// The pod's volumes bound into the container (`volumeMounts`). The process
    /// runtime, which runs on the host's own filesystem, refuses a spec with one.
    pub mounts: Vec<VolumeMount>,
}

/// A volume (a directory or file on the host) bound into a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeMount {
    /// The volume on the host.
    pub source: PathBuf,
    /// `subPath`: what under the volume is bound ("" the volume itself); relative
    /// and without `..` (validated), made as a directory when missing, and refused
    /// when a link takes it outside the volume.
    pub sub_path: String,
    /// Absolute, in the container.
    pub destination: PathBuf,
    pub read_only: bool,
}

/// A root filesystem: read-only layers, stacked as an overlay (the last one on top),
/// with a writable upper directory per container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootFs {
    /// Unpacked layer directories, lowest first; each is shared with other containers
    /// and must not be written.
    pub layers: Vec<PathBuf>,
    /// The image's digest (`sha256:...`), recorded with the container.
    pub image_digest: String,
}

/// What the containers of one pod share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxSpec {
    /// The pod's network namespace (a bind-mounted nsfs file), or None for
    /// `hostNetwork: true`.
    pub netns: Option<PathBuf>,
    /// The pod's IPC and UTS namespaces (bind-mounted nsfs files), which all its
    /// containers share as Kubernetes' do; None: the container gets new ones.
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    /// The pod's /dev/shm (a tmpfs), which every container of the pod binds; None:
    /// the container gets a tmpfs of its own.
    pub shm: Option<PathBuf>,
    /// The container's hostname (the pod's name, or the host's with host networking).
    pub hostname: String,
    /// Files bind-mounted read-only into every container of the pod:
    /// `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`.
    pub etc_hosts: Option<PathBuf>,
    pub resolv_conf: Option<PathBuf>,
    pub etc_hostname: Option<PathBuf>,
}

/// Kubernetes' securityContext as the runtime applies it (pod and container levels
/// already merged, the container's winning).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecuritySpec {
    /// `runAsUser`; else the image's `User` (which may be a name, resolved against the
    /// rootfs's /etc/passwd); else 0.
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    /// The image config's `User` ("name", "uid", "uid:gid", "name:group").
    pub image_user: Option<String>,
    pub supplemental_groups: Vec<u32>,
    /// `runAsNonRoot`: refuse to start when the user resolves to uid 0.
    pub run_as_non_root: bool,
    /// Capability names as Kubernetes writes them ("NET_ADMIN", or "ALL" in drop), on
    /// top of the runtime's default set.
    pub capabilities_add: Vec<String>,
    pub capabilities_drop: Vec<String>,
    pub privileged: bool,
    pub read_only_root_filesystem: bool,
    /// `allowPrivilegeEscalation: false` sets `no_new_privs`.
    pub no_new_privileges: bool,
    /// `seccompProfile.type`: RuntimeDefault (the runtime's default profile) or
    /// Unconfined (None).
    pub seccomp_runtime_default: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Running {
        pid: u32,
        started_at: SystemTime,
    },
    /// `exit_code` follows the shell's convention (and Kubernetes'): 128 + n for a
    /// death by signal n, which `signal` then names. A command that itself exits with a
    /// status above 128 is reported as that signal too; the two cannot be told apart.
    Exited {
        exit_code: i32,
        signal: Option<i32>,
        started_at: SystemTime,
        finished_at: SystemTime,
        /// The kernel killed it for reaching its memory limit (Kubernetes' `OOMKilled`).
        oom_killed: bool,
    },
}

impl ContainerState {
    pub fn is_running(&self) -> bool {
        matches!(self, ContainerState::Running { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub pod_uid: String,
    /// "namespace/name" as given at start.
    pub pod: String,
    pub name: String,
    pub state: ContainerState,
    /// Its cgroup directories, where its usage is read (`usage`); empty when it has
    /// none.
    pub cgroup_dirs: Vec<PathBuf>,
}

/// The future `Runtime::stop` returns.
pub type StopFuture<'a> = Pin<Box<dyn Future<Output = Result<(), RuntimeError>> + Send + 'a>>;

pub trait Runtime: Send + Sync + 'static {
    /// Starts the container; returns its id ("<pod_uid>-<name>-<n>", never reused by
    /// this state directory). A command that cannot be found fails here, not as an exit.
    fn start(&self, spec: &ContainerSpec) -> Result<String, RuntimeError>;
    /// Non-blocking: the container's state now (Exited once it exited, with its exit
    /// code).
    fn state(&self, id: &str) -> Result<ContainerState, RuntimeError>;
    /// Every container this runtime knows, including ones found on disk from before an
    /// agent restart; sorted by id.
    fn list(&self) -> Vec<ContainerInfo>;
    /// SIGTERM to the container's whole process group, then SIGKILL after `grace`;
    /// returns once it is gone. Ok at once for a container that has already exited.
    fn stop(&self, id: &str, grace: Duration) -> StopFuture<'_>;
    /// Forgets a container that is no longer running: its record and its cgroup. Its
    /// log file stays until `remove_pod_logs`.
    fn remove(&self, id: &str) -> Result<(), RuntimeError>;
    /// The log file of a container of a pod (stdout and stderr interleaved, appended
    /// across restarts, each start marked with `log_file::mark_instance_start` so that
    /// `logs --previous` finds the instance before the last).
    fn log_path(&self, pod_uid: &str, container: &str) -> PathBuf;
    fn remove_pod_logs(&self, pod_uid: &str);
    /// Runs a further process inside the running container `id` (`kubectl exec`):
    /// in its namespaces and cgroup, as its user, with its environment. The caller
    /// owns the returned child and waits for it.
    fn exec(&self, id: &str, spec: &ExecSpec) -> Result<ExecSession, RuntimeError>;
    /// "process", "runc", for messages and the agent's list of runtimes.
    fn name(&self) -> &'static str;
}

/// A process `exec` starts in a running container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSpec {
    /// The command and its arguments, looked up as the container's own command is.
    pub argv: Vec<String>,
    /// Give it a terminal (`kubectl exec -t`): its stdio is then the pty's other side.
    pub tty: bool,
}

/// A running `exec`.
#[derive(Debug)]
pub struct ExecSession {
    /// Without a tty: stdin, stdout and stderr are pipes (`child.stdin` etc.). With
    /// one: the child's stdio is the pty and its pipes are None.
    pub child: std::process::Child,
    /// The terminal's master side when `tty` was asked for: write keystrokes to it,
    /// read the output from it, resize it with TIOCSWINSZ.
    pub pty: Option<std::fs::File>,
}

#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum RuntimeError {
    #[error("container {container}: no command given")]
    EmptyCommand { container: String },
    #[error("container {container}: invalid {field} {value:?}: only letters, digits, '.', '_' and '-' are allowed")]
    InvalidName {
        container: String,
        field: &'static str,
        value: String,
    },
    #[error("container {container}: cannot start {command:?}: {cause}")]
    CommandNotFound {
        container: String,
        command: String,
        cause: String,
    },
    #[error("container {container}: working directory {}: {cause}", dir.display())]
    WorkingDir {
        container: String,
        dir: PathBuf,
        cause: String,
    },
    #[error("container {container}: cannot start {command:?}: {source}")]
    Spawn {
        container: String,
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no container {id:?}")]
    NotFound { id: String },
    /// `exec` into a container that has exited.
    #[error("container not running ({id})")]
    NotRunning { id: String },
    #[error("container {id}: still running (pid {pid}); stop it before removing it")]
    StillRunning { id: String, pid: u32 },
    #[error("container {id}: cannot signal its process group {pgid}: {source}")]
    Signal {
        id: String,
        pgid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("container {id}: still running {waited_ms} ms after SIGKILL (pid {pid})")]
    StopTimeout { id: String, pid: u32, waited_ms: u64 },
    /// The spec asks for something this runtime cannot do (a rootfs of the process
    /// runtime, a container without one on the OCI runtime, exec with a tty where
    /// no pty can be had); `what` names it.
    #[error("container {container}: the {runtime} runtime cannot {what}")]
    Unsupported {
        container: String,
        runtime: &'static str,
        what: String,
    },
    /// The container's configuration cannot be honoured as given (kubelet's reason
    /// CreateContainerConfigError): runAsNonRoot with a root user, an image user that
    /// the image does not have, an unknown capability; `message` says which.
    #[error("container {container}: {message}")]
    Config { container: String, message: String },
    /// The OCI runtime binary (runc) failed; `message` is what it said.
    #[error("container {container}: runc {command}: {message}")]
    Runc {
        container: String,
        command: &'static str,
        message: String,
    },
    /// The runtime's state directory (records, exit files, logs) failed us.
    #[error("{what} {}: {source}", path.display())]
    StateDir {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RuntimeError {
    /// True for `NotFound`: the agent may treat removing an unknown id as done.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RuntimeError::NotFound { .. })
    }
}
