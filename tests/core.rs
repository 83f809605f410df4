//! Drives the sans-IO `Core` directly with hand-advanced time and `u32`
//! tokens standing in for connections.

use std::time::{Duration, Instant};

use connmgr::core::{Changes, Core, CoreConfig, CoreEvent, Effect, Input, ReqSpec, Teardown};
use connmgr::{Addr, Backoff, ConnId, ConnState, DialError, Direction};

/// A 10.x address; the Core never dials anything itself.
fn addr(n: u32) -> Addr {
    let b = n.to_be_bytes();
    format!("10.{}.{}.{}:8333", b[1], b[2], b[3])
        .parse()
        .unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// One `Effect::Established`, flattened.
#[derive(Debug)]
struct Est {
    req: Option<ReqSpec>,
    id: ConnId,
    serial: u64,
    addr: Addr,
    direction: Direction,
    conn: u32,
}

/// The effects of one input, sorted by kind.
#[derive(Debug, Default)]
struct Out {
    fetch: Vec<ConnId>,
    dial: Vec<(ConnId, u64, Addr)>,
    cancel: Vec<ConnId>,
    established: Vec<Est>,
    discard: Vec<u32>,
    close: Vec<u64>,
    disconnected: Vec<ConnId>,
    failed: Vec<(ConnId, Option<Duration>)>,
    inbound_closed: Vec<ConnId>,
    anchors: Vec<Vec<Addr>>,
}

impl Out {
    fn from_effects(effects: Vec<Effect<u32>>) -> Out {
        let mut out = Out::default();
        for e in effects {
            match e {
                Effect::FetchAddress { id } => out.fetch.push(id),
                Effect::Dial {
                    id, attempt, addr, ..
                } => out.dial.push((id, attempt, addr)),
                Effect::CancelDial { id, .. } => out.cancel.push(id),
                Effect::Established {
                    req,
                    id,
                    serial,
                    addr,
                    direction,
                    conn,
                } => out.established.push(Est {
                    req,
                    id,
                    serial,
                    addr,
                    direction,
                    conn,
                }),
                Effect::Discard { conn } => out.discard.push(conn),
                Effect::Close { serial } => out.close.push(serial),
                Effect::SaveAnchors(addrs) => out.anchors.push(addrs),
                Effect::Notify(CoreEvent::Disconnected { req, .. }) => {
                    out.disconnected.push(req.id)
                }
                Effect::Notify(CoreEvent::DialFailed { req, retry_in, .. }) => {
                    out.failed.push((req.id, retry_in))
                }
                Effect::Notify(CoreEvent::InboundClosed { id, .. }) => out.inbound_closed.push(id),
                _ => {}
            }
        }
        out
    }

    fn is_empty(&self) -> bool {
        self.fetch.is_empty()
            && self.dial.is_empty()
            && self.cancel.is_empty()
            && self.established.is_empty()
            && self.discard.is_empty()
            && self.close.is_empty()
            && self.disconnected.is_empty()
            && self.failed.is_empty()
            && self.inbound_closed.is_empty()
    }

    /// The only dial in this output.
    fn one_dial(&self) -> (ConnId, u64, Addr) {
        assert_eq!(self.dial.len(), 1, "expected exactly one dial: {self:?}");
        self.dial[0].clone()
    }

    /// The only established connection in this output.
    fn one_established(&self) -> &Est {
        assert_eq!(
            self.established.len(),
            1,
            "expected exactly one established: {self:?}"
        );
        &self.established[0]
    }
}

/// A Core plus a made-up clock.
struct Harness {
    core: Core,
    now: Instant,
}

impl Harness {
    /// A started Core: requests dial as they come.
    fn new(cfg: CoreConfig) -> Harness {
        let mut h = Harness::unstarted(cfg);
        h.step(Input::Start);
        h
    }

    /// A Core not started yet: requests wait for `Input::Start`.
    fn unstarted(cfg: CoreConfig) -> Harness {
        Harness {
            core: Core::new(cfg),
            now: Instant::now(),
        }
    }

    fn step(&mut self, input: Input<u32>) -> Out {
        Out::from_effects(self.core.handle(self.now, input))
    }

    /// The final state the Core reported for `id` once it finished.
    fn final_state(&mut self, id: ConnId) -> Option<ConnState> {
        let mut changes = Changes::default();
        self.core.take_changes(&mut changes);
        changes
            .finished
            .iter()
            .find(|f| f.id == id)
            .map(|f| f.state)
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    fn tick(&mut self) -> Out {
        self.step(Input::Tick)
    }

    /// Submits a request and returns it with the effects.
    fn connect(&mut self, n: u32, permanent: bool) -> (ReqSpec, ConnId, Out) {
        let req = self.core.request(addr(n), permanent);
        let id = req.id;
        let out = self.step(Input::Connect(req.clone()));
        (req, id, out)
    }

    fn succeed(&mut self, id: ConnId, attempt: u64, conn: u32) -> Out {
        self.step(Input::DialSucceeded {
            id,
            attempt,
            conn,
            remote: None,
        })
    }

    fn fail(&mut self, id: ConnId, attempt: u64) -> Out {
        self.step(Input::DialFailed {
            id,
            attempt,
            error: DialError::Refused,
        })
    }

    fn teardown(&mut self, id: ConnId, mode: Teardown) -> Out {
        self.step(Input::Teardown { id, mode })
    }

    fn accept(&mut self, conn: u32, n: u32) -> Out {
        self.step(Input::Accepted {
            conn,
            remote: addr(n),
        })
    }

    /// Time left until the Core's next deadline.
    fn deadline_in(&self) -> Duration {
        self.core
            .next_deadline()
            .expect("a deadline is scheduled")
            .duration_since(self.now)
    }
}

/// A Core with an address source and `target` full-relay slots only: no
/// block-relay slots and no feelers (tests/core_types.rs covers those), as
/// btcd's connection manager has.
fn sourced(target: usize) -> CoreConfig {
    with_cfg(CoreConfig::default(), |c| {
        c.target_outbound = target;
        c.target_block_relay = 0;
        c.feeler_interval = None;
        c.has_address_source = true;
    })
}

/// A permanent request whose dials keep failing waits 5 s, 10 s, 15 s, …
/// up to 300 s, and each retry reuses the id with the next attempt number,
/// dialing exactly when the deadline arrives and not before.
#[test]
fn linear_backoff_schedule_for_failing_permanent_request() {
    let mut h = Harness::new(CoreConfig::default());
    let (_req, id, out) = h.connect(1, true);
    let (did, mut attempt, daddr) = out.one_dial();
    assert_eq!((did, attempt, daddr), (id, 1, addr(1)));

    for n in 1..=70u64 {
        let out = h.fail(id, attempt);
        let want = secs((5 * n).min(300));
        assert_eq!(out.failed, vec![(id, Some(want))], "failure {n}");
        assert!(out.dial.is_empty() && out.fetch.is_empty(), "{out:?}");
        assert_eq!(h.core.state(id), Some(ConnState::Failing));
        assert_eq!(h.core.next_deadline(), Some(h.now + want), "failure {n}");

        h.advance(want - Duration::from_millis(1));
        let early = h.tick();
        assert!(early.is_empty(), "tick before the deadline: {early:?}");
        assert_eq!(h.core.state(id), Some(ConnState::Failing));

        h.advance(Duration::from_millis(1));
        let (rid, rattempt, raddr) = h.tick().one_dial();
        assert_eq!(rid, id);
        assert_eq!(raddr, addr(1));
        assert_eq!(rattempt, attempt + 1, "attempt numbers grow by one");
        attempt = rattempt;
        assert_eq!(h.core.state(id), Some(ConnState::Pending));
    }
}

/// Exponential backoff with jitter stays within
/// `[full × (1 − jitter), full]`, where `full = min(base × 2^(n−1), max)`,
/// and the jitter really shortens some waits.
#[test]
fn exponential_backoff_with_jitter_stays_in_bounds() {
    for seed in [0u64, 1, 7, 42, 1234] {
        let jitter = 0.5;
        let base = secs(2);
        let max = secs(100);
        let mut h = Harness::new(with_cfg(CoreConfig::default(), |c| {
            c.backoff = Backoff::Exponential { jitter };
            c.retry_duration = base;
            c.max_retry_duration = max;
            c.rng_seed = seed;
        }));
        let (_req, id, out) = h.connect(1, true);
        let (_, mut attempt, _) = out.one_dial();
        let mut shortened = 0;
        for n in 1..=40u32 {
            let out = h.fail(id, attempt);
            let full = base.saturating_mul(1u32 << (n - 1).min(20)).min(max);
            let lower = full.mul_f64(1.0 - jitter);
            let (fid, wait) = out.failed[0];
            assert_eq!(fid, id);
            let wait = wait.expect("a permanent request retries");
            assert!(
                wait >= lower && wait <= full,
                "seed {seed} retry {n}: {wait:?} not in [{lower:?}, {full:?}]"
            );
            if wait < full {
                shortened += 1;
            }
            assert_eq!(h.deadline_in(), wait);
            h.advance(wait);
            let (_, next, _) = h.tick().one_dial();
            assert_eq!(next, attempt + 1);
            attempt = next;
        }
        assert!(shortened > 0, "seed {seed}: jitter never shortened a wait");
    }
}

/// With jitter 0 the exponential waits double exactly until the cap.
#[test]
fn exponential_backoff_without_jitter_doubles_exactly() {
    let mut h = Harness::new(with_cfg(CoreConfig::default(), |c| {
        c.backoff = Backoff::Exponential { jitter: 0.0 };
        c.retry_duration = secs(1);
        c.max_retry_duration = secs(60);
    }));
    let (_req, id, out) = h.connect(1, true);
    let (_, mut attempt, _) = out.one_dial();
    let expected = [1u64, 2, 4, 8, 16, 32, 60, 60, 60, 60];
    for (n, &want) in expected.iter().enumerate() {
        let out = h.fail(id, attempt);
        assert_eq!(out.failed, vec![(id, Some(secs(want)))], "retry {}", n + 1);
        assert_eq!(h.deadline_in(), secs(want));
        h.advance(secs(want));
        attempt = h.tick().one_dial().1;
    }
    // Far past the point where 2^(n-1) overflows a u32: still the cap.
    for _ in 0..40 {
        let out = h.fail(id, attempt);
        assert_eq!(out.failed, vec![(id, Some(secs(60)))]);
        h.advance(secs(60));
        attempt = h.tick().one_dial().1;
    }
}

/// A permanent peer that accepts and is closed at once keeps backing off
/// to the cap: a TCP success alone does not reset the retry count.
#[test]
fn short_lived_connections_do_not_reset_backoff() {
    let mut h = Harness::new(CoreConfig::default());
    let (_req, id, out) = h.connect(1, true);
    let (_, mut attempt, _) = out.one_dial();
    for n in 1..=65u64 {
        let est = h.succeed(id, attempt, n as u32);
        let serial = est.one_established().serial;
        // Up for less than min_stable_duration (30 s).
        h.advance(secs(29));
        let out = h.step(Input::Closed { id, serial });
        assert_eq!(out.disconnected, vec![id]);
        assert_eq!(out.close, vec![serial]);
        assert_eq!(h.core.state(id), Some(ConnState::Disconnected));
        let want = secs((5 * n).min(300));
        assert_eq!(h.deadline_in(), want, "drop {n}");
        h.advance(want);
        let (rid, rattempt, _) = h.tick().one_dial();
        assert_eq!(rid, id);
        attempt = rattempt;
    }
}

/// A connection that stayed up at least `min_stable_duration` resets the
/// retry count: its next retry comes after one retry duration.
#[test]
fn stable_connection_resets_backoff() {
    let mut h = Harness::new(CoreConfig::default());
    let (_req, id, out) = h.connect(1, true);
    let (_, mut attempt, _) = out.one_dial();
    // Build up some backoff first: 5, 10, 15, 20 s.
    for n in 1..=4u64 {
        let out = h.fail(id, attempt);
        assert_eq!(out.failed, vec![(id, Some(secs(5 * n)))]);
        h.advance(secs(5 * n));
        attempt = h.tick().one_dial().1;
    }
    let serial = h.succeed(id, attempt, 1).one_established().serial;
    h.advance(secs(31));
    let out = h.step(Input::Closed { id, serial });
    assert_eq!(out.disconnected, vec![id]);
    assert_eq!(h.deadline_in(), secs(5), "stable connection resets");
    h.advance(secs(5));
    attempt = h.tick().one_dial().1;

    // The count starts over from there: the next failure waits 10 s.
    let out = h.fail(id, attempt);
    assert_eq!(out.failed, vec![(id, Some(secs(10)))]);
}

/// Pending → Failing → Pending (retry) → Established → Disconnected
/// (permanent, via Disconnect) → Pending.
#[test]
fn permanent_request_walks_through_states() {
    let mut h = Harness::new(CoreConfig::default());
    let (_req, id, out) = h.connect(1, true);
    assert_eq!(h.core.state(id), Some(ConnState::Pending));
    let attempt = out.one_dial().1;

    h.fail(id, attempt);
    assert_eq!(h.core.state(id), Some(ConnState::Failing));

    h.advance(secs(5));
    let attempt = h.tick().one_dial().1;
    assert_eq!(h.core.state(id), Some(ConnState::Pending));

    let est = h.succeed(id, attempt, 9);
    let e = est.one_established();
    assert_eq!((e.id, e.conn, e.direction), (id, 9, Direction::Outbound));
    assert_eq!(e.addr, addr(1));
    assert_eq!(e.req.as_ref().map(|r| r.id), Some(id));
    let serial = e.serial;
    assert_eq!(h.core.state(id), Some(ConnState::Established));

    let out = h.teardown(id, Teardown::Disconnect);
    assert_eq!(out.close, vec![serial]);
    assert_eq!(out.disconnected, vec![id]);
    assert!(out.dial.is_empty(), "a permanent request waits to retry");
    assert_eq!(h.core.state(id), Some(ConnState::Disconnected));

    h.advance(h.deadline_in());
    let (rid, _, raddr) = h.tick().one_dial();
    assert_eq!((rid, raddr), (id, addr(1)));
    assert_eq!(h.core.state(id), Some(ConnState::Pending));
}

/// Removing a pending request cancels its dial and finishes it as
/// Canceled; a success arriving later is discarded and never reported.
#[test]
fn remove_pending_cancels_and_discards_late_success() {
    let mut h = Harness::new(CoreConfig::default());
    let (req, id, out) = h.connect(1, true);
    let attempt = out.one_dial().1;

    let out = h.teardown(id, Teardown::Remove);
    assert_eq!(out.cancel, vec![id]);
    assert!(
        out.close.is_empty() && out.disconnected.is_empty(),
        "{out:?}"
    );
    assert_eq!(h.core.state(id), None);
    assert_eq!(h.final_state(req.id), Some(ConnState::Canceled));
    assert_eq!(h.core.tracked(), 0);

    let late = h.succeed(id, attempt, 77);
    assert_eq!(late.discard, vec![77]);
    assert!(late.established.is_empty(), "{late:?}");
    assert!(late.disconnected.is_empty() && late.failed.is_empty());
    assert_eq!(h.core.tracked(), 0);

    // A late failure is just as silent.
    assert!(h.fail(id, attempt).is_empty());
}

/// Removing an established request closes it, reports Disconnected, drops
/// the request and never dials it again.
#[test]
fn remove_established_closes_and_never_retries() {
    let mut h = Harness::new(CoreConfig::default());
    let (req, id, out) = h.connect(1, true);
    let attempt = out.one_dial().1;
    let serial = h.succeed(id, attempt, 3).one_established().serial;

    let out = h.teardown(id, Teardown::Remove);
    assert_eq!(out.close, vec![serial]);
    assert_eq!(out.disconnected, vec![id]);
    assert!(out.dial.is_empty() && out.cancel.is_empty(), "{out:?}");
    assert_eq!(h.core.state(id), None);
    assert_eq!(h.core.tracked(), 0);
    assert_eq!(h.final_state(req.id), Some(ConnState::Disconnected));

    for _ in 0..10 {
        h.advance(secs(600));
        let out = h.tick();
        assert!(out.is_empty(), "a removed request came back: {out:?}");
    }
    // The user's own close of the old connection changes nothing.
    assert!(h.step(Input::Closed { id, serial }).is_empty());
}

/// Reconnecting an established one-off request closes it and dials the
/// same address again at once under the same id.
#[test]
fn reconnect_established_redials_same_address_at_once() {
    let mut h = Harness::new(CoreConfig::default());
    let (_req, id, out) = h.connect(4, false);
    let attempt = out.one_dial().1;
    let serial = h.succeed(id, attempt, 1).one_established().serial;

    let out = h.teardown(id, Teardown::Reconnect);
    assert_eq!(out.close, vec![serial]);
    assert_eq!(out.disconnected, vec![id]);
    let (rid, rattempt, raddr) = out.one_dial();
    assert_eq!((rid, raddr), (id, addr(4)));
    assert!(rattempt > attempt);
    assert_eq!(h.core.state(id), Some(ConnState::Pending));

    let e = h.succeed(id, rattempt, 2);
    let e = e.one_established();
    assert_eq!(e.id, id);
    assert_ne!(e.serial, serial, "a new incarnation gets a new serial");
}

/// Start asks the source for exactly `target` addresses; once they are all
/// connected nothing more is asked; disconnecting one automatic connection
/// asks for exactly one replacement; explicit requests (also permanent ones
/// made before Start) do not count toward the target.
#[test]
fn target_outbound_is_filled_and_kept() {
    let mut h = Harness::unstarted(sourced(8));

    // Permanent requests before Start wait for it.
    let (_, p1, o1) = h.connect(100, true);
    let (_, p2, o2) = h.connect(101, true);
    assert!(
        o1.is_empty() && o2.is_empty(),
        "nothing happens before Start"
    );

    let out = h.step(Input::Start);
    assert_eq!(out.fetch.len(), 8, "{out:?}");
    let dials: Vec<ConnId> = out.dial.iter().map(|d| d.0).collect();
    assert_eq!(dials, vec![p1, p2], "waiting requests dial first");
    let (pa1, pa2) = (out.dial[0].1, out.dial[1].1);
    assert!(h.succeed(p1, pa1, 1000).established.len() == 1);
    assert!(h.succeed(p2, pa2, 1001).established.len() == 1);
    let mut auto_ids = out.fetch.clone();
    auto_ids.sort();
    auto_ids.dedup();
    assert_eq!(auto_ids.len(), 8, "distinct ids");
    assert!(!auto_ids.contains(&p1) && !auto_ids.contains(&p2));
    assert_eq!(h.core.automatic_slots(), 8);

    for (i, &id) in auto_ids.iter().enumerate() {
        let out = h.step(Input::AddressFound {
            id,
            addr: Some(addr(i as u32)),
        });
        assert!(out.fetch.is_empty());
        let (did, attempt, daddr) = out.one_dial();
        assert_eq!((did, daddr), (id, addr(i as u32)));
        let out = h.succeed(id, attempt, i as u32);
        assert!(out.fetch.is_empty());
        let e = out.one_established();
        assert!(e.req.as_ref().unwrap().is_automatic());
        assert_eq!(e.addr, addr(i as u32));
    }
    let established = auto_ids
        .iter()
        .filter(|&&id| h.core.state(id) == Some(ConnState::Established))
        .count();
    assert_eq!(established, 8);
    assert_eq!(h.core.automatic_slots(), 8);
    h.advance(secs(3600));
    assert!(h.tick().is_empty(), "nothing more to do at target");

    // An explicit request comes on top of the target.
    let (_, x, out) = h.connect(200, false);
    assert!(out.fetch.is_empty());
    let xa = out.one_dial().1;
    assert!(h.succeed(x, xa, 2000).fetch.is_empty());
    assert_eq!(h.core.automatic_slots(), 8);
    // ... and taking it down does not ask the source either.
    let out = h.teardown(x, Teardown::Disconnect);
    assert_eq!(out.disconnected, vec![x]);
    assert!(out.fetch.is_empty(), "{out:?}");

    // Disconnecting one automatic connection asks for one replacement.
    let victim = auto_ids[3];
    let out = h.teardown(victim, Teardown::Disconnect);
    assert_eq!(out.disconnected, vec![victim]);
    assert_eq!(out.close.len(), 1);
    assert_eq!(out.fetch.len(), 1, "{out:?}");
    assert!(
        !auto_ids.contains(&out.fetch[0]),
        "replacement has a new id"
    );
    assert_eq!(h.core.state(victim), None);
    assert_eq!(h.core.automatic_slots(), 8);
}

/// Without an address source, Start asks for nothing and failures are not
/// replaced: only explicit requests are dialed.
#[test]
fn connect_only_mode_never_fetches() {
    let mut h = Harness::unstarted(with_cfg(CoreConfig::default(), |c| {
        c.has_address_source = false;
    }));
    let out = h.step(Input::Start);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(h.core.automatic_slots(), 0);
    let (_, id, out) = h.connect(1, false);
    let attempt = out.one_dial().1;
    let out = h.fail(id, attempt);
    assert!(out.fetch.is_empty());
    assert_eq!(out.failed, vec![(id, None)]);
    assert_eq!(h.core.tracked(), 0);
    h.advance(secs(3600));
    assert!(h.tick().is_empty());
}

/// With every automatic dial failing, failures are replaced at once until
/// 25 have happened in a row (btcd's count); from the 25th on, each
/// replacement waits one retry duration.
/// One success resets the count.
#[test]
fn failure_throttle_delays_replacements_from_the_25th_failure() {
    let mut h = Harness::unstarted(sourced(1));
    let out = h.step(Input::Start);
    assert_eq!(out.fetch.len(), 1);
    let mut fetch = out.fetch[0];

    // Answer the outstanding fetch, then fail its dial.
    let fail_once = |h: &mut Harness, id: ConnId, n: u32| -> Out {
        let (did, attempt, _) = h
            .step(Input::AddressFound {
                id,
                addr: Some(addr(n)),
            })
            .one_dial();
        assert_eq!(did, id);
        h.fail(id, attempt)
    };

    for k in 1..=24u32 {
        let out = fail_once(&mut h, fetch, k);
        assert_eq!(out.failed, vec![(fetch, None)]);
        assert_eq!(h.core.stats().consecutive_failures, k);
        assert_eq!(
            out.fetch.len(),
            1,
            "failure {k} must be replaced at once: {out:?}"
        );
        assert_eq!(h.core.next_deadline(), None, "failure {k}: no timer yet");
        fetch = out.fetch[0];
    }
    for k in 25..=30u32 {
        let out = fail_once(&mut h, fetch, k);
        assert_eq!(h.core.stats().consecutive_failures, k);
        assert!(out.fetch.is_empty(), "failure {k} is throttled: {out:?}");
        assert_eq!(h.core.next_deadline(), Some(h.now + secs(5)));
        assert_eq!(h.core.automatic_slots(), 1, "the slot stays reserved");

        h.advance(secs(5) - Duration::from_millis(1));
        assert!(h.tick().fetch.is_empty(), "not before the retry duration");
        h.advance(Duration::from_millis(1));
        let out = h.tick();
        assert_eq!(out.fetch.len(), 1, "refill at now + retry_duration");
        fetch = out.fetch[0];
    }

    // One success resets the count.
    let (did, attempt, _) = h
        .step(Input::AddressFound {
            id: fetch,
            addr: Some(addr(99)),
        })
        .one_dial();
    h.succeed(did, attempt, 1).one_established();
    assert_eq!(h.core.stats().consecutive_failures, 0);
    let out = h.teardown(did, Teardown::Disconnect);
    assert_eq!(out.fetch.len(), 1);
    let out = fail_once(&mut h, out.fetch[0], 100);
    assert_eq!(h.core.stats().consecutive_failures, 1);
    assert_eq!(out.fetch.len(), 1, "replaced at once again");
}

/// An address source with nothing to offer is asked again only after the
/// retry duration, not at once.
#[test]
fn empty_address_source_refills_after_retry_duration() {
    let mut h = Harness::unstarted(sourced(2));
    let out = h.step(Input::Start);
    assert_eq!(out.fetch.len(), 2);
    let id = out.fetch[0];

    let out = h.step(Input::AddressFound { id, addr: None });
    assert_eq!(out.failed, vec![(id, None)]);
    assert!(out.fetch.is_empty(), "no immediate re-ask: {out:?}");
    assert_eq!(h.core.state(id), None);
    assert_eq!(h.core.automatic_slots(), 2);
    assert_eq!(h.core.next_deadline(), Some(h.now + secs(5)));

    h.advance(secs(4));
    assert!(h.tick().fetch.is_empty());
    h.advance(secs(1));
    let out = h.tick();
    assert_eq!(out.fetch.len(), 1, "{out:?}");
    assert_ne!(out.fetch[0], id);
    assert_eq!(h.core.automatic_slots(), 2);
}

/// `max_inbound` caps live inbound connections; a close frees exactly one
/// slot, once; a close with a stale serial is ignored.
#[test]
fn inbound_limit_and_slot_release() {
    let mut h = Harness::new(with_cfg(CoreConfig::default(), |c| {
        c.max_inbound = 3;
    }));
    let mut live = Vec::new();
    for conn in 1..=3u32 {
        let out = h.accept(conn, conn);
        let e = out.one_established();
        assert_eq!(e.direction, Direction::Inbound);
        assert!(e.req.is_none());
        assert_eq!((e.conn, e.addr.clone()), (conn, addr(conn)));
        live.push((e.id, e.serial));
    }
    assert_eq!(h.core.inbound_count(), 3);
    let out = h.accept(4, 4);
    assert_eq!(out.discard, vec![4]);
    assert!(out.established.is_empty());
    assert_eq!(h.core.stats().inbound_refused, 1);

    // One close frees one slot.
    let (id0, serial0) = live[0];
    let out = h.step(Input::Closed {
        id: id0,
        serial: serial0,
    });
    assert_eq!(out.close, vec![serial0]);
    assert_eq!(out.inbound_closed, vec![id0]);
    assert_eq!(h.core.inbound_count(), 2);
    let e = h.accept(5, 5);
    live.push((e.one_established().id, e.one_established().serial));
    assert_eq!(h.accept(6, 6).discard, vec![6]);

    // The same close again frees nothing.
    let again = h.step(Input::Closed {
        id: id0,
        serial: serial0,
    });
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(h.core.inbound_count(), 3);
    assert_eq!(h.accept(7, 7).discard, vec![7]);

    // A stale serial for a live id is ignored.
    let (id1, serial1) = live[1];
    let (_, other_serial) = live[2];
    for serial in [serial1 + 1000, other_serial, serial0] {
        let out = h.step(Input::Closed { id: id1, serial });
        assert!(out.is_empty(), "serial {serial}: {out:?}");
    }
    assert_eq!(h.core.inbound_count(), 3);
}

/// Disconnect and Remove on an inbound id close that connection and free
/// its slot.
#[test]
fn teardown_of_inbound_id_closes_it() {
    let mut h = Harness::new(with_cfg(CoreConfig::default(), |c| {
        c.max_inbound = 2;
    }));
    let a = h.accept(1, 1);
    let (ida, sa) = (a.one_established().id, a.one_established().serial);
    let b = h.accept(2, 2);
    let (idb, sb) = (b.one_established().id, b.one_established().serial);

    let out = h.teardown(ida, Teardown::Disconnect);
    assert_eq!(out.close, vec![sa], "{out:?}");
    assert_eq!(out.inbound_closed, vec![ida]);
    assert_eq!(h.core.inbound_count(), 1);

    let out = h.teardown(idb, Teardown::Remove);
    assert_eq!(out.close, vec![sb], "{out:?}");
    assert_eq!(out.inbound_closed, vec![idb]);
    assert_eq!(h.core.inbound_count(), 0);
    assert_eq!(h.core.tracked(), 0);
}

/// Nothing lingers: finished requests leave every map, and after Stop no
/// request, inbound connection, timer or automatic slot remains.
#[test]
fn no_leaks_after_removal_and_stop() {
    // Connect-only: remove everything by hand.
    let mut h = Harness::new(CoreConfig::default());
    let (_, failing, o) = h.connect(1, true);
    h.fail(failing, o.one_dial().1);
    let (_, up, o) = h.connect(2, true);
    h.succeed(up, o.one_dial().1, 1).one_established();
    let (_, pending, _) = h.connect(3, false);
    let (_, oneoff, o) = h.connect(4, false);
    let e = h.succeed(oneoff, o.one_dial().1, 2);
    let oneoff_serial = e.one_established().serial;
    let (_, doomed, o) = h.connect(5, false);
    // A failed one-off request finishes by itself.
    h.fail(doomed, o.one_dial().1);
    assert_eq!(h.core.state(doomed), None);
    let inb = h.accept(3, 9);
    let (inb_id, inb_serial) = (inb.one_established().id, inb.one_established().serial);
    assert_eq!(h.core.ids().count(), 5);

    // A one-off request closed by the user finishes too.
    let out = h.step(Input::Closed {
        id: oneoff,
        serial: oneoff_serial,
    });
    assert_eq!(out.disconnected, vec![oneoff]);
    assert_eq!(h.core.state(oneoff), None);
    for id in [failing, up, pending] {
        h.teardown(id, Teardown::Remove);
        assert_eq!(h.core.state(id), None);
    }
    h.step(Input::Closed {
        id: inb_id,
        serial: inb_serial,
    });
    assert_eq!(h.core.tracked(), 0);
    assert_eq!(h.core.inbound_count(), 0);
    h.advance(secs(3600));
    assert!(h.tick().is_empty());
    assert_eq!(h.core.next_deadline(), None);

    // With a source: Stop releases automatic slots, throttled refills and
    // everything else.
    let mut h = Harness::unstarted(sourced(4));
    let out = h.step(Input::Start);
    let ids = out.fetch.clone();
    assert_eq!(ids.len(), 4);
    // One empty answer leaves a refill timer behind.
    h.step(Input::AddressFound {
        id: ids[0],
        addr: None,
    });
    let (_, a, _) = h
        .step(Input::AddressFound {
            id: ids[1],
            addr: Some(addr(1)),
        })
        .one_dial();
    h.succeed(ids[1], a, 1).one_established();
    let (_, a, _) = h
        .step(Input::AddressFound {
            id: ids[2],
            addr: Some(addr(2)),
        })
        .one_dial();
    let (_, perm, o) = h.connect(3, true);
    h.fail(perm, o.one_dial().1);
    h.accept(5, 5).one_established();
    assert!(h.core.tracked() > 0);
    assert_eq!(h.core.automatic_slots(), 4);

    h.step(Input::Stop {
        close_established: true,
    });
    assert_eq!(h.core.tracked(), 0);
    assert_eq!(h.core.automatic_slots(), 0);
    assert_eq!(h.core.inbound_count(), 0);
    assert_eq!(h.core.next_deadline(), None);
    // Late results do not bring anything back.
    assert_eq!(h.succeed(ids[2], a, 6).discard, vec![6]);
    h.advance(secs(3600));
    assert!(h.tick().is_empty());
    assert_eq!(h.core.tracked(), 0);
}

/// Stop closes established connections (with Disconnected notifications),
/// cancels pending dials, and discards a dial that succeeds afterwards.
#[test]
fn stop_closes_established_and_cancels_pending() {
    let mut h = Harness::new(CoreConfig::default());
    let (_, up1, o) = h.connect(1, true);
    let s1 = h.succeed(up1, o.one_dial().1, 1).one_established().serial;
    let (_, up2, o) = h.connect(2, false);
    let s2 = h.succeed(up2, o.one_dial().1, 2).one_established().serial;
    let (_, pend, o) = h.connect(3, false);
    let pend_attempt = o.one_dial().1;
    let (_, failing, o) = h.connect(4, true);
    h.fail(failing, o.one_dial().1);
    let inb = h.accept(5, 5);
    let (inb_id, s3) = (inb.one_established().id, inb.one_established().serial);

    let out = h.step(Input::Stop {
        close_established: true,
    });
    let mut closed = out.close.clone();
    closed.sort();
    let mut want = vec![s1, s2, s3];
    want.sort();
    assert_eq!(closed, want);
    let mut disc = out.disconnected.clone();
    disc.sort();
    let mut want = vec![up1, up2];
    want.sort();
    assert_eq!(disc, want);
    assert_eq!(out.inbound_closed, vec![inb_id]);
    assert_eq!(out.cancel, vec![pend]);
    assert!(out.dial.is_empty() && out.fetch.is_empty());
    assert_eq!(h.core.tracked(), 0);

    let late = h.succeed(pend, pend_attempt, 42);
    assert_eq!(late.discard, vec![42]);
    assert!(late.established.is_empty() && late.disconnected.is_empty());

    // Nothing starts again after Stop.
    assert!(h.step(Input::Start).is_empty());
    let (_, _, out) = h.connect(6, true);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(h.accept(7, 7).discard, vec![7]);
    assert_eq!(h.core.tracked(), 0);
}

/// Stop without closing established connections hands them over for good:
/// no Close, no Disconnected, and nothing is tracked afterwards.
#[test]
fn stop_without_closing_keeps_connections_open() {
    let mut h = Harness::new(CoreConfig::default());
    let (req, up, o) = h.connect(1, true);
    let serial = h.succeed(up, o.one_dial().1, 1).one_established().serial;
    h.accept(2, 2).one_established();
    let out = h.step(Input::Stop {
        close_established: false,
    });
    assert!(out.close.is_empty() && out.disconnected.is_empty());
    assert!(out.inbound_closed.is_empty());
    assert_eq!(h.core.tracked(), 0);
    assert_eq!(h.final_state(req.id), Some(ConnState::Established));
    // The user's later close is not acted on.
    assert!(h.step(Input::Closed { id: up, serial }).is_empty());
}

/// `base` with the changes `f` makes (the config is non-exhaustive).
fn with_cfg(mut base: CoreConfig, f: impl FnOnce(&mut CoreConfig)) -> CoreConfig {
    f(&mut base);
    base
}
