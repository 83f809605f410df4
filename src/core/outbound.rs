//! The outbound book: filling the target, addresses, dials, retries with
//! backoff, the netgroup diversity rule, anchors and teardown.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use log::{debug, info};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::record::{OutPart, Record};
use super::{later, Core, CoreConfig, CoreEvent, Effect, ReqSpec, Teardown, LOG};
use crate::addr::{Addr, NetGroup};
use crate::idmap::IdMap;
use crate::policy::backoff::Backoff;
use crate::policy::diversity::diversity_group;
use crate::policy::permissions::Permissions;
use crate::types::{CloseReason, ConnId, ConnState, ConnType, DialError, Direction};

/// Unusable addresses (banned, or in a netgroup already held) the source
/// may give one request before the request waits like an empty source.
const MAX_SOURCE_TRIES: u8 = 8;

/// The Core's random generator, from its seed.
pub(super) fn seeded(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    Retry {
        id: ConnId,
        attempt: u64,
    },
    /// A refill of an automatic type waited out the failure throttle.
    Refill(ConnType),
    /// Time for the next feeler.
    Feeler,
    /// A feeler or one-shot connection reached its timeout.
    Lifetime {
        id: ConnId,
        serial: u64,
    },
}

/// One automatic type's target and what fills it.
#[derive(Debug, Default)]
pub(super) struct Slots {
    target: usize,
    /// Live requests of this type, in any state.
    live: usize,
    /// Refills waiting on the failure throttle.
    refills: usize,
    /// Established connections of this type.
    established: usize,
}

impl Slots {
    fn new(target: usize) -> Self {
        Slots {
            target,
            ..Slots::default()
        }
    }

    fn wants(&self) -> bool {
        self.live + self.refills < self.target
    }
}

/// Outbound state that is not per request: targets, timers, netgroups
/// held, anchors, and the settings that govern them.
pub(super) struct OutboundBook {
    /// Full-relay automatic connections.
    full: Slots,
    /// Block-relay-only automatic connections.
    block: Slots,
    has_source: bool,
    retry: Duration,
    max_retry: Duration,
    backoff: Backoff,
    min_stable: Duration,
    max_failed: u32,
    diversity: bool,
    anchor_count: usize,
    pub(super) rng: SmallRng,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    /// The feeler settings and the feeler in flight, if any.
    pub(super) feelers: super::feelers::Feelers,
    /// Per-network rules and what automatic requests hold on each.
    pub(super) nets: super::netrules::NetBook,
    /// Whether manual requests may dial peers in use.
    manual_duplicates: bool,
    /// Automatic requests holding each routable netgroup.
    groups: HashMap<NetGroup, usize>,
    /// Addresses to use before asking the source, last first.
    anchors: Vec<Addr>,
    /// Established outbound connections.
    established: usize,
    /// How long a dial may take, if the Core enforces it.
    dial_timeout: Option<Duration>,
    /// Deadlines of dials, in the order they were made (so oldest first:
    /// the timeout is one constant). Entries of dials that already ended
    /// are skipped at the front and compacted away in bulk.
    deadlines: VecDeque<(Instant, ConnId, u64)>,
}

/// Ended dials' deadlines tolerated beyond the records before a compaction.
const DEADLINE_SLACK: usize = 64;

impl OutboundBook {
    pub(super) fn new(cfg: &CoreConfig, rng: SmallRng) -> Self {
        OutboundBook {
            full: Slots::new(cfg.target_outbound),
            block: Slots::new(cfg.target_block_relay),
            has_source: cfg.has_address_source,
            retry: cfg.retry_duration,
            max_retry: cfg.max_retry_duration.max(cfg.retry_duration),
            backoff: cfg.backoff,
            min_stable: cfg.min_stable_duration,
            max_failed: cfg.max_failed_attempts.max(1),
            diversity: cfg.diversity,
            anchor_count: cfg.anchor_count,
            rng,
            timers: BinaryHeap::new(),
            feelers: super::feelers::Feelers::new(cfg),
            manual_duplicates: cfg.manual_duplicates,
            nets: super::netrules::NetBook::new(
                cfg.networks.clone(),
                cfg.max_retry_duration.max(cfg.retry_duration),
            ),
            groups: HashMap::new(),
            anchors: Vec::new(),
            established: 0,
            dial_timeout: cfg.dial_timeout,
            deadlines: VecDeque::new(),
        }
    }

    pub(super) fn set_anchors(&mut self, addrs: Vec<Addr>) {
        self.anchors = addrs.into_iter().rev().collect();
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        let dial = self.deadlines.front().map(|(at, _, _)| *at);
        timer.into_iter().chain(dial).min()
    }

    pub(super) fn queued_timers(&self) -> usize {
        self.timers.len() + self.deadlines.len()
    }

    /// The next dial deadline that has passed, if any.
    fn pop_expired(&mut self, now: Instant) -> Option<(ConnId, u64)> {
        match self.deadlines.front() {
            Some((at, _, _)) if *at <= now => self.deadlines.pop_front().map(|(_, id, a)| (id, a)),
            _ => None,
        }
    }

    pub(super) fn automatic_slots(&self) -> usize {
        self.full.live + self.full.refills + self.block.live + self.block.refills
    }

    pub(super) fn established(&self) -> usize {
        self.established
    }

    /// The slots of automatic type `kind`.
    fn slots_mut(&mut self, kind: ConnType) -> Option<&mut Slots> {
        match kind {
            ConnType::FullRelay => Some(&mut self.full),
            ConnType::BlockRelay => Some(&mut self.block),
            _ => None,
        }
    }

    fn connection_opened(&mut self, kind: ConnType) {
        self.established += 1;
        if let Some(s) = self.slots_mut(kind) {
            s.established += 1;
        }
    }

    pub(super) fn connection_closed(&mut self, kind: ConnType) {
        self.established = self.established.saturating_sub(1);
        if let Some(s) = self.slots_mut(kind) {
            s.established = s.established.saturating_sub(1);
        }
    }

    /// Whether every automatic target is met with established connections
    /// (feelers wait for that, as in Bitcoin Core).
    pub(super) fn targets_established(&self) -> bool {
        self.full.established >= self.full.target && self.block.established >= self.block.target
    }

    /// Full-relay slots not yet taken by a request.
    pub(super) fn full_free(&self) -> usize {
        self.full.target.saturating_sub(self.full.live)
    }

    pub(super) fn has_source(&self) -> bool {
        self.has_source
    }

    pub(super) fn clear_timers(&mut self) {
        self.timers.clear();
        self.deadlines.clear();
        self.full.refills = 0;
        self.block.refills = 0;
    }

    /// The automatic type that wants another request now, if any: anchors
    /// go to block-relay slots first, then full-relay slots fill, then
    /// block-relay ones.
    fn wanted_automatic(&self) -> Option<ConnType> {
        if !self.has_source {
            return None;
        }
        if self.block.wants() && !self.anchors.is_empty() {
            return Some(ConnType::BlockRelay);
        }
        if self.full.wants() {
            return Some(ConnType::FullRelay);
        }
        self.block.wants().then_some(ConnType::BlockRelay)
    }

    /// Releases what a finished request held.
    pub(super) fn request_gone(&mut self, id: ConnId, o: &OutPart, addr: Option<&Addr>) {
        if let Some(s) = self.slots_mut(o.kind) {
            s.live = s.live.saturating_sub(1);
        }
        self.nets.release(o, addr);
        self.feelers.gone(id);
        if let (true, Some(group)) = (o.holds_group, addr.and_then(diversity_group)) {
            if let Some(n) = self.groups.get_mut(&group) {
                *n -= 1;
                if *n == 0 {
                    self.groups.remove(&group);
                }
            }
        }
    }

    /// Whether the diversity rule keeps an automatic request from `addr`.
    fn group_taken(&self, addr: &Addr) -> bool {
        self.diversity && diversity_group(addr).is_some_and(|g| self.groups.contains_key(&g))
    }

    /// Takes `addr`'s netgroup for an automatic request; whether it did.
    fn hold_group(&mut self, addr: &Addr) -> bool {
        match diversity_group(addr) {
            Some(group) if self.diversity => {
                *self.groups.entry(group).or_default() += 1;
                true
            }
            _ => false,
        }
    }

    pub(super) fn push_timer(&mut self, at: Instant, timer: Timer) {
        self.timers.push(Reverse((at, timer)));
    }

    fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        match self.timers.peek() {
            Some(Reverse((at, _))) if *at <= now => self.timers.pop().map(|Reverse((_, t))| t),
            _ => None,
        }
    }

    /// Holds a slot of automatic type `kind` for the retry duration.
    fn schedule_refill(&mut self, now: Instant, kind: ConnType) {
        if let Some(s) = self.slots_mut(kind) {
            s.refills += 1;
            let at = later(now, self.retry);
            self.push_timer(at, Timer::Refill(kind));
        }
    }

    /// The wait before retry number `retries`.
    fn delay(&mut self, retries: u32) -> Duration {
        self.backoff
            .delay(retries, self.retry, self.max_retry, &mut self.rng)
    }

    /// The addresses of the longest-lived established block-relay-only
    /// automatic connections, oldest first (Bitcoin Core's anchors).
    pub(super) fn anchor_candidates(&self, records: &IdMap<ConnId, Record>) -> Vec<Addr> {
        let mut live: Vec<(Instant, ConnId, &Addr)> = records
            .iter()
            .filter(|(_, r)| r.is_live() && r.conn_type() == ConnType::BlockRelay)
            .filter_map(|(id, r)| Some((r.opened()?, *id, r.addr.as_ref()?)))
            .collect();
        live.sort();
        live.into_iter()
            .take(self.anchor_count)
            .map(|(_, _, a)| a.clone())
            .collect()
    }
}

impl Core {
    pub(super) fn on_connect<C>(&mut self, now: Instant, spec: ReqSpec, out: &mut Vec<Effect<C>>) {
        if self.stopped {
            return;
        }
        if !spec.id.is_caller() || self.records.contains_key(&spec.id) {
            debug!(target: LOG, "request {} ignored: id not a fresh caller id", spec.id);
            return;
        }
        if !matches!(spec.conn_type, ConnType::Manual | ConnType::OneShot) {
            // The Core makes the other types itself, and inbound
            // connections are the peer's to open.
            let why = format!(
                "a caller's request is manual or one-shot, not {}: the manager makes {} \
                 connections itself",
                spec.conn_type, spec.conn_type
            );
            out.push(Effect::Notify(CoreEvent::DialFailed {
                req: spec,
                error: DialError::Rejected(why),
                retry_in: None,
            }));
            return;
        }
        let id = spec.id;
        if let Some(addr) = &spec.addr {
            self.addr_use.add(addr);
        }
        let mut part = OutPart::for_spec(&spec);
        if part.kind == ConnType::OneShot {
            part.permanent = false;
        }
        let table = spec
            .addr
            .as_ref()
            .map_or(Permissions::NONE, |a| self.perms_for(a));
        let mut record = Record::outbound(spec.addr, part, now);
        record.perms = spec.permissions | table;
        self.records.insert(id, record);
        self.mark(id);
        if self.started {
            self.begin(now, id, out);
        }
    }

    /// Starts a pending request: dial its address, or ask the source.
    pub(super) fn begin<C>(&mut self, now: Instant, id: ConnId, out: &mut Vec<Effect<C>>) {
        match self.records.get(&id) {
            Some(r) if r.addr.is_some() => self.dial(now, id, out),
            Some(_) => out.push(Effect::FetchAddress { id }),
            None => {}
        }
    }

    /// Tops up automatic requests to the target.
    pub(super) fn fill<C>(&mut self, now: Instant, out: &mut Vec<Effect<C>>) {
        if !self.started || self.stopped {
            return;
        }
        while let Some(kind) = self.out.wanted_automatic() {
            let id = self.mint_id();
            let part = OutPart::new(kind, false, false);
            self.records.insert(id, Record::outbound(None, part, now));
            if kind == ConnType::FullRelay {
                self.reserve_slot(id, now);
            }
            if let Some(s) = self.out.slots_mut(kind) {
                s.live += 1;
            }
            self.mark(id);
            let anchor = match kind {
                ConnType::BlockRelay => self.out.anchors.pop(),
                _ => None,
            };
            match anchor {
                Some(anchor) => self.on_address(now, id, Some(anchor), out),
                None => out.push(Effect::FetchAddress { id }),
            }
        }
    }

    pub(super) fn on_address<C>(
        &mut self,
        now: Instant,
        id: ConnId,
        addr: Option<Addr>,
        out: &mut Vec<Effect<C>>,
    ) {
        let Some(r) = self.records.get(&id) else {
            return; // removed while the source was asked
        };
        let Some(o) = r.out() else {
            return;
        };
        if r.addr.is_some() || r.state != ConnState::Pending {
            return;
        }
        let (kind, tries) = (o.kind, o.source_tries);
        let Some(addr) = addr else {
            return self.no_address(now, id, out);
        };
        let refusal = self.out.nets.refuses(o, &addr);
        match refusal.or_else(|| self.unusable(&addr, kind, now)) {
            None => self.take_address(now, id, addr, out),
            Some(why) if tries < MAX_SOURCE_TRIES => {
                debug!(target: LOG, "skipping {addr} for {id}: {why}");
                if let Some(o) = self.records.get_mut(&id).and_then(Record::out_mut) {
                    o.source_tries += 1;
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
        let req = self.spec(id);
        let needs = self
            .records
            .get(&id)
            .and_then(Record::out)
            .and_then(|o| o.needs);
        if let Some(net) = needs {
            self.out.nets.reservation_failed(net, now);
        }
        debug!(target: LOG, "address source has no usable address for {id}");
        self.finish(id, ConnState::Failing);
        out.push(Effect::Notify(CoreEvent::DialFailed {
            error: DialError::Other("the address source has no usable address".into()),
            retry_in: None,
            req: req.clone(),
        }));
        self.out.schedule_refill(now, req.conn_type);
    }

    /// Why an address from the source cannot be used now, if it cannot.
    fn unusable(&self, addr: &Addr, kind: ConnType, now: Instant) -> Option<&'static str> {
        let noban = self.perms_for(addr).contains(Permissions::NOBAN);
        if !noban && self.bans.ban_for_addr(addr, now).is_some() {
            return Some("it is banned");
        }
        // Feelers test addresses, so the netgroup rule does not hold them
        // back (as in Bitcoin Core); nothing the Core makes dials a peer
        // twice.
        if kind.is_automatic() && self.out.group_taken(addr) {
            return Some("its netgroup already has an automatic connection");
        }
        if kind.is_made_by_manager() && self.addr_use.in_use(addr) {
            return Some("it already has a connection or a dial in flight");
        }
        None
    }

    fn take_address<C>(&mut self, now: Instant, id: ConnId, addr: Addr, out: &mut Vec<Effect<C>>) {
        let automatic = self.records.get(&id).is_some_and(Record::is_automatic);
        let holds = automatic && self.out.hold_group(&addr);
        let table = self.perms_for(&addr);
        if let Some(r) = self.records.get_mut(&id) {
            r.perms |= table;
            if let Some(o) = r.out_mut() {
                o.holds_group = holds;
                self.out.nets.take(o, &addr);
            }
            self.addr_use.add(&addr);
            r.addr = Some(addr);
        }
        self.dial(now, id, out);
    }

    /// Dials `id`'s address as a new attempt, unless it is banned.
    pub(super) fn dial<C>(&mut self, now: Instant, id: ConnId, out: &mut Vec<Effect<C>>) {
        let Some(r) = self.records.get_mut(&id) else {
            return;
        };
        let Some(addr) = r.addr.clone() else {
            return;
        };
        let Some(o) = r.out_mut() else {
            return;
        };
        o.attempt += 1;
        let attempt = o.attempt;
        r.set_next_attempt(None);
        r.score = None;
        r.state = ConnState::Pending;
        r.set_since(now);
        let noban = r.perms.contains(Permissions::NOBAN);
        self.mark(id);
        if let Some(ban) = self.bans.ban_for_addr(&addr, now).filter(|_| !noban) {
            let why = format!("{addr} is banned: {}", ban.reason);
            self.set_dialing(id, true);
            return self.on_dial_failed(now, id, attempt, DialError::Rejected(why), out);
        }
        if let Some(why) = self.duplicate(id, &addr) {
            self.set_dialing(id, true);
            return self.on_dial_failed(now, id, attempt, DialError::Rejected(why), out);
        }
        self.set_dialing(id, true);
        self.stats.dials += 1;
        let deadline = self.out.dial_timeout.map(|t| later(now, t));
        if let Some(at) = deadline {
            self.out.deadlines.push_back((at, id, attempt));
            self.compact_deadlines();
        }
        out.push(Effect::Dial {
            id,
            attempt,
            addr,
            deadline,
        });
    }

    /// Why a caller's request `id` must not dial `addr` now, if it must
    /// not: another record (a connection either way, a dial, a request
    /// waiting to retry) already uses that peer. The Core's own requests
    /// never get this far with a peer in use.
    fn duplicate(&self, id: ConnId, addr: &Addr) -> Option<String> {
        let o = self.records.get(&id)?.out()?;
        if self.out.manual_duplicates || o.allow_duplicate || o.kind.is_made_by_manager() {
            return None;
        }
        (self.addr_use.count(addr) > 1).then(|| {
            format!(
                "{addr} already has a connection or a dial in flight; \
                 allow duplicates on the request to connect anyway"
            )
        })
    }

    fn set_dialing(&mut self, id: ConnId, on: bool) {
        if let Some(o) = self.records.get_mut(&id).and_then(Record::out_mut) {
            o.dialing = on;
        }
        if !on {
            self.skip_ended_deadlines();
        }
    }

    /// Drops deadlines of dials that ended from the front, so the next
    /// wake-up is a live one.
    pub(super) fn skip_ended_deadlines(&mut self) {
        while let Some(&(_, id, attempt)) = self.out.deadlines.front() {
            if self.is_current_dial(id, attempt) {
                return;
            }
            self.out.deadlines.pop_front();
        }
    }

    /// Keeps the deadline queue within the records (each has at most one
    /// dial in flight) plus a slack: whole passes, each after at least
    /// `DEADLINE_SLACK` pushes, so the cost per dial stays constant.
    fn compact_deadlines(&mut self) {
        if self.out.deadlines.len() <= self.records.len() + DEADLINE_SLACK {
            return;
        }
        let mut deadlines = std::mem::take(&mut self.out.deadlines);
        deadlines.retain(|&(_, id, attempt)| self.is_current_dial(id, attempt));
        self.out.deadlines = deadlines;
    }

    /// Reports every dial whose deadline has passed as timed out.
    fn expire_dials<C>(&mut self, now: Instant, out: &mut Vec<Effect<C>>) {
        while let Some((id, attempt)) = self.out.pop_expired(now) {
            if self.is_current_dial(id, attempt) {
                debug!(target: LOG, "dial {id} (attempt {attempt}) passed its deadline");
                out.push(Effect::DialExpired { id, attempt });
                self.on_dial_failed(now, id, attempt, DialError::TimedOut, out);
            }
        }
    }

    /// Whether `attempt` is the dial of `id` now in flight.
    fn is_current_dial(&self, id: ConnId, attempt: u64) -> bool {
        matches!(self.records.get(&id), Some(r) if r.state == ConnState::Pending
            && r.out().is_some_and(|o| o.dialing && o.attempt == attempt))
    }

    pub(super) fn on_dial_succeeded<C>(
        &mut self,
        now: Instant,
        id: ConnId,
        attempt: u64,
        (conn, remote): (C, Option<std::net::IpAddr>),
        out: &mut Vec<Effect<C>>,
    ) {
        let addr = self.records.get(&id).and_then(|r| r.addr.clone());
        let (true, Some(addr)) = (self.is_current_dial(id, attempt), addr) else {
            debug!(target: LOG, "closing late connection for {id} (attempt {attempt})");
            out.push(Effect::Discard { conn });
            return;
        };
        let table = remote.map_or(Permissions::NONE, |ip| self.permissions.lookup(ip));
        let perms = self.records.get(&id).map_or(table, |r| r.perms | table);
        let noban = perms.contains(Permissions::NOBAN);
        // Banned while the dial was in flight: never hand it over.
        if let Some(ban) = self.bans.ban_for_addr(&addr, now).filter(|_| !noban) {
            out.push(Effect::Discard { conn });
            let why = format!("{addr} was banned during the dial: {}", ban.reason);
            return self.on_dial_failed(now, id, attempt, DialError::Rejected(why), out);
        }
        // The address the socket really reached (a name resolves anywhere).
        let remote_ban = remote
            .filter(|_| !noban)
            .and_then(|ip| Some((ip, self.bans.ban_for_ip(ip, now)?)));
        if let Some((ip, ban)) = remote_ban {
            out.push(Effect::Discard { conn });
            let why = format!("{addr} reached {ip}, which is banned: {}", ban.reason);
            return self.on_dial_failed(now, id, attempt, DialError::Rejected(why), out);
        }
        self.next_serial += 1;
        let serial = self.next_serial;
        if let Some(r) = self.records.get_mut(&id) {
            r.perms = perms;
            r.state = ConnState::Established;
            r.serial = serial;
            r.set_since(now);
            r.set_opened(Some(now));
        }
        self.set_dialing(id, false);
        self.stats.outbound_established += 1;
        self.stats.consecutive_failures = 0;
        let kind = self
            .records
            .get(&id)
            .map_or(ConnType::Manual, Record::conn_type);
        self.out.connection_opened(kind);
        self.start_lifetime(now, id, serial, kind);
        info!(target: LOG, "connected to {addr} ({id})");
        out.push(Effect::Established {
            req: Some(self.spec(id)),
            id,
            serial,
            addr,
            direction: Direction::Outbound,
            conn,
        });
        self.mark(id);
        self.peers_opened(id, now);
    }

    pub(super) fn on_dial_failed<C>(
        &mut self,
        now: Instant,
        id: ConnId,
        attempt: u64,
        error: DialError,
        out: &mut Vec<Effect<C>>,
    ) {
        if !self.is_current_dial(id, attempt) {
            return;
        }
        self.set_dialing(id, false);
        self.stats.dial_failures += 1;
        let req = self.spec(id);
        debug!(target: LOG, "dial {id} to {:?} failed: {error}", req.addr);
        if req.permanent {
            let retry_in = self.schedule_retry(now, id, ConnState::Failing, false);
            out.push(Effect::Notify(CoreEvent::DialFailed {
                req,
                error,
                retry_in,
            }));
            return;
        }
        self.finish(id, ConnState::Failing);
        let kind = req.conn_type;
        out.push(Effect::Notify(CoreEvent::DialFailed {
            req,
            error,
            retry_in: None,
        }));
        if kind.is_automatic() {
            self.stats.consecutive_failures = self.stats.consecutive_failures.saturating_add(1);
            if self.stats.consecutive_failures >= self.out.max_failed {
                self.out.schedule_refill(now, kind);
            }
        }
    }

    /// Puts a permanent request in `state` and queues its next attempt;
    /// returns the wait. A connection that was up at least the stable
    /// duration resets the retry count first.
    fn schedule_retry(
        &mut self,
        now: Instant,
        id: ConnId,
        state: ConnState,
        was_up: bool,
    ) -> Option<Duration> {
        let min_stable = self.out.min_stable;
        let r = self.records.get_mut(&id)?;
        let stable = was_up && r.was_stable(min_stable, now);
        let o = r.out_mut()?;
        if stable {
            o.retries = 0;
        }
        o.retries = o.retries.saturating_add(1);
        let (retries, attempt) = (o.retries, o.attempt);
        let delay = self.out.delay(retries);
        let at = later(now, delay);
        let r = self.records.get_mut(&id)?;
        r.state = state;
        r.set_since(now);
        r.set_next_attempt(Some(at));
        self.out.push_timer(at, Timer::Retry { id, attempt });
        self.mark(id);
        Some(delay)
    }

    pub(super) fn on_tick<C>(&mut self, now: Instant, out: &mut Vec<Effect<C>>) {
        self.decay_tags(now);
        self.peers.prune(now);
        self.expire_dials(now, out);
        while let Some(timer) = self.out.pop_due(now) {
            match timer {
                Timer::Refill(kind) => {
                    if let Some(s) = self.out.slots_mut(kind) {
                        s.refills = s.refills.saturating_sub(1);
                    }
                }
                Timer::Feeler => self.on_feeler_due(now, out),
                Timer::Lifetime { id, serial } => self.on_lifetime_over(now, id, serial, out),
                Timer::Retry { id, attempt } => {
                    let due = matches!(self.records.get(&id),
                        Some(r) if matches!(r.state, ConnState::Failing | ConnState::Disconnected)
                            && r.out().is_some_and(|o| o.attempt == attempt));
                    if due {
                        self.dial(now, id, out);
                    }
                }
            }
        }
    }

    pub(super) fn on_teardown<C>(
        &mut self,
        now: Instant,
        id: ConnId,
        mode: Teardown,
        out: &mut Vec<Effect<C>>,
    ) {
        let Some(r) = self.records.get(&id) else {
            debug!(target: LOG, "{mode:?} for unknown request {id} ignored");
            return;
        };
        if !mode.applies_to(r.direction()) {
            debug!(target: LOG, "{mode:?} of inbound {id} ignored");
            return;
        }
        let dialing = r.out().filter(|o| o.dialing).map(|o| o.attempt);
        match r.state {
            ConnState::Established => {
                let reason = match mode {
                    Teardown::Disconnect => CloseReason::Disconnect,
                    Teardown::Reconnect => CloseReason::Reconnect,
                    Teardown::Remove => CloseReason::Removed,
                };
                self.take_down(now, id, mode, reason, out)
            }
            ConnState::Pending if mode == Teardown::Reconnect => {
                debug!(target: LOG, "reconnect of {id} ignored: already connecting");
            }
            ConnState::Pending => {
                if let Some(attempt) = dialing {
                    out.push(Effect::CancelDial { id, attempt });
                }
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

    /// Closes an established connection (either direction) and decides
    /// what follows.
    pub(super) fn take_down<C>(
        &mut self,
        now: Instant,
        id: ConnId,
        mode: Teardown,
        reason: CloseReason,
        out: &mut Vec<Effect<C>>,
    ) {
        let Some(r) = self.records.get(&id).filter(|r| r.is_live()) else {
            return;
        };
        let (serial, direction, permanent, kind) =
            (r.serial, r.direction(), r.is_permanent(), r.conn_type());
        self.stats.closed += 1;
        self.stats.closes.count(reason);
        out.push(Effect::Close { serial });
        out.push(Effect::Notify(self.closed_event(id, reason)));
        if direction == Direction::Inbound {
            info!(target: LOG, "inbound {id} closed");
            return self.finish(id, ConnState::Disconnected);
        }
        info!(target: LOG, "disconnected from {id}");
        self.peers_closed(id);
        self.out.connection_closed(kind);
        match mode {
            Teardown::Disconnect if permanent => {
                self.schedule_retry(now, id, ConnState::Disconnected, true);
            }
            Teardown::Remove | Teardown::Disconnect => {
                // A peer that drops an automatic connection before it was
                // stable gets its slot refilled only after the retry
                // duration: otherwise peers that accept and drop at once
                // would have the slot dial as fast as they answer.
                let unstable = reason == CloseReason::Closed
                    && self.records.get(&id).is_some_and(|r| {
                        r.is_automatic() && !r.was_stable(self.out.min_stable, now)
                    });
                self.finish_closed(id);
                if unstable {
                    self.out.schedule_refill(now, kind);
                }
            }
            Teardown::Reconnect => {
                let min = self.out.min_stable;
                if let Some(r) = self.records.get_mut(&id) {
                    let stable = r.was_stable(min, now);
                    r.state = ConnState::Disconnected;
                    if let (true, Some(o)) = (stable, r.out_mut()) {
                        o.retries = 0;
                    }
                }
                self.dial(now, id, out);
            }
        }
    }

    /// Finishes an outbound record whose connection was already counted
    /// as closed.
    fn finish_closed(&mut self, id: ConnId) {
        if let Some(r) = self.records.get_mut(&id) {
            r.state = ConnState::Disconnected;
        }
        self.finish(id, ConnState::Disconnected);
    }
}
