//! The pause between polls of a thread that looks for work a little while
//! before it sleeps: under churn the next message usually comes within
//! microseconds, and catching it awake saves a sleep and a wake-up on each
//! side, which cost far more than the polls on a small machine.

/// Pauses before poll `round + 1` of `rounds`: a CPU spin hint in the
/// first half, a yield to other runnable threads in the second (so a
/// poller sharing a CPU with the thread it waits for lets it run).
pub(crate) fn pause(round: u32, rounds: u32) {
    if round < rounds / 2 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}
