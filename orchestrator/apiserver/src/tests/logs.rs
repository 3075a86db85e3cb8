//! Logs: streamed from the agent of the pod's node.

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_come_from_the_agent_of_the_pods_node() {
    let server = start().await;

    // Logs: the pod's node names its agent, which the server streams from.
    let agent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_port = agent.local_addr().unwrap().port();
    let agent_task = tokio::spawn(async move {
        let (mut socket, _) = agent.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 1024];
        while !request.ends_with(b"\r\n\r\n") {
            let n = socket.read(&mut buffer).await.unwrap();
            assert!(n > 0, "the request ended early");
            request.extend_from_slice(&buffer[..n]);
        }
        socket
            .write_all(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello\n\r\n6\r\nworld\n\r\n0\r\n\r\n",
            )
            .await
            .unwrap();
        String::from_utf8(request).unwrap()
    });
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                      "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                                 "daemonEndpoints": {"kubeletEndpoint": {"Port": agent_port}}}});
    assert_eq!(server.send_json("POST", "/api/v1/nodes", &node).await.status, 201);
    let mut scheduled = pod("p", json!({}));
    scheduled["spec"]["nodeName"] = "n1".into();
    assert_eq!(server.send_json("POST", PODS, &scheduled).await.status, 201);
    let log = server.get(&format!("{PODS}/p/log?container=c&tailLines=5")).await;
    assert_eq!(log.status, 200);
    assert_eq!(log.body, b"hello\nworld\n");
    let request = agent_task.await.unwrap();
    assert!(
        request.starts_with("GET /containerLogs/default/p/c?follow=false&tailLines=5 HTTP/1.1\r\n"),
        "{request}"
    );
    let wrong_container = server.get(&format!("{PODS}/p/log?container=d")).await;
    assert_eq!(wrong_container.status, 400);
    assert!(wrong_container.json()["message"].as_str().unwrap().contains("[c]"));
    assert_eq!(
        server.send_json("POST", PODS, &pod("pending", json!({}))).await.status,
        201
    );
    let unscheduled = server.get(&format!("{PODS}/pending/log")).await;
    assert_eq!(unscheduled.status, 400);
    assert_eq!(unscheduled.json()["message"], "pod \"pending\" is not scheduled yet");
}
