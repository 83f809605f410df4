//! Inbound connections: accepting within the limit, closing, and what the
//! node reports about them.

use std::time::Instant;

use log::{debug, info};

use super::{Core, CoreEvent, Effect, InEntry, PeerReport, Teardown, Usefulness, LOG};
use crate::addr::Addr;
use crate::conn::{ConnId, ConnState, Direction};
use crate::snapshot::ConnInfo;

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
        if self.stopped || self.inbound.len() >= self.cfg.max_inbound {
            self.stats.inbound_refused += 1;
            debug!(target: LOG, "refusing inbound {remote}: {} of {} slots used",
                self.inbound.len(), self.cfg.max_inbound);
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
        retries: 0,
        since: e.since,
        next_attempt: None,
    }
}
