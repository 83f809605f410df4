//! Choosing which connections to close when there are too many.
//!
//! Trimming starts when the connection count exceeds a high watermark and
//! closes connections until the count is back at the low watermark. This
//! module only decides *which* connections go; closing them, and making
//! sure two trims never run at once, is the caller's job.
//!
//! Everything is counted in connections, not peers: a peer with three
//! connections counts three towards the watermarks and each of its
//! connections is a separate candidate.
//!
//! Protected connections and those younger than the grace period are
//! never chosen, and they do not count towards the low watermark: a trim
//! keeps `low` connections that it could have closed, on top of them. So
//! a burst of newcomers can never make a trim close settled peers (what an
//! eclipse attacker would want), and it can push the count above the high
//! watermark for up to one grace period. A hard connection limit is
//! enforced elsewhere, at accept and dial time.

use std::cmp::Reverse;
use std::fmt;
use std::time::{Duration, Instant};

use crate::policy::tags::PeerId;

/// Default time a new connection is safe from trimming.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);

/// Default minimum time between two trims.
pub const DEFAULT_SILENCE: Duration = Duration::from_secs(10);

/// One open connection, as seen by the trimmer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrimCandidate {
    /// The connection's key; returned when the connection is chosen.
    pub key: u64,
    /// The peer at the other end.
    pub peer: PeerId,
    /// Whether the remote side opened the connection.
    pub inbound: bool,
    /// When the connection opened.
    pub opened: Instant,
    /// Whether the connection must never be trimmed (protected peer or
    /// permanent request).
    pub protected: bool,
    /// The peer's total tag value; lower values are trimmed first.
    pub value: i64,
}

/// Sort key for trimming order: lowest value first, inbound before
/// outbound, youngest first, then connection key so the order is total.
pub(crate) type Rank = (i64, bool, Reverse<Instant>, u64);

/// The trimming rank of connection `key`.
pub(crate) fn rank_of(key: u64, value: i64, inbound: bool, opened: Instant) -> Rank {
    (value, !inbound, Reverse(opened), key)
}

fn rank(c: &TrimCandidate) -> Rank {
    rank_of(c.key, c.value, c.inbound, c.opened)
}

/// Whether a connection opened at `opened` is out of its grace period at
/// `now` (`opened + grace <= now`).
pub(crate) fn out_of_grace(opened: Instant, grace: Duration, now: Instant) -> bool {
    opened.checked_add(grace).is_some_and(|end| end <= now)
}

/// Whether a connection may be trimmed at `now`: not protected and out of
/// its grace period.
fn is_eligible(c: &TrimCandidate, grace: Duration, now: Instant) -> bool {
    !c.protected && out_of_grace(c.opened, grace, now)
}

/// Picks the connections to close, returning their keys in closing order.
///
/// The low watermark counts the connections that could be trimmed
/// (go-libp2p's rule): protected connections and connections still in
/// their grace period are never picked and come on top of it. So the trim
/// keeps `low_watermark` eligible connections and closes the rest of the
/// eligible ones. Settled connections are thus never closed to make room
/// for newcomers: with fewer than `low_watermark` connections out of grace
/// and unprotected, nothing is picked. `candidates` holds every open
/// connection; keys are expected to be unique.
///
/// Runs in O(n + k log k) for n candidates and k victims.
pub fn select_victims(
    candidates: &[TrimCandidate],
    low_watermark: usize,
    grace: Duration,
    now: Instant,
) -> Vec<u64> {
    let ranked: Vec<Rank> = candidates
        .iter()
        .filter(|c| is_eligible(c, grace, now))
        .map(rank)
        .collect();
    lowest_ranks(ranked, low_watermark)
}

/// The keys of all but the `low_watermark` highest of `ranked` (the
/// eligible connections), lowest rank first.
pub(crate) fn lowest_ranks(mut ranked: Vec<Rank>, low_watermark: usize) -> Vec<u64> {
    let excess = ranked.len().saturating_sub(low_watermark);
    if excess == 0 {
        return Vec::new();
    }
    // Only the `excess` lowest ranks matter: partition them out in linear
    // time and sort just that prefix.
    if ranked.len() > excess {
        ranked.select_nth_unstable(excess - 1);
        ranked.truncate(excess);
    }
    ranked.sort_unstable();
    ranked.into_iter().map(|(_, _, _, key)| key).collect()
}

/// An invalid [`TrimPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrimPolicyError {
    /// The high watermark is zero, which would trim every connection.
    ZeroHighWatermark,
    /// The low watermark is above the high watermark.
    LowAboveHigh {
        /// The low watermark given.
        low: usize,
        /// The high watermark given.
        high: usize,
    },
}

impl fmt::Display for TrimPolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrimPolicyError::ZeroHighWatermark => {
                f.write_str("trim high watermark must be at least 1")
            }
            TrimPolicyError::LowAboveHigh { low, high } => write!(
                f,
                "trim low watermark ({low}) must not exceed the high watermark ({high})"
            ),
        }
    }
}

impl std::error::Error for TrimPolicyError {}

/// When to trim and how far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrimPolicy {
    /// Trimming starts when the connection count exceeds this.
    pub high_watermark: usize,
    /// Trimming closes connections until this many remain.
    pub low_watermark: usize,
    /// New connections are safe from trimming for this long.
    pub grace: Duration,
    /// Minimum time between two trims.
    pub silence: Duration,
}

impl TrimPolicy {
    /// Creates a validated policy with [`DEFAULT_GRACE`] and
    /// [`DEFAULT_SILENCE`]. The low watermark comes first.
    ///
    /// ```
    /// use connmgr::policy::{TrimCandidate, TrimPolicy};
    /// use std::time::{Duration, Instant};
    ///
    /// let now = Instant::now();
    /// let old = now - Duration::from_secs(600);
    /// let policy = TrimPolicy::new(1, 2).unwrap();
    /// let cand = |key, value| TrimCandidate {
    ///     key,
    ///     peer: format!("p{key}").as_str().into(),
    ///     inbound: true,
    ///     opened: old,
    ///     protected: false,
    ///     value,
    /// };
    /// let all = [cand(1, 5), cand(2, -1), cand(3, 9)];
    /// assert!(policy.should_trim(all.len(), None, now));
    /// // Lowest value first, down to the low watermark.
    /// assert_eq!(policy.select(&all, now), vec![2, 1]);
    /// ```
    pub fn new(low_watermark: usize, high_watermark: usize) -> Result<Self, TrimPolicyError> {
        let policy = TrimPolicy {
            high_watermark,
            low_watermark,
            grace: DEFAULT_GRACE,
            silence: DEFAULT_SILENCE,
        };
        policy.validate()?;
        Ok(policy)
    }

    /// Returns the policy with another grace period.
    pub fn with_grace(self, grace: Duration) -> Self {
        TrimPolicy { grace, ..self }
    }

    /// Returns the policy with another silence period.
    pub fn with_silence(self, silence: Duration) -> Self {
        TrimPolicy { silence, ..self }
    }

    /// Checks `high_watermark > 0` and `low_watermark <= high_watermark`;
    /// needed after editing the public fields directly.
    pub fn validate(&self) -> Result<(), TrimPolicyError> {
        if self.high_watermark == 0 {
            return Err(TrimPolicyError::ZeroHighWatermark);
        }
        if self.low_watermark > self.high_watermark {
            return Err(TrimPolicyError::LowAboveHigh {
                low: self.low_watermark,
                high: self.high_watermark,
            });
        }
        Ok(())
    }

    /// Whether to trim now: `count` exceeds the high watermark and at
    /// least `silence` has passed since the last trim (if any).
    pub fn should_trim(&self, count: usize, last_trim: Option<Instant>, now: Instant) -> bool {
        count > self.high_watermark
            && last_trim.is_none_or(|last| now.saturating_duration_since(last) >= self.silence)
    }

    /// [`select_victims`] with this policy's low watermark and grace.
    pub fn select(&self, candidates: &[TrimCandidate], now: Instant) -> Vec<u64> {
        select_victims(candidates, self.low_watermark, self.grace, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);
    const GRACE: Duration = Duration::from_secs(60);

    /// An unprotected candidate of peer `p<key>` opened at `t0 + opened_s`.
    fn cand(key: u64, value: i64, inbound: bool, t0: Instant, opened_s: u64) -> TrimCandidate {
        TrimCandidate {
            key,
            peer: PeerId::from(format!("p{key}")),
            inbound,
            opened: t0 + Duration::from_secs(opened_s),
            protected: false,
            value,
        }
    }

    /// Deterministic pseudo-random numbers (64-bit LCG, top bits).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, bound: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % bound
        }
    }

    fn random_candidates(n: usize, seed: u64, t0: Instant) -> Vec<TrimCandidate> {
        let mut rng = Lcg(seed);
        (0..n as u64)
            .map(|key| {
                let mut c = cand(
                    key,
                    rng.next(20) as i64,
                    rng.next(2) == 0,
                    t0,
                    rng.next(200),
                );
                c.protected = rng.next(10) == 0;
                c
            })
            .collect()
    }

    /// Reference answer: full sort of the eligible candidates.
    fn naive(cands: &[TrimCandidate], low: usize, grace: Duration, now: Instant) -> Vec<u64> {
        let mut eligible: Vec<&TrimCandidate> = cands
            .iter()
            .filter(|c| is_eligible(c, grace, now))
            .collect();
        eligible.sort_by_key(|c| rank(c));
        let excess = eligible.len().saturating_sub(low);
        eligible.iter().take(excess).map(|c| c.key).collect()
    }

    #[test]
    fn nothing_is_trimmed_at_or_below_low_watermark() {
        let t0 = Instant::now();
        let now = t0 + 1000 * SEC;
        let cands: Vec<_> = (0..5).map(|k| cand(k, 0, true, t0, 0)).collect();
        assert!(select_victims(&cands, 5, GRACE, now).is_empty());
        assert!(select_victims(&cands, 8, GRACE, now).is_empty());
        assert!(select_victims(&[], 0, GRACE, now).is_empty());
    }

    #[test]
    fn trims_exactly_down_to_low_watermark() {
        let t0 = Instant::now();
        let now = t0 + 1000 * SEC;
        let cands: Vec<_> = (0..10).map(|k| cand(k, k as i64, false, t0, 0)).collect();
        assert_eq!(select_victims(&cands, 7, GRACE, now), vec![0, 1, 2]);
        assert_eq!(select_victims(&cands, 0, GRACE, now).len(), 10);
    }

    #[test]
    fn protected_and_grace_connections_survive_even_above_low() {
        let t0 = Instant::now();
        let now = t0 + 100 * SEC;
        let mut cands = vec![
            cand(1, 0, true, t0, 0),
            cand(2, 0, true, t0, 0),
            cand(3, 0, true, t0, 50), // opened 50 s ago: in grace
            cand(4, 9, true, t0, 0),
        ];
        cands[0].protected = true;
        assert_eq!(select_victims(&cands, 0, GRACE, now), vec![2, 4]);
    }

    #[test]
    fn grace_ends_exactly_at_opened_plus_grace() {
        let t0 = Instant::now();
        let cands = vec![cand(1, 0, true, t0, 0)];
        assert!(select_victims(&cands, 0, GRACE, t0 + GRACE - Duration::from_nanos(1)).is_empty());
        assert_eq!(select_victims(&cands, 0, GRACE, t0 + GRACE), vec![1]);
    }

    #[test]
    fn lower_value_is_trimmed_first() {
        let t0 = Instant::now();
        let now = t0 + 1000 * SEC;
        let cands = vec![
            cand(1, 50, true, t0, 0),
            cand(2, -5, false, t0, 0),
            cand(3, 10, true, t0, 0),
            cand(4, 0, false, t0, 0),
        ];
        assert_eq!(select_victims(&cands, 1, GRACE, now), vec![2, 4, 3]);
    }

    #[test]
    fn inbound_goes_before_outbound_at_equal_value() {
        let t0 = Instant::now();
        let now = t0 + 1000 * SEC;
        let cands = vec![
            cand(1, 5, false, t0, 100), // younger, but outbound
            cand(2, 5, true, t0, 0),
            cand(3, 4, false, t0, 0),
        ];
        assert_eq!(select_victims(&cands, 1, GRACE, now), vec![3, 2]);
    }

    #[test]
    fn youngest_goes_first_then_key_breaks_ties() {
        let t0 = Instant::now();
        let now = t0 + 1000 * SEC;
        let cands = vec![
            cand(9, 5, true, t0, 10),
            cand(4, 5, true, t0, 300),
            cand(7, 5, true, t0, 10),
            cand(1, 5, true, t0, 200),
        ];
        assert_eq!(select_victims(&cands, 0, GRACE, now), vec![4, 1, 7, 9]);
    }

    #[test]
    fn counts_connections_not_peers() {
        let t0 = Instant::now();
        let now = t0 + 1000 * SEC;
        let busy = PeerId::from("busy");
        // One peer with three connections plus one other peer: four
        // connections against a low watermark of two.
        let mut cands: Vec<_> = (1..=3)
            .map(|k| TrimCandidate {
                peer: busy.clone(),
                ..cand(k, 1, true, t0, k)
            })
            .collect();
        cands.push(cand(4, 100, true, t0, 0));
        assert_eq!(select_victims(&cands, 2, GRACE, now), vec![3, 2]);
    }

    #[test]
    fn ten_thousand_candidates_yield_exactly_count_minus_low() {
        let t0 = Instant::now();
        let now = t0 + 1000 * SEC;
        let cands: Vec<_> = (0..10_000u64)
            .map(|k| cand(k, (k % 97) as i64, k % 3 == 0, t0, k % 500))
            .collect();
        let victims = select_victims(&cands, 2_500, GRACE, now);
        assert_eq!(victims.len(), 7_500);
        assert_eq!(victims, naive(&cands, 2_500, GRACE, now));
    }

    #[test]
    fn matches_full_sort_reference_on_random_inputs() {
        let t0 = Instant::now();
        for seed in 0..200 {
            let n = (seed as usize * 7) % 60;
            let cands = random_candidates(n, seed, t0);
            let low = (seed as usize * 13) % 50;
            let now = t0 + Duration::from_secs(100 + seed % 150);
            let got = select_victims(&cands, low, GRACE, now);
            assert_eq!(got, naive(&cands, low, GRACE, now), "seed {seed}");
            assert!(
                n - got.len() >= low.min(n),
                "seed {seed}: below low watermark"
            );
        }
    }

    #[test]
    fn policy_validation_errors() {
        assert_eq!(
            TrimPolicy::new(0, 0),
            Err(TrimPolicyError::ZeroHighWatermark)
        );
        assert_eq!(
            TrimPolicy::new(5, 4),
            Err(TrimPolicyError::LowAboveHigh { low: 5, high: 4 })
        );
        let policy = TrimPolicy::new(4, 4).unwrap();
        assert_eq!(
            (policy.grace, policy.silence),
            (DEFAULT_GRACE, DEFAULT_SILENCE)
        );
        let edited = TrimPolicy {
            low_watermark: 10,
            ..policy
        };
        assert!(edited.validate().is_err());
        let text = TrimPolicyError::LowAboveHigh { low: 5, high: 4 }.to_string();
        assert!(text.contains('5') && text.contains('4'));
        assert!(TrimPolicyError::ZeroHighWatermark
            .to_string()
            .contains("at least 1"));
    }

    #[test]
    fn should_trim_needs_excess_and_silence() {
        let t0 = Instant::now();
        let policy = TrimPolicy::new(5, 10).unwrap().with_silence(10 * SEC);
        assert!(!policy.should_trim(10, None, t0), "at high watermark");
        assert!(policy.should_trim(11, None, t0));
        assert!(!policy.should_trim(11, Some(t0), t0 + 9 * SEC));
        assert!(policy.should_trim(11, Some(t0), t0 + 10 * SEC));
        assert!(
            !policy.should_trim(11, Some(t0 + SEC), t0),
            "last trim in the future"
        );
    }

    #[test]
    fn policy_select_uses_its_low_watermark_and_grace() {
        let t0 = Instant::now();
        let policy = TrimPolicy::new(1, 2).unwrap().with_grace(10 * SEC);
        let cands = vec![
            cand(1, 0, true, t0, 0),
            cand(2, 1, true, t0, 0),
            cand(3, 0, true, t0, 95),
        ];
        // Two settled connections against a low watermark of one: the one
        // in grace neither goes nor counts.
        assert_eq!(policy.select(&cands, t0 + 100 * SEC), vec![1]);
    }

    /// Low 2, high 4, grace 60 s: two connections up for two minutes, then
    /// three newcomers. The settled pair stays, and so do the newcomers.
    #[test]
    fn newcomers_in_grace_never_push_out_settled_connections() {
        let t0 = Instant::now();
        let now = t0 + 120 * SEC;
        let mut cands = vec![cand(1, 0, true, t0, 0), cand(2, 0, true, t0, 0)];
        cands.extend((3..=5).map(|k| cand(k, 0, true, t0, 119)));
        assert!(select_victims(&cands, 2, GRACE, now).is_empty());
        // Once the newcomers settle, the lowest-ranked three go.
        let later = t0 + 180 * SEC;
        assert_eq!(select_victims(&cands, 2, GRACE, later), vec![3, 4, 5]);
    }

    /// Protected connections do not count towards the low watermark
    /// (go-libp2p's single-tag protection case): 21 connections, five
    /// protected, low 19: the 16 others are all below it, so none goes.
    #[test]
    fn protected_connections_do_not_count_towards_low() {
        let t0 = Instant::now();
        let now = t0 + 1000 * SEC;
        let mut cands: Vec<_> = (0..21).map(|k| cand(k, 20, true, t0, 0)).collect();
        for c in &mut cands[..5] {
            c.protected = true;
            c.value = -100;
        }
        assert!(select_victims(&cands, 19, GRACE, now).is_empty());
        // With a low watermark of 10, six of the sixteen unprotected go.
        assert_eq!(select_victims(&cands, 10, GRACE, now).len(), 6);
    }
}
