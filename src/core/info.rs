//! What the Core reports about each request and connection, and its
//! running totals: plain values the shell publishes as they are.

use std::time::{Instant, SystemTime};

use crate::policy::permissions::Permissions;
use crate::policy::trim::TrimPolicy;

use crate::addr::Addr;
use crate::policy::tags::PeerId;
use crate::types::{CloseReason, ConnId, ConnState, ConnType, Direction};

/// One request or inbound connection as last published.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
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
    /// What it is for.
    pub conn_type: ConnType,
    /// Whether the node should relay blocks only over it (block-relay
    /// connections, and manual requests marked so).
    pub block_relay_only: bool,
    /// What the peer may do: the request's permissions and those of every
    /// configured subnet its address is in.
    pub permissions: Permissions,
    /// The peer id: the one given with `set_peer_id`, or the address text
    /// once the manager needed it; `None` also means the address text.
    pub peer: Option<PeerId>,
    /// Consecutive failed attempts since the last stable connection.
    pub retries: u32,
    /// When it entered its current state (on the manager's clock).
    #[cfg_attr(feature = "serde", serde(skip))]
    pub since: Instant,
    /// When the next attempt is due, if one is scheduled.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub next_attempt: Option<Instant>,
    /// [`since`](Self::since) on the wall clock, in the manager's
    /// snapshots and `conn_info` (`None` from a bare Core).
    pub since_wall: Option<SystemTime>,
    /// [`next_attempt`](Self::next_attempt) on the wall clock, likewise.
    pub next_attempt_wall: Option<SystemTime>,
}

impl ConnInfo {
    /// Whether the manager made it to fill a target (full-relay or
    /// block-relay-only).
    pub fn is_automatic(&self) -> bool {
        self.conn_type.is_automatic()
    }

    /// The fields [`Counts`] sorts this entry by.
    pub(crate) fn count_key(&self) -> CountKey {
        CountKey {
            state: self.state,
            direction: self.direction,
            conn_type: self.conn_type,
            permanent: self.permanent,
            block_relay_only: self.block_relay_only,
        }
    }
}

/// The fields of an entry that [`Counts`] sorts it by, which the snapshot
/// store also keeps as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CountKey {
    pub(crate) state: ConnState,
    pub(crate) direction: Direction,
    pub(crate) conn_type: ConnType,
    pub(crate) permanent: bool,
    pub(crate) block_relay_only: bool,
}

/// How many requests and connections are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
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
    /// Established automatic (target-filling) outbound connections:
    /// full-relay and block-relay-only.
    pub automatic_outbound: usize,
    /// Established full-relay automatic connections.
    pub full_relay_outbound: usize,
    /// Established block-relay-only connections, automatic or manual.
    pub block_relay_outbound: usize,
    /// Established feelers.
    pub feelers: usize,
    /// Established one-shot connections.
    pub one_shot: usize,
    /// Live permanent requests, in any state.
    pub permanent: usize,
}

impl Counts {
    pub(crate) fn apply(&mut self, info: CountKey, sign: isize) {
        let bump = |n: &mut usize| *n = n.wrapping_add_signed(sign);
        match (info.state, info.direction) {
            (ConnState::Pending, _) => bump(&mut self.pending),
            (ConnState::Failing, _) => bump(&mut self.failing),
            (ConnState::Disconnected, _) => bump(&mut self.disconnected),
            (ConnState::Established, Direction::Inbound) => bump(&mut self.inbound),
            (ConnState::Established, Direction::Outbound) => {
                bump(&mut self.outbound);
                if info.conn_type.is_automatic() {
                    bump(&mut self.automatic_outbound);
                }
                if info.block_relay_only {
                    bump(&mut self.block_relay_outbound);
                }
                match info.conn_type {
                    ConnType::FullRelay => bump(&mut self.full_relay_outbound),
                    ConnType::Feeler => bump(&mut self.feelers),
                    ConnType::OneShot => bump(&mut self.one_shot),
                    _ => {}
                }
            }
            (ConnState::Canceled, _) => {}
        }
        if info.permanent {
            bump(&mut self.permanent);
        }
    }
}

/// Established connections that closed, by [`CloseReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CloseCounts {
    /// Closed on the node's side (`Conn::close`, the last handle dropped).
    pub closed: u64,
    /// By `disconnect`.
    pub disconnect: u64,
    /// By `reconnect`.
    pub reconnect: u64,
    /// By `remove`.
    pub removed: u64,
    /// By trims.
    pub trimmed: u64,
    /// Evicted for inbound newcomers.
    pub evicted: u64,
    /// Under a ban.
    pub banned: u64,
    /// For misbehaving.
    pub misbehaving: u64,
    /// At stop.
    pub stopped: u64,
    /// Feelers closed once their handshake finished.
    pub feeler_done: u64,
    /// Feelers and one-shot connections closed at their timeout.
    pub expired: u64,
}

impl CloseCounts {
    /// Counts one close for `reason`.
    pub(crate) fn count(&mut self, reason: CloseReason) {
        let n = match reason {
            CloseReason::Closed => &mut self.closed,
            CloseReason::Disconnect => &mut self.disconnect,
            CloseReason::Reconnect => &mut self.reconnect,
            CloseReason::Removed => &mut self.removed,
            CloseReason::Trimmed => &mut self.trimmed,
            CloseReason::Evicted => &mut self.evicted,
            CloseReason::Banned => &mut self.banned,
            CloseReason::Misbehaving => &mut self.misbehaving,
            CloseReason::Stopped => &mut self.stopped,
            CloseReason::FeelerDone => &mut self.feeler_done,
            CloseReason::Expired => &mut self.expired,
        };
        *n = n.saturating_add(1);
    }
}

/// Why the Core refused an inbound connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Full,
    Banned,
    PerIp,
    PerNetGroup,
    Stopping,
}

/// Inbound connections refused, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct InboundRefusals {
    /// Every slot was taken and none could be freed by eviction.
    pub full: u64,
    /// The peer is banned.
    pub banned: u64,
    /// Its IP had `max_inbound_per_ip` live connections.
    pub per_ip: u64,
    /// Its netgroup had `max_inbound_per_netgroup` live connections.
    pub per_netgroup: u64,
    /// The manager was stopping.
    pub stopping: u64,
}

impl InboundRefusals {
    pub(crate) fn count(&mut self, why: Refusal) {
        let n = match why {
            Refusal::Full => &mut self.full,
            Refusal::Banned => &mut self.banned,
            Refusal::PerIp => &mut self.per_ip,
            Refusal::PerNetGroup => &mut self.per_netgroup,
            Refusal::Stopping => &mut self.stopping,
        };
        *n = n.saturating_add(1);
    }
}

/// Running totals since the manager was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Stats {
    /// Dials started.
    pub dials: u64,
    /// Dials that failed.
    pub dial_failures: u64,
    /// Outbound connections established.
    pub outbound_established: u64,
    /// Inbound connections accepted.
    pub inbound_accepted: u64,
    /// Inbound connections refused, all reasons together (see
    /// [`refusals`](Self::refusals)).
    pub inbound_refused: u64,
    /// Inbound connections refused, by reason.
    pub refusals: InboundRefusals,
    /// Established connections (either direction) that closed.
    pub closed: u64,
    /// Automatic dials that failed in a row, without a success between.
    pub consecutive_failures: u32,
    /// The most inbound connections ever live at once.
    pub peak_inbound: usize,
    /// Trims run (automatic and explicit).
    pub trims: u64,
    /// When the last trim ran (on the manager's clock).
    #[cfg_attr(feature = "serde", serde(skip))]
    pub last_trim: Option<Instant>,
    /// Connections the last trim closed.
    pub last_trim_closed: usize,
    /// Tag and protect calls dropped because the peer book was full.
    pub peers_refused: u64,
    /// Connections closed by trims (only; see [`closes`](Self::closes)
    /// for the other reasons).
    pub trimmed: u64,
    /// Closed connections by reason.
    pub closes: CloseCounts,
    /// Inbound connections evicted to make room for a newcomer.
    pub evicted: u64,
    /// Feelers started.
    pub feelers: u64,
}

/// What an explicit trim closed ([`Handle::trim`](crate::Handle::trim)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Trimmed {
    /// The connections it closed, in the order it chose them; empty when
    /// the count was at or below the low watermark, or no watermarks are
    /// set.
    pub closed: Vec<ConnId>,
}

/// The trim settings and the state of the last trim, as libp2p's
/// `BasicConnMgr.GetInfo` reports them ([`Handle::trim_info`](crate::Handle::trim_info)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrimInfo {
    /// The watermarks, grace and silence periods; `None` when no
    /// watermarks are set (nothing is ever trimmed).
    pub policy: Option<TrimPolicy>,
    /// Established connections now, both directions: what the watermarks
    /// are compared with.
    pub connections: usize,
    /// Trims run so far (automatic and explicit).
    pub trims: u64,
    /// When the last trim ran (on the manager's clock).
    pub last_trim: Option<Instant>,
    /// Connections the last trim closed.
    pub last_trim_closed: usize,
    /// Peers the peer book holds now (tagged, protected or connected and
    /// known to the tag store), at most `max_peers` beyond those with a
    /// live connection.
    pub peers: usize,
}

impl TrimInfo {
    /// The report for `policy`, with `connections` established and
    /// `peers` in the peer book now, and the trim totals of `stats`.
    pub(crate) fn new(
        policy: Option<TrimPolicy>,
        connections: usize,
        peers: usize,
        stats: &Stats,
    ) -> Self {
        TrimInfo {
            policy,
            connections,
            peers,
            trims: stats.trims,
            last_trim: stats.last_trim,
            last_trim_closed: stats.last_trim_closed,
        }
    }
}
