//! Ports for replicas on loopback that no other test, and no outgoing connection, can
//! be holding when a replica binds them (restarts included).
//!
//! A port picked by binding port 0 comes from the kernel's ephemeral range, the same
//! range outgoing connections take their local ports from; between the pick and the
//! replica's bind, any connection on the machine can take it. So ports come from
//! below that range, and each is reserved for the life of the process by a lock on a
//! file named after it, which tests running in other processes respect.
//!
//! `berth_store::testing::free_port` reserves ports the same way, in the same
//! directory, for the store's in-process test clusters (this crate cannot depend on
//! the store), so the two never hand out one port twice.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Mutex;

const LOWEST: u32 = 10_000;

/// The directory of reservation files, shared with `berth_store::testing`.
const RESERVATIONS: &str = "berth-test-ports";

/// Reservations this process holds; their locks go when the process exits.
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// A loopback port that nothing listens on, reserved for this process.
pub fn free_port() -> u16 {
    let dir = std::env::temp_dir().join(RESERVATIONS);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let highest = ephemeral_range_start().saturating_sub(1).max(LOWEST + 100);
    let mut random = seed();
    for _ in 0..10_000 {
        random = xorshift(random);
        let port = (LOWEST + (random % u64::from(highest - LOWEST)) as u32) as u16;
        if let Some(reservation) = reserve(dir.join(port.to_string()), port) {
            HELD.lock().unwrap_or_else(|e| e.into_inner()).push(reservation);
            return port;
        }
    }
    panic!("no free loopback port between {LOWEST} and {highest}");
}

/// The lock on `port`'s file, if no other holder has it and the port is free.
fn reserve(path: PathBuf, port: u16) -> Option<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ok()?;
    file.try_lock().ok()?;
    TcpListener::bind(("127.0.0.1", port)).ok()?;
    Some(file)
}

fn ephemeral_range_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 32)) | 1
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_distinct_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..20).map(|_| free_port()).collect();
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        for port in ports {
            assert!(u32::from(port) >= LOWEST, "{port} is below {LOWEST}");
            assert!(
                u32::from(port) < ephemeral_range_start(),
                "{port} is in the ephemeral range"
            );
            TcpListener::bind(("127.0.0.1", port)).expect("a reserved port is free to bind");
        }
    }

    #[test]
    fn a_port_reserved_by_this_process_is_not_handed_out_again() {
        let port = free_port();
        let path = std::env::temp_dir().join(RESERVATIONS).join(port.to_string());
        let other = OpenOptions::new().write(true).open(path).unwrap();
        assert!(other.try_lock().is_err(), "the reservation of {port} is held");
    }
}
