//! Which addresses the Core's records use, so that an automatic request
//! never dials a peer that already has a connection or a dial in flight
//! (Bitcoin Core's `FindNode` check before an automatic connection).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::addr::{Addr, CustomAddr};

/// What makes two addresses the same peer for this rule: the IP for
/// routable IP addresses (a peer is one host, whatever port it answers
/// on), the whole socket address on loopback (where test networks run many
/// nodes on one IP), the host for names and onions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum UseKey {
    Ip(IpAddr),
    Socket(SocketAddr),
    Host(String),
    Custom(CustomAddr),
}

fn key(addr: &Addr) -> UseKey {
    match addr {
        Addr::Ip(sa) if sa.ip().to_canonical().is_loopback() => {
            UseKey::Socket(SocketAddr::new(sa.ip().to_canonical(), sa.port()))
        }
        Addr::Ip(sa) => UseKey::Ip(sa.ip().to_canonical()),
        Addr::Cjdns { ip, .. } => UseKey::Ip(IpAddr::V6(*ip)),
        Addr::Dns { host, .. } | Addr::Onion { host, .. } | Addr::I2p { host, .. } => {
            UseKey::Host(host.to_string())
        }
        Addr::Custom(c) => UseKey::Custom(c.clone()),
    }
}

/// How many records use each address.
#[derive(Debug, Default)]
pub(super) struct AddrUse {
    uses: HashMap<UseKey, u32>,
}

impl AddrUse {
    pub(super) fn add(&mut self, addr: &Addr) {
        *self.uses.entry(key(addr)).or_default() += 1;
    }

    pub(super) fn remove(&mut self, addr: &Addr) {
        let k = key(addr);
        if let Some(n) = self.uses.get_mut(&k) {
            *n -= 1;
            if *n == 0 {
                self.uses.remove(&k);
            }
        }
    }

    /// How many records use `addr`'s peer.
    pub(super) fn count(&self, addr: &Addr) -> u32 {
        self.uses.get(&key(addr)).copied().unwrap_or(0)
    }

    /// Whether some record (a connection in either direction, a dial, a
    /// request waiting to retry) uses `addr`'s peer.
    pub(super) fn in_use(&self, addr: &Addr) -> bool {
        self.uses.contains_key(&key(addr))
    }

    pub(super) fn len(&self) -> usize {
        self.uses.len()
    }
}
