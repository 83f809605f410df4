//! Outbound diversity: which netgroup an automatic outbound address counts
//! against, so that one operator with many addresses in one range cannot
//! fill every automatic slot.

use std::net::IpAddr;

use crate::addr::{Addr, NetGroup};

/// The group `addr` occupies for the one-per-netgroup rule, or `None` for
/// addresses the rule does not cover: loopback, private, link-local and
/// other non-routable ranges. Those are reachable only on networks the
/// operator controls, where an eclipse through address ranges is not the
/// threat, and local test networks would otherwise fit in one slot.
/// CJDNS addresses sit in fc00::/8, which is private on the clearnet, but
/// are a network of their own and grouped like one.
pub(crate) fn diversity_group(addr: &Addr) -> Option<NetGroup> {
    match addr {
        Addr::Ip(sa) if !is_routable(sa.ip()) => None,
        _ => Some(addr.netgroup()),
    }
}

/// Whether `ip` can be reached across the public internet.
pub(crate) fn is_routable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)) // 100.64.0.0/10, carrier-grade NAT
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_routable(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || (s[0] & 0xfe00) == 0xfc00 // unique local
                    || (s[0] & 0xffc0) == 0xfe80 // link-local
                    || (s[0] == 0x2001 && s[1] == 0x0db8)) // documentation
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(s: &str) -> Option<NetGroup> {
        diversity_group(&s.parse().unwrap())
    }

    #[test]
    fn local_ranges_are_exempt() {
        for a in [
            "127.0.0.1:1",
            "10.1.2.3:1",
            "192.168.1.1:1",
            "172.16.0.1:1",
            "100.64.0.1:1",
            "[::1]:1",
            "[fd00::1]:1",
            "[fe80::1]:1",
            "[::ffff:10.0.0.1]:1",
        ] {
            assert_eq!(group(a), None, "{a}");
        }
    }

    #[test]
    fn public_addresses_group_by_range() {
        assert_eq!(group("8.8.4.4:1"), group("8.8.8.8:2"));
        assert_ne!(group("8.8.8.8:1"), group("8.9.8.8:1"));
        assert_eq!(group("[2a01:4f8::1]:1"), group("[2a01:4f8:ffff::2]:1"));
        assert_eq!(group("[::ffff:8.8.8.8]:1"), group("8.8.1.1:1"));
        assert!(group("seed.example.org:8333").is_some());
    }
}
