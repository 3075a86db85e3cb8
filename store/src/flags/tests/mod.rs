//! Tests of the whole grammar: each parses a command line (and an environment) as
//! `berth store` would and checks the flags or the error message, grouped by concern.

mod command_line;
mod corrupt_check;
mod defaults;
mod environment;
mod tls;
mod validation;
mod values;

use super::*;

fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(line: &str) -> Result<StoreFlags, FlagError> {
    parse_store_flags_with_env(&args(line), &no_env)
}

fn parse_err(line: &str) -> String {
    match parse(line) {
        Ok(flags) => panic!("{line:?} parsed, to {flags:?}"),
        Err(error) => error.to_string(),
    }
}

const THREE_MEMBERS: &str = "n1=http://127.0.0.1:2380,n2=http://127.0.0.1:22380,n3=http://127.0.0.1:32380";
