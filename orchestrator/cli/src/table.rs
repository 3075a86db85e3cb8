//! The tables `berth get` prints, column for column as kubectl prints them, and
//! padded as kubectl's tabwriter pads them: every column but the last is as wide as
//! its widest cell plus 3 spaces, and at least 6.

use std::time::SystemTime;

use super::kinds::KindInfo;
use berth_api::conditions::{Condition, condition, is_true};
use berth_api::kinds::PrinterColumn;
use berth_api::meta::{LabelSelector, MetaExt};
use berth_api::objects::{ContainerState, Deployment, Namespace, Node, Object, Pod, PodTemplateSpec, ReplicaSet};
use berth_api::time::age_of;

const MIN_WIDTH: usize = 6;
const PADDING: usize = 3;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// `-o wide`: the extra columns.
    pub wide: bool,
    /// `-A` on a namespaced kind: a leading NAMESPACE column.
    pub with_namespace: bool,
    /// Several kinds in one command: names read `deployment.apps/web`.
    pub with_kind: bool,
}

/// The kind's printer columns, upper-cased as kubectl prints them; the wide ones
/// with `-o wide` (the kind table lists them last).
pub fn header(kind: &KindInfo, options: TableOptions) -> Vec<String> {
    let mut header: Vec<String> = Vec::new();
    if options.with_namespace && kind.namespaced {
        header.push("NAMESPACE".into());
    }
    let columns = shown_columns(kind, options);
    header.extend(columns.map(|c| c.name.to_uppercase()));
    header
}

fn shown_columns(kind: &KindInfo, options: TableOptions) -> impl Iterator<Item = &'static PrinterColumn> {
    kind.printer_columns()
        .iter()
        .filter(move |c| c.priority == 0 || options.wide)
}

/// One object's cells, in the order of [`header`].
pub fn row(object: &Object, kind: &KindInfo, options: TableOptions, now: SystemTime) -> Vec<String> {
    let metadata = object.metadata();
    let name = if options.with_kind {
        format!("{}/{}", kind.qualified(), metadata.name())
    } else {
        metadata.name().to_string()
    };
    let age = age_of(metadata.creation_timestamp.as_ref(), now);
    let typed = if let Some(pod) = object.downcast_ref::<Pod>() {
        Some(pod_row(pod, name.clone(), age.clone()))
    } else if let Some(d) = object.downcast_ref::<Deployment>() {
        Some(deployment_row(d, name.clone(), age.clone()))
    } else if let Some(rs) = object.downcast_ref::<ReplicaSet>() {
        Some(replica_set_row(rs, name.clone(), age.clone()))
    } else if let Some(node) = object.downcast_ref::<Node>() {
        Some(node_row(node, name.clone(), age.clone()))
    } else {
        object
            .downcast_ref::<Namespace>()
            .map(|ns| namespace_row(ns, name.clone(), age.clone()))
    };
    let mut cells = match typed {
        Some((mut cells, wide)) => {
            if options.wide {
                cells.extend(wide);
            }
            cells
        }
        None => generic_row(object, kind, options, name, age),
    };
    if options.with_namespace && kind.namespaced {
        cells.insert(0, metadata.namespace().to_string());
    }
    cells
}

/// The cells of a kind the CLI has no printer of its own for, read from its
/// printer columns' JSONPaths (simple ones: `.status.phase`), as kubectl prints a
/// custom resource.
fn generic_row(object: &Object, kind: &KindInfo, options: TableOptions, name: String, age: String) -> Vec<String> {
    let value = object.to_value();
    shown_columns(kind, options)
        .map(|column| match column {
            c if *c == PrinterColumn::NAME => name.clone(),
            c if *c == PrinterColumn::AGE => age.clone(),
            PrinterColumn { json_path: "", .. } => "<unknown>".to_string(),
            PrinterColumn { json_path, .. } => {
                let found = json_path.split('.').skip(1).try_fold(&value, |at, field| at.get(field));
                match found {
                    None | Some(serde_json::Value::Null) => "<none>".to_string(),
                    Some(serde_json::Value::String(text)) => text.clone(),
                    Some(other) => other.to_string(),
                }
            }
        })
        .collect()
}

type Cells = (Vec<String>, Vec<String>);

fn or_none(s: &str) -> String {
    if s.is_empty() { "<none>".into() } else { s.to_string() }
}

/// A string field as Kubernetes reads it: absent is empty.
pub(crate) fn text(field: &Option<String>) -> &str {
    field.as_deref().unwrap_or_default()
}

/// The replicas a ReplicaSet or Deployment asks for: absent is 1, Kubernetes' default.
pub(crate) fn desired_replicas(replicas: Option<i32>) -> i32 {
    replicas.unwrap_or(1)
}

/// A container's state as Kubernetes reads it: absent is none of the three.
pub(crate) fn state_of(state: &Option<ContainerState>) -> ContainerState {
    state.clone().unwrap_or_default()
}

fn pod_row(pod: &Pod, name: String, age: String) -> Cells {
    let (ready, restarts) = pod
        .status
        .container_statuses
        .iter()
        .flatten()
        .fold((0, 0), |(ready, restarts), c| {
            let state = state_of(&c.state);
            let is_ready = c.ready && state.running.is_some() && state.waiting.is_none() && state.terminated.is_none();
            (ready + usize::from(is_ready), restarts + c.restart_count)
        });
    (
        vec![
            name,
            format!("{ready}/{}", pod.spec.containers.len()),
            pod_status(pod),
            restarts.to_string(),
            age,
        ],
        vec![or_none(text(&pod.status.host_ip)), or_none(text(&pod.spec.node_name))],
    )
}

/// The STATUS column, by kubectl's rules: a container's waiting or terminated
/// reason (the first container's wins) over the pod's reason over its phase, and
/// `Terminating` once deletion has begun.
pub fn pod_status(pod: &Pod) -> String {
    let mut reason = match (text(&pod.status.reason), text(&pod.status.phase)) {
        ("", "") => "Pending".to_string(),
        ("", phase) => phase.to_string(),
        (reason, _) => reason.to_string(),
    };
    let mut has_running = false;
    for container in pod.status.container_statuses.iter().flatten().rev() {
        let state = state_of(&container.state);
        if let Some(waiting) = &state.waiting
            && !text(&waiting.reason).is_empty()
        {
            reason = text(&waiting.reason).to_string();
        } else if let Some(terminated) = &state.terminated {
            reason = match (text(&terminated.reason), terminated.signal) {
                ("", Some(signal)) if signal != 0 => format!("Signal:{signal}"),
                ("", _) => format!("ExitCode:{}", terminated.exit_code),
                (reason, _) => reason.to_string(),
            };
        } else if container.ready && state.running.is_some() {
            has_running = true;
        }
    }
    if reason == "Completed" && has_running {
        let is_ready = is_true(pod.status.conditions.as_ref(), "Ready");
        reason = if is_ready { "Running" } else { "NotReady" }.to_string();
    }
    if pod.metadata.is_deleting() {
        reason = if text(&pod.status.reason) == "NodeLost" {
            "Unknown"
        } else {
            "Terminating"
        }
        .to_string();
    }
    reason
}

/// `app=web,tier in (a,b)`, or `<none>`.
pub fn selector_text(selector: &LabelSelector) -> String {
    let text = berth_api::meta::selector_text(selector);
    if text.is_empty() { "<none>".into() } else { text }
}

fn template_cells(template: Option<&PodTemplateSpec>, selector: &LabelSelector) -> Vec<String> {
    let containers = template
        .and_then(|t| t.spec.as_ref())
        .map(|spec| spec.containers.as_slice())
        .unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = containers
        .iter()
        .map(|c| match text(&c.image) {
            "" => "<none>",
            image => image,
        })
        .collect();
    vec![names.join(","), images.join(","), selector_text(selector)]
}

fn deployment_row(d: &Deployment, name: String, age: String) -> Cells {
    let status = &d.status;
    (
        vec![
            name,
            format!(
                "{}/{}",
                status.ready_replicas.unwrap_or_default(),
                desired_replicas(d.spec.replicas)
            ),
            status.updated_replicas.unwrap_or_default().to_string(),
            status.available_replicas.unwrap_or_default().to_string(),
            age,
        ],
        template_cells(Some(&d.spec.template), &d.spec.selector),
    )
}

fn replica_set_row(rs: &ReplicaSet, name: String, age: String) -> Cells {
    (
        vec![
            name,
            desired_replicas(rs.spec.replicas).to_string(),
            rs.status.replicas.to_string(),
            rs.status.ready_replicas.unwrap_or_default().to_string(),
            age,
        ],
        template_cells(rs.spec.template.as_ref(), &rs.spec.selector),
    )
}

/// `Ready`, `NotReady` or `Unknown` (no Ready condition yet), plus
/// `,SchedulingDisabled` for a cordoned node.
pub fn node_status(node: &Node) -> String {
    let conditions = node.status.conditions.as_deref().unwrap_or_default();
    let mut status = match condition(conditions, "Ready") {
        Some(c) if c.status() == "True" => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if node.spec.unschedulable == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

/// From `node-role.kubernetes.io/<role>` labels, as kubectl finds them.
pub fn node_roles(node: &Node) -> String {
    let roles: Vec<&str> = node
        .metadata
        .labels()
        .keys()
        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
        .filter(|role| !role.is_empty())
        .collect();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

pub fn node_internal_ip(node: &Node) -> String {
    let ip = node
        .status
        .addresses
        .iter()
        .flatten()
        .find(|a| a.type_ == "InternalIP")
        .map_or("", |a| a.address.as_str());
    or_none(ip)
}

fn node_row(node: &Node, name: String, age: String) -> Cells {
    let version = node
        .metadata
        .labels()
        .get("berth.io/version")
        .map_or("", String::as_str);
    (
        vec![name, node_status(node), node_roles(node), age, or_none(version)],
        vec![node_internal_ip(node)],
    )
}

fn namespace_row(ns: &Namespace, name: String, age: String) -> Cells {
    let phase = match text(&ns.status.phase) {
        "" => "Active",
        phase => phase,
    };
    (vec![name, phase.to_string(), age], Vec::new())
}

/// Column widths for `rows` (all but the last column, which is never padded).
pub fn widths(rows: &[Vec<String>]) -> Vec<usize> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    (0..columns.saturating_sub(1))
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count() + PADDING)
                .fold(MIN_WIDTH, usize::max)
        })
        .collect()
}

/// One line, padded to `widths` (grown where a cell is wider, as a watch's later
/// rows can be), with its newline.
pub fn render_row(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        line.push_str(cell);
        if i + 1 < cells.len() {
            let width = widths.get(i).copied().unwrap_or(0).max(cell.chars().count() + PADDING);
            line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
        }
    }
    line.push('\n');
    line
}

pub fn render(rows: &[Vec<String>]) -> String {
    let widths = widths(rows);
    rows.iter().map(|r| render_row(r, &widths)).collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::json;

    use super::*;
    use crate::kinds::lookup;
    use berth_api::time::{format_rfc3339, from_system_time};

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn ago(secs: u64) -> String {
        format_rfc3339(now() - Duration::from_secs(secs))
    }

    fn table(kind: &str, objects: &[serde_json::Value], options: TableOptions) -> String {
        let kind = lookup(kind).unwrap();
        let mut rows = vec![header(&kind, options)];
        for value in objects {
            let mut object = Object::from_value(value.clone()).unwrap();
            if let Some(pod) = object.downcast_mut::<Pod>()
                && pod.status.phase.as_deref() == Some("Running")
            {
                pod.status.host_ip = Some("10.0.0.11".into());
            }
            rows.push(row(&object, &kind, options, now()));
        }
        render(&rows)
    }

    fn pod(name: &str, age_secs: u64, status: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": ago(age_secs)},
            "spec": {"containers": [{"name": "http", "command": ["python3"]}], "nodeName": "node-1"},
            "status": status,
        })
    }

    fn running(restarts: i32) -> serde_json::Value {
        json!({"phase": "Running", "containerStatuses": [
            {"name": "http", "ready": true, "restartCount": restarts, "state": {"running": {"startedAt": ago(60)}}}]})
    }

    #[test]
    fn pods_golden() {
        let pods = [
            pod("web-7d4b9c-x2x7k", 300, running(0)),
            pod(
                "web-7d4b9c-q9z2m",
                42,
                json!({"phase": "Running", "containerStatuses": [
                {"name": "http", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
            ),
            pod(
                "batch",
                7200,
                json!({"phase": "Pending", "containerStatuses": [
                {"name": "http", "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
            ),
            pod(
                "done",
                3 * 86_400,
                json!({"phase": "Succeeded", "containerStatuses": [
                {"name": "http", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
            ),
            pod("new", 1, json!({})),
        ];
        assert_eq!(
            table("pods", &pods, TableOptions::default()),
            "\
NAME               READY   STATUS              RESTARTS   AGE
web-7d4b9c-x2x7k   1/1     Running             0          5m
web-7d4b9c-q9z2m   0/1     CrashLoopBackOff    4          42s
batch              0/1     ContainerCreating   0          2h
done               0/1     Completed           0          3d
new                0/1     Pending             0          1s
"
        );
        let wide = TableOptions {
            wide: true,
            with_namespace: true,
            ..TableOptions::default()
        };
        assert_eq!(
            table("po", &pods[..1], wide),
            "\
NAMESPACE   NAME               READY   STATUS    RESTARTS   AGE   IP          NODE
default     web-7d4b9c-x2x7k   1/1     Running   0          5m    10.0.0.11   node-1
"
        );
    }

    #[test]
    fn pod_status_rules() {
        let mut terminating = Object::from_value(pod("p", 1, running(0))).unwrap();
        terminating.metadata_mut().deletion_timestamp = Some(from_system_time(now()));
        let Ok(terminating) = terminating.downcast::<Pod>() else {
            unreachable!()
        };
        assert_eq!(pod_status(&terminating), "Terminating");
        let killed = pod(
            "p",
            1,
            json!({"phase": "Failed", "containerStatuses": [
            {"name": "http", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}),
        );
        let Ok(killed) = Object::from_value(killed).unwrap().downcast::<Pod>() else {
            unreachable!()
        };
        assert_eq!(pod_status(&killed), "Signal:9");
    }

    #[test]
    fn deployments_and_replica_sets_golden() {
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(600)},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "http", "image": "nginx:1.27"}]}}},
            "status": {"replicas": 4, "updatedReplicas": 4, "readyReplicas": 3, "availableReplicas": 3}
        });
        assert_eq!(
            table("deploy", std::slice::from_ref(&deployment), TableOptions::default()),
            "\
NAME   READY   UP-TO-DATE   AVAILABLE   AGE
web    3/4     4            3           10m
"
        );
        assert_eq!(
            table(
                "deploy",
                &[deployment],
                TableOptions {
                    wide: true,
                    ..TableOptions::default()
                }
            ),
            "\
NAME   READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS   IMAGES       SELECTOR
web    3/4     4            3           10m   http         nginx:1.27   app=web
"
        );
        let rs = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-7d4b9c", "namespace": "default", "creationTimestamp": ago(600)},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "http", "command": ["x"]}]}}},
            "status": {"replicas": 4, "readyReplicas": 3}
        });
        assert_eq!(
            table(
                "rs",
                &[rs],
                TableOptions {
                    with_kind: true,
                    ..TableOptions::default()
                }
            ),
            "\
NAME                         DESIRED   CURRENT   READY   AGE
replicaset.apps/web-7d4b9c   4         4         3       10m
"
        );
    }

    #[test]
    fn nodes_and_namespaces_golden() {
        let node = |name: &str, ready: &str, unschedulable: bool| {
            json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "creationTimestamp": ago(86_400 * 2),
                             "labels": {"berth.io/version": "0.1.0"}},
                "spec": {"unschedulable": unschedulable},
                "status": {"conditions": [{"type": "Ready", "status": ready}],
                           "addresses": [{"type": "InternalIP", "address": "10.0.0.11"}]}
            })
        };
        let nodes = [node("node-1", "True", false), node("node-2", "False", true)];
        let options = TableOptions {
            wide: true,
            with_namespace: true, // ignored: nodes are cluster-scoped
            ..TableOptions::default()
        };
        assert_eq!(
            table("nodes", &nodes, options),
            "\
NAME     STATUS                        ROLES    AGE   VERSION   INTERNAL-IP
node-1   Ready                         <none>   2d    0.1.0     10.0.0.11
node-2   NotReady,SchedulingDisabled   <none>   2d    0.1.0     10.0.0.11
"
        );
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": "default", "creationTimestamp": ago(90)},
                        "status": {"phase": "Active"}});
        assert_eq!(
            table("ns", &[ns], TableOptions::default()),
            "NAME      STATUS   AGE\ndefault   Active   90s\n"
        );
    }

    /// A kind without a printer of its own is printed from its columns' JSONPaths;
    /// for namespaces, that reads as their own printer does.
    #[test]
    fn other_kinds_print_their_printer_columns() {
        let ns = Object::from_value(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "dev", "creationTimestamp": ago(90)}, "status": {"phase": "Active"}}))
        .unwrap();
        let kind = lookup("ns").unwrap();
        let options = TableOptions::default();
        let generic = generic_row(&ns, &kind, options, "dev".into(), "90s".into());
        assert_eq!(generic, row(&ns, &kind, options, now()));
        assert_eq!(generic, ["dev", "Active", "90s"]);
        let mut no_phase = ns.to_value();
        no_phase["status"] = json!({});
        let no_phase = Object::from_value(no_phase).unwrap();
        assert_eq!(
            generic_row(&no_phase, &kind, options, "dev".into(), "90s".into())[1],
            "<none>"
        );
        let pods = lookup("po").unwrap();
        let wide = TableOptions { wide: true, ..options };
        let pod = Object::from_value(pod("p", 1, running(0))).unwrap();
        let cells = generic_row(&pod, &pods, wide, "p".into(), "1s".into());
        assert_eq!(cells.len(), header(&pods, wide).len());
        assert_eq!(cells[1], "<unknown>", "READY is computed, not read");
    }

    #[test]
    fn selectors_print_their_expressions_too() {
        let selector: LabelSelector = serde_json::from_value(json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}))
        .unwrap();
        assert_eq!(selector_text(&selector), "app=web,tier in (a,b)");
        assert_eq!(selector_text(&LabelSelector::default()), "<none>");
    }

    #[test]
    fn watch_rows_keep_the_table_widths() {
        let widths = widths(&[vec!["NAME".into(), "STATUS".into(), "AGE".into()]]);
        assert_eq!(widths, [7, 9]);
        assert_eq!(
            render_row(&["a-much-longer-name".into(), "Ready".into(), "1s".into()], &widths),
            "a-much-longer-name   Ready    1s\n"
        );
    }
}
