//! The floor: the same container berth's pods run (busybox `sleep`), started by bare
//! `runc run -d`, one after another, each left running as a pod would be.
//!
//! ```text
//!  rootfs:   bin/busybox (the host's static one) and links sh, sleep; empty dev, proc,
//!            sys, tmp for runc's mounts; shared by every container, read-only
//!  template: `runc spec` (its default namespaces: pid, mount, uts, ipc, network)
//!  each:     bundle/<id>/config.json = template + args, hostname, rootfs, its own cgroup
//!            spawn `runc --root STATE run -d --bundle B ID` ──► it returns once the
//!            container's process runs: that span is the start latency
//!  drop:     `runc delete -f` of every container made (cgroups go with them)
//! ```
//!
//! runc hands its standard output to the container, and a detached container outlives
//! runc: so each gets a log file, never a pipe (a pipe would keep this program waiting
//! for the container to exit).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

/// Where Debian installs runc; /usr/sbin is not on every user's PATH.
const DEBIAN_RUNC: &str = "/usr/sbin/runc";

/// The host's runc: `given`, else `runc` on PATH, else Debian's.
pub fn find_runc(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        ensure!(path.is_file(), "{} does not exist", path.display());
        return Ok(path.to_owned());
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("runc"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from(DEBIAN_RUNC)])
        .find(|candidate| candidate.is_file())
        .context("runc is not installed (Debian's package `runc`); pass --runc")
}

/// Containers started by bare runc under one state dir, deleted on drop.
pub struct RuncFloor {
    runc: PathBuf,
    dir: PathBuf,
    template: Value,
    /// IDs of the containers made, for the teardown.
    created: Vec<String>,
}

impl RuncFloor {
    /// The rootfs and the template spec under `dir`; an error when not root or when
    /// there is no static busybox.
    pub fn prepare(runc: &Path, dir: &Path) -> anyhow::Result<RuncFloor> {
        let is_root = crate::compare::machine::command_output("id", &["-u"]).is_some_and(|uid| uid == "0");
        ensure!(is_root, "bare runc needs root (cgroups, namespaces, mounts)");
        let busybox = berth_testkit::oci::busybox_binary()
            .context("no static busybox (Debian's busybox-static) to make the container's rootfs from")?;
        let rootfs = dir.join("rootfs");
        for sub in ["bin", "dev", "proc", "sys", "tmp", "etc"] {
            std::fs::create_dir_all(rootfs.join(sub))?;
        }
        std::fs::copy(&busybox, rootfs.join("bin/busybox"))
            .with_context(|| format!("copying {}", busybox.display()))?;
        for applet in ["sh", "sleep"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))?;
        }

        let template_dir = dir.join("template");
        std::fs::create_dir_all(&template_dir)?;
        run_quietly(Command::new(runc).arg("spec").arg("--bundle").arg(&template_dir))?;
        let template: Value = serde_json::from_slice(&std::fs::read(template_dir.join("config.json"))?)
            .context("runc spec wrote no JSON")?;
        std::fs::create_dir_all(dir.join("state"))?;
        std::fs::create_dir_all(dir.join("logs"))?;
        Ok(RuncFloor {
            runc: runc.to_owned(),
            dir: dir.to_owned(),
            template,
            created: Vec::new(),
        })
    }

    /// Starts container `index` (`sleep 3600`) and returns how long `runc run -d` took.
    pub fn start(&mut self, index: u64) -> anyhow::Result<Duration> {
        let id = format!("berth-bench-{}-{index}", std::process::id());
        let bundle = self.dir.join("bundles").join(&id);
        std::fs::create_dir_all(&bundle)?;
        let config = container_config(&self.template, &id, &self.dir.join("rootfs"));
        std::fs::write(bundle.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
        let log_path = self.dir.join("logs").join(format!("{id}.log"));
        let log = std::fs::File::create(&log_path)?;

        let started = Instant::now();
        self.created.push(id.clone());
        let status = Command::new(&self.runc)
            .arg("--root")
            .arg(self.dir.join("state"))
            .args(["run", "-d", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .context("running runc")?;
        let took = started.elapsed();
        if !status.success() {
            bail!(
                "runc run {id} failed ({status}): {}",
                std::fs::read_to_string(&log_path).unwrap_or_default().trim()
            );
        }
        Ok(took)
    }

    /// What `runc state` says of the container started as `index`: `running`, say.
    pub fn state(&self, index: u64) -> anyhow::Result<String> {
        let id = format!("berth-bench-{}-{index}", std::process::id());
        let output = Command::new(&self.runc)
            .arg("--root")
            .arg(self.dir.join("state"))
            .args(["state", &id])
            .output()?;
        ensure!(
            output.status.success(),
            "runc state {id}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let state: Value = serde_json::from_slice(&output.stdout)?;
        Ok(state["status"].as_str().unwrap_or_default().to_owned())
    }
}

impl Drop for RuncFloor {
    fn drop(&mut self) {
        for id in self.created.drain(..) {
            let deleted = Command::new(&self.runc)
                .arg("--root")
                .arg(self.dir.join("state"))
                .args(["delete", "-f", &id])
                .stdin(Stdio::null())
                .output();
            match deleted {
                Ok(output) if output.status.success() => {}
                Ok(output) => eprintln!(
                    "warning: runc delete -f {id}: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
                Err(error) => eprintln!("warning: runc delete -f {id}: {error}"),
            }
        }
    }
}

/// The template with this container's command, name, rootfs and cgroup. The cgroup
/// path is absolute and unique: runc would otherwise nest it under this program's own
/// cgroup, and it silently joins a cgroup that exists already.
fn container_config(template: &Value, id: &str, rootfs: &Path) -> Value {
    let mut config = template.clone();
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(["sleep", "3600"]);
    config["hostname"] = json!(id);
    config["root"] = json!({"path": rootfs.display().to_string(), "readonly": true});
    config["linux"]["cgroupsPath"] = json!(format!("/{id}"));
    config
}

fn run_quietly(command: &mut Command) -> anyhow::Result<()> {
    let output = command.output().with_context(|| format!("running {command:?}"))?;
    ensure!(
        output.status.success(),
        "{command:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_container_gets_its_command_rootfs_and_own_cgroup() {
        let template = json!({
            "process": {"terminal": true, "args": ["sh"], "cwd": "/"},
            "root": {"path": "rootfs", "readonly": true},
            "hostname": "runc",
            "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}]},
        });
        let config = container_config(&template, "c-1", Path::new("/data/rootfs"));
        assert_eq!(config["process"]["args"], json!(["sleep", "3600"]));
        assert_eq!(config["process"]["terminal"], false);
        assert_eq!(config["process"]["cwd"], "/");
        assert_eq!(config["root"], json!({"path": "/data/rootfs", "readonly": true}));
        assert_eq!(config["hostname"], "c-1");
        assert_eq!(config["linux"]["cgroupsPath"], "/c-1");
        assert_eq!(config["linux"]["namespaces"], template["linux"]["namespaces"]);
    }
}
