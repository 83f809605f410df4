//! Short-lived connections: feelers, made on a timer to test an address
//! from the source, and the timeouts that close feelers and one-shot
//! connections.

use std::time::{Duration, Instant};

use log::{debug, info};
use rand::RngExt;

use super::outbound::Timer;
use super::record::{OutPart, Record};
use super::{later, Core, CoreConfig, Effect, Teardown, LOG};
use crate::types::{CloseReason, ConnId, ConnState, ConnType};

/// The longest feeler wait, as a multiple of the interval: the exponential
/// draw is cut there so that one unlucky draw cannot stall feelers.
const MAX_INTERVALS: f64 = 8.0;

/// The shortest feeler wait, so that a tick never re-arms a timer that is
/// already due.
const MIN_WAIT: Duration = Duration::from_millis(1);

/// Feeler and one-shot settings, and the feeler in flight.
#[derive(Debug)]
pub(super) struct Feelers {
    /// Mean time between feelers; `None` makes none.
    interval: Option<Duration>,
    /// How long a feeler may stay open waiting for its handshake.
    feeler_timeout: Duration,
    /// How long a one-shot connection may stay open.
    one_shot_timeout: Duration,
    /// The feeler request in flight (at most one, as in Bitcoin Core).
    current: Option<ConnId>,
}

impl Feelers {
    pub(super) fn new(cfg: &CoreConfig) -> Self {
        Feelers {
            interval: cfg.feeler_interval,
            feeler_timeout: cfg.feeler_timeout,
            one_shot_timeout: cfg.one_shot_timeout,
            current: None,
        }
    }

    /// Request `id` finished.
    pub(super) fn gone(&mut self, id: ConnId) {
        if self.current == Some(id) {
            self.current = None;
        }
    }

    /// How long a connection of `kind` may stay open, if it has a limit.
    fn lifetime(&self, kind: ConnType) -> Option<Duration> {
        match kind {
            ConnType::Feeler => Some(self.feeler_timeout),
            ConnType::OneShot => Some(self.one_shot_timeout),
            _ => None,
        }
    }
}

impl Core {
    /// Queues the next feeler after an exponentially distributed wait
    /// around the interval (Bitcoin Core's Poisson timer), so feelers do
    /// not run on a clock an observer can predict.
    pub(super) fn arm_feeler(&mut self, now: Instant) {
        // Feelers test addresses from the source; without one there are none.
        let Some(interval) = self.out.feelers.interval.filter(|_| self.out.has_source()) else {
            return;
        };
        let u: f64 = self.out.rng.random();
        let factor = (-(1.0 - u).ln()).min(MAX_INTERVALS);
        let wait = Duration::try_from_secs_f64(interval.as_secs_f64() * factor)
            .unwrap_or(Duration::MAX)
            .max(MIN_WAIT);
        let at = later(now, wait);
        if at > now {
            self.out.push_timer(at, Timer::Feeler);
        }
    }

    /// The feeler timer fired: start a feeler if every automatic target is
    /// met and none is in flight, and queue the next one either way.
    pub(super) fn on_feeler_due<C>(&mut self, now: Instant, out: &mut Vec<Effect<C>>) {
        if self.stopped {
            return;
        }
        self.arm_feeler(now);
        let ready = self.out.has_source()
            && self.out.feelers.current.is_none()
            && self.out.targets_established();
        if !ready {
            debug!(target: LOG, "no feeler now: targets not met or one in flight");
            return;
        }
        let id = self.mint_id();
        let part = OutPart::new(ConnType::Feeler, false, false);
        self.records.insert(id, Record::outbound(None, part, now));
        self.out.feelers.current = Some(id);
        self.stats.feelers = self.stats.feelers.saturating_add(1);
        self.mark(id);
        out.push(Effect::FetchAddress { id });
    }

    /// A connection of `kind` opened: queue its timeout if it has one.
    pub(super) fn start_lifetime(&mut self, now: Instant, id: ConnId, serial: u64, kind: ConnType) {
        if let Some(limit) = self.out.feelers.lifetime(kind) {
            self.out
                .push_timer(later(now, limit), Timer::Lifetime { id, serial });
        }
    }

    /// A feeler or one-shot connection reached its timeout.
    pub(super) fn on_lifetime_over<C>(
        &mut self,
        now: Instant,
        id: ConnId,
        serial: u64,
        out: &mut Vec<Effect<C>>,
    ) {
        if self.is_current_conn(id, serial) {
            info!(target: LOG, "{id} reached its timeout; closing");
            self.take_down(now, id, Teardown::Remove, CloseReason::Expired, out);
        }
    }

    /// The node finished its handshake on `id`: a feeler has done its job
    /// and closes; other connections are not affected.
    pub(super) fn on_handshake_done<C>(
        &mut self,
        now: Instant,
        id: ConnId,
        out: &mut Vec<Effect<C>>,
    ) {
        let feeler = matches!(self.records.get(&id),
            Some(r) if r.is_live() && r.conn_type() == ConnType::Feeler);
        if feeler {
            debug!(target: LOG, "feeler {id} finished its handshake");
            self.take_down(now, id, Teardown::Remove, CloseReason::FeelerDone, out);
        }
    }

    /// Whether `serial` is the live connection of `id`.
    pub(super) fn is_current_conn(&self, id: ConnId, serial: u64) -> bool {
        matches!(self.records.get(&id),
            Some(r) if r.serial == serial && r.state == ConnState::Established)
    }
}
