//! Peer addresses: IP socket addresses, DNS host names, Tor v3 onion
//! services, I2P destinations, CJDNS addresses and user-defined types.
//!
//! Everything that builds an [`Addr`] from text validates it, so an `Addr`
//! that exists is well formed: host names are lower-cased and checked label by
//! label, onion addresses have a correct checksum and version, and ports are
//! never 0 (except for an [`Addr::Ip`] built directly from a `SocketAddr`).
//! Errors say what is wrong and what to write instead, because these strings
//! usually come from a user's configuration file or command line.

mod base32;
mod error;
mod i2p;
mod onion;
mod parse;
#[cfg(test)]
mod tests;
mod text;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::str::FromStr;
use std::sync::Arc;

use error::{join_host_port, shorten};
pub use error::{AddrErrorKind, AddrParseError};
use onion::validate_onion;
use parse::{classify_host, parse_addr};

/// A peer address.
///
/// ```
/// use connmgr::{Addr, AddrKind};
///
/// let ip: Addr = "203.0.113.5:8333".parse().unwrap();
/// let name: Addr = "seed.example.org:8333".parse().unwrap();
/// assert_eq!(ip.kind(), AddrKind::Ipv4);
/// assert_eq!(name.kind(), AddrKind::Dns);
/// assert!("203.0.113.5".parse::<Addr>().is_err(), "a port is required");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Addr {
    /// IPv4 or IPv6 socket address.
    Ip(SocketAddr),
    /// DNS host name (validated, lower-cased, no trailing dot) and port.
    Dns {
        /// The validated, lower-case host name without a trailing dot.
        host: Arc<str>,
        /// The port, 1-65535.
        port: u16,
    },
    /// Tor onion service v3: host is the full lower-case "<56 base32>.onion",
    /// validated including checksum and version byte 3.
    Onion {
        /// The validated, lower-case "<56 base32 characters>.onion" host.
        host: Arc<str>,
        /// The port, 1-65535.
        port: u16,
    },
    /// I2P destination: host is the lower-case "<52 base32>.b32.i2p" form
    /// (the SHA-256 of the destination, as Bitcoin's addrv2 carries it).
    /// The port may be 0: I2P's SAM 3.1 has no ports, and Bitcoin nodes
    /// announce I2P peers with port 0.
    I2p {
        /// The validated, lower-case "<52 base32 characters>.b32.i2p" host.
        host: Arc<str>,
        /// The port, 0-65535.
        port: u16,
    },
    /// CJDNS address: an IPv6 address in fc00::/8 on the CJDNS overlay,
    /// dialed over TCP like IPv6 but never through a proxy, and grouped
    /// as its own network. Written `cjdns:[fc00::1]:8333`.
    Cjdns {
        /// The address, in fc00::/8.
        ip: Ipv6Addr,
        /// The port, 1-65535.
        port: u16,
    },
    /// User-defined address type (like Go's net.Addr: a network name and an
    /// address string).
    Custom(CustomAddr),
}

/// Whether `ip` is in fc00::/8, CJDNS's range.
pub(crate) fn is_cjdns_ip(ip: Ipv6Addr) -> bool {
    ip.octets()[0] == 0xfc
}

/// A user-defined address: a network name (such as "i2p") and an address
/// string whose meaning only the user's dialer knows.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomAddr {
    network: Arc<str>,
    address: Arc<str>,
}

impl CustomAddr {
    /// Creates a custom address.
    ///
    /// The network name must be non-empty printable ASCII without whitespace
    /// or '/' (so that the "network/address" display form stays unambiguous);
    /// the address must be non-empty.
    pub fn new(network: &str, address: &str) -> Result<Self, AddrParseError> {
        let fail = |reason: String| {
            Err(AddrParseError::new(
                format!("{network}/{address}"),
                AddrErrorKind::InvalidCustom(reason),
            ))
        };
        if network.is_empty() {
            return fail(
                "the network name of a custom address is empty; give one, e.g. \"i2p\"".into(),
            );
        }
        if let Some(c) = network.chars().find(|&c| !c.is_ascii_graphic() || c == '/') {
            return fail(format!(
                "the network name {:?} of a custom address contains {c:?}; use only ASCII \
                 letters, digits and punctuation other than '/', e.g. \"i2p\"",
                shorten(network)
            ));
        }
        if address.is_empty() {
            return fail(format!(
                "the address of custom network {0:?} is empty; give the address your \
                 dialer for {0:?} understands, e.g. Addr::custom(\"i2p\", \"<name>.b32.i2p\")",
                shorten(network)
            ));
        }
        Ok(CustomAddr {
            network: network.into(),
            address: address.into(),
        })
    }

    /// The network name, e.g. "i2p".
    pub fn network(&self) -> &str {
        &self.network
    }

    /// The address string within the network.
    pub fn address(&self) -> &str {
        &self.address
    }
}

/// The family of an [`Addr`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddrKind {
    /// An IPv4 socket address.
    Ipv4,
    /// An IPv6 socket address (including IPv4-mapped ones).
    Ipv6,
    /// A DNS host name and port.
    Dns,
    /// A Tor v3 onion service and port.
    Onion,
    /// An I2P ".b32.i2p" destination and port.
    I2p,
    /// A CJDNS (fc00::/8) address and port.
    Cjdns,
    /// A user-defined address type.
    Custom,
}

impl fmt::Display for AddrKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddrKind::Ipv4 => "IPv4",
            AddrKind::Ipv6 => "IPv6",
            AddrKind::Dns => "DNS name",
            AddrKind::Onion => "onion",
            AddrKind::I2p => "I2P",
            AddrKind::Cjdns => "CJDNS",
            AddrKind::Custom => "custom",
        })
    }
}

/// The group an address belongs to for diversity rules: peers in the same
/// group are likely run or routed by the same party.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum NetGroup {
    /// The /16 of an IPv4 address (also used for IPv4-mapped IPv6).
    Ipv4([u8; 2]),
    /// The /32 of an IPv6 address.
    Ipv6([u8; 4]),
    /// Onion services by the first 4 bits of their key (16 groups): the key
    /// says nothing about who runs a service, so this only spreads choices.
    Onion(u8),
    /// I2P destinations by the first 4 bits of their hash (16 groups).
    I2p(u8),
    /// CJDNS addresses by the 4 bits after the constant fc (16 groups).
    Cjdns(u8),
    /// A DNS host name: each name is its own group, since it is not resolved.
    Dns(Arc<str>),
    /// A custom address, grouped by network and address.
    Custom(Arc<str>, Arc<str>),
}

impl fmt::Display for NetGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetGroup::Ipv4([a, b]) => write!(f, "{a}.{b}.0.0/16"),
            NetGroup::Ipv6(b) => {
                let prefix = Ipv6Addr::new(
                    u16::from_be_bytes([b[0], b[1]]),
                    u16::from_be_bytes([b[2], b[3]]),
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                );
                write!(f, "{prefix}/32")
            }
            NetGroup::Onion(bits) => write!(f, "onion:{bits:x}"),
            NetGroup::I2p(bits) => write!(f, "i2p:{bits:x}"),
            NetGroup::Cjdns(bits) => write!(f, "cjdns:{bits:x}"),
            NetGroup::Dns(host) => write!(f, "dns:{host}"),
            NetGroup::Custom(network, address) => write!(f, "custom:{network}/{address}"),
        }
    }
}

impl Addr {
    /// Creates an address from a host name and port.
    ///
    /// The name is validated and lower-cased, and one trailing dot is
    /// removed. If `host` is really an IP literal (`"192.0.2.1"`, `"::1"` or
    /// `"[::1]"`) this returns [`Addr::Ip`]; if it ends in ".onion" or
    /// ".i2p" it is validated as an onion or I2P address and this returns
    /// [`Addr::Onion`] or [`Addr::I2p`], since such names cannot be resolved
    /// through DNS. Port 0 is rejected, except for I2P.
    pub fn dns(host: &str, port: u16) -> Result<Addr, AddrParseError> {
        if port == 0 && !i2p::is_i2p_name(host) {
            return Err(port_error(host, port));
        }
        classify_host(host)
            .map(|h| h.with_port(port))
            .map_err(|kind| AddrParseError::new(host, kind))
    }

    /// Creates a Tor v3 onion service address.
    ///
    /// `host` must be "<56 base32 characters>.onion" (any case; stored
    /// lower-case); the checksum and version byte are verified. Port 0 is
    /// rejected.
    pub fn onion(host: &str, port: u16) -> Result<Addr, AddrParseError> {
        if port == 0 {
            return Err(port_error(host, port));
        }
        let host = validate_onion(host).map_err(|kind| AddrParseError::new(host, kind))?;
        Ok(Addr::Onion {
            host: host.into(),
            port,
        })
    }

    /// The onion address of a v3 service's ed25519 public key (as Bitcoin's
    /// addrv2 carries it). Port 0 is rejected.
    pub fn onion_from_key(pubkey: &[u8; 32], port: u16) -> Result<Addr, AddrParseError> {
        Addr::onion(&onion::host_from_key(pubkey), port)
    }

    /// Creates an I2P address from "<52 base32 characters>.b32.i2p" (any
    /// case; stored lower-case). Port 0 is allowed: SAM 3.1 has no ports.
    ///
    /// ```
    /// use connmgr::{Addr, AddrKind};
    ///
    /// let host = format!("{}.b32.i2p", "a".repeat(52));
    /// let addr = Addr::i2p(&host, 0).unwrap();
    /// assert_eq!(addr.kind(), AddrKind::I2p);
    /// assert_eq!(addr.to_string().parse::<Addr>().unwrap(), addr);
    /// assert!(Addr::i2p("example.i2p", 0).is_err(), "address-book names need a lookup first");
    /// ```
    pub fn i2p(host: &str, port: u16) -> Result<Addr, AddrParseError> {
        let host = i2p::validate_i2p(host).map_err(|kind| AddrParseError::new(host, kind))?;
        Ok(Addr::I2p {
            host: host.into(),
            port,
        })
    }

    /// The I2P address of a destination hash (as Bitcoin's addrv2 carries
    /// it).
    pub fn i2p_from_hash(hash: &[u8; 32], port: u16) -> Addr {
        Addr::I2p {
            host: i2p::host_from_hash(hash).into(),
            port,
        }
    }

    /// Creates a CJDNS address. `ip` must be in fc00::/8 and the port
    /// non-zero.
    ///
    /// ```
    /// use connmgr::Addr;
    ///
    /// let addr = Addr::cjdns("fc32::1".parse().unwrap(), 8333).unwrap();
    /// assert_eq!(addr.to_string(), "cjdns:[fc32::1]:8333");
    /// assert_eq!("cjdns:[fc32::1]:8333".parse::<Addr>().unwrap(), addr);
    /// assert!(Addr::cjdns("2001:db8::1".parse().unwrap(), 8333).is_err());
    /// ```
    pub fn cjdns(ip: Ipv6Addr, port: u16) -> Result<Addr, AddrParseError> {
        let text = format!("{}[{ip}]:{port}", parse::CJDNS_PREFIX);
        if port == 0 {
            return Err(AddrParseError::new(text, AddrErrorKind::InvalidPort));
        }
        if !is_cjdns_ip(ip) {
            return Err(AddrParseError::new(
                text,
                AddrErrorKind::InvalidCjdns(format!(
                    "{ip} is not a CJDNS address; CJDNS addresses are in fc00::/8, \
                     e.g. \"fc00::1\""
                )),
            ));
        }
        Ok(Addr::Cjdns { ip, port })
    }

    /// Creates a user-defined address; see [`CustomAddr::new`].
    pub fn custom(network: &str, address: &str) -> Result<Addr, AddrParseError> {
        CustomAddr::new(network, address).map(Addr::Custom)
    }

    /// The port, or `None` for a custom address.
    pub fn port(&self) -> Option<u16> {
        match self {
            Addr::Ip(sa) => Some(sa.port()),
            Addr::Dns { port, .. }
            | Addr::Onion { port, .. }
            | Addr::I2p { port, .. }
            | Addr::Cjdns { port, .. } => Some(*port),
            Addr::Custom(_) => None,
        }
    }

    /// The host: the IP address as text (IPv6 without brackets, CJDNS
    /// too), or the DNS, onion or I2P host name. `None` for a custom
    /// address.
    pub fn host(&self) -> Option<String> {
        match self {
            Addr::Ip(sa) => Some(sa.ip().to_string()),
            Addr::Cjdns { ip, .. } => Some(ip.to_string()),
            Addr::Dns { host, .. } | Addr::Onion { host, .. } | Addr::I2p { host, .. } => {
                Some(host.to_string())
            }
            Addr::Custom(_) => None,
        }
    }

    /// The socket address of an IP or CJDNS address (CJDNS is IPv6 on its
    /// own overlay, so bans by IP cover it too).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Addr::Ip(sa) => Some(*sa),
            Addr::Cjdns { ip, port } => Some(SocketAddr::new(IpAddr::V6(*ip), *port)),
            _ => None,
        }
    }

    /// The IP address of an IP or CJDNS address.
    pub fn ip(&self) -> Option<IpAddr> {
        self.socket_addr().map(|sa| sa.ip())
    }

    /// Whether this is a Tor onion service address.
    pub fn is_onion(&self) -> bool {
        matches!(self, Addr::Onion { .. })
    }

    /// The ed25519 public key of an onion address, or the destination hash
    /// of an I2P address: the bytes Bitcoin's addrv2 carries for them.
    pub fn overlay_key(&self) -> Option<[u8; 32]> {
        match self {
            Addr::Onion { host, .. } => onion::key_of(host),
            Addr::I2p { host, .. } => i2p::hash_of(host),
            _ => None,
        }
    }

    /// The address family. IPv4-mapped IPv6 addresses are reported as
    /// [`AddrKind::Ipv6`], as they are stored.
    pub fn kind(&self) -> AddrKind {
        match self {
            Addr::Ip(SocketAddr::V4(_)) => AddrKind::Ipv4,
            Addr::Ip(SocketAddr::V6(_)) => AddrKind::Ipv6,
            Addr::Dns { .. } => AddrKind::Dns,
            Addr::Onion { .. } => AddrKind::Onion,
            Addr::I2p { .. } => AddrKind::I2p,
            Addr::Cjdns { .. } => AddrKind::Cjdns,
            Addr::Custom(_) => AddrKind::Custom,
        }
    }

    /// The diversity group of this address, as Bitcoin Core groups them:
    /// the /16 for IPv4 and for IPv6 that embeds an IPv4 address
    /// (IPv4-mapped, 6to4, Teredo, NAT64), so one host cannot look like two
    /// networks; the /32 for other IPv6; 16 groups each for onion, I2P and
    /// CJDNS by the first 4 bits of their key; the name itself for DNS
    /// names (unresolved) and custom addresses.
    pub fn netgroup(&self) -> NetGroup {
        match self {
            Addr::Ip(sa) => match sa.ip() {
                IpAddr::V4(v4) => ipv4_group(v4),
                IpAddr::V6(v6) => match embedded_ipv4(v6) {
                    Some(v4) => ipv4_group(v4),
                    None => {
                        let o = v6.octets();
                        NetGroup::Ipv6([o[0], o[1], o[2], o[3]])
                    }
                },
            },
            Addr::Onion { .. } | Addr::I2p { .. } => {
                let key = self.overlay_key().unwrap_or_default();
                match self {
                    Addr::Onion { .. } => NetGroup::Onion(key[0] >> 4),
                    _ => NetGroup::I2p(key[0] >> 4),
                }
            }
            // The first byte is the constant fc; the random bits follow.
            Addr::Cjdns { ip, .. } => NetGroup::Cjdns(ip.octets()[1] >> 4),
            Addr::Dns { host, .. } => NetGroup::Dns(host.clone()),
            Addr::Custom(c) => NetGroup::Custom(c.network.clone(), c.address.clone()),
        }
    }
}

/// The error for a port of 0 where a port is needed.
pub(crate) fn port_error(host: &str, port: u16) -> AddrParseError {
    AddrParseError::new(join_host_port(host, port), AddrErrorKind::InvalidPort)
}

fn ipv4_group(ip: Ipv4Addr) -> NetGroup {
    let o = ip.octets();
    NetGroup::Ipv4([o[0], o[1]])
}

/// The IPv4 address an IPv6 address carries: IPv4-mapped (::ffff:0:0/96),
/// 6to4 (2002::/16, bytes 2-5), Teredo (2001:0::/32, the last 4 bytes
/// inverted) and the NAT64 well-known prefix (64:ff9b::/96).
fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = v6.octets();
    let last4 = |o: [u8; 16]| Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    match (o[0], o[1], o[2], o[3]) {
        (0x20, 0x02, ..) => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        (0x20, 0x01, 0x00, 0x00) => Some(Ipv4Addr::from(!u32::from(last4(o)))),
        (0x00, 0x64, 0xff, 0x9b) if o[4..12].iter().all(|&b| b == 0) => Some(last4(o)),
        _ => None,
    }
}

impl From<SocketAddr> for Addr {
    /// Wraps a socket address. The IPv6 flow label is cleared because it
    /// does not identify a peer and would otherwise make equal peers compare
    /// unequal.
    fn from(sa: SocketAddr) -> Addr {
        match sa {
            SocketAddr::V6(v6) if v6.flowinfo() != 0 => Addr::Ip(SocketAddr::V6(
                SocketAddrV6::new(*v6.ip(), v6.port(), 0, v6.scope_id()),
            )),
            sa => Addr::Ip(sa),
        }
    }
}

impl From<(IpAddr, u16)> for Addr {
    fn from((ip, port): (IpAddr, u16)) -> Addr {
        Addr::Ip(SocketAddr::new(ip, port))
    }
}

impl Addr {
    /// Calls `f` with the text `Display` writes, with no allocation for an
    /// IPv4 socket address (the text of most peer ids).
    pub(crate) fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match self {
            Addr::Ip(SocketAddr::V4(sa)) => f(text::v4_text(sa, &mut [0; text::MAX_V4_TEXT])),
            _ => f(&self.to_string()),
        }
    }
}

impl fmt::Display for Addr {
    /// Writes `192.0.2.1:8333`, `[2001:db8::1]:8333`, `host:port`,
    /// `<56 chars>.onion:port`, `<52 chars>.b32.i2p:port`,
    /// `cjdns:[fc00::1]:port`, or `network/address` for custom addresses.
    /// All but the custom form parse back into an equal `Addr`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Ip(SocketAddr::V4(sa)) => {
                f.write_str(text::v4_text(sa, &mut [0; text::MAX_V4_TEXT]))
            }
            Addr::Ip(sa) => write!(f, "{sa}"),
            Addr::Cjdns { ip, port } => write!(f, "{}[{ip}]:{port}", parse::CJDNS_PREFIX),
            Addr::Dns { host, port } | Addr::Onion { host, port } | Addr::I2p { host, port } => {
                write!(f, "{host}:{port}")
            }
            Addr::Custom(c) => write!(f, "{}/{}", c.network, c.address),
        }
    }
}

impl FromStr for Addr {
    type Err = AddrParseError;

    /// Parses `192.0.2.1:8333`, `[2001:db8::1]:8333` (a numeric zone such as
    /// `[fe80::1%2]:8333` is allowed), `example.com:8333`,
    /// `<56 chars>.onion:8333`, `<52 chars>.b32.i2p:0` or
    /// `cjdns:[fc00::1]:8333`. Custom addresses cannot be parsed: a '/' is
    /// rejected so that typos like `192.0.2.0/24` are not silently accepted;
    /// use [`Addr::custom`] for them.
    fn from_str(s: &str) -> Result<Addr, AddrParseError> {
        parse_addr(s).map_err(|kind| AddrParseError::new(s, kind))
    }
}
