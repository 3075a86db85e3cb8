//! kubectl's node verbs against a cluster of real processes: `exec` (with stdin, a
//! terminal, exit codes), `cp` (tar over exec), `attach`, `port-forward`, and the
//! log options that need the agent (`--previous`, `--timestamps`). Each request goes
//! kubectl → API server → agent, the upgrade proxied as kube-apiserver proxies it to
//! the kubelet.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use berth_testkit::eventually_blocking;
use common::*;

/// Whether `tool` is on the PATH; says what is missing (and fails under CI) if not.
fn have(tool: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        berth_testkit::skip(&format!("{tool} ({package}; scripts/test.sh installs it)"));
    }
    found
}

/// A pod that sleeps for the cluster's marker, in a working directory of its own
/// (the process runtime runs commands on the host).
fn sleeper(cluster: &TestCluster, name: &str) -> std::path::PathBuf {
    let dir = cluster.servers.dir().join(format!("{name}-workdir"));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: [sleep, \"{marker}\"]
    workingDir: {dir}
    env:
    - {{name: GREETING, value: hello-from-the-pod}}
",
        marker = cluster.marker,
        dir = dir.display()
    );
    let path = cluster.write_manifest(&format!("{name}.yaml"), &manifest);
    cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    wait_running(cluster, name);
    dir
}

fn wait_running(cluster: &TestCluster, name: &str) {
    eventually_blocking(&format!("pod {name} running"), || {
        let (_, pod) = cluster.get(&format!("/api/v1/namespaces/default/pods/{name}"));
        (pod["status"]["phase"] == "Running").then_some(())
    });
}

/// kubectl with `input` on its stdin.
fn kubectl_with_stdin(cluster: &TestCluster, args: &[&str], input: &[u8]) -> std::process::Output {
    kubectl_with_stdin_and_env(cluster, args, input, &[])
}

fn kubectl_with_stdin_and_env(
    cluster: &TestCluster,
    args: &[&str],
    input: &[u8],
    env: &[(&str, &str)],
) -> std::process::Output {
    let server = format!("http://127.0.0.1:{}", cluster.running_api_ports()[0]);
    let mut child = Command::new("kubectl")
        .arg(format!("--server={server}"))
        .args(args)
        .env("KUBECONFIG", "/dev/null")
        .env("HOME", cluster.servers.dir())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn kubectl_exec_runs_commands_in_the_container() {
    if !have_kubectl() || !have("script", "bsdutils") || !have("setsid", "util-linux") {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let dir = sleeper(&cluster, "shell");

    // The container's environment and working directory.
    let out = cluster.kubectl_ok(&["exec", "shell", "--", "sh", "-c", "echo $GREETING; pwd"]);
    assert_eq!(out, format!("hello-from-the-pod\n{}\n", dir.display()));

    // stderr apart from stdout, and the exit code passed on.
    let out = cluster.kubectl_output(&["exec", "shell", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("err\n"), "{out:?}");

    // stdin, to its end.
    let out = kubectl_with_stdin(&cluster, &["exec", "-i", "shell", "--", "wc", "-l"], b"a\nb\nc\n");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");

    // A terminal: kubectl wants one of its own to pass on, which `script` gives it;
    // the command sees one, and its output comes back through it.
    let server = format!("http://127.0.0.1:{}", cluster.running_api_ports()[0]);
    let inner = format!("kubectl --server={server} exec -i -t shell -- sh -c 'test -t 0 && echo is-a-tty; stty size'");
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &inner, "/dev/null"])
        .env("KUBECONFIG", "/dev/null")
        .env("HOME", cluster.servers.dir())
        .stdin(Stdio::null())
        .output()
        .expect("script runs");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(printed.contains("is-a-tty\r\n"), "{printed:?}");

    // The errors kubectl shows as kube-apiserver's.
    let error = cluster.kubectl_fails(&["exec", "shell", "-c", "nope", "--", "true"]);
    assert!(error.contains("container nope is not valid for pod shell"), "{error}");
    let error = cluster.kubectl_fails(&["exec", "missing", "--", "true"]);
    assert!(error.contains("pods \"missing\" not found"), "{error}");

    // A container that is not running (it crashes and backs off): the kubelet's words,
    // passed on by the API server.
    let crasher = "apiVersion: v1
kind: Pod
metadata:
  name: crasher
spec:
  containers:
  - name: main
    image: busybox
    command: [\"false\"]
";
    let path = cluster.write_manifest("crasher.yaml", crasher);
    cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    eventually_blocking("exec into a container that is not running to say so", || {
        let out = cluster.kubectl_output(&["exec", "crasher", "--", "true"]);
        let error = String::from_utf8_lossy(&out.stderr).into_owned();
        (!out.status.success() && error.contains("unable to upgrade connection: container not found (\"main\")"))
            .then_some(())
    });
}

/// A child process killed when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kills, when the test ends, every process whose command line holds `needle` (a
/// workload that is not `sleep <marker>`, which the cluster's own guard would miss).
struct KillMatching(String);

impl Drop for KillMatching {
    fn drop(&mut self) {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            if pid != std::process::id() as i32 && String::from_utf8_lossy(&cmdline).contains(&self.0) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}

/// An HTTP GET over a plain TCP connection: the whole answer.
fn http_get_raw(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
    write!(tcp, "GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n")?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer)?;
    Ok(answer)
}

#[test]
fn kubectl_port_forward_reaches_a_pods_port() {
    if !have_kubectl() || !have("busybox", "busybox-static") {
        return;
    }
    let pod_port = berth_testkit::free_port();
    // Dropped last: the server goes once the agents (which do not stop pods) have.
    let _httpd = KillMatching(format!("127.0.0.1:{pod_port}"));
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let site = cluster.servers.dir().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "served from the pod\n").unwrap();
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: [busybox, httpd, -f, -p, \"127.0.0.1:{pod_port}\", -h, \"{site}\"]
",
        site = site.display(),
    );
    let path = cluster.write_manifest("web.yaml", &manifest);
    cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    wait_running(&cluster, "web");

    // kubectl 1.32 tunnels SPDY in WebSocket first; with KUBECTL_PORT_FORWARD_WEBSOCKETS
    // off it upgrades to plain SPDY. Both are served.
    for is_websocket in [true, false] {
        let local_port = berth_testkit::free_port();
        let server = format!("http://127.0.0.1:{}", cluster.running_api_ports()[0]);
        let forward = KillOnDrop(
            Command::new("kubectl")
                .arg(format!("--server={server}"))
                .args(["port-forward", "pod/web", &format!("{local_port}:{pod_port}")])
                .env("KUBECONFIG", "/dev/null")
                .env("HOME", cluster.servers.dir())
                .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", is_websocket.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("kubectl runs"),
        );
        // Two requests, each its own connection, so its own pair of streams.
        let answer = eventually_blocking("a page through kubectl port-forward", || {
            http_get_raw(local_port, "/").ok()
        });
        assert!(answer.starts_with("HTTP/1.1 200"), "websocket {is_websocket}: {answer}");
        assert!(answer.ends_with("served from the pod\n"), "{answer}");
        let missing = http_get_raw(local_port, "/missing").unwrap();
        assert!(
            missing.starts_with("HTTP/1.1 404"),
            "websocket {is_websocket}: {missing}"
        );
        drop(forward);
    }
}

#[test]
fn kubectl_cp_copies_both_ways() {
    if !have_kubectl() || !have("tar", "tar") {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let dir = sleeper(&cluster, "files");
    let local = cluster.servers.dir().join("local");
    std::fs::create_dir_all(&local).unwrap();

    // Into the container: `tar xmf -` fed on stdin through exec.
    let upload = local.join("upload.txt");
    std::fs::write(&upload, "uploaded\n").unwrap();
    let into = format!("files:{}/upload.txt", dir.display());
    cluster.kubectl_ok(&["cp", upload.to_str().unwrap(), &into]);
    assert_eq!(std::fs::read_to_string(dir.join("upload.txt")).unwrap(), "uploaded\n");

    // Out of it: `tar cf -` read from exec's stdout.
    std::fs::write(dir.join("report.txt"), "made in the pod\n").unwrap();
    let from = format!("files:{}/report.txt", dir.display());
    let download = local.join("report.txt");
    cluster.kubectl_ok(&["cp", &from, download.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&download).unwrap(), "made in the pod\n");
}

#[test]
fn kubectl_attach_streams_the_containers_output_until_it_ends() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    // Quiet long enough for kubectl to attach, then ticks, then the end (it leaves
    // nothing behind: it ends by itself within seconds).
    let manifest = "apiVersion: v1
kind: Pod
metadata:
  name: ticker
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'sleep 3; for i in 1 2 3; do echo tick $i; sleep 0.2; done']
";
    let path = cluster.write_manifest("ticker.yaml", manifest);
    cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    wait_running(&cluster, "ticker");
    let out = cluster.kubectl_ok(&["attach", "ticker"]);
    assert!(out.contains("tick 1\ntick 2\ntick 3\n"), "{out:?}");
}

#[test]
fn kubectl_logs_previous_shows_the_instance_before_a_restart() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    // Each instance says which it is (a count kept in a file), then exits 1 two seconds
    // later and is restarted; the third one stays up.
    let counter = cluster.servers.dir().join("instances");
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: phoenix
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'echo x >> {counter}; n=$(wc -l < {counter}); echo instance $n; [ $n -ge 3 ] && exec sleep {marker}; sleep 2; exit 1']
",
        counter = counter.display(),
        marker = cluster.marker
    );
    let path = cluster.write_manifest("phoenix.yaml", &manifest);
    cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    // While the first instance runs there is no previous one: kubelet's words.
    eventually_blocking("no previous instance, said as the kubelet says it", || {
        let out = cluster.kubectl_output(&["logs", "phoenix", "--previous"]);
        let error = String::from_utf8_lossy(&out.stderr);
        error
            .contains("previous terminated container \"main\" in pod \"phoenix\" not found")
            .then_some(())
    });
    eventually_blocking("the third instance to run", || {
        let (_, pod) = cluster.get("/api/v1/namespaces/default/pods/phoenix");
        let status = &pod["status"]["containerStatuses"][0];
        (status["restartCount"].as_i64()? >= 2 && status["state"]["running"].is_object()).then_some(())
    });
    let previous = cluster.kubectl_ok(&["logs", "phoenix", "--previous"]);
    assert_eq!(previous, "instance 2\n");
    let limited = cluster.kubectl_ok(&["logs", "phoenix", "--previous", "--limit-bytes=5"]);
    assert_eq!(limited, "insta");
    // Plain logs: the instance that runs now, as the kubelet serves them.
    assert_eq!(cluster.kubectl_ok(&["logs", "phoenix"]), "instance 3\n");

    // --timestamps: each line after the time it was written; the limit counts them.
    let stamped = cluster.kubectl_ok(&["logs", "phoenix", "--timestamps"]);
    let (time, line) = stamped.split_once(' ').expect("a time and a line");
    assert_eq!(line, "instance 3\n", "{stamped:?}");
    let written = log_time(time);
    let limited = cluster.kubectl_ok(&["logs", "phoenix", "--timestamps", "--limit-bytes=10"]);
    assert_eq!(limited, &time[..10]);
    // --since: nothing from before then. Once the line is over a second old, a second
    // leaves it out and an hour keeps it.
    while std::time::SystemTime::now() < written + std::time::Duration::from_millis(2500) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(cluster.kubectl_ok(&["logs", "phoenix", "--since=1s"]), "");
    assert_eq!(cluster.kubectl_ok(&["logs", "phoenix", "--since=1h"]), "instance 3\n");
    let both = cluster.kubectl_fails(&["logs", "phoenix", "--since=1h", "--since-time=2026-01-01T00:00:00Z"]);
    assert!(
        both.contains("at most one of `sinceTime` or `sinceSeconds` may be specified"),
        "{both}"
    );
    let (code, status) =
        cluster.get("/api/v1/namespaces/default/pods/phoenix/log?sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z");
    assert_eq!(code, 400, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("at most one of `sinceTime` or `sinceSeconds`"),
        "{status}"
    );
    let (code, status) = cluster.get("/api/v1/namespaces/default/pods/phoenix/log?sinceTime=yesterday");
    assert_eq!(code, 400, "{status}");
    assert!(
        status["message"].as_str().unwrap().contains("sinceTime: \"yesterday\""),
        "{status}"
    );
}

#[test]
fn kubectl_exec_over_spdy_works_as_over_websocket() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let dir = sleeper(&cluster, "legacy");
    // kubectl's switch back to the SPDY protocol that clients before 1.30 speak.
    let spdy = [("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")];

    let out = kubectl_with_stdin_and_env(
        &cluster,
        &[
            "exec",
            "legacy",
            "--",
            "sh",
            "-c",
            "echo $GREETING; echo err >&2; exit 4",
        ],
        b"",
        &spdy,
    );
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello-from-the-pod\n");
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("err\n"), "{out:?}");

    let out = kubectl_with_stdin_and_env(
        &cluster,
        &["exec", "-i", "legacy", "--", "cat"],
        b"through spdy\n",
        &spdy,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through spdy\n");

    // cp into the container: tar reading its stdin to the end.
    let upload = cluster.servers.dir().join("spdy-upload.txt");
    std::fs::write(&upload, "by spdy\n").unwrap();
    let into = format!("legacy:{}/spdy-upload.txt", dir.display());
    let out = kubectl_with_stdin_and_env(&cluster, &["cp", upload.to_str().unwrap(), &into], b"", &spdy);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(dir.join("spdy-upload.txt")).unwrap(),
        "by spdy\n"
    );
}
