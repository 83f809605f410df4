//! Per-network outbound rules, as Bitcoin Core's `-onlynet` and its
//! network-specific outbound connections: which networks automatic
//! connections may use, at most and at least how many on each.

use std::fmt;

use crate::addr::Addr;

/// The network an address is on, for per-network rules. DNS names and
/// custom addresses are on none until resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum Network {
    /// IPv4 (IPv4-mapped IPv6 included).
    Ipv4,
    /// IPv6, CJDNS excepted.
    Ipv6,
    /// Tor onion services.
    Onion,
    /// I2P.
    I2p,
    /// CJDNS (fc00::/8 on the CJDNS network).
    Cjdns,
}

impl Network {
    /// Every network, in index order.
    pub const ALL: [Network; 5] = [
        Network::Ipv4,
        Network::Ipv6,
        Network::Onion,
        Network::I2p,
        Network::Cjdns,
    ];

    /// The network of `addr`, if it is on one.
    ///
    /// ```
    /// use connmgr::policy::Network;
    ///
    /// assert_eq!(Network::of(&"192.0.2.1:8333".parse().unwrap()), Some(Network::Ipv4));
    /// assert_eq!(Network::of(&"[::ffff:192.0.2.1]:8333".parse().unwrap()), Some(Network::Ipv4));
    /// assert_eq!(Network::of(&"seed.example:8333".parse().unwrap()), None);
    /// ```
    pub fn of(addr: &Addr) -> Option<Network> {
        match addr {
            Addr::Ip(sa) if sa.ip().to_canonical().is_ipv4() => Some(Network::Ipv4),
            Addr::Ip(_) => Some(Network::Ipv6),
            Addr::Onion { .. } => Some(Network::Onion),
            Addr::I2p { .. } => Some(Network::I2p),
            Addr::Cjdns { .. } => Some(Network::Cjdns),
            Addr::Dns { .. } | Addr::Custom(_) => None,
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    /// Bitcoin Core's name: `ipv4`, `ipv6`, `onion`, `i2p`, `cjdns`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Network::Ipv4 => "ipv4",
            Network::Ipv6 => "ipv6",
            Network::Onion => "onion",
            Network::I2p => "i2p",
            Network::Cjdns => "cjdns",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Which networks automatic outbound connections may use, and at most and
/// at least how many full-relay and block-relay-only connections each may
/// hold. The default allows every network with no limits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkRules {
    /// Networks automatic and feeler connections may use; `None` is all.
    only: Option<[bool; 5]>,
    /// Most automatic connections per network.
    max: [Option<usize>; 5],
    /// Least full-relay connections per network, reserved among the
    /// full-relay slots.
    min: [usize; 5],
}

impl NetworkRules {
    /// Automatic and feeler connections use only `networks` (Core's
    /// `-onlynet`); manual requests and inbound are not affected.
    pub fn only(&mut self, networks: &[Network]) {
        let mut set = [false; 5];
        for n in networks {
            set[n.index()] = true;
        }
        self.only = Some(set);
    }

    /// At most `n` automatic connections on `network`.
    pub fn set_max(&mut self, network: Network, n: usize) {
        self.max[network.index()] = Some(n);
    }

    /// At least `n` full-relay connections on `network`.
    pub fn set_min(&mut self, network: Network, n: usize) {
        self.min[network.index()] = n;
    }

    /// Whether automatic connections may use `network` (an address on no
    /// network, a name, is allowed unless only some networks are).
    pub fn allows(&self, network: Option<Network>) -> bool {
        match (self.only, network) {
            (None, _) => true,
            (Some(set), Some(n)) => set[n.index()],
            (Some(_), None) => false,
        }
    }

    /// The most automatic connections on `network`, if limited.
    pub fn max(&self, network: Network) -> Option<usize> {
        self.max[network.index()]
    }

    /// The least full-relay connections on `network`.
    pub fn min(&self, network: Network) -> usize {
        self.min[network.index()]
    }

    /// Why these rules cannot work with `full_relay_target` slots, if they
    /// cannot: minimums that do not fit the target, a minimum above its
    /// maximum, or a minimum on a network that is not allowed.
    pub fn check(&self, full_relay_target: usize) -> Result<(), String> {
        let total: usize = self.min.iter().fold(0, |a, n| a.saturating_add(*n));
        if total > full_relay_target {
            return Err(format!(
                "the per-network minimums add up to {total}, more than the {full_relay_target} \
                 full-relay slots: lower them or raise target_outbound"
            ));
        }
        for net in Network::ALL {
            let min = self.min(net);
            if let Some(max) = self.max(net).filter(|max| min > *max) {
                return Err(format!(
                    "at least {min} on {net} but at most {max}: the minimum must not pass the maximum"
                ));
            }
            if min > 0 && !self.allows(Some(net)) {
                return Err(format!(
                    "at least {min} on {net}, which only_networks does not allow: allow it or drop the minimum"
                ));
            }
        }
        Ok(())
    }

    /// Whether any minimum is set.
    pub(crate) fn has_minimums(&self) -> bool {
        self.min.iter().any(|n| *n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_of_every_address_kind() {
        let of = |s: &str| Network::of(&s.parse().unwrap());
        assert_eq!(of("[2001:db8::1]:8333"), Some(Network::Ipv6));
        assert_eq!(of("cjdns:[fc00::1]:8333"), Some(Network::Cjdns));
        let onion = Addr::onion_from_key(&[7; 32], 8333).unwrap();
        assert_eq!(Network::of(&onion), Some(Network::Onion));
        assert_eq!(
            Network::of(&Addr::i2p_from_hash(&[7; 32], 0)),
            Some(Network::I2p)
        );
    }

    #[test]
    fn rules_that_cannot_work_are_explained() {
        let mut r = NetworkRules::default();
        r.set_min(Network::Onion, 3);
        r.set_min(Network::Ipv4, 6);
        assert!(r.check(8).unwrap_err().contains("add up to 9"));
        assert!(r.check(9).is_ok());
        r.set_max(Network::Onion, 2);
        assert!(r.check(9).unwrap_err().contains("at most 2"));
        let mut r = NetworkRules::default();
        r.only(&[Network::Onion]);
        r.set_min(Network::Ipv4, 1);
        assert!(r.check(8).unwrap_err().contains("only_networks"));
        assert!(!r.allows(None) && r.allows(Some(Network::Onion)));
        assert!(NetworkRules::default().allows(None));
    }
}
