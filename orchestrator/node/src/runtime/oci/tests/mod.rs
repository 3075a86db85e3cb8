//! Against runc and real containers, from a root filesystem built here out of the
//! static busybox. They need root, runc, overlayfs and cgroup v1 (`available`) and
//! skip without them (fail under CI). Waits are polls with generous deadlines; every
//! container is killed and removed by the fixture's Drop, even when a test fails.

mod exec;
pub(crate) mod fixture;
mod isolation;
mod lifecycle;
mod pod_namespaces;
