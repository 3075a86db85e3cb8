//! Fault-injection harness for berth (see the issue tracker: filled in by a later issue).
