//! DNS queries per second and their latency (p50, p99) on one node: the server on
//! loopback with a catalog of 1,000 Services (half of them headless, with 4
//! endpoints each), asked over UDP by 16 concurrent clients for names of random
//! Services, as pods would. `cargo bench -p berth-dns --bench queries`; the
//! environment variable `QUERIES` sets how many (default 100,000).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_dns::catalog::{Contents, EndpointEntry, PortEntry, ServiceEntry, SliceEntry};
use berth_dns::wire::{self, NOERROR, TYPE_A};
use berth_dns::{Catalog, Listeners, Resolver, ZoneConfig};

const SERVICES: usize = 1000;
const CLIENTS: usize = 16;

fn catalog() -> Arc<Catalog> {
    let mut contents = Contents::default();
    for i in 0..SERVICES {
        let name = format!("svc-{i}");
        let headless = i % 2 == 1;
        let service = ServiceEntry {
            namespace: "bench".into(),
            name: name.clone(),
            cluster_ips: if headless {
                Vec::new()
            } else {
                vec![format!("10.96.{}.{}", i / 250, i % 250 + 1).parse().unwrap()]
            },
            headless,
            external_name: None,
            ports: vec![PortEntry {
                name: "http".into(),
                port: 80,
                protocol: "TCP".into(),
            }],
            publish_not_ready: false,
        };
        contents.services.insert(("bench".into(), name.clone()), service);
        let endpoints = (0..4)
            .map(|e| EndpointEntry {
                addresses: vec![format!("10.244.{e}.{}", i % 250 + 1).parse().unwrap()],
                hostname: None,
                ready: true,
            })
            .collect();
        contents.slices.insert(
            ("bench".into(), format!("{name}-abcde")),
            SliceEntry {
                namespace: "bench".into(),
                service: name,
                ports: vec![PortEntry {
                    name: "http".into(),
                    port: 8080,
                    protocol: "TCP".into(),
                }],
                endpoints,
            },
        );
    }
    let catalog = Arc::new(Catalog::default());
    catalog.set(contents);
    catalog
}

/// One client: `count` queries one after another; each one's latency in µs.
async fn client(server: SocketAddr, seed: usize, count: usize) -> Vec<u64> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    let mut buffer = vec![0; 4096];
    let mut latencies_us = Vec::with_capacity(count);
    let mut state = seed as u64 * 2_654_435_761 + 1;
    for n in 0..count {
        // A small linear congruential generator: which Service to ask for.
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let service = (state >> 33) as usize % SERVICES;
        let query = wire::encode_query(n as u16, &format!("svc-{service}.bench.svc.cluster.local"), TYPE_A);
        let started = Instant::now();
        socket.send(&query).await.unwrap();
        let length = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buffer))
            .await
            .expect("a reply within 5 s")
            .unwrap();
        latencies_us.push(started.elapsed().as_micros() as u64);
        let reply = wire::parse_reply(&buffer[..length]).unwrap();
        assert_eq!((reply.id, reply.rcode), (n as u16, NOERROR));
    }
    latencies_us
}

fn main() {
    let queries: usize = std::env::var("QUERIES")
        .ok()
        .and_then(|q| q.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listeners = Listeners::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let server = listeners.local_addr().unwrap();
        let resolver = Arc::new(Resolver {
            zone: ZoneConfig::new("cluster.local"),
            catalog: catalog(),
            upstreams: Vec::new(),
        });
        let serving = tokio::spawn(listeners.serve(resolver));
        let started = Instant::now();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| tokio::spawn(client(server, c, queries / CLIENTS)))
            .collect();
        let mut latencies_us = Vec::new();
        for c in clients {
            latencies_us.extend(c.await.unwrap());
        }
        let elapsed = started.elapsed();
        serving.abort();
        latencies_us.sort_unstable();
        let at = |q: f64| latencies_us[((latencies_us.len() as f64 * q) as usize).min(latencies_us.len() - 1)];
        println!(
            "dns: {} queries from {CLIENTS} clients in {:.2} s: {:.0} queries/s, latency p50 {} µs, p99 {} µs",
            latencies_us.len(),
            elapsed.as_secs_f64(),
            latencies_us.len() as f64 / elapsed.as_secs_f64(),
            at(0.5),
            at(0.99),
        );
    });
}
