//! A small HTTP/1.1 client for berth's own API servers and agents: `http://`, or
//! `https://` with the cluster's CA (and a client certificate or a bearer token),
//! keep-alive connections kept for the next request (pool.rs), and failover across
//! several base URLs.
//!
//! ```text
//!  request(method, path) ──► connect to the preferred base ──refused/timeout──► next base …
//!                                   │ connected
//!                                   ▼
//!                  send the request, read the response (whole, or as it arrives)
//! ```
//!
//! Failover happens only while connecting (and, for GET, when a fresh connection
//! breaks before any response arrives), so a write is never sent twice. A kept
//! connection that the server closed meanwhile costs nothing: a request it never
//! carried (and any read) goes on a new connection; a write it may have carried is
//! an error, as on a fresh one. The base that
//! last accepted a connection is tried first next time, so a dead replica costs one
//! refused connection per command, not one per request.

mod pool;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long a connection attempt to one base may take before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a whole request (or a stream's response headers) may take. Generous: a
/// write waits for a Raft commit, which takes an election's time during a failover.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// A base URL that is not `http://host[:port][/prefix]`.
    #[error("bad server URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    /// No base accepted a connection: `(base, why)` for each one tried, in order.
    #[error("{}", describe_attempts(attempts))]
    Unreachable { attempts: Vec<(String, String)> },
    /// Connected, but the exchange failed (reset, malformed response, …).
    #[error("{base}: {message}")]
    Exchange { base: String, message: String },
    /// Connected, but no (complete) response within the deadline.
    #[error("{base}: no response within {timeout_ms} ms")]
    Timeout { base: String, timeout_ms: u128 },
}

fn describe_attempts(attempts: &[(String, String)]) -> String {
    let parts: Vec<String> = attempts.iter().map(|(base, why)| format!("{base}: {why}")).collect();
    format!("cannot connect to {}", parts.join("; "))
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A response whose body is read as it arrives (watch streams, `logs -f`).
#[derive(Debug)]
pub struct StreamingResponse {
    pub status: u16,
    base: String,
    body: Incoming,
    /// Bytes received but not yet handed out (a partial line, for `next_line`).
    buffered: Vec<u8>,
}

impl StreamingResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The next piece of the body as the server sent it; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        if !self.buffered.is_empty() {
            return Ok(Some(Bytes::from(std::mem::take(&mut self.buffered))));
        }
        self.next_data().await
    }

    /// The next line, without its `\n` (or `\r\n`); a last line without a newline is
    /// returned too; `None` at the end of the body.
    pub async fn next_line(&mut self) -> Result<Option<Vec<u8>>, HttpError> {
        loop {
            if let Some(at) = self.buffered.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buffered.drain(..=at).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            match self.next_data().await? {
                Some(data) => self.buffered.extend_from_slice(&data),
                None if self.buffered.is_empty() => return Ok(None),
                None => return Ok(Some(std::mem::take(&mut self.buffered))),
            }
        }
    }

    /// The rest of the body (for an error response's `Status`).
    pub async fn read_to_end(mut self) -> Result<Vec<u8>, HttpError> {
        let mut all = std::mem::take(&mut self.buffered);
        while let Some(data) = self.next_data().await? {
            all.extend_from_slice(&data);
        }
        Ok(all)
    }

    async fn next_data(&mut self) -> Result<Option<Bytes>, HttpError> {
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(exchange(&self.base, &e)),
                // Trailers carry no data; skip them.
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

/// Where a base URL points: `host:port` to connect to, and a path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Base {
    https: bool,
    /// The host, without brackets or port: the name the server's certificate must hold.
    host: String,
    authority: String,
    path_prefix: String,
}

fn parse_base(url: &str) -> Result<Base, HttpError> {
    let bad = |reason: &str| HttpError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let (https, rest) = match url.split_once("://") {
        Some(("http", rest)) => (false, rest),
        Some(("https", rest)) => (true, rest),
        Some(_) => return Err(bad("the scheme must be http:// or https://")),
        None => (false, url),
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], rest[at..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    // An IPv6 literal keeps its brackets; a port follows the last ':' after them.
    let has_port = match authority.rfind(']') {
        Some(close) => authority[close..].contains(':'),
        None => authority.contains(':'),
    };
    let host = match authority.rfind(']') {
        Some(close) => authority[1..close].to_string(),
        None if has_port => authority[..authority.rfind(':').unwrap_or(authority.len())].to_string(),
        None => authority.to_string(),
    };
    let authority = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{}", if https { 443 } else { 80 })
    };
    Ok(Base {
        https,
        host,
        authority,
        path_prefix: path.to_string(),
    })
}

/// An HTTP/1.1 client over one or more base URLs, tried in order.
pub struct HttpClient {
    bases: Vec<String>,
    /// The index of the base that last accepted a connection; tried first.
    preferred: AtomicUsize,
    /// How `https` bases are reached: the CA trusted, the certificate shown.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Sent as `Authorization: Bearer <token>`.
    bearer_token: Option<String>,
    /// Connections idle after a whole response, for the next request.
    pool: pool::Pool,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("bases", &self.bases)
            .field("tls", &self.tls.is_some())
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "(hidden)"))
            .finish()
    }
}

impl HttpClient {
    /// One or more base URLs ("http://127.0.0.1:8080"); a request that cannot connect tries the next.
    pub fn new(bases: Vec<String>) -> Self {
        HttpClient {
            bases,
            preferred: AtomicUsize::new(0),
            tls: None,
            bearer_token: None,
            pool: pool::Pool::default(),
        }
    }

    /// Reaches `https` bases with `tls` (see `berth_pki::tls::client_config`).
    pub fn with_tls(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(tls);
        self
    }

    pub fn with_bearer_token(mut self, token: Option<String>) -> Self {
        self.bearer_token = token;
        self
    }

    /// The same client (bases, TLS, token) with connections of its own: what one
    /// kubelet of many simulated in one process holds, rather than a share of
    /// [`MAX_IDLE`](pool::MAX_IDLE) kept connections with thousands of others
    /// (each request beyond them a new connection).
    pub fn with_own_connections(&self) -> Self {
        HttpClient {
            bases: self.bases.clone(),
            preferred: AtomicUsize::new(self.preferred.load(Ordering::Relaxed)),
            tls: self.tls.clone(),
            bearer_token: self.bearer_token.clone(),
            pool: pool::Pool::default(),
        }
    }

    pub async fn request(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Response, HttpError> {
        let retry_after_connect = method.eq_ignore_ascii_case("GET");
        let (content_type, body) = match body {
            Some((content_type, body)) => (Some(content_type), Bytes::from(body)),
            None => (None, Bytes::new()),
        };
        let sent = self
            .send(method, path_and_query, content_type, body, retry_after_connect)
            .await?;
        let base = sent.url;
        let status = sent.response.status().as_u16();
        let collected = tokio::time::timeout(RESPONSE_TIMEOUT, sent.response.into_body().collect())
            .await
            .map_err(|_| timeout(&base))?
            .map_err(|e| exchange(&base, &e))?;
        // The whole response read: the connection may carry the next request.
        self.pool.put(sent.index, sent.sender);
        Ok(Response {
            status,
            body: collected.to_bytes().to_vec(),
        })
    }

    /// Like request, but the body is read as it arrives (watch, logs -f).
    pub async fn stream(&self, method: &str, path_and_query: &str) -> Result<StreamingResponse, HttpError> {
        let retry_after_connect = method.eq_ignore_ascii_case("GET");
        // The connection goes with the stream (its sender dropped: closed once read).
        let sent = self
            .send(method, path_and_query, None, Bytes::new(), retry_after_connect)
            .await?;
        Ok(StreamingResponse {
            status: sent.response.status().as_u16(),
            base: sent.url,
            body: sent.response.into_body(),
            buffered: Vec::new(),
        })
    }

    /// Sends one request to the first base that takes it, on a kept connection to
    /// it if there is one; returns the base, the connection and the response head
    /// (the body still to be read).
    async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        content_type: Option<&str>,
        body: Bytes,
        retry_after_connect: bool,
    ) -> Result<Sent, HttpError> {
        let method = hyper::Method::from_bytes(method.as_bytes()).map_err(|e| HttpError::Exchange {
            base: self.bases.join(","),
            message: format!("bad method {method:?}: {e}"),
        })?;
        if self.bases.is_empty() {
            return Err(HttpError::Unreachable { attempts: Vec::new() });
        }
        let first = self.preferred.load(Ordering::Relaxed) % self.bases.len();
        let mut attempts = Vec::new();
        for offset in 0..self.bases.len() {
            let index = (first + offset) % self.bases.len();
            let url = &self.bases[index];
            let base = parse_base(url)?;
            let build = || {
                let mut request = hyper::Request::builder()
                    .method(method.clone())
                    .uri(format!("{}{path_and_query}", base.path_prefix))
                    .header(hyper::header::HOST, &base.authority)
                    .header(hyper::header::USER_AGENT, concat!("berth/", env!("CARGO_PKG_VERSION")));
                if let Some(content_type) = content_type {
                    request = request.header(hyper::header::CONTENT_TYPE, content_type);
                }
                if let Some(token) = &self.bearer_token {
                    request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
                }
                request.body(Full::new(body.clone())).map_err(|e| HttpError::Exchange {
                    base: url.clone(),
                    message: format!("bad request {path_and_query:?}: {e}"),
                })
            };
            if let Some(mut sender) = self.pool.take(index) {
                match tokio::time::timeout(RESPONSE_TIMEOUT, sender.try_send_request(build()?)).await {
                    Err(_) => return Err(timeout(url)),
                    Ok(Ok(response)) => return Ok(Sent::new(url, index, sender, response)),
                    // Closed before it carried the request, or a read: a new
                    // connection takes it. A write it may have carried is not sent again.
                    Ok(Err(e)) if e.message().is_some() || retry_after_connect => {}
                    Ok(Err(e)) => return Err(exchange(url, e.error())),
                }
            }
            let mut sender = match connect(&base, self.tls.as_ref()).await {
                Ok(sender) => sender,
                Err(why) => {
                    attempts.push((url.clone(), why));
                    continue;
                }
            };
            self.preferred.store(index, Ordering::Relaxed);
            match tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(build()?)).await {
                Err(_) => return Err(timeout(url)),
                Ok(Ok(response)) => return Ok(Sent::new(url, index, sender, response)),
                // A replica that accepted the connection and then went away: a read
                // can safely be asked of the next one, a write cannot (it may have
                // been applied).
                Ok(Err(e)) if retry_after_connect => attempts.push((url.clone(), e.to_string())),
                Ok(Err(e)) => return Err(exchange(url, &e)),
            }
        }
        Err(HttpError::Unreachable { attempts })
    }
}

/// A request sent: the base that took it, the connection, the response head.
struct Sent {
    url: String,
    index: usize,
    sender: SendRequest<Full<Bytes>>,
    response: hyper::Response<Incoming>,
}

impl Sent {
    fn new(url: &str, index: usize, sender: SendRequest<Full<Bytes>>, response: hyper::Response<Incoming>) -> Self {
        Sent {
            url: url.to_string(),
            index,
            sender,
            response,
        }
    }
}

/// Opens a connection (with its TLS handshake for `https`) and completes the
/// HTTP/1.1 handshake; the error says why not.
async fn connect(base: &Base, tls: Option<&Arc<rustls::ClientConfig>>) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&base.authority)).await {
        Err(_) => return Err(format!("no connection within {} s", CONNECT_TIMEOUT.as_secs())),
        Ok(Err(e)) => return Err(describe_io_error(&e)),
        Ok(Ok(stream)) => stream,
    };
    let _ = stream.set_nodelay(true);
    if !base.https {
        return handshake(stream).await;
    }
    let Some(tls) = tls else {
        return Err("https needs the cluster's CA (a kubeconfig with certificate-authority)".to_string());
    };
    let name =
        rustls_pki_types::ServerName::try_from(base.host.clone()).map_err(|e| format!("{:?}: {e}", base.host))?;
    let connecting = tokio_rustls::TlsConnector::from(tls.clone()).connect(name, stream);
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Err(_) => Err(format!("no TLS handshake within {} s", CONNECT_TIMEOUT.as_secs())),
        Ok(Err(e)) => Err(format!("TLS: {e}")),
        Ok(Ok(stream)) => handshake(stream).await,
    }
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    // The connection task ends when its sender is dropped (after the response is
    // read) or the server closes it.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// `connection refused` rather than `Connection refused (os error 111)`.
fn describe_io_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::TimedOut
        | ErrorKind::AddrNotAvailable => e.kind().to_string(),
        _ => e.to_string(),
    }
}

fn exchange(base: &str, e: &dyn std::fmt::Display) -> HttpError {
    HttpError::Exchange {
        base: base.to_string(),
        message: e.to_string(),
    }
}

fn timeout(base: &str) -> HttpError {
    HttpError::Timeout {
        base: base.to_string(),
        timeout_ms: RESPONSE_TIMEOUT.as_millis(),
    }
}

#[cfg(test)]
mod tests;
