//! `--experimental-corrupt-check-time`: how often the leader compares hashes.

use std::time::Duration;

use super::*;

#[test]
fn the_corrupt_check_is_off_unless_given_a_period() {
    let flags = parse("").unwrap();
    assert_eq!(flags.experimental_corrupt_check_time_ms, 0);
    assert_eq!(flags.to_config().unwrap().corrupt_check_time, None);

    let flags = parse("--experimental-corrupt-check-time 2m").unwrap();
    assert_eq!(flags.experimental_corrupt_check_time_ms, 120_000);
    assert_eq!(
        flags.to_config().unwrap().corrupt_check_time,
        Some(Duration::from_secs(120))
    );
    let flags = parse("--experimental-corrupt-check-time=0s").unwrap();
    assert_eq!(flags.to_config().unwrap().corrupt_check_time, None);
}

#[test]
fn a_bad_corrupt_check_period_names_the_flag() {
    let message = parse_err("--experimental-corrupt-check-time often");
    assert!(
        message.starts_with(r#"invalid value "often" for flag --experimental-corrupt-check-time"#),
        "{message}"
    );
}
