//! Injected time. The handler thread reads `now` and waits for deadlines
//! only through a [`Clock`], so tests can drive retry backoff and
//! throttling with a [`ManualClock`] instead of waiting in real time.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

/// A source of time for the manager.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;

    /// A channel that receives one message once `deadline` has been
    /// reached on this clock.
    fn wake_at(&self, deadline: Instant) -> Receiver<Instant>;

    /// The wall-clock time that corresponds to [`now`](Self::now), used
    /// only to write expiry times into files.
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The real clock: `Instant::now()` and crossbeam's timer channels.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wake_at(&self, deadline: Instant) -> Receiver<Instant> {
        crossbeam_channel::at(deadline)
    }
}

/// A clock that moves only when told to. Cloning shares the same time.
///
/// ```
/// use connmgr::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let start = clock.now();
/// let alarm = clock.wake_at(start + Duration::from_secs(5));
/// clock.advance(Duration::from_secs(4));
/// assert!(alarm.try_recv().is_err());
/// clock.advance(Duration::from_secs(1));
/// assert!(alarm.try_recv().is_ok());
/// ```
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<ManualState>>);

struct ManualState {
    now: Instant,
    wall: SystemTime,
    waiters: Vec<(Instant, Sender<Instant>)>,
}

impl ManualClock {
    /// A manual clock starting at the current real instant.
    pub fn new() -> Self {
        ManualClock(Arc::new(Mutex::new(ManualState {
            now: Instant::now(),
            wall: SystemTime::now(),
            waiters: Vec::new(),
        })))
    }

    /// Moves time forward by `by` and wakes every deadline reached.
    pub fn advance(&self, by: Duration) {
        let due = {
            let mut state = self.0.lock();
            state.now += by;
            state.wall += by;
            let now = state.now;
            let (due, pending): (Vec<_>, Vec<_>) =
                state.waiters.drain(..).partition(|(at, _)| *at <= now);
            state.waiters = pending;
            due.into_iter().map(move |(_, tx)| (now, tx))
        };
        for (now, tx) in due {
            // The waiter may have moved on to another deadline: fine.
            let _ = tx.send(now);
        }
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.0.lock();
        f.debug_struct("ManualClock")
            .field("now", &state.now)
            .field("waiters", &state.waiters.len())
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.0.lock().now
    }

    fn wall(&self) -> SystemTime {
        self.0.lock().wall
    }

    fn wake_at(&self, deadline: Instant) -> Receiver<Instant> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut state = self.0.lock();
        if deadline <= state.now {
            let _ = tx.send(state.now);
        } else {
            state.waiters.push((deadline, tx));
        }
        rx
    }
}
