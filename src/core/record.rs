//! One record per request or connection, whichever side opened it.

use std::time::{Duration, Instant};

use crate::addr::Addr;
use crate::core::info::ConnInfo;
use crate::policy::banscore::DynamicBanScore;
use crate::policy::networks::Network;
use crate::policy::permissions::Permissions;
use crate::policy::tags::PeerId;
use crate::types::{ConnId, ConnState, ConnType, Direction};

/// The default identity of the peer at `addr`: its address text.
pub fn default_peer_id(addr: &Addr) -> PeerId {
    addr.with_text(|text| PeerId::from(text))
}

/// What the Core tracks for one id.
pub(crate) struct Record {
    /// The peer's address (`None` while an automatic request waits for
    /// the address source).
    pub(crate) addr: Option<Addr>,
    /// The peer id set with `SetPeer`, or the address text cached once
    /// built; `None` means the address text.
    pub(crate) peer: Option<PeerId>,
    /// Misbehaviour score of the current connection, kept only for
    /// connections that misbehaved.
    pub(crate) score: Option<Box<DynamicBanScore>>,
    /// The incarnation of the current connection (0 before the first).
    pub(crate) serial: u64,
    pub(crate) state: ConnState,
    /// When the record entered its state.
    pub(crate) since: Instant,
    /// When the current (or last) connection opened.
    pub(crate) opened: Option<Instant>,
    pub(crate) side: Side,
    /// What the peer may do (from the request and the subnet table).
    pub(crate) perms: Permissions,
    /// Queued for the next change set.
    pub(crate) dirty: bool,
}

/// The part of a record only one direction has.
pub(crate) enum Side {
    Out(OutPart),
    In(Usefulness),
}

/// An outbound request's retry and sourcing state.
pub(crate) struct OutPart {
    pub(crate) permanent: bool,
    pub(crate) kind: ConnType,
    /// A manual request the caller marked block-relay-only.
    pub(crate) blocks_only: bool,
    /// Consecutive failed attempts since the last stable connection.
    pub(crate) retries: u32,
    /// Numbers dials, so a late answer to an old one is recognised.
    pub(crate) attempt: u64,
    /// Whether dial `attempt` is in flight.
    pub(crate) dialing: bool,
    pub(crate) next_attempt: Option<Instant>,
    /// The netgroup this automatic request holds for the diversity rule.
    pub(crate) holds_group: bool,
    /// Addresses the source gave that could not be used, for this request.
    pub(crate) source_tries: u8,
    /// Whether this automatic request counts against its address's
    /// network.
    pub(crate) holds_network: bool,
    /// The network a full-relay slot is kept for, until it has an address.
    pub(crate) needs: Option<Network>,
    /// A manual request that may dial a peer already in use.
    pub(crate) allow_duplicate: bool,
}

/// What the node reported about an inbound peer, for eviction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usefulness {
    pub(crate) min_ping: Option<Duration>,
    pub(crate) last_block: Option<Instant>,
    pub(crate) last_tx: Option<Instant>,
    pub(crate) relay_txes: bool,
    pub(crate) bloom_filter: bool,
    pub(crate) relevant_services: bool,
    pub(crate) prefer_evict: bool,
}

impl Default for Usefulness {
    /// Nothing reported: relays transactions, offers the services we
    /// need, no bloom filter, not discouraged.
    fn default() -> Self {
        Usefulness {
            min_ping: None,
            last_block: None,
            last_tx: None,
            relay_txes: true,
            bloom_filter: false,
            relevant_services: true,
            prefer_evict: false,
        }
    }
}

impl OutPart {
    /// A fresh request of `kind`.
    pub(crate) fn new(kind: ConnType, permanent: bool, blocks_only: bool) -> Self {
        OutPart {
            permanent,
            kind,
            blocks_only,
            retries: 0,
            attempt: 0,
            dialing: false,
            next_attempt: None,
            holds_group: false,
            source_tries: 0,
            holds_network: false,
            needs: None,
            allow_duplicate: false,
        }
    }

    /// A fresh request as `spec` describes it.
    pub(crate) fn for_spec(spec: &crate::core::ReqSpec) -> Self {
        OutPart {
            allow_duplicate: spec.allow_duplicate,
            ..Self::new(spec.conn_type, spec.permanent, spec.block_relay_only)
        }
    }

    pub(crate) fn is_automatic(&self) -> bool {
        self.kind.is_automatic()
    }

    /// Whether the node should relay blocks only.
    pub(crate) fn block_relay_only(&self) -> bool {
        self.blocks_only || self.kind == ConnType::BlockRelay
    }
}

impl Record {
    pub(crate) fn outbound(addr: Option<Addr>, out: OutPart, now: Instant) -> Self {
        Record {
            addr,
            peer: None,
            score: None,
            serial: 0,
            state: ConnState::Pending,
            since: now,
            opened: None,
            side: Side::Out(out),
            perms: Permissions::NONE,
            dirty: false,
        }
    }

    pub(crate) fn inbound(addr: Addr, serial: u64, now: Instant) -> Self {
        Record {
            addr: Some(addr),
            peer: None,
            score: None,
            serial,
            state: ConnState::Established,
            since: now,
            opened: Some(now),
            side: Side::In(Usefulness::default()),
            perms: Permissions::NONE,
            dirty: false,
        }
    }

    pub(crate) fn out(&self) -> Option<&OutPart> {
        match &self.side {
            Side::Out(o) => Some(o),
            Side::In(_) => None,
        }
    }

    pub(crate) fn out_mut(&mut self) -> Option<&mut OutPart> {
        match &mut self.side {
            Side::Out(o) => Some(o),
            Side::In(_) => None,
        }
    }

    pub(crate) fn direction(&self) -> Direction {
        match self.side {
            Side::Out(_) => Direction::Outbound,
            Side::In(_) => Direction::Inbound,
        }
    }

    pub(crate) fn is_live(&self) -> bool {
        self.state == ConnState::Established
    }

    pub(crate) fn is_automatic(&self) -> bool {
        self.out().is_some_and(OutPart::is_automatic)
    }

    /// What the request or connection is for.
    pub(crate) fn conn_type(&self) -> ConnType {
        self.out().map_or(ConnType::Inbound, |o| o.kind)
    }

    pub(crate) fn is_permanent(&self) -> bool {
        self.out().is_some_and(|o| o.permanent)
    }

    /// The peer behind this record, if its address is known.
    pub(crate) fn peer_id(&self) -> Option<PeerId> {
        self.peer
            .clone()
            .or_else(|| self.addr.as_ref().map(default_peer_id))
    }

    /// Whether the current connection has been up at least `min`.
    pub(crate) fn was_stable(&self, min: Duration, now: Instant) -> bool {
        self.opened
            .is_some_and(|at| now.saturating_duration_since(at) >= min)
    }

    /// The record as callers see it.
    pub(crate) fn info(&self, id: ConnId) -> ConnInfo {
        let out = self.out();
        ConnInfo {
            id,
            addr: self.addr.clone(),
            direction: self.direction(),
            state: self.state,
            permanent: out.is_some_and(|o| o.permanent),
            conn_type: self.conn_type(),
            block_relay_only: out.is_some_and(OutPart::block_relay_only),
            permissions: self.perms,
            peer: self.peer.clone(),
            retries: out.map_or(0, |o| o.retries),
            since: self.since,
            next_attempt: out.and_then(|o| o.next_attempt),
            since_wall: None,
            next_attempt_wall: None,
        }
    }
}
