//! The low-level layer: a sans-IO, deterministic state machine that makes
//! every connection and peer policy decision.
//!
//! [`Core`] is driven by [`Input`]s, each with an explicit `now`, and
//! answers with [`Effect`]s for the caller to carry out; what callers may
//! read changes only through [`Core::take_changes`]. It holds no thread,
//! lock, atomic, clock, channel, file or unseeded random generator: two
//! Cores built from one [`CoreConfig`] and fed the same inputs produce the
//! same effects and changes. The manager's handler thread is a thin shell
//! around it; tests and simulations drive it directly with made-up time.
//!
//! `C` is the connection payload (a stream in the manager, anything in
//! tests): the Core routes it from a dial or accept result to an
//! [`Effect::Established`] or [`Effect::Discard`] but never looks inside.
//!
//! The Core is made of four parts, each owning its state and settings:
//! the outbound book (requests, addresses, backoff, diversity, anchors),
//! the inbound slots (limit and eviction), the peer book (tags,
//! protection, trimming) and the ban book (bans and ban scores). The root
//! keeps one record per id and routes inputs between them.
//!
//! ```
//! use std::time::Instant;
//! use connmgr::core::{Core, CoreConfig, Effect, Input};
//!
//! let mut core = Core::new(CoreConfig::default());
//! let now = Instant::now();
//! core.handle::<()>(now, Input::Start);
//! let req = core.request("127.0.0.1:8333".parse().unwrap(), true);
//! let effects = core.handle::<()>(now, Input::Connect(req));
//! assert!(matches!(effects.as_slice(), [Effect::Dial { .. }]));
//! ```

use std::time::{Duration, Instant};

use crate::addr::Addr;
use crate::idmap::IdMap;
use crate::policy::banlist::{BanEntry, BanList, Subnet};
use crate::policy::permissions::{PermissionTable, Permissions};
use crate::policy::tags::{PeerId, TagError, TagInfo};
pub(crate) use crate::types::later;
use crate::types::{CloseReason, ConnId, ConnState, ConnType, DialError, Direction};

mod addruse;
mod banbook;
mod changes;
mod feelers;
mod inbound;
pub(crate) mod info;
mod netrules;
mod outbound;
mod peerbook;
mod peerindex;
mod record;
mod settings;
mod sources;

use banbook::BanBook;
use inbound::InboundSlots;
use outbound::OutboundBook;
use peerbook::PeerBook;
use record::{OutPart, Record};

pub use changes::{Changes, Finished, PeerChange};
pub use peerbook::{DecayingSpec, TagChange};
pub use record::default_peer_id;
pub use settings::CoreConfig;

const LOG: &str = "connmgr";

/// How to take down a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Teardown {
    /// btcd's `Disconnect`: close; retry a permanent request with backoff;
    /// an automatic request is replaced from the address source.
    Disconnect,
    /// Close and dial the same address again at once, permanent or not.
    /// Outbound only.
    Reconnect,
    /// btcd's `Remove`: cancel or close, never retry.
    Remove,
}

impl Teardown {
    /// Whether this teardown applies to a connection opened in `direction`:
    /// an inbound connection cannot be reconnected.
    pub fn applies_to(self, direction: Direction) -> bool {
        !(self == Teardown::Reconnect && direction == Direction::Inbound)
    }
}

/// An outbound request as the Core sees it: plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReqSpec {
    /// Its id: odd for requests made by callers (see [`ConnId`]).
    pub id: ConnId,
    /// Where to connect; `None` asks the address source.
    pub addr: Option<Addr>,
    /// Retried forever with backoff.
    pub permanent: bool,
    /// What the connection is for. Callers make [`ConnType::Manual`] and
    /// [`ConnType::OneShot`] requests; the Core makes the others.
    pub conn_type: ConnType,
    /// The node should relay blocks only over this connection: always
    /// true for [`ConnType::BlockRelay`], chosen by the caller for a
    /// manual request.
    pub block_relay_only: bool,
    /// Permissions the caller grants this request's peer (on top of the
    /// configured subnets'); `FORCE_INBOUND` means nothing outbound.
    pub permissions: Permissions,
    /// Dial even when the peer already has a connection or a dial in
    /// flight, where [`CoreConfig::manual_duplicates`] is off (a manual
    /// request then fails, and a permanent one retries with backoff until
    /// the other connection is gone).
    pub allow_duplicate: bool,
}

impl ReqSpec {
    /// A manual request to `addr` under `id`.
    pub fn new(id: ConnId, addr: Addr, permanent: bool) -> Self {
        ReqSpec {
            id,
            addr: Some(addr),
            permanent,
            conn_type: ConnType::Manual,
            block_relay_only: false,
            permissions: Permissions::NONE,
            allow_duplicate: false,
        }
    }

    /// A one-off manual request under `id` whose address comes from the
    /// source.
    pub fn from_source(id: ConnId) -> Self {
        ReqSpec {
            id,
            addr: None,
            permanent: false,
            conn_type: ConnType::Manual,
            block_relay_only: false,
            permissions: Permissions::NONE,
            allow_duplicate: false,
        }
    }

    /// A one-shot request to `addr` under `id`: connect, let the node
    /// fetch addresses, close ([`ConnType::OneShot`]).
    pub fn one_shot(id: ConnId, addr: Addr) -> Self {
        ReqSpec {
            conn_type: ConnType::OneShot,
            ..ReqSpec::new(id, addr, false)
        }
    }

    /// The same request, marked block-relay-only.
    pub fn with_block_relay_only(self) -> Self {
        ReqSpec {
            block_relay_only: true,
            ..self
        }
    }

    /// The same request, allowed to dial a peer that already has a
    /// connection or a dial in flight.
    pub fn with_duplicates_allowed(self) -> Self {
        ReqSpec {
            allow_duplicate: true,
            ..self
        }
    }

    /// The same request with `permissions` for its peer.
    pub fn with_permissions(self, permissions: Permissions) -> Self {
        ReqSpec {
            permissions,
            ..self
        }
    }

    /// Whether the Core made it to fill a target.
    pub fn is_automatic(&self) -> bool {
        self.conn_type.is_automatic()
    }
}

/// Something that happened, for the Core to act on.
#[derive(Debug)]
#[non_exhaustive]
pub enum Input<C> {
    /// The manager started: dial what waits and fill the outbound target.
    Start,
    /// Addresses to dial first for automatic connections (the anchors saved
    /// at the last clean stop); give them before [`Input::Start`].
    Anchors(Vec<Addr>),
    /// The node learned something about a connection's usefulness, used to
    /// choose which inbound connection to evict.
    Report {
        /// Which connection.
        id: ConnId,
        /// What was learned.
        report: PeerReport,
    },
    /// A request made by a caller. Before [`Input::Start`] it waits. Its
    /// type is [`ConnType::Manual`] or [`ConnType::OneShot`]; any other
    /// (a block-relay, feeler or inbound "request") is refused at once with
    /// a [`CoreEvent::DialFailed`] whose [`DialError::Rejected`] says why.
    Connect(ReqSpec),
    /// The node finished its protocol handshake on a connection: a feeler
    /// closes ([`CloseReason::FeelerDone`]); others are not affected.
    HandshakeDone {
        /// Which connection.
        id: ConnId,
    },
    /// Take a request down.
    Teardown {
        /// Which request.
        id: ConnId,
        /// How.
        mode: Teardown,
    },
    /// The address source answered for a request.
    AddressFound {
        /// Which request.
        id: ConnId,
        /// The address, or `None` when the source had none.
        addr: Option<Addr>,
    },
    /// A dial connected.
    DialSucceeded {
        /// Which request.
        id: ConnId,
        /// Which attempt of the request.
        attempt: u64,
        /// The connection.
        conn: C,
        /// The IP address the connection really reached, when the
        /// transport knows it (a TCP socket's peer, so a name that resolved
        /// to a banned address is caught); `None` through a proxy.
        remote: Option<std::net::IpAddr>,
    },
    /// A dial failed.
    DialFailed {
        /// Which request.
        id: ConnId,
        /// Which attempt of the request.
        attempt: u64,
        /// Why.
        error: DialError,
    },
    /// A listener accepted a connection.
    Accepted {
        /// The connection.
        conn: C,
        /// The peer's address.
        remote: Addr,
    },
    /// The user closed an established connection.
    Closed {
        /// Its id.
        id: ConnId,
        /// Which incarnation of that id.
        serial: u64,
    },
    /// Time passed: run due timers.
    Tick,
    /// Change a peer's tags or protection.
    Tag {
        /// Which peer.
        peer: PeerId,
        /// What to change.
        change: TagChange,
    },
    /// Give a connection a peer identity (default: its address text).
    SetPeer {
        /// Which connection.
        id: ConnId,
        /// Its peer.
        peer: PeerId,
    },
    /// Register a decaying tag; [`Core::take_registration`] then says
    /// whether it was.
    RegisterDecaying(DecayingSpec),
    /// Close a decaying tag: it and every peer's value of it go.
    UnregisterDecaying(String),
    /// Trim now down to the low watermark, if above it; unlike the
    /// automatic trim this ignores the silence period (as libp2p's
    /// `TrimOpenConns` does). Always answered by one
    /// [`Effect::TrimDone`].
    Trim,
    /// Bans loaded from disk, merged with the bans already made.
    LoadBans(BanList),
    /// A connection misbehaved: raise its ban score.
    Misbehaving {
        /// Which connection.
        id: ConnId,
        /// Score that never decays.
        persistent: u32,
        /// Score that decays with a one-minute half-life.
        transient: u32,
        /// What it did, for the log and the ban reason.
        reason: String,
    },
    /// Ban a subnet (or one address) and close its connections.
    Ban {
        /// What to ban.
        subnet: Subnet,
        /// For how long.
        duration: Duration,
        /// Why, kept with the ban.
        reason: String,
    },
    /// Lift a ban.
    Unban(Subnet),
    /// The manager is stopping.
    Stop {
        /// Whether to close established connections.
        close_established: bool,
    },
}

/// What the node reports about a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerReport {
    /// A round-trip time measured with this peer (the lowest one counts,
    /// to the microsecond).
    Ping(Duration),
    /// The peer delivered a block we did not have.
    NovelBlock,
    /// The peer delivered a transaction we did not have.
    NovelTx,
    /// Whether the peer asked to receive transactions (Bitcoin's `relay`
    /// flag; default true). One that does not, but offers the services we
    /// need, counts as block-relay-only.
    RelaysTxs(bool),
    /// Whether the peer installed a bloom filter (costly to serve;
    /// default false).
    BloomFilter(bool),
    /// Whether the peer offers the services we need for block download
    /// (default true until reported).
    RelevantServices(bool),
    /// The peer misbehaved mildly ("discouraged"): while any such peer is
    /// evictable, eviction picks among them only.
    PreferEvict,
}

/// Something for the shell to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum Effect<C> {
    /// Ask the address source for an address for `id`.
    FetchAddress {
        /// Which request.
        id: ConnId,
    },
    /// Dial `addr` for attempt `attempt` of request `id`.
    Dial {
        /// Which request.
        id: ConnId,
        /// Which attempt.
        attempt: u64,
        /// Where to.
        addr: Addr,
        /// When the Core gives up on it (see
        /// [`CoreConfig::dial_timeout`]); tell the dialer.
        deadline: Option<Instant>,
    },
    /// Give up dial `attempt` of `id`, which is in flight.
    CancelDial {
        /// Which request.
        id: ConnId,
        /// Which attempt.
        attempt: u64,
    },
    /// An explicit [`Input::Trim`] finished: what it closed (nothing if
    /// the count was at or below the low watermark, or no watermarks are
    /// set).
    TrimDone {
        /// The connections it closed, in the order it chose them.
        closed: Vec<ConnId>,
    },
    /// Dial `attempt` of `id` passed its deadline and was reported as
    /// timed out: cancel it and stop waiting for it. Whatever it returns
    /// later is closed; the dialer running it may be stuck, so a shell
    /// may start another in its place.
    DialExpired {
        /// Which request.
        id: ConnId,
        /// Which attempt.
        attempt: u64,
    },
    /// A connection is now established: hand it to the user.
    Established {
        /// The outbound request, or `None` for an inbound connection.
        req: Option<ReqSpec>,
        /// The request's or inbound connection's id.
        id: ConnId,
        /// This incarnation's serial, echoed back in [`Input::Closed`].
        serial: u64,
        /// The peer's address.
        addr: Addr,
        /// Who opened it.
        direction: Direction,
        /// The connection.
        conn: C,
    },
    /// Close a connection the Core refused (late, canceled or over the
    /// inbound limit); nobody hears of it.
    Discard {
        /// The connection.
        conn: C,
    },
    /// Close the established connection with this serial.
    Close {
        /// Its serial.
        serial: u64,
    },
    /// Tell the user.
    Notify(CoreEvent),
    /// A clean stop: remember these outbound addresses for the next start.
    SaveAnchors(Vec<Addr>),
    /// The ban list changed: save it if it is persisted.
    SaveBans(BanList),
}

/// Events the Core reports (connection hand-overs travel in
/// [`Effect::Established`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CoreEvent {
    /// An established outbound connection closed.
    Disconnected {
        /// The request.
        req: ReqSpec,
        /// Why.
        reason: CloseReason,
    },
    /// A dial failed (or the source had no address).
    DialFailed {
        /// The request.
        req: ReqSpec,
        /// Why.
        error: DialError,
        /// When the request will try again, if it will.
        retry_in: Option<Duration>,
    },
    /// An inbound connection closed.
    InboundClosed {
        /// Its id.
        id: ConnId,
        /// The peer's address.
        addr: Addr,
        /// Why.
        reason: CloseReason,
    },
}

/// The connection manager's state machine. See the module docs.
pub struct Core {
    records: IdMap<ConnId, Record>,
    /// The peers the records use, for the no-duplicate rule.
    addr_use: addruse::AddrUse,
    /// Ids the Core mints itself (automatic requests, inbound) are even.
    next_own_id: u64,
    /// Ids [`Core::request`] mints for callers that drive the Core
    /// directly; the manager mints caller ids itself.
    next_caller_id: u64,
    next_serial: u64,
    out: OutboundBook,
    inb: InboundSlots,
    peers: PeerBook,
    bans: BanBook,
    /// Permissions granted by subnet.
    permissions: PermissionTable,
    stats: info::Stats,
    dirty: Vec<ConnId>,
    finished: Vec<Finished>,
    started: bool,
    stopped: bool,
}

impl Core {
    /// A Core with no requests. Settings the Core cannot work with are
    /// clamped rather than refused (the manager's config refuses them
    /// first): watermarks that do not form a policy turn trimming off.
    pub fn new(cfg: CoreConfig) -> Self {
        let mut rng = outbound::seeded(cfg.rng_seed);
        Core {
            records: IdMap::default(),
            addr_use: addruse::AddrUse::default(),
            next_own_id: 0,
            next_caller_id: 0,
            next_serial: 0,
            inb: InboundSlots::new(&cfg, &mut rng),
            peers: PeerBook::new(&cfg),
            bans: BanBook::new(&cfg),
            permissions: cfg.permissions.clone(),
            out: OutboundBook::new(&cfg, rng),
            stats: info::Stats::default(),
            dirty: Vec::new(),
            finished: Vec::new(),
            started: false,
            stopped: false,
        }
    }

    /// Builds a request under a fresh caller id, for callers that drive
    /// the Core directly.
    pub fn request(&mut self, addr: Addr, permanent: bool) -> ReqSpec {
        self.next_caller_id += 1;
        ReqSpec::new(ConnId::caller(self.next_caller_id), addr, permanent)
    }

    /// Builds a request whose address comes from the source, under a
    /// fresh caller id.
    pub fn request_from_source(&mut self) -> ReqSpec {
        self.next_caller_id += 1;
        ReqSpec::from_source(ConnId::caller(self.next_caller_id))
    }

    fn mint_id(&mut self) -> ConnId {
        self.next_own_id += 1;
        ConnId::own(self.next_own_id)
    }

    /// Handles one input, returning the effects.
    pub fn handle<C>(&mut self, now: Instant, input: Input<C>) -> Vec<Effect<C>> {
        let mut out = Vec::new();
        self.handle_into(now, input, &mut out);
        out
    }

    /// Handles one input, appending the effects to `out` (no allocation
    /// when `out` has room).
    pub fn handle_into<C>(&mut self, now: Instant, input: Input<C>, out: &mut Vec<Effect<C>>) {
        match input {
            Input::Start => self.on_start(now, out),
            Input::Anchors(addrs) => self.out.set_anchors(addrs),
            Input::Report { id, report } => self.on_report(now, id, report),
            Input::Connect(spec) => self.on_connect(now, spec, out),
            Input::HandshakeDone { id } => self.on_handshake_done(now, id, out),
            Input::Teardown { id, mode } => self.on_teardown(now, id, mode, out),
            Input::AddressFound { id, addr } => self.on_address(now, id, addr, out),
            Input::DialSucceeded {
                id,
                attempt,
                conn,
                remote,
            } => self.on_dial_succeeded(now, id, attempt, (conn, remote), out),
            Input::DialFailed { id, attempt, error } => {
                self.on_dial_failed(now, id, attempt, error, out)
            }
            Input::Accepted { conn, remote } => self.on_accepted(now, conn, remote, out),
            Input::Closed { id, serial } => self.on_closed(now, id, serial, out),
            Input::Tick => self.on_tick(now, out),
            Input::Stop { close_established } => self.on_stop(close_established, out),
            Input::Tag { peer, change } => self.on_tag(now, peer, change),
            Input::SetPeer { id, peer } => self.on_set_peer(now, id, peer),
            Input::RegisterDecaying(spec) => self.peers.register_decaying(spec, now),
            Input::UnregisterDecaying(name) => self.peers.unregister_decaying(&name),
            Input::Trim => self.maybe_trim(now, true, out),
            Input::LoadBans(list) => self.bans.load(list, now),
            Input::Misbehaving {
                id,
                persistent,
                transient,
                reason,
            } => self.on_misbehaving(now, id, persistent, transient, &reason, out),
            Input::Ban {
                subnet,
                duration,
                reason,
            } => self.ban(now, subnet, duration, reason, out),
            Input::Unban(subnet) => self.bans.unban(&subnet),
        }
        self.fill(now, out);
        self.maybe_trim(now, false, out);
        if let Some(list) = self.bans.take_save(now) {
            out.push(Effect::SaveBans(list));
        }
    }

    /// When the Core next needs an [`Input::Tick`], if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        let trim = self.peers.next_trim(self.connection_count());
        let prune = self.peers.next_prune();
        [
            self.out.next_deadline(),
            self.peers.next_decay(),
            trim,
            prune,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Moves everything that changed since the last call into `changes`
    /// (cleared first): the entries to publish, the requests that
    /// finished, changed peers, bans and totals.
    ///
    /// ```
    /// use std::time::Instant;
    /// use connmgr::core::{Changes, Core, CoreConfig, Input};
    /// use connmgr::ConnState;
    ///
    /// let mut core = Core::new(CoreConfig::default());
    /// let now = Instant::now();
    /// let req = core.request("127.0.0.1:8333".parse().unwrap(), false);
    /// let id = req.id;
    /// core.handle::<()>(now, Input::Connect(req));
    /// let mut changes = Changes::default();
    /// core.take_changes(&mut changes);
    /// assert_eq!(changes.conns[0].state, ConnState::Pending);
    /// core.handle::<()>(now, Input::Stop { close_established: true });
    /// core.take_changes(&mut changes);
    /// assert_eq!((changes.finished[0].id, changes.finished[0].state), (id, ConnState::Canceled));
    /// ```
    pub fn take_changes(&mut self, changes: &mut Changes) {
        changes.clear();
        for id in self.dirty.drain(..) {
            if let Some(r) = self.records.get_mut(&id) {
                r.dirty = false;
                changes.conns.push(r.info(id));
            }
        }
        changes.finished.append(&mut self.finished);
        self.peers.take_changes(changes);
        changes.bans = self.bans.take_published();
        changes.stats = self.stats();
    }

    /// Requests and inbound connections the Core still tracks, and the
    /// peers their addresses name (for the no-duplicate rule): both are
    /// zero once everything is gone.
    pub fn tracked(&self) -> usize {
        self.records.len() + self.addr_use.len() + self.inb.tracked()
    }

    /// Timers still queued (including ones that will turn out stale).
    pub fn queued_timers(&self) -> usize {
        self.out.queued_timers()
    }

    /// Live automatic requests, in any state, plus refills waiting on the
    /// failure throttle.
    pub fn automatic_slots(&self) -> usize {
        self.out.automatic_slots()
    }

    /// Live inbound connections.
    pub fn inbound_count(&self) -> usize {
        self.inb.live()
    }

    /// Established connections, both directions.
    pub fn connection_count(&self) -> usize {
        self.out.established() + self.inb.live()
    }

    /// The state of request or connection `id`, if the Core tracks it.
    pub fn state(&self, id: ConnId) -> Option<ConnState> {
        self.records.get(&id).map(|r| r.state)
    }

    /// The entry of `id` as the Core would publish it.
    pub fn conn_info(&self, id: ConnId) -> Option<info::ConnInfo> {
        self.records.get(&id).map(|r| r.info(id))
    }

    /// Every tracked id, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.records.keys().copied()
    }

    /// Running totals.
    pub fn stats(&self) -> info::Stats {
        // When the last trim ran is the peer book's; the totals show it.
        info::Stats {
            last_trim: self.peers.last_trim(),
            ..self.stats
        }
    }

    /// Whether `peer` is protected under `tag`, or under any tag.
    pub fn is_protected(&self, peer: &PeerId, tag: Option<&str>) -> bool {
        self.peers.is_protected(peer, tag)
    }

    /// What the tag store holds about `peer`.
    pub fn tag_info(&self, peer: &PeerId) -> Option<TagInfo> {
        self.peers.tag_info(peer)
    }

    /// Peers the tag store holds data for.
    pub fn tagged_peers(&self) -> usize {
        self.peers.len()
    }

    /// The bans in force at `now`.
    pub fn bans(&self, now: Instant) -> Vec<BanEntry> {
        self.bans.list(now)
    }

    /// Whether a registered decaying tag has this name.
    pub fn has_decaying(&self, name: &str) -> bool {
        self.peers.has_decaying(name)
    }

    /// The trim settings and the state of the last trim.
    pub fn trim_info(&self) -> info::TrimInfo {
        info::TrimInfo::new(
            self.peers.trim_policy(),
            self.connection_count(),
            self.peers.len(),
            &self.stats(),
        )
    }

    /// The outcome of the last [`Input::RegisterDecaying`], once: `None`
    /// if none came since the last call.
    pub fn take_registration(&mut self) -> Option<Result<(), TagError>> {
        self.peers.take_registration()
    }

    /// The entry a caller's request shows until the Core has handled it.
    pub fn pending_info(spec: &ReqSpec, now: Instant) -> info::ConnInfo {
        let mut r = Record::outbound(spec.addr.clone(), OutPart::for_spec(spec), now);
        r.perms = spec.permissions;
        r.info(spec.id)
    }

    fn on_start<C>(&mut self, now: Instant, out: &mut Vec<Effect<C>>) {
        if self.started || self.stopped {
            return;
        }
        self.started = true;
        self.arm_feeler(now);
        // Requests made before the start waited for it.
        let mut waiting: Vec<ConnId> = self
            .records
            .iter()
            .filter(|(_, r)| r.state == ConnState::Pending && r.out().is_some_and(|o| !o.dialing))
            .map(|(id, _)| *id)
            .collect();
        waiting.sort_unstable();
        for id in waiting {
            self.begin(now, id, out);
        }
    }

    fn on_stop<C>(&mut self, close_established: bool, out: &mut Vec<Effect<C>>) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.peers.clear_idle();
        out.push(Effect::SaveAnchors(
            self.out.anchor_candidates(&self.records),
        ));
        let mut ids: Vec<ConnId> = self.records.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(r) = self.records.get(&id) else {
                continue;
            };
            let (live, serial, direction) = (r.is_live(), r.serial, r.direction());
            if live && close_established {
                self.stats.closed += 1;
                self.stats.closes.count(CloseReason::Stopped);
                out.push(Effect::Close { serial });
                out.push(Effect::Notify(self.closed_event(id, CloseReason::Stopped)));
                self.finish(id, ConnState::Disconnected);
            } else if live {
                // Handed over for good: the user keeps the open connection.
                self.finish(id, ConnState::Established);
            } else {
                if let Some((attempt, true)) = r.out().map(|o| (o.attempt, o.dialing)) {
                    out.push(Effect::CancelDial { id, attempt });
                }
                debug_assert_eq!(direction, Direction::Outbound);
                self.finish(id, ConnState::Canceled);
            }
        }
        self.out.clear_timers();
    }

    /// The event that reports closing live record `id`.
    fn closed_event(&self, id: ConnId, reason: CloseReason) -> CoreEvent {
        let r = &self.records[&id];
        match r.direction() {
            Direction::Outbound => CoreEvent::Disconnected {
                req: self.spec(id),
                reason,
            },
            Direction::Inbound => CoreEvent::InboundClosed {
                id,
                addr: r.addr.clone().unwrap_or_else(unreachable_addr),
                reason,
            },
        }
    }

    /// The request behind outbound record `id`, as plain data.
    fn spec(&self, id: ConnId) -> ReqSpec {
        let r = self.records.get(&id);
        let o = r.and_then(Record::out);
        ReqSpec {
            id,
            addr: r.and_then(|r| r.addr.clone()),
            permanent: o.is_some_and(|o| o.permanent),
            conn_type: o.map_or(ConnType::Manual, |o| o.kind),
            block_relay_only: o.is_some_and(OutPart::block_relay_only),
            permissions: r.map_or(Permissions::NONE, |r| r.perms),
            allow_duplicate: o.is_some_and(|o| o.allow_duplicate),
        }
    }

    /// Forgets a record, releasing what it held in every part.
    fn finish(&mut self, id: ConnId, state: ConnState) {
        let Some(r) = self.records.remove(&id) else {
            return;
        };
        if let Some(addr) = &r.addr {
            self.addr_use.remove(addr);
        }
        if r.is_live() {
            self.peers.closed(id, &r);
            match r.direction() {
                Direction::Outbound => self.out.connection_closed(r.conn_type()),
                Direction::Inbound => self.inb.release(r.addr.as_ref()),
            }
        }
        if let Some(o) = r.out() {
            self.out.request_gone(id, o, r.addr.as_ref());
            if o.dialing {
                self.skip_ended_deadlines();
            }
        }
        let retries = r.out().map_or(0, |o| o.retries);
        self.finished.push(Finished { id, state, retries });
    }

    /// The permissions the subnet table grants a peer at `addr`.
    fn perms_for(&self, addr: &Addr) -> Permissions {
        match addr.ip() {
            Some(ip) if !self.permissions.is_empty() => self.permissions.lookup(ip),
            _ => Permissions::NONE,
        }
    }

    /// Queues `id`'s entry for the next change set.
    fn mark(&mut self, id: ConnId) {
        if let Some(r) = self.records.get_mut(&id) {
            if !r.dirty {
                r.dirty = true;
                self.dirty.push(id);
            }
        }
    }
}

/// Inbound records always have an address; this stands in if one did not.
fn unreachable_addr() -> Addr {
    Addr::from(std::net::SocketAddr::from(([0, 0, 0, 0], 0)))
}
