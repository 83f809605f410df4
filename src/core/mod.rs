//! The sans-IO state machine that makes every policy decision.
//!
//! [`Core`] is driven by [`Input`]s, each with an explicit `now`, and
//! answers with [`Effect`]s for the caller to carry out; it holds no thread,
//! socket or clock. The handler thread is a thin shell around it, and tests
//! drive it directly with made-up time.
//!
//! `C` is the connection payload (a stream in the manager, anything in
//! tests): the Core routes it from a dial or accept result to an
//! [`Effect::Established`] or [`Effect::Discard`] but never looks inside.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::addr::{Addr, NetGroup};
use crate::idmap::IdMap;
use crate::policy::backoff::Backoff;
use crate::types::DialError;
use crate::types::{ConnId, ConnState, Direction};

use crate::core::info::Stats;
use crate::policy::banlist::{BanEntry, BanList, Subnet};
use crate::policy::banscore::DynamicBanScore;
use crate::policy::diversity::diversity_group;
use crate::policy::eviction::EvictionKey;
use crate::policy::tags::{PeerId, PeerTags};
use crate::policy::trim::TrimPolicy;
use crate::runtime::request::{ConnReq, IdGen, ReqView};
use crate::runtime::snapshot::SnapshotStore;

mod banbook;
mod inbound;
pub(crate) mod info;
mod outbound;
mod peerbook;

pub use peerbook::{DecayingSpec, TagChange};

use inbound::in_info;
use outbound::{out_info, peer_of, release_group};

const LOG: &str = "connmgr";

/// Unusable addresses (banned, or in a netgroup already held) the source
/// may give one request before the request waits like an empty source.
const MAX_SOURCE_TRIES: u8 = 8;

/// The policy settings the Core needs (a subset of [`Config`](crate::Config)).
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Automatic outbound connections to keep.
    pub target_outbound: usize,
    /// Whether an address source exists; without one the Core never makes
    /// automatic requests (connect-only mode).
    pub has_address_source: bool,
    /// Live inbound connections allowed.
    pub max_inbound: usize,
    /// The base retry step.
    pub retry_duration: Duration,
    /// The longest wait between retries.
    pub max_retry_duration: Duration,
    /// How waits grow.
    pub backoff: Backoff,
    /// How long a connection must stay up before its retry count resets.
    pub min_stable_duration: Duration,
    /// Consecutive automatic failures after which each replacement waits
    /// `retry_duration`.
    pub max_failed_attempts: u32,
    /// Seed for backoff jitter.
    pub rng_seed: u64,
    /// At most one automatic outbound connection per routable netgroup.
    pub diversity: bool,
    /// How many long-lived outbound addresses a clean stop reports as
    /// anchors.
    pub anchor_count: usize,
    /// Connection watermarks for trimming; `None` never trims.
    pub trim: Option<TrimPolicy>,
    /// Ban score at which a misbehaving peer is banned and disconnected.
    pub ban_threshold: u32,
    /// Ban score from which misbehaviour is logged as a warning.
    pub warn_threshold: u32,
    /// How long a peer that reached the ban threshold stays banned.
    pub ban_duration: Duration,
    /// When inbound slots are full, evict a connection (chosen by Bitcoin
    /// Core's rules) for the newcomer instead of refusing it.
    pub evict_inbound: bool,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            target_outbound: 8,
            has_address_source: false,
            max_inbound: 125,
            retry_duration: Duration::from_secs(5),
            max_retry_duration: Duration::from_secs(300),
            backoff: Backoff::Linear,
            min_stable_duration: Duration::from_secs(30),
            max_failed_attempts: 25,
            rng_seed: 0,
            diversity: true,
            anchor_count: 2,
            trim: None,
            ban_threshold: 100,
            warn_threshold: 50,
            ban_duration: Duration::from_secs(24 * 60 * 60),
            evict_inbound: false,
        }
    }
}

/// How to take down a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Teardown {
    /// btcd's `Disconnect`: close; retry a permanent request with backoff;
    /// an automatic request is replaced from the address source.
    Disconnect,
    /// Close and dial the same address again at once, permanent or not.
    Reconnect,
    /// btcd's `Remove`: cancel or close, never retry.
    Remove,
}

/// Something that happened, for the Core to act on.
#[derive(Debug)]
#[non_exhaustive]
pub enum Input<C> {
    /// The manager started: fill the outbound target.
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
    /// A request with an id and an address.
    Connect(ConnReq),
    /// A request with an id whose address comes from the source.
    ConnectFromSource(ConnReq),
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
    /// Register a decaying tag (before [`Input::Start`]).
    RegisterDecaying(DecayingSpec),
    /// Trim now if above the low watermark and outside the silence period.
    Trim,
    /// Bans loaded from disk (before [`Input::Start`]).
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
pub enum PeerReport {
    /// A round-trip time measured with this peer (the lowest one counts).
    Ping(Duration),
    /// The peer delivered a block we did not have.
    NovelBlock,
    /// The peer delivered a transaction we did not have.
    NovelTx,
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
    },
    /// Give up the dial in flight for `id`.
    CancelDial {
        /// Which request.
        id: ConnId,
    },
    /// A connection is now established: hand it to the user.
    Established {
        /// The outbound request, or `None` for an inbound connection.
        req: Option<ConnReq>,
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
pub enum CoreEvent {
    /// An established outbound connection closed.
    Disconnected {
        /// The request.
        req: ConnReq,
    },
    /// A dial failed (or the source had no address).
    DialFailed {
        /// The request.
        req: ConnReq,
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
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Retry { id: ConnId, attempt: u64 },
    Refill,
}

struct OutEntry {
    req: ConnReq,
    addr: Option<Addr>,
    state: ConnState,
    retries: u32,
    attempt: u64,
    serial: u64,
    since: Instant,
    established_at: Option<Instant>,
    next_attempt: Option<Instant>,
    /// The peer id set with `set_peer_id`, or the address text cached once
    /// built; `None` means the address text.
    peer: Option<PeerId>,
    /// Misbehaviour score of the current connection.
    score: Option<Box<DynamicBanScore>>,
    /// The netgroup this automatic request holds for the diversity rule.
    holds_group: bool,
    /// Addresses the source gave that could not be used, for this request.
    source_tries: u8,
    dirty: bool,
}

struct InEntry {
    addr: Addr,
    /// The peer id set with `set_peer_id`; otherwise the address text.
    peer: Option<PeerId>,
    score: Option<Box<DynamicBanScore>>,
    serial: u64,
    since: Instant,
    usefulness: Usefulness,
    dirty: bool,
}

impl OutEntry {
    fn peer_id(&self) -> Option<PeerId> {
        self.peer
            .clone()
            .or_else(|| self.addr.as_ref().map(peer_of))
    }
}

impl InEntry {
    fn peer_id(&self) -> PeerId {
        self.peer.clone().unwrap_or_else(|| peer_of(&self.addr))
    }
}

/// What the node reported about an inbound peer.
#[derive(Debug, Clone, Copy, Default)]
struct Usefulness {
    min_ping: Option<Duration>,
    last_block: Option<Instant>,
    last_tx: Option<Instant>,
}

/// The connection manager's state machine. See the module docs.
pub struct Core {
    cfg: CoreConfig,
    ids: IdGen,
    rng: SmallRng,
    outbound: IdMap<ConnId, OutEntry>,
    inbound: IdMap<ConnId, InEntry>,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    auto_live: usize,
    refills_scheduled: usize,
    /// Automatic requests holding each routable netgroup.
    groups: HashMap<NetGroup, usize>,
    /// Addresses to use before asking the source.
    anchors: Vec<Addr>,
    next_serial: u64,
    /// Established outbound connections (kept, not counted, for trimming).
    established_out: usize,
    tags: PeerTags,
    dirty_peers: HashSet<PeerId>,
    last_trim: Option<Instant>,
    bans: BanList,
    bans_dirty: bool,
    /// The ban list to publish with the next batch, if it changed.
    bans_published: Option<Vec<BanEntry>>,
    eviction_key: EvictionKey,
    stats: Stats,
    dirty: Vec<ConnId>,
    removed: Vec<ConnId>,
    started: bool,
    stopped: bool,
}

impl Core {
    /// A Core with no requests, handing out ids from a fresh counter.
    pub fn new(cfg: CoreConfig) -> Self {
        Self::with_ids(cfg, IdGen::default())
    }

    pub(crate) fn with_ids(cfg: CoreConfig, ids: IdGen) -> Self {
        Core {
            rng: SmallRng::seed_from_u64(cfg.rng_seed),
            cfg,
            ids,
            outbound: IdMap::default(),
            inbound: IdMap::default(),
            timers: BinaryHeap::new(),
            auto_live: 0,
            refills_scheduled: 0,
            groups: HashMap::new(),
            anchors: Vec::new(),
            next_serial: 0,
            established_out: 0,
            tags: PeerTags::new(),
            dirty_peers: HashSet::new(),
            last_trim: None,
            bans: BanList::new(),
            bans_dirty: false,
            bans_published: None,
            eviction_key: EvictionKey::random(),
            stats: Stats::default(),
            dirty: Vec::new(),
            removed: Vec::new(),
            started: false,
            stopped: false,
        }
    }

    /// A fresh id from this Core's counter, for requests built by tests.
    pub fn next_id(&self) -> ConnId {
        self.ids.next()
    }

    /// Builds and numbers a request for [`Input::Connect`].
    pub fn request(&self, addr: Addr, permanent: bool) -> ConnReq {
        let req = if permanent {
            ConnReq::permanent(addr)
        } else {
            ConnReq::new(addr)
        };
        req.assign_id(self.ids.next());
        req
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
            Input::Start => self.started = true,
            Input::Anchors(addrs) => self.anchors = addrs.into_iter().rev().collect(),
            Input::Report { id, report } => self.on_report(now, id, report),
            Input::Connect(req) => self.on_connect(now, req, out),
            Input::ConnectFromSource(req) => self.on_connect_from_source(now, req, out),
            Input::Teardown { id, mode } => self.on_teardown(now, id, mode, out),
            Input::AddressFound { id, addr } => self.on_address(now, id, addr, out),
            Input::DialSucceeded { id, attempt, conn } => {
                self.on_dial_succeeded(now, id, attempt, conn, out)
            }
            Input::DialFailed { id, attempt, error } => {
                self.on_dial_failed(now, id, attempt, error, out)
            }
            Input::Accepted { conn, remote } => self.on_accepted(now, conn, remote, out),
            Input::Closed { id, serial } => self.on_closed(now, id, serial, out),
            Input::Tick => self.on_tick(now, out),
            Input::Stop { close_established } => self.on_stop(close_established, out),
            Input::Tag { peer, change } => self.on_tag(now, peer, change),
            Input::SetPeer { id, peer } => self.on_set_peer(now, id, peer),
            Input::RegisterDecaying(spec) => self.on_register_decaying(now, spec),
            Input::Trim => self.maybe_trim(now, true, out),
            Input::LoadBans(list) => self.on_load_bans(now, list),
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
            Input::Unban(subnet) => self.unban(&subnet),
        }
        self.fill(now, out);
        self.maybe_trim(now, false, out);
        self.save_bans_if_changed(now, out);
    }

    /// When the Core next needs an [`Input::Tick`], if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        [timer, self.tags.next_decay_deadline(), self.next_trim()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Requests and inbound connections the Core still tracks.
    pub fn tracked(&self) -> usize {
        self.outbound.len() + self.inbound.len()
    }

    /// Timers still queued (including ones that will turn out stale).
    pub fn queued_timers(&self) -> usize {
        self.timers.len()
    }

    /// Live automatic requests, in any state, plus refills waiting on the
    /// failure throttle.
    pub fn automatic_slots(&self) -> usize {
        self.auto_live + self.refills_scheduled
    }

    /// Live inbound connections.
    pub fn inbound_count(&self) -> usize {
        self.inbound.len()
    }

    /// The state of request `id`, if the Core still tracks it.
    pub fn state(&self, id: ConnId) -> Option<ConnState> {
        self.outbound.get(&id).map(|e| e.state)
    }

    /// Running totals.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Writes every change since the last call into `store` and into the
    /// requests' own published views.
    pub(crate) fn publish(&mut self, store: &mut SnapshotStore) {
        for id in std::mem::take(&mut self.dirty) {
            if let Some(e) = self.outbound.get_mut(&id) {
                e.dirty = false;
                e.req.publish(ReqView {
                    state: e.state,
                    retries: e.retries,
                });
                store.upsert(out_info(id, e));
            } else if let Some(e) = self.inbound.get_mut(&id) {
                e.dirty = false;
                store.upsert(in_info(id, e));
            }
        }
        for id in self.removed.drain(..) {
            store.remove(id);
        }
        self.publish_peers(store);
        if let Some(bans) = self.bans_published.take() {
            store.bans = bans;
        }
        store.stats = self.stats;
    }

    fn on_stop<C>(&mut self, close_established: bool, out: &mut Vec<Effect<C>>) {
        self.stopped = true;
        out.push(Effect::SaveAnchors(self.anchor_candidates()));
        let ids: Vec<ConnId> = self.outbound.keys().copied().collect();
        for id in ids {
            let Some(e) = self.outbound.get(&id) else {
                continue;
            };
            match e.state {
                ConnState::Established if close_established => {
                    out.push(Effect::Close { serial: e.serial });
                    out.push(Effect::Notify(CoreEvent::Disconnected {
                        req: e.req.clone(),
                    }));
                    self.stats.closed += 1;
                    self.finish(id, ConnState::Disconnected);
                }
                // Handed over for good: the user keeps the open connection.
                ConnState::Established => self.finish(id, ConnState::Established),
                ConnState::Pending => {
                    out.push(Effect::CancelDial { id });
                    self.finish(id, ConnState::Canceled);
                }
                _ => self.finish(id, ConnState::Canceled),
            }
        }
        for (id, e) in self.inbound.drain() {
            self.removed.push(id);
            if close_established {
                self.stats.closed += 1;
                out.push(Effect::Close { serial: e.serial });
                out.push(Effect::Notify(CoreEvent::InboundClosed {
                    id,
                    addr: e.addr,
                }));
            }
        }
        self.timers.clear();
        self.refills_scheduled = 0;
        self.established_out = 0;
    }

    /// The addresses of the longest-lived established automatic outbound
    /// connections, oldest first.
    fn anchor_candidates(&self) -> Vec<Addr> {
        let mut live: Vec<(Instant, &Addr)> = self
            .outbound
            .values()
            .filter(|e| e.state == ConnState::Established && e.req.is_automatic())
            .filter_map(|e| Some((e.established_at?, e.addr.as_ref()?)))
            .collect();
        live.sort();
        live.into_iter()
            .take(self.cfg.anchor_count)
            .map(|(_, a)| a.clone())
            .collect()
    }

    /// Forgets a request, publishing its final state at once.
    fn finish(&mut self, id: ConnId, state: ConnState) {
        let Some(e) = self.outbound.remove(&id) else {
            return;
        };
        if e.req.is_automatic() {
            self.auto_live -= 1;
        }
        if let (true, Some(group)) = (e.holds_group, e.addr.as_ref().and_then(diversity_group)) {
            release_group(&mut self.groups, &group);
        }
        e.req.publish(ReqView {
            state,
            retries: e.retries,
        });
        self.removed.push(id);
    }

    fn mark(&mut self, id: ConnId) {
        let flag = match self.outbound.get_mut(&id) {
            Some(e) => &mut e.dirty,
            None => match self.inbound.get_mut(&id) {
                Some(e) => &mut e.dirty,
                None => return,
            },
        };
        if !*flag {
            *flag = true;
            self.dirty.push(id);
        }
    }
}
