//! Random operation sequences against the sans-IO `Core`, with the
//! outstanding effects modelled by the test and invariants checked after
//! every step.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use connmgr::core::{Core, CoreConfig, CoreEvent, Effect, Input, Teardown};
use connmgr::{Addr, Backoff, ConnId, ConnType, DialError, Direction};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as PropConfig, RngSeed};

fn addr(n: u8) -> Addr {
    format!("10.0.1.{n}:8333").parse().unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Connect {
        permanent: bool,
        addr: u8,
    },
    Start,
    /// Answer an outstanding FetchAddress.
    Answer {
        pick: Index,
        found: bool,
        addr: u8,
    },
    /// Complete an outstanding dial, or (replay) one already completed.
    CompleteDial {
        pick: Index,
        success: bool,
        replay: bool,
    },
    Teardown {
        pick: Index,
        known: bool,
        mode: u8,
    },
    /// 0: a live connection; 1: any connection ever established (maybe a
    /// duplicate); 2: an id paired with another connection's serial.
    Closed {
        pick: Index,
        other: Index,
        kind: u8,
    },
    Accept {
        addr: u8,
    },
    Advance {
        ms: u32,
    },
    TickAtDeadline,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<bool>(), 0u8..32).prop_map(|(permanent, addr)| Op::Connect { permanent, addr }),
        1 => Just(Op::Start),
        5 => (any::<Index>(), prop::bool::weighted(0.7), 0u8..32)
            .prop_map(|(pick, found, addr)| Op::Answer { pick, found, addr }),
        7 => (any::<Index>(), any::<bool>(), prop::bool::weighted(0.15))
            .prop_map(|(pick, success, replay)| Op::CompleteDial { pick, success, replay }),
        2 => (any::<Index>(), prop::bool::weighted(0.85), 0u8..3)
            .prop_map(|(pick, known, mode)| Op::Teardown { pick, known, mode }),
        3 => (any::<Index>(), any::<Index>(), 0u8..3)
            .prop_map(|(pick, other, kind)| Op::Closed { pick, other, kind }),
        2 => (0u8..32).prop_map(|addr| Op::Accept { addr }),
        3 => (0u32..400_000).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::TickAtDeadline),
    ]
}

fn config_strategy() -> impl Strategy<Value = CoreConfig> {
    (
        0usize..=6,
        prop::bool::weighted(0.8),
        0usize..=4,
        1u64..=10,
        10u64..=120,
        prop_oneof![
            Just(Backoff::Linear),
            (0.0f64..=1.0).prop_map(|jitter| Backoff::Exponential { jitter }),
        ],
        0u64..=60,
        1u32..=6,
        any::<u64>(),
        (0usize..=2, prop::option::of(1u64..=600)),
    )
        .prop_map(
            |(target, source, max_in, retry, max_retry, backoff, stable, fails, seed, types)| {
                with_cfg(CoreConfig::default(), |c| {
                    c.target_outbound = target;
                    c.target_block_relay = types.0;
                    c.feeler_interval = types.1.map(Duration::from_secs);
                    c.has_address_source = source;
                    c.max_inbound = max_in;
                    c.retry_duration = Duration::from_secs(retry);
                    c.max_retry_duration = Duration::from_secs(max_retry);
                    c.backoff = backoff;
                    c.min_stable_duration = Duration::from_secs(stable);
                    c.max_failed_attempts = fails;
                    c.rng_seed = seed;
                })
            },
        )
}

/// Per-id hand-over history: whether the last report was a connection.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Last {
    Connected,
    Disconnected,
}

/// The test's view of the Core: what it asked for and what it handed out.
struct Model {
    core: Core,
    cfg: CoreConfig,
    now: Instant,
    next_conn: u32,
    /// FetchAddress effects not yet answered.
    fetches: Vec<ConnId>,
    /// Dial effects not yet completed.
    dials: Vec<(ConnId, u64)>,
    /// Dials already completed, for replays.
    done_dials: Vec<(ConnId, u64)>,
    /// Highest attempt seen per id.
    attempts: HashMap<ConnId, u64>,
    /// Every id seen (outbound requests and inbound connections).
    ids: Vec<ConnId>,
    id_set: HashSet<ConnId>,
    automatic: HashSet<ConnId>,
    /// Every (id, serial) ever established, and which are still open.
    incarnations: Vec<(ConnId, u64)>,
    serials: HashSet<u64>,
    closed: HashSet<u64>,
    live: HashSet<(ConnId, u64)>,
    inbound_live: HashSet<ConnId>,
    last: HashMap<ConnId, Last>,
    stopped: bool,
}

impl Model {
    fn new(cfg: CoreConfig) -> Model {
        Model {
            core: Core::new(cfg.clone()),
            cfg,
            now: Instant::now(),
            next_conn: 0,
            fetches: Vec::new(),
            dials: Vec::new(),
            done_dials: Vec::new(),
            attempts: HashMap::new(),
            ids: Vec::new(),
            id_set: HashSet::new(),
            automatic: HashSet::new(),
            incarnations: Vec::new(),
            serials: HashSet::new(),
            closed: HashSet::new(),
            live: HashSet::new(),
            inbound_live: HashSet::new(),
            last: HashMap::new(),
            stopped: false,
        }
    }

    fn conn(&mut self) -> u32 {
        self.next_conn += 1;
        self.next_conn
    }

    fn new_id(&mut self, id: ConnId) -> Result<(), String> {
        if !self.id_set.insert(id) {
            return Err(format!("id {id} handed out twice"));
        }
        self.ids.push(id);
        Ok(())
    }

    /// Runs one input, checks its effects, and records what is outstanding.
    /// `given` is the connection payload passed in, which must come back
    /// exactly once as Established or Discard.
    fn run(&mut self, input: Input<u32>, given: Option<u32>) -> Result<Vec<Effect<u32>>, String> {
        let effects = self.core.handle(self.now, input);
        let mut returned = Vec::new();
        for e in &effects {
            match e {
                Effect::FetchAddress { id } => {
                    // A request whose address was unusable asks again.
                    if !self.automatic.contains(id) {
                        self.new_id(*id)?;
                    }
                    self.automatic.insert(*id);
                    self.fetches.push(*id);
                }
                Effect::Dial { id, attempt, .. } => {
                    let prev = self.attempts.insert(*id, *attempt).unwrap_or(0);
                    if *attempt <= prev {
                        return Err(format!("{id}: attempt {attempt} after {prev}"));
                    }
                    self.dials.push((*id, *attempt));
                }
                Effect::CancelDial { .. } => {}
                Effect::Established {
                    req,
                    id,
                    serial,
                    direction,
                    conn,
                    ..
                } => {
                    returned.push(*conn);
                    if !self.serials.insert(*serial) {
                        return Err(format!("serial {serial} established twice"));
                    }
                    self.incarnations.push((*id, *serial));
                    self.live.insert((*id, *serial));
                    match (direction, req) {
                        (Direction::Inbound, None) => {
                            self.new_id(*id)?;
                            self.inbound_live.insert(*id);
                        }
                        (Direction::Outbound, Some(req)) => {
                            if req.id != *id {
                                return Err(format!("{id}: request has id {:?}", req.id));
                            }
                            if self.last.insert(*id, Last::Connected) == Some(Last::Connected) {
                                return Err(format!("{id}: connected twice without disconnect"));
                            }
                        }
                        other => return Err(format!("{id}: inconsistent hand-over {other:?}")),
                    }
                }
                Effect::Discard { conn } => returned.push(*conn),
                Effect::Close { serial } => {
                    if !self.serials.contains(serial) {
                        return Err(format!("Close for never-established serial {serial}"));
                    }
                    if !self.closed.insert(*serial) {
                        return Err(format!("serial {serial} closed twice"));
                    }
                    self.live.retain(|&(_, s)| s != *serial);
                }
                Effect::Notify(CoreEvent::Disconnected { req, .. }) => {
                    let id = req.id;
                    if self.last.insert(id, Last::Disconnected) != Some(Last::Connected) {
                        return Err(format!("{id}: Disconnected without a connection before it"));
                    }
                }
                Effect::Notify(CoreEvent::DialFailed { req, .. }) if req.id.0 == 0 => {
                    return Err("DialFailed for a request without id".into());
                }
                Effect::Notify(CoreEvent::InboundClosed { id, .. })
                    if !self.inbound_live.remove(id) =>
                {
                    return Err(format!("InboundClosed for {id}, which was not live"));
                }
                _ => {}
            }
        }
        let given: Vec<u32> = given.into_iter().collect();
        if returned != given {
            return Err(format!(
                "payload in {given:?}, out {returned:?} (effects {effects:?})"
            ));
        }
        Ok(effects)
    }

    fn check(&self) -> Result<(), String> {
        // Feelers come from the source too, one at a time, on top of the
        // targets.
        let target = self.cfg.target_outbound + self.cfg.target_block_relay;
        let up_of = |t: ConnType| {
            self.automatic
                .iter()
                .filter_map(|id| self.core.conn_info(*id))
                .filter(|c| c.conn_type == t && c.state == connmgr::ConnState::Established)
                .count()
        };
        let (full, block, feelers) = (
            up_of(ConnType::FullRelay),
            up_of(ConnType::BlockRelay),
            up_of(ConnType::Feeler),
        );
        if full > self.cfg.target_outbound || block > self.cfg.target_block_relay || feelers > 1 {
            return Err(format!(
                "{full} full-relay, {block} block-relay, {feelers} feelers established; \
                 targets {} and {}",
                self.cfg.target_outbound, self.cfg.target_block_relay
            ));
        }
        let auto_live = self
            .live
            .iter()
            .filter(|(id, _)| self.automatic.contains(id))
            .count();
        if auto_live > target + 1 {
            return Err(format!(
                "{auto_live} automatic connections open, targets {target} and a feeler"
            ));
        }
        if self.core.automatic_slots() > target {
            return Err(format!(
                "{} automatic slots, target {target}",
                self.core.automatic_slots()
            ));
        }
        let max_in = self.cfg.max_inbound;
        if self.core.inbound_count() > max_in || self.inbound_live.len() > max_in {
            return Err(format!(
                "inbound {} (model {}), max {max_in}",
                self.core.inbound_count(),
                self.inbound_live.len()
            ));
        }
        if !self.stopped && self.core.inbound_count() != self.inbound_live.len() {
            return Err(format!(
                "core has {} inbound, model {}",
                self.core.inbound_count(),
                self.inbound_live.len()
            ));
        }
        if !self.cfg.has_address_source && self.core.automatic_slots() != 0 {
            return Err("automatic slots without an address source".into());
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Connect { permanent, addr: a } => {
                let req = self.core.request(addr(*a), *permanent);
                let id = req.id;
                self.new_id(id)?;
                self.run(Input::Connect(req), None)?;
            }
            Op::Start => {
                self.run(Input::Start, None)?;
            }
            Op::Answer {
                pick,
                found,
                addr: a,
            } => {
                if self.fetches.is_empty() {
                    return Ok(());
                }
                let id = self.fetches.swap_remove(pick.index(self.fetches.len()));
                let addr = found.then(|| addr(*a));
                self.run(Input::AddressFound { id, addr }, None)?;
            }
            Op::CompleteDial {
                pick,
                success,
                replay,
            } => {
                let (id, attempt) = if *replay {
                    if self.done_dials.is_empty() {
                        return Ok(());
                    }
                    self.done_dials[pick.index(self.done_dials.len())]
                } else {
                    if self.dials.is_empty() {
                        return Ok(());
                    }
                    let d = self.dials.swap_remove(pick.index(self.dials.len()));
                    self.done_dials.push(d);
                    d
                };
                if *success {
                    let conn = self.conn();
                    self.run(
                        Input::DialSucceeded {
                            id,
                            attempt,
                            conn,
                            remote: None,
                        },
                        Some(conn),
                    )?;
                } else {
                    let error = DialError::Refused;
                    self.run(Input::DialFailed { id, attempt, error }, None)?;
                }
            }
            Op::Teardown { pick, known, mode } => {
                let mode =
                    [Teardown::Disconnect, Teardown::Reconnect, Teardown::Remove][*mode as usize];
                let id = if *known && !self.ids.is_empty() {
                    self.ids[pick.index(self.ids.len())]
                } else {
                    ConnId(1_000_000 + pick.index(1000) as u64)
                };
                let effects = self.run(Input::Teardown { id, mode }, None)?;
                if !self.id_set.contains(&id) && !effects.is_empty() {
                    return Err(format!("teardown of unknown {id} did {effects:?}"));
                }
            }
            Op::Closed { pick, other, kind } => {
                let (id, serial) = match kind {
                    0 => {
                        let mut live: Vec<_> = self.live.iter().copied().collect();
                        if live.is_empty() {
                            return Ok(());
                        }
                        live.sort();
                        live[pick.index(live.len())]
                    }
                    _ => {
                        if self.incarnations.is_empty() {
                            return Ok(());
                        }
                        let (id, serial) = self.incarnations[pick.index(self.incarnations.len())];
                        if *kind == 1 {
                            (id, serial)
                        } else {
                            (
                                id,
                                self.incarnations[other.index(self.incarnations.len())].1,
                            )
                        }
                    }
                };
                let was_live = self.live.contains(&(id, serial));
                let effects = self.run(Input::Closed { id, serial }, None)?;
                if !was_live && !effects.is_empty() {
                    return Err(format!(
                        "Closed for a dead or mismatched ({id}, {serial}) did {effects:?}"
                    ));
                }
            }
            Op::Accept { addr: a } => {
                let conn = self.conn();
                let remote = addr(*a);
                self.run(Input::Accepted { conn, remote }, Some(conn))?;
            }
            Op::Advance { ms } => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.run(Input::Tick, None)?;
            }
            Op::TickAtDeadline => {
                if let Some(at) = self.core.next_deadline() {
                    self.now = self.now.max(at);
                }
                self.run(Input::Tick, None)?;
            }
        }
        Ok(())
    }

    /// Stops the Core and checks nothing is left and nothing comes back.
    fn finish(&mut self, close_established: bool) -> Result<(), String> {
        let live_before = self.live.len();
        let effects = self.run(Input::Stop { close_established }, None)?;
        self.stopped = true;
        if self.core.tracked() != 0 {
            return Err(format!("{} tracked after Stop", self.core.tracked()));
        }
        if self.core.automatic_slots() != 0 {
            return Err("automatic slots after Stop".into());
        }
        if self.core.next_deadline().is_some() {
            return Err("timers after Stop".into());
        }
        if close_established {
            if !self.live.is_empty() {
                return Err(format!("{:?} left open by Stop", self.live));
            }
        } else {
            let closes = effects
                .iter()
                .filter(|e| matches!(e, Effect::Close { .. }))
                .count();
            if closes != 0 || self.live.len() != live_before {
                return Err("Stop closed connections it was told to keep".into());
            }
        }
        // Every outstanding or replayed dial that succeeds now is discarded.
        let late: Vec<_> = self.dials.iter().chain(&self.done_dials).copied().collect();
        for (id, attempt) in late {
            let conn = self.conn();
            let effects = self.run(
                Input::DialSucceeded {
                    id,
                    attempt,
                    conn,
                    remote: None,
                },
                Some(conn),
            )?;
            if !matches!(effects.as_slice(), [Effect::Discard { .. }]) {
                return Err(format!("late success after Stop gave {effects:?}"));
            }
        }
        let fetches = std::mem::take(&mut self.fetches);
        for id in fetches {
            let effects = self.run(
                Input::AddressFound {
                    id,
                    addr: Some(addr(1)),
                },
                None,
            )?;
            if !effects.is_empty() {
                return Err(format!("address after Stop gave {effects:?}"));
            }
        }
        self.now += Duration::from_secs(3600);
        let effects = self.run(Input::Tick, None)?;
        if !effects.is_empty() {
            return Err(format!("tick after Stop gave {effects:?}"));
        }
        if self.core.tracked() != 0 {
            return Err("late inputs after Stop left state behind".into());
        }
        self.check()
    }
}

proptest! {
    #![proptest_config(PropConfig {
        cases: 256,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x5eed_c0de),
        ..PropConfig::default()
    })]

    /// Any sequence of inputs keeps the Core within its limits, reports
    /// each connection's end at most once, closes each connection at most
    /// once, hands out unique ids, and leaves nothing behind after Stop.
    #[test]
    fn core_invariants_hold_for_random_inputs(
        cfg in config_strategy(),
        ops in prop::collection::vec(op_strategy(), 0..200),
        close_on_stop in any::<bool>(),
    ) {
        let mut m = Model::new(cfg);
        for (i, op) in ops.iter().enumerate() {
            if let Err(msg) = m.apply(op).and_then(|()| m.check()) {
                prop_assert!(false, "step {} {:?}: {}", i, op, msg);
            }
        }
        if let Err(msg) = m.finish(close_on_stop) {
            prop_assert!(false, "final Stop: {}", msg);
        }
    }
}

/// `base` with the changes `f` makes (the config is non-exhaustive).
fn with_cfg(mut base: CoreConfig, f: impl FnOnce(&mut CoreConfig)) -> CoreConfig {
    f(&mut base);
    base
}
