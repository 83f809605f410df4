//! What callers can read of the manager's state. The handler writes the
//! changes of each batch into a [`SnapshotStore`] behind one mutex; readers
//! copy out what they need. Callers never see the handler's own maps.

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use crate::core::info::{ConnInfo, Counts, Stats};
use crate::core::Changes;
use crate::idmap::IdMap;
use crate::policy::banlist::BanEntry;
use crate::policy::tags::{PeerId, TagInfo};
use crate::runtime::published::{Entry, TimeBase};
use crate::types::{ConnId, ConnState};

/// `at` on the wall clock, given a reading `(now, wall)` of both clocks.
fn on_wall(at: Instant, (now, wall): (Instant, SystemTime)) -> Option<SystemTime> {
    match at.checked_duration_since(now) {
        Some(ahead) => wall.checked_add(ahead),
        None => wall.checked_sub(now.saturating_duration_since(at)),
    }
}

/// A copy of the manager's published state.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Snapshot {
    /// Every live request and inbound connection, by id.
    pub conns: Vec<ConnInfo>,
    /// Counts by state and direction.
    pub counts: Counts,
    /// Running totals.
    pub stats: Stats,
    /// Whether the manager is between `start` and `stop`.
    pub running: bool,
}

impl Snapshot {
    /// The entry for `id`, if it is live.
    pub fn get(&self, id: ConnId) -> Option<&ConnInfo> {
        self.conns
            .binary_search_by_key(&id, |c| c.id)
            .ok()
            .map(|i| &self.conns[i])
    }
}

/// The published state, updated in place by the handler once per batch
/// from the Core's change set; nothing here is decided anew.
#[derive(Debug)]
pub(crate) struct SnapshotStore {
    /// Every live entry, compact: one per connection of the manager.
    conns: IdMap<ConnId, Entry>,
    /// The origin of the entries' times.
    base: TimeBase,
    peers: HashMap<PeerId, TagInfo>,
    protections: HashMap<PeerId, Vec<String>>,
    bans: Vec<BanEntry>,
    decaying: Vec<String>,
    counts: Counts,
    stats: Stats,
    pub(crate) running: bool,
    /// A reading of the manager's clock and the wall clock taken together
    /// at the last publish, to put wall-clock times on entries.
    pub(crate) clock_ref: Option<(Instant, SystemTime)>,
    /// False once the handler has answered its last message: requests
    /// sent after that could never finish, so callers refuse them.
    pub(crate) accepting: bool,
}

impl Default for SnapshotStore {
    fn default() -> Self {
        SnapshotStore {
            conns: IdMap::default(),
            // Any instant serves as the origin; the process's start keeps
            // every clock's readings well within range.
            base: TimeBase::new(Instant::now()),
            peers: HashMap::new(),
            protections: HashMap::new(),
            bans: Vec::new(),
            decaying: Vec::new(),
            counts: Counts::default(),
            stats: Stats::default(),
            running: false,
            clock_ref: None,
            accepting: true,
        }
    }
}

impl SnapshotStore {
    /// Writes one batch of the Core's changes.
    pub(crate) fn apply(&mut self, changes: &mut Changes) {
        for info in &changes.conns {
            self.upsert(info.clone());
        }
        for f in &changes.finished {
            self.remove(f.id);
        }
        // Peers, bans and names are read by nothing after the store, so
        // they move in rather than being copied (a peer's tag map and
        // connection list are allocations each).
        for p in changes.peers.drain(..) {
            match p.info {
                Some(info) => self.peers.insert(p.peer.clone(), info),
                None => self.peers.remove(&p.peer),
            };
            if p.protections.is_empty() {
                self.protections.remove(&p.peer);
            } else {
                self.protections.insert(p.peer, p.protections);
            }
        }
        if let Some(bans) = changes.bans.take() {
            self.bans = bans;
        }
        if let Some(names) = changes.decaying.take() {
            self.decaying = names;
        }
        self.stats = changes.stats;
    }

    /// Shows a request before the Core has seen it.
    pub(crate) fn upsert(&mut self, info: ConnInfo) {
        self.counts.apply(info.count_key(), 1);
        let id = info.id;
        if let Some(old) = self.conns.insert(id, Entry::new(info, self.base)) {
            self.counts.apply(old.count_key(), -1);
        }
    }

    pub(crate) fn remove(&mut self, id: ConnId) {
        if let Some(old) = self.conns.remove(&id) {
            self.counts.apply(old.count_key(), -1);
        }
    }

    /// The published tag info of `peer`; for a peer never tagged, what its
    /// established connections say (value 0, no tags).
    pub(crate) fn tag_info(&self, peer: &PeerId) -> Option<TagInfo> {
        if let Some(info) = self.peers.get(peer) {
            return Some(self.tag_with_wall(info.clone()));
        }
        let mut conns: Vec<(u64, Instant)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.state() == ConnState::Established && c.is_peer(peer))
            .map(|(id, c)| (id.0, c.since(self.base)))
            .collect();
        conns.sort_unstable();
        let first_seen = conns.iter().map(|c| c.1).min()?;
        Some(self.tag_with_wall(TagInfo {
            first_seen,
            first_seen_wall: None,
            value: 0,
            tags: HashMap::new(),
            conns,
        }))
    }

    fn tag_with_wall(&self, mut info: TagInfo) -> TagInfo {
        if let Some(reference) = self.clock_ref {
            info.first_seen_wall = on_wall(info.first_seen, reference);
        }
        info
    }

    /// Whether `peer` is protected under `tag`, or under any tag.
    pub(crate) fn is_protected(&self, peer: &PeerId, tag: Option<&str>) -> bool {
        match (self.protections.get(peer), tag) {
            (None, _) => false,
            (Some(tags), None) => !tags.is_empty(),
            (Some(tags), Some(tag)) => tags.iter().any(|t| t == tag),
        }
    }

    /// Peers in the published peer book.
    pub(crate) fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Whether a decaying tag of this name is registered.
    pub(crate) fn has_decaying(&self, name: &str) -> bool {
        self.decaying.iter().any(|n| n == name)
    }

    /// The bans in force at `now`, with wall-clock ends.
    pub(crate) fn bans(&self, now: Instant) -> Vec<BanEntry> {
        self.bans
            .iter()
            .filter(|b| b.in_force(now))
            .cloned()
            .map(|mut b| {
                if let Some(reference) = self.clock_ref {
                    b.until_wall = on_wall(b.until, reference);
                }
                b
            })
            .collect()
    }

    pub(crate) fn contains(&self, id: ConnId) -> bool {
        self.conns.contains_key(&id)
    }

    pub(crate) fn counts(&self) -> Counts {
        self.counts
    }

    pub(crate) fn stats(&self) -> Stats {
        self.stats
    }

    /// The entry for `id`, with wall-clock times.
    pub(crate) fn conn_info(&self, id: ConnId) -> Option<ConnInfo> {
        let entry = self.conns.get(&id)?;
        Some(self.with_wall(entry.info(id, self.base)))
    }

    /// Fills `info`'s wall-clock times from the last clock reading.
    fn with_wall(&self, mut info: ConnInfo) -> ConnInfo {
        if let Some(reference) = self.clock_ref {
            info.since_wall = on_wall(info.since, reference);
            info.next_attempt_wall = info.next_attempt.and_then(|at| on_wall(at, reference));
        }
        info
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut conns: Vec<ConnInfo> = self
            .conns
            .iter()
            .map(|(id, c)| self.with_wall(c.info(*id, self.base)))
            .collect();
        conns.sort_unstable_by_key(|c| c.id);
        Snapshot {
            conns,
            counts: self.counts,
            stats: self.stats,
            running: self.running,
        }
    }
}
