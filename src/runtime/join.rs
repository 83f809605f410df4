//! Joining the manager's threads.

use std::thread::{JoinHandle, ThreadId};

use log::warn;

const LOG: &str = "connmgr";

/// Joins `h` unless it is the calling thread (which finishes on its own
/// once it returns to its loop).
pub(crate) fn join_unless_self(h: JoinHandle<()>, me: ThreadId) {
    if h.thread().id() == me {
        return;
    }
    if h.join().is_err() {
        warn!(target: LOG, "a manager thread panicked");
    }
}
