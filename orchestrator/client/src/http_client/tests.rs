use super::*;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[test]
fn base_urls() {
    let base = parse_base("http://127.0.0.1:8080").unwrap();
    assert_eq!(base.authority, "127.0.0.1:8080");
    assert_eq!(base.path_prefix, "");
    assert_eq!(parse_base("localhost").unwrap().authority, "localhost:80");
    assert_eq!(parse_base("http://h:1/api/").unwrap().path_prefix, "/api");
    assert_eq!(parse_base("http://[::1]").unwrap().authority, "[::1]:80");
    assert_eq!(parse_base("http://[::1]:9").unwrap().authority, "[::1]:9");
    let https = parse_base("https://[::1]").unwrap();
    assert_eq!(
        (https.https, https.host.as_str(), https.authority.as_str()),
        (true, "::1", "[::1]:443")
    );
    assert_eq!(parse_base("https://api.example:6443").unwrap().host, "api.example");
    assert!(matches!(parse_base("ftp://h:1"), Err(HttpError::BadUrl { .. })));
    assert!(matches!(parse_base("http://"), Err(HttpError::BadUrl { .. })));
}

/// The length of the first request in `bytes` (head and `content-length` body) once
/// all of it is there.
fn whole_request_len(bytes: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(bytes);
    let head_end = text.find("\r\n\r\n")?;
    let length = text[..head_end]
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .map_or(0, |n| n.trim().parse::<usize>().unwrap());
    (bytes.len() >= head_end + 4 + length).then_some(head_end + 4 + length)
}

/// Answers one request with `response`, returning the request it read.
async fn serve_once(listener: TcpListener, response: &'static str) -> String {
    let (mut socket, _) = listener.accept().await.unwrap();
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.read(&mut buf).await.unwrap();
        request.extend_from_slice(&buf[..n]);
        if whole_request_len(&request).is_some() {
            break;
        }
        if n == 0 {
            break;
        }
    }
    socket.write_all(response.as_bytes()).await.unwrap();
    socket.shutdown().await.unwrap();
    String::from_utf8(request).unwrap()
}

/// A port nothing listens on: bound, then closed.
async fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_refused_base_fails_over_to_the_next() {
    let dead = dead_port().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let live = listener.local_addr().unwrap().port();
    let server = tokio::spawn(serve_once(
        listener,
        "HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}",
    ));
    let client = HttpClient::new(vec![
        format!("http://127.0.0.1:{dead}"),
        format!("http://127.0.0.1:{live}"),
    ]);
    let response = client
        .request(
            "POST",
            "/api/v1/namespaces",
            Some(("application/json", b"{\"a\":1}".to_vec())),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 201);
    assert_eq!(response.body, b"{}");
    let request = server.await.unwrap();
    assert!(request.starts_with("POST /api/v1/namespaces HTTP/1.1\r\n"), "{request}");
    assert!(
        request.to_ascii_lowercase().contains("content-type: application/json"),
        "{request}"
    );
    assert!(request.ends_with("{\"a\":1}"), "{request}");
    assert_eq!(
        client.preferred.load(Ordering::Relaxed),
        1,
        "the live base is tried first next time"
    );
}

#[tokio::test]
async fn nothing_reachable_lists_every_base() {
    let (a, b) = (dead_port().await, dead_port().await);
    let client = HttpClient::new(vec![format!("http://127.0.0.1:{a}"), format!("http://127.0.0.1:{b}")]);
    match client.request("GET", "/", None).await {
        Err(HttpError::Unreachable { attempts }) => {
            assert_eq!(attempts.len(), 2);
            assert_eq!(attempts[0].1, "connection refused");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn streams_read_by_line_and_by_chunk() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(serve_once(
        listener,
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
         5\r\none\nt\r\n5\r\nwo\nth\r\n3\r\nree\r\n0\r\n\r\n",
    ));
    let client = HttpClient::new(vec![format!("http://127.0.0.1:{port}")]);
    let mut stream = client.stream("GET", "/api/v1/pods?watch=1").await.unwrap();
    assert_eq!(stream.status, 200);
    assert_eq!(stream.next_line().await.unwrap().unwrap(), b"one");
    assert_eq!(stream.next_line().await.unwrap().unwrap(), b"two");
    assert_eq!(stream.chunk().await.unwrap().unwrap().as_ref(), b"th");
    assert_eq!(
        stream.next_line().await.unwrap().unwrap(),
        b"ree",
        "a last line without newline"
    );
    assert_eq!(stream.next_line().await.unwrap(), None);
    server.await.unwrap();
}

/// Serves `200 ok` to every request on keep-alive connections, counting the
/// connections accepted; with `close_after` a connection is closed (by the server)
/// after that many responses.
async fn keep_alive_server(close_after: Option<usize>) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut served = 0;
                let mut buf = [0u8; 4096];
                loop {
                    if let Some(length) = whole_request_len(&pending) {
                        pending.drain(..length);
                        socket
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await
                            .unwrap();
                        served += 1;
                        if close_after == Some(served) {
                            return;
                        }
                        continue;
                    }
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => pending.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn requests_reuse_a_kept_connection() {
    let (port, accepted) = keep_alive_server(None).await;
    let client = HttpClient::new(vec![format!("http://127.0.0.1:{port}")]);
    for i in 0..5 {
        let body = Some(("application/json", format!("{{\"n\":{i}}}").into_bytes()));
        let response = client.request("POST", "/x", body).await.unwrap();
        assert_eq!((response.status, response.body.as_slice()), (200, &b"ok"[..]));
        let read = client.request("GET", "/y", None).await.unwrap();
        assert_eq!(read.status, 200);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection for ten requests");
    assert_eq!(client.pool.len(), 1);
}

#[tokio::test]
async fn a_kept_connection_the_server_closed_costs_a_write_nothing() {
    let (port, accepted) = keep_alive_server(Some(1)).await;
    let client = HttpClient::new(vec![format!("http://127.0.0.1:{port}")]);
    for _ in 0..3 {
        let body = Some(("application/json", b"{}".to_vec()));
        let response = client.request("POST", "/x", body).await.unwrap();
        assert_eq!(response.status, 200);
        // Once the server's close has reached the kept connection ("it hangs" else).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !client.pool.all_closed() {
            assert!(tokio::time::Instant::now() < deadline, "the close never arrived");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3, "a new connection each time");
}

#[tokio::test]
async fn streams_are_not_kept() {
    let (port, accepted) = keep_alive_server(None).await;
    let client = HttpClient::new(vec![format!("http://127.0.0.1:{port}")]);
    let stream = client.stream("GET", "/watch").await.unwrap();
    assert_eq!(stream.read_to_end().await.unwrap(), b"ok");
    assert_eq!(client.pool.len(), 0);
    client.request("GET", "/y", None).await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_client_with_its_own_connections_keeps_its_own_and_the_same_credentials() {
    let (port, accepted) = keep_alive_server(None).await;
    let shared = HttpClient::new(vec![format!("http://127.0.0.1:{port}")]).with_bearer_token(Some("t0k3n".into()));
    let own: Vec<HttpClient> = (0..3).map(|_| shared.with_own_connections()).collect();
    for _ in 0..2 {
        for client in &own {
            assert_eq!(client.request("GET", "/y", None).await.unwrap().status, 200);
        }
    }
    // Each its one connection, reused; none taken from or given to the shared one.
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    assert!(own.iter().all(|c| c.pool.len() == 1));
    assert_eq!(shared.pool.len(), 0);
    assert_eq!(own[0].bearer_token.as_deref(), Some("t0k3n"));
    assert_eq!(own[0].bases, shared.bases);
}
