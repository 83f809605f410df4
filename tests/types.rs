//! Connection types through the whole manager: the per-type targets, a
//! feeler ended by `handshake_done`, a one-shot connection ended by its
//! timeout, a block-relay-only manual peer. Time is a manual clock.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use connmgr::*;

const MIN: Duration = Duration::from_secs(60);

/// A manager over an in-memory network of 40 listening peers whose source
/// hands out each in turn.
fn manager(
    net: &MemoryNetwork,
    clock: &ManualClock,
    f: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> ConnManager {
    let next = Arc::new(AtomicU32::new(0));
    let config = Config::builder()
        .dialer(net.dialer())
        .clock(clock.clone())
        .address_source(move || Some(mem_addr(next.fetch_add(1, Ordering::SeqCst) % 40)));
    ConnManager::new(f(config).build()).unwrap()
}

/// Waits for an event `pred` accepts, keeping the connections of every
/// event seen on the way open in `held`.
fn expect_holding(
    rx: &crossbeam_channel::Receiver<Event>,
    held: &mut Vec<Conn>,
    mut pred: impl FnMut(&Event) -> bool,
) -> Event {
    loop {
        let ev = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("expected event not seen");
        if pred(&ev) {
            return ev;
        }
        if let Event::Connected { conn, .. } | Event::Accepted { conn } = ev {
            held.push(conn);
        }
    }
}

fn listeners(net: &MemoryNetwork) -> Vec<MemoryListener> {
    (0..40).map(|n| net.listen(mem_addr(n)).unwrap()).collect()
}

#[test]
fn a_feeler_starts_once_the_targets_are_met_and_ends_at_its_handshake() {
    let net = MemoryNetwork::new();
    let _peers = listeners(&net);
    let clock = ManualClock::new();
    let mut held = Vec::new();
    let m = manager(&net, &clock, |b| {
        b.target_outbound(2)
            .target_block_relay(1)
            .feeler_interval(Some(2 * MIN))
    });
    let rx = m.handle().events();
    m.start().unwrap();
    assert!(wait_until(|| {
        let c = m.handle().counts();
        (c.full_relay_outbound, c.block_relay_outbound) == (2, 1)
    }));
    assert_eq!(m.handle().counts().feelers, 0);

    // The feeler wait is cut at eight intervals: one is due by then.
    clock.advance(16 * MIN);
    let feeler = match expect_holding(
        &rx,
        &mut held,
        |ev| matches!(ev, Event::Connected { req, .. } if req.conn_type() == ConnType::Feeler),
    ) {
        Event::Connected { req, conn } => {
            held.push(conn);
            req
        }
        _ => unreachable!(),
    };
    let id = feeler.id().unwrap();
    assert!(!feeler.is_automatic());
    assert!(wait_until(|| m.handle().counts().feelers == 1));
    let info = m.handle().conn_info(id).unwrap();
    assert_eq!(info.conn_type, ConnType::Feeler);
    assert_eq!(
        m.handle().counts().automatic_outbound,
        3,
        "feelers never count"
    );

    m.handle().handshake_done(id).unwrap();
    match expect_holding(
        &rx,
        &mut held,
        |ev| matches!(ev, Event::Disconnected { req, .. } if req.id() == Some(id)),
    ) {
        Event::Disconnected { reason, .. } => assert_eq!(reason, CloseReason::FeelerDone),
        _ => unreachable!(),
    }
    assert!(wait_until(|| m.handle().counts().feelers == 0));
    assert_eq!(m.handle().snapshot().stats.closes.feeler_done, 1);
    m.stop();
}

#[test]
fn a_one_shot_connection_closes_at_its_timeout() {
    let net = MemoryNetwork::new();
    let _peers = listeners(&net);
    let clock = ManualClock::new();
    let mut held = Vec::new();
    let m = manager(&net, &clock, |b| {
        b.target_outbound(0)
            .target_block_relay(0)
            .feeler_interval(None)
            .one_shot_timeout(5 * MIN)
    });
    let rx = m.handle().events();
    m.start().unwrap();
    let id = m.handle().connect(ConnReq::one_shot(mem_addr(7))).unwrap();
    match expect_holding(&rx, &mut held, |ev| matches!(ev, Event::Connected { .. })) {
        Event::Connected { req, conn } => {
            assert_eq!(req.conn_type(), ConnType::OneShot);
            held.push(conn);
        }
        _ => unreachable!(),
    }
    assert!(wait_until(|| m.handle().counts().one_shot == 1));
    clock.advance(5 * MIN);
    match expect_holding(&rx, &mut held, |ev| {
        matches!(ev, Event::Disconnected { .. })
    }) {
        Event::Disconnected { req, reason } => {
            assert_eq!(req.id(), Some(id));
            assert_eq!(reason, CloseReason::Expired);
        }
        _ => unreachable!(),
    }
    assert!(wait_until(|| m.handle().conn_info(id).is_none()));
    assert_eq!(m.handle().snapshot().stats.dials, 1, "never retried");
    m.stop();
}

#[test]
fn a_block_relay_only_manual_peer_shows_as_such() {
    let net = MemoryNetwork::new();
    let _peers = listeners(&net);
    let clock = ManualClock::new();
    let mut held = Vec::new();
    let m = manager(&net, &clock, |b| {
        b.target_outbound(0)
            .target_block_relay(0)
            .feeler_interval(None)
    });
    let rx = m.handle().events();
    m.start().unwrap();
    let req = ConnReq::permanent(mem_addr(3)).block_relay_only();
    let id = m.handle().connect(req.clone()).unwrap();
    match expect_holding(&rx, &mut held, |ev| matches!(ev, Event::Connected { .. })) {
        Event::Connected { req, conn } => {
            held.push(conn);
            assert!(req.is_block_relay_only());
            assert_eq!(req.conn_type(), ConnType::Manual);
        }
        _ => unreachable!(),
    }
    assert!(wait_until(|| m.handle().counts().block_relay_outbound == 1));
    let info = m.handle().conn_info(id).unwrap();
    assert!(info.block_relay_only && info.permanent);
    assert_eq!(info.conn_type, ConnType::Manual);
    assert_eq!(m.handle().counts().automatic_outbound, 0);
    m.stop();
}

/// `only_networks` holds through the whole manager: with onion and IPv4
/// peers on offer, automatic connections go to onions only.
#[test]
fn only_networks_holds_through_the_manager() {
    let net = MemoryNetwork::new();
    let onion = |n: u8| {
        let mut key = [0u8; 32];
        key[0] = n * 16;
        Addr::onion_from_key(&key, 8333).unwrap()
    };
    let mut offered: Vec<Addr> = Vec::new();
    for n in 0..8u8 {
        offered.push(onion(n));
        offered.push(format!("20.{n}.0.1:8333").parse().unwrap());
    }
    let _peers: Vec<MemoryListener> = offered
        .iter()
        .map(|a| net.listen(a.clone()).unwrap())
        .collect();
    let next = Arc::new(AtomicU32::new(0));
    let config = Config::builder()
        .dialer(net.dialer())
        .target_outbound(3)
        .target_block_relay(1)
        .feeler_interval(None)
        .only_networks(&[connmgr::policy::Network::Onion])
        .address_source(move || {
            let i = next.fetch_add(1, Ordering::SeqCst) as usize;
            Some(offered[i % offered.len()].clone())
        })
        .build();
    let m = ConnManager::new(config).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();
    let mut held = Vec::new();
    while held.len() < 4 {
        if let Event::Connected { conn, .. } = expect_holding(&rx, &mut Vec::new(), |ev| {
            matches!(ev, Event::Connected { .. })
        }) {
            held.push(conn);
        }
    }
    assert!(wait_until(|| m.handle().counts().automatic_outbound == 4));
    let snap = m.handle().snapshot();
    assert!(
        snap.conns
            .iter()
            .all(|c| c.addr.as_ref().is_some_and(Addr::is_onion)),
        "{:?}",
        snap.conns
    );
    m.stop();
}
