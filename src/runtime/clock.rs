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

    /// Moves time forward by `by` and wakes every deadline reached. An
    /// advance past what the platform's clocks can hold stops at their
    /// end instead of panicking.
    pub fn advance(&self, by: Duration) {
        let due = {
            let mut state = self.0.lock();
            if let (Some(now), Some(wall)) = (state.now.checked_add(by), state.wall.checked_add(by))
            {
                state.now = now;
                state.wall = wall;
            }
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

/// A user's clock with its panics and backward steps contained: the
/// manager wraps every injected clock in one.
///
/// A panicking `now` is answered with the last good reading plus the real
/// time since (so timers keep running); readings never go backwards (the
/// Core relies on that); a panicking `wake_at` falls back to a real timer
/// for the same time left; a panicking `wall` to the system's.
pub(crate) struct GuardedClock {
    inner: Arc<dyn Clock>,
    /// The last reading given out, and the real instant it was given.
    last: Mutex<Option<(Instant, Instant)>>,
}

impl GuardedClock {
    pub(crate) fn new(inner: Arc<dyn Clock>) -> Self {
        GuardedClock {
            inner,
            last: Mutex::new(None),
        }
    }
}

impl Clock for GuardedClock {
    fn now(&self) -> Instant {
        let reading = crate::guard::guarded("the clock's now", || self.inner.now());
        let real = Instant::now();
        let mut last = self.last.lock();
        let now = match (reading, *last) {
            (Some(r), Some((prev, _))) => r.max(prev),
            (Some(r), None) => r,
            (None, Some((prev, at))) => {
                crate::types::later(prev, real.saturating_duration_since(at))
            }
            (None, None) => real,
        };
        *last = Some((now, real));
        now
    }

    fn wake_at(&self, deadline: Instant) -> Receiver<Instant> {
        match crate::guard::guarded("the clock's wake_at", || self.inner.wake_at(deadline)) {
            Some(rx) => rx,
            None => crossbeam_channel::after(deadline.saturating_duration_since(self.now())),
        }
    }

    fn wall(&self) -> SystemTime {
        crate::guard::guarded("the clock's wall", || self.inner.wall())
            .unwrap_or_else(SystemTime::now)
    }
}

impl fmt::Display for crate::policy::banscore::DynamicBanScore {
    /// Formats like [`display_at`](crate::policy::DynamicBanScore::display_at)
    /// with the current time.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.display_at(Instant::now()).fmt(f)
    }
}

// The ban score's convenience API reads the clock, so it lives here, out
// of the pure policy layer.
impl crate::policy::banscore::DynamicBanScore {
    /// The score now; see [`score_at`](Self::score_at).
    pub fn score(&self) -> u32 {
        self.score_at(coarse_now())
    }

    /// Adds to both parts now; see [`increase_at`](Self::increase_at).
    pub fn increase(&mut self, persistent: u32, transient: u32) -> u32 {
        self.increase_at(persistent, transient, coarse_now())
    }
}

/// The current instant, good to a few milliseconds: scores work in whole
/// seconds, and the kernel's coarse monotonic clock costs a fraction of a
/// precise read. It is mapped onto `Instant` through one precise reading
/// taken at first use, so it mixes freely with `Instant::now()`.
#[cfg(target_os = "linux")]
fn coarse_now() -> Instant {
    static BASE: std::sync::OnceLock<(Instant, Duration)> = std::sync::OnceLock::new();
    let (at, coarse_at) = *BASE.get_or_init(|| (Instant::now(), coarse_clock()));
    at + coarse_clock().saturating_sub(coarse_at)
}

/// Elsewhere the precise clock is the only portable one.
#[cfg(not(target_os = "linux"))]
fn coarse_now() -> Instant {
    Instant::now()
}

#[cfg(target_os = "linux")]
fn coarse_clock() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we own; the coarse
    // monotonic clock exists on every Linux since 2.6.32.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
