//! The tables `berth get` prints, column for column as kubectl prints them, and
//! padded as kubectl's tabwriter pads them: every column but the last is as wide as
//! its widest cell plus 3 spaces, and at least 6.

use std::time::SystemTime;

use super::kinds::KindInfo;
use berth_api::kinds::PrinterColumn;
use berth_api::meta::{LabelSelector, MetaExt};
use berth_api::objects::Object;

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

/// One object's cells, in the order of [`header`]: the kind's row (the same cells a
/// server-side Table has), without the wide ones unless asked for.
pub fn row(object: &Object, kind: &KindInfo, options: TableOptions, now: SystemTime) -> Vec<String> {
    let metadata = object.metadata();
    let mut cells: Vec<String> = (kind.cells)(object, now)
        .iter()
        .zip(kind.printer_columns())
        .filter(|(_, column)| column.priority == 0 || options.wide)
        .map(|(cell, column)| match column.format {
            "name" if options.with_kind => format!("{}/{}", kind.qualified(), metadata.name()),
            _ => cell_text(cell),
        })
        .collect();
    if options.with_namespace && kind.namespaced {
        cells.insert(0, metadata.namespace().to_string());
    }
    cells
}

/// A cell as kubectl prints it: strings as they are, numbers in decimal.
pub fn cell_text(cell: &serde_json::Value) -> String {
    match cell {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => "<none>".to_string(),
        other => other.to_string(),
    }
}

pub(crate) use berth_api::kinds::cells::{desired_replicas, state_of, text};
pub(crate) use berth_api::kinds::node::node_roles;
#[cfg(test)]
use berth_api::kinds::pod::pod_status;

/// `app=web,tier in (a,b)`, or `<none>`.
pub fn selector_text(selector: &LabelSelector) -> String {
    let text = berth_api::meta::selector_text(selector);
    if text.is_empty() { "<none>".into() } else { text }
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
    use berth_api::kinds::cells::from_paths;
    use berth_api::objects::Pod;
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
                pod.status.pod_ip = Some("10.0.0.11".into());
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
                {"name": "http", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(20)}}}]}),
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
NAME               READY   STATUS              RESTARTS      AGE
web-7d4b9c-x2x7k   1/1     Running             0             5m
web-7d4b9c-q9z2m   0/1     CrashLoopBackOff    4 (20s ago)   42s
batch              0/1     ContainerCreating   0             2h
done               0/1     Completed           0             3d
new                0/1     Pending             0             1s
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
NAMESPACE   NAME               READY   STATUS    RESTARTS   AGE   IP          NODE     NOMINATED NODE   READINESS GATES
default     web-7d4b9c-x2x7k   1/1     Running   0          5m    10.0.0.11   node-1   <none>           <none>
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
        let generic_row = |object: &Object, kind: &KindInfo| -> Vec<String> {
            from_paths(kind, object, now()).iter().map(cell_text).collect()
        };
        let generic = generic_row(&ns, &kind);
        assert_eq!(generic, row(&ns, &kind, options, now()));
        assert_eq!(generic, ["dev", "Active", "90s"]);
        let mut no_phase = ns.to_value();
        no_phase["status"] = json!({});
        let no_phase = Object::from_value(no_phase).unwrap();
        assert_eq!(generic_row(&no_phase, &kind)[1], "<none>");
        let pods = lookup("po").unwrap();
        let wide = TableOptions { wide: true, ..options };
        let pod = Object::from_value(pod("p", 1, running(0))).unwrap();
        let cells = generic_row(&pod, &pods);
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
