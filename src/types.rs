//! Vocabulary shared by every layer: ids, states, directions and dial
//! errors. Plain values with no behaviour beyond formatting.

use std::fmt;
use std::io;

/// Identifies a connection request or an inbound connection. Ids are
/// unique within one manager and never reused; a permanent request keeps
/// its id across reconnections.
///
/// Requests made by callers have odd ids, minted by the manager when the
/// call is made so that `connect` answers at once; the Core mints the even
/// ones (automatic requests and inbound connections) itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct ConnId(pub u64);

impl ConnId {
    /// The `n`th caller id (`n` from 1): 1, 3, 5, ...
    pub const fn caller(n: u64) -> ConnId {
        ConnId(n.saturating_mul(2).saturating_sub(1))
    }

    /// The `n`th id the Core mints itself (`n` from 1): 2, 4, 6, ...
    pub const fn own(n: u64) -> ConnId {
        ConnId(n.saturating_mul(2))
    }

    /// Whether this is a caller's id.
    pub const fn is_caller(self) -> bool {
        self.0 % 2 == 1
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // pad, so width flags such as {:<6} line tables up
        f.pad(&format!("#{}", self.0))
    }
}

/// Where a request or connection stands.
///
/// `Pending → Established | Failing`; a failing permanent request goes
/// back to `Pending` when its retry is due; removing a request that is not
/// established makes it `Canceled`; closing an established one makes it
/// `Disconnected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum ConnState {
    /// Waiting for an address or a dial result.
    Pending,
    /// The last dial failed; a permanent request waits for its retry.
    Failing,
    /// Removed before it connected.
    Canceled,
    /// Connected.
    Established,
    /// Was connected, now closed; a permanent request waits for its retry.
    Disconnected,
}

impl ConnState {
    /// The lower-case name used in logs and status tables.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::Pending => "pending",
            ConnState::Failing => "failing",
            ConnState::Canceled => "canceled",
            ConnState::Established => "established",
            ConnState::Disconnected => "disconnected",
        }
    }
}

impl fmt::Display for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum Direction {
    /// We dialed the peer.
    Outbound,
    /// The peer dialed one of our listeners.
    Inbound,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        })
    }
}

/// What a connection is for: Bitcoin Core's connection types. Each
/// outbound type has its own target and is filled on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub enum ConnType {
    /// Opened by the peer.
    Inbound,
    /// Made by the manager to fill the full-relay target
    /// (`target_outbound`): blocks, transactions and addresses.
    FullRelay,
    /// Made by the manager to fill the block-relay-only target
    /// (`target_block_relay`), anchors first: the node should relay
    /// blocks only, which hides these links from transaction-based
    /// topology inference.
    BlockRelay,
    /// Asked for by the user with `connect` (Core's manual/addnode
    /// connections), permanent or not.
    Manual,
    /// A short-lived connection that tests an address from the source: the
    /// manager closes it when the node reports its handshake finished, or
    /// at the feeler timeout. Never counted against a target.
    Feeler,
    /// Connect, let the node fetch addresses, close (Core's address-fetch
    /// connections): the node closes it when done, or the manager does at
    /// the one-shot timeout. Never retried, never counted against a target.
    OneShot,
}

impl ConnType {
    /// Whether the manager makes connections of this type to fill a target
    /// (full-relay and block-relay-only).
    pub const fn is_automatic(self) -> bool {
        matches!(self, ConnType::FullRelay | ConnType::BlockRelay)
    }

    /// Whether the manager opens connections of this type itself (the
    /// automatic types and feelers): those never dial a peer in use.
    pub const fn is_made_by_manager(self) -> bool {
        matches!(
            self,
            ConnType::FullRelay | ConnType::BlockRelay | ConnType::Feeler
        )
    }

    /// A short name: `inbound`, `full-relay`, `block-relay`, `manual`,
    /// `feeler`, `one-shot` (as Bitcoin Core's `getpeerinfo` names them,
    /// with `one-shot` for its `addr-fetch`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ConnType::Inbound => "inbound",
            ConnType::FullRelay => "full-relay",
            ConnType::BlockRelay => "block-relay",
            ConnType::Manual => "manual",
            ConnType::Feeler => "feeler",
            ConnType::OneShot => "one-shot",
        }
    }
}

impl fmt::Display for ConnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Why a dial failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DialError {
    /// The peer refused the connection.
    Refused,
    /// The dial did not complete before its deadline.
    TimedOut,
    /// The manager canceled the dial (the request was removed, or the
    /// manager is stopping).
    Canceled,
    /// This dialer cannot reach this kind of address; the message says what
    /// would (for example a SOCKS5 proxy for onion addresses).
    Unsupported(String),
    /// A gating rule refused the address before any connection was made.
    Rejected(String),
    /// An I/O error other than the ones above.
    Io {
        /// The error's kind.
        kind: io::ErrorKind,
        /// The error's text.
        message: String,
    },
    /// The dialer panicked; the manager survived and counts a failure.
    Panicked(String),
    /// Any other failure, described.
    Other(String),
}

impl DialError {
    /// Maps an I/O error to the closest dial error.
    pub fn from_io(err: &io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::ConnectionRefused => DialError::Refused,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => DialError::TimedOut,
            kind => DialError::Io {
                kind,
                message: err.to_string(),
            },
        }
    }
}

impl From<io::Error> for DialError {
    fn from(err: io::Error) -> Self {
        DialError::from_io(&err)
    }
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialError::Refused => f.write_str("connection refused"),
            DialError::TimedOut => f.write_str("dial timed out"),
            DialError::Canceled => f.write_str("dial canceled"),
            DialError::Unsupported(why) => write!(f, "address not supported by this dialer: {why}"),
            DialError::Rejected(why) => write!(f, "dial rejected: {why}"),
            DialError::Io { message, .. } => write!(f, "i/o error: {message}"),
            DialError::Panicked(msg) => write!(f, "dialer panicked: {msg}"),
            DialError::Other(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for DialError {}

/// `now + d`, or the latest instant this platform can represent on the
/// way there: a huge setting never overflows time arithmetic.
pub(crate) fn later(now: std::time::Instant, d: std::time::Duration) -> std::time::Instant {
    let mut d = d;
    loop {
        if let Some(at) = now.checked_add(d) {
            return at;
        }
        d /= 2;
    }
}

/// Why an established connection closed, in every close event and counted
/// in [`Stats::closes`](crate::Stats::closes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum CloseReason {
    /// Closed on the node's side: `Conn::close`, or the last handle
    /// dropped (as when the node's code sees the peer leave).
    Closed,
    /// `disconnect(id)`.
    Disconnect,
    /// `reconnect(id)`: closed to dial again at once.
    Reconnect,
    /// `remove(id)`.
    Removed,
    /// Trimmed down to the low watermark.
    Trimmed,
    /// Evicted to make room for an inbound newcomer.
    Evicted,
    /// Its address fell under a ban.
    Banned,
    /// Its ban score reached the threshold (a peer without an address to
    /// ban is closed with this reason too).
    Misbehaving,
    /// The manager stopped.
    Stopped,
    /// A feeler's handshake finished: it did its job.
    FeelerDone,
    /// A feeler or one-shot connection reached its timeout.
    Expired,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CloseReason::Closed => "closed by the node",
            CloseReason::Disconnect => "disconnected",
            CloseReason::Reconnect => "reconnecting",
            CloseReason::Removed => "removed",
            CloseReason::Trimmed => "trimmed",
            CloseReason::Evicted => "evicted",
            CloseReason::Banned => "banned",
            CloseReason::Misbehaving => "misbehaving",
            CloseReason::Stopped => "manager stopped",
            CloseReason::FeelerDone => "feeler finished",
            CloseReason::Expired => "lifetime over",
        })
    }
}
