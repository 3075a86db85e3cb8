//! Pulls from a real registry: Debian's `docker-registry` (the CNCF distribution
//! registry) on loopback, the image pushed to it by `skopeo` from an OCI layout made in
//! the test. What a stub cannot show: the real server's media types, digests, headers
//! and error bodies.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::image::testing::{LayerTar, TestImage};
use crate::image::{Images, ImagesConfig, NodeImages, PullError, PullPolicy};

/// The registry process, killed and reaped when the test ends, failed or not.
struct RegistryProcess {
    child: Child,
    host: String,
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tool(path: &str) -> bool {
    Path::new(path).exists()
}

fn start_registry(dir: &Path) -> RegistryProcess {
    let port = berth_testkit::free_port();
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("storage").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("registry.log")).unwrap();
    let child = Command::new("/usr/bin/docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let registry = RegistryProcess { child, host: format!("127.0.0.1:{port}") };
    let deadline = Instant::now() + berth_testkit::HANG_TIMEOUT;
    while std::net::TcpStream::connect(&registry.host).is_err() {
        assert!(Instant::now() < deadline, "the registry did not listen on {}", registry.host);
        std::thread::sleep(Duration::from_millis(50));
    }
    registry
}

fn push(layout: &Path, registry: &RegistryProcess, repository: &str, tag: &str) {
    let status = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{}/{repository}:{tag}", registry.host))
        .status()
        .unwrap();
    assert!(status.success(), "skopeo copy to the test registry failed");
}

#[tokio::test]
async fn an_image_pushed_to_a_real_registry_pulls_and_a_missing_tag_says_so() {
    if !tool("/usr/bin/docker-registry") || !tool("/usr/bin/skopeo") {
        berth_testkit::skip("docker-registry and skopeo (Debian packages)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let registry = start_registry(tmp.path());
    let base = LayerTar::new().dir("bin/").file("bin/hello", "hello from the registry").tar();
    let image = TestImage::new(&[base], &["/bin/hello"]);
    let layout = tmp.path().join("layout");
    image.write_layout(&layout, "1.0");
    push(&layout, &registry, "team/hello", "1.0");

    let images = NodeImages::new(ImagesConfig::new(&tmp.path().join("node"))).unwrap();
    let reference = format!("{}/team/hello:1.0", registry.host);
    let pulled = images.ensure(&reference, PullPolicy::Always, &[]).await.unwrap();
    assert_eq!(pulled.config.cmd, ["/bin/hello"]);
    assert_eq!(pulled.config_digest, image.config_digest().to_string());
    assert!(pulled.image_id.starts_with(&format!("{}/team/hello@sha256:", registry.host)), "{}", pulled.image_id);
    let hello = std::fs::read_to_string(pulled.layers[0].join("bin/hello")).unwrap();
    assert_eq!(hello, "hello from the registry");

    let missing = format!("{}/team/hello:2.0", registry.host);
    let err = images.ensure(&missing, PullPolicy::IfNotPresent, &[]).await.unwrap_err();
    let PullError::Pull { message, .. } = &err else { panic!("{err:?}") };
    assert!(message.contains(&format!("{missing}: not found")), "{message}");
    assert!(message.contains("manifest unknown"), "{message}");
}
