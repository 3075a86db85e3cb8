//! The runtimes of `berth server`: the store replica's (`berth_store::role::store_runtime`)
//! and, at a lower priority, the API server's and the controllers'.

use std::process::ExitCode;

/// How much lower than the store's the priority of the API server's and the
/// controllers' threads is (nice, added to the process's own).
const CONTROL_NICENESS: i32 = 10;

/// The runtime of the API server and the controllers: threads named `control`,
/// each (its blocking pool's too) at [`CONTROL_NICENESS`] below the store's. On a
/// host where they compete for the cores (with each other, with other replicas),
/// the kernel then runs a replica's Raft heartbeats and votes first, so a control
/// plane saturated by its clients keeps its leader and sheds their requests
/// instead (429s, timeouts) of losing its term over and over.
pub fn control_runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    // The process's own, read once: a thread inherits its creator's, which may be
    // a control thread's already.
    let nice = rustix::process::getpriority_process(None).unwrap_or(0);
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("control")
        .on_thread_start(move || {
            // Per thread on Linux; failing leaves it at the process's priority.
            let _ = rustix::process::setpriority_process(None, (nice + CONTROL_NICENESS).min(19));
        })
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("berth server: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}
