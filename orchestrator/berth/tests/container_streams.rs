//! kubectl's node verbs on real containers: `exec` runs inside the container (its
//! root filesystem and hostname, stdin through, the exit code back), `port-forward`
//! reaches a pod with a network namespace of its own at its address, `cp` goes both
//! ways through the container's tar, and `logs --previous` shows the instance before
//! a restart. Needs root, runc, the CNI plugins, docker-registry and kubectl (skipped
//! without them on a developer's machine, failing under CI).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use berth_testkit::eventually_blocking;
use common::containers::ContainerCluster;

/// A child process killed when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
    write!(tcp, "GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n")?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer)?;
    Ok(answer)
}

#[test]
fn kubectl_exec_port_forward_cp_and_logs_previous_reach_runc_containers() {
    let test_start = std::time::SystemTime::now();
    let Some(mut cluster) = ContainerCluster::start(1) else {
        return;
    };
    let (image, _) = cluster.push_busybox("e2e/streams", "1.0", |image| image);
    cluster.apply(
        "web",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: {image}
    command: ["sh", "-c", "mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"]
  - name: flaky
    image: {image}
    command: ["sh", "-c", "echo instance $(cat /proc/sys/kernel/random/uuid); sleep 1; exit 3"]
"#
        ),
    );
    cluster.wait_pod("web", "httpd running", |pod| {
        ContainerCluster::container_status(pod, "httpd")["state"]["running"]
            .is_object()
            .then_some(())
    });

    // exec: inside the container, not on the host.
    let hostname = cluster.kubectl_ok(&["exec", "web", "-c", "httpd", "--", "cat", "/etc/hostname"]);
    assert_eq!(hostname.trim(), "web");
    let where_ = cluster.kubectl_ok(&[
        "exec",
        "web",
        "-c",
        "httpd",
        "--",
        "sh",
        "-c",
        "test -e /usr/lib/cni && echo host || echo container",
    ]);
    assert_eq!(where_.trim(), "container", "the command sees the image's filesystem");
    let failed = cluster.kubectl(&["exec", "web", "-c", "httpd", "--", "sh", "-c", "exit 7"]);
    assert_eq!(failed.status.code(), Some(7), "the exit code comes back");

    // exec -i: stdin reaches the container (and the file lands where httpd serves).
    let mut upload = Command::new("kubectl")
        .arg(format!("--server=http://127.0.0.1:{}", cluster.api_port))
        .args([
            "exec",
            "-i",
            "web",
            "-c",
            "httpd",
            "--",
            "sh",
            "-c",
            "cat > /www/up.txt",
        ])
        .env("KUBECONFIG", "/dev/null")
        .env("HOME", cluster.server.dir())
        .stdin(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    upload
        .stdin
        .take()
        .unwrap()
        .write_all(b"uploaded through stdin\n")
        .unwrap();
    assert!(upload.wait().unwrap().success());

    // port-forward: to the pod's own address, through its agent on another "host".
    let mut forward = Command::new("kubectl")
        .arg(format!("--server=http://127.0.0.1:{}", cluster.api_port))
        .args(["port-forward", "pod/web", ":8080"])
        .env("KUBECONFIG", "/dev/null")
        .env("HOME", cluster.server.dir())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(cluster.server.dir().join("port-forward.log")).unwrap())
        .spawn()
        .expect("kubectl runs");
    let mut said = BufReader::new(forward.stdout.take().unwrap());
    let mut first_line = String::new();
    said.read_line(&mut first_line).unwrap();
    // kubectl says "Handling connection for ..." for each connection: keep reading,
    // or it dies of a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut said, &mut std::io::sink()));
    let _forward = KillOnDrop(forward);
    // "Forwarding from 127.0.0.1:PORT -> 8080"
    let port: u16 = first_line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("kubectl port-forward said {first_line:?}"));
    let page = eventually_blocking("the page through port-forward", || http_get(port, "/").ok());
    assert!(
        page.starts_with("HTTP/1.1 200") && page.ends_with("hello from web\n"),
        "{page}"
    );
    let uploaded = http_get(port, "/up.txt").unwrap();
    assert!(uploaded.ends_with("uploaded through stdin\n"), "{uploaded}");

    // cp, both ways.
    let local = cluster.server.dir().join("to-the-pod.txt");
    std::fs::write(&local, "copied in\n").unwrap();
    cluster.kubectl_ok(&["cp", local.to_str().unwrap(), "default/web:/tmp/in.txt", "-c", "httpd"]);
    let copied = cluster.kubectl_ok(&["exec", "web", "-c", "httpd", "--", "cat", "/tmp/in.txt"]);
    assert_eq!(copied, "copied in\n");
    let back = cluster.server.dir().join("from-the-pod.html");
    cluster.kubectl_ok(&[
        "cp",
        "default/web:/www/index.html",
        back.to_str().unwrap(),
        "-c",
        "httpd",
    ]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "hello from web\n");

    // logs --previous: exactly the instance before the last start.
    cluster.wait_pod("web", "flaky restarted twice", |pod| {
        (ContainerCluster::container_status(pod, "flaky")["restartCount"].as_i64()? >= 2).then_some(())
    });
    let previous = cluster.kubectl_ok(&["logs", "web", "-c", "flaky", "--previous"]);
    let lines: Vec<&str> = previous.lines().collect();
    assert_eq!(lines.len(), 1, "one instance's output: {previous:?}");
    assert!(lines[0].starts_with("instance "), "{previous:?}");
    // Plain logs: the current instance only, as the kubelet serves them.
    let current = cluster.kubectl_ok(&["logs", "web", "-c", "flaky"]);
    assert!(!current.contains(lines[0]), "{current}");
    assert!(current.lines().count() <= 1, "{current}");

    // --timestamps: the time each line was written, from the log writer between the
    // container and its log.
    let stamped = cluster.kubectl_ok(&["logs", "web", "-c", "flaky", "--previous", "--timestamps"]);
    let (time, line) = stamped.trim_end().split_once(' ').expect("a time and a line");
    assert_eq!(line, lines[0], "{stamped:?}");
    let written = common::log_time(time);
    assert!(
        written >= test_start && written <= std::time::SystemTime::now(),
        "{time}"
    );
    // --since-time: the lines written at or after it.
    let after = berth_api::time::format_rfc3339(written + std::time::Duration::from_secs(1));
    let before = berth_api::time::format_rfc3339(written);
    let since = |time: &str| cluster.kubectl_ok(&["logs", "web", "-c", "flaky", "--previous", "--since-time", time]);
    assert_eq!(since(&before), previous, "a line from at or after {before}");
    assert_eq!(since(&after), "", "nothing written at or after {after}");
    cluster.delete_pod("web");
}
