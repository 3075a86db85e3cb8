//! The IPC and UTS namespaces of a pod's sandbox, made for real (root and util-linux
//! `unshare`) under the fake runtime and network: made once per pod and given to
//! every container, host-network pods included, and unmounted when the pod goes, or
//! at adoption when it went while no agent ran. Nothing stays mounted under the
//! agent's directory.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::executor::Executor;
use super::fixtures::{desired, now, pod_of};
use super::image_tests::{IMAGE, Node, image_pod, pass, pass_until};
use crate::namespaces;
use crate::runtime::{Runtime, SandboxSpec};
use berth_api::objects::Pod;

/// Whether this host can make namespaces; skips (fails under CI) when not.
fn can_make_namespaces() -> bool {
    if !rustix::process::geteuid().is_root() {
        berth_testkit::skip("root, to make a pod's namespaces");
        return false;
    }
    true
}

/// The mount points under `dir`, from this process's mountinfo.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|point| point.starts_with(dir))
        .collect()
}

/// Unmounts whatever a failed test left mounted under the node's directory; declared
/// after the node, so it runs before the directory is removed.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        for point in mounts_under(&self.0) {
            let _ = namespaces::remove(&point);
        }
    }
}

fn inode(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

fn with_namespaces(node: &Node) -> Executor {
    node.executor().with_pod_namespaces()
}

/// A pod of two containers, both from the image.
fn two_container_pod(name: &str) -> Pod {
    let mut pod = pod_of(name, "Always", &["a", "b"]);
    for c in &mut pod.spec.containers {
        c.command = None;
        c.image = Some(IMAGE.into());
    }
    pod
}

async fn wait_for(what: impl Fn() -> bool) {
    for _ in 0..500 {
        if what() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the background work never finished");
}

#[tokio::test]
async fn a_pod_s_containers_get_its_one_ipc_and_uts_namespace_until_it_goes() {
    if !can_make_namespaces() {
        return;
    }
    let node = Node::new();
    let _unmount = Unmount(node.dir.path().to_path_buf());
    node.images.has(IMAGE);
    let mut executor = with_namespaces(&node);
    let mut web = two_container_pod("web");
    let mut host = image_pod("host");
    host.spec.host_network = Some(true);
    let t = now();
    pass_until(&mut executor, &desired(&[&web, &host]), t, |_| {
        node.runtime.running().len() == 3
    })
    .await;

    let files = node.dir.path().join("uid-web");
    let (ipc, uts) = (files.join("ipc"), files.join("uts"));
    assert!(namespaces::is_held(&ipc) && namespaces::is_held(&uts));
    let host_ipc = inode(Path::new("/proc/self/ns/ipc"));
    assert_ne!(inode(&ipc), host_ipc, "a namespace of the pod's own");
    // Its /dev/shm: a tmpfs mounted in the sandbox directory.
    let shm = files.join("shm");
    let device = |p: &Path| std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(p).unwrap());
    assert_ne!(device(&shm), device(&files), "a file system of its own");
    std::fs::write(shm.join("segment"), "shared").unwrap();
    let made = (inode(&ipc), inode(&uts));
    for _ in 0..3 {
        pass(&mut executor, &desired(&[&web, &host]), t);
    }
    assert_eq!((inode(&ipc), inode(&uts)), made, "made once");
    assert_eq!(
        std::fs::read_to_string(shm.join("segment")).unwrap(),
        "shared",
        "mounted once"
    );
    let given: Vec<(String, SandboxSpec)> = node
        .runtime
        .starts()
        .into_iter()
        .map(|spec| (spec.pod_uid, spec.sandbox.expect("a sandbox")))
        .collect();
    let web_given: Vec<_> = given.iter().filter(|(uid, _)| uid == "uid-web").collect();
    assert_eq!(web_given.len(), 2, "{given:?}");
    for (_, sandbox) in web_given {
        assert_eq!(
            (sandbox.ipc.as_deref(), sandbox.uts.as_deref(), sandbox.shm.as_deref()),
            (Some(ipc.as_path()), Some(uts.as_path()), Some(shm.as_path()))
        );
    }
    let host_files = node.dir.path().join("uid-host");
    assert!(
        namespaces::is_held(&host_files.join("ipc")) && !host_files.join("uts").exists(),
        "host networking has the pod's own ipc namespace and the host's uts one"
    );

    web.metadata.deletion_timestamp = Some(berth_api::time::from_system_time(t.wall));
    host.metadata.deletion_timestamp = web.metadata.deletion_timestamp.clone();
    pass(&mut executor, &desired(&[&web, &host]), t);
    wait_for(|| !files.exists() && !host_files.exists()).await;
    assert_eq!(
        mounts_under(node.dir.path()),
        Vec::<PathBuf>::new(),
        "nothing stays mounted"
    );
}

#[tokio::test]
async fn a_restarted_agent_keeps_its_pods_namespaces_and_unmounts_the_gone_ones() {
    if !can_make_namespaces() {
        return;
    }
    let node = Node::new();
    let _unmount = Unmount(node.dir.path().to_path_buf());
    node.images.has(IMAGE);
    let keep = image_pod("keep");
    // Host networking: no network on the node tells of the pod, only its directory.
    let mut gone = image_pod("gone");
    gone.spec.host_network = Some(true);
    let mut first = with_namespaces(&node);
    pass_until(&mut first, &desired(&[&keep, &gone]), now(), |_| {
        node.runtime.running().len() == 2
    })
    .await;
    let kept_ipc = node.dir.path().join("uid-keep").join("ipc");
    let gone_files = node.dir.path().join("uid-gone");
    let made = inode(&kept_ipc);
    assert!(namespaces::is_held(&gone_files.join("ipc")));
    // The agent stops; "gone" is deleted while none runs, and its container is gone
    // too (say, the machine rebooted).
    drop(first);
    for c in node.runtime.list().into_iter().filter(|c| c.pod_uid == "uid-gone") {
        node.runtime.stop(&c.id, Duration::ZERO).await.unwrap();
        node.runtime.remove(&c.id).unwrap();
    }

    let mut second = with_namespaces(&node);
    pass_until(&mut second, &desired(&[&keep]), now(), |e| {
        e.memory().pods["uid-keep"].sandbox.ready().is_some()
    })
    .await;
    wait_for(|| !gone_files.exists()).await;
    assert_eq!(inode(&kept_ipc), made, "the kept pod's namespace is the same");
    assert_eq!(
        mounts_under(node.dir.path()),
        [
            kept_ipc.clone(),
            kept_ipc.with_file_name("uts"),
            kept_ipc.with_file_name("shm")
        ],
        "only the kept pod's namespaces and /dev/shm stay mounted"
    );
}
