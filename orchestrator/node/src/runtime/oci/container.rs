//! One container the OCI runtime knows: its record, its bundle and, when this
//! runtime started it, its supervisor; and how its end is learnt (see the module
//! above for the order of sources).

use std::os::unix::process::ExitStatusExt as _;
use std::process::Child;
use std::time::SystemTime;

use rustix::process::{Pid, WaitId, WaitIdOptions};

use super::super::ContainerState;
use super::super::record::{self, ContainerRecord, ExitRecord, RecordStore};
use super::bundle::Bundle;
use super::runc::{self, Runc};

pub struct Container {
    pub record: ContainerRecord,
    pub bundle: Bundle,
    /// The supervisor, when this runtime started it; None when adopted.
    pub child: Option<Child>,
}

impl Container {
    pub fn observe(&mut self, records: &RecordStore, runc: &Runc) -> ContainerState {
        if self.record.exit.is_none()
            && let Some(exit) = self.poll_exit(records, runc)
        {
            self.record.settle_exit(exit, records);
        }
        let record = &self.record;
        match record.exit {
            None => ContainerState::Running {
                // The container's init as the host sees it; the supervisor's until
                // runc has said.
                pid: runc::read_pid_file(&self.bundle.dir).unwrap_or(record.pid),
                started_at: record.started_at,
            },
            Some(exit) => ContainerState::Exited {
                exit_code: exit.exit_code,
                signal: exit.signal,
                started_at: record.started_at,
                finished_at: exit.finished_at,
                oom_killed: exit.oom_killed,
            },
        }
    }

    /// The exit, if the container has ended since it was last looked at.
    fn poll_exit(&mut self, records: &RecordStore, runc: &Runc) -> Option<ExitRecord> {
        let id = &self.record.id;
        if let Some(child) = &mut self.child {
            let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
            match rustix::process::waitid(WaitId::Pid(Pid::from_child(child)), options) {
                Ok(None) => return None,
                Ok(Some(_)) => match child.wait() {
                    Ok(status) => {
                        let now = SystemTime::now();
                        if let Some((code, at)) = records.read_exit(id) {
                            return Some(ExitRecord::from_status(code, at));
                        }
                        // The supervisor was killed before runc ended: runc and the
                        // container may run on, known to no one.
                        kill_orphan(runc, id);
                        return Some(match (status.code(), status.signal()) {
                            (Some(code), _) => ExitRecord::from_status(code, now),
                            (None, Some(signal)) => ExitRecord::from_status(128 + signal, now),
                            (None, None) => ExitRecord::killed(now),
                        });
                    }
                    Err(error) => tracing::warn!(container = %id, %error, "cannot reap the container's supervisor"),
                },
                Err(error) => tracing::warn!(container = %id, %error, "cannot wait for the container's supervisor"),
            }
            self.child = None;
        }
        if record::is_alive(self.record.pid, self.record.process_start_ticks) {
            return None;
        }
        if let Some((code, at)) = records.read_exit(id) {
            return Some(ExitRecord::from_status(code, at));
        }
        // The supervisor was killed before it could write anything.
        kill_orphan(runc, id);
        Some(ExitRecord::killed(SystemTime::now()))
    }
}

/// Kills a container whose supervisor is gone without an exit file: it must not
/// run on unknown to anyone (it is reported as killed, 137).
fn kill_orphan(runc: &Runc, id: &str) {
    if let Err(message) = runc.kill(id, "KILL") {
        tracing::warn!(container = %id, %message, "cannot kill a container whose supervisor is gone");
    }
}
