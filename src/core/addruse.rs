//! Which addresses the Core's records use, so that an automatic request
//! never dials a peer that already has a connection or a dial in flight
//! (Bitcoin Core's `FindNode` check before an automatic connection).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::addr::{Addr, CustomAddr};

/// What makes two addresses the same peer for this rule: the IP for
/// routable IP addresses (a peer is one host, whatever port it answers
/// on), the whole socket address on loopback (where test networks run many
/// nodes on one IP), the host for names and onions. 24 bytes: the map holds
/// one per connection, so IPs are kept as octets and a port (0 where the
/// port does not count), names share the address's text, and the rare
/// custom address is boxed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum UseKey {
    V4([u8; 4], u16),
    V6([u8; 16], u16),
    Host(Arc<str>),
    Custom(Box<CustomAddr>),
}

fn ip_key(ip: IpAddr, port: u16) -> UseKey {
    match ip {
        IpAddr::V4(v4) => UseKey::V4(v4.octets(), port),
        IpAddr::V6(v6) => UseKey::V6(v6.octets(), port),
    }
}

fn key(addr: &Addr) -> UseKey {
    match addr {
        Addr::Ip(sa) => {
            let ip = sa.ip().to_canonical();
            // Loopback keys carry the port; no routable key does, so the
            // two never meet.
            ip_key(ip, if ip.is_loopback() { sa.port() } else { 0 })
        }
        Addr::Cjdns { ip, .. } => ip_key(IpAddr::V6(*ip), 0),
        Addr::Dns { host, .. } | Addr::Onion { host, .. } | Addr::I2p { host, .. } => {
            UseKey::Host(Arc::clone(host))
        }
        Addr::Custom(c) => UseKey::Custom(Box::new(c.clone())),
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
        // One lookup, which also removes the last use.
        if let Entry::Occupied(mut uses) = self.uses.entry(key(addr)) {
            *uses.get_mut() -= 1;
            if *uses.get() == 0 {
                uses.remove();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Addr {
        s.parse().unwrap()
    }

    #[test]
    fn routable_ips_are_one_peer_whatever_the_port() {
        let mut uses = AddrUse::default();
        uses.add(&a("10.1.2.3:8333"));
        assert!(uses.in_use(&a("10.1.2.3:18333")));
        assert!(uses.in_use(&a("[::ffff:10.1.2.3]:1")));
        assert!(!uses.in_use(&a("10.1.2.4:8333")));
        uses.add(&a("[2001:db8::1]:8333"));
        assert_eq!(uses.count(&a("[2001:db8::1]:9")), 1);
    }

    #[test]
    fn loopback_peers_differ_by_port() {
        let mut uses = AddrUse::default();
        uses.add(&a("127.0.0.1:8333"));
        uses.add(&a("[::1]:8333"));
        assert!(uses.in_use(&a("127.0.0.1:8333")));
        assert!(!uses.in_use(&a("127.0.0.1:8334")));
        assert!(!uses.in_use(&a("[::1]:8334")));
        assert_eq!(uses.len(), 2);
    }

    #[test]
    fn names_count_by_host_and_leave_when_unused() {
        let mut uses = AddrUse::default();
        uses.add(&a("seed.example.org:8333"));
        uses.add(&a("seed.example.org:8334"));
        assert_eq!(uses.count(&a("seed.example.org:1")), 2);
        uses.remove(&a("seed.example.org:8333"));
        uses.remove(&a("seed.example.org:8334"));
        assert!(!uses.in_use(&a("seed.example.org:8333")));
        assert_eq!(uses.len(), 0);
        let custom = Addr::Custom(CustomAddr::new("sim", "node-1").unwrap());
        uses.add(&custom);
        assert!(uses.in_use(&custom));
    }

    #[test]
    fn keys_stay_small() {
        assert!(std::mem::size_of::<UseKey>() <= 24);
    }
}
