//! Connection types, driven on the bare Core with made-up time: each
//! automatic type fills its own target, anchors go to block-relay slots,
//! feelers run one at a time once the targets are met and close at their
//! handshake or timeout, one-shot connections close at their timeout and
//! are never retried (Bitcoin Core's `ThreadOpenConnections` rules).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use connmgr::core::{Core, CoreConfig, CoreEvent, Effect, Input, ReqSpec, Teardown};
use connmgr::{Addr, CloseReason, ConnId, ConnType, DialError};

const SEC: Duration = Duration::from_secs(1);

/// A routable address in its own /16 for every `n`.
fn fresh(n: u32) -> Addr {
    format!("{}.{}.0.1:8333", 11 + n / 200, n % 200)
        .parse()
        .unwrap()
}

/// A Core in a world whose source always has a fresh address (or the
/// queued ones first) and whose dials succeed unless told otherwise.
struct World {
    core: Core,
    now: Instant,
    next_addr: u32,
    queued: VecDeque<Addr>,
    /// Whether the source answers at all.
    source_answers: bool,
    /// Whether dials succeed.
    dials_succeed: bool,
    token: u32,
    /// Live connections: serial, type, address, when opened.
    live: BTreeMap<ConnId, (u64, ConnType, Addr, Instant)>,
    /// Closes seen: id, type, reason, age.
    closes: Vec<(ConnId, ConnType, CloseReason, Duration)>,
    /// Every dial: id, address.
    dials: Vec<(ConnId, Addr)>,
    anchors_saved: Vec<Addr>,
    most_feelers: usize,
}

impl World {
    fn new(f: impl FnOnce(&mut CoreConfig)) -> World {
        Self::with_anchors(f, Vec::new())
    }

    fn with_anchors(f: impl FnOnce(&mut CoreConfig), anchors: Vec<Addr>) -> World {
        let mut cfg = CoreConfig::default();
        cfg.has_address_source = true;
        f(&mut cfg);
        let mut w = World {
            core: Core::new(cfg),
            now: Instant::now(),
            next_addr: 0,
            queued: VecDeque::new(),
            source_answers: true,
            dials_succeed: true,
            token: 0,
            live: BTreeMap::new(),
            closes: Vec::new(),
            dials: Vec::new(),
            anchors_saved: Vec::new(),
            most_feelers: 0,
        };
        w.step(Input::Anchors(anchors));
        w.step(Input::Start);
        w
    }

    /// Runs `input` and everything the world answers to its effects.
    fn step(&mut self, input: Input<u32>) {
        let mut inputs = VecDeque::from([input]);
        let mut rounds = 0;
        while let Some(input) = inputs.pop_front() {
            rounds += 1;
            assert!(rounds < 100_000, "the world never settles");
            for e in self.core.handle(self.now, input) {
                self.absorb(e, &mut inputs);
            }
            self.most_feelers = self.most_feelers.max(self.count(ConnType::Feeler));
        }
    }

    fn absorb(&mut self, e: Effect<u32>, inputs: &mut VecDeque<Input<u32>>) {
        match e {
            Effect::FetchAddress { id } if self.source_answers => {
                let addr = self.queued.pop_front().unwrap_or_else(|| {
                    self.next_addr += 1;
                    fresh(self.next_addr)
                });
                inputs.push_back(Input::AddressFound {
                    id,
                    addr: Some(addr),
                });
            }
            Effect::Dial {
                id, attempt, addr, ..
            } => {
                self.dials.push((id, addr));
                self.token += 1;
                inputs.push_back(if self.dials_succeed {
                    Input::DialSucceeded {
                        id,
                        attempt,
                        conn: self.token,
                        remote: None,
                    }
                } else {
                    Input::DialFailed {
                        id,
                        attempt,
                        error: DialError::Refused,
                    }
                });
            }
            Effect::Established {
                req,
                id,
                serial,
                addr,
                ..
            } => {
                let kind = req.map_or(ConnType::Inbound, |r| r.conn_type);
                self.live.insert(id, (serial, kind, addr, self.now));
            }
            Effect::Notify(CoreEvent::Disconnected { req, reason }) => {
                let (_, kind, _, opened) = self.live.remove(&req.id).expect("a live connection");
                let age = self.now.saturating_duration_since(opened);
                self.closes.push((req.id, kind, reason, age));
            }
            Effect::SaveAnchors(addrs) => self.anchors_saved = addrs,
            _ => {}
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.step(Input::Tick);
    }

    fn count(&self, kind: ConnType) -> usize {
        self.live.values().filter(|l| l.1 == kind).count()
    }

    fn of_type(&self, kind: ConnType) -> Vec<ConnId> {
        self.live
            .iter()
            .filter(|(_, l)| l.1 == kind)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Runs time forward in `step`s until a feeler is live; its id.
    fn wait_for_feeler(&mut self, step: Duration) -> ConnId {
        for _ in 0..10_000 {
            if let Some(id) = self.of_type(ConnType::Feeler).first() {
                return *id;
            }
            self.advance(step);
        }
        panic!("no feeler started");
    }
}

fn no_feelers(c: &mut CoreConfig) {
    c.feeler_interval = None;
}

#[test]
fn each_automatic_type_fills_its_own_target() {
    let mut w = World::new(|c| {
        no_feelers(c);
        c.target_outbound = 3;
        c.target_block_relay = 2;
    });
    assert_eq!(w.count(ConnType::FullRelay), 3);
    assert_eq!(w.count(ConnType::BlockRelay), 2);
    for id in w.of_type(ConnType::BlockRelay) {
        let info = w.core.conn_info(id).unwrap();
        assert!(info.block_relay_only && info.is_automatic());
    }
    assert_eq!(w.core.automatic_slots(), 5);

    // A block-relay connection that goes is replaced by a block-relay one.
    let gone = w.of_type(ConnType::BlockRelay)[0];
    w.step(Input::Teardown {
        id: gone,
        mode: Teardown::Disconnect,
    });
    assert_eq!(w.count(ConnType::FullRelay), 3);
    assert_eq!(w.count(ConnType::BlockRelay), 2);
    assert!(!w.live.contains_key(&gone));

    // And a full-relay one by a full-relay one.
    let gone = w.of_type(ConnType::FullRelay)[0];
    w.step(Input::Teardown {
        id: gone,
        mode: Teardown::Disconnect,
    });
    assert_eq!(w.count(ConnType::FullRelay), 3);
    assert_eq!(w.count(ConnType::BlockRelay), 2);
}

#[test]
fn a_zero_target_leaves_its_type_empty() {
    let w = World::new(|c| {
        no_feelers(c);
        c.target_outbound = 0;
        c.target_block_relay = 3;
    });
    assert_eq!(w.count(ConnType::FullRelay), 0);
    assert_eq!(w.count(ConnType::BlockRelay), 3);
}

#[test]
fn anchors_fill_block_relay_slots_first() {
    let anchors = vec![fresh(900), fresh(901)];
    let w = World::with_anchors(
        |c| {
            no_feelers(c);
            c.target_outbound = 2;
            c.target_block_relay = 2;
        },
        anchors.clone(),
    );
    let first: Vec<&Addr> = w.dials.iter().take(2).map(|(_, a)| a).collect();
    assert_eq!(first, vec![&anchors[0], &anchors[1]], "{:?}", w.dials);
    for (id, a) in w.dials.iter().take(2) {
        assert_eq!(w.live[id].1, ConnType::BlockRelay, "anchor {a}");
    }
    assert_eq!(w.count(ConnType::FullRelay), 2);
}

#[test]
fn anchors_wait_for_a_block_relay_slot() {
    let anchors = vec![fresh(900)];
    let w = World::with_anchors(
        |c| {
            no_feelers(c);
            c.target_outbound = 2;
            c.target_block_relay = 0;
        },
        anchors.clone(),
    );
    assert!(
        w.dials.iter().all(|(_, a)| a != &anchors[0]),
        "an anchor took a full-relay slot: {:?}",
        w.dials
    );
}

#[test]
fn a_clean_stop_saves_the_block_relay_connections_as_anchors() {
    let mut w = World::new(|c| {
        no_feelers(c);
        c.target_outbound = 4;
        c.target_block_relay = 2;
        c.anchor_count = 2;
    });
    let mut block: Vec<Addr> = w
        .of_type(ConnType::BlockRelay)
        .iter()
        .map(|id| w.live[id].2.clone())
        .collect();
    w.step(Input::Stop {
        close_established: true,
    });
    let mut saved = w.anchors_saved.clone();
    saved.sort_by_key(|a| a.to_string());
    block.sort_by_key(|a| a.to_string());
    assert_eq!(saved, block);
}

#[test]
fn feelers_run_one_at_a_time_never_count_and_close_at_their_timeout() {
    let mut w = World::new(|c| {
        c.target_outbound = 2;
        c.target_block_relay = 1;
        c.feeler_interval = Some(120 * SEC);
        c.feeler_timeout = 60 * SEC;
    });
    for _ in 0..(4 * 60 * 60 / 5) {
        w.advance(5 * SEC);
        assert!(w.count(ConnType::Feeler) <= 1);
        assert_eq!(w.count(ConnType::FullRelay), 2, "feelers never take a slot");
        assert_eq!(w.count(ConnType::BlockRelay), 1);
    }
    assert_eq!(w.most_feelers, 1);
    let feelers: Vec<_> = w
        .closes
        .iter()
        .filter(|c| c.1 == ConnType::Feeler)
        .collect();
    // Four hours at a mean of one every two minutes (each open a minute).
    assert!(
        (40..=120).contains(&feelers.len()),
        "{} feelers",
        feelers.len()
    );
    for (id, _, reason, age) in feelers {
        assert_eq!(*reason, CloseReason::Expired, "{id}");
        assert!(*age >= 60 * SEC && *age < 65 * SEC, "{id} open {age:?}");
    }
    assert_eq!(w.core.stats().closes.expired as usize, w.closes.len());
}

#[test]
fn feelers_wait_until_every_target_is_met() {
    let mut w = World::new(|c| {
        c.target_outbound = 2;
        c.feeler_interval = Some(120 * SEC);
    });
    // Dials fail: the targets are never met, so no feeler starts.
    w.dials_succeed = false;
    for id in w.live.keys().copied().collect::<Vec<_>>() {
        w.step(Input::Teardown {
            id,
            mode: Teardown::Disconnect,
        });
    }
    for _ in 0..200 {
        w.advance(30 * SEC);
    }
    assert_eq!(w.core.stats().feelers, 0);
    assert!(w.dials.len() > 20, "the slots kept trying");

    // Once they are met, feelers begin.
    w.dials_succeed = true;
    w.wait_for_feeler(30 * SEC);
}

#[test]
fn a_feeler_closes_when_its_handshake_is_done() {
    let mut w = World::new(|c| {
        c.target_outbound = 1;
        c.target_block_relay = 0;
        c.feeler_interval = Some(120 * SEC);
    });
    let feeler = w.wait_for_feeler(SEC);
    // Other connections ignore the signal.
    let full = w.of_type(ConnType::FullRelay)[0];
    w.step(Input::HandshakeDone { id: full });
    assert!(w.live.contains_key(&full));

    w.step(Input::HandshakeDone { id: feeler });
    assert!(!w.live.contains_key(&feeler));
    let last = w.closes.last().unwrap();
    assert_eq!((last.0, last.2), (feeler, CloseReason::FeelerDone));
    assert_eq!(w.core.stats().closes.feeler_done, 1);
    assert_eq!(w.core.automatic_slots(), 1, "the target was not touched");
}

#[test]
fn feelers_skip_peers_in_use_but_not_held_netgroups() {
    let mut w = World::new(|c| {
        c.target_outbound = 1;
        c.target_block_relay = 0;
        c.feeler_interval = Some(120 * SEC);
        c.diversity = true;
    });
    let full = w.of_type(ConnType::FullRelay)[0];
    let held = w.live[&full].2.clone();
    let Addr::Ip(sa) = held.clone() else {
        unreachable!()
    };
    let octets = match sa.ip() {
        std::net::IpAddr::V4(v4) => v4.octets(),
        other => panic!("{other}"),
    };
    let same_group: Addr = format!("{}.{}.9.9:8333", octets[0], octets[1])
        .parse()
        .unwrap();
    // The source offers the connected peer first, then its netgroup.
    for _ in 0..64 {
        w.queued.push_back(held.clone());
    }
    w.queued.push_front(same_group.clone());
    w.queued.push_front(held.clone());
    let feeler = w.wait_for_feeler(SEC);
    assert_eq!(w.live[&feeler].2, same_group);
}

#[test]
fn feeler_failures_do_not_throttle_the_targets() {
    let mut w = World::new(|c| {
        c.target_outbound = 1;
        c.target_block_relay = 0;
        c.feeler_interval = Some(120 * SEC);
        c.max_failed_attempts = 1;
    });
    w.dials_succeed = false;
    let before = w.dials.len();
    for _ in 0..60 {
        w.advance(30 * SEC);
    }
    assert!(w.dials.len() > before, "feelers were tried");
    assert_eq!(w.core.stats().consecutive_failures, 0);
    assert_eq!(w.core.automatic_slots(), 1, "no refill waits on feelers");
}

#[test]
fn one_shot_requests_close_at_their_timeout_and_never_retry() {
    let mut w = World::new(|c| {
        no_feelers(c);
        c.target_outbound = 0;
        c.target_block_relay = 0;
        c.one_shot_timeout = 300 * SEC;
    });
    let req = ReqSpec::one_shot(ConnId::caller(1), fresh(500));
    let id = req.id;
    w.step(Input::Connect(req));
    assert_eq!(w.live[&id].1, ConnType::OneShot);
    assert!(!w.core.conn_info(id).unwrap().permanent);
    w.advance(299 * SEC);
    assert!(w.live.contains_key(&id));
    w.advance(2 * SEC);
    assert!(!w.live.contains_key(&id));
    assert_eq!(w.closes.last().unwrap().2, CloseReason::Expired);
    assert!(w.core.state(id).is_none(), "never retried");

    // A one-shot request that fails is not retried either.
    w.dials_succeed = false;
    let req = ReqSpec::one_shot(ConnId::caller(2), fresh(501));
    let id = req.id;
    w.step(Input::Connect(req));
    assert!(w.core.state(id).is_none());
    w.advance(3600 * SEC);
    assert_eq!(w.dials.iter().filter(|(d, _)| *d == id).count(), 1);
}

#[test]
fn a_one_shot_request_closed_by_the_node_is_done() {
    let mut w = World::new(|c| {
        no_feelers(c);
        c.target_outbound = 0;
        c.target_block_relay = 0;
    });
    let req = ReqSpec::one_shot(ConnId::caller(1), fresh(500));
    let id = req.id;
    w.step(Input::Connect(req));
    let serial = w.live[&id].0;
    w.step(Input::Closed { id, serial });
    assert!(w.core.state(id).is_none());
    assert_eq!(w.closes.last().unwrap().2, CloseReason::Closed);
}

#[test]
fn manual_requests_may_be_block_relay_only_and_keep_their_type() {
    let mut w = World::new(|c| {
        no_feelers(c);
        c.target_outbound = 0;
        c.target_block_relay = 0;
    });
    let req = ReqSpec::new(ConnId::caller(1), fresh(600), true).with_block_relay_only();
    let id = req.id;
    w.step(Input::Connect(req));
    let info = w.core.conn_info(id).unwrap();
    assert_eq!(info.conn_type, ConnType::Manual);
    assert!(info.block_relay_only && info.permanent && !info.is_automatic());

    // A caller cannot make the Core's own types, nor inbound ones: such a
    // request is refused with a typed error that says why.
    for (n, kind) in [
        (2, ConnType::BlockRelay),
        (3, ConnType::Feeler),
        (4, ConnType::Inbound),
    ] {
        let mut forged = ReqSpec::new(ConnId::caller(n), fresh(600 + n as u32), false);
        forged.conn_type = kind;
        forged.block_relay_only = true;
        let out = w.core.handle::<u32>(w.now, Input::Connect(forged));
        match out.as_slice() {
            [Effect::Notify(CoreEvent::DialFailed {
                error: DialError::Rejected(why),
                ..
            })] => assert!(why.contains(kind.as_str()), "{why}"),
            other => panic!("{kind}: {other:?}"),
        }
        assert!(w.core.state(ConnId::caller(n)).is_none());
    }
    assert_eq!(w.core.automatic_slots(), 0);
}

#[test]
fn manual_duplicates_can_be_refused_unless_a_request_allows_them() {
    let mut w = World::new(|c| {
        no_feelers(c);
        c.target_outbound = 0;
        c.target_block_relay = 0;
        c.manual_duplicates = false;
    });
    let peer = fresh(700);
    let first = ReqSpec::new(ConnId::caller(1), peer.clone(), false);
    w.step(Input::Connect(first));
    assert!(w.live.contains_key(&ConnId::caller(1)));
    // A second one-off request to the same peer fails at once.
    w.step(Input::Connect(ReqSpec::new(
        ConnId::caller(2),
        peer.clone(),
        false,
    )));
    assert!(w.core.state(ConnId::caller(2)).is_none());
    assert_eq!(w.dials.iter().filter(|(_, a)| a == &peer).count(), 1);
    // A permanent one waits and retries; it connects once the first goes.
    w.step(Input::Connect(ReqSpec::new(
        ConnId::caller(3),
        peer.clone(),
        true,
    )));
    assert_eq!(
        w.core.state(ConnId::caller(3)),
        Some(connmgr::ConnState::Failing)
    );
    w.step(Input::Teardown {
        id: ConnId::caller(1),
        mode: Teardown::Remove,
    });
    w.advance(10 * SEC);
    assert!(w.live.contains_key(&ConnId::caller(3)), "{:?}", w.live);
    // A request that allows duplicates connects alongside.
    let dup = ReqSpec::new(ConnId::caller(4), peer.clone(), false).with_duplicates_allowed();
    w.step(Input::Connect(dup));
    assert!(w.live.contains_key(&ConnId::caller(4)));
}

#[test]
fn manual_duplicates_are_allowed_by_default_as_btcd_connects() {
    let mut w = World::new(|c| {
        no_feelers(c);
        c.target_outbound = 0;
        c.target_block_relay = 0;
    });
    let peer = fresh(700);
    for n in 1..=3 {
        w.step(Input::Connect(ReqSpec::new(
            ConnId::caller(n),
            peer.clone(),
            false,
        )));
    }
    assert_eq!(w.live.len(), 3);
}
