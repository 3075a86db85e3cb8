//! `--auto-compaction-retention`, whose meaning depends on `--auto-compaction-mode`: a
//! period of time or a number of revisions. The mode may come after the retention on the
//! command line, so the retention is kept as given and read here once both are known.

use super::flag::Flag;
use super::{FlagError, parse_duration_ms};

/// `--auto-compaction-mode`: how `--auto-compaction-retention` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionMode {
    /// Keep history for a period of time.
    Periodic,
    /// Keep a number of revisions.
    Revision,
}

/// `--auto-compaction-retention` read in the light of `--auto-compaction-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionRetention {
    /// A retention of 0: never compact automatically.
    Disabled,
    Periodic {
        retention_ms: u64,
    },
    Revision {
        revisions: u64,
    },
}

/// Reads `--auto-compaction-retention` as etcd does: in `periodic` mode a Go duration
/// or a bare integer count of hours ("1" = 1h); in `revision` mode an integer count of
/// revisions. A retention of 0 turns auto compaction off.
pub fn parse_retention(mode: CompactionMode, s: &str) -> Result<CompactionRetention, FlagError> {
    let invalid = |reason: String| FlagError::InvalidValue {
        flag: Flag::AutoCompactionRetention.dashed(),
        value: s.to_string(),
        reason,
    };
    let retention = match mode {
        CompactionMode::Revision => {
            let revisions = s.parse::<u64>().map_err(|_| {
                invalid("not a number (in revision mode the retention is a count of revisions)".to_string())
            })?;
            // etcd's revisions are i64s; a larger retention could only be a mistake.
            if i64::try_from(revisions).is_err() {
                return Err(invalid("too many revisions".to_string()));
            }
            CompactionRetention::Revision { revisions }
        }
        CompactionMode::Periodic => {
            let retention_ms = match s.parse::<u64>() {
                Ok(hours) => hours
                    .checked_mul(60 * 60 * 1000)
                    .ok_or_else(|| invalid("too many hours".to_string()))?,
                Err(_) => parse_duration_ms(s).map_err(|error| match error {
                    FlagError::InvalidDuration { reason, .. } => invalid(format!(
                        "not a duration such as 1h or 30m, nor a number of hours ({reason})"
                    )),
                    other => other,
                })?,
            };
            CompactionRetention::Periodic { retention_ms }
        }
    };
    Ok(match retention {
        CompactionRetention::Periodic { retention_ms: 0 } | CompactionRetention::Revision { revisions: 0 } => {
            CompactionRetention::Disabled
        }
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_parsing() {
        use CompactionMode::{Periodic, Revision};
        assert_eq!(parse_retention(Periodic, "0"), Ok(CompactionRetention::Disabled));
        assert_eq!(parse_retention(Periodic, "0s"), Ok(CompactionRetention::Disabled));
        assert_eq!(
            parse_retention(Periodic, "1"),
            Ok(CompactionRetention::Periodic {
                retention_ms: 3_600_000
            })
        );
        assert_eq!(
            parse_retention(Periodic, "30m"),
            Ok(CompactionRetention::Periodic {
                retention_ms: 1_800_000
            })
        );
        assert_eq!(
            parse_retention(Revision, "1000"),
            Ok(CompactionRetention::Revision { revisions: 1000 })
        );
        assert_eq!(parse_retention(Revision, "0"), Ok(CompactionRetention::Disabled));
        assert!(parse_retention(Revision, "1h").is_err());
        assert!(parse_retention(Revision, &u64::MAX.to_string()).is_err());
        assert!(parse_retention(Periodic, "-1").is_err());
        assert!(parse_retention(Periodic, "one").is_err());
    }
}
