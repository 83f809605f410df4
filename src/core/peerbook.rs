//! The peer book: tags, decaying tags, protection and trimming, on top of
//! the connections the rest of the Core tracks.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::changes::{Changes, PeerChange};
use super::peerindex::LiveIndex;
use super::record::Record;
use super::{Core, CoreConfig, Effect, Teardown, LOG};
use crate::guard::guarded;
use crate::idmap::IdMap;
use crate::policy::permissions::Permissions;
use crate::policy::tags::{BumpFn, DecayFn, PeerId, PeerTags, TagError, TagInfo};
use crate::policy::trim::{lowest_ranks, out_of_grace, rank_of, Rank, TrimPolicy};
use crate::types::{CloseReason, ConnId, Direction};

/// A change to one peer's tags, carried from a caller to the Core.
#[non_exhaustive]
pub enum TagChange {
    /// Set a tag.
    Set(String, i64),
    /// Remove a tag (and the peer's value of a decaying tag of that name).
    Remove(String),
    /// Update a tag (missing tags start at 0). A panicking function leaves
    /// the tag as it was.
    Update(String, Box<dyn FnOnce(i64) -> i64 + Send>),
    /// Add protection under a tag.
    Protect(String),
    /// Remove protection under a tag.
    Unprotect(String),
    /// Bump a registered decaying tag.
    Bump(String, i64),
}

impl std::fmt::Debug for TagChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TagChange::Set(n, v) => write!(f, "Set({n:?}, {v})"),
            TagChange::Remove(n) => write!(f, "Remove({n:?})"),
            TagChange::Update(n, _) => write!(f, "Update({n:?}, ..)"),
            TagChange::Protect(t) => write!(f, "Protect({t:?})"),
            TagChange::Unprotect(t) => write!(f, "Unprotect({t:?})"),
            TagChange::Bump(n, d) => write!(f, "Bump({n:?}, {d})"),
        }
    }
}

/// A decaying tag to register: every `interval` the decay function runs
/// over each peer's value; bumps combine through the bump function.
#[derive(Debug)]
pub struct DecayingSpec {
    /// The tag's name.
    pub name: String,
    /// How often values decay.
    pub interval: Duration,
    /// How a value decays.
    pub decay: DecayFn,
    /// How a bump combines with the value.
    pub bump: BumpFn,
}

/// The peers changed since the last change set, each once. Change sets
/// list them sorted by id, so they come in one order on every run
/// whatever order the tag store's maps gave; one sort when the set is
/// taken costs a fraction of an ordered set's dozen comparisons per
/// insert (a tenth of a trim).
#[derive(Default)]
struct DirtyPeers {
    peers: Vec<PeerId>,
    seen: HashSet<PeerId>,
}

impl DirtyPeers {
    fn insert(&mut self, peer: PeerId) {
        if self.seen.insert(peer.clone()) {
            self.peers.push(peer);
        }
    }

    /// Every peer, sorted; the set is empty afterwards (and keeps its
    /// room for the next batch).
    fn drain(&mut self) -> std::vec::Drain<'_, PeerId> {
        self.seen.clear();
        self.peers.sort_unstable();
        self.peers.drain(..)
    }
}

/// Tags and protection per peer, the peers changed since the last change
/// set, and the trimming policy with its last run.
pub(super) struct PeerBook {
    tags: PeerTags,
    dirty: DirtyPeers,
    decaying_changed: bool,
    trim: Option<TrimPolicy>,
    last_trim: Option<Instant>,
    /// The outcome of the last decaying tag registration, until taken.
    registered: Option<Result<(), TagError>>,
    max_peers: usize,
    idle_ttl: Duration,
    /// Peers tagged while they had no connection, oldest first: the
    /// candidates for pruning and for making room. Entries that since
    /// connected, got protected or went are skipped when reached.
    idle: VecDeque<(Instant, PeerId)>,
    /// Live connections by peer, from the first tag on.
    live: Option<LiveIndex>,
}

impl PeerBook {
    pub(super) fn new(cfg: &CoreConfig) -> Self {
        PeerBook {
            tags: PeerTags::new(),
            dirty: DirtyPeers::default(),
            decaying_changed: false,
            trim: cfg.trim_policy().ok().flatten(),
            last_trim: None,
            registered: None,
            max_peers: cfg.max_peers,
            idle_ttl: cfg.idle_peer_ttl,
            idle: VecDeque::new(),
            live: None,
        }
    }

    pub(super) fn register_decaying(&mut self, spec: DecayingSpec, now: Instant) {
        let DecayingSpec {
            name,
            interval,
            decay,
            bump,
        } = spec;
        let result = self
            .tags
            .register_decaying(&name, interval, decay, bump, now);
        match &result {
            Ok(()) => self.decaying_changed = true,
            Err(e) => warn!(target: LOG, "decaying tag {name} not registered: {e}"),
        }
        self.registered = Some(result);
    }

    /// Removes decaying tag `name` and every peer's value of it.
    pub(super) fn unregister_decaying(&mut self, name: &str) {
        let holders: Vec<PeerId> = self.tags.decaying_holders(name);
        if self.tags.unregister_decaying(name) {
            self.decaying_changed = true;
            self.forget_idle_and_mark(holders);
        }
    }

    pub(super) fn trim_policy(&self) -> Option<TrimPolicy> {
        self.trim
    }

    pub(super) fn last_trim(&self) -> Option<Instant> {
        self.last_trim
    }

    pub(super) fn take_registration(&mut self) -> Option<Result<(), TagError>> {
        self.registered.take()
    }

    pub(super) fn has_decaying(&self, name: &str) -> bool {
        self.tags.has_decaying(name)
    }

    pub(super) fn is_protected(&self, peer: &PeerId, tag: Option<&str>) -> bool {
        self.tags.is_protected(peer, tag)
    }

    pub(super) fn tag_info(&self, peer: &PeerId) -> Option<TagInfo> {
        self.tags.tag_info(peer)
    }

    pub(super) fn len(&self) -> usize {
        self.tags.len()
    }

    pub(super) fn next_decay(&self) -> Option<Instant> {
        self.tags.next_decay_deadline()
    }

    /// When the oldest idle entry expires.
    pub(super) fn next_prune(&self) -> Option<Instant> {
        self.idle
            .front()
            .map(|(seen, _)| super::later(*seen, self.idle_ttl))
    }

    /// Forgets idle peers (tags, no connection, no protection) older than
    /// the idle time. Each queued peer is looked at once, so this costs
    /// what it removes.
    pub(super) fn prune(&mut self, now: Instant) {
        while let Some((seen, _)) = self.idle.front() {
            if super::later(*seen, self.idle_ttl) > now {
                break;
            }
            if let Some((seen, peer)) = self.idle.pop_front() {
                self.forget_if_still_idle(seen, peer);
            }
        }
        self.skip_stale_front();
    }

    /// Forgets `peer` if it is still the idle entry queued at `seen`.
    fn forget_if_still_idle(&mut self, seen: Instant, peer: PeerId) -> bool {
        if self.tags.idle_since(&peer) != Some(seen) {
            return false;
        }
        debug!(target: LOG, "forgetting {peer}: idle for {:?}", self.idle_ttl);
        self.tags.forget(&peer);
        self.dirty.insert(peer);
        true
    }

    /// Forgets each of `peers` that has nothing left (no tag, decaying
    /// value or connection), as after an untag, and marks them all for the
    /// next change set (a forgotten one is published as gone).
    fn forget_idle_and_mark(&mut self, peers: impl IntoIterator<Item = PeerId>) {
        for peer in peers {
            self.tags.forget_if_idle(&peer);
            self.dirty.insert(peer);
        }
        self.skip_stale_front();
    }

    /// Drops queued peers that are no longer idle from the front, so the
    /// next deadline is a real one; compacts the queue when stale entries
    /// pile up, keeping it within twice the book's bound.
    fn skip_stale_front(&mut self) {
        while let Some((seen, peer)) = self.idle.front() {
            if self.tags.idle_since(peer) == Some(*seen) {
                break;
            }
            self.idle.pop_front();
        }
        if self.idle.len() > 2 * self.max_peers.max(1) {
            let tags = &self.tags;
            self.idle
                .retain(|(seen, peer)| tags.idle_since(peer) == Some(*seen));
        }
    }

    /// Forgets the pruning queue: after a stop nothing is due.
    pub(super) fn clear_idle(&mut self) {
        self.idle.clear();
    }

    /// Queues a peer just tagged without a connection.
    fn queue_idle(&mut self, peer: &PeerId) {
        if let Some(seen) = self.tags.idle_since(peer) {
            self.idle.push_back((seen, peer.clone()));
            self.skip_stale_front();
        }
    }

    /// Makes room for one more peer that has no connection; false when the
    /// book is full of peers it must keep.
    fn make_room(&mut self, protecting: bool) -> bool {
        if protecting {
            return self.tags.protected_len() < self.max_peers;
        }
        if self.tags.len() < self.max_peers {
            return true;
        }
        while let Some((seen, peer)) = self.idle.pop_front() {
            if self.forget_if_still_idle(seen, peer) {
                return true;
            }
        }
        false
    }

    /// When a trim held off by the silence period becomes due, if the
    /// count is still above the high watermark.
    pub(super) fn next_trim(&self, count: usize) -> Option<Instant> {
        let policy = self.trim?;
        if count <= policy.high_watermark {
            return None;
        }
        Some(super::later(self.last_trim?, policy.silence))
    }

    /// Records that the connection `key` of a record closed.
    pub(super) fn closed(&mut self, id: ConnId, r: &Record) {
        if self.tags.is_empty() && self.live.is_none() {
            return;
        }
        let Some(peer) = r.peer_id() else {
            return;
        };
        if let Some(live) = &mut self.live {
            live.closed(&peer, id);
        }
        if self.tags.disconnected(&peer, id.0) {
            self.dirty.insert(peer);
        }
    }

    pub(super) fn take_changes(&mut self, changes: &mut Changes) {
        for peer in self.dirty.drain() {
            changes.peers.push(PeerChange {
                info: self.tags.tag_info(&peer),
                protections: self.tags.protections(&peer),
                peer,
            });
        }
        if std::mem::take(&mut self.decaying_changed) {
            changes.decaying = Some(self.tags.decaying_names());
        }
    }
}

impl Core {
    pub(super) fn on_tag(&mut self, now: Instant, peer: PeerId, change: TagChange) {
        let known = self.peers.tags.contains(&peer);
        if !self.admit(&peer, &change, known) {
            warn!(
                target: LOG,
                "peer book full ({} peers): {change:?} for {peer} dropped",
                self.peers.max_peers
            );
            self.stats.peers_refused += 1;
            return;
        }
        let tags = &mut self.peers.tags;
        let set = matches!(change, TagChange::Set(..));
        match change {
            TagChange::Set(name, value) => tags.tag(&peer, name, value, now),
            TagChange::Remove(name) => {
                tags.untag(&peer, &name);
                if tags.has_decaying(&name) {
                    let _ = tags.remove_decaying(&peer, &name);
                }
            }
            TagChange::Update(name, f) => {
                tags.upsert_tag(
                    &peer,
                    &name,
                    |v| guarded("tag update", || f(v)).unwrap_or(v),
                    now,
                );
            }
            TagChange::Protect(tag) => tags.protect(&peer, &tag),
            TagChange::Unprotect(tag) => {
                // Unprotected with no connection left: forgotten as if its
                // last connection closed now.
                if !tags.unprotect(&peer, &tag) && !tags.is_connected(&peer) {
                    tags.forget(&peer);
                }
            }
            TagChange::Bump(name, delta) => {
                if let Err(e) = tags.bump_decaying(&peer, &name, delta, now) {
                    warn!(target: LOG, "cannot bump {name} for {peer}: {e}");
                }
            }
        }
        // A peer new to the book takes its live connections; only one
        // with none can be idle. A set tag always leaves an entry.
        let kept = set || self.peers.tags.contains(&peer);
        if !known && kept && !self.attach_connections(&peer) {
            self.peers.queue_idle(&peer);
        }
        if set {
            self.peers.dirty.insert(peer);
        } else {
            self.peers.forget_idle_and_mark([peer]);
        }
    }

    /// Whether a change that may add `peer` to the book fits: peers with a
    /// live connection always do (connections have their own limits).
    fn admit(&mut self, peer: &PeerId, change: &TagChange, known: bool) -> bool {
        let protecting = match change {
            TagChange::Remove(_) | TagChange::Unprotect(_) => return true,
            TagChange::Protect(_) => !self.peers.tags.is_protected(peer, None),
            _ if known => return true,
            _ => false,
        };
        let connected = self.live_index().has(peer);
        connected || self.peers.make_room(protecting)
    }

    /// Gives connection `id` a new peer identity (for example the node id
    /// learned in a handshake), moving its connection to that peer.
    pub(super) fn on_set_peer(&mut self, now: Instant, id: ConnId, peer: PeerId) {
        let Some(r) = self.records.get(&id) else {
            return;
        };
        if !r.is_live() {
            // Not connected yet: only remember the name.
            if let Some(r) = self.records.get_mut(&id) {
                r.peer = Some(peer);
            }
            return;
        }
        let opened = r.opened_or_since().min(now);
        self.peers_closed(id);
        if let Some(r) = self.records.get_mut(&id) {
            r.peer = Some(peer);
        }
        self.peers_opened(id, opened);
        self.mark(id);
    }

    /// Records that connection `id` opened, for peers the tag store knows.
    /// Untagged peers cost nothing here: the store learns of their
    /// connections only when they are first tagged.
    pub(super) fn peers_opened(&mut self, id: ConnId, opened: Instant) {
        if self.peers.tags.is_empty() && self.peers.live.is_none() {
            return;
        }
        let Some(r) = self.records.get_mut(&id) else {
            return;
        };
        let Some(peer) = r.peer_id() else {
            return;
        };
        // Keep the id once built, so closing and trimming do not format
        // the address again.
        r.peer.get_or_insert_with(|| peer.clone());
        if let Some(live) = &mut self.peers.live {
            live.opened(peer.clone(), id, opened);
        }
        if self.peers.tags.contains(&peer) {
            self.peers.tags.connected(&peer, id.0, opened);
            self.peers.dirty.insert(peer);
            self.peers.skip_stale_front();
        }
    }

    /// Records that live connection `id` is closing (call while it is
    /// still tracked).
    pub(super) fn peers_closed(&mut self, id: ConnId) {
        if let Some(r) = self.records.get(&id) {
            self.peers.closed(id, r);
        }
    }

    /// Tells the tag store about every live connection of `peer`, when the
    /// store first hears of it; whether there was any.
    fn attach_connections(&mut self, peer: &PeerId) -> bool {
        let index = live_index(&mut self.records, &mut self.peers.live);
        let mut attached = false;
        for (key, opened) in index.of(peer) {
            self.peers.tags.connected(peer, key, opened);
            attached = true;
        }
        attached
    }

    /// The index of live connections by peer, built with one pass the
    /// first time it is needed (caching each record's peer id).
    fn live_index(&mut self) -> &LiveIndex {
        live_index(&mut self.records, &mut self.peers.live)
    }

    /// Runs decaying tags that are due.
    pub(super) fn decay_tags(&mut self, now: Instant) {
        if self.peers.next_decay().is_some_and(|at| at <= now) {
            self.peers.tags.tick(now);
            // A peer whose last decaying value decayed away is forgotten.
            let changed: Vec<PeerId> = self.peers.tags.peer_ids().cloned().collect();
            self.peers.forget_idle_and_mark(changed);
        }
    }

    /// Trims down to the low watermark when above the high one (or, when
    /// `explicit`, above the low one), at most once per silence period.
    /// One Core runs this, so trims never race each other.
    pub(super) fn maybe_trim<C>(&mut self, now: Instant, explicit: bool, out: &mut Vec<Effect<C>>) {
        let closed = self.trim_if_due(now, explicit, out);
        if explicit {
            out.push(Effect::TrimDone { closed });
        }
    }

    /// Runs a trim if one is due; what it closed.
    fn trim_if_due<C>(
        &mut self,
        now: Instant,
        explicit: bool,
        out: &mut Vec<Effect<C>>,
    ) -> Vec<ConnId> {
        let Some(policy) = self.peers.trim else {
            return Vec::new();
        };
        let count = self.connection_count();
        let due = match explicit {
            true => count > policy.low_watermark,
            false => policy.should_trim(count, self.peers.last_trim, now),
        };
        if !due {
            return Vec::new();
        }
        self.peers.last_trim = Some(now);
        self.stats.trims += 1;
        let ranked = self.trim_ranks(policy.grace, now);
        let victims: Vec<ConnId> = lowest_ranks(ranked, policy.low_watermark)
            .into_iter()
            .map(ConnId)
            .collect();
        info!(target: LOG, "trimming {} of {count} connections", victims.len());
        for id in &victims {
            self.close_for_policy(now, *id, CloseReason::Trimmed, out);
        }
        self.stats.last_trim_closed = victims.len();
        victims
    }

    /// The trimming rank of every established connection that may be
    /// trimmed at `now`: not protected (a permanent request counts as
    /// protected) and out of its grace period. Values come from one pass
    /// over the tag store, keyed by connection, so no peer id is hashed
    /// or compared unless some peer is protected.
    fn trim_ranks(&self, grace: Duration, now: Instant) -> Vec<Rank> {
        // Sized up front: rehashing 10,000 entries as the map grows was a
        // tenth of a trim.
        let mut values: IdMap<u64, i64> =
            IdMap::with_capacity_and_hasher(self.connection_count(), Default::default());
        values.extend(self.peers.tags.connection_values());
        let protections = self.peers.tags.has_protections();
        let mut ranked = Vec::with_capacity(self.connection_count());
        for (id, r) in self.records.iter().filter(|(_, r)| r.is_live()) {
            let opened = r.opened_or_since();
            let kept = r.is_permanent() || r.perms.contains(Permissions::NO_EVICT);
            if kept || !out_of_grace(opened, grace, now) {
                continue;
            }
            if protections
                && r.peer_id()
                    .is_some_and(|p| self.peers.is_protected(&p, None))
            {
                continue;
            }
            let value = values.get(&id.0).copied().unwrap_or(0);
            let inbound = r.direction() == Direction::Inbound;
            ranked.push(rank_of(id.0, value, inbound, opened));
        }
        ranked
    }

    /// Closes a connection chosen by a policy (trim, eviction, ban): an
    /// automatic one is replaced, a permanent one retried later.
    pub(super) fn close_for_policy<C>(
        &mut self,
        now: Instant,
        id: ConnId,
        reason: CloseReason,
        out: &mut Vec<Effect<C>>,
    ) {
        if self.records.get(&id).is_some_and(Record::is_live) {
            if reason == CloseReason::Trimmed {
                self.stats.trimmed += 1;
            }
            self.take_down(now, id, Teardown::Disconnect, reason, out);
        }
    }
}

/// The live index in `live`, built from `records` on first use; a free
/// function so that callers can keep using the Core's other fields while
/// they read it.
fn live_index<'a>(
    records: &mut IdMap<ConnId, Record>,
    live: &'a mut Option<LiveIndex>,
) -> &'a LiveIndex {
    live.get_or_insert_with(|| {
        let mut index = LiveIndex::with_capacity(records.values().filter(|r| r.is_live()).count());
        for (id, r) in records.iter_mut().filter(|(_, r)| r.is_live()) {
            if let Some(peer) = r.peer_id() {
                r.peer.get_or_insert_with(|| peer.clone());
                index.opened(peer, *id, r.opened_or_since());
            }
        }
        index
    })
}
