//! exec, attach and port-forward: checked against the pod, then the upgrade proxied to
//! the agent of its node and the two connections spliced.

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// Reads up to the end of an HTTP head.
async fn read_head(socket: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = socket.read(&mut byte).await.unwrap();
        assert!(n > 0, "the head ended early: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// A node whose agent is `agent_port`, and a pod `p` (container `c`) bound to it.
async fn pod_on_a_node(server: &Server, agent_port: u16) {
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                      "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                                 "daemonEndpoints": {"kubeletEndpoint": {"Port": agent_port}}}});
    assert_eq!(server.send_json("POST", "/api/v1/nodes", &node).await.status, 201);
    let mut scheduled = pod("p", json!({}));
    scheduled["spec"]["nodeName"] = "n1".into();
    assert_eq!(server.send_json("POST", PODS, &scheduled).await.status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_is_proxied_to_the_agent_and_spliced() {
    let server = start().await;
    // The agent: answers the upgrade, then echoes what comes, upper-cased.
    let agent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_port = agent.local_addr().unwrap().port();
    let agent_task = tokio::spawn(async move {
        let (mut socket, _) = agent.accept().await.unwrap();
        let request = read_head(&mut socket).await;
        socket
            .write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
                  sec-websocket-accept: xyz\r\nsec-websocket-protocol: v5.channel.k8s.io\r\n\r\n",
            )
            .await
            .unwrap();
        let mut buf = [0u8; 4];
        socket.read_exact(&mut buf).await.unwrap();
        socket.write_all(&buf.to_ascii_uppercase()).await.unwrap();
        request
    });
    pod_on_a_node(&server, agent_port).await;

    let mut client = TcpStream::connect(server.address).await.unwrap();
    client
        .write_all(
            format!(
                "POST {PODS}/p/exec?command=sh&command=-c&command=echo%20hi&stdout=true&stdin=true HTTP/1.1\r\n\
                 host: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-key: abc\r\n\
                 sec-websocket-version: 13\r\nsec-websocket-protocol: v5.channel.k8s.io\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let head = read_head(&mut client).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-protocol: v5.channel.k8s.io"),
        "{head}"
    );
    client.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 4];
    client.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"PING");
    let request = agent_task.await.unwrap();
    assert!(
        request.starts_with(
            "POST /exec/default/p/c?command=sh&command=-c&command=echo%20hi&input=1&output=1 HTTP/1.1\r\n"
        ),
        "{request}"
    );
    assert!(
        request.to_ascii_lowercase().contains("sec-websocket-key: abc"),
        "{request}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_requests_are_checked_as_kube_apiserver_checks_them() {
    let server = start().await;
    // An agent that refuses, as the kubelet does when the container is not running.
    let agent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_port = agent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut socket, _) = agent.accept().await.unwrap();
        read_head(&mut socket).await;
        let body = "container not found (\"c\")";
        let answer = format!(
            "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(answer.as_bytes()).await.unwrap();
    });
    pod_on_a_node(&server, agent_port).await;
    let upgrade = [("connection", "Upgrade"), ("upgrade", "SPDY/3.1")];
    let refused = server
        .call(
            "POST",
            &format!("{PODS}/p/exec?command=true&stdout=1"),
            &upgrade,
            Vec::new(),
        )
        .await;
    assert_eq!(refused.status, 404);
    assert_eq!(refused.body, b"container not found (\"c\")");

    let message = |reply: Reply| (reply.status, reply.json()["message"].as_str().unwrap().to_string());
    let wrong = server
        .call(
            "POST",
            &format!("{PODS}/p/exec?command=true&stdout=1&container=d"),
            &upgrade,
            Vec::new(),
        )
        .await;
    assert_eq!(
        message(wrong),
        (400, "container d is not valid for pod p: it has [c]".into())
    );
    let no_command = server
        .call("POST", &format!("{PODS}/p/exec?stdout=1"), &upgrade, Vec::new())
        .await;
    assert_eq!(message(no_command), (400, "you must specify at least 1 command".into()));
    let no_streams = server
        .call("POST", &format!("{PODS}/p/exec?command=ls"), &upgrade, Vec::new())
        .await;
    assert_eq!(
        message(no_streams),
        (400, "you must specify at least 1 of stdin, stdout, stderr".into())
    );
    let no_upgrade = server
        .call("POST", &format!("{PODS}/p/attach?stdout=1"), &[], Vec::new())
        .await;
    assert_eq!(message(no_upgrade), (400, "Upgrade request required".into()));
    let missing = server
        .call(
            "POST",
            &format!("{PODS}/nope/portforward?ports=80"),
            &upgrade,
            Vec::new(),
        )
        .await;
    assert_eq!(message(missing), (404, "pods \"nope\" not found".into()));
    assert_eq!(
        server.send_json("POST", PODS, &pod("pending", json!({}))).await.status,
        201
    );
    let unscheduled = server
        .call(
            "POST",
            &format!("{PODS}/pending/portforward?ports=80"),
            &upgrade,
            Vec::new(),
        )
        .await;
    assert_eq!(
        message(unscheduled),
        (400, "pod pending does not have a host assigned".into())
    );
    let wrong_method = server
        .call(
            "PUT",
            &format!("{PODS}/p/exec?command=ls&stdout=1"),
            &upgrade,
            Vec::new(),
        )
        .await;
    assert_eq!(wrong_method.status, 405);
}
