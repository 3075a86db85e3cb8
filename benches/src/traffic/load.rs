//! A closed-loop HTTP/1.1 load generator: `connections` clients, each sending its next
//! `GET /` as soon as the last one was answered, for a fixed time. Unpaced, so what it
//! measures is how many requests the path (client, network, proxy rules, server) can
//! carry on this machine and how long each waited, not a rate it was told to keep.
//!
//! ```text
//!  keep-alive:      client i holds one connection to targets[i % n] and sends on it
//!                   request after request                 (latency: request → body)
//!  new connection:  client i opens a connection per request, to targets[(i + k) % n]
//!                   for its k-th, sends `Connection: close`  (latency: connect → body)
//! ```
//!
//! One target (a cluster IP) lets the service proxy's rules pick the pod; several (the
//! pods' IPs) spread the clients over them in turn. Every answer names the pod that
//! sent it (berth-echo's `<version> <pod>`), so a run tells how the requests spread and
//! which pod each kept-alive connection reached. The clients run on a runtime of their
//! own, on a thread that entered a test host's network namespace.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::driver::Outcome;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    KeepAlive,
    NewConnection,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::KeepAlive => "keep-alive",
            Mode::NewConnection => "new-connection",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Load {
    pub targets: Vec<SocketAddr>,
    pub connections: usize,
    pub mode: Mode,
    /// Requests sent in this first stretch are not counted (connections opened, caches
    /// warm).
    pub warm_up: Duration,
    pub duration: Duration,
    /// A request unanswered this long counts as an error (its connection is dropped).
    pub timeout: Duration,
}

/// What a load did.
#[derive(Debug, Default)]
pub struct Ran {
    pub outcome: Outcome,
    /// The pod each client's first answer came from, by client.
    pub first_pods: Vec<Option<String>>,
    /// Counted answers by pod.
    pub answers: BTreeMap<String, u64>,
}

/// Runs the load on the calling thread (its network namespace) until it ends.
pub fn run_blocking(load: &Load) -> anyhow::Result<Ran> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    Ok(runtime.block_on(run(load)))
}

async fn run(load: &Load) -> Ran {
    let started = Instant::now();
    let counted_from = started + load.warm_up;
    let ends = counted_from + load.duration;
    let clients: Vec<_> = (0..load.connections)
        .map(|index| {
            let load = load.clone();
            tokio::spawn(async move { client(&load, index, counted_from, ends).await })
        })
        .collect();
    let mut ran = Ran::default();
    for client in clients {
        match client.await {
            Ok(part) => {
                ran.outcome.merge(part.outcome);
                ran.first_pods.push(part.first_pods.into_iter().next().flatten());
                for (pod, count) in part.answers {
                    *ran.answers.entry(pod).or_default() += count;
                }
            }
            Err(error) => {
                ran.outcome.record_error(format!("a client task failed: {error}"));
                ran.first_pods.push(None);
            }
        }
    }
    ran.outcome.elapsed = load.duration;
    ran
}

async fn client(load: &Load, index: usize, counted_from: Instant, ends: Instant) -> Ran {
    let mut ran = Ran {
        first_pods: vec![None],
        ..Ran::default()
    };
    let mut kept: Option<BufReader<TcpStream>> = None;
    let mut sent: usize = 0;
    loop {
        let now = Instant::now();
        if now >= ends {
            break;
        }
        let target = match load.mode {
            Mode::KeepAlive => load.targets[index % load.targets.len()],
            Mode::NewConnection => load.targets[(index + sent) % load.targets.len()],
        };
        sent += 1;
        let result = tokio::time::timeout(load.timeout, async {
            match load.mode {
                Mode::KeepAlive => {
                    let mut connection = match kept.take() {
                        Some(connection) => connection,
                        None => connect(target).await?,
                    };
                    let pod = exchange(&mut connection, false).await?;
                    kept = Some(connection);
                    Ok((now.elapsed(), pod))
                }
                Mode::NewConnection => {
                    let mut connection = connect(target).await?;
                    let pod = exchange(&mut connection, true).await?;
                    let took = now.elapsed();
                    // Wait for the server's close, so that the server, which closes
                    // first, holds the TIME_WAIT and this host's ports are not used up.
                    let mut rest = Vec::new();
                    let _ = connection.read_to_end(&mut rest).await;
                    Ok::<_, String>((took, pod))
                }
            }
        })
        .await;
        if let Ok(Ok((_, pod))) = &result
            && ran.first_pods[0].is_none()
        {
            ran.first_pods[0] = Some(pod.clone());
        }
        if now < counted_from {
            continue;
        }
        match result {
            Ok(Ok((took, pod))) => {
                ran.outcome.latencies.push(took);
                *ran.answers.entry(pod).or_default() += 1;
            }
            Ok(Err(error)) => {
                kept = None;
                ran.outcome.record_error(error);
            }
            Err(_) => {
                kept = None;
                ran.outcome.record_error(format!("no answer within {:?}", load.timeout));
            }
        }
    }
    ran
}

async fn connect(target: SocketAddr) -> Result<BufReader<TcpStream>, String> {
    let stream = TcpStream::connect(target)
        .await
        .map_err(|e| format!("connect: {}", e.kind()))?;
    stream.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    Ok(BufReader::new(stream))
}

/// `GET /` and its whole answer, which must be a 200 with a Content-Length; the pod
/// the answer names.
async fn exchange(connection: &mut BufReader<TcpStream>, close: bool) -> Result<String, String> {
    let request: &[u8] = if close {
        b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    } else {
        b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    };
    connection
        .get_mut()
        .write_all(request)
        .await
        .map_err(|e| format!("send: {}", e.kind()))?;
    let mut line = String::new();
    let read = |e: std::io::Error| format!("read: {}", e.kind());
    if connection.read_line(&mut line).await.map_err(read)? == 0 {
        return Err("closed before an answer".into());
    }
    if line.split(' ').nth(1) != Some("200") {
        return Err(format!("answered {}", line.trim_end()));
    }
    let mut length = None;
    loop {
        line.clear();
        if connection.read_line(&mut line).await.map_err(read)? == 0 {
            return Err("closed in the headers".into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let length = length.ok_or("no Content-Length")?;
    let mut body = vec![0; length];
    connection.read_exact(&mut body).await.map_err(read)?;
    let body = String::from_utf8_lossy(&body);
    Ok(body.split_whitespace().nth(1).unwrap_or_default().to_owned())
}
