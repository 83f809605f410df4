//! The inbound slots: accepting within the limit, eviction when full, and
//! what the node reports about its peers.

use std::time::Instant;

use log::{debug, info};
use rand::rngs::SmallRng;
use rand::RngExt;

use super::info::Refusal;
use super::record::{Record, Side};
use super::sources::{SourceCounts, SourceFull};
use super::{Core, CoreConfig, Effect, PeerReport, Teardown, LOG};
use crate::addr::Addr;
use crate::policy::eviction::{CandidateNet, EvictionCandidate, EvictionKey, EvictionPolicy};
use crate::policy::permissions::Permissions;
use crate::types::{CloseReason, ConnId, Direction};

/// The inbound limit, the eviction switch and key, and the live count.
pub(super) struct InboundSlots {
    max: usize,
    evict: bool,
    /// How many peers each eviction rule protects.
    policy: EvictionPolicy,
    /// How far past `max` force-inbound peers may go.
    margin: usize,
    /// Live inbound per IP and per netgroup, against their limits.
    sources: SourceCounts,
    /// Keys the netgroup hash eviction protects by; drawn from the Core's
    /// seeded generator so that it is secret yet reproducible.
    key: EvictionKey,
    live: usize,
}

impl InboundSlots {
    pub(super) fn new(cfg: &CoreConfig, rng: &mut SmallRng) -> Self {
        InboundSlots {
            max: cfg.max_inbound,
            evict: cfg.evict_inbound,
            policy: cfg.eviction_policy,
            margin: cfg.force_inbound_margin,
            sources: SourceCounts::new(cfg.max_inbound_per_ip, cfg.max_inbound_per_netgroup),
            key: EvictionKey::from_keys(rng.random(), rng.random()),
            live: 0,
        }
    }

    pub(super) fn live(&self) -> usize {
        self.live
    }

    /// An inbound connection from `addr` closed.
    pub(super) fn release(&mut self, addr: Option<&Addr>) {
        self.live = self.live.saturating_sub(1);
        if let Some(addr) = addr {
            self.sources.closed(addr);
        }
    }

    /// Per-source entries held (zero once every inbound connection is gone).
    pub(super) fn tracked(&self) -> usize {
        self.sources.len()
    }

    fn has_room(&self) -> bool {
        self.live < self.max
    }
}

impl Core {
    pub(super) fn on_report(&mut self, now: Instant, id: ConnId, report: PeerReport) {
        let Some(r) = self.records.get_mut(&id) else {
            return;
        };
        let opened = r.opened_or_since();
        let Side::In(u) = &mut r.side else {
            return; // only inbound eviction uses reports
        };
        match report {
            PeerReport::Ping(rtt) => u.note_ping(rtt),
            PeerReport::NovelBlock => u.note_block(now, opened),
            PeerReport::NovelTx => u.note_tx(now, opened),
            PeerReport::RelaysTxs(on) => u.relay_txes = on,
            PeerReport::BloomFilter(on) => u.bloom_filter = on,
            PeerReport::RelevantServices(on) => u.relevant_services = on,
            PeerReport::PreferEvict => u.prefer_evict = true,
        }
    }

    pub(super) fn on_accepted<C>(
        &mut self,
        now: Instant,
        conn: C,
        remote: Addr,
        out: &mut Vec<Effect<C>>,
    ) {
        let perms = self.perms_for(&remote);
        if let Some((refusal, why)) = self.refuse_inbound(now, &remote, perms, out) {
            self.stats.inbound_refused += 1;
            self.stats.refusals.count(refusal);
            debug!(target: LOG, "refusing inbound {remote}: {why}");
            out.push(Effect::Discard { conn });
            return;
        }
        let id = self.mint_id();
        self.next_serial += 1;
        let serial = self.next_serial;
        self.addr_use.add(&remote);
        self.inb.sources.opened(&remote);
        let mut record = Record::inbound(remote.clone(), serial, now);
        record.perms = perms;
        self.records.insert(id, record);
        self.inb.live += 1;
        self.stats.inbound_accepted += 1;
        self.stats.peak_inbound = self.stats.peak_inbound.max(self.inb.live);
        info!(target: LOG, "accepted {remote} ({id})");
        out.push(Effect::Established {
            req: None,
            id,
            serial,
            addr: remote,
            direction: Direction::Inbound,
            conn,
        });
        self.mark(id);
        self.peers_opened(id, now);
    }

    /// Why a newcomer from `remote` cannot have a slot, if it cannot.
    /// When slots are full and eviction is on, makes room instead. The
    /// per-source limits come before eviction, so a flood from one source
    /// is refused rather than evicting other peers.
    fn refuse_inbound<C>(
        &mut self,
        now: Instant,
        remote: &Addr,
        perms: Permissions,
        out: &mut Vec<Effect<C>>,
    ) -> Option<(Refusal, String)> {
        if self.stopped {
            return Some((Refusal::Stopping, "the manager is stopping".into()));
        }
        let noban = perms.contains(Permissions::NOBAN);
        if let Some(ban) = self.bans.ban_for_addr(remote, now).filter(|_| !noban) {
            return Some((Refusal::Banned, format!("banned: {}", ban.reason)));
        }
        let force = perms.contains(Permissions::FORCE_INBOUND);
        match self.inb.sources.full(remote).filter(|_| !force) {
            Some(SourceFull::Ip) => {
                return Some((Refusal::PerIp, "its IP has the most inbound allowed".into()))
            }
            Some(SourceFull::NetGroup) => {
                let why = "its netgroup has the most inbound allowed".into();
                return Some((Refusal::PerNetGroup, why));
            }
            None => {}
        }
        if self.inb.has_room() {
            return None;
        }
        let full = format!("{} of {} slots used", self.inb.live, self.inb.max);
        if !self.inb.evict && !force {
            return Some((Refusal::Full, full));
        }
        match self
            .inb
            .policy
            .select_to_evict(self.eviction_candidates(), now)
        {
            Some(victim) => {
                let victim = ConnId(victim);
                info!(target: LOG, "evicting inbound {victim} for {remote}");
                self.stats.evicted += 1;
                self.close_for_policy(now, victim, CloseReason::Evicted, out);
                None
            }
            // A force-inbound peer may still take a slot past the limit.
            None if force && self.inb.live < self.inb.max.saturating_add(self.inb.margin) => {
                info!(target: LOG, "force-inbound {remote} past the limit ({full})");
                None
            }
            None => Some((
                Refusal::Full,
                format!("{full}, all protected from eviction"),
            )),
        }
    }

    /// Every inbound connection as the eviction rules see it.
    fn eviction_candidates(&self) -> Vec<EvictionCandidate> {
        self.records
            .iter()
            .filter_map(|(id, r)| match (&r.side, &r.addr) {
                (Side::In(u), Some(addr)) => Some((id, r, u, addr)),
                _ => None,
            })
            .map(|(id, r, u, addr)| {
                let group = self.inb.key.keyed_netgroup(&addr.netgroup());
                let opened = r.opened_or_since();
                let mut c =
                    EvictionCandidate::new(id.0, opened, group, CandidateNet::from_addr(addr));
                c.min_ping = u.min_ping();
                c.last_block = u.last_block(opened);
                c.last_tx = u.last_tx(opened);
                c.relevant_services = u.relevant_services;
                c.relay_txes = u.relay_txes;
                c.bloom_filter = u.bloom_filter;
                c.prefer_evict = u.prefer_evict;
                c.noban = r.perms.keeps()
                    || r.peer_id()
                        .is_some_and(|p| self.peers.is_protected(&p, None));
                c
            })
            .collect()
    }

    pub(super) fn on_closed<C>(
        &mut self,
        now: Instant,
        id: ConnId,
        serial: u64,
        out: &mut Vec<Effect<C>>,
    ) {
        if self.is_current_conn(id, serial) {
            self.take_down(now, id, Teardown::Disconnect, CloseReason::Closed, out);
        }
    }
}
