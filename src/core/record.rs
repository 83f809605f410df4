//! One record per request or connection, whichever side opened it.

use std::time::{Duration, Instant};

use crate::addr::Addr;
use crate::core::info::ConnInfo;
use crate::policy::banscore::DynamicBanScore;
use crate::policy::tags::PeerId;
use crate::types::{ConnId, ConnState, Direction};

/// The default identity of the peer at `addr`: its address text.
pub fn default_peer_id(addr: &Addr) -> PeerId {
    PeerId::from(addr.to_string())
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
    pub(crate) automatic: bool,
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
}

/// What the node reported about an inbound peer, for eviction.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usefulness {
    pub(crate) min_ping: Option<Duration>,
    pub(crate) last_block: Option<Instant>,
    pub(crate) last_tx: Option<Instant>,
}

impl Record {
    pub(crate) fn outbound(
        addr: Option<Addr>,
        permanent: bool,
        automatic: bool,
        now: Instant,
    ) -> Self {
        Record {
            addr,
            peer: None,
            score: None,
            serial: 0,
            state: ConnState::Pending,
            since: now,
            opened: None,
            side: Side::Out(OutPart {
                permanent,
                automatic,
                retries: 0,
                attempt: 0,
                dialing: false,
                next_attempt: None,
                holds_group: false,
                source_tries: 0,
            }),
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
        self.out().is_some_and(|o| o.automatic)
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
            automatic: out.is_some_and(|o| o.automatic),
            peer: self.peer.clone(),
            retries: out.map_or(0, |o| o.retries),
            since: self.since,
            next_attempt: out.and_then(|o| o.next_attempt),
            since_wall: None,
            next_attempt_wall: None,
        }
    }
}
