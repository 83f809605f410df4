//! What callers can read of the manager's state. The handler writes the
//! changes of each batch into a [`SnapshotStore`] behind one mutex; readers
//! copy out what they need. Callers never see the handler's own maps.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use crate::core::info::{ConnInfo, Counts, Stats};
use crate::idmap::IdMap;
use crate::policy::banlist::BanEntry;
use crate::policy::tags::{PeerId, TagInfo};
use crate::types::{ConnId, ConnState};

/// Whether `c` is a connection of `peer`.
fn is_peer(c: &ConnInfo, peer: &PeerId) -> bool {
    match (&c.peer, &c.addr) {
        (Some(p), _) => p == peer,
        (None, Some(addr)) => addr.to_string() == peer.as_str(),
        (None, None) => false,
    }
}

/// A copy of the manager's published state.
#[derive(Debug, Clone, Default)]
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

/// The published state, updated in place by the handler once per batch.
#[derive(Debug, Default)]
pub(crate) struct SnapshotStore {
    conns: IdMap<ConnId, ConnInfo>,
    peers: HashMap<PeerId, TagInfo>,
    /// Protection is written by callers themselves, under this lock, in the
    /// order they send it to the handler, so `unprotect` can answer at once.
    pub(crate) protections: HashMap<PeerId, HashSet<String>>,
    /// Bans in force when last published.
    pub(crate) bans: Vec<BanEntry>,
    counts: Counts,
    pub(crate) stats: Stats,
    pub(crate) running: bool,
}

impl SnapshotStore {
    pub(crate) fn upsert(&mut self, info: ConnInfo) {
        self.counts.apply(&info, 1);
        if let Some(old) = self.conns.insert(info.id, info) {
            self.counts.apply(&old, -1);
        }
    }

    pub(crate) fn remove(&mut self, id: ConnId) {
        if let Some(old) = self.conns.remove(&id) {
            self.counts.apply(&old, -1);
        }
    }

    pub(crate) fn set_peer(&mut self, peer: PeerId, info: Option<TagInfo>) {
        match info {
            Some(info) => self.peers.insert(peer, info),
            None => self.peers.remove(&peer),
        };
    }

    /// The published tag info of `peer`; for a peer never tagged, what its
    /// established connections say (value 0, no tags).
    pub(crate) fn tag_info(&self, peer: &PeerId) -> Option<TagInfo> {
        if let Some(info) = self.peers.get(peer) {
            return Some(info.clone());
        }
        let mut conns: Vec<(u64, Instant)> = self
            .conns
            .values()
            .filter(|c| c.state == ConnState::Established && is_peer(c, peer))
            .map(|c| (c.id.0, c.since))
            .collect();
        conns.sort_unstable();
        let first_seen = conns.iter().map(|c| c.1).min()?;
        Some(TagInfo {
            first_seen,
            value: 0,
            tags: HashMap::new(),
            conns,
        })
    }

    pub(crate) fn get(&self, id: ConnId) -> Option<&ConnInfo> {
        self.conns.get(&id)
    }

    pub(crate) fn contains(&self, id: ConnId) -> bool {
        self.conns.contains_key(&id)
    }

    pub(crate) fn counts(&self) -> Counts {
        self.counts
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut conns: Vec<ConnInfo> = self.conns.values().cloned().collect();
        conns.sort_unstable_by_key(|c| c.id);
        Snapshot {
            conns,
            counts: self.counts,
            stats: self.stats,
            running: self.running,
        }
    }
}
