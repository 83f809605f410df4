//! Inbound policy on the bare Core: limits per source (at most N live
//! inbound per IP and per netgroup, checked before a slot is taken and
//! before eviction, refusals counted by reason), and every input of
//! Bitcoin Core's eviction reported by the node.

use connmgr::core::{Input, PeerReport};
use connmgr::policy::EvictionPolicy;
use connmgr::ConnId;

#[path = "common/inbound_node.rs"]
mod inbound_node;
use inbound_node::{bare_policy, Node};

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

#[test]
fn the_configured_eviction_policy_is_the_one_used() {
    let mut n = Node::new(|c| {
        c.max_inbound = 10;
        c.evict_inbound = true;
        c.eviction_policy = bare_policy();
    });
    let ids = n.fill(10);
    // Every group has one peer: the youngest goes. Core's default counts
    // would protect all ten and refuse the newcomer instead.
    let (new, evicted) = n.accept_evicting("10.200.0.1:8333");
    assert!(new.is_some());
    assert_eq!(evicted, Some(ids[9]));
}

#[test]
fn discouraged_peers_are_evicted_first() {
    // Only the uptime share protects: the oldest half of the peers.
    let policy = EvictionPolicy {
        protect_uptime_ratio: 0.5,
        ..bare_policy()
    };
    let mut n = Node::new(|c| {
        c.max_inbound = 60;
        c.evict_inbound = true;
        c.eviction_policy = policy;
    });
    let ids = n.fill(60);
    // Middle-aged peers, not protected by uptime, are discouraged: without
    // the report the youngest peers would go.
    let discouraged = &ids[30..45];
    for id in discouraged {
        n.report(*id, PeerReport::PreferEvict);
    }
    for i in 0..10 {
        let (new, evicted) = n.accept_evicting(&format!("10.{}.0.1:8333", 100 + i));
        assert!(new.is_some());
        let evicted = evicted.expect("someone is evicted");
        assert!(
            discouraged.contains(&evicted),
            "{evicted} was not discouraged"
        );
    }
}

#[test]
fn block_relay_only_peers_with_recent_blocks_are_protected() {
    let policy = EvictionPolicy {
        protect_block_relay_only: 1,
        ..bare_policy()
    };
    let mut n = Node::new(|c| {
        c.max_inbound = 10;
        c.evict_inbound = true;
        c.eviction_policy = policy;
    });
    let ids = n.fill(10);
    let youngest = ids[9];
    n.report(youngest, PeerReport::RelaysTxs(false));
    n.report(youngest, PeerReport::NovelBlock);
    let (_, evicted) = n.accept_evicting("10.200.0.1:8333");
    assert_eq!(evicted, Some(ids[8]), "the block-relay-only peer was kept");

    // A peer without the services we need is not block-relay-only, so
    // the same reports do not protect it.
    let mut n = Node::new(|c| {
        c.max_inbound = 10;
        c.evict_inbound = true;
        c.eviction_policy = policy;
    });
    let ids = n.fill(10);
    let youngest = ids[9];
    n.report(youngest, PeerReport::RelaysTxs(false));
    n.report(youngest, PeerReport::NovelBlock);
    n.report(youngest, PeerReport::RelevantServices(false));
    let (_, evicted) = n.accept_evicting("10.200.0.1:8333");
    assert_eq!(evicted, Some(youngest));
}
