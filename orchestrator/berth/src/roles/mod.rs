//! The long-running roles of the binary: `berth server` (a control-plane replica),
//! `berth agent` (a node supervisor) and `berth up` (a local cluster of both); and
//! `berth image`, which works on an agent's image store; `berth secrets`, which
//! re-encrypts the Secrets in the store with a new key.

pub mod agent;
pub mod api_security;
mod example_image;
pub mod hollow;
pub mod image;
pub mod pki;
pub mod secrets;
pub mod server;
mod server_runtime;
mod server_usage;
pub mod store_client;
mod store_exposure;
mod supervise;
pub mod up;

use std::process::ExitCode;

/// Parses `berth <command>`'s flags with clap; on an error (or `--help`) prints it
/// and gives the exit code to leave with.
pub fn parse_flags<T: clap::Parser>(command: &str, args: &[String]) -> Result<T, ExitCode> {
    T::try_parse_from(std::iter::once(format!("berth {command}")).chain(args.iter().cloned())).map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        }
    })
}

pub use berth_store::role::{init_logging, tokio_runtime, wait_for_signal};

/// Removes `--name VALUE` / `--name=VALUE` / `-name=VALUE` from `args` and returns
/// the last value given, so that the rest can go to the store's flag parser.
pub fn take_flag(args: &mut Vec<String>, name: &str) -> Result<Option<String>, String> {
    let mut value = None;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let bare = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'));
        match bare {
            Some(rest) if rest == name => {
                let Some(v) = args.get(i + 1).cloned() else {
                    return Err(format!("--{name} needs a value"));
                };
                value = Some(v);
                args.drain(i..i + 2);
            }
            Some(rest) if rest.strip_prefix(name).is_some_and(|r| r.starts_with('=')) => {
                value = Some(rest[name.len() + 1..].to_string());
                args.remove(i);
            }
            _ => i += 1,
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::take_flag;

    #[test]
    fn flags_are_taken_in_every_form() {
        let mut args: Vec<String> = [
            "--name",
            "a",
            "--api-listen",
            "1.2.3.4:5",
            "-api-listen=x:1",
            "--data-dir=d",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(take_flag(&mut args, "api-listen").unwrap().as_deref(), Some("x:1"));
        assert_eq!(args, ["--name", "a", "--data-dir=d"]);
        assert_eq!(take_flag(&mut args, "api-listen").unwrap(), None);
        let mut missing = vec!["--api-listen".to_string()];
        assert!(
            take_flag(&mut missing, "api-listen")
                .unwrap_err()
                .contains("needs a value")
        );
    }
}
