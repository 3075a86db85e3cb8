//! A runtime on a temporary state directory, an image of busybox in two layers, and
//! the polls the tests share.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::super::super::{ContainerSpec, ContainerState, RootFs, Runtime};
use super::super::OciRuntime;

/// Far longer than anything here should take, even on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(30);
const BUSYBOX: &str = "/usr/bin/busybox";

/// A user the image knows, with a group of its own and one more.
pub const APP_UID: u32 = 1000;

/// The runtime, its state directory and the image's layers; Drop kills and removes
/// every container the runtime still knows.
pub struct Fixture {
    pub runtime: Option<OciRuntime>,
    pub state: tempfile::TempDir,
    pub layers: Vec<PathBuf>,
    _image: tempfile::TempDir,
}

impl Fixture {
    /// None (after `skip`) when this host cannot run containers.
    pub fn new() -> Option<Fixture> {
        if let Err(why) = OciRuntime::available() {
            berth_testkit::skip(&why);
            return None;
        }
        if !Path::new(BUSYBOX).is_file() {
            berth_testkit::skip("busybox-static at /usr/bin/busybox");
            return None;
        }
        let image = tempfile::tempdir().unwrap();
        let layers = build_busybox_image(image.path());
        let state = tempfile::tempdir().unwrap();
        let runtime = OciRuntime::new(state.path().to_path_buf()).unwrap();
        Some(Fixture {
            runtime: Some(runtime),
            state,
            layers,
            _image: image,
        })
    }

    pub fn runtime(&self) -> &OciRuntime {
        self.runtime.as_ref().expect("a runtime")
    }

    /// A new runtime on the same state directory, as an agent restarted after a
    /// crash would make (the old one is dropped, which leaves containers running).
    pub fn restart_runtime(&mut self) {
        drop(self.runtime.take());
        self.runtime = Some(OciRuntime::new(self.state.path().to_path_buf()).unwrap());
    }

    /// A container of a pod unique to this test process (cgroup names are
    /// host-wide), without a sandbox: its own network namespace, hostname "app".
    pub fn spec(&self, tag: &str, argv: &[&str]) -> ContainerSpec {
        let pod_uid = format!("oci-{tag}-{}", std::process::id());
        ContainerSpec {
            pod: format!("default/{tag}"),
            name: "app".into(),
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            rootfs: Some(RootFs {
                layers: self.layers.clone(),
                image_digest: "sha256:test".into(),
            }),
            sandbox: None,
            pod_uid,
            ..ContainerSpec::default()
        }
    }

    pub fn wait_exited(&self, id: &str) -> ContainerState {
        let start = Instant::now();
        loop {
            let state = self.runtime().state(id).unwrap();
            if !state.is_running() {
                return state;
            }
            assert!(start.elapsed() < DEADLINE, "{id} still {state:?} after {DEADLINE:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn exit_code(&self, id: &str) -> i32 {
        match self.wait_exited(id) {
            ContainerState::Exited { exit_code, .. } => exit_code,
            running => unreachable!("{running:?}"),
        }
    }

    pub fn log(&self, spec: &ContainerSpec) -> String {
        std::fs::read_to_string(self.runtime().log_path(&spec.pod_uid, &spec.name)).unwrap_or_default()
    }

    /// Runs the container to its end; (exit code, its log).
    pub fn run(&self, spec: &ContainerSpec) -> (i32, String) {
        let id = self.runtime().start(spec).unwrap();
        let code = self.exit_code(&id);
        let log = self.log(spec);
        self.runtime().remove(&id).unwrap();
        (code, log)
    }

    pub fn wait_for_log(&self, spec: &ContainerSpec, text: &str) {
        let start = Instant::now();
        while !self.log(spec).contains(text) {
            assert!(
                start.elapsed() < DEADLINE,
                "the log never held {text:?}: {}",
                self.log(spec)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // A runtime made afresh on the state directory knows every container
        // recorded there, also those of an agent a test ran in another process.
        drop(self.runtime.take());
        let runtime = match OciRuntime::new(self.state.path().to_path_buf()) {
            Ok(runtime) => runtime,
            Err(error) => return eprintln!("cannot clean up the containers: {error}"),
        };
        for info in runtime.list() {
            let _ = runtime.runc.delete(&info.id);
            let start = Instant::now();
            while runtime.state(&info.id).is_ok_and(|s| s.is_running()) && start.elapsed() < DEADLINE {
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Err(error) = runtime.remove(&info.id) {
                eprintln!("cannot remove {}: {error}", info.id);
            }
        }
    }
}

/// Two layers: busybox with its applets, and on top /etc (users, groups) and a file
/// that replaces one of the lower layer.
fn build_busybox_image(dir: &Path) -> Vec<PathBuf> {
    let base = dir.join("base");
    let top = dir.join("top");
    let bin = base.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(BUSYBOX, bin.join("busybox")).unwrap();
    let applets = std::process::Command::new(BUSYBOX).arg("--list").output().unwrap();
    for applet in String::from_utf8(applets.stdout).unwrap().lines() {
        if applet != "busybox" && !applet.contains('/') {
            symlink("busybox", bin.join(applet)).unwrap();
        }
    }
    for sub in ["tmp", "etc", "proc", "sys", "dev"] {
        std::fs::create_dir_all(base.join(sub)).unwrap();
    }
    std::fs::write(base.join("etc/motd"), "from the base layer\n").unwrap();
    std::fs::create_dir_all(top.join("etc")).unwrap();
    std::fs::write(top.join("etc/motd"), "from the top layer\n").unwrap();
    std::fs::write(
        top.join("etc/passwd"),
        format!("root:x:0:0:root:/root:/bin/sh\napp:x:{APP_UID}:{APP_UID}::/tmp:/bin/sh\n"),
    )
    .unwrap();
    std::fs::write(
        top.join("etc/group"),
        format!("root:x:0:\napp:x:{APP_UID}:\nvideo:x:44:app\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(base.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    vec![base, top]
}

/// The bundle directory of a container id under `state_dir`.
pub fn bundle_dir(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join("oci").join("bundles").join(id)
}
