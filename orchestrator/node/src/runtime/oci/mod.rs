//! The `oci` runtime: each container runs from its image's layers in its own
//! namespaces and cgroups, through runc.
//!
//! ```text
//! start ─► bundle: overlay of the layers on rootfs/, config.json   (bundle, spec)
//!       ─► record written (pid = the supervisor's)                  (record)
//!       ─► go-ahead ─► sh supervisor ─► runc run --keep ─► container (runc)
//!       ─► waits for runc's pid file (started) or the supervisor's end (failed)
//! stop   ─► runc kill TERM, grace, runc kill KILL
//! remove ─► runc delete -f (cgroups), unmount, bundle gone, record gone
//!
//! state_dir/oci/containers/   records and exit files (the process runtime's format)
//! state_dir/oci/bundles/<id>/ see bundle
//! state_dir/oci/runc/         runc's own state (--root)
//! state_dir/logs/             the log files, laid out as the process runtime's
//! ```
//!
//! How a container's end is learnt, best source first: its record; the supervisor,
//! when this runtime started it (`waitid`), or else `/proc` (adopted); then the exit
//! file the supervisor wrote, else its own status; a supervisor gone without a word
//! (SIGKILLed) gets its container killed by runc and is reported as 137. OOM kills
//! are read from the container's memory cgroup, which `--keep` keeps until `remove`.
//!
//! Locks: one, `containers`; never held across an await, a runc command or the wait
//! for a container to start (`observe` may run `runc kill` for a supervisor that
//! vanished, a rare path).
//! Dropping the runtime leaves every container running; the next one adopts them.

mod bundle;
mod config;
mod container;
mod exec;
mod runc;
mod security;
mod spec;
mod user;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::Child;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rustix::process::{Pid, WaitId, WaitIdOptions};

use super::cgroup::{self, CgroupLayout};
use super::log_file::LogFiles;
use super::record::{self, ContainerRecord, RecordStore};
use super::spec_check::check_name;
use super::{ContainerInfo, ContainerSpec, ContainerState, ExecSession, ExecSpec, Runtime, RuntimeError, StopFuture};
use bundle::Bundle;
use container::Container;
use runc::Runc;

/// How often `stop` and `start` look at the container.
const POLL: Duration = Duration::from_millis(20);
/// How long `start` waits for runc to start the container (pulling and unpacking
/// happened before; this is runc's own work, well under a second when idle).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `stop` waits after SIGKILL before it reports the container as stuck.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// The parent of every container's cgroup, in each hierarchy.
const CGROUP_PARENT: &str = "berth";

pub struct OciRuntime {
    logs: LogFiles,
    records: RecordStore,
    bundles_dir: PathBuf,
    runc: Runc,
    /// Every cgroup hierarchy's mount point: runc makes the container's cgroup in
    /// each, and `remove` makes sure they are gone.
    cgroup_mounts: Vec<PathBuf>,
    /// Whether runc was built with seccomp (asked once, at `new`).
    has_seccomp: bool,
    containers: Mutex<Containers>,
}

struct Containers {
    by_id: BTreeMap<String, Container>,
}

impl OciRuntime {
    /// Why this host cannot run the OCI runtime, if it cannot: it needs root, runc,
    /// overlayfs, and the cgroup v1 memory and cpu controllers.
    pub fn available() -> Result<(), String> {
        if !rustix::process::geteuid().is_root() {
            return Err("the runc runtime needs root".into());
        }
        if runc::find_runc().is_none() {
            return Err("runc is not installed (not on PATH, nor /usr/sbin/runc)".into());
        }
        let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
        if !filesystems
            .lines()
            .any(|line| line.split_whitespace().last() == Some("overlay"))
        {
            return Err("the kernel has no overlay filesystem".into());
        }
        match CgroupLayout::detect() {
            CgroupLayout::V1 {
                memory: Some(_),
                cpu: Some(_),
                ..
            } => Ok(()),
            layout => Err(format!(
                "the runc runtime needs the cgroup v1 memory and cpu controllers mounted ({layout:?})"
            )),
        }
    }

    /// Writes containers' output through the log writer, `program log-writer ...`
    /// (the berth binary), so that their logs have times (`runtime::log_writer`).
    pub fn with_log_writer(mut self, program: PathBuf) -> OciRuntime {
        self.logs.set_writer(program);
        self
    }

    /// Opens (or creates) `state_dir` and adopts the containers recorded there.
    pub fn new(state_dir: PathBuf) -> Result<OciRuntime, RuntimeError> {
        let binary = runc::find_runc().ok_or_else(|| RuntimeError::Unsupported {
            container: String::new(),
            runtime: "runc",
            what: "run anything: runc is not installed".into(),
        })?;
        let oci_dir = state_dir.join("oci");
        let records = RecordStore::open(oci_dir.join("containers"))?;
        let logs = LogFiles::open(&state_dir)?;
        let bundles_dir = oci_dir.join("bundles");
        let runc_root = oci_dir.join("runc");
        for dir in [&bundles_dir, &runc_root] {
            std::fs::create_dir_all(dir).map_err(|source| RuntimeError::StateDir {
                what: "cannot create",
                path: dir.clone(),
                source,
            })?;
        }
        let found = records.load_all()?;
        let by_id: BTreeMap<String, Container> = found
            .into_iter()
            .map(|record| {
                let bundle = Bundle::new(&bundles_dir, &record.id);
                (
                    record.id.clone(),
                    Container {
                        record,
                        bundle,
                        child: None,
                    },
                )
            })
            .collect();
        if !by_id.is_empty() {
            tracing::info!(
                containers = by_id.len(),
                state_dir = %state_dir.display(),
                "found the containers of an earlier agent"
            );
        }
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let runc = Runc {
            binary,
            root: runc_root,
        };
        Ok(OciRuntime {
            logs,
            records,
            bundles_dir,
            has_seccomp: runc.has_seccomp(),
            runc,
            cgroup_mounts: cgroup::all_mount_points(&mounts),
            containers: Mutex::new(Containers { by_id }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Containers> {
        // Every change to the map is one insert or remove: consistent after a panic.
        self.containers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The container's cgroup path (`linux.cgroupsPath`) and its directory in every
    /// hierarchy.
    fn cgroup_of(&self, pod_uid: &str, id: &str) -> (String, Vec<PathBuf>) {
        let relative = format!("{CGROUP_PARENT}/{pod_uid}/{id}");
        let dirs = self.cgroup_mounts.iter().map(|m| m.join(&relative)).collect();
        (format!("/{relative}"), dirs)
    }

    /// Everything of a container that never started or has been removed: runc's
    /// state and cgroups, the overlay and bundle, the cgroup directories, the pod's
    /// cgroup parent once empty, the record.
    fn tear_down(&self, record: &ContainerRecord, bundle: &Bundle) -> Result<(), RuntimeError> {
        if let Err(message) = self.runc.delete(&record.id) {
            tracing::warn!(container = %record.id, %message, "runc delete failed");
        }
        bundle.destroy()?;
        cgroup::remove_dirs(&record.cgroup_dirs);
        for mount in &self.cgroup_mounts {
            // Fails while another container of the pod has its cgroup there.
            let _ = std::fs::remove_dir(mount.join(CGROUP_PARENT).join(&record.pod_uid));
        }
        self.records.remove(&record.id)
    }

    fn start_container(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        check_name(spec, "pod uid", &spec.pod_uid)?;
        check_name(spec, "container name", &spec.name)?;
        let layers = match &spec.rootfs {
            Some(rootfs) if !rootfs.layers.is_empty() => &rootfs.layers,
            _ => {
                return Err(RuntimeError::Unsupported {
                    container: spec.name.clone(),
                    runtime: self.name(),
                    what: "run a container without an image's layers".into(),
                });
            }
        };
        if spec.argv.is_empty() {
            return Err(RuntimeError::EmptyCommand {
                container: spec.name.clone(),
            });
        }
        if spec.security.seccomp_runtime_default && !spec.security.privileged && !self.has_seccomp {
            return Err(RuntimeError::Unsupported {
                container: spec.name.clone(),
                runtime: self.name(),
                what: "apply the RuntimeDefault seccomp profile: runc was built without seccomp".into(),
            });
        }
        let sequence = self.records.next_sequence()?;
        let id = format!("{}-{}-{sequence}", spec.pod_uid, spec.name);
        let bundle = Bundle::new(&self.bundles_dir, &id);
        let (cgroups_path, cgroup_dirs) = self.cgroup_of(&spec.pod_uid, &id);
        let mut record = ContainerRecord {
            id: id.clone(),
            pod_uid: spec.pod_uid.clone(),
            pod: spec.pod.clone(),
            name: spec.name.clone(),
            sequence,
            pid: 0,
            process_start_ticks: 0,
            started_at: SystemTime::now(),
            cgroup_dirs,
            exit: None,
        };
        let result = bundle
            .create(layers)
            .and_then(|()| self.configure(spec, &bundle, &cgroups_path))
            .and_then(|()| self.launch(spec, &bundle, &mut record));
        match result {
            Ok(child) => {
                tracing::info!(container = %id, pod = %spec.pod, pid = record.pid, "container started");
                let container = Container {
                    record,
                    bundle,
                    child: Some(child),
                };
                self.lock().by_id.insert(id.clone(), container);
                Ok(id)
            }
            Err(error) => {
                if let Err(cleanup) = self.tear_down(&record, &bundle) {
                    tracing::warn!(container = %id, %cleanup, "cannot clean up after a failed start");
                }
                Err(error)
            }
        }
    }

    /// The user from the mounted root filesystem, then `config.json`.
    fn configure(&self, spec: &ContainerSpec, bundle: &Bundle, cgroups_path: &str) -> Result<(), RuntimeError> {
        let config_error = |message| RuntimeError::Config {
            container: spec.name.clone(),
            message,
        };
        let rootfs = bundle.rootfs();
        let user = user::resolve(&spec.security, &rootfs).map_err(config_error)?;
        let placement = spec::Placement {
            rootfs: &rootfs,
            cgroups_path,
            user,
        };
        let mut config = spec::build(spec, placement).map_err(config_error)?;
        for mount in &spec.mounts {
            let source = volume_source(mount).map_err(config_error)?;
            config.mounts.push(spec::volume_mount(mount, source));
        }
        bundle.write_config(&config)
    }

    /// Spawns the supervisor, records the container, gives the go-ahead and waits
    /// until runc has started the container (its pid file) or failed (the
    /// supervisor's end without one).
    fn launch(
        &self,
        spec: &ContainerSpec,
        bundle: &Bundle,
        record: &mut ContainerRecord,
    ) -> Result<Child, RuntimeError> {
        let log = self.logs.open_for_start(&spec.pod_uid, &spec.name)?;
        let exit_file = self.records.exit_path(&record.id);
        let _ = std::fs::remove_file(&exit_file);
        let mut child = self
            .runc
            .supervised_run(&bundle.dir, &record.id, &exit_file, log)
            .and_then(|mut command| command.spawn())
            .map_err(|source| RuntimeError::Spawn {
                container: spec.name.clone(),
                command: "runc run".into(),
                source,
            })?;
        record.pid = child.id();
        record.process_start_ticks = record::ProcStat::read(record.pid).map_or(0, |s| s.start_ticks);
        record.started_at = SystemTime::now();
        if let Err(error) = self.records.save(record) {
            // Without the go-ahead the supervisor runs nothing and exits.
            drop(child.stdin.take());
            let _ = child.wait();
            return Err(error);
        }
        if let Some(mut go_ahead) = child.stdin.take() {
            let _ = go_ahead.write_all(b"go\n");
        }
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if runc::read_pid_file(&bundle.dir).is_some() {
                return Ok(child);
            }
            let has_exited = matches!(
                rustix::process::waitid(
                    WaitId::Pid(Pid::from_child(&child)),
                    WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
                ),
                Ok(Some(_)) | Err(_)
            );
            if has_exited {
                // runc writes the pid file before it waits for the container: one
                // that ran and ended at once has it too.
                if runc::read_pid_file(&bundle.dir).is_some() {
                    return Ok(child);
                }
                let status = child.wait().ok();
                let message = runc::last_logged_error(&bundle.dir)
                    .unwrap_or_else(|| format!("runc run ended ({status:?}) without starting the container"));
                if runc::is_command_not_found(&message) {
                    return Err(RuntimeError::CommandNotFound {
                        container: spec.name.clone(),
                        command: spec.argv[0].clone(),
                        cause: message,
                    });
                }
                return Err(RuntimeError::Runc {
                    container: spec.name.clone(),
                    command: "run",
                    message,
                });
            }
            if Instant::now() >= deadline {
                let _ = self.runc.kill(&record.id, "KILL");
                let _ = child.kill();
                let _ = child.wait();
                return Err(RuntimeError::Runc {
                    container: spec.name.clone(),
                    command: "run",
                    message: format!("the container did not start within {START_TIMEOUT:?}"),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let ContainerState::Running { pid, .. } = self.state(id)? else {
            return Ok(());
        };
        let runc_error = |message| RuntimeError::Runc {
            container: id.to_owned(),
            command: "kill",
            message,
        };
        self.runc.kill(id, "TERM").map_err(runc_error)?;
        let deadline = Instant::now() + grace;
        loop {
            if !self.state(id)?.is_running() {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep(POLL.min(deadline - now)).await;
        }
        tracing::info!(container = id, ?grace, "still running after the grace period: SIGKILL");
        self.runc.kill(id, "KILL").map_err(runc_error)?;
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
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Runtime for OciRuntime {
    fn start(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        self.start_container(spec)
    }

    fn state(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        let mut containers = self.lock();
        let container = containers
            .by_id
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_owned() })?;
        Ok(container.observe(&self.records, &self.runc))
    }

    fn list(&self) -> Vec<ContainerInfo> {
        let mut containers = self.lock();
        containers
            .by_id
            .values_mut()
            .map(|container| {
                let state = container.observe(&self.records, &self.runc);
                container.record.info(state)
            })
            .collect()
    }

    fn stop(&self, id: &str, grace: Duration) -> StopFuture<'_> {
        let id = id.to_owned();
        Box::pin(async move { self.stop_container(&id, grace).await })
    }

    fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let (record, bundle) = {
            let mut containers = self.lock();
            let container = containers
                .by_id
                .get_mut(id)
                .ok_or_else(|| RuntimeError::NotFound { id: id.to_owned() })?;
            if let ContainerState::Running { pid, .. } = container.observe(&self.records, &self.runc) {
                return Err(RuntimeError::StillRunning { id: id.to_owned(), pid });
            }
            (container.record.clone(), container.bundle.clone())
        };
        self.tear_down(&record, &bundle)?;
        self.lock().by_id.remove(id);
        Ok(())
    }

    fn log_path(&self, pod_uid: &str, container: &str) -> PathBuf {
        self.logs.path(pod_uid, container)
    }

    fn remove_pod_logs(&self, pod_uid: &str) {
        self.logs.remove_pod(pod_uid)
    }

    fn exec(&self, id: &str, spec: &ExecSpec) -> Result<ExecSession, RuntimeError> {
        if !self.state(id)?.is_running() {
            return Err(RuntimeError::Runc {
                container: id.to_owned(),
                command: "exec",
                message: "the container is not running".into(),
            });
        }
        exec::spawn(&self.runc, id, spec)
    }

    fn name(&self) -> &'static str {
        "runc"
    }
}

#[cfg(test)]
pub(crate) mod tests;

/// What a volume mount binds: the volume, or its `subPath` (directories made when
/// nothing is there), which must resolve inside the volume: what exists of it is
/// checked before anything is made, and the whole after.
fn volume_source(mount: &super::VolumeMount) -> Result<std::path::PathBuf, String> {
    if mount.sub_path.is_empty() {
        return Ok(mount.source.clone());
    }
    let root = mount
        .source
        .canonicalize()
        .map_err(|e| format!("volume {}: {e}", mount.source.display()))?;
    let path = mount.source.join(&mount.sub_path);
    let inside = |p: &std::path::Path| -> Result<std::path::PathBuf, String> {
        let resolved = p
            .canonicalize()
            .map_err(|e| format!("subPath {:?}: {e}", mount.sub_path))?;
        if resolved.starts_with(&root) {
            Ok(resolved)
        } else {
            Err(format!("subPath {:?} leads outside the volume", mount.sub_path))
        }
    };
    let existing = path
        .ancestors()
        .find(|p| std::fs::symlink_metadata(p).is_ok())
        .unwrap_or(&mount.source);
    inside(existing)?;
    if std::fs::symlink_metadata(&path).is_err() {
        std::fs::create_dir_all(&path).map_err(|e| format!("cannot create subPath {:?}: {e}", mount.sub_path))?;
    }
    inside(&path)
}

#[cfg(test)]
mod volume_source_tests {
    use super::super::VolumeMount;
    use super::volume_source;

    #[test]
    fn a_sub_path_is_made_inside_the_volume_and_never_followed_out_of_it() {
        let tmp = std::env::temp_dir().join(format!("berth-subpath-{}", std::process::id()));
        let (volume, outside) = (tmp.join("volume"), tmp.join("outside"));
        std::fs::create_dir_all(&volume).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, volume.join("escape")).unwrap();
        std::fs::write(volume.join("file"), "x").unwrap();
        let mount = |sub: &str| VolumeMount {
            source: volume.clone(),
            sub_path: sub.into(),
            destination: "/m".into(),
            read_only: false,
        };
        assert_eq!(volume_source(&mount("")).unwrap(), volume);
        let made = volume_source(&mount("a/b")).unwrap();
        assert_eq!(made, volume.canonicalize().unwrap().join("a/b"));
        assert!(made.is_dir());
        assert!(volume_source(&mount("file")).unwrap().is_file());
        let refused = volume_source(&mount("escape/new")).unwrap_err();
        assert!(refused.contains("leads outside the volume"), "{refused}");
        assert!(!outside.join("new").exists(), "nothing made outside");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
