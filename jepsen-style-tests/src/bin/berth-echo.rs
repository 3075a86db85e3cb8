//! `berth-echo`: the HTTP server the traffic tests run in their pods' images. It
//! answers every `GET` with one line naming itself (`<version> <hostname>`), keeps
//! connections alive (HTTP/1.1), and serves a readiness endpoint a test can turn off,
//! so that a client's recorded history tells which pod answered each request and
//! whether any request failed while pods came, went and stopped being ready.
//!
//! ```text
//! berth-echo [--port 8080] [--version v1] [--unready-file /tmp/unready]
//!   GET /healthz   200 "ok", or 503 while the unready file exists
//!   GET <other>    200 "<version> <hostname>\n"
//! ```
//!
//! It has no SIGTERM handler: a pod that wants to drain says so with a preStop hook, as
//! most Kubernetes workloads do.

use std::io::{BufRead, BufReader, Read as _, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

struct Config {
    port: u16,
    version: String,
    unready_file: PathBuf,
}

fn parse(args: &[String]) -> Result<Config, String> {
    let mut config = Config {
        port: 8080,
        version: "v1".into(),
        unready_file: PathBuf::from("/tmp/unready"),
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag}: needs a value"));
        match flag.as_str() {
            "--port" => config.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--version" => config.version = value()?.clone(),
            "--unready-file" => config.unready_file = PathBuf::from(value()?),
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    Ok(config)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("berth-echo: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(("0.0.0.0", config.port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("berth-echo: cannot listen on port {}: {e}", config.port);
            return ExitCode::FAILURE;
        }
    };
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let answer = format!("{} {}\n", config.version, hostname.trim());
    eprintln!("berth-echo {} listening on port {}", config.version, config.port);
    let config = std::sync::Arc::new((answer, config.unready_file));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let config = config.clone();
        std::thread::spawn(move || {
            let (answer, unready_file) = &*config;
            let _ = serve(stream, answer, unready_file);
        });
    }
    ExitCode::SUCCESS
}

/// Answers requests on one connection until the client closes it or asks to.
fn serve(stream: TcpStream, answer: &str, unready_file: &Path) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut is_close = request_line.ends_with("HTTP/1.0\r\n");
        let mut body_length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            match name.trim().to_ascii_lowercase().as_str() {
                "connection" => is_close = value.trim().eq_ignore_ascii_case("close"),
                "content-length" => body_length = value.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
        std::io::copy(&mut (&mut reader).take(body_length as u64), &mut std::io::sink())?;
        let path = request_line.split(' ').nth(1).unwrap_or("/");
        let (status, body) = if path == "/healthz" {
            if unready_file.exists() {
                ("503 Service Unavailable", "unready\n")
            } else {
                ("200 OK", "ok\n")
            }
        } else {
            ("200 OK", answer)
        };
        let connection = if is_close { "close" } else { "keep-alive" };
        // One write per answer: pieces written apart would wait on the client's
        // delayed acknowledgement.
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{body}",
            body.len()
        );
        writer.write_all(response.as_bytes())?;
        if is_close {
            return Ok(());
        }
    }
}
