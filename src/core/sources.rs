//! Inbound limits per source: at most so many live inbound connections
//! from one IP address and from one netgroup (bchd's per-IP cap, and the
//! netgroup a flood from one provider shares), checked before a newcomer
//! takes a slot or makes one by eviction.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::addr::{Addr, NetGroup};

/// Why a source has no room, for the refusal counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SourceFull {
    Ip,
    NetGroup,
}

/// Live inbound connections by IP and by netgroup. Counted only while a
/// limit is set, so a manager without limits pays nothing.
#[derive(Debug, Default)]
pub(super) struct SourceCounts {
    max_per_ip: Option<usize>,
    max_per_group: Option<usize>,
    by_ip: HashMap<IpAddr, usize>,
    by_group: HashMap<NetGroup, usize>,
}

impl SourceCounts {
    pub(super) fn new(max_per_ip: Option<usize>, max_per_group: Option<usize>) -> Self {
        SourceCounts {
            max_per_ip,
            max_per_group,
            ..SourceCounts::default()
        }
    }

    /// Which limit a newcomer from `addr` would break, if any.
    pub(super) fn full(&self, addr: &Addr) -> Option<SourceFull> {
        if let (Some(max), Some(ip)) = (self.max_per_ip, canonical_ip(addr)) {
            if self.by_ip.get(&ip).copied().unwrap_or(0) >= max {
                return Some(SourceFull::Ip);
            }
        }
        if let Some(max) = self.max_per_group {
            if self.by_group.get(&addr.netgroup()).copied().unwrap_or(0) >= max {
                return Some(SourceFull::NetGroup);
            }
        }
        None
    }

    pub(super) fn opened(&mut self, addr: &Addr) {
        if self.max_per_ip.is_some() {
            if let Some(ip) = canonical_ip(addr) {
                *self.by_ip.entry(ip).or_default() += 1;
            }
        }
        if self.max_per_group.is_some() {
            *self.by_group.entry(addr.netgroup()).or_default() += 1;
        }
    }

    pub(super) fn closed(&mut self, addr: &Addr) {
        if self.max_per_ip.is_some() {
            if let Some(ip) = canonical_ip(addr) {
                release(&mut self.by_ip, ip);
            }
        }
        if self.max_per_group.is_some() {
            release(&mut self.by_group, addr.netgroup());
        }
    }

    /// Entries held, for leak checks.
    pub(super) fn len(&self) -> usize {
        self.by_ip.len() + self.by_group.len()
    }
}

/// The IP an inbound address comes from, IPv4-mapped IPv6 as IPv4.
fn canonical_ip(addr: &Addr) -> Option<IpAddr> {
    addr.ip().map(|ip| ip.to_canonical())
}

fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K) {
    if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            map.remove(&key);
        }
    }
}
