//! The pod network on real namespaces and the real CNI plugins (root; skipped
//! without them on a developer's machine, failing under CI).

pub(crate) mod fixtures;
mod one_node;
mod two_hosts;
