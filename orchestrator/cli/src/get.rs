//! `berth get TYPE [NAME...] [-n NS | -A] [-l SELECTOR] [-o wide|yaml|json|name] [-w]`.

use std::time::SystemTime;

use clap::Parser;
use serde_json::{Value, json};

use super::client::{list_items, list_resource_version, read_object, with_kind};
use super::error::CliError;
use super::kinds::{KindInfo, Target, parse_targets};
use super::table::{TableOptions, header, render, render_row, row, widths};
use super::watch::{WatchScope, follow};
use super::{Common, out};

#[derive(Parser, Debug)]
#[command(name = "berth get", about = "Display one or many objects")]
pub struct GetArgs {
    /// TYPE[,TYPE...] [NAME...] or TYPE/NAME...; types: pods (po), deployments (deploy),
    /// replicasets (rs), nodes (no), namespaces (ns)
    #[arg(value_name = "TYPE[/NAME]", required = true)]
    pub targets: Vec<String>,
    /// List the objects in every namespace
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Only objects with these labels: key=value[,key=value...]
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Output format
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<Output>,
    /// After listing, print a row for every change
    #[arg(short = 'w', long = "watch")]
    pub watch: bool,
    /// Keep metadata.managedFields in JSON and YAML output (left out otherwise, as
    /// kubectl does)
    #[arg(long = "show-managed-fields")]
    pub show_managed_fields: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Wide,
    Yaml,
    Json,
    Name,
}

/// The objects of one kind that were found.
pub struct Group {
    pub kind: KindInfo,
    pub items: Vec<Value>,
}

pub async fn run(args: GetArgs) -> Result<(), CliError> {
    let targets = parse_targets(&args.targets).map_err(CliError::Message)?;
    if args.all_namespaces && targets.iter().any(|t| !t.names.is_empty()) {
        return Err(CliError::message(
            "a resource cannot be retrieved by name across all namespaces",
        ));
    }
    if args.watch && targets.len() > 1 {
        return Err(CliError::message(
            "you may only specify a single resource type when watching",
        ));
    }
    let client = args.common.client()?;
    let namespace = (!args.all_namespaces).then(|| args.common.namespace());
    let selector = args.selector.as_deref().unwrap_or_default();
    let mut groups = Vec::new();
    let mut errors = Vec::new();
    let mut resource_version = String::new();
    for Target { kind, names } in &targets {
        let mut items = Vec::new();
        if names.is_empty() {
            let list = client
                .get(&kind.collection_url(namespace, &[("labelSelector", selector)]))
                .await?;
            resource_version = list_resource_version(&list);
            items = list_items(kind, &list);
        }
        for name in names {
            match client.get(&kind.object_path(args.common.namespace(), name)).await {
                Ok(object) => items.push(with_kind(kind, object)),
                Err(e @ CliError::Unreachable(_)) => return Err(e),
                Err(e) => errors.push(e),
            }
        }
        groups.push(Group { kind: *kind, items });
    }

    if !args.show_managed_fields {
        for item in groups.iter_mut().flat_map(|g| g.items.iter_mut()) {
            strip_managed_fields(item);
        }
    }
    let options = TableOptions {
        wide: args.output == Some(Output::Wide),
        with_namespace: args.all_namespaces,
        with_kind: groups.len() > 1,
    };
    let requested_one = targets.len() == 1 && targets[0].names.len() == 1;
    let found_nothing = groups.iter().all(|g| g.items.is_empty());
    match args.output {
        Some(format @ (Output::Json | Output::Yaml)) => {
            let all: Vec<Value> = groups.iter().flat_map(|g| g.items.iter().cloned()).collect();
            match (requested_one, all.as_slice()) {
                (true, [one]) => out(&document(one, format)),
                (true, []) => {}
                _ => out(&document(&as_list(all), format)),
            }
        }
        Some(Output::Name) => out(&names(&groups)),
        None | Some(Output::Wide) => out(&tables(&groups, options, SystemTime::now())?),
    }
    if found_nothing && errors.is_empty() && !args.watch && !matches!(args.output, Some(Output::Json | Output::Yaml)) {
        match namespace {
            Some(ns) if targets.iter().any(|t| t.kind.namespaced) => {
                crate::err_line(format_args!("No resources found in {ns} namespace."));
            }
            _ => crate::err_line(format_args!("No resources found")),
        }
    }
    for error in &errors {
        crate::err_line(format_args!("{error}"));
    }
    if args.watch {
        let group = groups.remove(0);
        if resource_version.is_empty() {
            // Named objects: watch from the newest of them.
            resource_version = group
                .items
                .iter()
                .filter_map(|o| o.pointer("/metadata/resourceVersion")?.as_str()?.parse::<u64>().ok())
                .max()
                .map(|rv| rv.to_string())
                .unwrap_or_default();
        }
        let first_rows = group.items.len();
        let mut printer = EventPrinter::new(group.kind, args.output, options, &group.items);
        printer.header_printed = first_rows > 0;
        let scope = WatchScope {
            kind: group.kind,
            namespace,
            selector,
            names: &targets[0].names,
        };
        let show_managed_fields = args.show_managed_fields;
        follow(&client, &scope, group.items, resource_version, &mut |object| {
            if show_managed_fields {
                return printer.print(object);
            }
            let mut object = object.clone();
            strip_managed_fields(&mut object);
            printer.print(&object)
        })
        .await?;
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CliError::Reported)
    }
}

/// Every group's table, one after another with a blank line between.
pub fn tables(groups: &[Group], options: TableOptions, now: SystemTime) -> Result<String, CliError> {
    let mut text = Vec::new();
    for group in groups.iter().filter(|g| !g.items.is_empty()) {
        let mut rows = vec![header(&group.kind, options)];
        for item in &group.items {
            rows.push(row(&read_object(&group.kind, item.clone())?, &group.kind, options, now));
        }
        text.push(render(&rows));
    }
    Ok(text.join("\n"))
}

/// `-o name`: `deployment.apps/web`, one a line.
pub fn names(groups: &[Group]) -> String {
    groups
        .iter()
        .flat_map(|g| g.items.iter().map(move |item| name_line(&g.kind, item)))
        .collect()
}

fn name_line(kind: &KindInfo, item: &Value) -> String {
    let name = item
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    format!("{}/{name}\n", kind.qualified())
}

/// Leaves out `metadata.managedFields`, which say who set which field: long, and
/// rarely what a reader wants.
fn strip_managed_fields(object: &mut Value) {
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        metadata.remove("managedFields");
    }
}

pub fn as_list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items})
}

/// One object or list as JSON (indented by 4, as kubectl does) or YAML.
pub fn document(value: &Value, format: Output) -> String {
    if format == Output::Yaml {
        return serde_yaml_ng::to_string(value).unwrap_or_else(|e| format!("# cannot write YAML: {e}\n"));
    }
    let mut bytes = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
    let _ = serde::Serialize::serialize(value, &mut serializer);
    let mut text = String::from_utf8(bytes).unwrap_or_default();
    text.push('\n');
    text
}

/// Prints a watch's objects in the chosen format: table rows keep the widths of
/// the table printed before them.
pub struct EventPrinter {
    kind: KindInfo,
    output: Option<Output>,
    options: TableOptions,
    widths: Vec<usize>,
    header_printed: bool,
}

impl EventPrinter {
    fn new(kind: KindInfo, output: Option<Output>, options: TableOptions, first: &[Value]) -> Self {
        let now = SystemTime::now();
        let mut rows = vec![header(&kind, options)];
        rows.extend(
            first
                .iter()
                .filter_map(|item| read_object(&kind, item.clone()).ok())
                .map(|object| row(&object, &kind, options, now)),
        );
        EventPrinter {
            kind,
            output,
            options,
            widths: widths(&rows),
            header_printed: false,
        }
    }

    fn print(&mut self, object: &Value) -> Result<(), CliError> {
        match self.output {
            Some(format @ Output::Json) => out(&document(object, format)),
            Some(format @ Output::Yaml) => out(&format!("---\n{}", document(object, format))),
            Some(Output::Name) => out(&name_line(&self.kind, object)),
            None | Some(Output::Wide) => {
                if !self.header_printed {
                    self.header_printed = true;
                    out(&render_row(&header(&self.kind, self.options), &self.widths));
                }
                let object = read_object(&self.kind, object.clone())?;
                let cells = row(&object, &self.kind, self.options, SystemTime::now());
                out(&render_row(&cells, &self.widths));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::lookup;

    fn namespace(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    }

    #[test]
    fn several_kinds_print_one_table_each_with_kinds_in_names() {
        let groups = [
            Group {
                kind: lookup("ns").unwrap(),
                items: vec![namespace("default")],
            },
            Group {
                kind: lookup("po").unwrap(),
                items: Vec::new(),
            },
            Group {
                kind: lookup("ns").unwrap(),
                items: vec![namespace("shop")],
            },
        ];
        let options = TableOptions {
            with_kind: true,
            ..TableOptions::default()
        };
        let text = tables(&groups, options, SystemTime::now()).unwrap();
        assert_eq!(
            text,
            "NAME                STATUS   AGE\nnamespace/default   Active   <unknown>\n\n\
             NAME             STATUS   AGE\nnamespace/shop   Active   <unknown>\n"
        );
        assert_eq!(names(&groups), "namespace/default\nnamespace/shop\n");
    }

    #[test]
    fn documents_as_kubectl_writes_them() {
        let ns = namespace("a");
        assert_eq!(
            document(&ns, Output::Json),
            "{\n    \"apiVersion\": \"v1\",\n    \"kind\": \"Namespace\",\n    \"metadata\": {\n        \"name\": \"a\"\n    }\n}\n"
        );
        assert_eq!(
            document(&ns, Output::Yaml),
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n"
        );
        let list = as_list(vec![ns]);
        assert_eq!(list["kind"], "List");
        assert_eq!(list["items"][0]["metadata"]["name"], "a");
    }

    #[test]
    fn managed_fields_are_left_out_unless_asked_for() {
        let mut owned = namespace("a");
        owned["metadata"]["managedFields"] = json!([{"manager": "kubectl", "operation": "Apply"}]);
        strip_managed_fields(&mut owned);
        assert_eq!(owned, namespace("a"));
        let args = GetArgs::try_parse_from(["get", "ns", "--show-managed-fields"]).unwrap();
        assert!(args.show_managed_fields);
        assert!(!GetArgs::try_parse_from(["get", "ns"]).unwrap().show_managed_fields);
    }
}
