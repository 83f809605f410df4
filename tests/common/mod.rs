//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use connmgr::{Addr, ConnId, Event, Handle};
use crossbeam_channel::Receiver;

/// Generous: only a broken manager takes this long.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `cond` until it holds or `DEADLINE` passes; returns whether it held.
pub fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    cond()
}

/// Receives events until one matches `pred`, returning it; panics with the
/// events seen if none does before the deadline.
pub fn expect_event(rx: &Receiver<Event>, mut pred: impl FnMut(&Event) -> bool) -> Event {
    let end = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(ev) if pred(&ev) => return ev,
            Ok(ev) => seen.push(format!("{ev:?}")),
            Err(_) => panic!("expected event not seen; got: {seen:#?}"),
        }
    }
}

/// An address on 10.x for in-memory tests (never dialed over a network).
pub fn mem_addr(n: u32) -> Addr {
    let b = n.to_be_bytes();
    format!("10.{}.{}.{}:8333", b[1], b[2], b[3])
        .parse()
        .unwrap()
}

/// The id an event is about, for outbound events.
pub fn event_id(ev: &Event) -> ConnId {
    ev.id().expect("a connection event")
}

/// Waits until the handler has applied and published everything sent
/// before.
pub fn sync(m: &Handle) {
    m.barrier().expect("the handler never caught up");
}

/// Receives events until `count` of them match `pred`, returning those;
/// panics with everything seen if they do not arrive in time.
pub fn take_events(
    rx: &Receiver<Event>,
    count: usize,
    pred: impl Fn(&Event) -> bool,
) -> Vec<Event> {
    let end = Instant::now() + DEADLINE;
    let (mut hits, mut seen) = (Vec::new(), Vec::new());
    while hits.len() < count {
        match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok(ev) if pred(&ev) => hits.push(ev),
            Ok(ev) => seen.push(format!("{ev:?}")),
            Err(_) => panic!("got {hits:?} of {count} expected events; others: {seen:#?}"),
        }
    }
    hits
}
