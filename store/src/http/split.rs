//! One client port for two protocols, as etcd has it: gRPC (HTTP/2) for the etcd
//! clients, HTTP/1.1 for `/health`, `/version`, `/metrics` and the JSON gateway.
//!
//! Every HTTP/2 connection opens with the same 24-byte preface
//! (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`) and no HTTP/1.1 request line starts like it,
//! so the first bytes decide. They are read (not peeked: the stream may be TLS,
//! which has no peek) and handed back first by [`Rewound`], so whichever server
//! takes the connection reads it from its first byte.
//!
//! ```text
//!  accepted stream (TCP, or TLS around it) ──► split ─┬─ preface ──► Grpc  (tonic)
//!                                                     └─ other   ──► Http1 (hyper)
//! ```

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

pub const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    Http1,
}

/// Reads just enough of `stream` to tell HTTP/2 from HTTP/1.1: up to the first byte
/// that leaves the preface, or the whole preface. A stream that ends first is HTTP/1.1
/// (whose server answers or closes it).
pub async fn split<S: AsyncRead + Unpin>(mut stream: S) -> io::Result<(Protocol, Rewound<S>)> {
    let mut head = Vec::with_capacity(HTTP2_PREFACE.len());
    let mut chunk = [0u8; HTTP2_PREFACE.len()];
    let protocol = loop {
        if !HTTP2_PREFACE.starts_with(&head) {
            break Protocol::Http1;
        }
        if head.len() == HTTP2_PREFACE.len() {
            break Protocol::Grpc;
        }
        let n = stream.read(&mut chunk[..HTTP2_PREFACE.len() - head.len()]).await?;
        if n == 0 {
            break Protocol::Http1;
        }
        head.extend_from_slice(&chunk[..n]);
    };
    Ok((
        protocol,
        Rewound {
            head,
            read: 0,
            inner: stream,
        },
    ))
}

/// A stream whose first bytes were already read: they come back first, then the rest.
pub struct Rewound<S> {
    head: Vec<u8>,
    read: usize,
    inner: S,
}

impl<S> Rewound<S> {
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewound<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.read < this.head.len() {
            let n = buf.remaining().min(this.head.len() - this.read);
            buf.put_slice(&this.head[this.read..this.read + n]);
            this.read += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewound<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: Connected> Connected for Rewound<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn split_bytes(chunks: &[&[u8]]) -> (Protocol, Vec<u8>) {
        let reader = ChunkReader {
            chunks: chunks.iter().map(|c| c.to_vec()).collect(),
        };
        let (protocol, mut rewound) = split(reader).await.unwrap();
        let mut all = Vec::new();
        rewound.read_to_end(&mut all).await.unwrap();
        (protocol, all)
    }

    /// A reader that hands out `chunks` one read at a time, as a slow client sends them.
    struct ChunkReader {
        chunks: std::collections::VecDeque<Vec<u8>>,
    }

    impl AsyncRead for ChunkReader {
        fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            if let Some(mut chunk) = self.chunks.pop_front() {
                let n = buf.remaining().min(chunk.len());
                buf.put_slice(&chunk[..n]);
                if n < chunk.len() {
                    self.chunks.push_front(chunk.split_off(n));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn the_http2_preface_means_grpc_even_in_pieces() {
        let mut sent = HTTP2_PREFACE.to_vec();
        sent.extend_from_slice(b"\0\0\0\x04\0\0\0\0\0");
        let (protocol, read) = split_bytes(&[&sent[..3], &sent[3..10], &sent[10..]]).await;
        assert_eq!(protocol, Protocol::Grpc);
        assert_eq!(read, sent, "the server reads the connection from its first byte");
    }

    #[tokio::test]
    async fn a_request_line_means_http1() {
        for request in [
            &b"POST /v3/kv/range HTTP/1.1\r\n\r\n"[..],
            b"GET /health HTTP/1.1\r\n\r\n",
            b"P",
        ] {
            let (protocol, read) = split_bytes(&[request]).await;
            assert_eq!(protocol, Protocol::Http1, "{:?}", String::from_utf8_lossy(request));
            assert_eq!(read, request);
        }
        let (protocol, read) = split_bytes(&[b"PR", b"I * HTTP/1.1\r\n"]).await;
        assert_eq!((protocol, &read[..]), (Protocol::Http1, &b"PRI * HTTP/1.1\r\n"[..]));
    }

    #[tokio::test]
    async fn an_empty_connection_is_left_to_http1() {
        let (protocol, read) = split_bytes(&[]).await;
        assert_eq!((protocol, read.len()), (Protocol::Http1, 0));
    }
}
