//! `berth logs POD [-c CONTAINER] [-f]`: a container's output, streamed as the
//! API server relays it from the pod's node.

use clap::Parser;

use super::client::read_object;
use super::error::CliError;
use super::kinds::{encode_query_value, lookup};
use super::{Common, out_bytes};
use berth_api::meta::MetaExt;
use berth_api::objects::Pod;

#[derive(Parser, Debug)]
#[command(name = "berth logs", about = "Print the logs of a container in a pod")]
pub struct LogsArgs {
    /// The pod: NAME or pod/NAME
    #[arg(value_name = "POD")]
    pub pod: String,
    /// The container [default: the pod's only container]
    #[arg(short = 'c', long = "container")]
    pub container: Option<String>,
    /// Keep printing the logs as they are written
    #[arg(short = 'f', long = "follow")]
    pub follow: bool,
    /// Only the last N lines
    #[arg(long = "tail", value_name = "N")]
    pub tail: Option<u64>,
    #[command(flatten)]
    pub common: Common,
}

/// The pod's name from `NAME` or `pod/NAME`.
fn pod_name(arg: &str) -> Result<&str, String> {
    match arg.split_once('/') {
        None => Ok(arg),
        Some((kind, name)) if lookup(kind).is_some_and(|k| k.kind == "Pod") && !name.is_empty() => Ok(name),
        Some(_) => Err(format!("berth logs takes a pod (NAME or pod/NAME), not {arg:?}")),
    }
}

/// The container asked for, else the pod's only one.
pub fn choose_container(pod: &Pod, asked: Option<&str>) -> Result<String, String> {
    let names: Vec<&str> = pod.spec.containers.iter().map(|c| c.name.as_str()).collect();
    match (asked, names.as_slice()) {
        (Some(asked), _) if names.contains(&asked) => Ok(asked.to_string()),
        (Some(asked), _) => Err(format!(
            "container {asked} is not valid for pod {}: choose one of: [{}]",
            pod.metadata.name(),
            names.join(" ")
        )),
        (None, [only]) => Ok(only.to_string()),
        (None, _) => Err(format!(
            "a container name must be specified for pod {}, choose one of: [{}]",
            pod.metadata.name(),
            names.join(" ")
        )),
    }
}

pub async fn run(args: LogsArgs) -> Result<(), CliError> {
    let name = pod_name(&args.pod).map_err(CliError::Message)?;
    let kind = lookup("pod").ok_or_else(|| CliError::message("berth's CLI does not know pods"))?;
    let client = args.common.client()?;
    let path = kind.object_path(args.common.namespace(), name);
    let Ok(pod) = read_object(&kind, client.get(&path).await?)?.downcast::<Pod>() else {
        return Err(CliError::message(format!("{name} is not a pod")));
    };
    let container = choose_container(&pod, args.container.as_deref()).map_err(CliError::Message)?;
    let mut url = format!("{path}/log?container={}", encode_query_value(&container));
    if args.follow {
        url.push_str("&follow=true");
    }
    if let Some(tail) = args.tail {
        url.push_str(&format!("&tailLines={tail}"));
    }
    let mut stream = client.stream(&url).await?;
    loop {
        match stream.chunk().await {
            Ok(Some(bytes)) => out_bytes(&bytes),
            Ok(None) => return Ok(()),
            Err(e) => return Err(CliError::message(format!("the log stream broke: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(containers: &[&str]) -> Pod {
        let containers: Vec<_> = containers
            .iter()
            .map(|c| json!({"name": c, "command": ["x"]}))
            .collect();
        serde_json::from_value(json!({"metadata": {"name": "web-1"}, "spec": {"containers": containers}})).unwrap()
    }

    #[test]
    fn the_only_container_or_the_one_named() {
        assert_eq!(choose_container(&pod(&["http"]), None), Ok("http".into()));
        assert_eq!(
            choose_container(&pod(&["http", "sidecar"]), Some("sidecar")),
            Ok("sidecar".into())
        );
        assert_eq!(
            choose_container(&pod(&["http", "sidecar"]), None),
            Err("a container name must be specified for pod web-1, choose one of: [http sidecar]".into())
        );
        assert!(
            choose_container(&pod(&["http"]), Some("db"))
                .unwrap_err()
                .contains("[http]")
        );
    }

    #[test]
    fn pod_names() {
        assert_eq!(pod_name("web-1"), Ok("web-1"));
        assert_eq!(pod_name("po/web-1"), Ok("web-1"));
        assert!(pod_name("deploy/web").is_err());
    }
}
