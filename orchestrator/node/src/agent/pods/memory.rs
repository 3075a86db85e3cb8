//! What the pod supervisor remembers between passes, and the pure transitions on it:
//! a container's exit (with the restart decision and the back-off), and the outcome of
//! a start. The runtime only says what runs and how things ended; restart counts,
//! back-offs and the earlier exits live here.
//!
//! Back-off: the first restart waits `backoff_base`; each later one twice the one before,
//! up to `MAX_BACKOFF`; a run of `BACKOFF_RESET` or more starts the sequence over. A
//! start the runtime refuses backs off the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use berth_api::kinds::pod::is_sidecar;
use berth_api::meta::Time;
use berth_api::objects::{Container, ContainerState, ContainerStateTerminated, Pod, PodStatus};
use berth_api::time::from_system_time;

use super::config_env::{ConfigObjects, NodeFacts};
use super::pull::ImageMemory;
use super::sandbox::SandboxMemory;

/// The longest restart back-off, as the kubelet's.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A container that ran this long starts its back-off over.
pub(crate) const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// The clock, read once per pass by the executor and handed to the pure code.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    /// For back-off deadlines.
    pub(crate) instant: Instant,
    /// For the times written into statuses.
    pub(crate) wall: SystemTime,
}

impl Now {
    pub(crate) fn read() -> Now {
        Now {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// The supervisor's memory of every pod it runs.
#[derive(Debug)]
pub(crate) struct Memory {
    pub(crate) backoff_base: Duration,
    /// The runtime handlers this node offers (a runtime's name, which the container
    /// ids in statuses carry: see [`container_id`]), and whether each runs images
    /// (rather than commands on the host).
    pub(crate) handlers: BTreeMap<String, bool>,
    /// The handler of a pod that names no RuntimeClass.
    pub(crate) default_handler: String,
    /// The handlers of the RuntimeClasses the pods name, by class, as read from the
    /// store (a class's handler never changes, so they are kept).
    pub(crate) class_handlers: BTreeMap<String, String>,
    /// By pod uid.
    pub(crate) pods: BTreeMap<String, PodMemory>,
    /// Whether the containers the runtime already had (from before an agent restart)
    /// have been matched with the store's pods.
    pub(crate) adopted: bool,
    /// The uids of deleted pods whose stop (preStop hooks, SIGTERM, SIGKILL at the
    /// grace, sandbox teardown) is under way: their objects are removed only after.
    pub(crate) terminating: BTreeSet<String>,
    /// The ConfigMaps and Secrets the pods' environments name, as read before this
    /// pass, and what the node knows that an environment may name.
    pub(crate) config: ConfigObjects,
    pub(crate) node: NodeFacts,
}

impl Memory {
    /// A memory for a node offering one handler, `default_handler`, which runs
    /// commands on the host; [`with_handler`](Self::with_handler) adds others.
    pub(crate) fn new(backoff_base: Duration, default_handler: &str) -> Self {
        Memory {
            backoff_base,
            handlers: BTreeMap::from([(default_handler.to_string(), false)]),
            default_handler: default_handler.to_string(),
            class_handlers: BTreeMap::new(),
            pods: BTreeMap::new(),
            adopted: false,
            terminating: BTreeSet::new(),
            config: ConfigObjects::default(),
            node: NodeFacts::default(),
        }
    }

    /// The handler a pod runs with: the one its RuntimeClass names (as read into
    /// `class_handlers`; a class not read yet is taken as naming its handler, as the
    /// built-in ones do); else, for a pod none of whose
    /// containers names an image, a handler that runs commands on the host (nothing
    /// else could run it); else the node's default.
    pub(crate) fn handler_of(&self, pod: &Pod) -> String {
        if let Some(class) = pod.spec.runtime_class_name.clone().filter(|c| !c.is_empty()) {
            return self.class_handlers.get(&class).cloned().unwrap_or(class);
        }
        let has_image = pod
            .spec
            .containers
            .iter()
            .chain(pod.spec.init_containers.iter().flatten())
            .any(|c| c.image.as_deref().is_some_and(|i| !i.is_empty()));
        let on_host = self.handlers.iter().find(|(_, runs_images)| !**runs_images);
        match on_host {
            Some((handler, _)) if !has_image && self.runs_images(&self.default_handler) => handler.clone(),
            _ => self.default_handler.clone(),
        }
    }

    /// Forgets everything (after every container was stopped): the next pass adopts
    /// again.
    pub(crate) fn forget_all(&mut self) {
        self.pods.clear();
        self.adopted = false;
        self.terminating.clear();
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PodMemory {
    /// The pod as last seen in the store.
    pub(crate) pod: Pod,
    /// The runtime handler its containers run with.
    pub(crate) handler: String,
    /// Whether its handler runs images (so it has a sandbox); set by each pass.
    pub(crate) runs_images: bool,
    /// Its sandbox; untouched for a handler that runs commands on the host.
    pub(crate) sandbox: SandboxMemory,
    /// Its volumes (for a handler that runs images).
    pub(crate) volumes: super::volumes::PodVolumes,
    /// By container name, init containers too (names are unique across both lists).
    pub(crate) containers: BTreeMap<String, ContainerMemory>,
    /// Every init container completed (and every sidecar started) once: the app
    /// containers may start, and the init containers never run again.
    pub(crate) initialized: bool,
    pub(crate) start_time: Time,
    /// The status last written to the store.
    pub(crate) reported: Option<PodStatus>,
}

impl PodMemory {
    pub(crate) fn new(pod: &Pod, handler: &str, now: Now) -> Self {
        let mut containers = BTreeMap::new();
        // A restarted agent keeps counting restarts where the last one left off.
        // A pod that already ended stays ended.
        // An init container that completed stays completed.
        let ended = matches!(pod.status.phase.as_deref(), Some("Succeeded" | "Failed"));
        let init = pod.status.init_container_statuses.iter().flatten();
        let statuses = init.map(|s| (s, true));
        let statuses = statuses.chain(pod.status.container_statuses.iter().flatten().map(|s| (s, false)));
        for (status, is_init) in statuses {
            let terminated = |state: &Option<ContainerState>| state.as_ref().and_then(|s| s.terminated.clone());
            let completed = is_init && terminated(&status.state).is_some_and(|t| t.exit_code == 0);
            containers.insert(
                status.name.clone(),
                ContainerMemory {
                    restart_count: status.restart_count,
                    last_terminated: terminated(&status.last_state),
                    terminated: terminated(&status.state),
                    done: ended || completed,
                    ..Default::default()
                },
            );
        }
        let initialized = pod.spec.init_containers.as_ref().is_none_or(Vec::is_empty)
            || berth_api::conditions::is_true(pod.status.conditions.as_ref(), "Initialized");
        PodMemory {
            pod: pod.clone(),
            handler: handler.to_string(),
            runs_images: false,
            sandbox: SandboxMemory::default(),
            volumes: Default::default(),
            containers,
            initialized,
            start_time: pod
                .status
                .start_time
                .clone()
                .unwrap_or_else(|| from_system_time(now.wall)),
            reported: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ContainerMemory {
    /// The runtime's id of the current run, while there is one.
    pub(crate) id: Option<String>,
    pub(crate) started_at: Option<SystemTime>,
    pub(crate) restart_count: i32,
    /// The latest exit, while the container is not running.
    pub(crate) terminated: Option<ContainerStateTerminated>,
    /// The exit before the current run.
    pub(crate) last_terminated: Option<ContainerStateTerminated>,
    /// The wait before the next restart; zero until the first pass sets the base.
    pub(crate) backoff: Duration,
    /// When the next (re)start may happen; `None`: now.
    pub(crate) next_start: Option<Instant>,
    /// The restartPolicy says this container is finished.
    pub(crate) done: bool,
    /// Why the last start failed: (reason, message).
    pub(crate) error: Option<(String, String)>,
    /// Its image, for a handler that runs images.
    pub(crate) image: ImageMemory,
    /// What its probes found of the current run.
    pub(crate) health: super::probe::Health,
    /// The run whose postStart hook has not finished yet: it is not Running, and the
    /// containers after it wait.
    pub(crate) post_start_pending: Option<String>,
}

/// A container's id as statuses give it, `<type>://<id>` as Kubernetes has it
/// (`containerd://…`): `berth-process://<pod uid>-<container>-<n>`.
pub(crate) fn container_id(runtime: &str, id: &str) -> String {
    format!("berth-{runtime}://{id}")
}

/// A container's exit as the runtime reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exit {
    /// As statuses give it ([`container_id`]).
    pub(crate) container_id: String,
    pub(crate) exit_code: i32,
    pub(crate) signal: Option<i32>,
    pub(crate) started_at: SystemTime,
    pub(crate) finished_at: SystemTime,
    pub(crate) oom_killed: bool,
}

impl Exit {
    /// Kubernetes' reason for it: OOMKilled, else Completed for 0, else Error.
    pub(crate) fn reason(&self) -> &'static str {
        if self.oom_killed {
            "OOMKilled"
        } else if self.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }
}

/// A pod's `restartPolicy`; anything but `Never` and `OnFailure` is `Always`, the
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub(crate) fn of(pod: &Pod) -> Self {
        match pod.spec.restart_policy.as_deref().unwrap_or_default() {
            "Never" => RestartPolicy::Never,
            "OnFailure" => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        }
    }

    /// The policy a container restarts by: a sidecar's is Always; another init
    /// container's is OnFailure, unless the pod's is Never (it must complete once);
    /// an app container's is the pod's.
    pub(crate) fn of_container(pod: &Pod, container: &Container, is_init: bool) -> Self {
        match (is_init, RestartPolicy::of(pod)) {
            (false, policy) => policy,
            (true, _) if is_sidecar(container) => RestartPolicy::Always,
            (true, RestartPolicy::Never) => RestartPolicy::Never,
            (true, _) => RestartPolicy::OnFailure,
        }
    }

    pub(crate) fn restarts_after(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

impl ContainerMemory {
    /// The run ended: remembers how, and either schedules the restart after the
    /// back-off or marks the container done, as `policy` says.
    pub(crate) fn exited(&mut self, exit: Exit, policy: RestartPolicy, backoff_base: Duration, now: Now) {
        let ran = exit.finished_at.duration_since(exit.started_at).unwrap_or_default();
        if ran >= BACKOFF_RESET {
            self.backoff = backoff_base;
        }
        self.terminated = Some(ContainerStateTerminated {
            container_id: Some(exit.container_id.clone()),
            exit_code: exit.exit_code,
            signal: exit.signal,
            reason: Some(exit.reason().into()),
            started_at: Some(from_system_time(exit.started_at)),
            finished_at: Some(from_system_time(exit.finished_at)),
            ..Default::default()
        });
        self.id = None;
        self.post_start_pending = None;
        // Each start ensures its image again, as the kubelet's does: with
        // `imagePullPolicy: Always` a restart runs what the tag names now.
        if self.image.pulled().is_some() {
            self.image.state = super::pull::ImageState::Wanted;
        }
        if policy.restarts_after(exit.exit_code) {
            self.back_off(now);
        } else {
            self.done = true;
        }
    }

    /// The runtime started a run as `id`.
    pub(crate) fn started(&mut self, id: String, now: Now) {
        let is_restart = self.terminated.is_some() || self.error.is_some() || self.started_at.is_some();
        if is_restart {
            self.restart_count += 1;
        }
        self.id = Some(id);
        self.started_at = Some(now.wall);
        self.last_terminated = self.terminated.take().or(self.last_terminated.take());
        self.next_start = None;
        self.error = None;
    }

    /// The runtime refused to start it: tries again after the back-off.
    pub(crate) fn start_failed(&mut self, message: String, now: Now) {
        self.error = Some(("RunContainerError".into(), message));
        self.back_off(now);
    }

    /// Whether it may be (re)started now.
    pub(crate) fn is_due(&self, now: Now) -> bool {
        !self.done && self.next_start.is_none_or(|at| at <= now.instant)
    }

    fn back_off(&mut self, now: Now) {
        self.next_start = Some(now.instant + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}
