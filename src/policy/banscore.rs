//! A misbehaviour score with a persistent part and a decaying part.
//!
//! The arithmetic follows btcd's dynamic ban score so that thresholds tuned
//! for btcd behave the same here: the transient part halves every
//! [`HALF_LIFE_SECS`] seconds and is forgotten entirely once it is older than
//! [`LIFETIME_SECS`]. Time is counted in whole seconds.

use std::f64::consts::LN_2;
use std::fmt;
use std::sync::OnceLock;
use std::time::Instant;

/// Seconds after which the transient part has decayed to half its value.
pub const HALF_LIFE_SECS: u64 = 60;

/// Age in seconds beyond which the transient part counts as zero.
pub const LIFETIME_SECS: u64 = 1800;

/// Decay constant λ in e^(−λ·t), derived from the half-life.
const LAMBDA: f64 = LN_2 / HALF_LIFE_SECS as f64;

/// Number of decay factors (one per whole second) kept in the table; younger
/// scores are by far the most common, so they skip `exp()` entirely.
const TABLE_LEN: usize = 64;

/// Decay factors e^(−λ·t) for t in 0..TABLE_LEN, filled on first use.
///
/// Filled with the same `exp()` the slow path uses, so both paths agree
/// exactly; after initialisation a read is a single acquire load.
static DECAY_TABLE: OnceLock<[f64; TABLE_LEN]> = OnceLock::new();

/// The decay factor e^(−λ·t) for an age of `secs` whole seconds.
fn decay_factor(secs: u64) -> f64 {
    match usize::try_from(secs) {
        Ok(i) if i < TABLE_LEN => DECAY_TABLE.get_or_init(build_table)[i],
        _ => exact_decay(secs),
    }
}

/// Computes e^(−λ·t) directly; used for the table and for large ages.
fn exact_decay(secs: u64) -> f64 {
    (-LAMBDA * secs as f64).exp()
}

/// Builds the table of decay factors for small ages.
fn build_table() -> [f64; TABLE_LEN] {
    let mut table = [0.0; TABLE_LEN];
    for (secs, slot) in (0u64..).zip(table.iter_mut()) {
        *slot = exact_decay(secs);
    }
    table
}

/// Age of the transient part relative to some moment, in whole seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Age {
    /// The transient part was never set; behaves like an age beyond the
    /// lifetime (btcd's zero Unix time has the same effect).
    Never,
    /// The moment lies before the last update (negative Δt).
    Negative,
    /// Whole seconds since the last update, rounded down.
    Secs(u64),
}

impl Age {
    /// Whether the transient part is too old to count.
    fn is_expired(self) -> bool {
        match self {
            Age::Never => true,
            Age::Negative => false,
            Age::Secs(s) => s > LIFETIME_SECS,
        }
    }
}

/// Converts a transient value to an integer the way Go's `uint32(f)` does for
/// in-range values; `as` saturates, so huge values cannot wrap.
fn truncate(value: f64) -> u32 {
    value as u32
}

/// A ban score made of a persistent part, which never decays, and a
/// transient part, which decays exponentially with a half-life of
/// [`HALF_LIFE_SECS`] seconds and is dropped after [`LIFETIME_SECS`] seconds.
///
/// The score is plain data (no locks, no heap); wrap it in a mutex if it is
/// shared between threads. Methods ending in `_at` take the current time
/// explicitly so that callers with their own clock, and tests, stay exact.
#[derive(Clone, Debug, Default)]
pub struct DynamicBanScore {
    persistent: u32,
    transient: f64,
    last: Option<Instant>,
}

impl DynamicBanScore {
    /// Creates a score of zero.
    ///
    /// ```
    /// use connmgr::policy::DynamicBanScore;
    /// use std::time::{Duration, Instant};
    ///
    /// let t0 = Instant::now();
    /// let mut score = DynamicBanScore::new();
    /// assert_eq!(score.increase_at(100, 50, t0), 150);
    /// // The transient part halves every minute; the persistent part stays.
    /// assert_eq!(score.score_at(t0 + Duration::from_secs(60)), 125);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Age of the transient part at `now`, in whole seconds.
    fn age(&self, now: Instant) -> Age {
        let Some(last) = self.last else {
            return Age::Never;
        };
        match now.checked_duration_since(last) {
            Some(d) => Age::Secs(d.as_secs()),
            // Less than a second early is the same whole second (as with
            // btcd's Unix seconds); it also absorbs the coarse clock's lag
            // behind `Instant::now()`.
            None if last.duration_since(now).as_secs() == 0 => Age::Secs(0),
            None => Age::Negative,
        }
    }

    /// The score at `now`: the persistent part plus the decayed transient
    /// part, truncated to an integer.
    ///
    /// As in btcd, the transient part is ignored when it is below 1, when it
    /// is older than the lifetime, or when `now` lies before its last update.
    pub fn score_at(&self, now: Instant) -> u32 {
        if self.transient < 1.0 {
            return self.persistent;
        }
        match self.age(now) {
            Age::Secs(s) if s <= LIFETIME_SECS => {
                let decayed = self.transient * decay_factor(s);
                self.persistent.saturating_add(truncate(decayed))
            }
            _ => self.persistent,
        }
    }

    /// Adds to both parts at `now` and returns the resulting score.
    ///
    /// A non-zero `transient` first decays the existing transient part to
    /// `now` (or drops it when older than the lifetime) and then restarts its
    /// clock at `now`. As in btcd, a zero `transient` leaves the transient
    /// part and its clock alone, so the returned value then includes the
    /// transient part as of its last update rather than decayed to `now`.
    /// Additions saturate at `u32::MAX` instead of overflowing.
    pub fn increase_at(&mut self, persistent: u32, transient: u32, now: Instant) -> u32 {
        self.persistent = self.persistent.saturating_add(persistent);
        if transient > 0 {
            self.add_transient(transient, now);
        }
        self.persistent.saturating_add(truncate(self.transient))
    }

    /// Decays the transient part to `now`, adds `amount` and restarts the
    /// clock; split out of `increase_at` to keep the btcd steps visible.
    fn add_transient(&mut self, amount: u32, now: Instant) {
        let age = self.age(now);
        if age.is_expired() {
            self.transient = 0.0;
        } else if let Age::Secs(s @ 1..) = age {
            // btcd skips the multiplication for values of at most 1; the
            // result is identical after truncation and saves an exp() call.
            if self.transient > 1.0 {
                self.transient *= decay_factor(s);
            }
        }
        self.transient += f64::from(amount);
        self.last = Some(now);
    }

    /// Sets both parts back to zero and forgets the last update time.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// The persistent part, which never decays.
    pub fn persistent(&self) -> u32 {
        self.persistent
    }

    /// The transient part as of its last update, before any decay.
    pub fn transient(&self) -> f64 {
        self.transient
    }

    /// When the transient part was last increased, if ever.
    pub fn last_update(&self) -> Option<Instant> {
        self.last
    }

    /// A displayable description of the score as of `now`, in the form
    /// `persistent 100 + transient 50.000 at 12s ago = 150 as of now`.
    pub fn display_at(&self, now: Instant) -> ScoreDisplay<'_> {
        ScoreDisplay { score: self, now }
    }
}

/// Describes a [`DynamicBanScore`] as of a given moment; returned by
/// [`DynamicBanScore::display_at`].
#[derive(Clone, Copy, Debug)]
pub struct ScoreDisplay<'a> {
    score: &'a DynamicBanScore,
    now: Instant,
}

impl fmt::Display for ScoreDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.score;
        write!(
            f,
            "persistent {} + transient {:.3} at ",
            s.persistent, s.transient
        )?;
        // An Instant has no absolute value to print (btcd prints a Unix
        // time), so the update time is shown relative to `now`.
        match s.age(self.now) {
            Age::Never => f.write_str("never")?,
            Age::Negative => f.write_str("a later time")?,
            Age::Secs(secs) => write!(f, "{secs}s ago")?,
        }
        write!(f, " = {} as of now", s.score_at(self.now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// The reference scenario: 100 persistent + 50 transient decays to 125
    /// after one half-life and to the persistent part after eight minutes.
    #[test]
    fn reference_vectors_decay_as_btcd() {
        let t0 = Instant::now();
        let mut s = DynamicBanScore::new();
        assert_eq!(s.increase_at(100, 50, t0), 150);
        assert_eq!(s.score_at(t0), 150);
        assert_eq!(s.score_at(t0 + secs(60)), 125);
        assert_eq!(s.score_at(t0 + secs(60 + 7 * 60)), 100);
    }

    /// A maximal transient part is still counted at exactly the lifetime
    /// (2^32−1 halved 30 times truncates to 3) and dropped one second later.
    #[test]
    fn lifetime_boundary_with_max_transient() {
        let t0 = Instant::now();
        let mut s = DynamicBanScore::new();
        assert_eq!(s.increase_at(0, u32::MAX, t0), u32::MAX);
        assert_eq!(s.score_at(t0 + secs(LIFETIME_SECS)), 3);
        assert_eq!(s.score_at(t0 + secs(LIFETIME_SECS + 1)), 0);
    }

    /// Mixing the convenience API (coarse clock) with precise instants
    /// never loses the transient part: a reading a little behind the last
    /// update counts as the same second.
    #[test]
    fn convenience_api_mixes_with_precise_instants() {
        for _ in 0..10_000 {
            let mut s = DynamicBanScore::new();
            s.increase_at(0, 50, Instant::now());
            assert_eq!(s.score(), 50);
        }
        let t0 = Instant::now() + secs(10);
        let mut s = DynamicBanScore::new();
        s.increase_at(0, 50, t0);
        assert_eq!(s.score_at(t0 - Duration::from_millis(999)), 50);
        assert_eq!(
            s.score_at(t0 - secs(1)),
            0,
            "a whole second early is before the update"
        );
    }

    /// Sub-second fractions are floored: 1799.9 s counts as 1799 s.
    #[test]
    fn age_is_floored_to_whole_seconds() {
        let t0 = Instant::now();
        let mut s = DynamicBanScore::new();
        s.increase_at(0, u32::MAX, t0);
        let just_before = t0 + secs(LIFETIME_SECS + 1) - Duration::from_millis(1);
        assert_eq!(s.score_at(just_before), 3);
        assert_eq!(s.score_at(t0 + Duration::from_millis(999)), u32::MAX);
    }

    /// The last table entry (63 s) and the first computed one (64 s) match
    /// e^(−λt) and continue smoothly.
    #[test]
    fn table_boundary_matches_exp() {
        for t in [0u64, 1, 62, 63, 64, 65] {
            let expected = (-(t as f64) * LN_2 / 60.0).exp();
            assert!((decay_factor(t) - expected).abs() < 1e-15, "t = {t}");
        }
        assert!(decay_factor(63) > decay_factor(64));
        let t0 = Instant::now();
        let mut s = DynamicBanScore::new();
        s.increase_at(0, 1_000_000, t0);
        let at = |t: u64| s.score_at(t0 + secs(t));
        assert_eq!(at(63), truncate(1_000_000.0 * exact_decay(63)));
        assert_eq!(at(64), truncate(1_000_000.0 * exact_decay(64)));
        assert_eq!(at(63), 482_968);
        assert_eq!(at(64), 477_420);
    }

    /// Increasing the transient part decays the old value first, using the
    /// table for short ages and exp() for long ones.
    #[test]
    fn increase_decays_existing_transient() {
        let t0 = Instant::now();
        let mut s = DynamicBanScore::new();
        s.increase_at(0, 100, t0);
        assert_eq!(s.increase_at(0, 10, t0 + secs(60)), 60);
        assert_eq!(s.increase_at(0, 10, t0 + secs(60 + 120)), 25);
        assert_eq!(s.last_update(), Some(t0 + secs(180)));
    }

    /// A transient part older than the lifetime is discarded before adding.
    #[test]
    fn increase_after_lifetime_starts_over() {
        let t0 = Instant::now();
        let mut s = DynamicBanScore::new();
        s.increase_at(7, 1000, t0);
        assert_eq!(s.increase_at(0, 5, t0 + secs(LIFETIME_SECS + 1)), 12);
        assert_eq!(s.transient(), 5.0);
    }

    /// At exactly the lifetime an increase still decays the old value
    /// (2^32−1 → just under 4); one second later it starts from zero.
    #[test]
    fn increase_at_lifetime_boundary() {
        let t0 = Instant::now();
        let mut kept = DynamicBanScore::new();
        kept.increase_at(0, u32::MAX, t0);
        let mut dropped = kept.clone();
        assert_eq!(kept.increase_at(0, 1, t0 + secs(LIFETIME_SECS)), 4);
        assert_eq!(dropped.increase_at(0, 1, t0 + secs(LIFETIME_SECS + 1)), 1);
    }

    /// A zero transient increment only touches the persistent part and does
    /// not decay or restart the transient clock (btcd behaviour).
    #[test]
    fn zero_transient_leaves_clock_alone() {
        let t0 = Instant::now();
        let mut s = DynamicBanScore::new();
        s.increase_at(0, 40, t0);
        assert_eq!(s.increase_at(2, 0, t0 + secs(60)), 42);
        assert_eq!(s.last_update(), Some(t0));
        assert_eq!(s.score_at(t0 + secs(60)), 22);
    }

    /// A time before the last update neither decays on increase nor counts
    /// the transient part in the score.
    #[test]
    fn negative_age_is_handled_like_btcd() {
        let t0 = Instant::now() + secs(10);
        let mut s = DynamicBanScore::new();
        s.increase_at(5, 20, t0);
        let earlier = t0 - secs(5);
        assert_eq!(s.score_at(earlier), 5);
        assert_eq!(s.increase_at(0, 1, earlier), 26);
        assert_eq!(s.last_update(), Some(earlier));
    }

    /// Additions saturate at u32::MAX rather than overflowing or panicking.
    #[test]
    fn saturates_near_u32_max() {
        let t0 = Instant::now();
        let mut s = DynamicBanScore::new();
        assert_eq!(s.increase_at(u32::MAX - 1, 0, t0), u32::MAX - 1);
        assert_eq!(s.increase_at(5, 0, t0), u32::MAX);
        assert_eq!(s.persistent(), u32::MAX);
        assert_eq!(s.increase_at(0, u32::MAX, t0), u32::MAX);
        assert_eq!(s.increase_at(0, u32::MAX, t0), u32::MAX);
        assert_eq!(s.score_at(t0 + secs(10)), u32::MAX);
    }

    /// Reset returns the score to a fresh state.
    #[test]
    fn reset_clears_everything() {
        let t0 = Instant::now();
        let mut s = DynamicBanScore::new();
        s.increase_at(10, 10, t0);
        s.reset();
        assert_eq!(s.score_at(t0), 0);
        assert_eq!(s.persistent(), 0);
        assert_eq!(s.transient(), 0.0);
        assert_eq!(s.last_update(), None);
    }

    /// A fresh score is zero, and a transient part below 1 never counts.
    #[test]
    fn fresh_and_tiny_scores() {
        let t0 = Instant::now();
        let s = DynamicBanScore::default();
        assert_eq!(s.score_at(t0), 0);
        let mut s = DynamicBanScore::new();
        s.increase_at(3, 1, t0);
        assert_eq!(s.score_at(t0 + secs(1)), 3);
    }

    /// The text form shows both parts, the update age and the score.
    #[test]
    fn display_format() {
        let t0 = Instant::now();
        let mut s = DynamicBanScore::new();
        assert_eq!(
            s.display_at(t0).to_string(),
            "persistent 0 + transient 0.000 at never = 0 as of now"
        );
        s.increase_at(100, 50, t0);
        assert_eq!(
            s.display_at(t0 + secs(60)).to_string(),
            "persistent 100 + transient 50.000 at 60s ago = 125 as of now"
        );
        assert!(s
            .to_string()
            .starts_with("persistent 100 + transient 50.000 at "));
    }

    /// The type stays small and heap-free so that one per peer is cheap.
    #[test]
    fn is_small() {
        assert!(std::mem::size_of::<DynamicBanScore>() <= 32);
    }
}
