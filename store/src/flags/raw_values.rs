//! The first step of parsing: each flag's raw value, read off the command line and then
//! from `ETCD_*` environment variables, with where it came from. Help, version, unknown
//! and unsupported flags stop parsing here, before any value is looked at.

use super::FlagError;
use super::flag::Flag;
use super::unsupported::{UNSUPPORTED_FLAGS, is_unsupported};

const ENV_PREFIX: &str = "ETCD_";

/// etcd's environment variable for a flag: `data-dir` → `ETCD_DATA_DIR`.
fn env_var_name(flag_name: &str) -> String {
    format!("{ENV_PREFIX}{}", flag_name.to_ascii_uppercase().replace('-', "_"))
}

/// Where a raw value came from, so that errors can say so.
#[derive(Debug, Clone)]
pub(super) enum Source {
    Arg,
    Env(String),
}

impl Source {
    pub(super) fn attach(&self, error: FlagError) -> FlagError {
        match self {
            Source::Arg => error,
            Source::Env(var) => FlagError::FromEnv {
                var: var.clone(),
                error: Box::new(error),
            },
        }
    }
}

/// Reads flags and their raw values off the command line, the last occurrence of a
/// flag winning as in Go's flag package.
pub(super) fn scan_args(args: &[String], raw: &mut [Option<(String, Source)>]) -> Result<(), FlagError> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            // Go's flag package stops at "--"; etcd then refuses whatever follows.
            return match args.next() {
                Some(rest) => Err(FlagError::NotAFlag { arg: rest.clone() }),
                None => Ok(()),
            };
        }
        // Go accepts `-flag` as well as `--flag`.
        let Some(body) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|body| !body.is_empty())
        else {
            return Err(FlagError::NotAFlag { arg: arg.clone() });
        };
        let (name, inline_value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        match name {
            "h" | "help" => return Err(FlagError::Help),
            "version" => return Err(FlagError::Version),
            _ => {}
        }
        let Some(flag) = Flag::from_name(name) else {
            let flag = format!("--{name}");
            return Err(if is_unsupported(name) {
                FlagError::UnsupportedFlag { flag }
            } else {
                FlagError::UnknownFlag { flag }
            });
        };
        let value = match inline_value {
            Some(value) => value.to_string(),
            None if flag.is_bool() => "true".to_string(),
            // Unlike Go, a following `--other-flag` is not taken as the value: that is
            // always a forgotten value, and swallowing the next flag hides the mistake.
            None => match args.next() {
                Some(next) if !next.starts_with("--") => next.clone(),
                _ => {
                    return Err(FlagError::MissingValue { flag: flag.dashed() });
                }
            },
        };
        raw[flag.index()] = Some((value, Source::Arg));
    }
    Ok(())
}

/// Fills in flags the command line did not set from `ETCD_*` variables, and refuses
/// variables that set unsupported etcd flags, as the flags themselves are refused.
/// Empty variables are ignored, as etcd does.
pub(super) fn read_env(
    env: &dyn Fn(&str) -> Option<String>,
    raw: &mut [Option<(String, Source)>],
) -> Result<(), FlagError> {
    let lookup = |var: &str| env(var).filter(|value| !value.is_empty());
    for flag in Flag::ALL {
        if raw[flag.index()].is_some() {
            continue;
        }
        let var = env_var_name(flag.name());
        if let Some(value) = lookup(&var) {
            raw[flag.index()] = Some((value, Source::Env(var)));
        }
    }
    for name in UNSUPPORTED_FLAGS {
        let var = env_var_name(name);
        if lookup(&var).is_some() {
            return Err(Source::Env(var).attach(FlagError::UnsupportedFlag {
                flag: format!("--{name}"),
            }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names_follow_etcd() {
        assert_eq!(env_var_name("data-dir"), "ETCD_DATA_DIR");
        assert_eq!(
            env_var_name("experimental-watch-progress-notify-interval"),
            "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL"
        );
    }
}
