//! Port forwarding over SPDY (`portforward.k8s.io`), as the kubelet serves it: for
//! each local connection kubectl opens an error stream and then a data stream, both
//! with the `port` and the `requestID` it pairs them by; the agent connects to the
//! pod's port and relays the data stream both ways, then closes the error stream —
//! empty when all went well, the reason when not.
//!
//! The pod's port is reached at the address the caller gives: 127.0.0.1 while pods
//! share the host's network (the process runtime's, and `hostNetwork` ones).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::spdy::{self, Outbound, Stream};

pub const PROTOCOL: &str = "portforward.k8s.io";

/// Serves one upgraded port-forward connection for pod `pod` ("namespace/name"),
/// whose ports are reached at `target`.
pub async fn serve<S>(io: S, pod: String, target: IpAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let mut errors: HashMap<String, Outbound> = HashMap::new();
    spdy::serve(io, |stream: Stream| {
        let request_id = stream.header("requestid").unwrap_or_default().to_owned();
        match stream.header("streamtype") {
            Some("error") => {
                errors.insert(request_id, stream.outbound);
            }
            Some("data") => {
                let error = errors.remove(&request_id);
                tokio::spawn(relay(stream, error, target, pod.clone()));
            }
            other => {
                tracing::debug!(stream_type = ?other, "a port-forward stream of an unknown type");
                let outbound = stream.outbound;
                tokio::spawn(async move { outbound.finish().await });
            }
        }
    })
    .await;
}

async fn relay(stream: Stream, error: Option<Outbound>, ip: IpAddr, pod: String) {
    let port = stream.header("port").and_then(|p| p.parse::<u16>().ok());
    let Stream {
        mut inbound, outbound, ..
    } = stream;
    let report = |message: String| {
        let error = error.clone();
        let outbound = outbound.clone();
        async move {
            if let Some(error) = &error {
                error.send(message.as_bytes()).await;
                error.finish().await;
            }
            outbound.finish().await;
        }
    };
    let Some(port) = port else {
        report("a port-forward data stream without a valid port header".into()).await;
        return;
    };
    let address = SocketAddr::new(ip, port);
    let tcp = match tokio::net::TcpStream::connect(address).await {
        Ok(tcp) => tcp,
        Err(e) => {
            report(format!(
                "error forwarding port {port} to pod {pod}: dial tcp {address}: {e}"
            ))
            .await;
            return;
        }
    };
    let (mut from_pod, mut to_pod) = tcp.into_split();
    // Client to pod runs until the client's FIN; the error stream does not wait for
    // it (kubectl waits for the error stream once the pod's side has ended).
    tokio::spawn(async move {
        while let Some(chunk) = inbound.recv().await {
            if to_pod.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to_pod.shutdown().await;
    });
    let downstream = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from_pod.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !outbound.send(&buf[..n]).await {
                        break;
                    }
                }
            }
        }
        outbound.finish().await;
    };
    downstream.await;
    if let Some(error) = error {
        error.finish().await;
    }
}
