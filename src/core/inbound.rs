//! Inbound connections: accepting within the limit, closing, and what the
//! node reports about them.

use std::time::Instant;

use log::{debug, info};

use super::{Core, CoreEvent, Effect, InEntry, PeerReport, Teardown, Usefulness, LOG};
use crate::addr::Addr;
use crate::core::info::ConnInfo;
use crate::policy::eviction::{CandidateNet, EvictionCandidate, EvictionPolicy};
use crate::types::{ConnId, ConnState, Direction};

impl Core {
    pub(super) fn on_report(&mut self, now: Instant, id: ConnId, report: PeerReport) {
        let Some(e) = self.inbound.get_mut(&id) else {
            return; // only inbound eviction uses reports
        };
        let u = &mut e.usefulness;
        match report {
            PeerReport::Ping(rtt) => u.min_ping = Some(u.min_ping.map_or(rtt, |p| p.min(rtt))),
            PeerReport::NovelBlock => u.last_block = Some(now),
            PeerReport::NovelTx => u.last_tx = Some(now),
        }
    }

    pub(super) fn on_accepted<C>(
        &mut self,
        now: Instant,
        conn: C,
        remote: Addr,
        out: &mut Vec<Effect<C>>,
    ) {
        if let Some(why) = self.refuse_inbound(now, &remote, out) {
            self.stats.inbound_refused += 1;
            debug!(target: LOG, "refusing inbound {remote}: {why}");
            out.push(Effect::Discard { conn });
            return;
        }
        let id = self.ids.next();
        self.next_serial += 1;
        let serial = self.next_serial;
        self.inbound.insert(
            id,
            InEntry {
                addr: remote.clone(),
                peer: None,
                score: None,
                serial,
                since: now,
                usefulness: Usefulness::default(),
                dirty: false,
            },
        );
        self.stats.inbound_accepted += 1;
        self.stats.peak_inbound = self.stats.peak_inbound.max(self.inbound.len());
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
        self.track_open(id, now);
    }

    /// Why a newcomer from `remote` cannot have a slot, if it cannot.
    /// When slots are full and eviction is on, makes room instead.
    fn refuse_inbound<C>(
        &mut self,
        now: Instant,
        remote: &Addr,
        out: &mut Vec<Effect<C>>,
    ) -> Option<String> {
        if self.stopped {
            return Some("the manager is stopping".into());
        }
        if let Some(ban) = self.ban_on(remote.ip(), now) {
            return Some(format!("banned: {}", ban.reason));
        }
        if self.inbound.len() < self.cfg.max_inbound {
            return None;
        }
        let full = format!(
            "{} of {} slots used",
            self.inbound.len(),
            self.cfg.max_inbound
        );
        if !self.cfg.evict_inbound {
            return Some(full);
        }
        match EvictionPolicy::default().select_to_evict(self.eviction_candidates(), now) {
            Some(victim) => {
                info!(target: LOG, "evicting inbound {} for {remote}", ConnId(victim));
                self.stats.evicted += 1;
                self.stats.trimmed += 1;
                self.close_inbound(ConnId(victim), out);
                None
            }
            None => Some(format!("{full}, all protected from eviction")),
        }
    }

    /// Every inbound connection as the eviction rules see it.
    fn eviction_candidates(&self) -> Vec<EvictionCandidate> {
        self.inbound
            .iter()
            .map(|(id, e)| {
                let group = self.eviction_key.keyed_netgroup(&e.addr.netgroup());
                let mut c =
                    EvictionCandidate::new(id.0, e.since, group, CandidateNet::from_addr(&e.addr));
                c.min_ping = e.usefulness.min_ping;
                c.last_block = e.usefulness.last_block;
                c.last_tx = e.usefulness.last_tx;
                c.relevant_services = true;
                c.noban = self.is_protected(&e.peer_id());
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
        if matches!(self.inbound.get(&id), Some(e) if e.serial == serial) {
            self.close_inbound(id, out);
            return;
        }
        let current = matches!(self.outbound.get(&id),
            Some(e) if e.serial == serial && e.state == ConnState::Established);
        if current {
            self.take_down(now, id, Teardown::Disconnect, out);
        }
    }

    /// Closes an inbound connection and frees its slot (once: the entry
    /// leaves the map here).
    pub(super) fn close_inbound<C>(&mut self, id: ConnId, out: &mut Vec<Effect<C>>) {
        if self.inbound.contains_key(&id) {
            self.track_close(id);
        }
        if let Some(e) = self.inbound.remove(&id) {
            self.stats.closed += 1;
            self.removed.push(id);
            info!(target: LOG, "inbound {} closed ({id})", e.addr);
            out.push(Effect::Close { serial: e.serial });
            out.push(Effect::Notify(CoreEvent::InboundClosed {
                id,
                addr: e.addr,
            }));
        }
    }
}

pub(super) fn in_info(id: ConnId, e: &InEntry) -> ConnInfo {
    ConnInfo {
        id,
        addr: Some(e.addr.clone()),
        direction: Direction::Inbound,
        state: ConnState::Established,
        permanent: false,
        automatic: false,
        peer: e.peer.clone(),
        retries: 0,
        since: e.since,
        next_attempt: None,
    }
}
