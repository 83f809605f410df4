//! Peer tags, protection and decaying tags.
//!
//! A [`PeerTags`] store gives every peer a value: the sum of named tags set
//! by the application (for example "useful block relay: 20") and of
//! decaying tags whose values shrink on a schedule unless they are bumped.
//! The trimmer closes connections of low-value peers first. Protection is a
//! separate, per-tag flag that keeps a peer's connections from being
//! trimmed at all.
//!
//! The store is a plain data structure: it never reads a clock and never
//! spawns anything. Every operation that depends on time takes `now`, and
//! [`PeerTags::next_decay_deadline`] tells the caller when to call
//! [`PeerTags::tick`] next.
//!
//! # Lifetime of a peer's data
//!
//! Tags live with the peer's connection set: when the last known connection
//! of a peer closes ([`PeerTags::disconnected`]) its tags and decaying tag
//! values are forgotten, unless the peer is protected at that moment.
//! Protection itself is kept in its own map and survives disconnection.
//! Tagging a peer that has no connection creates its entry too; the Core's
//! peer book bounds such entries and forgets them once they are old (it
//! keeps them in a queue by age, see [`PeerTags::idle_since`]), so tagging
//! arbitrary peers cannot grow the store forever.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::guard::guarded;
use crate::policy::peerconns::PeerConns;
use crate::policy::tagset::TagSet;

/// The identity of a peer: a cheap to clone, string-like key.
///
/// The manager uses the peer's address text by default, but any stable
/// string works.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(Arc<str>);

impl PeerId {
    /// Creates a peer id from any string-like value.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        PeerId(id.into())
    }

    /// Returns the id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for PeerId {
    fn from(id: &str) -> Self {
        PeerId(Arc::from(id))
    }
}

impl From<String> for PeerId {
    fn from(id: String) -> Self {
        PeerId(Arc::from(id))
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({:?})", &*self.0)
    }
}

impl AsRef<str> for PeerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

// Hash, Eq and Ord of `Arc<str>` all delegate to `str`, so maps keyed by
// `PeerId` can be queried with a plain `&str`.
impl Borrow<str> for PeerId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Errors from the decaying tag operations of [`PeerTags`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TagError {
    /// A decaying tag with this name is already registered.
    DuplicateDecayingTag(String),
    /// The decaying tag was registered with a zero decay interval.
    ZeroInterval(String),
    /// No decaying tag with this name is registered.
    UnknownDecayingTag(String),
    /// As many decaying tags as allowed are registered (the number given).
    TooManyDecayingTags(usize),
}

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagError::DuplicateDecayingTag(name) => write!(
                f,
                "decaying tag {name:?} is already registered; use another name or unregister it first"
            ),
            TagError::ZeroInterval(name) => write!(
                f,
                "decaying tag {name:?} needs a non-zero decay interval"
            ),
            TagError::UnknownDecayingTag(name) => write!(
                f,
                "no decaying tag named {name:?} is registered; call register_decaying first"
            ),
            TagError::TooManyDecayingTags(max) => write!(
                f,
                "{max} decaying tags are registered, the most allowed; close one first"
            ),
        }
    }
}

impl std::error::Error for TagError {}

/// The closure behind a [`DecayFn`]: `(value, last_bump, at) -> (new, remove)`.
type DecayClosure = dyn Fn(i64, Instant, Instant) -> (i64, bool) + Send + Sync;

/// How a decaying tag's value changes once per interval.
///
/// The function receives the current value, the instant the value was last
/// bumped and the instant of the decay step, and returns the new value and
/// whether to remove the value from the peer altogether.
pub struct DecayFn(Box<DecayClosure>);

impl DecayFn {
    /// Wraps a custom decay function `(value, last_bump, at) -> (new, remove)`.
    pub fn new<F>(f: F) -> Self
    where
        F: Fn(i64, Instant, Instant) -> (i64, bool) + Send + Sync + 'static,
    {
        DecayFn(Box::new(f))
    }

    /// Never changes or removes the value.
    pub fn none() -> Self {
        DecayFn::new(|value, _, _| (value, false))
    }

    /// Subtracts `amount` every interval; removes the value once it is
    /// zero or negative.
    pub fn fixed(amount: i64) -> Self {
        DecayFn::new(move |value: i64, _, _| {
            let next = value.saturating_sub(amount);
            (next, next <= 0)
        })
    }

    /// Multiplies the value by `coef` every interval, rounding down;
    /// removes the value once it is zero or negative.
    ///
    /// A `coef` of NaN yields zero, which removes the value.
    pub fn linear(coef: f64) -> Self {
        DecayFn::new(move |value: i64, _, _| {
            // `as` saturates out-of-range floats and maps NaN to zero.
            let next = (value as f64 * coef).floor() as i64;
            (next, next <= 0)
        })
    }

    /// Keeps the value unchanged, but removes it once it has not been
    /// bumped for `after`.
    pub fn expire_when_inactive(after: Duration) -> Self {
        DecayFn::new(move |value, last_bump, at: Instant| {
            (value, at.saturating_duration_since(last_bump) >= after)
        })
    }

    /// Runs the function; a panic keeps the value as it was.
    fn apply(&self, value: i64, last_bump: Instant, at: Instant) -> (i64, bool) {
        guarded("decay function", || (self.0)(value, last_bump, at)).unwrap_or((value, false))
    }
}

impl fmt::Debug for DecayFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DecayFn(..)")
    }
}

/// The closure behind a [`BumpFn`]: `(current, delta) -> new`.
type BumpClosure = dyn Fn(i64, i64) -> i64 + Send + Sync;

/// How a bump combines a decaying tag's current value with a delta.
///
/// A peer that holds no value for the tag yet starts from zero.
pub struct BumpFn(Box<BumpClosure>);

impl BumpFn {
    /// Wraps a custom bump function `(current, delta) -> new`.
    pub fn new<F>(f: F) -> Self
    where
        F: Fn(i64, i64) -> i64 + Send + Sync + 'static,
    {
        BumpFn(Box::new(f))
    }

    /// Adds the delta to the current value (saturating).
    pub fn sum() -> Self {
        BumpFn::new(|current: i64, delta| current.saturating_add(delta))
    }

    /// Adds the delta, then clamps the result into `min..=max`.
    ///
    /// If `min > max`, the result is `max`.
    pub fn sum_bounded(min: i64, max: i64) -> Self {
        BumpFn::new(move |current: i64, delta| current.saturating_add(delta).max(min).min(max))
    }

    /// Replaces the current value with the delta.
    pub fn overwrite() -> Self {
        BumpFn::new(|_, delta| delta)
    }

    /// Runs the function; a panic keeps the value as it was.
    fn apply(&self, current: i64, delta: i64) -> i64 {
        guarded("bump function", || (self.0)(current, delta)).unwrap_or(current)
    }
}

impl fmt::Debug for BumpFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BumpFn(..)")
    }
}

/// A snapshot of what the store knows about one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct TagInfo {
    /// When the peer was first tagged or connected (since it was last
    /// forgotten).
    #[cfg_attr(feature = "serde", serde(skip))]
    pub first_seen: Instant,
    /// `first_seen` on the wall clock, in infos the manager hands out
    /// (`Handle::tag_info`); `None` from a bare tag store.
    pub first_seen_wall: Option<SystemTime>,
    /// The peer's total value: all tags plus all decaying tag values,
    /// saturated to the `i64` range.
    pub value: i64,
    /// Every tag and the current value of every decaying tag. If a plain
    /// tag and a decaying tag share a name, the entry holds their sum.
    pub tags: HashMap<String, i64>,
    /// The peer's open connections as `(connection key, start)`, sorted by
    /// key.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub conns: Vec<(u64, Instant)>,
}

/// At most this many decay passes run for one tag in one catch-up, so a
/// tiny interval after a long pause cannot stall the caller. Intervals
/// beyond it are skipped, keeping the tag's schedule aligned.
const MAX_CATCH_UP_STEPS: u128 = 4096;

const NANOS_PER_SEC: u128 = 1_000_000_000;

#[derive(Debug)]
struct PeerInfo {
    first_seen: Instant,
    // Exact running sum of tags and decaying values; i128 cannot overflow
    // for any realistic number of i64 terms, so removals stay exact.
    total: i128,
    tags: TagSet,
    conns: PeerConns,
}

impl PeerInfo {
    fn new(now: Instant) -> Self {
        PeerInfo {
            first_seen: now,
            total: 0,
            tags: TagSet::default(),
            conns: PeerConns::default(),
        }
    }

    /// Sets a tag and returns its previous value (zero if absent); a new
    /// tag takes an owned name as it is, without a copy.
    fn set_tag(&mut self, name: impl AsRef<str> + Into<String>, value: i64) -> i64 {
        let old = self.tags.set(name, value).unwrap_or(0);
        self.adjust(old, value);
        old
    }

    /// Moves the cached total from one term value to another.
    fn adjust(&mut self, old: i64, new: i64) {
        self.total += i128::from(new) - i128::from(old);
    }

    fn value(&self) -> i64 {
        saturate(self.total)
    }
}

fn saturate(total: i128) -> i64 {
    total.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

#[derive(Debug)]
struct DecayingValue {
    value: i64,
    last_bump: Instant,
}

#[derive(Debug)]
struct DecayingTag {
    interval: Duration,
    decay: DecayFn,
    bump: BumpFn,
    /// The instant of the last decay step (registration at first).
    last_decay: Instant,
    values: HashMap<PeerId, DecayingValue>,
}

impl DecayingTag {
    fn next_due(&self) -> Option<Instant> {
        self.last_decay.checked_add(self.interval)
    }

    /// Applies one decay pass per interval elapsed up to `now`.
    fn catch_up(&mut self, peers: &mut HashMap<PeerId, PeerInfo>, now: Instant) {
        let steps =
            now.saturating_duration_since(self.last_decay).as_nanos() / self.interval.as_nanos();
        if steps == 0 {
            return;
        }
        let mut at = self.last_decay;
        for _ in 0..steps.min(MAX_CATCH_UP_STEPS) {
            if self.values.is_empty() {
                break;
            }
            at += self.interval;
            self.decay_all(peers, at);
        }
        self.last_decay += scaled(self.interval, steps);
    }

    /// Runs the decay function once over every peer's value.
    fn decay_all(&mut self, peers: &mut HashMap<PeerId, PeerInfo>, at: Instant) {
        let decay = &self.decay;
        self.values.retain(|peer, held| {
            let (next, remove) = decay.apply(held.value, held.last_bump, at);
            let next = if remove { 0 } else { next };
            if let Some(info) = peers.get_mut(peer) {
                info.adjust(held.value, next);
            }
            held.value = next;
            !remove
        });
    }

    /// Drops every value, subtracting each from its peer's total.
    fn clear(&mut self, peers: &mut HashMap<PeerId, PeerInfo>) {
        for (peer, held) in self.values.drain() {
            if let Some(info) = peers.get_mut(&peer) {
                info.adjust(held.value, 0);
            }
        }
    }
}

/// `interval * steps`, where the product is known to fit in a `Duration`
/// because it does not exceed an elapsed time.
fn scaled(interval: Duration, steps: u128) -> Duration {
    let nanos = interval.as_nanos() * steps;
    Duration::new(
        (nanos / NANOS_PER_SEC) as u64,
        (nanos % NANOS_PER_SEC) as u32,
    )
}

/// Per-peer tags, decaying tags, connections and protection.
///
/// Every peer gets a value: the sum of named tags set by the application
/// (for example "useful block relay: 20") and of decaying tags whose values
/// shrink on a schedule unless they are bumped. The trimmer closes
/// connections of low-value peers first. Protection is a separate, per-tag
/// flag that keeps a peer's connections from being trimmed at all.
///
/// The store never reads a clock: every operation that depends on time
/// takes `now`, and [`next_decay_deadline`](Self::next_decay_deadline)
/// tells the caller when to call [`tick`](Self::tick) next.
///
/// Tags live with the peer's connection set: when the last known
/// connection of a peer closes ([`disconnected`](Self::disconnected)) its
/// tags and decaying values are forgotten, unless the peer is protected at
/// that moment. Protection is kept in its own map and survives
/// disconnection. Tagging a peer that has no connection creates its entry
/// too; it stays until its tags are removed
/// ([`forget_if_idle`](Self::forget_if_idle)) or the owner forgets it
/// ([`forget`](Self::forget)); the Core's peer book does so for entries
/// idle too long or past its bound.
#[derive(Debug, Default)]
pub struct PeerTags {
    peers: HashMap<PeerId, PeerInfo>,
    protected: HashMap<PeerId, HashSet<String>>,
    decaying: HashMap<String, DecayingTag>,
}

impl PeerTags {
    /// Creates an empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of peers with tag data (connected, tagged or kept by
    /// protection).
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer has tag data.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Whether any peer is protected.
    pub fn has_protections(&self) -> bool {
        !self.protected.is_empty()
    }

    /// Every peer the store holds data for.
    pub fn peer_ids(&self) -> impl Iterator<Item = &PeerId> {
        self.peers.keys()
    }

    /// Every connection the store knows, with its peer's total value:
    /// one pass over the peers, with no lookup by peer id.
    pub fn connection_values(&self) -> impl Iterator<Item = (u64, i64)> + '_ {
        self.peers
            .values()
            .flat_map(|info| info.conns.iter().map(move |(key, _)| (key, info.value())))
    }

    /// Whether the store holds data for `peer`.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    // An associated function rather than a method so callers can keep
    // other fields of `self` borrowed.
    fn entry<'a>(
        peers: &'a mut HashMap<PeerId, PeerInfo>,
        peer: &PeerId,
        now: Instant,
    ) -> &'a mut PeerInfo {
        peers
            .entry(peer.clone())
            .or_insert_with(|| PeerInfo::new(now))
    }

    /// Sets tag `name` of `peer` to `value`, replacing any previous value.
    /// `name` may be a `&str` or an owned `String` (kept without a copy).
    pub fn tag(
        &mut self,
        peer: &PeerId,
        name: impl AsRef<str> + Into<String>,
        value: i64,
        now: Instant,
    ) {
        Self::entry(&mut self.peers, peer, now).set_tag(name, value);
    }

    /// Removes tag `name` from `peer`, returning its value if it was set.
    pub fn untag(&mut self, peer: &PeerId, name: &str) -> Option<i64> {
        let info = self.peers.get_mut(peer)?;
        let old = info.tags.remove(name)?;
        info.adjust(old, 0);
        Some(old)
    }

    /// Sets tag `name` of `peer` to `f(current)`, where a missing tag counts
    /// as zero; returns the new value.
    pub fn upsert_tag(
        &mut self,
        peer: &PeerId,
        name: &str,
        f: impl FnOnce(i64) -> i64,
        now: Instant,
    ) -> i64 {
        let info = Self::entry(&mut self.peers, peer, now);
        let next = f(info.tags.get(name).unwrap_or(0));
        info.set_tag(name, next);
        next
    }

    /// The peer's total value: its tags plus its decaying tag values,
    /// saturated to `i64`; zero for an unknown peer.
    pub fn value(&self, peer: &PeerId) -> i64 {
        self.peers.get(peer).map_or(0, PeerInfo::value)
    }

    /// A snapshot of the peer's data, or `None` if the store has none.
    pub fn tag_info(&self, peer: &PeerId) -> Option<TagInfo> {
        let info = self.peers.get(peer)?;
        let mut tags = info.tags.to_map();
        for (name, tag) in &self.decaying {
            if let Some(held) = tag.values.get(peer) {
                let slot = tags.entry(name.clone()).or_insert(0);
                *slot = slot.saturating_add(held.value);
            }
        }
        let mut conns: Vec<(u64, Instant)> = info.conns.iter().collect();
        conns.sort_unstable_by_key(|(key, _)| *key);
        Some(TagInfo {
            first_seen: info.first_seen,
            first_seen_wall: None,
            value: info.value(),
            tags,
            conns,
        })
    }

    /// Records that connection `conn_key` of `peer` opened at `now`.
    ///
    /// Recording a key twice keeps the first start time.
    pub fn connected(&mut self, peer: &PeerId, conn_key: u64, now: Instant) {
        let info = Self::entry(&mut self.peers, peer, now);
        // First seen is the earliest of first tag and first connection.
        info.first_seen = info.first_seen.min(now);
        info.conns.insert(conn_key, now);
    }

    /// Records that connection `conn_key` of `peer` closed.
    ///
    /// If that was the peer's last connection and the peer is not
    /// protected, all its tags and decaying values are forgotten. An
    /// unknown key changes nothing. Returns whether the store held `peer`
    /// (one lookup for callers that would otherwise ask first).
    pub fn disconnected(&mut self, peer: &PeerId, conn_key: u64) -> bool {
        // The entry comes out and goes back unless it must go: one lookup
        // when a peer's last connection closes (every close of a trim),
        // and, unlike `entry`, none that makes room in the map for a peer
        // it does not hold.
        let Some((key, mut info)) = self.peers.remove_entry(peer) else {
            return false;
        };
        let last = info.conns.remove(conn_key) && info.conns.is_empty();
        if last && self.protected.get(peer).is_none_or(|t| t.is_empty()) {
            for tag in self.decaying.values_mut() {
                tag.values.remove(peer);
            }
        } else {
            self.peers.insert(key, info);
        }
        true
    }

    /// Drops all tag data of `peer` (tags, decaying values, connections),
    /// but not its protection. Returns whether there was any.
    pub fn forget(&mut self, peer: &PeerId) -> bool {
        for tag in self.decaying.values_mut() {
            tag.values.remove(peer);
        }
        self.peers.remove(peer).is_some()
    }

    /// Whether the store knows of an open connection of `peer`.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|p| !p.conns.is_empty())
    }

    /// Forgets `peer` when nothing keeps its entry: no tag, no decaying
    /// value, no connection. Returns whether it did.
    pub fn forget_if_idle(&mut self, peer: &PeerId) -> bool {
        let idle = self
            .peers
            .get(peer)
            .is_some_and(|p| p.tags.is_empty() && p.conns.is_empty())
            && !self.decaying.values().any(|d| d.values.contains_key(peer));
        idle && self.peers.remove(peer).is_some()
    }

    /// When `peer` was first seen, if it has an entry with no connection
    /// and no protection (an entry pruning may forget).
    pub fn idle_since(&self, peer: &PeerId) -> Option<Instant> {
        let info = self.peers.get(peer)?;
        (info.conns.is_empty() && !self.protected.contains_key(peer)).then_some(info.first_seen)
    }

    /// Number of protected peers.
    pub fn protected_len(&self) -> usize {
        self.protected.len()
    }

    /// Protects `peer` from trimming under `tag`.
    ///
    /// Tags form a set: protecting twice under the same tag is the same as
    /// protecting once.
    pub fn protect(&mut self, peer: &PeerId, tag: &str) {
        let tags = self.protected.entry(peer.clone()).or_default();
        if !tags.contains(tag) {
            tags.insert(tag.to_owned());
        }
    }

    /// Removes protection `tag` from `peer`; returns whether the peer is
    /// still protected under some other tag.
    pub fn unprotect(&mut self, peer: &PeerId, tag: &str) -> bool {
        let Some(tags) = self.protected.get_mut(peer) else {
            return false;
        };
        tags.remove(tag);
        if tags.is_empty() {
            self.protected.remove(peer);
            return false;
        }
        true
    }

    /// The tags `peer` is protected under, sorted.
    pub fn protections(&self, peer: &PeerId) -> Vec<String> {
        let mut tags: Vec<String> = self
            .protected
            .get(peer)
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        tags.sort_unstable();
        tags
    }

    /// Whether a decaying tag named `name` is registered.
    pub fn has_decaying(&self, name: &str) -> bool {
        self.decaying.contains_key(name)
    }

    /// The names of the registered decaying tags, sorted.
    pub fn decaying_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.decaying.keys().cloned().collect();
        names.sort_unstable();
        names
    }

    /// Whether `peer` is protected under `tag`, or under any tag if `tag`
    /// is `None`.
    pub fn is_protected(&self, peer: &PeerId, tag: Option<&str>) -> bool {
        match (self.protected.get(peer), tag) {
            (None, _) => false,
            (Some(tags), None) => !tags.is_empty(),
            (Some(tags), Some(tag)) => tags.contains(tag),
        }
    }

    /// Registers a decaying tag that decays every `interval`, starting at
    /// `now`.
    pub fn register_decaying(
        &mut self,
        name: &str,
        interval: Duration,
        decay: DecayFn,
        bump: BumpFn,
        now: Instant,
    ) -> Result<(), TagError> {
        if interval.is_zero() {
            return Err(TagError::ZeroInterval(name.to_owned()));
        }
        if self.decaying.contains_key(name) {
            return Err(TagError::DuplicateDecayingTag(name.to_owned()));
        }
        if self.decaying.len() >= crate::limits::MAX_DECAYING_TAGS {
            return Err(TagError::TooManyDecayingTags(
                crate::limits::MAX_DECAYING_TAGS,
            ));
        }
        let tag = DecayingTag {
            interval,
            decay,
            bump,
            last_decay: now,
            values: HashMap::new(),
        };
        self.decaying.insert(name.to_owned(), tag);
        Ok(())
    }

    /// The peers holding a value of decaying tag `name`.
    pub fn decaying_holders(&self, name: &str) -> Vec<PeerId> {
        self.decaying
            .get(name)
            .map(|t| t.values.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Removes a decaying tag and its values from every peer; returns
    /// whether it was registered.
    pub fn unregister_decaying(&mut self, name: &str) -> bool {
        let Some(mut tag) = self.decaying.remove(name) else {
            return false;
        };
        tag.clear(&mut self.peers);
        true
    }

    /// Bumps `peer`'s value of decaying tag `name` by `delta` with the tag's
    /// bump function; returns the new value.
    ///
    /// Decay steps already due for this tag are applied first, so a fresh
    /// value never pays for intervals that passed before it existed.
    pub fn bump_decaying(
        &mut self,
        peer: &PeerId,
        name: &str,
        delta: i64,
        now: Instant,
    ) -> Result<i64, TagError> {
        let tag = self
            .decaying
            .get_mut(name)
            .ok_or_else(|| TagError::UnknownDecayingTag(name.to_owned()))?;
        tag.catch_up(&mut self.peers, now);
        let info = Self::entry(&mut self.peers, peer, now);
        let held = tag.values.entry(peer.clone()).or_insert(DecayingValue {
            value: 0,
            last_bump: now,
        });
        let next = tag.bump.apply(held.value, delta);
        info.adjust(held.value, next);
        held.value = next;
        held.last_bump = now;
        Ok(next)
    }

    /// Removes `peer`'s value of decaying tag `name`; returns the removed
    /// value, if the peer held one.
    pub fn remove_decaying(&mut self, peer: &PeerId, name: &str) -> Result<Option<i64>, TagError> {
        let tag = self
            .decaying
            .get_mut(name)
            .ok_or_else(|| TagError::UnknownDecayingTag(name.to_owned()))?;
        let Some(held) = tag.values.remove(peer) else {
            return Ok(None);
        };
        if let Some(info) = self.peers.get_mut(peer) {
            info.adjust(held.value, 0);
        }
        Ok(Some(held.value))
    }

    /// Applies every decay step due by `now`: each decaying tag decays once
    /// per whole interval elapsed since its last step, with the decay
    /// function seeing each step's own instant.
    pub fn tick(&mut self, now: Instant) {
        for tag in self.decaying.values_mut() {
            tag.catch_up(&mut self.peers, now);
        }
    }

    /// When [`tick`](Self::tick) next has work to do, or `None` if no
    /// decaying tag holds any value. The instant may already have passed.
    pub fn next_decay_deadline(&self) -> Option<Instant> {
        self.decaying
            .values()
            .filter(|tag| !tag.values.is_empty())
            .filter_map(DecayingTag::next_due)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn p(id: &str) -> PeerId {
        PeerId::from(id)
    }

    fn store_with(
        name: &str,
        interval: Duration,
        decay: DecayFn,
        bump: BumpFn,
        t0: Instant,
    ) -> PeerTags {
        let mut store = PeerTags::new();
        store
            .register_decaying(name, interval, decay, bump, t0)
            .unwrap();
        store
    }

    /// Current value of a decaying tag as seen through `tag_info`.
    fn decaying_value(store: &PeerTags, peer: &PeerId, name: &str) -> Option<i64> {
        store.tag_info(peer)?.tags.get(name).copied()
    }

    #[test]
    fn peer_id_conversions_display_and_order() {
        let a = PeerId::from("10.0.0.1:8333");
        let b = PeerId::from(String::from("10.0.0.2:8333"));
        assert_eq!(a.to_string(), "10.0.0.1:8333");
        assert_eq!(a.as_str(), "10.0.0.1:8333");
        assert_eq!(format!("{a:?}"), "PeerId(\"10.0.0.1:8333\")");
        assert!(a < b);
        assert_eq!(a.clone(), PeerId::new("10.0.0.1:8333"));
        let mut map = HashMap::new();
        map.insert(a.clone(), 1);
        assert_eq!(map.get("10.0.0.1:8333"), Some(&1));
    }

    #[test]
    fn tag_sets_and_overwrites_and_value_sums() {
        let t0 = Instant::now();
        let mut store = PeerTags::new();
        let a = p("a");
        store.tag(&a, "relay", 10, t0);
        store.tag(&a, "fast", 5, t0);
        assert_eq!(store.value(&a), 15);
        store.tag(&a, "relay", 3, t0);
        assert_eq!(store.value(&a), 8);
        store.tag(&a, "fast", -20, t0);
        assert_eq!(store.value(&a), -17);
        assert_eq!(store.value(&p("unknown")), 0);
    }

    #[test]
    fn untag_removes_only_that_tag() {
        let t0 = Instant::now();
        let mut store = PeerTags::new();
        let a = p("a");
        store.tag(&a, "relay", 10, t0);
        store.tag(&a, "fast", 5, t0);
        assert_eq!(store.untag(&a, "relay"), Some(10));
        assert_eq!(store.value(&a), 5);
        assert_eq!(store.untag(&a, "relay"), None);
        assert_eq!(store.untag(&p("b"), "relay"), None);
        assert!(!store.contains(&p("b")), "untag must not create entries");
    }

    #[test]
    fn upsert_starts_missing_tags_at_zero() {
        let t0 = Instant::now();
        let mut store = PeerTags::new();
        let a = p("a");
        assert_eq!(store.upsert_tag(&a, "hits", |v| v + 1, t0), 1);
        assert_eq!(store.upsert_tag(&a, "hits", |v| v + 1, t0), 2);
        assert_eq!(store.upsert_tag(&a, "hits", |v| v * 10, t0), 20);
        store.tag(&a, "other", 7, t0);
        assert_eq!(store.value(&a), 27);
    }

    #[test]
    fn value_sum_is_exact_beyond_i64_and_saturates() {
        let t0 = Instant::now();
        let mut store = PeerTags::new();
        let a = p("a");
        store.tag(&a, "x", i64::MAX, t0);
        store.tag(&a, "y", i64::MAX, t0);
        assert_eq!(store.value(&a), i64::MAX);
        store.untag(&a, "y");
        assert_eq!(store.value(&a), i64::MAX);
        store.tag(&a, "z", -1, t0);
        assert_eq!(store.value(&a), i64::MAX - 1);
    }

    #[test]
    fn tag_info_reports_tags_decaying_values_and_connections() {
        let t0 = Instant::now();
        let mut store = store_with("recent", SEC, DecayFn::none(), BumpFn::sum(), t0);
        let a = p("a");
        store.connected(&a, 7, t0 + SEC);
        store.connected(&a, 3, t0 + 2 * SEC);
        store.connected(&a, 7, t0 + 5 * SEC);
        store.tag(&a, "relay", 10, t0 + 3 * SEC);
        store.bump_decaying(&a, "recent", 4, t0 + 3 * SEC).unwrap();
        let info = store.tag_info(&a).unwrap();
        assert_eq!(info.first_seen, t0 + SEC);
        assert_eq!(info.value, 14);
        let expected: HashMap<String, i64> =
            [("relay".to_owned(), 10), ("recent".to_owned(), 4)].into();
        assert_eq!(info.tags, expected);
        assert_eq!(info.conns, vec![(3, t0 + 2 * SEC), (7, t0 + SEC)]);
        assert!(store.tag_info(&p("b")).is_none());
    }

    #[test]
    fn tag_info_sums_plain_and_decaying_tags_of_the_same_name() {
        let t0 = Instant::now();
        let mut store = store_with("shared", SEC, DecayFn::none(), BumpFn::sum(), t0);
        let a = p("a");
        store.tag(&a, "shared", 10, t0);
        store.bump_decaying(&a, "shared", 5, t0).unwrap();
        let info = store.tag_info(&a).unwrap();
        assert_eq!(info.tags.get("shared"), Some(&15));
        assert_eq!(info.value, 15);
    }

    #[test]
    fn last_disconnect_forgets_tags_but_keeps_protection() {
        let t0 = Instant::now();
        let mut store = store_with("recent", SEC, DecayFn::none(), BumpFn::sum(), t0);
        let a = p("a");
        store.connected(&a, 1, t0);
        store.connected(&a, 2, t0);
        store.tag(&a, "relay", 10, t0);
        store.bump_decaying(&a, "recent", 4, t0).unwrap();
        store.disconnected(&a, 1);
        assert_eq!(store.value(&a), 14, "one connection remains");
        store.disconnected(&a, 2);
        assert!(!store.contains(&a));
        assert_eq!(store.value(&a), 0);
        assert_eq!(
            store.next_decay_deadline(),
            None,
            "decaying value forgotten too"
        );

        store.protect(&a, "permanent");
        store.connected(&a, 3, t0 + SEC);
        store.tag(&a, "relay", 10, t0 + SEC);
        store.disconnected(&a, 3);
        assert!(store.is_protected(&a, None));
        assert_eq!(store.value(&a), 10, "protected peer keeps its tags");
    }

    #[test]
    fn protection_survives_disconnect_of_untagged_peer() {
        let t0 = Instant::now();
        let mut store = PeerTags::new();
        let a = p("a");
        store.protect(&a, "permanent");
        store.connected(&a, 1, t0);
        store.disconnected(&a, 1);
        assert!(store.is_protected(&a, Some("permanent")));
        store.forget(&a);
        assert!(
            store.is_protected(&a, None),
            "forget leaves protection alone"
        );
    }

    #[test]
    fn unknown_connection_key_does_not_forget_a_tagged_peer() {
        let t0 = Instant::now();
        let mut store = PeerTags::new();
        let a = p("a");
        store.tag(&a, "relay", 10, t0);
        assert!(store.disconnected(&a, 99), "a is known");
        assert_eq!(store.value(&a), 10);
        assert!(!store.disconnected(&p("nobody"), 1));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn first_seen_is_reset_after_the_peer_is_forgotten() {
        let t0 = Instant::now();
        let mut store = PeerTags::new();
        let a = p("a");
        store.tag(&a, "relay", 1, t0);
        store.connected(&a, 1, t0 + SEC);
        assert_eq!(store.tag_info(&a).unwrap().first_seen, t0);
        store.disconnected(&a, 1);
        store.connected(&a, 2, t0 + 5 * SEC);
        let info = store.tag_info(&a).unwrap();
        assert_eq!(info.first_seen, t0 + 5 * SEC);
        assert!(info.tags.is_empty());
    }

    #[test]
    fn protect_uses_set_semantics_per_tag() {
        let mut store = PeerTags::new();
        let a = p("a");
        store.protect(&a, "permanent");
        store.protect(&a, "permanent");
        assert!(
            !store.unprotect(&a, "permanent"),
            "one unprotect undoes both"
        );
        assert!(!store.is_protected(&a, None));
        assert!(
            !store.unprotect(&a, "permanent"),
            "unprotecting again is harmless"
        );
    }

    #[test]
    fn unprotect_reports_remaining_protection() {
        let mut store = PeerTags::new();
        let a = p("a");
        store.protect(&a, "permanent");
        store.protect(&a, "relay");
        assert!(store.is_protected(&a, Some("relay")));
        assert!(!store.is_protected(&a, Some("other")));
        assert!(store.unprotect(&a, "relay"), "still protected by permanent");
        assert!(!store.is_protected(&a, Some("relay")));
        assert!(store.is_protected(&a, None));
        assert!(store.unprotect(&a, "never-set"));
        assert!(!store.unprotect(&a, "permanent"));
        assert!(!store.is_protected(&a, None));
        assert!(!store.is_protected(&p("b"), None));
    }

    #[test]
    fn decay_none_keeps_values_forever() {
        let t0 = Instant::now();
        let mut store = store_with("d", SEC, DecayFn::none(), BumpFn::sum(), t0);
        let a = p("a");
        store.bump_decaying(&a, "d", 9, t0).unwrap();
        for step in 1..=5 {
            store.tick(t0 + step * SEC);
            assert_eq!(store.value(&a), 9);
        }
        assert_eq!(store.next_decay_deadline(), Some(t0 + 6 * SEC));
    }

    #[test]
    fn decay_fixed_subtracts_per_interval_and_removes_at_zero() {
        let t0 = Instant::now();
        let mut store = store_with("d", SEC, DecayFn::fixed(4), BumpFn::sum(), t0);
        let a = p("a");
        store.tag(&a, "plain", 100, t0);
        store.bump_decaying(&a, "d", 10, t0).unwrap();
        store.tick(t0 + SEC / 2);
        assert_eq!(
            decaying_value(&store, &a, "d"),
            Some(10),
            "no whole interval yet"
        );
        store.tick(t0 + SEC);
        assert_eq!(decaying_value(&store, &a, "d"), Some(6));
        store.tick(t0 + 2 * SEC);
        assert_eq!(decaying_value(&store, &a, "d"), Some(2));
        assert_eq!(store.value(&a), 102);
        store.tick(t0 + 3 * SEC);
        assert_eq!(decaying_value(&store, &a, "d"), None, "removed at <= 0");
        assert_eq!(store.value(&a), 100);
        assert_eq!(store.next_decay_deadline(), None);
    }

    #[test]
    fn decay_linear_multiplies_and_rounds_down() {
        let t0 = Instant::now();
        let mut store = store_with("d", 10 * SEC, DecayFn::linear(0.5), BumpFn::sum(), t0);
        let a = p("a");
        store.bump_decaying(&a, "d", 9, t0).unwrap();
        let mut seen = Vec::new();
        for step in 1..=4 {
            store.tick(t0 + step * 10 * SEC);
            seen.push(decaying_value(&store, &a, "d"));
        }
        assert_eq!(seen, vec![Some(4), Some(2), Some(1), None]);
        assert_eq!(store.value(&a), 0);
    }

    #[test]
    fn decay_expire_when_inactive_removes_unbumped_values() {
        let t0 = Instant::now();
        let mut store = store_with(
            "d",
            SEC,
            DecayFn::expire_when_inactive(3 * SEC),
            BumpFn::sum(),
            t0,
        );
        let (busy, idle) = (p("busy"), p("idle"));
        store.bump_decaying(&busy, "d", 5, t0).unwrap();
        store.bump_decaying(&idle, "d", 5, t0).unwrap();
        store.tick(t0 + 2 * SEC);
        store.bump_decaying(&busy, "d", 1, t0 + 2 * SEC).unwrap();
        store.tick(t0 + 2 * SEC);
        assert_eq!(
            decaying_value(&store, &idle, "d"),
            Some(5),
            "value unchanged while active"
        );
        store.tick(t0 + 3 * SEC);
        assert_eq!(decaying_value(&store, &idle, "d"), None);
        assert_eq!(decaying_value(&store, &busy, "d"), Some(6));
        store.tick(t0 + 4 * SEC);
        assert_eq!(decaying_value(&store, &busy, "d"), Some(6));
        store.tick(t0 + 5 * SEC);
        assert_eq!(
            decaying_value(&store, &busy, "d"),
            None,
            "3 s after its last bump"
        );
    }

    #[test]
    fn tick_catches_up_every_elapsed_interval_with_step_instants() {
        let t0 = Instant::now();
        let seen = Arc::new(recorder::Log::default());
        let log = Arc::clone(&seen);
        let decay = DecayFn::new(move |v, _, at| {
            log.push(at);
            (v - 1, false)
        });
        let mut store = store_with("d", SEC, decay, BumpFn::sum(), t0);
        let a = p("a");
        store.bump_decaying(&a, "d", 10, t0).unwrap();
        store.tick(t0 + 3 * SEC + SEC / 2);
        assert_eq!(store.value(&a), 7);
        assert_eq!(seen.take(), vec![t0 + SEC, t0 + 2 * SEC, t0 + 3 * SEC]);
        assert_eq!(
            store.next_decay_deadline(),
            Some(t0 + 4 * SEC),
            "schedule keeps its phase"
        );
    }

    #[test]
    fn huge_backlog_of_tiny_intervals_is_bounded() {
        let t0 = Instant::now();
        let nano = Duration::from_nanos(1);
        let mut store = store_with("d", nano, DecayFn::none(), BumpFn::sum(), t0);
        let a = p("a");
        store.bump_decaying(&a, "d", 1, t0).unwrap();
        let later = t0 + 3600 * SEC;
        store.tick(later);
        assert_eq!(store.value(&a), 1);
        assert_eq!(store.next_decay_deadline(), Some(later + nano));
    }

    #[test]
    fn bump_after_idle_period_does_not_pay_for_past_intervals() {
        let t0 = Instant::now();
        let mut store = store_with("d", SEC, DecayFn::fixed(1), BumpFn::sum(), t0);
        let a = p("a");
        assert_eq!(store.next_decay_deadline(), None, "no values, no wakeups");
        store
            .bump_decaying(&a, "d", 5, t0 + 100 * SEC + SEC / 2)
            .unwrap();
        assert_eq!(store.next_decay_deadline(), Some(t0 + 101 * SEC));
        store.tick(t0 + 100 * SEC + SEC / 2);
        assert_eq!(store.value(&a), 5);
        store.tick(t0 + 101 * SEC);
        assert_eq!(store.value(&a), 4);
    }

    #[test]
    fn bump_applies_due_decay_to_existing_values_first() {
        let t0 = Instant::now();
        let mut store = store_with("d", SEC, DecayFn::fixed(2), BumpFn::sum(), t0);
        let a = p("a");
        store.bump_decaying(&a, "d", 10, t0).unwrap();
        assert_eq!(store.bump_decaying(&a, "d", 1, t0 + 2 * SEC), Ok(7));
        assert_eq!(store.value(&a), 7);
    }

    #[test]
    fn bump_sum_and_overwrite_and_bounded() {
        let t0 = Instant::now();
        let mut store = PeerTags::new();
        let a = p("a");
        store
            .register_decaying("sum", SEC, DecayFn::none(), BumpFn::sum(), t0)
            .unwrap();
        store
            .register_decaying("over", SEC, DecayFn::none(), BumpFn::overwrite(), t0)
            .unwrap();
        store
            .register_decaying("cap", SEC, DecayFn::none(), BumpFn::sum_bounded(0, 10), t0)
            .unwrap();
        assert_eq!(store.bump_decaying(&a, "sum", 3, t0), Ok(3));
        assert_eq!(store.bump_decaying(&a, "sum", 4, t0), Ok(7));
        assert_eq!(store.bump_decaying(&a, "over", 3, t0), Ok(3));
        assert_eq!(store.bump_decaying(&a, "over", 4, t0), Ok(4));
        assert_eq!(store.bump_decaying(&a, "cap", 8, t0), Ok(8));
        assert_eq!(store.bump_decaying(&a, "cap", 8, t0), Ok(10));
        assert_eq!(store.bump_decaying(&a, "cap", -30, t0), Ok(0));
        assert_eq!(store.value(&a), 11);
    }

    #[test]
    fn custom_decay_closure_is_used() {
        let t0 = Instant::now();
        let halve_keep_one = DecayFn::new(|v: i64, _, _| ((v / 2).max(1), false));
        let mut store = store_with("d", SEC, halve_keep_one, BumpFn::new(|c, d| c + 2 * d), t0);
        let a = p("a");
        assert_eq!(store.bump_decaying(&a, "d", 8, t0), Ok(16));
        store.tick(t0 + 10 * SEC);
        assert_eq!(store.value(&a), 1);
    }

    #[test]
    fn register_rejects_duplicates_and_zero_interval() {
        let t0 = Instant::now();
        let mut store = store_with("d", SEC, DecayFn::none(), BumpFn::sum(), t0);
        let dup = store.register_decaying("d", SEC, DecayFn::none(), BumpFn::sum(), t0);
        assert_eq!(dup, Err(TagError::DuplicateDecayingTag("d".into())));
        let zero = store.register_decaying("z", Duration::ZERO, DecayFn::none(), BumpFn::sum(), t0);
        assert_eq!(zero, Err(TagError::ZeroInterval("z".into())));
        assert!(dup.unwrap_err().to_string().contains("already registered"));
        assert!(zero.unwrap_err().to_string().contains("non-zero"));
    }

    #[test]
    fn unknown_decaying_tag_is_an_error() {
        let t0 = Instant::now();
        let mut store = PeerTags::new();
        let a = p("a");
        let err = store.bump_decaying(&a, "nope", 1, t0).unwrap_err();
        assert_eq!(err, TagError::UnknownDecayingTag("nope".into()));
        assert!(err.to_string().contains("register_decaying"));
        assert_eq!(store.remove_decaying(&a, "nope"), Err(err));
        assert!(!store.contains(&a), "failed bump must not create entries");
    }

    #[test]
    fn remove_and_unregister_decaying_update_values() {
        let t0 = Instant::now();
        let mut store = store_with("d", SEC, DecayFn::none(), BumpFn::sum(), t0);
        let (a, b) = (p("a"), p("b"));
        store.bump_decaying(&a, "d", 5, t0).unwrap();
        store.bump_decaying(&b, "d", 7, t0).unwrap();
        store.tag(&b, "plain", 1, t0);
        assert_eq!(store.remove_decaying(&a, "d"), Ok(Some(5)));
        assert_eq!(store.remove_decaying(&a, "d"), Ok(None));
        assert_eq!(store.value(&a), 0);
        assert!(store.unregister_decaying("d"));
        assert!(!store.unregister_decaying("d"));
        assert_eq!(store.value(&b), 1);
        assert_eq!(store.next_decay_deadline(), None);
        assert!(store.bump_decaying(&b, "d", 1, t0).is_err());
    }

    #[test]
    fn next_decay_deadline_is_the_earliest_tag_with_values() {
        let t0 = Instant::now();
        let mut store = PeerTags::new();
        let a = p("a");
        store
            .register_decaying("slow", 10 * SEC, DecayFn::none(), BumpFn::sum(), t0)
            .unwrap();
        store
            .register_decaying("fast", 3 * SEC, DecayFn::none(), BumpFn::sum(), t0)
            .unwrap();
        store.bump_decaying(&a, "slow", 1, t0).unwrap();
        assert_eq!(store.next_decay_deadline(), Some(t0 + 10 * SEC));
        store.bump_decaying(&a, "fast", 1, t0).unwrap();
        assert_eq!(store.next_decay_deadline(), Some(t0 + 3 * SEC));
        store.tick(t0 + 7 * SEC);
        assert_eq!(store.next_decay_deadline(), Some(t0 + 9 * SEC));
    }

    /// A tiny shared log for observing decay calls without extra crates.
    mod recorder {
        use std::sync::Mutex;
        use std::time::Instant;

        #[derive(Default)]
        pub struct Log(Mutex<Vec<Instant>>);

        impl Log {
            pub fn push(&self, at: Instant) {
                self.0.lock().unwrap().push(at);
            }

            pub fn take(&self) -> Vec<Instant> {
                std::mem::take(&mut *self.0.lock().unwrap())
            }
        }
    }
}
