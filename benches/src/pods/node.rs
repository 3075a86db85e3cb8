//! berth under test: one `berth server` (store, API server, scheduler and controllers)
//! and one `berth agent` on loopback, with a docker-registry that serves the busybox
//! image the pods run, as `berth up` arranges them on one host.
//!
//! The agent runs pods with its default runtime, or the one `--agent-arg` flags and
//! `--runtime-class` choose. TODO(issue 15): once the OCI runtime lands on main and is
//! the agent's default where runc works, this measures containers; until then the
//! agent starts host processes and the image is only resolved, not run.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use berth_testkit::registry::Registry;
use berth_testkit::{Process, QUIET_RAFT_LOG, free_port};
use serde_json::Value;

use crate::api::http::Connection;
use crate::api::server::ServerUnderTest;

pub const NODE_NAME: &str = "bench-node";
/// The repository and tag the busybox image is pushed as.
const IMAGE_REPO: &str = "bench/busybox";
const IMAGE_TAG: &str = "1";

/// How long the agent may take to register its node and report it Ready.
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct BerthNode {
    // Field order is drop order: the agent stops before the server it reports to.
    pub agent: Process,
    pub server: ServerUnderTest,
    registry: Registry,
    /// `127.0.0.1:PORT/bench/busybox:1`, the pods' image.
    pub image: String,
    /// The image's manifest digest, as the pods' imageID should name it.
    pub image_digest: String,
}

impl BerthNode {
    /// Starts the registry (with the busybox image), the server and the agent, under
    /// `dir`, and waits until the node is Ready.
    pub async fn start(binary: &Path, dir: &Path, agent_args: &[String]) -> anyhow::Result<BerthNode> {
        Self::start_with(binary, dir, agent_args, Vec::new()).await
    }

    /// [`Self::start`], with `server_args` for the server.
    pub async fn start_with(
        binary: &Path,
        dir: &Path,
        agent_args: &[String],
        server_args: Vec<String>,
    ) -> anyhow::Result<BerthNode> {
        let registry = Registry::start().context("starting docker-registry (Debian's package `docker-registry`)")?;
        let image = berth_testkit::oci::busybox_image()
            .context("no static busybox (Debian's busybox-static) to build the pods' image from")?
            .build()?;
        let image_digest = registry.push(&image, IMAGE_REPO, IMAGE_TAG)?;

        let mut server = ServerUnderTest::start_with(binary, &dir.join("server"), server_args)?;
        server.wait_until_ready().await?;

        let mut args = vec![
            "agent".to_owned(),
            format!("--name={NODE_NAME}"),
            format!("--store={}", server.store_endpoints().join(",")),
            format!("--data-dir={}", dir.join("agent").display()),
            format!("--listen=127.0.0.1:{}", free_port()),
            // Pods left when the agent stops go with it: the bench leaves nothing behind.
            "--stop-pods-on-exit".to_owned(),
        ];
        args.extend(agent_args.iter().cloned());
        let mut agent = Process::new("berth agent", binary, dir.join("agent.log"))
            .with_args(args)
            .with_env("RUST_LOG", QUIET_RAFT_LOG);
        agent.start()?;
        let node = BerthNode {
            agent,
            server,
            image: registry.reference(IMAGE_REPO, IMAGE_TAG),
            image_digest,
            registry,
        };
        node.wait_until_node_ready().await?;
        Ok(node)
    }

    async fn wait_until_node_ready(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        let path = format!("/api/v1/nodes/{NODE_NAME}");
        loop {
            let mut connection = Connection::open(&self.server.api_authority).await?;
            let answer = connection.get(&path).await?;
            if answer.status == 200 {
                let node: Value = serde_json::from_slice(&answer.body)?;
                let is_ready = node["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|condition| condition["type"] == "Ready" && condition["status"] == "True");
                if is_ready {
                    return Ok(());
                }
            }
            if started.elapsed() > NODE_READY_TIMEOUT {
                bail!(
                    "node {NODE_NAME} is not Ready after {NODE_READY_TIMEOUT:?}; the agent's log:\n{}",
                    self.agent.log_tail(20).join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The agent's resident set size in KiB.
    pub fn agent_rss_kib(&self) -> anyhow::Result<u64> {
        Ok(self.agent.rss_kib()?)
    }

    /// Fails with the agent's log when it has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.agent.reap_exited() {
            bail!("the agent exited ({status}):\n{}", self.agent.log_tail(30).join("\n"));
        }
        self.server.check_running()
    }

    /// The last lines of the agent's and the server's logs, for a failure's message.
    pub fn log_tails(&self) -> String {
        format!(
            "--- agent ---\n{}\n--- server ---{}\n--- registry ---\n{}",
            self.agent.log_tail(20).join("\n"),
            self.server.log_tail(10),
            self.registry.log_text()
        )
    }

    /// Stops the agent (SIGTERM; it stops its pods on the way out) before the server.
    pub fn stop_agent(&mut self) {
        self.agent.stop(Duration::from_secs(60));
    }
}
