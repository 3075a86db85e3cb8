//! The limits that keep one client from stalling the server: body and object sizes,
//! body nesting, slow and idle connections, the connection cap, the in-flight caps
//! and the request timeout, and query parameters out of range.

use std::io::Read;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

/// A pod whose annotation makes its stored form about `bytes` long.
fn pod_of_size(name: &str, bytes: usize) -> Value {
    let mut pod = pod(name, json!({}));
    pod["metadata"]["annotations"] = json!({"filler": "x".repeat(bytes)});
    pod
}

/// Reads a raw HTTP response to its end (the server closes the connection).
async fn read_response(stream: &mut TcpStream) -> String {
    let mut response = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut response))
        .await
        .expect("a response in time")
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

/// A POST whose head says a body follows that the client withholds: the server
/// waits in the handler, holding its in-flight slot.
async fn held_post(server: &Server, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
         content-length: 1000\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Whether the server has closed `stream` (without waiting).
fn is_closed(stream: &mut std::net::TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_objects_are_413_and_deep_bodies_400_before_parsing() {
    let server = start().await;

    // Over the store's request limit (1.5 MiB), under the body limit (3 MiB): the
    // store refuses the write, and the client hears 413 with the limit, not 500.
    let too_big = server.send_json("POST", PODS, &pod_of_size("big", 1_600_000)).await;
    assert_eq!(too_big.status, 413, "{}", String::from_utf8_lossy(&too_big.body));
    let too_big = too_big.json();
    assert_eq!(too_big["reason"], "RequestEntityTooLarge");
    let message = too_big["message"].as_str().unwrap();
    assert!(
        message.contains("pods \"big\"") && message.contains("1572864 bytes"),
        "{message}"
    );
    assert_eq!(server.get(&format!("{PODS}/big")).await.status, 404, "nothing written");
    let fits = server.send_json("POST", PODS, &pod_of_size("fits", 1_200_000)).await;
    assert_eq!(fits.status, 201);
    // An update that grows an object over the limit is refused the same way.
    let grown = server
        .merge_patch(
            &format!("{PODS}/fits"),
            &json!({"metadata": {"annotations": {"more": "y".repeat(400_000)}}}),
        )
        .await;
    assert_eq!(grown.status, 413, "{}", String::from_utf8_lossy(&grown.body));

    // 1 MiB of nested flow mappings would keep libyaml busy for minutes; the depth
    // is measured first and the body refused at once.
    let deep_yaml = "{a: ".repeat(256 * 1024);
    let refused = server
        .call(
            "POST",
            PODS,
            &[("content-type", "application/yaml")],
            deep_yaml.into_bytes(),
        )
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json()["reason"], "BadRequest");
    assert_eq!(
        refused.json()["message"],
        "the request body is nested more than 100 levels deep (at line 1, column 401)"
    );
    let deep_json = format!("{{\"a\": {}", "[".repeat(1000));
    let refused = server
        .call(
            "POST",
            PODS,
            &[("content-type", "application/json")],
            deep_json.into_bytes(),
        )
        .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("the request body is nested more than 100 levels deep"),
        "{}",
        refused.json()
    );
    // An ordinary YAML body still goes through.
    let yaml = serde_yaml_ng::to_string(&pod("from-yaml", json!({"app": "a"}))).unwrap();
    let created = server
        .call("POST", PODS, &[("content-type", "application/yaml")], yaml.into_bytes())
        .await;
    assert_eq!(created.status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_while_others_are_served() {
    let server = start_with(Settings {
        read_header_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        ..Settings::default()
    })
    .await;

    // A slowloris client: a header line every 200 ms, never the end of the head.
    // Each byte is activity, so only a deadline from the head's first byte ends it.
    let slow = TcpStream::connect(server.address).await.unwrap();
    let (mut reader, mut writer) = slow.into_split();
    writer
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if writer.write_all(format!("x-slow-{i}: 1\r\n").as_bytes()).await.is_err() {
                return;
            }
        }
    });
    // Served meanwhile.
    assert_eq!(server.get("/healthz").await.status, 200);
    let mut buffer = [0u8; 64];
    let closed = tokio::time::timeout(TIMEOUT, reader.read(&mut buffer))
        .await
        .expect("the slow connection is closed");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    trickle.abort();

    // A keep-alive connection that answered a request and then idles is closed.
    let mut idle = TcpStream::connect(server.address).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let response = read_response(&mut idle).await;
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert!(response.ends_with("\r\n\r\nok"), "{response}");
    // And one that never says anything (its first head is late).
    let mut silent = TcpStream::connect(server.address).await.unwrap();
    assert_eq!(read_response(&mut silent).await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_for_one_to_close() {
    let server = start_with(Settings {
        max_connections: 2,
        read_header_timeout: Duration::from_secs(2),
        ..Settings::default()
    })
    .await;
    // Two connections that hold the two places with unfinished heads.
    let mut holders: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(server.address).unwrap();
            std::io::Write::write_all(&mut stream, b"GET /healthz HTTP/1.1\r\n").unwrap();
            stream.set_nonblocking(true).unwrap();
            stream
        })
        .collect();
    // A third waits in the listen backlog: it is answered only once the header
    // timeout has closed a holder and freed its place.
    assert_eq!(server.get("/healthz").await.status, 200);
    assert!(
        holders.iter_mut().any(is_closed),
        "the third connection was served while both places were taken"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_inflight_caps_are_429_and_slow_ones_504() {
    let server = start_with(Settings {
        max_mutating_requests_inflight: 1,
        // Long enough that the held request still holds its slot when a loaded machine
        // gets round to the next write.
        request_timeout: Duration::from_secs(15),
        ..Settings::default()
    })
    .await;
    let mut held = held_post(&server, PODS).await;
    // Once the held request has the one mutating slot, the next write is refused
    // at once. (Invalid bodies: whatever gets through before writes nothing.)
    let invalid = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad"}});
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let refused = loop {
        let response = server
            .open(
                "POST",
                PODS,
                &[("content-type", "application/json")],
                invalid.to_string().into_bytes(),
            )
            .await;
        if response.status() == 429 {
            break response;
        }
        assert!(tokio::time::Instant::now() < deadline, "never 429");
    };
    assert_eq!(refused.headers()["retry-after"], "1");
    let body = tokio::time::timeout(TIMEOUT, refused.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    let status: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["code"], 429);
    assert_eq!(status["details"]["retryAfterSeconds"], 1);
    // Reads have slots of their own, and watches need none.
    assert_eq!(server.get(PODS).await.status, 200);
    let mut watch = server.watch(&format!("{PODS}?watch=1")).await;

    // The held request runs into the request timeout: 504, and its slot is free.
    let response = read_response(&mut held).await;
    assert!(response.starts_with("HTTP/1.1 504 "), "{response}");
    assert!(response.contains("\"reason\":\"Timeout\""), "{response}");
    assert!(
        response.contains("request did not complete within requested timeout"),
        "{response}"
    );
    let created = server.send_json("POST", PODS, &pod("p", json!({}))).await;
    assert_eq!(created.status, 201);
    assert_eq!(watch.next_named().await, ("ADDED".into(), "p".into()));

    // A client's own `timeout` is honoured when shorter.
    let mut short = held_post(&server, &format!("{PODS}?timeout=1s")).await;
    let response = read_response(&mut short).await;
    assert!(response.starts_with("HTTP/1.1 504 "), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_parameters_are_range_checked_and_huge_watch_timeouts_are_none() {
    let server = start().await;
    // Once a panic: the deadline overflowed an Instant.
    let mut watch = server
        .watch(&format!("{PODS}?watch=1&timeoutSeconds=9223372036854775807"))
        .await;
    assert_eq!(server.send_json("POST", PODS, &pod("p", json!({}))).await.status, 201);
    assert_eq!(watch.next_named().await, ("ADDED".into(), "p".into()));
    assert_eq!(server.get("/healthz").await.status, 200);

    for (path, parameter) in [
        (format!("{PODS}?watch=1&timeoutSeconds=-1"), "timeoutSeconds"),
        (
            format!("{PODS}?watch=1&timeoutSeconds=99999999999999999999"),
            "timeoutSeconds",
        ),
        (format!("{PODS}?watch=1&resourceVersion=-5"), "resourceVersion"),
        (format!("{PODS}?limit=-1"), "limit"),
        (format!("{PODS}?limit=ten"), "limit"),
        (format!("{PODS}?timeout=forever"), "timeout"),
        (format!("{PODS}/p/log?tailLines=-1"), "tailLines"),
        (format!("{PODS}/p/log?limitBytes=0"), "limitBytes"),
        (format!("{PODS}/p/log?sinceSeconds=0"), "sinceSeconds"),
    ] {
        let refused = server.get(&path).await;
        assert_eq!(refused.status, 400, "{path}");
        let message = refused.json()["message"].as_str().unwrap().to_string();
        assert!(message.starts_with(&format!("{parameter}: ")), "{path}: {message}");
    }
    let refused = server.delete(&format!("{PODS}/p?gracePeriodSeconds=soon")).await;
    assert_eq!(refused.status, 400);
    assert_eq!(server.get(&format!("{PODS}/p")).await.status, 200, "not deleted");
}

/// Log options are checked with PodLogOptions' rules before the agent is asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_log_options_are_refused_by_name() {
    let server = start().await;
    for (options, wanted) in [
        ("sinceSeconds=0", "sinceSeconds: must be greater than or equal to 1"),
        (
            "sinceTime=yesterday",
            "sinceTime: \"yesterday\" is not an RFC 3339 time",
        ),
        (
            "sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z",
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        ),
        ("timestamps=maybe", "timestamps"),
    ] {
        let reply = server.get(&format!("{PODS}/p/log?{options}")).await;
        assert_eq!(reply.status, 400, "{options}");
        let message = reply.json()["message"].as_str().unwrap().to_string();
        assert!(message.starts_with(wanted), "{options}: {message}");
    }
}
