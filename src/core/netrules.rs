//! Per-network outbound rules in the Core: which networks automatic and
//! feeler requests may use, at most how many automatic connections each
//! network holds, and full-relay slots reserved for networks below their
//! minimum.
//!
//! A minimum reserves slots rather than adding any: when the full-relay
//! slots still free are no more than the connections some network still
//! needs, a new full-relay request takes only addresses on that network.
//! A reserved request that the source cannot serve (it offers nothing on
//! that network) pauses reservations for the longest retry wait, so that a
//! network with no known addresses cannot keep a slot empty.

use std::time::{Duration, Instant};

use log::debug;

use super::record::OutPart;
use super::{later, Core, LOG};
use crate::addr::Addr;
use crate::policy::networks::{Network, NetworkRules};
use crate::types::{ConnId, ConnType};

/// The rules and what automatic requests hold on each network.
#[derive(Debug, Default)]
pub(super) struct NetBook {
    rules: NetworkRules,
    /// Automatic requests (either type) holding an address on each
    /// network, in any state.
    held: [usize; 5],
    /// Full-relay requests holding an address on each network.
    held_full: [usize; 5],
    /// Full-relay requests kept for each network, waiting for an address.
    reserved: [usize; 5],
    /// No reservations before this (the source had nothing for one).
    paused_until: Option<Instant>,
    /// How long a failed reservation pauses them.
    pause: Duration,
}

impl NetBook {
    pub(super) fn new(rules: NetworkRules, pause: Duration) -> Self {
        NetBook {
            rules,
            pause,
            ..NetBook::default()
        }
    }

    /// The network a new full-relay request must use, with `free` slots
    /// (this one included) still to fill, if some network needs it.
    pub(super) fn reserve(&mut self, free: usize, now: Instant) -> Option<Network> {
        if !self.rules.has_minimums() || self.paused_until.is_some_and(|t| now < t) {
            return None;
        }
        let deficit = |n: Network| {
            let have = self.held_full[n.index()] + self.reserved[n.index()];
            self.rules.min(n).saturating_sub(have)
        };
        let total: usize = Network::ALL.into_iter().map(deficit).sum();
        let net = Network::ALL.into_iter().find(|n| deficit(*n) > 0)?;
        (total >= free).then(|| {
            self.reserved[net.index()] += 1;
            net
        })
    }

    /// Why an automatic or feeler request of `part` cannot use `addr`.
    pub(super) fn refuses(&self, part: &OutPart, addr: &Addr) -> Option<&'static str> {
        if !part.kind.is_made_by_manager() {
            return None;
        }
        let automatic = part.is_automatic();
        let net = Network::of(addr);
        if !self.rules.allows(net) {
            return Some("its network is not among the allowed ones");
        }
        if let (Some(need), true) = (part.needs, net != part.needs) {
            debug!(target: LOG, "slot kept for {need}");
            return Some("the slot is kept for another network");
        }
        let full = |n: Network| self.rules.max(n).is_some_and(|m| self.held[n.index()] >= m);
        if automatic && net.is_some_and(full) {
            return Some("its network has the most automatic connections allowed");
        }
        None
    }

    /// An automatic request of `part` took `addr`: count it; whether it
    /// holds a network.
    pub(super) fn take(&mut self, part: &mut OutPart, addr: &Addr) {
        if let Some(need) = part.needs.take() {
            self.reserved[need.index()] = self.reserved[need.index()].saturating_sub(1);
        }
        let Some(net) = Network::of(addr).filter(|_| part.is_automatic()) else {
            return;
        };
        self.held[net.index()] += 1;
        if part.kind == ConnType::FullRelay {
            self.held_full[net.index()] += 1;
        }
        part.holds_network = true;
    }

    /// A request of `part` at `addr` finished.
    pub(super) fn release(&mut self, part: &OutPart, addr: Option<&Addr>) {
        if let Some(need) = part.needs {
            self.reserved[need.index()] = self.reserved[need.index()].saturating_sub(1);
        }
        let net = addr.and_then(Network::of).filter(|_| part.holds_network);
        if let Some(net) = net {
            let i = net.index();
            self.held[i] = self.held[i].saturating_sub(1);
            if part.kind == ConnType::FullRelay {
                self.held_full[i] = self.held_full[i].saturating_sub(1);
            }
        }
    }

    /// A reserved request found nothing on its network.
    pub(super) fn reservation_failed(&mut self, net: Network, now: Instant) {
        debug!(target: LOG, "no address on {net}; pausing reservations");
        self.paused_until = Some(later(now, self.pause));
    }
}

impl Core {
    /// Keeps the new full-relay request `id` for a network below its
    /// minimum, if the free slots are needed for that.
    pub(super) fn reserve_slot(&mut self, id: ConnId, now: Instant) {
        let free = self.out.full_free();
        if let Some(net) = self.out.nets.reserve(free, now) {
            if let Some(o) = self.records.get_mut(&id).and_then(|r| r.out_mut()) {
                o.needs = Some(net);
            }
        }
    }
}
