//! `berth scale deployment/NAME --replicas N` (also `deployment NAME`, and
//! ReplicaSets): a merge patch of `spec.replicas`, through the `scale`
//! subresource for deployments.

use clap::Parser;
use serde_json::json;

use super::error::CliError;
use super::kinds::{KindInfo, parse_targets};
use super::{Common, out};

#[derive(Parser, Debug)]
#[command(
    name = "berth scale",
    about = "Set the number of replicas of deployments or replica sets"
)]
pub struct ScaleArgs {
    /// deployment/NAME... or deployment NAME... (or replicaset)
    #[arg(value_name = "TYPE[/NAME]", required = true)]
    pub targets: Vec<String>,
    /// The number of replicas wanted
    #[arg(long = "replicas", required = true, value_parser = clap::value_parser!(i32).range(0..))]
    pub replicas: i32,
    #[command(flatten)]
    pub common: Common,
}

/// Where the patch goes: the deployment's `scale` subresource, or the ReplicaSet.
pub fn scale_path(kind: &KindInfo, namespace: &str, name: &str) -> Result<String, String> {
    match kind.kind {
        "Deployment" => Ok(format!("{}/scale", kind.object_path(namespace, name))),
        "ReplicaSet" => Ok(kind.object_path(namespace, name)),
        _ => Err(format!(
            "{} cannot be scaled: berth scales deployments and replicasets",
            kind.plural
        )),
    }
}

pub async fn run(args: ScaleArgs) -> Result<(), CliError> {
    let targets = parse_targets(&args.targets).map_err(CliError::Message)?;
    let mut work = Vec::new();
    for target in &targets {
        if target.names.is_empty() {
            return Err(CliError::message(format!(
                "name the {} to scale: berth scale {}/NAME --replicas N",
                target.kind.plural, target.kind.singular
            )));
        }
        for name in &target.names {
            let path = scale_path(&target.kind, args.common.namespace(), name).map_err(CliError::Message)?;
            work.push((target.kind, name, path));
        }
    }
    let client = args.common.client()?;
    let patch = json!({"spec": {"replicas": args.replicas}});
    let mut failed = false;
    for (kind, name, path) in work {
        match client.merge_patch(&path, &patch).await {
            Ok(_) => out(&format!("{}/{name} scaled\n", kind.qualified())),
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
    use super::*;
    use crate::kinds::lookup;

    #[test]
    fn deployments_scale_through_the_subresource() {
        let deploy = lookup("deploy").unwrap();
        assert_eq!(
            scale_path(&deploy, "default", "web"),
            Ok("/apis/apps/v1/namespaces/default/deployments/web/scale".into())
        );
        let rs = lookup("rs").unwrap();
        assert_eq!(
            scale_path(&rs, "default", "web-1"),
            Ok("/apis/apps/v1/namespaces/default/replicasets/web-1".into())
        );
        assert!(scale_path(&lookup("po").unwrap(), "default", "p").is_err());
    }
}
