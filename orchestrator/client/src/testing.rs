//! For unit tests that need a real store: one replica on free loopback ports in a
//! temporary directory, and a client of it.

use std::time::Duration;

use berth_proto::etcdserverpb::CompactionRequest;
use berth_proto::etcdserverpb::kv_client::KvClient;
use berth_store::{Server, StoreConfig};

use crate::kv::Kv;
use crate::registry::Registry;

pub struct TestStore {
    /// Kept so the replica runs as long as the test holds this.
    _server: Server,
    pub kv: Kv,
    pub client_url: String,
    _dir: tempfile::TempDir,
}

impl TestStore {
    pub fn registry(&self) -> Registry {
        Registry::new(self.kv.clone())
    }

    /// Compacts the store's history up to `revision`, as `etcdctl compact
    /// --physical` does.
    pub async fn compact(&self, revision: i64) {
        let mut client = KvClient::connect(self.client_url.clone())
            .await
            .expect("a gRPC connection to the test store");
        client
            .compact(CompactionRequest {
                revision,
                physical: true,
            })
            .await
            .expect("the compaction");
    }
}

pub use berth_testkit::free_port;

/// Starts a one-replica store and waits until it serves writes.
pub async fn store() -> TestStore {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (client_port, peer_port) = (free_port(), free_port());
    let server = Server::start(StoreConfig::single("test", dir.path(), client_port, peer_port))
        .await
        .expect("the store starts");
    let client_url = format!("http://127.0.0.1:{client_port}");
    let kv = Kv::connect(std::slice::from_ref(&client_url)).expect("a client");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while kv.put("/berth/test-ready", b"1".to_vec(), 0).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the test store never served a write"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    TestStore {
        _server: server,
        kv,
        client_url,
        _dir: dir,
    }
}
