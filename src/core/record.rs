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
    /// When the record entered its state (set with
    /// [`set_since`](Self::set_since), which keeps the offsets below).
    since: Instant,
    /// When the current (or last) connection opened, as nanoseconds
    /// before `since` ([`NO_TIME`] for never): 8 bytes, not 16.
    opened_before: u64,
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
    /// When the next attempt is due, as nanoseconds after the record's
    /// `since` ([`NO_TIME`] for none).
    retry_after: u64,
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

/// What the node reported about an inbound peer, for eviction: 24 bytes
/// instead of the 56 that a `Duration` and two instants take, since every
/// record holds one (at 24 it also leaves the record's side its tag in
/// spare bits). Times are nanoseconds after the connection opened; the
/// ping is in microseconds, Bitcoin Core's unit for it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usefulness {
    /// Lowest round trip reported, in microseconds (at most 71 minutes;
    /// longer pings count as that).
    min_ping: u32,
    /// Last novel block and transaction, in nanoseconds after the open.
    last_block: u64,
    last_tx: u64,
    pub(crate) relay_txes: bool,
    pub(crate) bloom_filter: bool,
    pub(crate) relevant_services: bool,
    pub(crate) prefer_evict: bool,
}

/// The nanosecond count that stands for "no time" in a record: nothing
/// reported, never opened, no attempt due ([`nanos`] never gives it).
const NO_TIME: u64 = u64::MAX;

/// `d` in nanoseconds, one short of [`NO_TIME`] at most (584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).map_or(NO_TIME - 1, |n| n.min(NO_TIME - 1))
}

/// The duration a nanosecond count stands for, if any.
fn stored(n: u64) -> Option<Duration> {
    (n != NO_TIME).then(|| Duration::from_nanos(n))
}

/// The microsecond count that stands for "no ping reported".
const PING_UNREPORTED: u32 = u32::MAX;

impl Usefulness {
    /// Keeps the lowest round trip.
    pub(crate) fn note_ping(&mut self, rtt: Duration) {
        let micros = u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX);
        self.min_ping = self.min_ping.min(micros.min(PING_UNREPORTED - 1));
    }

    /// A novel block at `now`, on a connection opened at `opened`.
    pub(crate) fn note_block(&mut self, now: Instant, opened: Instant) {
        self.last_block = nanos(now.saturating_duration_since(opened));
    }

    /// A novel transaction at `now`, on a connection opened at `opened`.
    pub(crate) fn note_tx(&mut self, now: Instant, opened: Instant) {
        self.last_tx = nanos(now.saturating_duration_since(opened));
    }

    pub(crate) fn min_ping(&self) -> Option<Duration> {
        (self.min_ping != PING_UNREPORTED).then(|| Duration::from_micros(self.min_ping.into()))
    }

    pub(crate) fn last_block(&self, opened: Instant) -> Option<Instant> {
        stored(self.last_block).and_then(|d| opened.checked_add(d))
    }

    pub(crate) fn last_tx(&self, opened: Instant) -> Option<Instant> {
        stored(self.last_tx).and_then(|d| opened.checked_add(d))
    }
}

impl Default for Usefulness {
    /// Nothing reported: relays transactions, offers the services we
    /// need, no bloom filter, not discouraged.
    fn default() -> Self {
        Usefulness {
            min_ping: PING_UNREPORTED,
            last_block: NO_TIME,
            last_tx: NO_TIME,
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
            retry_after: NO_TIME,
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
            opened_before: NO_TIME,
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
            opened_before: 0,
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
        self.opened()
            .is_some_and(|at| now.saturating_duration_since(at) >= min)
    }

    /// Moves the record's state time to `now`, keeping when it opened and
    /// when its next attempt is due.
    pub(crate) fn set_since(&mut self, now: Instant) {
        let (opened, next) = (self.opened(), self.next_attempt());
        self.since = now;
        self.set_opened(opened);
        self.set_next_attempt(next);
    }

    /// When the current (or last) connection opened.
    pub(crate) fn opened(&self) -> Option<Instant> {
        stored(self.opened_before).and_then(|d| self.since.checked_sub(d))
    }

    /// When the current (or last) connection opened, or, for a record
    /// that never connected, when it entered its state.
    pub(crate) fn opened_or_since(&self) -> Instant {
        self.opened().unwrap_or(self.since)
    }

    /// Records when the connection opened (at or before `since`; a later
    /// instant counts as `since`).
    pub(crate) fn set_opened(&mut self, at: Option<Instant>) {
        self.opened_before = at.map_or(NO_TIME, |at| {
            nanos(self.since.saturating_duration_since(at))
        });
    }

    /// When the next attempt is due, for an outbound request.
    pub(crate) fn next_attempt(&self) -> Option<Instant> {
        stored(self.out()?.retry_after).and_then(|d| self.since.checked_add(d))
    }

    /// Records when the next attempt is due (at or after `since`; an
    /// earlier instant counts as `since`).
    pub(crate) fn set_next_attempt(&mut self, at: Option<Instant>) {
        let after = at.map_or(NO_TIME, |at| {
            nanos(at.saturating_duration_since(self.since))
        });
        if let Side::Out(o) = &mut self.side {
            o.retry_after = after;
        }
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
            next_attempt: self.next_attempt(),
            since_wall: None,
            next_attempt_wall: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_read_back_as_given() {
        let opened = Instant::now();
        let mut u = Usefulness::default();
        assert_eq!(
            (u.min_ping(), u.last_block(opened), u.last_tx(opened)),
            (None, None, None)
        );
        u.note_ping(Duration::from_millis(30));
        u.note_ping(Duration::from_millis(50));
        assert_eq!(u.min_ping(), Some(Duration::from_millis(30)));
        let later = opened + Duration::from_secs(90);
        u.note_block(later, opened);
        u.note_tx(opened + Duration::from_nanos(1), opened);
        assert_eq!(u.last_block(opened), Some(later));
        assert_eq!(u.last_tx(opened), Some(opened + Duration::from_nanos(1)));
        // A report stamped before the open counts as at the open.
        u.note_block(opened, later);
        assert_eq!(u.last_block(later), Some(later));
        u.note_ping(Duration::MAX);
        assert_eq!(u.min_ping(), Some(Duration::from_millis(30)));
        let mut slow = Usefulness::default();
        slow.note_ping(Duration::from_secs(365 * 86_400));
        assert_eq!(
            slow.min_ping(),
            Some(Duration::from_micros(u64::from(u32::MAX - 1)))
        );
    }

    #[test]
    fn record_times_survive_a_new_state_time() {
        let t0 = Instant::now();
        let out = OutPart::new(ConnType::Manual, true, false);
        let mut r = Record::outbound(None, out, t0);
        assert_eq!((r.since, r.opened(), r.next_attempt()), (t0, None, None));
        let up = t0 + Duration::from_secs(5);
        r.set_since(up);
        r.set_opened(Some(up));
        let down = up + Duration::from_secs(60);
        let retry = down + Duration::from_millis(1_500);
        r.set_since(down);
        r.set_next_attempt(Some(retry));
        assert_eq!(r.opened(), Some(up), "the open is kept across the change");
        assert_eq!(r.next_attempt(), Some(retry));
        r.set_next_attempt(None);
        assert_eq!(r.next_attempt(), None);
        // Out of order instants clamp to the state time instead of failing.
        r.set_opened(Some(down + Duration::from_secs(1)));
        r.set_next_attempt(Some(up));
        assert_eq!((r.opened(), r.next_attempt()), (Some(down), Some(down)));
        let inbound = Record::inbound("10.0.0.1:8333".parse().unwrap(), 1, t0);
        assert_eq!((inbound.opened(), inbound.next_attempt()), (Some(t0), None));
    }

    #[test]
    fn records_stay_small() {
        assert!(std::mem::size_of::<Usefulness>() <= 24);
        assert!(std::mem::size_of::<Record>() <= 136);
    }
}
