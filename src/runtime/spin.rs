//! The pause between polls of a thread that looks for work a little while
//! before it sleeps: under churn the next message usually comes within
//! microseconds, and catching it awake saves a sleep and a wake-up on each
//! side, which cost far more than the polls on a small machine.
//!
//! A poll window is a length of time as well as a number of polls, and
//! the length is learnt ([`Poller`]). What a poll costs depends on the CPU
//! and the hypervisor (a spin hint takes from about 10 to about 140 CPU
//! cycles across x86 models): on one of our machines a spin hint took
//! 12 ns and a yield 0.2 µs, so a fixed 64 polls lasted about 7 µs,
//! shorter than the other thread's answer, and both threads fell asleep
//! between messages (w2 ran at a third of its rate). A fixed 30 µs window
//! fixes that but spends up to 30 µs of CPU on every wake-up whose next
//! message is far off (the kernel round trip of a real TCP dial, the
//! timers of a quiet node). So each thread widens its window to the gaps
//! it sees when they are short and narrows it when they are long.

use std::time::{Duration, Instant};

/// The longest a learnt window grows: work that comes further apart than
/// this is not worth polling for.
const MAX_WINDOW: Duration = Duration::from_micros(50);

/// The window length of one polling thread, learnt from the gaps between
/// its wake-ups: a sleep that a slightly longer window would have saved
/// widens it to cover that gap, a gap longer than [`MAX_WINDOW`] halves
/// it. A window that catches work keeps its length.
pub(crate) struct Poller {
    length: Duration,
    rounds: u32,
}

impl Poller {
    /// A poller whose windows last at least `rounds` polls and start with
    /// no time part.
    pub(crate) fn new(rounds: u32) -> Self {
        Poller {
            length: Duration::ZERO,
            rounds,
        }
    }

    /// A window from now.
    pub(crate) fn open(&self) -> Window {
        Window::open(self.length, self.rounds)
    }

    /// The window opened at `opened` caught nothing and the thread slept
    /// until work came now.
    pub(crate) fn slept_since(&mut self, opened: Instant) {
        self.learn(opened.elapsed());
    }

    fn learn(&mut self, gap: Duration) {
        self.length = if gap <= MAX_WINDOW {
            (gap + gap / 4).min(MAX_WINDOW)
        } else {
            self.length / 2
        };
    }

    /// The current length (for tests).
    #[cfg(test)]
    fn length(&self) -> Duration {
        self.length
    }
}

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

    /// When the window opened.
    pub(crate) fn opened(&self) -> Instant {
        self.opened
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
    fn short_gaps_widen_the_window_and_long_ones_narrow_it() {
        let mut poller = Poller::new(8);
        assert_eq!(poller.length(), Duration::ZERO);
        poller.learn(Duration::from_micros(20));
        assert_eq!(poller.length(), Duration::from_micros(25));
        poller.learn(Duration::from_micros(48));
        assert_eq!(poller.length(), MAX_WINDOW, "never past the bound");
        poller.learn(Duration::from_millis(3));
        assert_eq!(poller.length(), MAX_WINDOW / 2);
        for _ in 0..40 {
            poller.learn(Duration::from_secs(1));
        }
        assert_eq!(
            poller.length(),
            Duration::ZERO,
            "an idle thread polls only its rounds"
        );
        assert_eq!(poller.open().rounds, 8);
    }

    #[test]
    fn rounds_keep_a_window_open_past_its_length() {
        let mut window = Window::open(Duration::ZERO, 5);
        let pauses = std::iter::from_fn(|| window.pause().then_some(())).count();
        assert_eq!(pauses, 5);
    }
}
