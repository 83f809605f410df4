//! The seeded random world the simulations run against: peers with fixed
//! behaviours, and the settings of the node under test.

use std::time::Duration;

use connmgr::core::CoreConfig;
use connmgr::policy::{Network, NetworkRules, PermissionTable};
use connmgr::{Addr, Backoff, Permissions};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// What a peer does when dialed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Accepts and stays.
    Accept,
    /// Refuses at once.
    Refuse,
    /// Never answers; the dial times out.
    Stall,
    /// Accepts, then drops the connection soon after.
    Drop,
    /// Accepts and misbehaves.
    Misbehave,
}

/// The peers of one run.
pub struct World {
    pub peers: Vec<(Addr, Behaviour)>,
    /// One address that floods the listener.
    pub flooder: Addr,
}

impl World {
    /// Peers in a few public /16s (so the diversity rule bites), a few
    /// private ones (exempt from it), and one onion-free custom mix.
    pub fn new(rng: &mut SmallRng) -> World {
        let mut peers = Vec::new();
        for g in 0..4u8 {
            for h in 1..=6u8 {
                peers.push(format!("203.{g}.0.{h}:8333"));
            }
        }
        for h in 1..=6u8 {
            peers.push(format!("10.0.0.{h}:8333"));
        }
        peers.push("[2001:db8::1]:8333".into());
        peers.push("[2001:db8:1::1]:8333".into());
        let peers = peers
            .into_iter()
            .map(|a| {
                let b = match rng.random_range(0..20) {
                    0..=9 => Behaviour::Accept,
                    10..=13 => Behaviour::Refuse,
                    14..=15 => Behaviour::Stall,
                    16..=18 => Behaviour::Drop,
                    _ => Behaviour::Misbehave,
                };
                (a.parse().unwrap(), b)
            })
            .collect();
        World {
            peers,
            flooder: "198.51.100.7:40000".parse().unwrap(),
        }
    }

    pub fn pick<'a>(&'a self, rng: &mut SmallRng) -> &'a (Addr, Behaviour) {
        &self.peers[rng.random_range(0..self.peers.len())]
    }

    pub fn behaviour(&self, addr: &Addr) -> Behaviour {
        self.peers
            .iter()
            .find(|(a, _)| a == addr)
            .map_or(Behaviour::Accept, |(_, b)| *b)
    }
}

/// A random but valid Core configuration.
pub fn random_config(rng: &mut SmallRng) -> CoreConfig {
    let mut c = CoreConfig::default();
    c.target_outbound = rng.random_range(0..=6);
    c.has_address_source = rng.random_range(0..4) > 0;
    // Eviction protects up to 20 peers before it chooses, so some runs
    // need more slots than that to evict at all.
    c.max_inbound = if rng.random() {
        rng.random_range(0..=6)
    } else {
        rng.random_range(21..=30)
    };
    c.evict_inbound = rng.random();
    c.retry_duration = Duration::from_millis(rng.random_range(500..=5_000));
    c.max_retry_duration = c.retry_duration * rng.random_range(1..=20);
    c.backoff = if rng.random() {
        Backoff::Linear
    } else {
        Backoff::Exponential {
            jitter: rng.random_range(0.0..=1.0),
        }
    };
    c.min_stable_duration = Duration::from_secs(rng.random_range(0..=60));
    c.max_failed_attempts = rng.random_range(1..=30);
    c.rng_seed = rng.random();
    c.diversity = rng.random();
    c.anchor_count = rng.random_range(0..=3);
    if rng.random_range(0..3) > 0 {
        let low = rng.random_range(0..=6);
        let high = low + rng.random_range(1..=4);
        c.watermarks = Some((low, high));
        c.trim_grace = Duration::from_secs(rng.random_range(0..=90));
        c.trim_silence = Duration::from_secs(rng.random_range(0..=20));
    }
    c.ban_threshold = rng.random_range(10..=100);
    c.warn_threshold = c.ban_threshold / 2;
    c.ban_duration = Duration::from_secs(rng.random_range(1..=3_600));
    c.dial_timeout = match rng.random_range(0..4) {
        0 => None,
        _ => Some(Duration::from_millis(rng.random_range(1..=30_000))),
    };
    c.target_block_relay = rng.random_range(0..=3);
    c.feeler_interval = match rng.random_range(0..3) {
        0 => None,
        _ => Some(Duration::from_secs(rng.random_range(1..=300))),
    };
    c.feeler_timeout = Duration::from_secs(rng.random_range(1..=90));
    c.one_shot_timeout = Duration::from_secs(rng.random_range(1..=600));
    c.max_inbound_per_ip = rng.random_bool(0.3).then(|| rng.random_range(0..=3));
    c.max_inbound_per_netgroup = rng.random_bool(0.3).then(|| rng.random_range(0..=4));
    c.force_inbound_margin = rng.random_range(0..=3);
    let mut table = PermissionTable::default();
    for g in 0..4u8 {
        if rng.random_bool(0.3) {
            let bits = rng.random_range(0..512);
            let subnet = format!("203.{g}.0.0/16").parse().unwrap();
            table.push(subnet, Permissions::from_bits(bits).unwrap());
        }
    }
    c.permissions = table;
    let mut nets = NetworkRules::default();
    if rng.random_bool(0.2) {
        nets.only(&[Network::Ipv4]);
    }
    if rng.random_bool(0.3) {
        nets.set_max(Network::Ipv6, rng.random_range(0..=1));
    }
    if rng.random_bool(0.3) && c.target_outbound > 0 {
        nets.set_min(Network::Ipv4, rng.random_range(1..=c.target_outbound));
    }
    if nets.check(c.target_outbound).is_ok() {
        c.networks = nets;
    }
    c
}

pub fn rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}
