//! `berth delete TYPE NAME... | TYPE/NAME... | TYPE -l SELECTOR | TYPE --all | -f FILE`.

use clap::Parser;
use serde_json::Value;

use super::client::list_items;
use super::error::CliError;
use super::kinds::{KindInfo, all_kinds, parse_targets};
use super::manifest::{Document, load};
use super::{Common, out};

#[derive(Parser, Debug)]
#[command(
    name = "berth delete",
    about = "Delete objects by name, by label, or as named in manifests"
)]
pub struct DeleteArgs {
    /// TYPE NAME... or TYPE/NAME...
    #[arg(value_name = "TYPE[/NAME]", conflicts_with = "filenames")]
    pub targets: Vec<String>,
    /// Delete the objects a manifest file, directory or stdin (-) names
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
    pub filenames: Vec<String>,
    /// Delete the objects with these labels: key=value[,key=value...]
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Delete every object of the type in the namespace
    #[arg(long = "all")]
    pub all: bool,
    /// A missing object is not an error
    #[arg(long = "ignore-not-found")]
    pub ignore_not_found: bool,
    #[command(flatten)]
    pub common: Common,
}

/// One object to delete: (kind, namespace, name).
type Victim = (KindInfo, String, String);

/// The kind, namespace and name a manifest document names (no other validation:
/// deleting needs nothing else).
fn victim_of(document: &Document, namespace: &str) -> Result<Victim, String> {
    let kind_name = document.value.get("kind").and_then(Value::as_str).unwrap_or_default();
    let kind = all_kinds()
        .into_iter()
        .find(|k| k.kind == kind_name)
        .ok_or_else(|| format!("{}: kind: unknown kind {kind_name:?}", document.label()))?;
    let name = document.value.pointer("/metadata/name").and_then(Value::as_str);
    let name = name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("{}: metadata.name: required", document.label()))?;
    let given = document.value.pointer("/metadata/namespace").and_then(Value::as_str);
    let namespace = given.filter(|ns| !ns.is_empty()).unwrap_or(namespace);
    Ok((kind, namespace.to_string(), name.to_string()))
}

pub async fn run(args: DeleteArgs) -> Result<(), CliError> {
    let client = args.common.client()?;
    let namespace = args.common.namespace();
    let mut victims: Vec<Victim> = Vec::new();
    if !args.filenames.is_empty() {
        let documents = load(&args.filenames).map_err(CliError::Message)?;
        for document in &documents {
            victims.push(victim_of(document, namespace).map_err(CliError::Message)?);
        }
    } else if args.targets.is_empty() {
        return Err(CliError::message(
            "you must provide one or more resources by argument or filename (-f)",
        ));
    } else {
        for target in parse_targets(&args.targets).map_err(CliError::Message)? {
            let kind = target.kind;
            if target.names.is_empty() {
                if args.selector.is_none() && !args.all {
                    return Err(CliError::message(format!(
                        "resource(s) were provided, but no name was specified: name the {} to delete, \
                         or pass -l SELECTOR or --all",
                        kind.plural
                    )));
                }
                let selector = args.selector.as_deref().unwrap_or_default();
                let list = client
                    .get(&kind.collection_url(Some(namespace), &[("labelSelector", selector)]))
                    .await?;
                for item in list_items(&kind, &list) {
                    let name = item
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let item_namespace = item.pointer("/metadata/namespace").and_then(Value::as_str);
                    victims.push((kind, item_namespace.unwrap_or(namespace).to_string(), name.to_string()));
                }
            }
            victims.extend(target.names.into_iter().map(|name| (kind, namespace.to_string(), name)));
        }
        if victims.is_empty() {
            crate::err_line(format_args!("No resources found"));
        }
    }
    let mut failed = false;
    for (kind, namespace, name) in &victims {
        match client.delete(&kind.object_path(namespace, name)).await {
            Ok(_) => out(&format!("{} {name:?} deleted\n", kind.qualified())),
            Err(e) if e.is_not_found() && args.ignore_not_found => {}
            Err(e @ CliError::Unreachable(_)) => return Err(e),
            Err(e) => {
                crate::err_line(format_args!("{e}"));
                failed = true;
            }
        }
    }
    if failed { Err(CliError::Reported) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn manifests_name_what_to_delete() {
        let document = |value: Value| Document {
            source: "app.yaml".into(),
            index: 2,
            value,
        };
        let deployment = document(json!({"kind": "Deployment", "metadata": {"name": "web"}}));
        let (kind, namespace, name) = victim_of(&deployment, "dev").unwrap();
        assert_eq!(
            (kind.kind, namespace.as_str(), name.as_str()),
            ("Deployment", "dev", "web")
        );
        let placed = document(json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "prod"}}));
        assert_eq!(victim_of(&placed, "dev").unwrap().1, "prod");
        let unknown = document(json!({"kind": "Flurb", "metadata": {"name": "x"}}));
        assert!(victim_of(&unknown, "dev").unwrap_err().contains("\"Flurb\""));
        let nameless = document(json!({"kind": "Pod", "metadata": {}}));
        assert_eq!(
            victim_of(&nameless, "dev").unwrap_err(),
            "app.yaml document 2: metadata.name: required"
        );
    }
}
