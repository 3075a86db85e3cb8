//! `berth store snapshot restore|status`: etcdutl's snapshot commands for the files
//! `etcdctl snapshot save` takes from a berth cluster.
//!
//! `restore <file>` takes etcd's member flags (`--name`, `--initial-cluster`,
//! `--initial-cluster-token`, `--initial-advertise-peer-urls`, `--data-dir`), parsed
//! by `berth store`'s own flag parser, plus `--skip-hash-check`; the member is then
//! started with `berth store` and the same flags. `status <file>` prints etcdutl's
//! columns: HASH, REVISION, TOTAL KEYS, TOTAL SIZE.

use std::process::ExitCode;
use std::sync::Arc;

use crate::backend::{MemoryBackend, SharedBackend, Tree, WriteBatch};
use crate::flags::{self, FlagError};
use crate::mvcc::{KeyRange, RangeOptions};
use crate::state_machine::{AppliedState, SnapshotFile};
use crate::store::restore_snapshot;

pub const SNAPSHOT_USAGE: &str = "\
Usage:
  berth store snapshot restore <file> [flags]
      Writes a new member's data dir from a snapshot that `etcdctl snapshot save`
      took, for a new cluster. Flags: --name, --data-dir (default <name>.etcd),
      --initial-cluster, --initial-cluster-token, --initial-advertise-peer-urls
      (as for `berth store`), and --skip-hash-check to read a file without its
      sha256 (a member's own member/snap/current.snap). Start every member with
      `berth store` and the same flags afterwards.
  berth store snapshot status <file> [-w simple|table|json]
      Prints the snapshot's hash, revision, number of keys and size.
";

/// What `status` reports about a snapshot file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotStatus {
    /// CRC-32 of the snapshot's data.
    pub hash: u32,
    pub revision: i64,
    /// Keys in the key space at `revision`.
    pub total_keys: i64,
    /// Bytes of the file.
    pub total_size: u64,
}

/// Runs `berth store snapshot ARGS`.
pub fn run(args: &[String]) -> ExitCode {
    let result = match args.first().map(String::as_str) {
        Some("restore") => restore(&args[1..]),
        Some("status") => status(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{SNAPSHOT_USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("save") => Err("`snapshot save` is etcdctl's: etcdctl --endpoints=URL snapshot save <file>".to_string()),
        Some(other) => Err(format!("unknown snapshot command {other:?} (restore or status)")),
        None => Err("snapshot needs a command: restore or status".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_empty() => {
            print!("{SNAPSHOT_USAGE}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("berth store snapshot: {e}");
            ExitCode::from(2)
        }
    }
}

/// Splits `<file> [flags]` into the file and the flags; `Err("")` asks for help.
fn file_argument(command: &str, args: &[String]) -> Result<(String, Vec<String>), String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Err(String::new());
    }
    match args.split_first() {
        Some((file, rest)) if !file.starts_with('-') => Ok((file.clone(), rest.to_vec())),
        _ => Err(format!(
            "snapshot {command} needs the snapshot file first: berth store snapshot {command} <file>"
        )),
    }
}

fn read_file(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))
}

fn restore(args: &[String]) -> Result<(), String> {
    let (path, rest) = file_argument("restore", args)?;
    let mut skip_hash_check = false;
    let mut store_args = Vec::new();
    for arg in rest {
        match arg.as_str() {
            "--skip-hash-check" | "--skip-hash-check=true" => skip_hash_check = true,
            "--skip-hash-check=false" => skip_hash_check = false,
            _ => store_args.push(arg),
        }
    }
    let config = flags::parse_store_flags(&store_args)
        .and_then(|f| f.to_config())
        .map_err(|e| match e {
            FlagError::Help => String::new(),
            other => other.to_string(),
        })?;
    let bytes = read_file(&path)?;
    let restored = restore_snapshot(&bytes, &config, skip_hash_check).map_err(|e| e.to_string())?;
    println!(
        "restored snapshot {path} into {}: member {:x} ({}) of cluster {:x}, revision {}, {} leases",
        config.data_dir.display(),
        restored.member_id,
        config.name,
        restored.cluster_id,
        restored.revision,
        restored.leases
    );
    Ok(())
}

fn status(args: &[String]) -> Result<(), String> {
    let (path, rest) = file_argument("status", args)?;
    let mut format = "simple".to_string();
    let mut rest = rest.into_iter();
    while let Some(arg) = rest.next() {
        if let Some(value) = arg.strip_prefix("--write-out=").or_else(|| arg.strip_prefix("-w=")) {
            format = value.to_string();
        } else if arg == "-w" || arg == "--write-out" {
            format = rest
                .next()
                .ok_or_else(|| format!("{arg} needs a value: simple, table or json"))?;
        } else {
            return Err(format!(
                "unknown flag {arg:?} for snapshot status (only -w/--write-out)"
            ));
        }
    }
    let status = snapshot_status(&read_file(&path)?)?;
    let out = match format.as_str() {
        "simple" => format!(
            "{:x}, {}, {}, {}\n",
            status.hash,
            status.revision,
            status.total_keys,
            human_bytes(status.total_size)
        ),
        "json" => format!(
            "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}\n",
            status.hash, status.revision, status.total_keys, status.total_size
        ),
        "table" => table(&status),
        other => return Err(format!("unknown output format {other:?} (simple, table or json)")),
    };
    print!("{out}");
    Ok(())
}

/// Reads a portable snapshot (its sha256 checked) and measures it.
pub fn snapshot_status(bytes: &[u8]) -> Result<SnapshotStatus, String> {
    let file = SnapshotFile::from_portable(bytes, false).map_err(|e| e.to_string())?;
    let backend: SharedBackend = Arc::new(MemoryBackend::new());
    let mut batch = WriteBatch::new();
    for (key, value) in file.pairs()? {
        batch.put(key, value);
    }
    backend.write(Tree::State, batch).map_err(|e| e.to_string())?;
    let state = AppliedState::load(&backend).map_err(|e| format!("the snapshot's data is corrupt: {e}"))?;
    let everything = KeyRange::new(&[0], &[0]);
    let count = state
        .kv
        .range(
            &everything,
            &RangeOptions {
                count_only: true,
                ..Default::default()
            },
        )
        .map_err(|e| e.to_string())?
        .count;
    Ok(SnapshotStatus {
        hash: crc32fast::hash(&file.data),
        revision: state.kv.current_revision(),
        total_keys: count,
        total_size: bytes.len() as u64,
    })
}

/// Bytes in SI units as etcd prints them (go-humanize): `9 B`, `2.1 MB`, `82 kB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 10 {
        return format!("{bytes} B");
    }
    let exponent = ((bytes as f64).log10() / 3.0).floor() as usize;
    let exponent = exponent.min(UNITS.len() - 1);
    let value = (bytes as f64 / 1000f64.powi(exponent as i32) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[exponent])
    } else {
        format!("{value:.0} {}", UNITS[exponent])
    }
}

/// etcdctl's table: centred headers, numbers to the right, text to the left.
fn table(status: &SnapshotStatus) -> String {
    let headers = ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"];
    let cells = [
        (format!("{:x}", status.hash), false),
        (status.revision.to_string(), true),
        (status.total_keys.to_string(), true),
        (human_bytes(status.total_size), false),
    ];
    let widths: Vec<usize> = headers
        .iter()
        .zip(&cells)
        .map(|(h, (c, _))| h.len().max(c.len()))
        .collect();
    let rule = format!(
        "+{}+\n",
        widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+")
    );
    let header = headers
        .iter()
        .zip(&widths)
        .map(|(h, w)| format!(" {h:^w$} "))
        .collect::<Vec<_>>()
        .join("|");
    let row = cells
        .iter()
        .zip(&widths)
        .map(|((c, is_number), w)| {
            if *is_number {
                format!(" {c:>w$} ")
            } else {
                format!(" {c:<w$} ")
            }
        })
        .collect::<Vec<_>>()
        .join("|");
    format!("{rule}|{header}|\n{rule}|{row}|\n{rule}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_etcd_prints_them() {
        assert_eq!(human_bytes(9), "9 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(2_105_344), "2.1 MB");
        assert_eq!(human_bytes(82_000), "82 kB");
    }

    #[test]
    fn the_table_has_etcds_columns() {
        let status = SnapshotStatus {
            hash: 0xfe01cf57,
            revision: 10,
            total_keys: 7,
            total_size: 2_105_344,
        };
        let table = table(&status);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[1], "|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |");
        assert_eq!(lines[3], "| fe01cf57 |       10 |          7 | 2.1 MB     |");
        assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{table}");
    }

    #[test]
    fn a_restore_needs_its_file_first() {
        let error = restore(&["--name".into(), "a".into()]).unwrap_err();
        assert!(error.contains("needs the snapshot file first"), "{error}");
    }
}
