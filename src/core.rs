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
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use log::{debug, info};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::addr::{Addr, NetGroup};
use crate::backoff::Backoff;
use crate::conn::{ConnId, ConnState, Direction};
use crate::dial::DialError;
use crate::policy::diversity::diversity_group;
use crate::request::{ConnReq, IdGen, ReqView};
use crate::snapshot::{ConnInfo, SnapshotStore, Stats};

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
    /// The netgroup this automatic request holds for the diversity rule.
    group: Option<NetGroup>,
    /// Addresses the source gave that could not be used, for this request.
    source_tries: u8,
    dirty: bool,
}

struct InEntry {
    addr: Addr,
    serial: u64,
    since: Instant,
    usefulness: Usefulness,
    dirty: bool,
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
    outbound: HashMap<ConnId, OutEntry>,
    inbound: HashMap<ConnId, InEntry>,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    auto_live: usize,
    refills_scheduled: usize,
    /// Automatic requests holding each routable netgroup.
    groups: HashMap<NetGroup, usize>,
    /// Addresses to use before asking the source.
    anchors: Vec<Addr>,
    next_serial: u64,
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
            outbound: HashMap::new(),
            inbound: HashMap::new(),
            timers: BinaryHeap::new(),
            auto_live: 0,
            refills_scheduled: 0,
            groups: HashMap::new(),
            anchors: Vec::new(),
            next_serial: 0,
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
        }
        self.fill(now, out);
    }

    /// When the Core next needs an [`Input::Tick`], if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
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
        store.stats = self.stats;
    }

    fn on_connect<C>(&mut self, now: Instant, req: ConnReq, out: &mut Vec<Effect<C>>) {
        if self.stopped {
            return;
        }
        let id = req.assigned_id();
        let addr = req.addr().cloned();
        self.insert_out(now, id, req, addr);
        self.dial(now, id, out);
    }

    fn on_connect_from_source<C>(&mut self, now: Instant, req: ConnReq, out: &mut Vec<Effect<C>>) {
        if self.stopped {
            return;
        }
        let id = req.assigned_id();
        self.insert_out(now, id, req, None);
        out.push(Effect::FetchAddress { id });
    }

    fn insert_out(&mut self, now: Instant, id: ConnId, req: ConnReq, addr: Option<Addr>) {
        if req.is_automatic() {
            self.auto_live += 1;
        }
        let entry = OutEntry {
            req,
            addr,
            state: ConnState::Pending,
            retries: 0,
            attempt: 0,
            serial: 0,
            since: now,
            established_at: None,
            next_attempt: None,
            group: None,
            source_tries: 0,
            dirty: false,
        };
        self.outbound.insert(id, entry);
        self.mark(id);
    }

    /// Tops up automatic requests to the target.
    fn fill<C>(&mut self, now: Instant, out: &mut Vec<Effect<C>>) {
        if !self.started || self.stopped || !self.cfg.has_address_source {
            return;
        }
        while self.auto_live + self.refills_scheduled < self.cfg.target_outbound {
            let req = ConnReq::from_source(true);
            req.assign_id(self.ids.next());
            match self.anchors.pop() {
                Some(anchor) => {
                    let id = req.assigned_id();
                    self.insert_out(now, id, req, None);
                    self.on_address(now, id, Some(anchor), out);
                }
                None => self.on_connect_from_source(now, req, out),
            }
        }
    }

    fn on_address<C>(
        &mut self,
        now: Instant,
        id: ConnId,
        addr: Option<Addr>,
        out: &mut Vec<Effect<C>>,
    ) {
        let Some(e) = self.outbound.get(&id) else {
            return; // removed while the source was asked
        };
        if e.addr.is_some() || e.state != ConnState::Pending {
            return;
        }
        let (automatic, tries) = (e.req.is_automatic(), e.source_tries);
        let Some(addr) = addr else {
            return self.no_address(now, id, out);
        };
        match self.unusable(&addr, automatic) {
            None => self.take_address(now, id, addr, out),
            Some(why) if tries < MAX_SOURCE_TRIES => {
                debug!(target: LOG, "skipping {addr} for {id}: {why}");
                if let Some(e) = self.outbound.get_mut(&id) {
                    e.source_tries += 1;
                }
                out.push(Effect::FetchAddress { id });
            }
            Some(why) => {
                debug!(target: LOG, "skipping {addr} for {id}: {why}; waiting before asking again");
                self.no_address(now, id, out);
            }
        }
    }

    /// The source had nothing usable: finish the request and, for an
    /// automatic one, ask again only after the retry duration so that an
    /// empty source is not asked in a busy loop.
    fn no_address<C>(&mut self, now: Instant, id: ConnId, out: &mut Vec<Effect<C>>) {
        let Some(req) = self.outbound.get(&id).map(|e| e.req.clone()) else {
            return;
        };
        debug!(target: LOG, "address source has no usable address for {id}");
        self.finish(id, ConnState::Failing);
        out.push(Effect::Notify(CoreEvent::DialFailed {
            req: req.clone(),
            error: DialError::Other("the address source has no usable address".into()),
            retry_in: None,
        }));
        if req.is_automatic() {
            self.schedule_refill(now);
        }
    }

    /// Why an address from the source cannot be used now, if it cannot.
    fn unusable(&self, addr: &Addr, automatic: bool) -> Option<&'static str> {
        if automatic && self.cfg.diversity {
            let group = diversity_group(addr)?;
            if self.groups.contains_key(&group) {
                return Some("its netgroup already has an automatic connection");
            }
        }
        None
    }

    fn take_address<C>(&mut self, now: Instant, id: ConnId, addr: Addr, out: &mut Vec<Effect<C>>) {
        let Some(e) = self.outbound.get_mut(&id) else {
            return;
        };
        if e.req.is_automatic() && self.cfg.diversity {
            if let Some(group) = diversity_group(&addr) {
                *self.groups.entry(group.clone()).or_default() += 1;
                e.group = Some(group);
            }
        }
        e.req.set_addr(addr.clone());
        e.addr = Some(addr);
        self.dial(now, id, out);
    }

    fn on_report(&mut self, now: Instant, id: ConnId, report: PeerReport) {
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

    fn dial<C>(&mut self, now: Instant, id: ConnId, out: &mut Vec<Effect<C>>) {
        let Some(e) = self.outbound.get_mut(&id) else {
            return;
        };
        let Some(addr) = e.addr.clone() else {
            return;
        };
        e.attempt += 1;
        e.state = ConnState::Pending;
        e.since = now;
        e.next_attempt = None;
        self.stats.dials += 1;
        out.push(Effect::Dial {
            id,
            attempt: e.attempt,
            addr,
        });
        self.mark(id);
    }

    fn on_dial_succeeded<C>(
        &mut self,
        now: Instant,
        id: ConnId,
        attempt: u64,
        conn: C,
        out: &mut Vec<Effect<C>>,
    ) {
        let entry = self
            .outbound
            .get_mut(&id)
            .filter(|e| e.state == ConnState::Pending && e.attempt == attempt);
        let Some((e, addr)) = entry.and_then(|e| e.addr.clone().map(|a| (e, a))) else {
            debug!(target: LOG, "closing late connection for {id} (attempt {attempt})");
            out.push(Effect::Discard { conn });
            return;
        };
        self.next_serial += 1;
        e.state = ConnState::Established;
        e.serial = self.next_serial;
        e.since = now;
        e.established_at = Some(now);
        self.stats.outbound_established += 1;
        self.stats.consecutive_failures = 0;
        info!(target: LOG, "connected to {addr} ({id})");
        out.push(Effect::Established {
            req: Some(e.req.clone()),
            id,
            serial: e.serial,
            addr,
            direction: Direction::Outbound,
            conn,
        });
        self.mark(id);
    }

    fn on_dial_failed<C>(
        &mut self,
        now: Instant,
        id: ConnId,
        attempt: u64,
        error: DialError,
        out: &mut Vec<Effect<C>>,
    ) {
        let Some(e) = self.outbound.get_mut(&id) else {
            return;
        };
        if e.state != ConnState::Pending || e.attempt != attempt {
            return;
        }
        self.stats.dial_failures += 1;
        let req = e.req.clone();
        debug!(target: LOG, "dial {id} to {:?} failed: {error}", e.addr);
        if req.is_permanent() {
            let delay = self.schedule_retry(now, id, ConnState::Failing, false);
            out.push(Effect::Notify(CoreEvent::DialFailed {
                req,
                error,
                retry_in: delay,
            }));
            return;
        }
        self.finish(id, ConnState::Failing);
        out.push(Effect::Notify(CoreEvent::DialFailed {
            req: req.clone(),
            error,
            retry_in: None,
        }));
        if req.is_automatic() {
            self.stats.consecutive_failures = self.stats.consecutive_failures.saturating_add(1);
            if self.stats.consecutive_failures >= self.cfg.max_failed_attempts {
                self.schedule_refill(now);
            }
        }
    }

    /// Puts a permanent request in `state` and queues its next attempt;
    /// returns the wait.
    fn schedule_retry(
        &mut self,
        now: Instant,
        id: ConnId,
        state: ConnState,
        was_up: bool,
    ) -> Option<Duration> {
        let e = self.outbound.get_mut(&id)?;
        let stable = e
            .established_at
            .is_some_and(|at| now.saturating_duration_since(at) >= self.cfg.min_stable_duration);
        if was_up && stable {
            e.retries = 0;
        }
        e.retries = e.retries.saturating_add(1);
        let delay = self.cfg.backoff.delay(
            e.retries,
            self.cfg.retry_duration,
            self.cfg.max_retry_duration,
            &mut self.rng,
        );
        e.state = state;
        e.since = now;
        e.next_attempt = Some(now + delay);
        self.timers.push(Reverse((
            now + delay,
            Timer::Retry {
                id,
                attempt: e.attempt,
            },
        )));
        self.mark(id);
        Some(delay)
    }

    fn schedule_refill(&mut self, now: Instant) {
        self.refills_scheduled += 1;
        self.timers
            .push(Reverse((now + self.cfg.retry_duration, Timer::Refill)));
    }

    fn on_tick<C>(&mut self, now: Instant, out: &mut Vec<Effect<C>>) {
        while let Some(Reverse((at, timer))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match timer {
                Timer::Refill => self.refills_scheduled = self.refills_scheduled.saturating_sub(1),
                Timer::Retry { id, attempt } => {
                    let due = matches!(self.outbound.get(&id),
                        Some(e) if e.attempt == attempt
                            && matches!(e.state, ConnState::Failing | ConnState::Disconnected));
                    if due {
                        self.dial(now, id, out);
                    }
                }
            }
        }
    }

    fn on_teardown<C>(
        &mut self,
        now: Instant,
        id: ConnId,
        mode: Teardown,
        out: &mut Vec<Effect<C>>,
    ) {
        if self.inbound.contains_key(&id) {
            if mode != Teardown::Reconnect {
                self.close_inbound(id, out);
            }
            return;
        }
        let Some(e) = self.outbound.get(&id) else {
            debug!(target: LOG, "{mode:?} for unknown request {id} ignored");
            return;
        };
        match e.state {
            ConnState::Established => self.take_down(now, id, mode, out),
            ConnState::Pending if mode == Teardown::Reconnect => {
                debug!(target: LOG, "reconnect of {id} ignored: already connecting");
            }
            ConnState::Pending => {
                out.push(Effect::CancelDial { id });
                self.finish(id, ConnState::Canceled);
            }
            ConnState::Failing | ConnState::Disconnected if mode == Teardown::Reconnect => {
                self.dial(now, id, out)
            }
            ConnState::Failing | ConnState::Disconnected | ConnState::Canceled => {
                self.finish(id, ConnState::Canceled)
            }
        }
    }

    /// Closes an established outbound connection and decides what follows.
    fn take_down<C>(&mut self, now: Instant, id: ConnId, mode: Teardown, out: &mut Vec<Effect<C>>) {
        let Some(e) = self.outbound.get_mut(&id) else {
            return;
        };
        let req = e.req.clone();
        out.push(Effect::Close { serial: e.serial });
        self.stats.closed += 1;
        info!(target: LOG, "disconnected from {:?} ({id})", e.addr);
        out.push(Effect::Notify(CoreEvent::Disconnected { req: req.clone() }));
        match mode {
            Teardown::Remove => self.finish(id, ConnState::Disconnected),
            Teardown::Disconnect if req.is_permanent() => {
                self.schedule_retry(now, id, ConnState::Disconnected, true);
            }
            Teardown::Disconnect => self.finish(id, ConnState::Disconnected),
            Teardown::Reconnect => {
                let stable = e.established_at.is_some_and(|at| {
                    now.saturating_duration_since(at) >= self.cfg.min_stable_duration
                });
                if stable {
                    e.retries = 0;
                }
                self.dial(now, id, out);
            }
        }
    }

    fn on_accepted<C>(&mut self, now: Instant, conn: C, remote: Addr, out: &mut Vec<Effect<C>>) {
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

    fn on_closed<C>(&mut self, now: Instant, id: ConnId, serial: u64, out: &mut Vec<Effect<C>>) {
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
    fn close_inbound<C>(&mut self, id: ConnId, out: &mut Vec<Effect<C>>) {
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
        if let Some(group) = &e.group {
            release_group(&mut self.groups, group);
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

fn release_group(groups: &mut HashMap<NetGroup, usize>, group: &NetGroup) {
    if let Some(n) = groups.get_mut(group) {
        *n -= 1;
        if *n == 0 {
            groups.remove(group);
        }
    }
}

fn out_info(id: ConnId, e: &OutEntry) -> ConnInfo {
    ConnInfo {
        id,
        addr: e.addr.clone(),
        direction: Direction::Outbound,
        state: e.state,
        permanent: e.req.is_permanent(),
        automatic: e.req.is_automatic(),
        retries: e.retries,
        since: e.since,
        next_attempt: e.next_attempt,
    }
}

fn in_info(id: ConnId, e: &InEntry) -> ConnInfo {
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
