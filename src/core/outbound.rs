//! Outbound requests: filling the target, addresses, dials, retries and
//! teardown.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use log::{debug, info};

use super::{Core, CoreEvent, Effect, OutEntry, Teardown, Timer, LOG, MAX_SOURCE_TRIES};
use crate::addr::{Addr, NetGroup};
use crate::core::info::ConnInfo;
use crate::policy::diversity::diversity_group;
use crate::policy::tags::PeerId;
use crate::runtime::request::ConnReq;
use crate::types::DialError;
use crate::types::{ConnId, ConnState, Direction};

impl Core {
    pub(super) fn on_connect<C>(&mut self, now: Instant, req: ConnReq, out: &mut Vec<Effect<C>>) {
        if self.stopped {
            return;
        }
        let id = req.assigned_id();
        let addr = req.addr().cloned();
        self.insert_out(now, id, req, addr);
        self.dial(now, id, out);
    }

    pub(super) fn on_connect_from_source<C>(
        &mut self,
        now: Instant,
        req: ConnReq,
        out: &mut Vec<Effect<C>>,
    ) {
        if self.stopped {
            return;
        }
        let id = req.assigned_id();
        self.insert_out(now, id, req, None);
        out.push(Effect::FetchAddress { id });
    }

    pub(super) fn insert_out(
        &mut self,
        now: Instant,
        id: ConnId,
        req: ConnReq,
        addr: Option<Addr>,
    ) {
        if req.is_automatic() {
            self.auto_live += 1;
        }
        let entry = OutEntry {
            req,
            peer: None,
            addr,
            state: ConnState::Pending,
            retries: 0,
            attempt: 0,
            serial: 0,
            since: now,
            established_at: None,
            next_attempt: None,
            score: None,
            holds_group: false,
            source_tries: 0,
            dirty: false,
        };
        self.outbound.insert(id, entry);
        self.mark(id);
    }

    /// Tops up automatic requests to the target.
    pub(super) fn fill<C>(&mut self, now: Instant, out: &mut Vec<Effect<C>>) {
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

    pub(super) fn on_address<C>(
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
        match self.unusable(&addr, automatic, now) {
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
    pub(super) fn no_address<C>(&mut self, now: Instant, id: ConnId, out: &mut Vec<Effect<C>>) {
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
    pub(super) fn unusable(
        &self,
        addr: &Addr,
        automatic: bool,
        now: Instant,
    ) -> Option<&'static str> {
        if self.ban_on(addr.ip(), now).is_some() {
            return Some("it is banned");
        }
        if automatic && self.cfg.diversity {
            let group = diversity_group(addr)?;
            if self.groups.contains_key(&group) {
                return Some("its netgroup already has an automatic connection");
            }
        }
        None
    }

    pub(super) fn take_address<C>(
        &mut self,
        now: Instant,
        id: ConnId,
        addr: Addr,
        out: &mut Vec<Effect<C>>,
    ) {
        let Some(e) = self.outbound.get_mut(&id) else {
            return;
        };
        if e.req.is_automatic() && self.cfg.diversity {
            if let Some(group) = diversity_group(&addr) {
                *self.groups.entry(group).or_default() += 1;
                e.holds_group = true;
            }
        }
        e.req.set_addr(addr.clone());
        e.addr = Some(addr);
        self.dial(now, id, out);
    }

    pub(super) fn dial<C>(&mut self, now: Instant, id: ConnId, out: &mut Vec<Effect<C>>) {
        let Some(e) = self.outbound.get_mut(&id) else {
            return;
        };
        let Some(addr) = e.addr.clone() else {
            return;
        };
        e.attempt += 1;
        e.score = None;
        if let Some(ban) = self.bans.ban_for_addr(&addr, now) {
            let (attempt, why) = (e.attempt, format!("{addr} is banned: {}", ban.reason));
            e.state = ConnState::Pending;
            return self.on_dial_failed(now, id, attempt, DialError::Rejected(why), out);
        }
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

    pub(super) fn on_dial_succeeded<C>(
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
        // Banned while the dial was in flight: never hand it over.
        if let Some(ban) = self.bans.ban_for_addr(&addr, now) {
            out.push(Effect::Discard { conn });
            let why = format!("{addr} was banned during the dial: {}", ban.reason);
            return self.on_dial_failed(now, id, attempt, DialError::Rejected(why), out);
        }
        self.next_serial += 1;
        e.state = ConnState::Established;
        e.serial = self.next_serial;
        e.since = now;
        e.established_at = Some(now);
        self.stats.outbound_established += 1;
        self.stats.consecutive_failures = 0;
        self.established_out += 1;
        let serial = e.serial;
        info!(target: LOG, "connected to {addr} ({id})");
        out.push(Effect::Established {
            req: Some(e.req.clone()),
            id,
            serial,
            addr,
            direction: Direction::Outbound,
            conn,
        });
        self.mark(id);
        self.track_open(id, now);
    }

    pub(super) fn on_dial_failed<C>(
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
    pub(super) fn schedule_retry(
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

    pub(super) fn schedule_refill(&mut self, now: Instant) {
        self.refills_scheduled += 1;
        self.timers
            .push(Reverse((now + self.cfg.retry_duration, Timer::Refill)));
    }

    pub(super) fn on_tick<C>(&mut self, now: Instant, out: &mut Vec<Effect<C>>) {
        self.decay_tags(now);
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

    pub(super) fn on_teardown<C>(
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
    pub(super) fn take_down<C>(
        &mut self,
        now: Instant,
        id: ConnId,
        mode: Teardown,
        out: &mut Vec<Effect<C>>,
    ) {
        let Some((req, serial)) = self.outbound.get(&id).map(|e| (e.req.clone(), e.serial)) else {
            return;
        };
        self.track_close(id);
        out.push(Effect::Close { serial });
        self.stats.closed += 1;
        self.established_out -= 1;
        info!(target: LOG, "disconnected from {req}");
        out.push(Effect::Notify(CoreEvent::Disconnected { req: req.clone() }));
        match mode {
            Teardown::Remove => self.finish(id, ConnState::Disconnected),
            Teardown::Disconnect if req.is_permanent() => {
                self.schedule_retry(now, id, ConnState::Disconnected, true);
            }
            Teardown::Disconnect => self.finish(id, ConnState::Disconnected),
            Teardown::Reconnect => {
                let min = self.cfg.min_stable_duration;
                if let Some(e) = self.outbound.get_mut(&id) {
                    if e.established_at
                        .is_some_and(|at| now.saturating_duration_since(at) >= min)
                    {
                        e.retries = 0;
                    }
                }
                self.dial(now, id, out);
            }
        }
    }
}

/// The default identity of the peer at `addr`: its address text.
pub(super) fn peer_of(addr: &Addr) -> PeerId {
    PeerId::from(addr.to_string())
}

pub(super) fn release_group(groups: &mut HashMap<NetGroup, usize>, group: &NetGroup) {
    if let Some(n) = groups.get_mut(group) {
        *n -= 1;
        if *n == 0 {
            groups.remove(group);
        }
    }
}

pub(super) fn out_info(id: ConnId, e: &OutEntry) -> ConnInfo {
    ConnInfo {
        id,
        addr: e.addr.clone(),
        direction: Direction::Outbound,
        state: e.state,
        permanent: e.req.is_permanent(),
        automatic: e.req.is_automatic(),
        peer: e.peer.clone(),
        retries: e.retries,
        since: e.since,
        next_attempt: e.next_attempt,
    }
}
