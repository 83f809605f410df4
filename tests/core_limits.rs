//! Inbound limits per source on the bare Core: at most N live inbound per
//! IP and per netgroup, checked before a slot is taken (and before
//! eviction), refusals counted by reason.

use std::time::Instant;

use connmgr::core::{Core, CoreConfig, Effect, Input};
use connmgr::{Addr, ConnId};

fn addr(s: &str) -> Addr {
    s.parse().unwrap()
}

struct Node {
    core: Core,
    now: Instant,
    token: u32,
}

impl Node {
    fn new(f: impl FnOnce(&mut CoreConfig)) -> Node {
        let mut cfg = CoreConfig::default();
        cfg.feeler_interval = None;
        f(&mut cfg);
        let mut n = Node {
            core: Core::new(cfg),
            now: Instant::now(),
            token: 0,
        };
        n.core.handle::<u32>(n.now, Input::Start);
        n
    }

    /// Offers an inbound connection from `remote`; its id if accepted.
    fn accept(&mut self, remote: &str) -> Option<ConnId> {
        self.token += 1;
        let out = self.core.handle(
            self.now,
            Input::Accepted {
                conn: self.token,
                remote: addr(remote),
            },
        );
        out.iter().find_map(|e| match e {
            Effect::Established { id, .. } => Some(*id),
            _ => None,
        })
    }

    fn close(&mut self, id: ConnId) {
        assert!(self.core.conn_info(id).is_some(), "{id} is live");
        self.core.handle::<u32>(
            self.now,
            Input::Teardown {
                id,
                mode: connmgr::core::Teardown::Disconnect,
            },
        );
    }
}

#[test]
fn the_per_ip_cap_holds_under_a_flood_from_one_ip() {
    let mut n = Node::new(|c| c.max_inbound_per_ip = Some(2));
    let accepted: Vec<ConnId> = (0..1_000)
        .filter_map(|port| n.accept(&format!("198.51.100.7:{}", 1_000 + port)))
        .collect();
    assert_eq!(accepted.len(), 2);
    let s = n.core.stats();
    assert_eq!((s.inbound_refused, s.refusals.per_ip), (998, 998));
    assert_eq!(s.refusals.full, 0);
    // Another IP, and the same IP written as IPv4-mapped IPv6, are
    // counted apart and together respectively.
    assert!(n.accept("198.51.100.8:1").is_some());
    assert!(n.accept("[::ffff:198.51.100.7]:2").is_none());
    // A slot that closes lets the next one in.
    n.close(accepted[0]);
    assert!(n.accept("198.51.100.7:9").is_some());
    assert!(n.accept("198.51.100.7:10").is_none());
}

#[test]
fn the_per_netgroup_cap_holds_across_a_slash_16() {
    let mut n = Node::new(|c| c.max_inbound_per_netgroup = Some(3));
    let accepted = (0..1_000)
        .filter(|i| {
            n.accept(&format!("203.0.{}.{}:8333", i / 250, i % 250 + 1))
                .is_some()
        })
        .count();
    assert_eq!(accepted, 3);
    assert_eq!(n.core.stats().refusals.per_netgroup, 997);
    assert!(n.accept("203.1.0.1:8333").is_some(), "another /16");
    // IPv6: one /32.
    let v6 = (0..10)
        .filter(|i| n.accept(&format!("[2001:db8:{i}::1]:8333")).is_some())
        .count();
    assert_eq!(v6, 3);
}

#[test]
fn without_limits_one_ip_may_fill_the_slots() {
    let mut n = Node::new(|c| c.max_inbound = 10);
    let accepted = (0..20)
        .filter(|p| n.accept(&format!("198.51.100.7:{}", p + 1)).is_some())
        .count();
    assert_eq!(accepted, 10);
    let s = n.core.stats();
    assert_eq!((s.refusals.full, s.refusals.per_ip), (10, 0));
}

#[test]
fn a_flood_from_one_ip_is_refused_before_it_can_evict() {
    let mut n = Node::new(|c| {
        c.max_inbound = 30;
        c.evict_inbound = true;
        c.max_inbound_per_ip = Some(1);
    });
    let honest: Vec<ConnId> = (0..30)
        .filter_map(|i| n.accept(&format!("10.{i}.0.1:8333")))
        .collect();
    assert_eq!(honest.len(), 30);
    // The attacker already holds one slot's IP: every further try is
    // refused by the per-IP cap, and nobody is evicted for it.
    for port in 0..500 {
        assert!(n.accept(&format!("10.0.0.1:{}", port + 1)).is_none());
    }
    let s = n.core.stats();
    assert_eq!((s.evicted, s.refusals.per_ip), (0, 500));
    assert!(honest.iter().all(|id| n.core.conn_info(*id).is_some()));
}

#[test]
fn per_source_counts_are_released_with_their_connections() {
    let mut n = Node::new(|c| {
        c.max_inbound_per_ip = Some(5);
        c.max_inbound_per_netgroup = Some(5);
    });
    let ids: Vec<ConnId> = (0..5)
        .filter_map(|p| n.accept(&format!("198.51.100.7:{}", p + 1)))
        .collect();
    assert_eq!(ids.len(), 5);
    assert!(n.core.tracked() > 0);
    n.core.handle::<u32>(
        n.now,
        Input::Stop {
            close_established: true,
        },
    );
    assert_eq!(n.core.tracked(), 0, "nothing left per IP or netgroup");
}
