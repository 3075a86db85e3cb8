//! Resource usage: what an agent reports of its node and its pods' containers
//! (`GET /metrics/usage` on the agent's port, [`UsageSummary`] as JSON), and the
//! objects of `metrics.k8s.io/v1beta1` the API server makes of it (NodeMetrics,
//! PodMetrics), with their quantities written as metrics-server writes them.
//!
//! ```text
//! agent: cgroups every few seconds ──► UsageSummary { node, pods[].containers[] }
//!        (CPU: nanocores averaged over `window_seconds`; memory: working set bytes)
//! API server: summaries of the nodes asked ──► NodeMetrics / PodMetrics
//!        cpu "250m", "1500000n"; memory "10240Ki"; window "10s"
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The group version the metrics API is served in.
pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";

/// One node's report: its own usage and that of each running container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageSummary {
    pub node: String,
    /// None until two samples of the node have been taken.
    #[serde(default)]
    pub node_usage: Option<Usage>,
    #[serde(default)]
    pub pods: Vec<PodUsage>,
}

/// Usage over a window ending at `timestamp`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// RFC 3339, UTC: the end of the window (the newest sample).
    pub timestamp: String,
    pub window_seconds: f64,
    /// CPU time used per second over the window, in billionths of a core.
    pub cpu_nano_cores: u64,
    /// Memory in use less what the kernel can drop at once (inactive file pages),
    /// at the newest sample: the working set the kubelet and cAdvisor report.
    pub memory_working_set_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodUsage {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub containers: Vec<ContainerUsage>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerUsage {
    pub name: String,
    pub usage: Usage,
}

impl PodUsage {
    /// The pod's CPU (nanocores) and memory (bytes): its containers' sums.
    pub fn totals(&self) -> (u64, u64) {
        self.containers.iter().fold((0, 0), |(cpu, memory), c| {
            (cpu + c.usage.cpu_nano_cores, memory + c.usage.memory_working_set_bytes)
        })
    }
}

/// Nanocores as a canonical decimal quantity, as metrics-server's `cpu` reads:
/// the largest of `n`, `u`, `m`, whole cores and `k` that states it exactly
/// (`1500000n`, `250m`, `2`).
pub fn format_nano_cores(nano_cores: u64) -> String {
    const STEPS: [(u64, &str); 4] = [
        (1_000_000_000_000, "k"),
        (1_000_000_000, ""),
        (1_000_000, "m"),
        (1_000, "u"),
    ];
    if nano_cores == 0 {
        return "0".into();
    }
    for (unit, suffix) in STEPS {
        if nano_cores.is_multiple_of(unit) {
            return format!("{}{suffix}", nano_cores / unit);
        }
    }
    format!("{nano_cores}n")
}

/// Bytes as a canonical binary quantity, as metrics-server's `memory` reads: the
/// largest binary unit that states it exactly (`10240Ki`, `3Mi`), else bytes.
pub fn format_memory(bytes: u64) -> String {
    const UNITS: [(&str, u32); 6] = [("Ei", 60), ("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)];
    for (suffix, shift) in UNITS {
        let unit = 1u64 << shift;
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

/// A window as Go prints a `time.Duration` (`10s`, `4.998s`, `250ms`).
pub fn format_window(seconds: f64) -> String {
    let millis = (seconds * 1000.0).round().max(0.0) as u64;
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let text = format!("{}.{:03}", millis / 1000, millis % 1000);
    format!("{}s", text.trim_end_matches('0').trim_end_matches('.'))
}

fn usage_value(usage: &Usage) -> Value {
    json!({
        "cpu": format_nano_cores(usage.cpu_nano_cores),
        "memory": format_memory(usage.memory_working_set_bytes),
    })
}

/// A NodeMetrics object; `labels` are the Node's.
pub fn node_metrics(name: &str, labels: &Value, usage: &Usage) -> Value {
    json!({
        "kind": "NodeMetrics",
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": {"name": name, "creationTimestamp": crate::time::now_rfc3339(), "labels": labels},
        "timestamp": usage.timestamp,
        "window": format_window(usage.window_seconds),
        "usage": usage_value(usage),
    })
}

/// A PodMetrics object; `labels` are the Pod's. The pod's timestamp and window are
/// its first container's, as metrics-server reports one per pod.
pub fn pod_metrics(pod: &PodUsage, labels: &Value) -> Value {
    let first = pod.containers.first().map(|c| c.usage.clone()).unwrap_or_default();
    let containers: Vec<Value> = pod
        .containers
        .iter()
        .map(|c| json!({"name": c.name, "usage": usage_value(&c.usage)}))
        .collect();
    json!({
        "kind": "PodMetrics",
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": {
            "name": pod.name,
            "namespace": pod.namespace,
            "creationTimestamp": crate::time::now_rfc3339(),
            "labels": labels,
        },
        "timestamp": first.timestamp,
        "window": format_window(first.window_seconds),
        "containers": containers,
    })
}

/// `NodeMetricsList` or `PodMetricsList` of `items`.
pub fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({
        "kind": format!("{kind}List"),
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_written_in_the_largest_exact_unit() {
        let table = [
            (0, "0"),
            (1, "1n"),
            (1_500_000, "1500u"),
            (123_456_789, "123456789n"),
            (250_000_000, "250m"),
            (1_000_000_000, "1"),
            (1_500_000_000, "1500m"),
            (2_000_000_000, "2"),
            (7_000, "7u"),
        ];
        for (nano_cores, text) in table {
            assert_eq!(format_nano_cores(nano_cores), text, "{nano_cores}n");
        }
    }

    #[test]
    fn memory_is_written_in_binary_units() {
        let table = [
            (0, "0"),
            (1000, "1000"),
            (1024, "1Ki"),
            (10_485_760 + 1024, "10241Ki"),
            (3 << 20, "3Mi"),
            (5 << 30, "5Gi"),
            (1025, "1025"),
        ];
        for (bytes, text) in table {
            assert_eq!(format_memory(bytes), text, "{bytes} bytes");
        }
    }

    #[test]
    fn windows_read_as_go_durations() {
        assert_eq!(format_window(10.0), "10s");
        assert_eq!(format_window(4.9984), "4.998s");
        assert_eq!(format_window(5.5), "5.5s");
        assert_eq!(format_window(0.25), "250ms");
    }

    #[test]
    fn pod_metrics_carry_each_container() {
        let usage = |cpu, memory| Usage {
            timestamp: "2026-12-06T07:00:00Z".into(),
            window_seconds: 10.0,
            cpu_nano_cores: cpu,
            memory_working_set_bytes: memory,
        };
        let pod = PodUsage {
            namespace: "default".into(),
            name: "web-1".into(),
            uid: "u".into(),
            containers: vec![
                ContainerUsage {
                    name: "app".into(),
                    usage: usage(100_000_000, 4 << 20),
                },
                ContainerUsage {
                    name: "side".into(),
                    usage: usage(5_000_000, 1 << 20),
                },
            ],
        };
        assert_eq!(pod.totals(), (105_000_000, 5 << 20));
        let object = pod_metrics(&pod, &json!({"app": "web"}));
        assert_eq!(object["kind"], "PodMetrics");
        assert_eq!(object["apiVersion"], "metrics.k8s.io/v1beta1");
        assert_eq!(object["metadata"]["namespace"], "default");
        assert_eq!(object["metadata"]["labels"]["app"], "web");
        assert_eq!(object["window"], "10s");
        assert_eq!(object["timestamp"], "2026-12-06T07:00:00Z");
        assert_eq!(
            object["containers"],
            json!([{"name": "app", "usage": {"cpu": "100m", "memory": "4Mi"}},
                   {"name": "side", "usage": {"cpu": "5m", "memory": "1Mi"}}])
        );
        let summary = UsageSummary {
            node: "n1".into(),
            node_usage: Some(usage(2_000_000_000, 3 << 30)),
            pods: vec![pod],
        };
        let wire = serde_json::to_value(&summary).unwrap();
        assert_eq!(wire["nodeUsage"]["cpuNanoCores"], 2_000_000_000u64);
        assert_eq!(serde_json::from_value::<UsageSummary>(wire).unwrap(), summary);
        let node = node_metrics("n1", &json!({}), summary.node_usage.as_ref().unwrap());
        assert_eq!(node["usage"], json!({"cpu": "2", "memory": "3Gi"}));
    }
}
