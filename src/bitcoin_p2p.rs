//! Conversions between [`Addr`] and rust-bitcoin's P2P address types
//! (feature `bitcoin`): the legacy `addr` message's [`Address`], BIP155's
//! [`AddrV2`] and [`AddrV2Message`], and [`ServiceFlags`] for seeding.
//!
//! A node that decodes `addr`/`addrv2` with rust-bitcoin hands the entries
//! to the manager's address source through these, and announces its own
//! peers the other way. Everything an `Addr` can hold that addrv2 can carry
//! converts both ways: IPv4, IPv6, Tor v3, I2P and CJDNS. What cannot be
//! carried (DNS names, custom addresses) or cannot be dialed (Tor v2,
//! unknown networks, BIP155's forbidden IPv6 forms) is a typed error.
//!
//! ```
//! use bitcoin::p2p::address::AddrV2;
//! use connmgr::{Addr, AddrKind};
//!
//! let addr = Addr::from_addr_v2(&AddrV2::I2p([7; 32]), 0).unwrap();
//! assert_eq!(addr.kind(), AddrKind::I2p);
//! assert_eq!(addr.to_addr_v2().unwrap(), (AddrV2::I2p([7; 32]), 0));
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::p2p::address::{AddrV2, AddrV2Message, Address};
use bitcoin::p2p::ServiceFlags;

use crate::addr::{port_error, Addr, AddrKind, AddrParseError};
use crate::seed::{SeedAddr, SeedOptions};

/// Why an address did not convert.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BitcoinAddrError {
    /// Bitcoin's P2P messages have no form for this kind of address (DNS
    /// names and custom addresses).
    NotRepresentable(AddrKind),
    /// A network the manager cannot dial: Tor v2 (retired by Tor in 2021)
    /// or a BIP155 network id it does not know; holds the id.
    UnsupportedNetwork(u8),
    /// An IPv6 form BIP155 forbids in addrv2: IPv4-mapped or OnionCat
    /// (fd87:d87e:eb43::/48), which must use their own network ids.
    ForbiddenIpv6(Ipv6Addr),
    /// The bytes are not a valid address of their network (a CJDNS address
    /// outside fc00::/8, port 0 where a port is needed, ...).
    Invalid(AddrParseError),
}

impl fmt::Display for BitcoinAddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BitcoinAddrError::NotRepresentable(kind) => write!(
                f,
                "a {kind} address has no form in Bitcoin's addr or addrv2 messages; resolve \
                 host names first, and announce only IPv4, IPv6, onion, I2P or CJDNS peers"
            ),
            BitcoinAddrError::UnsupportedNetwork(3) => f.write_str(
                "Tor v2 onion addresses (addrv2 network 3) are retired and cannot be dialed; \
                 skip them",
            ),
            BitcoinAddrError::UnsupportedNetwork(id) => write!(
                f,
                "addrv2 network id {id} is not one this manager can dial (1-6 are IPv4, IPv6, \
                 Tor v2, Tor v3, I2P, CJDNS); skip the entry"
            ),
            BitcoinAddrError::ForbiddenIpv6(ip) => write!(
                f,
                "{ip} is sent as IPv6 but is an IPv4-mapped or OnionCat address, which BIP155 \
                 forbids under the IPv6 network id; ignore the entry"
            ),
            BitcoinAddrError::Invalid(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BitcoinAddrError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BitcoinAddrError::Invalid(e) => Some(e),
            _ => None,
        }
    }
}

impl From<AddrParseError> for BitcoinAddrError {
    fn from(e: AddrParseError) -> Self {
        BitcoinAddrError::Invalid(e)
    }
}

/// The addrv2 network id of each [`AddrV2`] variant (BIP155).
fn network_id(addr: &AddrV2) -> u8 {
    match addr {
        AddrV2::Ipv4(_) => 1,
        AddrV2::Ipv6(_) => 2,
        AddrV2::TorV2(_) => 3,
        AddrV2::TorV3(_) => 4,
        AddrV2::I2p(_) => 5,
        AddrV2::Cjdns(_) => 6,
        AddrV2::Unknown(id, _) => *id,
    }
}

/// Whether BIP155 forbids `ip` under the IPv6 network id.
fn forbidden_in_addrv2(ip: Ipv6Addr) -> bool {
    const ONIONCAT: [u16; 3] = [0xfd87, 0xd87e, 0xeb43];
    ip.to_ipv4_mapped().is_some() || ip.segments()[..3] == ONIONCAT
}

impl Addr {
    /// The peer an addrv2 entry names. IP addresses need a non-zero port;
    /// I2P takes any port (Bitcoin sends 0).
    pub fn from_addr_v2(addr: &AddrV2, port: u16) -> Result<Addr, BitcoinAddrError> {
        let ip_addr = |ip: IpAddr| match port {
            0 => Err(port_error(&ip.to_string(), port)),
            _ => Ok(Addr::from((ip, port))),
        };
        match addr {
            AddrV2::Ipv4(ip) => Ok(ip_addr(IpAddr::V4(*ip))?),
            AddrV2::Ipv6(ip) if forbidden_in_addrv2(*ip) => {
                Err(BitcoinAddrError::ForbiddenIpv6(*ip))
            }
            AddrV2::Ipv6(ip) => Ok(ip_addr(IpAddr::V6(*ip))?),
            AddrV2::TorV3(key) => Ok(Addr::onion_from_key(key, port)?),
            AddrV2::I2p(hash) => Ok(Addr::i2p_from_hash(hash, port)),
            AddrV2::Cjdns(ip) => Ok(Addr::cjdns(*ip, port)?),
            other => Err(BitcoinAddrError::UnsupportedNetwork(network_id(other))),
        }
    }

    /// This address as an addrv2 entry and its port. IPv4-mapped IPv6 is
    /// written as IPv4, as BIP155 asks.
    pub fn to_addr_v2(&self) -> Result<(AddrV2, u16), BitcoinAddrError> {
        let port = self.port().unwrap_or_default();
        let addr = match self {
            Addr::Ip(sa) => match sa.ip().to_canonical() {
                IpAddr::V4(v4) => AddrV2::Ipv4(v4),
                IpAddr::V6(v6) if forbidden_in_addrv2(v6) => {
                    return Err(BitcoinAddrError::ForbiddenIpv6(v6))
                }
                IpAddr::V6(v6) => AddrV2::Ipv6(v6),
            },
            Addr::Cjdns { ip, .. } => AddrV2::Cjdns(*ip),
            Addr::Onion { .. } | Addr::I2p { .. } => {
                let key = self
                    .overlay_key()
                    .ok_or(BitcoinAddrError::NotRepresentable(self.kind()))?;
                match self {
                    Addr::Onion { .. } => AddrV2::TorV3(key),
                    _ => AddrV2::I2p(key),
                }
            }
            Addr::Dns { .. } | Addr::Custom(_) => {
                return Err(BitcoinAddrError::NotRepresentable(self.kind()))
            }
        };
        Ok((addr, port))
    }

    /// This address as an addrv2 message entry with the given service bits
    /// and last-seen time (seconds since the Unix epoch).
    pub fn to_addr_v2_message(
        &self,
        services: ServiceFlags,
        time: u32,
    ) -> Result<AddrV2Message, BitcoinAddrError> {
        let (addr, port) = self.to_addr_v2()?;
        Ok(AddrV2Message {
            time,
            services,
            addr,
            port,
        })
    }

    /// This address as a legacy `addr` entry. Only IP addresses fit (the
    /// legacy message has 16 address bytes and no network id).
    pub fn to_address(&self, services: ServiceFlags) -> Result<Address, BitcoinAddrError> {
        match self {
            Addr::Ip(sa) => Ok(Address::new(sa, services)),
            _ => Err(BitcoinAddrError::NotRepresentable(self.kind())),
        }
    }
}

impl TryFrom<&AddrV2Message> for Addr {
    type Error = BitcoinAddrError;

    fn try_from(msg: &AddrV2Message) -> Result<Addr, BitcoinAddrError> {
        Addr::from_addr_v2(&msg.addr, msg.port)
    }
}

impl TryFrom<&Address> for Addr {
    type Error = BitcoinAddrError;

    /// A legacy `addr` entry: IPv4-mapped bytes become IPv4; OnionCat (a
    /// Tor v2 address) is refused as retired.
    fn try_from(address: &Address) -> Result<Addr, BitcoinAddrError> {
        let ip = Ipv6Addr::from(address.address);
        if forbidden_in_addrv2(ip) && ip.to_ipv4_mapped().is_none() {
            return Err(BitcoinAddrError::UnsupportedNetwork(3));
        }
        let addr = match ip.to_ipv4_mapped() {
            Some(v4) => AddrV2::Ipv4(v4),
            None => AddrV2::Ipv6(ip),
        };
        Addr::from_addr_v2(&addr, address.port)
    }
}

impl SeedOptions {
    /// The service bits wanted, as rust-bitcoin's flags; see
    /// [`services`](Self::services).
    pub fn service_flags(self, flags: ServiceFlags) -> Self {
        self.services(flags.to_u64())
    }
}

impl SeedAddr {
    /// The service bits asked of the seed, as rust-bitcoin's flags.
    pub fn service_flags(&self) -> ServiceFlags {
        ServiceFlags::from(self.services)
    }

    /// This seed result as an addrv2 entry, with its made-up last-seen time.
    pub fn to_addr_v2_message(&self) -> Result<AddrV2Message, BitcoinAddrError> {
        self.addr
            .to_addr_v2_message(self.service_flags(), unix_seconds(self.last_seen))
    }
}

/// Seconds since the Unix epoch, clamped to what addrv2's u32 holds.
fn unix_seconds(time: SystemTime) -> u32 {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    u32::try_from(secs).unwrap_or(u32::MAX)
}
