//! The pause between polls of a thread that looks for work a little while
//! before it sleeps: under churn the next message usually comes within
//! microseconds, and catching it awake saves a sleep and a wake-up on each
//! side, which cost far more than the polls on a small machine.
//!
//! A poll window is a length of time, not only a number of polls: what a
//! poll costs depends on the CPU and the hypervisor (a spin hint takes
//! from about 10 to about 140 CPU cycles across x86 models). On one of
//! our machines a spin hint took 12 ns and a yield 0.2 µs, so 64 polls
//! lasted about 7 µs: shorter than the other thread's answer, so both
//! threads fell asleep between messages and w2 ran at a third of its
//! rate. A window also lasts at least a number of polls, for when other
//! threads hold the CPUs.

use std::time::{Duration, Instant};

/// A poll window that opened when it was made.
pub(crate) struct Window {
    opened: Instant,
    length: Duration,
    /// The fewest pauses before the window may close.
    rounds: u32,
    /// Pauses so far.
    done: u32,
}

impl Window {
    /// A window of at least `length` from now and at least `rounds`
    /// pauses. The count keeps the window open when other threads hold
    /// the CPUs: each yield may then let a whole job run elsewhere, and
    /// closing after a few of them would put the thread to sleep just
    /// before the answer it waits for.
    pub(crate) fn open(length: Duration, rounds: u32) -> Self {
        Window {
            opened: Instant::now(),
            length,
            rounds,
            done: 0,
        }
    }

    /// Pauses before the next poll and returns true, or returns false at
    /// once when the window is over. The first half of the rounds are CPU
    /// spin hints, the rest yields to other runnable threads, so a poller
    /// sharing a CPU with the thread it waits for lets that thread run.
    pub(crate) fn pause(&mut self) -> bool {
        if self.done >= self.rounds && self.opened.elapsed() >= self.length {
            return false;
        }
        if self.done < self.rounds / 2 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
        self.done = self.done.saturating_add(1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_ends() {
        let mut window = Window::open(Duration::from_micros(50), 3);
        let mut pauses = 0u64;
        while window.pause() {
            pauses += 1;
        }
        assert!(pauses >= 3, "a window pauses at least its rounds");
        assert!(window.opened.elapsed() >= Duration::from_micros(50));
    }

    #[test]
    fn an_empty_window_never_pauses() {
        assert!(!Window::open(Duration::ZERO, 0).pause());
    }

    #[test]
    fn rounds_keep_a_window_open_past_its_length() {
        let mut window = Window::open(Duration::ZERO, 5);
        let pauses = std::iter::from_fn(|| window.pause().then_some(())).count();
        assert_eq!(pauses, 5);
    }
}
