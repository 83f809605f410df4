//! Per-network outbound rules on the bare Core: only some networks, at
//! most and at least so many connections per network, and an attacker
//! with 1,000 addresses in one /16 and 1,000 onion addresses held to what
//! the rules allow.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use connmgr::core::{Core, CoreConfig, Effect, Input, ReqSpec};
use connmgr::policy::Network;
use connmgr::{Addr, ConnId, ConnType};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// An onion address; consecutive `n` land in different onion netgroups
/// (the first 4 bits of the key).
fn onion(n: u32) -> Addr {
    let mut key = [0u8; 32];
    key[0] = (n % 16) as u8 * 16;
    key[1..5].copy_from_slice(&n.to_be_bytes());
    Addr::onion_from_key(&key, 8333).unwrap()
}

/// A public IPv4 address in its own /16.
fn honest(n: u32) -> Addr {
    format!("{}.{}.0.1:8333", 20 + n / 200, n % 200)
        .parse()
        .unwrap()
}

/// The attacker's addresses: all in 198.51.0.0/16.
fn attacker(n: u32) -> Addr {
    format!("198.51.{}.{}:8333", n / 250, n % 250 + 1)
        .parse()
        .unwrap()
}

/// A Core whose source answers with `pick` and whose dials all succeed.
struct World {
    core: Core,
    now: Instant,
    token: u32,
    live: BTreeMap<ConnId, (ConnType, Addr)>,
    pick: Box<dyn FnMut() -> Option<Addr>>,
}

impl World {
    fn new(f: impl FnOnce(&mut CoreConfig), pick: impl FnMut() -> Option<Addr> + 'static) -> World {
        let mut cfg = CoreConfig::default();
        cfg.has_address_source = true;
        cfg.feeler_interval = None;
        f(&mut cfg);
        let mut w = World {
            core: Core::new(cfg),
            now: Instant::now(),
            token: 0,
            live: BTreeMap::new(),
            pick: Box::new(pick),
        };
        w.step(Input::Start);
        w
    }

    fn step(&mut self, input: Input<u32>) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            for e in self.core.handle(self.now, input) {
                match e {
                    Effect::FetchAddress { id } => {
                        let addr = (self.pick)();
                        inputs.push_back(Input::AddressFound { id, addr });
                    }
                    Effect::Dial { id, attempt, .. } => {
                        self.token += 1;
                        inputs.push_back(Input::DialSucceeded {
                            id,
                            attempt,
                            conn: self.token,
                            remote: None,
                        });
                    }
                    Effect::Established { req, id, addr, .. } => {
                        let kind = req.map_or(ConnType::Inbound, |r| r.conn_type);
                        self.live.insert(id, (kind, addr));
                    }
                    Effect::Notify(connmgr::core::CoreEvent::Disconnected { req, .. }) => {
                        self.live.remove(&req.id);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Lets time pass in ticks so throttled slots refill.
    fn run_for(&mut self, total: Duration) {
        let step = Duration::from_secs(5);
        let mut t = Duration::ZERO;
        while t < total {
            self.now += step;
            t += step;
            self.step(Input::Tick);
        }
    }

    fn on(&self, net: Network) -> usize {
        self.live
            .values()
            .filter(|(k, a)| k.is_automatic() && Network::of(a) == Some(net))
            .count()
    }

    fn automatic(&self) -> usize {
        self.live.values().filter(|(k, _)| k.is_automatic()).count()
    }
}

#[test]
fn only_networks_limits_automatic_connections_but_not_manual_ones() {
    let mut n = 0;
    let mut w = World::new(
        |c| {
            c.target_outbound = 3;
            c.target_block_relay = 1;
            c.networks.only(&[Network::Onion]);
        },
        move || {
            n += 1;
            Some(if n % 3 == 0 { onion(n) } else { honest(n) })
        },
    );
    w.run_for(Duration::from_secs(120));
    assert_eq!(w.automatic(), 4);
    assert_eq!(w.on(Network::Onion), 4, "{:?}", w.live);
    let manual = ReqSpec::new(ConnId::caller(1), honest(9_999), false);
    w.step(Input::Connect(manual));
    assert!(
        w.live.contains_key(&ConnId::caller(1)),
        "manual requests are not limited"
    );
}

#[test]
fn at_most_n_per_network() {
    let mut n = 0;
    let mut w = World::new(
        |c| {
            c.target_outbound = 8;
            c.target_block_relay = 2;
            c.networks.set_max(Network::Onion, 2);
        },
        move || {
            n += 1;
            Some(if n % 2 == 0 { onion(n) } else { honest(n) })
        },
    );
    w.run_for(Duration::from_secs(120));
    assert_eq!(w.automatic(), 10);
    assert_eq!(w.on(Network::Onion), 2);
}

#[test]
fn at_least_n_per_network_reserves_full_relay_slots() {
    let mut n = 0;
    let mut w = World::new(
        |c| {
            c.target_outbound = 4;
            c.target_block_relay = 0;
            c.networks.set_min(Network::Onion, 2);
        },
        // One onion address in seven: without the minimum, four slots
        // would rarely hold two.
        move || {
            n += 1;
            Some(if n % 7 == 0 { onion(n) } else { honest(n) })
        },
    );
    w.run_for(Duration::from_secs(60));
    assert_eq!(w.automatic(), 4);
    assert!(w.on(Network::Onion) >= 2, "{:?}", w.live);
}

#[test]
fn a_minimum_the_source_cannot_serve_does_not_keep_a_slot_empty() {
    let mut n = 0;
    let mut w = World::new(
        |c| {
            c.target_outbound = 3;
            c.target_block_relay = 0;
            c.max_retry_duration = Duration::from_secs(60);
            c.networks.set_min(Network::Onion, 1);
        },
        move || {
            n += 1;
            Some(honest(n))
        },
    );
    // The reserved slot finds no onion address, reservations pause, and
    // the slot is filled from IPv4.
    w.run_for(Duration::from_secs(120));
    assert_eq!(w.automatic(), 3, "{:?}", w.live);
    assert_eq!(w.on(Network::Onion), 0);
}

#[test]
fn an_attacker_with_one_slash_16_and_many_onions_gets_what_the_rules_allow() {
    let mut rng = SmallRng::seed_from_u64(7);
    let mut w = World::new(
        |c| {
            c.target_outbound = 8;
            c.target_block_relay = 2;
            c.diversity = true;
            c.networks.set_max(Network::Onion, 2);
        },
        move || {
            // 1,000 addresses in one /16, 1,000 onions, 20 honest peers.
            Some(match rng.random_range(0..2_020u32) {
                n @ 0..1_000 => attacker(n),
                n @ 1_000..2_000 => onion(n),
                n => honest(n - 2_000),
            })
        },
    );
    w.run_for(Duration::from_secs(600));
    assert_eq!(w.automatic(), 10, "{:?}", w.live);
    let from_attacker = w
        .live
        .values()
        .filter(|(_, a)| a.to_string().starts_with("198.51."))
        .count();
    assert!(from_attacker <= 1, "the /16 holds {from_attacker} slots");
    assert!(w.on(Network::Onion) <= 2);
    assert!(w.automatic() - from_attacker - w.on(Network::Onion) >= 7);
}
