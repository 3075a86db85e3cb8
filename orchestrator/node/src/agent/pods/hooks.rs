//! A container's lifecycle hooks: a command inside the container (`exec`), an HTTP
//! GET against the pod (`httpGet`), or a pause (`sleep`).
//!
//! `preStop` runs before its SIGTERM when its pod is deleted or a liveness or startup
//! probe kills it. As the kubelet does, the hook's time counts against the grace, and
//! a hook that fails or overruns only delays the stop: the container is stopped
//! either way.
//!
//! `postStart` runs right after the container started; until it finishes the
//! container is not Running and the containers after it wait; one that fails kills
//! the container (FailedPostStartHook), which restarts as its policy says.

use std::io::Read;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::runtime::{ExecSpec, Runtime};
use berth_api::objects::{Container, IntOrString, LifecycleHandler, Pod};

/// The grace a container still gets after its hook, at the least (the kubelet's
/// minimumGracePeriodInSeconds).
pub(crate) const MIN_GRACE_AFTER_HOOK: Duration = Duration::from_secs(2);

/// The longest a postStart hook may run. The kubelet sets none; a bound keeps a
/// hook that never answers (an httpGet to nothing listening, a command stuck) from
/// holding its container out of Running for good: it fails, and the container is
/// killed and restarted as its policy says.
pub(crate) const POST_START_LIMIT: Duration = Duration::from_secs(600);

/// A hook, resolved against its pod when the start or the stop is planned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Hook {
    Exec(Vec<String>),
    HttpGet {
        /// `host`, else the pod's address (the node's when it has none of its own).
        host: Option<String>,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    Sleep(Duration),
}

/// The preStop hook of `container`, if it has one berth runs; `Err` says why a hook
/// cannot run (a named port the container does not declare).
pub(crate) fn pre_stop_of(container: &Container) -> Option<Result<Hook, String>> {
    hook_of(container, container.lifecycle.as_ref()?.pre_stop.as_ref()?)
}

/// The postStart hook of `container`, as [`pre_stop_of`].
pub(crate) fn post_start_of(container: &Container) -> Option<Result<Hook, String>> {
    hook_of(container, container.lifecycle.as_ref()?.post_start.as_ref()?)
}

fn hook_of(container: &Container, handler: &LifecycleHandler) -> Option<Result<Hook, String>> {
    if let Some(exec) = &handler.exec {
        return Some(Ok(Hook::Exec(exec.command.clone().unwrap_or_default())));
    }
    if let Some(sleep) = &handler.sleep {
        return Some(Ok(Hook::Sleep(Duration::from_secs(sleep.seconds.max(0) as u64))));
    }
    let get = handler.http_get.as_ref()?;
    let port = match &get.port {
        IntOrString::Int(port) => u16::try_from(*port).map_err(|_| format!("invalid port {port}")),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("the container has no port named {name:?}")),
    };
    Some(port.map(|port| {
        Hook::HttpGet {
            host: get.host.clone().filter(|h| !h.is_empty()),
            port,
            path: get.path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".into()),
            headers: get
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
        }
    }))
}

/// The preStop hooks of a pod's containers and sidecars, by container name.
pub(crate) fn pre_stops(pod: &Pod) -> Vec<(String, Result<Hook, String>)> {
    super::plan::all_containers(pod)
        .filter_map(|c| pre_stop_of(c).map(|hook| (c.name.clone(), hook)))
        .collect()
}

/// Runs `hook` for the container `id`, for at most `limit`; Err says how it failed.
pub(crate) async fn run(
    hook: &Hook,
    runtime: Arc<dyn Runtime>,
    id: &str,
    address: Option<IpAddr>,
    limit: Duration,
) -> Result<(), String> {
    let work = async {
        match hook {
            Hook::Sleep(pause) => {
                tokio::time::sleep(*pause).await;
                Ok(())
            }
            Hook::Exec(argv) => {
                let (id, argv) = (id.to_string(), argv.clone());
                tokio::task::spawn_blocking(move || exec(runtime.as_ref(), &id, argv))
                    .await
                    .map_err(|e| e.to_string())?
            }
            Hook::HttpGet {
                host,
                port,
                path,
                headers,
            } => {
                let host = host
                    .clone()
                    .or_else(|| address.map(|a| a.to_string()))
                    .ok_or("the pod has no address to send the hook's request to")?;
                http_get(&host, *port, path, headers).await
            }
        }
    };
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(format!("it did not finish within {} s", limit.as_secs())),
    }
}

/// Blocking: the command in the container; its output is read and dropped (a full
/// pipe would hold it up). The caller's timeout leaves a stuck command behind; the
/// container's stop ends it, since it runs in the container.
fn exec(runtime: &dyn Runtime, id: &str, argv: Vec<String>) -> Result<(), String> {
    let mut session = runtime
        .exec(id, &ExecSpec { argv, tty: false })
        .map_err(|e| e.to_string())?;
    drop(session.child.stdin.take());
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            if let Some(mut pipe) = pipe {
                let _ = std::io::copy(&mut pipe, &mut std::io::sink());
            }
        })
    };
    let out = drain(session.child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = drain(session.child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let status = session.child.wait().map_err(|e| e.to_string())?;
    let _ = (out.join(), err.join());
    if status.success() {
        Ok(())
    } else {
        Err(format!("command exited with {status}"))
    }
}

/// A plain HTTP/1.1 GET; a status from 200 to 399 is success, as for the kubelet.
async fn http_get(host: &str, port: u16, path: &str, headers: &[(String, String)]) -> Result<(), String> {
    let address = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        _ => format!("{host}:{port}"),
    };
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: kube-lifecycle/1.32\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut buffer = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buffer).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {:?}", line.lines().next().unwrap_or("")))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP status {code}"))
    }
}
