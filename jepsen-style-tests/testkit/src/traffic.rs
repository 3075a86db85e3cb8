//! A steady stream of HTTP requests at one address, half of them on a new connection
//! each and half on connections kept alive, with every outcome recorded: what the
//! traffic tests check ("no request failed while the pods were replaced") and what the
//! benches measure.
//!
//! A request on a kept-alive connection that the server had closed while it was idle
//! (nothing of an answer came: the connection was found closed, or reset before the
//! answer's first byte) is sent again on a new connection once, as HTTP clients do
//! for such requests; it counts as one request. Everything else that is not a
//! `200` is a failure, with its time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the request went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    New,
    KeptAlive,
}

/// One request's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// When it was sent, from the start of the traffic.
    pub at: Duration,
    pub took: Duration,
    pub connection: Connection,
    /// The answer's body (its first line), or what went wrong.
    pub result: Result<String, String>,
    /// On a kept-alive connection that had answered before: its last answer, which
    /// names the server at its other end (a failure there is that server's).
    pub previous: Option<String>,
}

/// Requests at `rate` per second in all to `target` (`GET path`), until stopped.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<Vec<Outcome>>>,
    started: Instant,
}

/// Threads per kind of connection: a slow answer holds up one of them only.
const WORKERS_PER_KIND: u32 = 4;

impl Traffic {
    pub fn start(target: SocketAddr, path: &str, rate: u32, timeout: Duration) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let interval = Duration::from_secs_f64(f64::from(2 * WORKERS_PER_KIND) / f64::from(rate.max(1)));
        let mut workers = Vec::new();
        for kind in [Connection::New, Connection::KeptAlive] {
            for _ in 0..WORKERS_PER_KIND {
                let worker = Worker {
                    target,
                    path: path.to_owned(),
                    timeout,
                    kind,
                    started,
                    stop: stop.clone(),
                    kept: None,
                    kept_answer: None,
                    is_retried: false,
                };
                workers.push(std::thread::spawn(move || worker.run(interval)));
            }
        }
        Traffic { stop, workers, started }
    }

    /// How long the traffic has run.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops sending and returns every outcome, in the order they were sent.
    pub fn stop(self) -> History {
        self.stop.store(true, Ordering::Relaxed);
        let mut outcomes: Vec<Outcome> = self
            .workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a traffic worker panicked"))
            .collect();
        outcomes.sort_by_key(|o| o.at);
        History { outcomes }
    }
}

struct Worker {
    target: SocketAddr,
    path: String,
    timeout: Duration,
    kind: Connection,
    started: Instant,
    stop: Arc<AtomicBool>,
    kept: Option<BufReader<TcpStream>>,
    /// The kept connection's last answer.
    kept_answer: Option<String>,
    /// The last request was sent again on a new connection.
    is_retried: bool,
}

impl Worker {
    fn run(mut self, interval: Duration) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        let mut next = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now < next {
                std::thread::sleep(next - now);
            }
            // Behind schedule (a slow answer): go on from now, without a burst.
            next = next.max(now) + interval;
            let sent = Instant::now();
            let mut previous = self.kept.as_ref().and(self.kept_answer.take());
            self.is_retried = false;
            let result = self.request();
            if self.is_retried {
                previous = None; // the request went out again on a new connection
            }
            if let Ok(answer) = &result {
                self.kept_answer = self.kept.as_ref().map(|_| answer.clone());
            }
            outcomes.push(Outcome {
                at: sent - self.started,
                took: sent.elapsed(),
                connection: self.kind,
                result,
                previous,
            });
        }
        outcomes
    }

    fn request(&mut self) -> Result<String, String> {
        if self.kind == Connection::New {
            return exchange(&mut self.connect()?, &self.path, true).map_err(|e| e.message);
        }
        let (mut connection, is_reused) = match self.kept.take() {
            Some(kept) => (kept, true),
            None => (self.connect()?, false),
        };
        match exchange(&mut connection, &self.path, false) {
            Ok(body) => {
                self.kept = Some(connection);
                Ok(body)
            }
            // Closed by the server while idle: once more, on a new connection.
            Err(e) if is_reused && e.nothing_came => {
                self.is_retried = true;
                let mut connection = self.connect()?;
                let body = exchange(&mut connection, &self.path, false).map_err(|e| e.message)?;
                self.kept = Some(connection);
                Ok(body)
            }
            Err(e) => Err(e.message),
        }
    }

    fn connect(&self) -> Result<BufReader<TcpStream>, String> {
        let stream = TcpStream::connect_timeout(&self.target, self.timeout).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(self.timeout))
            .and_then(|()| stream.set_write_timeout(Some(self.timeout)))
            .and_then(|()| stream.set_nodelay(true))
            .map_err(|e| format!("socket options: {e}"))?;
        Ok(BufReader::new(stream))
    }
}

struct Failure {
    message: String,
    /// No byte of an answer came: the request may be sent again.
    nothing_came: bool,
}

/// One request and its answer on `connection`; the answer's first body line.
fn exchange(connection: &mut BufReader<TcpStream>, path: &str, close: bool) -> Result<String, Failure> {
    let failed = |what: &str, e: std::io::Error, nothing_came: bool| Failure {
        message: format!("{what}: {e}"),
        nothing_came,
    };
    let header = if close { "Connection: close\r\n" } else { "" };
    let request = format!("GET {path} HTTP/1.1\r\nHost: berth\r\n{header}\r\n");
    connection
        .get_mut()
        .write_all(request.as_bytes())
        .map_err(|e| failed("send", e, true))?;
    let mut status = String::new();
    match connection.read_line(&mut status) {
        Ok(0) => {
            return Err(Failure {
                message: "closed before an answer".into(),
                nothing_came: true,
            });
        }
        Ok(_) => {}
        // A reset before the first byte of an answer: the server had closed the
        // connection (its FIN and its reset of this request crossed it on the way).
        Err(e) if status.is_empty() && is_closed_by_peer(&e) => return Err(failed("read", e, true)),
        Err(e) => return Err(failed("read", e, false)),
    }
    let mut length = None;
    loop {
        let mut line = String::new();
        if connection.read_line(&mut line).map_err(|e| failed("read", e, false))? == 0 {
            return Err(Failure {
                message: "closed in the headers".into(),
                nothing_came: false,
            });
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<u64>().ok();
        }
    }
    let length = length.ok_or_else(|| Failure {
        message: format!("no Content-Length in the answer to {path}"),
        nothing_came: false,
    })?;
    let mut body = String::new();
    connection
        .take(length)
        .read_to_string(&mut body)
        .map_err(|e| failed("read the body", e, false))?;
    let status = status.trim_end();
    if status.split(' ').nth(1) != Some("200") {
        return Err(Failure {
            message: format!("{status}: {}", body.trim()),
            nothing_came: false,
        });
    }
    Ok(body.lines().next().unwrap_or_default().to_owned())
}

fn is_closed_by_peer(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe)
}

/// Every request's outcome, in the order they were sent.
#[derive(Debug, Clone)]
pub struct History {
    pub outcomes: Vec<Outcome>,
}

impl History {
    pub fn failures(&self) -> Vec<&Outcome> {
        self.outcomes.iter().filter(|o| o.result.is_err()).collect()
    }

    /// The requests sent in `[from, to)`.
    pub fn between(&self, from: Duration, to: Duration) -> History {
        History {
            outcomes: self
                .outcomes
                .iter()
                .filter(|o| from <= o.at && o.at < to)
                .cloned()
                .collect(),
        }
    }

    /// How many requests each answer (`v1 web-7d9f-abcde`) got.
    pub fn answers(&self) -> std::collections::BTreeMap<String, usize> {
        let mut answers = std::collections::BTreeMap::new();
        for outcome in &self.outcomes {
            if let Ok(body) = &outcome.result {
                *answers.entry(body.clone()).or_insert(0) += 1;
            }
        }
        answers
    }

    /// The latency below which `quantile` (0.99) of the successful requests answered.
    pub fn latency(&self, quantile: f64) -> Option<Duration> {
        let mut took: Vec<Duration> = self
            .outcomes
            .iter()
            .filter(|o| o.result.is_ok())
            .map(|o| o.took)
            .collect();
        took.sort();
        let index = ((took.len() as f64 * quantile).ceil() as usize).checked_sub(1)?;
        took.get(index).copied()
    }

    /// A summary for a report: counts by connection kind, and each failure's time and
    /// reason (at most `shown`).
    pub fn summary(&self, shown: usize) -> String {
        let count = |kind| self.outcomes.iter().filter(|o| o.connection == kind).count();
        let failures = self.failures();
        let mut text = format!(
            "{} requests ({} on new connections, {} kept alive), {} failed",
            self.outcomes.len(),
            count(Connection::New),
            count(Connection::KeptAlive),
            failures.len()
        );
        for failure in failures.iter().take(shown) {
            let reason = failure.result.as_ref().err().map_or("", String::as_str);
            text.push_str(&format!(
                "\n  at {:>8.3} s ({:?}): {reason}",
                failure.at.as_secs_f64(),
                failure.connection
            ));
        }
        if failures.len() > shown {
            text.push_str(&format!("\n  ... and {} more", failures.len() - shown));
        }
        text
    }
}
