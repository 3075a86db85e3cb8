//! An httpGet probe: one GET over HTTP/1.1, or HTTPS without checking the server's
//! certificate (as the kubelet's), all within `timeoutSeconds`. A status from 200 to
//! 399 succeeds (redirects are not followed: a redirect is a success); the body, cut
//! to 10 KiB, is the message of a success.
//!
//! Headers as the kubelet sends them: `Host` (the target, or the probe's own Host
//! header), `User-Agent: kube-probe/1.32` and `Accept: */*` unless the probe's
//! `httpHeaders` name them, then the probe's headers.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::tcp::{io_words, join_host_port};
use super::{MAX_OUTPUT_BYTES, Outcome, USER_AGENT, truncated};

/// What to GET.
#[derive(Debug, Clone)]
pub(super) struct Request {
    pub(super) https: bool,
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) path: String,
    pub(super) headers: Vec<(String, String)>,
}

impl Request {
    /// The path as requested: with its leading `/`.
    fn path(&self) -> String {
        if self.path.starts_with('/') {
            self.path.clone()
        } else {
            format!("/{}", self.path)
        }
    }

    fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", join_host_port(&self.host, self.port), self.path())
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

pub(super) async fn get(request: &Request, timeout: Duration) -> Outcome {
    let url = request.url();
    match tokio::time::timeout(timeout, exchange(request)).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => Outcome::failure(format!("Get {url:?}: {e}")),
        Err(_) => Outcome::failure(format!(
            "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

async fn exchange(request: &Request) -> Result<Outcome, String> {
    let address = join_host_port(&request.host, request.port);
    let tcp = TcpStream::connect((request.host.as_str(), request.port))
        .await
        .map_err(|e| format!("dial tcp {address}: connect: {}", io_words(&e)))?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = if request.https {
        let tls = crate::image::registry::http::insecure_tls_config()?;
        let name = ServerName::try_from(request.host.clone()).map_err(|e| format!("{:?}: {e}", request.host))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut builder = hyper::Request::get(request.path());
    let named = |name: &str| request.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if !named("host") {
        builder = builder.header(hyper::header::HOST, &address);
    }
    if !named("user-agent") {
        builder = builder.header(hyper::header::USER_AGENT, USER_AGENT);
    }
    if !named("accept") {
        builder = builder.header(hyper::header::ACCEPT, "*/*");
    }
    builder = builder.header(hyper::header::CONNECTION, "close");
    for (name, value) in &request.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header {name:?}: {e}"))?;
        let value = HeaderValue::from_str(value).map_err(|e| format!("header {name:?}: {e}"))?;
        builder = builder.header(name, value);
    }
    let http_request = builder.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let response = sender.send_request(http_request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while bytes.len() < MAX_OUTPUT_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    bytes.extend_from_slice(data);
                }
            }
            // A body cut short says nothing of the status.
            Some(Err(_)) | None => break,
        }
    }
    Ok(if (200..400).contains(&status) {
        Outcome::success(truncated(&bytes))
    } else {
        Outcome::failure(format!("HTTP probe failed with statuscode: {status}"))
    })
}
