//! Peers: tags, protection and trimming, on top of the connections the
//! rest of the Core tracks.

use std::time::{Duration, Instant};

use log::info;

use super::{Core, Effect, Teardown, LOG};
use crate::policy::tags::{BumpFn, DecayFn, PeerId, TagInfo};
use crate::policy::trim::TrimCandidate;
use crate::runtime::snapshot::SnapshotStore;
use crate::types::{ConnId, ConnState};

/// A change to one peer's tags, carried from a caller to the Core.
pub enum TagChange {
    /// Set a tag.
    Set(String, i64),
    /// Remove a tag.
    Remove(String),
    /// Update a tag (missing tags start at 0).
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

impl Core {
    pub(super) fn on_register_decaying(&mut self, now: Instant, spec: DecayingSpec) {
        let DecayingSpec {
            name,
            interval,
            decay,
            bump,
        } = spec;
        if let Err(e) = self
            .tags
            .register_decaying(&name, interval, decay, bump, now)
        {
            log::warn!(target: LOG, "decaying tag {name} not registered: {e}");
        }
    }

    pub(super) fn on_tag(&mut self, now: Instant, peer: PeerId, change: TagChange) {
        let known = self.tags.contains(&peer);
        let tags = &mut self.tags;
        match change {
            TagChange::Set(name, value) => tags.tag(&peer, &name, value, now),
            TagChange::Remove(name) => {
                tags.untag(&peer, &name);
            }
            TagChange::Update(name, f) => {
                tags.upsert_tag(&peer, &name, f, now);
            }
            TagChange::Protect(tag) => tags.protect(&peer, &tag),
            TagChange::Unprotect(tag) => {
                tags.unprotect(&peer, &tag);
            }
            TagChange::Bump(name, delta) => {
                if let Err(e) = tags.bump_decaying(&peer, &name, delta, now) {
                    log::warn!(target: LOG, "cannot bump {name} for {peer}: {e}");
                }
            }
        }
        if !known && self.tags.contains(&peer) {
            self.attach_connections(&peer);
        }
        self.dirty_peers.insert(peer);
    }

    /// Gives connection `id` a new peer identity (for example the node id
    /// learned in a handshake), moving its connection to that peer.
    pub(super) fn on_set_peer(&mut self, now: Instant, id: ConnId, peer: PeerId) {
        let Some(opened) = self.live_since(id) else {
            // Not connected yet: only remember the name.
            if let Some(e) = self.outbound.get_mut(&id) {
                e.peer = Some(peer);
            }
            return;
        };
        self.track_close(id);
        if let Some(e) = self.outbound.get_mut(&id) {
            e.peer = Some(peer.clone());
        } else if let Some(e) = self.inbound.get_mut(&id) {
            e.peer = Some(peer.clone());
        }
        self.track_open(id, opened.min(now));
        self.mark(id);
    }

    /// When `id`'s established connection opened.
    fn live_since(&self, id: ConnId) -> Option<Instant> {
        if let Some(e) = self.outbound.get(&id) {
            return (e.state == ConnState::Established)
                .then(|| e.established_at.unwrap_or(e.since));
        }
        self.inbound.get(&id).map(|e| e.since)
    }

    /// The peer behind connection `id`.
    fn peer_of_conn(&self, id: ConnId) -> Option<PeerId> {
        match self.outbound.get(&id) {
            Some(e) => e.peer_id(),
            None => self.inbound.get(&id).map(|e| e.peer_id()),
        }
    }

    /// Records that connection `id` opened, for peers the tag store knows.
    /// Untagged peers cost nothing here: the store learns of their
    /// connections only when they are first tagged.
    pub(super) fn track_open(&mut self, id: ConnId, opened: Instant) {
        if self.tags.is_empty() {
            return;
        }
        let Some(peer) = self.peer_of_conn(id) else {
            return;
        };
        self.cache_peer(id, &peer);
        if self.tags.contains(&peer) {
            self.tags.connected(&peer, id.0, opened);
            self.dirty_peers.insert(peer);
        }
    }

    /// Keeps a connection's peer id once built, so that closing it and
    /// trimming do not format its address again.
    fn cache_peer(&mut self, id: ConnId, peer: &PeerId) {
        if let Some(e) = self.outbound.get_mut(&id) {
            e.peer.get_or_insert_with(|| peer.clone());
        } else if let Some(e) = self.inbound.get_mut(&id) {
            e.peer.get_or_insert_with(|| peer.clone());
        }
    }

    /// Records that connection `id` is closing (call before it leaves the
    /// maps).
    pub(super) fn track_close(&mut self, id: ConnId) {
        if self.tags.is_empty() {
            return;
        }
        if let Some(peer) = self.peer_of_conn(id).filter(|p| self.tags.contains(p)) {
            self.tags.disconnected(&peer, id.0);
            self.dirty_peers.insert(peer);
        }
    }

    /// Tells the tag store about every live connection of `peer`, when the
    /// store first hears of it.
    fn attach_connections(&mut self, peer: &PeerId) {
        let out = self
            .outbound
            .iter()
            .filter(|(_, e)| e.state == ConnState::Established);
        let out = out.filter(|(_, e)| e.peer_id().as_ref() == Some(peer));
        let out = out.map(|(id, e)| (id.0, e.established_at.unwrap_or(e.since)));
        let inb = self.inbound.iter().filter(|(_, e)| &e.peer_id() == peer);
        let live: Vec<(u64, Instant)> = out.chain(inb.map(|(id, e)| (id.0, e.since))).collect();
        for (key, opened) in live {
            self.tags.connected(peer, key, opened);
        }
    }

    /// Runs decaying tags that are due.
    pub(super) fn decay_tags(&mut self, now: Instant) {
        if self.tags.next_decay_deadline().is_some_and(|at| at <= now) {
            self.tags.tick(now);
            let peers: Vec<PeerId> = self.tags.peer_ids().cloned().collect();
            self.dirty_peers.extend(peers);
        }
    }

    /// Whether `peer` is protected by any tag.
    pub(super) fn is_protected(&self, peer: &PeerId) -> bool {
        self.tags.is_protected(peer, None)
    }

    /// When a trim held off by the silence period becomes due, if the
    /// count is still above the high watermark.
    pub(super) fn next_trim(&self) -> Option<Instant> {
        let policy = self.cfg.trim?;
        if self.connection_count() <= policy.high_watermark {
            return None;
        }
        Some(self.last_trim? + policy.silence)
    }

    /// Established connections, both directions.
    pub(super) fn connection_count(&self) -> usize {
        self.established_out + self.inbound.len()
    }

    /// Trims down to the low watermark when above the high one (or, when
    /// `explicit`, above the low one), at most once per silence period.
    /// One handler thread runs this, so trims never race each other.
    pub(super) fn maybe_trim<C>(&mut self, now: Instant, explicit: bool, out: &mut Vec<Effect<C>>) {
        let Some(policy) = self.cfg.trim else {
            return;
        };
        let count = self.connection_count();
        let due = if explicit {
            count > policy.low_watermark
                && self
                    .last_trim
                    .is_none_or(|at| now.saturating_duration_since(at) >= policy.silence)
        } else {
            policy.should_trim(count, self.last_trim, now)
        };
        if !due {
            return;
        }
        self.last_trim = Some(now);
        self.stats.trims += 1;
        let victims = policy.select(&self.trim_candidates(), now);
        info!(target: LOG, "trimming {} of {count} connections", victims.len());
        for key in victims {
            self.close_for_policy(now, ConnId(key), out);
        }
    }

    /// Every established connection as the trimmer sees it; a permanent
    /// request counts as protected.
    fn trim_candidates(&self) -> Vec<TrimCandidate> {
        // Peer ids matter only once some peer is tagged or protected;
        // until then every candidate shares one empty id (no allocation).
        let named = !self.tags.is_empty() || self.tags.has_protections();
        let anonymous = PeerId::from("");
        let name = |id: &dyn Fn() -> Option<PeerId>| {
            if named {
                id()
            } else {
                Some(anonymous.clone())
            }
        };
        let mut all = Vec::with_capacity(self.connection_count());
        for (id, e) in &self.outbound {
            if e.state != ConnState::Established {
                continue;
            }
            if let Some(p) = name(&|| e.peer_id()) {
                let opened = e.established_at.unwrap_or(e.since);
                all.push(self.candidate(*id, false, opened, e.req.is_permanent(), p));
            }
        }
        for (id, e) in &self.inbound {
            if let Some(p) = name(&|| Some(e.peer_id())) {
                all.push(self.candidate(*id, true, e.since, false, p));
            }
        }
        all
    }

    fn candidate(
        &self,
        id: ConnId,
        inbound: bool,
        opened: Instant,
        permanent: bool,
        peer: PeerId,
    ) -> TrimCandidate {
        TrimCandidate {
            key: id.0,
            inbound,
            opened,
            protected: permanent || self.is_protected(&peer),
            value: self.tags.value(&peer),
            peer,
        }
    }

    /// Closes a connection chosen by a policy (trim, eviction, ban): an
    /// automatic one is replaced, a permanent one retried later.
    pub(super) fn close_for_policy<C>(
        &mut self,
        now: Instant,
        id: ConnId,
        out: &mut Vec<Effect<C>>,
    ) {
        self.stats.trimmed += 1;
        if self.inbound.contains_key(&id) {
            self.close_inbound(id, out);
        } else {
            self.take_down(now, id, Teardown::Disconnect, out);
        }
    }

    /// Publishes the tag info of every peer that changed.
    pub(super) fn publish_peers(&mut self, store: &mut SnapshotStore) {
        for peer in self.dirty_peers.drain() {
            let info: Option<TagInfo> = self.tags.tag_info(&peer);
            store.set_peer(peer, info);
        }
    }
}
