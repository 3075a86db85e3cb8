//! The server on loopback: cluster names answered over UDP and TCP, other names
//! forwarded to an upstream the test runs, and a real client (busybox's nslookup).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::*;
use crate::catalog::{Contents, PortEntry, ServiceEntry};
use crate::wire::{NOERROR, NXDOMAIN, ParsedReply, Record, RecordData, Reply, TYPE_A, TYPE_SRV};

/// An upstream resolver for the test: answers every A query with 192.0.2.7 (and
/// counts nothing else), over UDP and TCP.
struct Upstream {
    address: SocketAddr,
    _task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self._task.abort();
    }
}

fn upstream_reply(bytes: &[u8]) -> Vec<u8> {
    let query = wire::parse_query(bytes).expect("a query");
    let reply = Reply {
        answers: vec![Record {
            name: query.name.clone(),
            ttl: 60,
            data: RecordData::A(Ipv4Addr::new(192, 0, 2, 7)),
        }],
        ..Reply::default()
    };
    wire::write_reply(&query, &reply, 512)
}

async fn upstream() -> Upstream {
    let listeners = Listeners::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
    let address = listeners.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let udp = async {
            let mut buffer = vec![0; 4096];
            while let Ok((n, from)) = listeners.udp.recv_from(&mut buffer).await {
                let _ = listeners.udp.send_to(&upstream_reply(&buffer[..n]), from).await;
            }
        };
        let tcp = async {
            while let Ok((mut stream, _)) = listeners.tcp.accept().await {
                if let Ok(query) = read_framed(&mut stream).await {
                    let _ = write_framed(&mut stream, &upstream_reply(&query)).await;
                }
            }
        };
        tokio::join!(udp, tcp);
    });
    Upstream { address, _task: task }
}

struct Server {
    address: SocketAddr,
    _task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self._task.abort();
    }
}

fn catalog() -> Arc<Catalog> {
    let mut contents = Contents::default();
    contents.services.insert(
        ("shop".into(), "web".into()),
        ServiceEntry {
            namespace: "shop".into(),
            name: "web".into(),
            cluster_ips: vec!["10.96.0.20".parse().unwrap()],
            headless: false,
            external_name: None,
            ports: vec![PortEntry {
                name: "http".into(),
                port: 80,
                protocol: "TCP".into(),
            }],
            publish_not_ready: false,
        },
    );
    let catalog = Arc::new(Catalog::default());
    catalog.set(contents);
    catalog
}

async fn server(upstreams: Vec<SocketAddr>) -> Server {
    let listeners = Listeners::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
    let address = listeners.local_addr().unwrap();
    let resolver = Arc::new(Resolver {
        zone: ZoneConfig::new("cluster.local"),
        catalog: catalog(),
        upstreams,
    });
    Server {
        address,
        _task: tokio::spawn(listeners.serve(resolver)),
    }
}

async fn ask_udp(server: SocketAddr, name: &str, qtype: u16) -> ParsedReply {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(&wire::encode_query(42, name, qtype), server)
        .await
        .unwrap();
    let mut buffer = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buffer))
        .await
        .expect("a reply within 10 s")
        .unwrap();
    wire::parse_reply(&buffer[..n]).unwrap()
}

async fn ask_tcp(server: SocketAddr, name: &str, qtype: u16) -> ParsedReply {
    let mut stream = TcpStream::connect(server).await.unwrap();
    write_framed(&mut stream, &wire::encode_query(43, name, qtype))
        .await
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), read_framed(&mut stream))
        .await
        .expect("a reply within 10 s")
        .unwrap();
    wire::parse_reply(&reply).unwrap()
}

fn addresses(reply: &ParsedReply) -> Vec<String> {
    reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RecordData::A(ip) => Some(ip.to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn cluster_names_are_answered_over_udp_and_tcp() {
    let server = server(Vec::new()).await;
    let reply = ask_udp(server.address, "web.shop.svc.cluster.local", TYPE_A).await;
    assert_eq!((reply.id, reply.rcode, reply.authoritative), (42, NOERROR, true));
    assert_eq!(addresses(&reply), ["10.96.0.20"]);
    let reply = ask_tcp(server.address, "_http._tcp.web.shop.svc.cluster.local", TYPE_SRV).await;
    assert_eq!(reply.id, 43);
    assert!(
        matches!(&reply.answers[0].data, RecordData::Srv { port: 80, .. }),
        "{reply:?}"
    );
    let reply = ask_udp(server.address, "nope.shop.svc.cluster.local", TYPE_A).await;
    assert_eq!(reply.rcode, NXDOMAIN);
    assert!(matches!(
        reply.authority[..],
        [Record {
            data: RecordData::Soa { .. },
            ..
        }]
    ));
}

#[tokio::test]
async fn other_names_go_to_the_upstream_on_the_same_transport() {
    let upstream = upstream().await;
    let server = server(vec![upstream.address]).await;
    for reply in [
        ask_udp(server.address, "www.example.org", TYPE_A).await,
        ask_tcp(server.address, "www.example.org", TYPE_A).await,
    ] {
        assert_eq!(reply.rcode, NOERROR);
        assert_eq!(addresses(&reply), ["192.0.2.7"]);
    }
}

#[tokio::test]
async fn without_an_upstream_that_answers_the_reply_is_servfail() {
    // A port nothing listens on: the forward fails (refused or timed out).
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = server(vec![silent.local_addr().unwrap()]).await;
    drop(silent);
    let reply = ask_udp(server.address, "www.example.org", TYPE_A).await;
    assert_eq!(reply.rcode, SERVFAIL);
}

#[tokio::test]
async fn busybox_nslookup_resolves_a_service_and_an_outside_name() {
    let Some(busybox) = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        berth_testkit::skip("busybox is not installed (scripts/test.sh installs busybox-static)");
        return;
    };
    let upstream = upstream().await;
    let server = server(vec![upstream.address]).await;
    let lookup = |name: &str| {
        let output = tokio::process::Command::new(busybox)
            .args(["nslookup", "-type=a", name, &server.address.to_string()])
            .output();
        async move {
            let output = tokio::time::timeout(Duration::from_secs(30), output)
                .await
                .expect("nslookup within 30 s")
                .unwrap();
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
    };
    let service = lookup("web.shop.svc.cluster.local").await;
    assert!(service.contains("Address: 10.96.0.20"), "{service}");
    let outside = lookup("www.example.org").await;
    assert!(outside.contains("Address: 192.0.2.7"), "{outside}");
    let missing = lookup("nope.shop.svc.cluster.local").await;
    assert!(missing.contains("NXDOMAIN"), "{missing}");
}
