//! The options every benchmark that starts `berth` processes shares (which binary,
//! whether to build it, where the run's data goes), and the start of such a run.

use std::path::PathBuf;

use anyhow::Context;
use tempfile::TempDir;

use crate::compare::ensure_berth;

#[derive(clap::Args, Clone, Debug)]
pub struct BerthBinary {
    /// The berth binary. Default: the release build in this program's target directory,
    /// built with `cargo build --release -p berth` when missing.
    #[arg(long)]
    pub berth: Option<PathBuf>,

    /// Build berth (`cargo build --release -p berth`) even when the binary exists.
    #[arg(long)]
    pub build: bool,

    /// Where the run's temporary data directories go [default: the system temp dir].
    #[arg(long)]
    pub data_root: Option<PathBuf>,
}

impl BerthBinary {
    /// Warns when this is a debug build, finds (or builds) berth, and makes the run's
    /// temporary directory `<prefix>…` under the data root.
    pub fn prepare(&self, prefix: &str) -> anyhow::Result<(PathBuf, TempDir)> {
        if cfg!(debug_assertions) {
            eprintln!("warning: berth-bench is a debug build; run it with --release for real numbers");
        }
        let binary = ensure_berth(self.berth.as_deref(), self.build)?;
        let data_root = self.data_root.clone().unwrap_or_else(std::env::temp_dir);
        let temp = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&data_root)
            .with_context(|| format!("creating a temp dir in {}", data_root.display()))?;
        Ok((binary, temp))
    }
}
