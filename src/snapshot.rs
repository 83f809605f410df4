//! What callers can read of the manager's state. The handler writes the
//! changes of each batch into a [`SnapshotStore`] behind one mutex; readers
//! copy out what they need. Callers never see the handler's own maps.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use crate::addr::Addr;
use crate::conn::{ConnId, ConnState, Direction};
use crate::idmap::IdMap;
use crate::policy::bans::BanEntry;
use crate::policy::tags::{PeerId, TagInfo};

/// One request or inbound connection as last published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// Its id.
    pub id: ConnId,
    /// The peer's address (`None` while an automatic request waits for
    /// the address source).
    pub addr: Option<Addr>,
    /// Who opened it.
    pub direction: Direction,
    /// Its state.
    pub state: ConnState,
    /// Whether it is retried forever.
    pub permanent: bool,
    /// Whether the manager made it to fill the outbound target.
    pub automatic: bool,
    /// The peer id: the one given with `set_peer_id`, or the address text
    /// once the manager needed it; `None` also means the address text.
    pub peer: Option<PeerId>,
    /// Consecutive failed attempts since the last stable connection.
    pub retries: u32,
    /// When it entered its current state (on the manager's clock).
    pub since: Instant,
    /// When the next attempt is due, if one is scheduled.
    pub next_attempt: Option<Instant>,
}

/// How many requests and connections are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Outbound requests waiting for an address or a dial.
    pub pending: usize,
    /// Outbound requests whose last dial failed, waiting to retry.
    pub failing: usize,
    /// Permanent requests whose connection dropped, waiting to retry.
    pub disconnected: usize,
    /// Established outbound connections.
    pub outbound: usize,
    /// Established inbound connections.
    pub inbound: usize,
    /// Established automatic (target-filling) outbound connections.
    pub automatic_outbound: usize,
    /// Live permanent requests, in any state.
    pub permanent: usize,
}

impl Counts {
    fn apply(&mut self, info: &ConnInfo, sign: isize) {
        let bump = |n: &mut usize| *n = n.wrapping_add_signed(sign);
        match (info.state, info.direction) {
            (ConnState::Pending, _) => bump(&mut self.pending),
            (ConnState::Failing, _) => bump(&mut self.failing),
            (ConnState::Disconnected, _) => bump(&mut self.disconnected),
            (ConnState::Established, Direction::Inbound) => bump(&mut self.inbound),
            (ConnState::Established, Direction::Outbound) => {
                bump(&mut self.outbound);
                if info.automatic {
                    bump(&mut self.automatic_outbound);
                }
            }
            (ConnState::Canceled, _) => {}
        }
        if info.permanent {
            bump(&mut self.permanent);
        }
    }
}

/// Whether `c` is a connection of `peer`.
fn is_peer(c: &ConnInfo, peer: &PeerId) -> bool {
    match (&c.peer, &c.addr) {
        (Some(p), _) => p == peer,
        (None, Some(addr)) => addr.to_string() == peer.as_str(),
        (None, None) => false,
    }
}

/// Running totals since the manager was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Dials started.
    pub dials: u64,
    /// Dials that failed.
    pub dial_failures: u64,
    /// Outbound connections established.
    pub outbound_established: u64,
    /// Inbound connections accepted.
    pub inbound_accepted: u64,
    /// Inbound connections refused: the inbound limit was reached (and no
    /// connection could be evicted), or the peer is banned.
    pub inbound_refused: u64,
    /// Established connections (either direction) that closed.
    pub closed: u64,
    /// Automatic dials that failed in a row, without a success between.
    pub consecutive_failures: u32,
    /// The most inbound connections ever live at once.
    pub peak_inbound: usize,
    /// Trims run (automatic and explicit).
    pub trims: u64,
    /// Connections closed by a policy: trimming, eviction or a ban.
    pub trimmed: u64,
    /// Inbound connections evicted to make room for a newcomer.
    pub evicted: u64,
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
