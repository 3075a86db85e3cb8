//! One keep-alive HTTP/1.1 connection to the API server, as a client library holds it:
//! requests go one after another on the same socket; a watch takes a connection of
//! its own and reads the body as it arrives.
//!
//! berth-client's HTTP client opens a connection per request (the CLI's needs); a
//! load generator that did so would time the TCP handshake as much as the server.

use std::sync::Arc;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

pub struct Connection {
    /// `127.0.0.1:PORT`, the Host header.
    authority: String,
    tls: Option<Arc<ClientConfig>>,
    sender: SendRequest<Full<Bytes>>,
}

/// A response read to its end.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    /// The body, when the status is `expected`; otherwise an error with the start of
    /// the body (the server's Status message).
    pub fn expect(self, expected: u16) -> anyhow::Result<Bytes> {
        if self.status != expected {
            let text = String::from_utf8_lossy(&self.body);
            let start: String = text.chars().take(200).collect();
            bail!("HTTP {} (expected {expected}): {start}", self.status);
        }
        Ok(self.body)
    }
}

impl Connection {
    pub async fn open(authority: &str) -> anyhow::Result<Connection> {
        Self::open_with(authority, None).await
    }

    /// A kept connection to `authority` (see [`dial`]).
    pub async fn open_with(authority: &str, tls: Option<&Arc<ClientConfig>>) -> anyhow::Result<Connection> {
        Ok(Connection {
            authority: authority.to_owned(),
            tls: tls.cloned(),
            sender: dial(authority, tls).await?,
        })
    }

    /// Sends one request and returns the response head; the body is still to be read.
    pub async fn send(
        &mut self,
        method: Method,
        path_and_query: &str,
        body: Option<(&str, Bytes)>,
    ) -> anyhow::Result<Response<Incoming>> {
        if self.sender.ready().await.is_err() {
            // The server closed the kept connection (an API server does after 90 s
            // idle, as a long run's load phase leaves some): dial again, as client
            // libraries do.
            self.sender = dial(&self.authority, self.tls.as_ref()).await?;
            self.sender.ready().await.context("the connection closed")?;
        }
        let mut request = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(HOST, &self.authority)
            .header(ACCEPT, "application/json");
        let body = match body {
            Some((content_type, body)) => {
                request = request.header(CONTENT_TYPE, content_type);
                body
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(body))
            .with_context(|| format!("building a request for {path_and_query}"))?;
        self.sender
            .send_request(request)
            .await
            .with_context(|| format!("sending {path_and_query}"))
    }

    /// Sends one request and reads the whole response.
    pub async fn request(
        &mut self,
        method: Method,
        path_and_query: &str,
        body: Option<(&str, Bytes)>,
    ) -> anyhow::Result<Answer> {
        let response = self.send(method, path_and_query, body).await?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the answer to {path_and_query}"))?
            .to_bytes();
        Ok(Answer { status, body })
    }

    pub async fn get(&mut self, path_and_query: &str) -> anyhow::Result<Answer> {
        self.request(Method::GET, path_and_query, None).await
    }
}

/// A new connection over TLS when `tls` is given (the server's name is the
/// authority's host), plain HTTP otherwise.
async fn dial(authority: &str, tls: Option<&Arc<ClientConfig>>) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(authority)
        .await
        .with_context(|| format!("connecting to {authority}"))?;
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    match tls {
        None => handshake(TokioIo::new(stream)).await,
        Some(config) => {
            let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
            let name = ServerName::try_from(host.to_owned()).with_context(|| format!("the server name {host:?}"))?;
            let stream = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, stream)
                .await
                .with_context(|| format!("the TLS handshake with {authority}"))?;
            handshake(TokioIo::new(stream)).await
        }
    }
}

async fn handshake<T>(io: TokioIo<T>) -> anyhow::Result<SendRequest<Full<Bytes>>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(io).await.context("the HTTP/1.1 handshake")?;
    // Ends when the server closes the connection or the sender is dropped.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// The next piece of a streamed body; `None` at its end.
pub async fn next_data(body: &mut Incoming) -> anyhow::Result<Option<Bytes>> {
    loop {
        match body.frame().await {
            None => return Ok(None),
            Some(frame) => {
                // Trailers carry no data; skip them.
                if let Ok(data) = frame.context("reading a streamed body")?.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// For tests: a server that answers each connection's one request with the next of
/// `answers` (status, body) and closes it, as an API server closes a connection left
/// idle; the request lines it read, in order.
#[cfg(test)]
pub(crate) async fn scripted(answers: Vec<(u16, String)>) -> (String, tokio::task::JoinHandle<Vec<String>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let mut lines = Vec::new();
        for (status, body) in answers {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "the request arrives whole");
                head.extend_from_slice(&buf[..n]);
            }
            lines.push(String::from_utf8_lossy(&head).lines().next().unwrap().to_owned());
            let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n{body}", body.len());
            socket.write_all(answer.as_bytes()).await.unwrap();
            socket.shutdown().await.unwrap();
        }
        lines
    });
    (authority, server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_the_server_closed_is_dialled_again() {
        let (authority, server) = scripted(vec![(200, "1".into()), (200, "2".into())]).await;
        let mut connection = Connection::open(&authority).await.unwrap();
        let first = connection.get("/a").await.unwrap();
        assert_eq!((first.status, &first.body[..]), (200, &b"1"[..]));
        // Let the client see the close before the next request.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let second = connection.get("/b").await.unwrap();
        assert_eq!(
            (second.status, &second.body[..]),
            (200, &b"2"[..]),
            "answered on a new connection"
        );
        assert_eq!(server.await.unwrap(), ["GET /a HTTP/1.1", "GET /b HTTP/1.1"]);
    }
}
