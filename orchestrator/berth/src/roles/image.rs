//! `berth image import|ls|rm`: the node's image store without the agent, for nodes
//! with no way to a registry. They work on the agent's data directory directly and
//! do not consult a running agent: removing an image that containers on the node run
//! from pulls the layers out from under them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use berth_node::image::import::import;
use berth_node::image::manifest::host_platform;
use berth_node::image::reference::Reference;
use berth_node::image::store::{Index, Store};

#[derive(Parser, Debug)]
#[command(
    name = "berth image",
    about = "Manage the images of this node's agent (its data directory)"
)]
pub struct ImageFlags {
    /// The agent's data directory (default: <node name>.agent, as `berth agent`).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// The node's name, for the default data directory (`berth agent --name`);
    /// defaults to the host name.
    #[arg(long, global = true)]
    node_name: Option<String>,
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Subcommand, Debug)]
enum ImageCommand {
    /// Import images from an OCI image layout (a directory, or a tar of one) or a
    /// `docker save` tarball.
    Import {
        path: PathBuf,
        /// The name to store the image under (the source must hold one image);
        /// by default the names the source gives.
        #[arg(long = "name", value_name = "REF")]
        reference: Option<String>,
    },
    /// List the images in the store, as `crictl images --digests` does.
    #[command(visible_alias = "list")]
    Ls,
    /// Remove an image's name, and the image when it has no other. The agent is not
    /// asked whether containers use it: remove only images nothing on this node runs.
    #[command(visible_alias = "rmi")]
    Rm {
        #[arg(required = true)]
        references: Vec<String>,
    },
}

pub fn run(args: &[String]) -> ExitCode {
    let flags: ImageFlags = match super::parse_flags("image", args) {
        Ok(f) => f,
        Err(code) => return code,
    };
    match execute(flags) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            berth_cli::err_line(format_args!("berth image: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn execute(flags: ImageFlags) -> Result<(), String> {
    let data_dir = match flags.data_dir {
        Some(dir) => dir,
        None => super::agent::default_data_dir(flags.node_name)?,
    };
    let root = data_dir.join("images");
    if !matches!(flags.command, ImageCommand::Import { .. }) && !root.is_dir() {
        return Err(format!("no image store at {} (--data-dir)", root.display()));
    }
    let store = Store::open(&root).map_err(|e| format!("image store {}: {e}", root.display()))?;
    match flags.command {
        ImageCommand::Import { path, reference } => {
            for image in import(&store, &path, reference.as_deref(), &host_platform())? {
                berth_cli::out(&format!("Loaded image: {} ({})\n", image.reference, image.image_id));
            }
        }
        ImageCommand::Ls => {
            let index = store.read_index().map_err(|e| format!("image store: {e}"))?;
            berth_cli::out(&list(&index));
        }
        ImageCommand::Rm { references } => {
            let mut failed = false;
            for text in references {
                let key = Reference::parse(&text)
                    .map_err(|e| format!("{text:?}: {e}"))?
                    .store_key();
                match store.remove_ref(&key).map_err(|e| format!("image store: {e}"))? {
                    Some(_) => berth_cli::out(&format!("Deleted: {key}\n")),
                    None => {
                        berth_cli::err_line(format_args!("berth image: no such image: {text:?}"));
                        failed = true;
                    }
                }
            }
            if failed {
                return Err("some images were not removed".into());
            }
        }
    }
    Ok(())
}

/// crictl's short form of a digest: its first 13 hex digits.
fn short(digest: &str) -> String {
    digest.trim_start_matches("sha256:").chars().take(13).collect()
}

/// Docker's `units.HumanSize`: decimal units, four significant digits.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    let decimals = match value {
        v if v >= 1000.0 => 0,
        v if v >= 100.0 => 1,
        v if v >= 10.0 => 2,
        _ => 3,
    };
    let text = format!("{value:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", UNITS[unit])
}

/// The table `berth image ls` prints: one line per name, as crictl does.
fn list(index: &Index) -> String {
    let mut rows = vec![["IMAGE", "TAG", "DIGEST", "IMAGE ID", "SIZE"].map(String::from)];
    for (name, record) in &index.refs {
        let (repository, tag) = match name.split_once('@') {
            Some((repository, _)) => (repository.to_string(), "<none>".to_string()),
            None => {
                let slash = name.rfind('/').unwrap_or(0);
                match name[slash..].rfind(':') {
                    Some(i) => (name[..slash + i].to_string(), name[slash + i + 1..].to_string()),
                    None => (name.clone(), "<none>".to_string()),
                }
            }
        };
        rows.push([
            repository,
            tag,
            short(&record.manifest),
            short(&record.config),
            human_size(index.image_size(&record.config)),
        ]);
    }
    // crictl's tabwriter: cells at least 20 wide, 3 spaces after the widest.
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].len() + 3).max().unwrap_or(0).max(20))
        .collect();
    let mut out = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            if c == row.len() - 1 {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}", width = widths[c]));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_node::image::store::{ImageRecord, RefRecord};

    #[test]
    fn sizes_read_as_docker_prints_them() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(4_260_000), "4.26MB");
        assert_eq!(human_size(1_234_567), "1.235MB");
        assert_eq!(human_size(123_456_789), "123.5MB");
    }

    #[test]
    fn the_list_has_a_line_per_name() {
        let config = format!("sha256:{}", "c".repeat(64));
        let manifest = format!("sha256:{}", "a".repeat(64));
        let mut index = Index::default();
        for name in [
            "127.0.0.1:5000/app:1.0".to_string(),
            format!("docker.io/library/busybox@{manifest}"),
        ] {
            index.refs.insert(
                name,
                RefRecord {
                    manifest: manifest.clone(),
                    config: config.clone(),
                },
            );
        }
        index.images.insert(
            config,
            ImageRecord {
                layers: vec!["l".into()],
                ..Default::default()
            },
        );
        index.layer_sizes.insert("l".into(), 2_000_000);
        let text = list(&index);
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines[0], ["IMAGE", "TAG", "DIGEST", "IMAGE", "ID", "SIZE"]);
        assert_eq!(
            lines[1],
            ["127.0.0.1:5000/app", "1.0", "aaaaaaaaaaaaa", "ccccccccccccc", "2MB"]
        );
        assert_eq!(
            lines[2],
            [
                "docker.io/library/busybox",
                "<none>",
                "aaaaaaaaaaaaa",
                "ccccccccccccc",
                "2MB"
            ]
        );
    }
}
