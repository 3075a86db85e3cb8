//! `berth-bench autoscale`: how fast the horizontal pod autoscaler answers a load
//! step, from the step to the new replicas Ready.
//!
//! ```text
//!  registry + `berth server` + `berth agent` on loopback (pods::node), busybox pods
//!  Deployment `burn` (1 replica, requests.cpu 100m, limits.cpu 300m): each pod burns
//!  CPU while the file `on` exists in a hostPath directory, else idles
//!  HorizontalPodAutoscaler (autoscaling/v2): cpu 50 % of requests, 1..--max-replicas,
//!  scale-down stabilization 0 s (so that rounds can follow each other)
//!  each round: a random wait within the sync period (so that steps fall anywhere in
//!              it), create `on` ──► the Deployment's spec.replicas above 1 (the decision)
//!              ──► every replica Ready (the reaction); remove `on` ──► back to 1
//! ```
//!
//! The server runs with its defaults unless `--sync-period` is given: the
//! autoscaler's sync period (Kubernetes' `--horizontal-pod-autoscaler-sync-period`,
//! 15 s) bounds the decision from above; the agents' usage window (a few seconds of
//! cgroup samples) from below. Kubernetes with metrics-server (15 s resolution by
//! default) cannot decide sooner than its next scrape and sync; there is no peer to
//! run here.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use hyper::Method;
use hyper::body::Bytes;
use serde_json::{Value, json};

use crate::api::http::Connection;
use crate::berth_binary::BerthBinary;
use crate::compare::machine;
use crate::duration::parse_duration;
use crate::latency::{LatencySummary, ms};
use crate::pods::node::BerthNode;
use crate::pods::starts::{self, NAMESPACE};
use crate::report::json_line;

#[derive(clap::Args, Clone, Debug)]
pub struct AutoscaleOptions {
    /// Load steps, each followed by a scale back down.
    #[arg(long, default_value_t = 3)]
    pub rounds: u64,

    /// The autoscaler's maxReplicas.
    #[arg(long, default_value_t = 3)]
    pub max_replicas: u64,

    /// The server's --horizontal-pod-autoscaler-sync-period [default: the server's, 15s].
    #[arg(long)]
    pub sync_period: Option<String>,

    /// How long one step may take to reach Ready replicas, or to scale back.
    #[arg(long, value_parser = parse_duration, default_value = "180s")]
    pub timeout: Duration,

    #[command(flatten)]
    pub binary: BerthBinary,
}

/// One round's times from the load step.
struct Step {
    decided: Duration,
    ready: Duration,
    replicas: i64,
}

pub async fn run_until_interrupted(options: &AutoscaleOptions) -> anyhow::Result<()> {
    crate::compare::until_interrupted(run(options)).await
}

pub async fn run(options: &AutoscaleOptions) -> anyhow::Result<()> {
    ensure!(options.rounds >= 1, "--rounds must be at least 1");
    ensure!(options.max_replicas >= 2, "--max-replicas must be at least 2");
    let (binary, temp) = options.binary.prepare("berth-bench-autoscale-")?;
    let switch = temp.path().join("switch");
    std::fs::create_dir_all(&switch)?;
    let mut server_args: Vec<String> = options
        .sync_period
        .iter()
        .map(|p| format!("--horizontal-pod-autoscaler-sync-period={p}"))
        .collect();
    // The burners' switch is a hostPath volume, beyond the baseline Pod Security
    // level berth enforces by default.
    server_args.push("--pod-security-default-enforce=privileged".into());
    let mut node = BerthNode::start_with(&binary, temp.path(), &[], server_args).await?;
    let outcome = measure(options, &mut node, &switch).await;
    // The burners stop before anything else goes.
    let _ = std::fs::remove_file(switch.join("on"));
    if outcome.is_err() {
        eprintln!("{}", node.log_tails());
    }
    let mut connection = Connection::open(&node.server.api_authority).await?;
    let path = format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/burn");
    let _ = connection.request(Method::DELETE, &path, None).await;
    for name in starts::pod_names(&mut connection).await.unwrap_or_default() {
        let path = format!("{}/{name}?gracePeriodSeconds=0", starts::collection_path());
        let _ = connection.request(Method::DELETE, &path, None).await;
    }
    node.stop_agent();
    let steps = outcome?;
    let decided = LatencySummary::from_samples(steps.iter().map(|s| s.decided).collect());
    let ready = LatencySummary::from_samples(steps.iter().map(|s| s.ready).collect());
    let mut text = String::from("## Autoscaler reaction to a load step\n\n");
    for (name, value) in machine::describe(temp.path()) {
        text.push_str(&format!("- {name}: {value}\n"));
    }
    text.push_str(&format!(
        "- berth: {}{}\n- command: `{}`\n",
        machine::first_line(machine::command_output(&binary.display().to_string(), &["version"])),
        crate::compare::berth_provenance(&binary),
        std::env::args().collect::<Vec<_>>().join(" ")
    ));
    text.push_str(&format!(
        "- a Deployment of busybox burners (requests.cpu 100m, limits.cpu 300m), an autoscaler at \
         50 % cpu, 1..{} replicas, sync period {}; {} load steps\n\n",
        options.max_replicas,
        options.sync_period.as_deref().unwrap_or("15s (the default)"),
        options.rounds
    ));
    text.push_str("| from the load step to | p50 (s) | max (s) |\n| --- | ---: | ---: |\n");
    text.push_str(&format!(
        "| the scale-up decision (spec.replicas) | {:.1} | {:.1} |\n",
        decided.p50.as_secs_f64(),
        decided.max.as_secs_f64()
    ));
    text.push_str(&format!(
        "| every new replica Ready | {:.1} | {:.1} |\n\n",
        ready.p50.as_secs_f64(),
        ready.max.as_secs_f64()
    ));
    text.push_str(&json_line([
        ("workload".to_string(), json!("autoscale")),
        ("rounds".to_string(), json!(options.rounds)),
        ("decision_p50_ms".to_string(), json!(ms(decided.p50))),
        ("decision_max_ms".to_string(), json!(ms(decided.max))),
        ("ready_p50_ms".to_string(), json!(ms(ready.p50))),
        ("ready_max_ms".to_string(), json!(ms(ready.max))),
        (
            "replicas".to_string(),
            json!(steps.iter().map(|s| s.replicas).collect::<Vec<_>>()),
        ),
    ]));
    text.push('\n');
    print!("{text}");
    Ok(())
}

fn burners(image: &str, switch: &std::path::Path) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "burn", "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "burn"}},
            "template": {
                "metadata": {"labels": {"app": "burn"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "main",
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c",
                            "while :; do if [ -e /switch/on ]; then :; else sleep 0.2; fi; done"],
                        "resources": {"requests": {"cpu": "100m", "memory": "16Mi"}, "limits": {"cpu": "300m"}},
                        "volumeMounts": [{"name": "switch", "mountPath": "/switch", "readOnly": true}],
                    }],
                    "volumes": [{"name": "switch", "hostPath": {"path": switch, "type": "Directory"}}],
                },
            },
        },
    })
}

fn autoscaler(max: u64) -> Value {
    json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "burn", "namespace": NAMESPACE},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "burn"},
            "minReplicas": 1,
            "maxReplicas": max,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
        },
    })
}

/// A number in [0, 1) from the system's random source (0 if it cannot be read).
fn random_fraction() -> f64 {
    use std::io::Read as _;
    let mut bytes = [0u8; 4];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        return 0.0;
    }
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

async fn post(connection: &mut Connection, path: &str, body: &Value) -> anyhow::Result<()> {
    connection
        .request(
            Method::POST,
            path,
            Some(("application/json", Bytes::from(body.to_string()))),
        )
        .await?
        .expect(201)?;
    Ok(())
}

/// The Deployment's spec.replicas and status.readyReplicas.
async fn replicas(connection: &mut Connection) -> anyhow::Result<(i64, i64)> {
    let path = format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/burn");
    let body = connection.get(&path).await?.expect(200)?;
    let deployment: Value = serde_json::from_slice(&body)?;
    Ok((
        deployment["spec"]["replicas"].as_i64().unwrap_or(1),
        deployment["status"]["readyReplicas"].as_i64().unwrap_or(0),
    ))
}

/// Polls the Deployment until `done(spec, ready)`; the time since `from`.
async fn wait(
    connection: &mut Connection,
    node: &mut BerthNode,
    what: &str,
    from: Instant,
    timeout: Duration,
    done: impl Fn(i64, i64) -> bool,
) -> anyhow::Result<(Duration, i64)> {
    loop {
        let (spec, ready) = replicas(connection).await?;
        if done(spec, ready) {
            return Ok((from.elapsed(), spec));
        }
        node.check_running()?;
        if from.elapsed() > timeout {
            bail!("{what}: not after {timeout:?} (spec.replicas {spec}, ready {ready})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn measure(
    options: &AutoscaleOptions,
    node: &mut BerthNode,
    switch: &std::path::Path,
) -> anyhow::Result<Vec<Step>> {
    let mut connection = Connection::open(&node.server.api_authority).await?;
    starts::create_namespace(&mut connection).await?;
    let deployments = format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments");
    post(&mut connection, &deployments, &burners(&node.image, switch)).await?;
    let started = Instant::now();
    wait(
        &mut connection,
        node,
        "the first burner Ready",
        started,
        options.timeout,
        |_, ready| ready == 1,
    )
    .await?;
    let autoscalers = format!("/apis/autoscaling/v2/namespaces/{NAMESPACE}/horizontalpodautoscalers");
    post(&mut connection, &autoscalers, &autoscaler(options.max_replicas)).await?;
    // Let the autoscaler see the idle burner before the first step.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut steps = Vec::new();
    let period = options
        .sync_period
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--sync-period: {e}"))?
        .unwrap_or(Duration::from_secs(15));
    for round in 1..=options.rounds {
        // A step lands anywhere in the autoscaler's period, not just after a sync.
        tokio::time::sleep(period.mul_f64(random_fraction())).await;
        std::fs::write(switch.join("on"), "")?;
        let step = Instant::now();
        let (decided, _) = wait(
            &mut connection,
            node,
            "the scale-up",
            step,
            options.timeout,
            |spec, _| spec > 1,
        )
        .await?;
        let (ready, replicas) = wait(
            &mut connection,
            node,
            "the new replicas Ready",
            step,
            options.timeout,
            |spec, ready| spec > 1 && ready >= spec,
        )
        .await?;
        eprintln!(
            "-- step {round}: scaled to {replicas} after {:.1} s, all Ready after {:.1} s",
            decided.as_secs_f64(),
            ready.as_secs_f64()
        );
        steps.push(Step {
            decided,
            ready,
            replicas,
        });
        std::fs::remove_file(switch.join("on"))?;
        let calm = Instant::now();
        wait(
            &mut connection,
            node,
            "the scale back to 1",
            calm,
            options.timeout,
            |spec, ready| spec == 1 && ready == 1,
        )
        .await?;
    }
    Ok(steps)
}
