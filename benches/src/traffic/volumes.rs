//! `berth-bench traffic --only volumes`: the time from a Secret's update in the API to
//! its new content in the Secret volumes of every running pod that mounts it.
//!
//! ```text
//!  set-up:  a Secret `bench-secret` and a Deployment of --volume-pods busybox pods
//!           mounting it (runc, spread over the hosts), all Running
//!  round:   PATCH the Secret's value to the round's number; poll every pod's file on
//!           its host (<agent dir>/pods/<uid>/volumes/kubernetes.io~secret/secret/value,
//!           the directory the container binds) until it holds it
//!           ──► per pod: the time from the PATCH's answer; per round: the last pod
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hyper::Method;
use hyper::body::Bytes;
use serde_json::{Value, json};

use super::cluster::{Api, TrafficCluster};

const APP: &str = "secret-readers";
const SECRET: &str = "bench-secret";
/// How long one update may take to reach every pod before the run fails.
const ROUND_TIMEOUT: Duration = Duration::from_secs(120);

/// Per pod, the time from each update to its file; per round, the slowest pod.
pub struct Updates {
    pub to_each_pod: Vec<Duration>,
    pub to_every_pod: Vec<Duration>,
}

/// Standard base64 with padding, as a Secret's `data` holds values.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn secret(value: &str) -> Value {
    let encoded = base64(value.as_bytes());
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET}, "data": {"value": encoded}})
}

fn deployment(image: &str, replicas: usize) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": APP}},
            "template": {
                "metadata": {"labels": {"app": APP}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "main",
                        "image": image,
                        "command": ["sleep", "3600"],
                        "volumeMounts": [{"name": "secret", "mountPath": "/etc/secret"}],
                    }],
                    "volumes": [{"name": "secret", "secret": {"secretName": SECRET}}],
                },
            },
        },
    })
}

/// Sets up the Secret and its pods, then measures `rounds` updates.
pub async fn measure(cluster: &mut TrafficCluster, pods: usize, rounds: usize) -> anyhow::Result<Updates> {
    let mut api = Api::open(&cluster.api_authority).await?;
    api.create("/api/v1/namespaces/default/secrets", &secret("0")).await?;
    api.create(
        "/apis/apps/v1/namespaces/default/deployments",
        &deployment(&cluster.image, pods),
    )
    .await?;
    let authority = cluster.api_authority.clone();
    let path = format!("/api/v1/namespaces/default/pods?labelSelector=app%3D{APP}");
    let running = cluster
        .wait_until(&format!("{pods} pods mounting the Secret Running"), || {
            let (authority, path) = (authority.clone(), path.clone());
            async move {
                let list = Api::open(&authority).await?.get_json(&path).await?;
                let running: Vec<Value> = list["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["status"]["phase"] == "Running")
                    .cloned()
                    .collect();
                Ok((running.len() == pods).then_some(running))
            }
        })
        .await?;
    let files: Vec<PathBuf> = running
        .iter()
        .map(|pod| {
            let uid = pod["metadata"]["uid"].as_str().context("a pod without a uid")?;
            let host: usize = pod["spec"]["nodeName"]
                .as_str()
                .and_then(|n| n.strip_prefix("host-"))
                .and_then(|i| i.parse().ok())
                .context("a pod on no host-N node")?;
            Ok(cluster
                .agent_dir(host)
                .join("pods")
                .join(uid)
                .join("volumes/kubernetes.io~secret/secret/value"))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut updates = Updates {
        to_each_pod: Vec::new(),
        to_every_pod: Vec::new(),
    };
    for round in 1..=rounds {
        let value = round.to_string();
        let body = json!({"data": secret(&value)["data"]});
        api.connection()
            .request(
                Method::PATCH,
                &format!("/api/v1/namespaces/default/secrets/{SECRET}"),
                Some(("application/merge-patch+json", Bytes::from(body.to_string()))),
            )
            .await?
            .expect(200)
            .context("updating the Secret")?;
        let patched = Instant::now();
        let mut waiting: Vec<&PathBuf> = files.iter().collect();
        while !waiting.is_empty() {
            waiting.retain(|file| {
                if std::fs::read_to_string(file).is_ok_and(|text| text == value) {
                    updates.to_each_pod.push(patched.elapsed());
                    false
                } else {
                    true
                }
            });
            if patched.elapsed() > ROUND_TIMEOUT {
                bail!(
                    "update {round}: {} pods' files still old after {ROUND_TIMEOUT:?}\n{}",
                    waiting.len(),
                    cluster.log_tails()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        updates.to_every_pod.push(patched.elapsed());
        cluster.check_running()?;
    }
    Ok(updates)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_as_kubernetes_stores_secret_values() {
        assert_eq!(super::base64(b"1"), "MQ==");
        assert_eq!(super::base64(b"10"), "MTA=");
        assert_eq!(super::base64(b"hunter2"), "aHVudGVyMg==");
    }
}
