//! Peer addresses: IP socket addresses, DNS host names, Tor v3 onion services
//! and user-defined address types.
//!
//! Everything that builds an [`Addr`] from text validates it, so an `Addr`
//! that exists is well formed: host names are lower-cased and checked label by
//! label, onion addresses have a correct checksum and version, and ports are
//! never 0 (except for an [`Addr::Ip`] built directly from a `SocketAddr`).
//! Errors say what is wrong and what to write instead, because these strings
//! usually come from a user's configuration file or command line.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::str::FromStr;
use std::sync::Arc;

use sha3::{Digest, Sha3_256};

/// Longest host name DNS can carry, not counting an optional trailing dot.
const MAX_HOST_LEN: usize = 253;
/// Longest single label (dot-separated part) of a host name.
const MAX_LABEL_LEN: usize = 63;
/// Number of base32 characters before ".onion" in a v3 onion address.
const ONION_V3_LEN: usize = 56;
/// Number of base32 characters in an obsolete v2 onion address.
const ONION_V2_LEN: usize = 16;
/// Decoded size of a v3 onion address: public key, checksum, version.
const ONION_V3_BYTES: usize = 35;
/// The only onion service version Tor still supports.
const ONION_VERSION: u8 = 3;
/// Error messages shorten inputs beyond this many characters so that a huge
/// string cannot flood a log.
const MAX_SHOWN: usize = 120;
/// Port used in the examples of error messages.
const EXAMPLE_PORT: &str = "8333";

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
    /// User-defined address type (like Go's net.Addr: a network name and an
    /// address string).
    Custom(CustomAddr),
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
    /// An onion host: each onion service is its own group, since nothing
    /// about its location is known.
    Onion(Arc<str>),
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
            NetGroup::Onion(host) => write!(f, "onion:{host}"),
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
    /// `"[::1]"`) this returns [`Addr::Ip`]; if it ends in ".onion" it is
    /// validated as an onion address and this returns [`Addr::Onion`], since
    /// such names cannot be resolved through DNS. Port 0 is rejected.
    pub fn dns(host: &str, port: u16) -> Result<Addr, AddrParseError> {
        if port == 0 {
            return Err(AddrParseError::new(
                join_host_port(host, port),
                AddrErrorKind::InvalidPort,
            ));
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
            return Err(AddrParseError::new(
                join_host_port(host, port),
                AddrErrorKind::InvalidPort,
            ));
        }
        let host = validate_onion(host).map_err(|kind| AddrParseError::new(host, kind))?;
        Ok(Addr::Onion {
            host: host.into(),
            port,
        })
    }

    /// Creates a user-defined address; see [`CustomAddr::new`].
    pub fn custom(network: &str, address: &str) -> Result<Addr, AddrParseError> {
        CustomAddr::new(network, address).map(Addr::Custom)
    }

    /// The port, or `None` for a custom address.
    pub fn port(&self) -> Option<u16> {
        match self {
            Addr::Ip(sa) => Some(sa.port()),
            Addr::Dns { port, .. } | Addr::Onion { port, .. } => Some(*port),
            Addr::Custom(_) => None,
        }
    }

    /// The host: the IP address as text (IPv6 without brackets), or the DNS
    /// or onion host name. `None` for a custom address.
    pub fn host(&self) -> Option<String> {
        match self {
            Addr::Ip(sa) => Some(sa.ip().to_string()),
            Addr::Dns { host, .. } | Addr::Onion { host, .. } => Some(host.to_string()),
            Addr::Custom(_) => None,
        }
    }

    /// The socket address, if this is an IP address.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Addr::Ip(sa) => Some(*sa),
            _ => None,
        }
    }

    /// The IP address, if this is an IP address.
    pub fn ip(&self) -> Option<IpAddr> {
        self.socket_addr().map(|sa| sa.ip())
    }

    /// Whether this is a Tor onion service address.
    pub fn is_onion(&self) -> bool {
        matches!(self, Addr::Onion { .. })
    }

    /// The address family. IPv4-mapped IPv6 addresses are reported as
    /// [`AddrKind::Ipv6`], as they are stored.
    pub fn kind(&self) -> AddrKind {
        match self {
            Addr::Ip(SocketAddr::V4(_)) => AddrKind::Ipv4,
            Addr::Ip(SocketAddr::V6(_)) => AddrKind::Ipv6,
            Addr::Dns { .. } => AddrKind::Dns,
            Addr::Onion { .. } => AddrKind::Onion,
            Addr::Custom(_) => AddrKind::Custom,
        }
    }

    /// The diversity group of this address: the /16 for IPv4 (including
    /// IPv4-mapped IPv6, so one host cannot look like two networks), the /32
    /// for other IPv6, and the host itself for onion, DNS and custom
    /// addresses.
    pub fn netgroup(&self) -> NetGroup {
        match self {
            Addr::Ip(sa) => match sa.ip() {
                IpAddr::V4(v4) => ipv4_group(v4),
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => ipv4_group(v4),
                    None => {
                        let o = v6.octets();
                        NetGroup::Ipv6([o[0], o[1], o[2], o[3]])
                    }
                },
            },
            Addr::Onion { host, .. } => NetGroup::Onion(host.clone()),
            Addr::Dns { host, .. } => NetGroup::Dns(host.clone()),
            Addr::Custom(c) => NetGroup::Custom(c.network.clone(), c.address.clone()),
        }
    }
}

fn ipv4_group(ip: Ipv4Addr) -> NetGroup {
    let o = ip.octets();
    NetGroup::Ipv4([o[0], o[1]])
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

impl fmt::Display for Addr {
    /// Writes `192.0.2.1:8333`, `[2001:db8::1]:8333`, `host:port`,
    /// `<56 chars>.onion:port`, or `network/address` for custom addresses.
    /// All but the custom form parse back into an equal `Addr`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Ip(sa) => write!(f, "{sa}"),
            Addr::Dns { host, port } | Addr::Onion { host, port } => write!(f, "{host}:{port}"),
            Addr::Custom(c) => write!(f, "{}/{}", c.network, c.address),
        }
    }
}

impl FromStr for Addr {
    type Err = AddrParseError;

    /// Parses `192.0.2.1:8333`, `[2001:db8::1]:8333` (a numeric zone such as
    /// `[fe80::1%2]:8333` is allowed), `example.com:8333` or
    /// `<56 chars>.onion:8333`. Custom addresses cannot be parsed: a '/' is
    /// rejected so that typos like `192.0.2.0/24` are not silently accepted;
    /// use [`Addr::custom`] for them.
    fn from_str(s: &str) -> Result<Addr, AddrParseError> {
        parse_addr(s).map_err(|kind| AddrParseError::new(s, kind))
    }
}

/// Why an address string or component was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrParseError {
    input: String,
    kind: AddrErrorKind,
}

/// The kind of problem an [`AddrParseError`] reports. The `String` payloads
/// are complete human-readable explanations, including what to write instead.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddrErrorKind {
    /// The input is empty or only whitespace.
    Empty,
    /// There is no port (no ':' or nothing after it).
    MissingPort,
    /// The port is not a decimal number from 1 to 65535.
    InvalidPort,
    /// An IPv6 address (or something with several ':') without brackets.
    UnbracketedIpv6,
    /// The host is not a valid host name or bracketed IPv6 address; also
    /// used for surrounding whitespace and URLs.
    InvalidHostName(String),
    /// The host name is longer than 253 characters; holds its length.
    HostNameTooLong(usize),
    /// The host ends in ".onion" but is not a valid v3 onion address.
    InvalidOnion(String),
    /// The network or address of a custom address is not acceptable.
    InvalidCustom(String),
}

impl AddrParseError {
    fn new(input: impl Into<String>, kind: AddrErrorKind) -> Self {
        AddrParseError {
            input: input.into(),
            kind,
        }
    }

    /// What was wrong.
    pub fn kind(&self) -> &AddrErrorKind {
        &self.kind
    }

    /// The rejected input: the whole string for parsing, the host for
    /// [`Addr::dns`] and [`Addr::onion`] ("host:port" if the port was the
    /// problem), and "network/address" for custom addresses.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for AddrParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid address {:?}: ", shorten(&self.input))?;
        match &self.kind {
            AddrErrorKind::Empty => f.write_str(
                "it is empty; write host:port, e.g. \"192.0.2.1:8333\" or \"example.com:8333\"",
            ),
            AddrErrorKind::MissingPort => {
                let host = self.input.strip_suffix(':').unwrap_or(&self.input);
                write!(
                    f,
                    "missing port; add one, e.g. {:?}",
                    example_with_port(host)
                )
            }
            AddrErrorKind::InvalidPort => {
                let (host, port) = self.input.rsplit_once(':').unwrap_or(("", &self.input));
                write!(
                    f,
                    "invalid port {:?}; the port must be 1-65535, e.g. {:?}",
                    shorten(port),
                    example_with_port(host)
                )
            }
            AddrErrorKind::UnbracketedIpv6 => f.write_str(&unbracketed_hint(&self.input)),
            AddrErrorKind::HostNameTooLong(len) => write!(
                f,
                "the host name is {len} characters long, over the limit of {MAX_HOST_LEN}; \
                 use a shorter name or the IP address"
            ),
            AddrErrorKind::InvalidHostName(reason)
            | AddrErrorKind::InvalidOnion(reason)
            | AddrErrorKind::InvalidCustom(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for AddrParseError {}

/// A validated host before its port is attached, so that host errors can be
/// reported before port errors.
enum Host {
    Ip(IpAddr),
    V6Scoped(Ipv6Addr, u32),
    Dns(String),
    Onion(String),
}

impl Host {
    fn with_port(self, port: u16) -> Addr {
        match self {
            Host::Ip(ip) => Addr::from((ip, port)),
            Host::V6Scoped(ip, scope) => {
                Addr::Ip(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope)))
            }
            Host::Dns(host) => Addr::Dns {
                host: host.into(),
                port,
            },
            Host::Onion(host) => Addr::Onion {
                host: host.into(),
                port,
            },
        }
    }
}

fn parse_addr(s: &str) -> Result<Addr, AddrErrorKind> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(AddrErrorKind::Empty);
    }
    if trimmed.len() != s.len() {
        // Suggest the trimmed form only when it is actually valid.
        let reason = if parse_addr(trimmed).is_ok() {
            format!("leading or trailing whitespace is not allowed; remove it: {trimmed:?}")
        } else {
            "leading or trailing whitespace is not allowed; remove it".to_string()
        };
        return Err(AddrErrorKind::InvalidHostName(reason));
    }
    if let Some(rest) = s.strip_prefix('[') {
        return parse_bracketed(rest);
    }
    if let Some((_, rest)) = s.split_once("://") {
        // "tcp://host:port" would otherwise be reported as an unbracketed IPv6.
        let host_port = rest.split('/').next().unwrap_or_default();
        let reason = if parse_addr(host_port).is_ok() {
            format!("this looks like a URL; write just the host and port: {host_port:?}")
        } else {
            "this looks like a URL; write just the host and port, e.g. \"example.com:8333\""
                .to_string()
        };
        return Err(AddrErrorKind::InvalidHostName(reason));
    }
    if s.bytes().filter(|&b| b == b':').count() > 1 {
        return Err(AddrErrorKind::UnbracketedIpv6);
    }
    let (host, port) = s.rsplit_once(':').ok_or(AddrErrorKind::MissingPort)?;
    let host = classify_host(host)?;
    Ok(host.with_port(parse_port(port)?))
}

/// Parses what follows a leading '[': "v6]:port" or "v6%zone]:port".
fn parse_bracketed(rest: &str) -> Result<Addr, AddrErrorKind> {
    let Some((inner, after)) = rest.split_once(']') else {
        return Err(AddrErrorKind::InvalidHostName(
            "the closing ']' is missing; write IPv6 addresses in brackets, e.g. \"[2001:db8::1]:8333\""
                .into(),
        ));
    };
    let (ip_text, zone) = match inner.split_once('%') {
        Some((ip, zone)) => (ip, Some(zone)),
        None => (inner, None),
    };
    let ip = match ip_text.parse::<Ipv6Addr>() {
        Ok(ip) => ip,
        Err(_) if ip_text.parse::<Ipv4Addr>().is_ok() => {
            return Err(AddrErrorKind::InvalidHostName(format!(
                "brackets are only for IPv6 addresses; write IPv4 addresses without them, \
                 e.g. {:?}",
                format!("{ip_text}:{EXAMPLE_PORT}")
            )));
        }
        Err(_) => {
            return Err(AddrErrorKind::InvalidHostName(format!(
                "{:?} inside the brackets is not an IPv6 address; brackets are only for IPv6 \
                 addresses such as \"[2001:db8::1]:8333\", write host names without them, \
                 e.g. \"example.com:8333\"",
                shorten(inner)
            )));
        }
    };
    let scope_id = match zone {
        None => 0,
        Some(zone) => match zone.parse::<u32>() {
            Ok(id) if zone.bytes().all(|b| b.is_ascii_digit()) => id,
            _ => {
                return Err(AddrErrorKind::InvalidHostName(format!(
                    "IPv6 zone {:?} is not supported; use the numeric interface index, \
                     e.g. \"[fe80::1%2]:8333\"",
                    shorten(zone)
                )));
            }
        },
    };
    let port = match after.strip_prefix(':') {
        Some(port) => parse_port(port)?,
        None if after.is_empty() => return Err(AddrErrorKind::MissingPort),
        None => {
            return Err(AddrErrorKind::InvalidHostName(format!(
                "unexpected {:?} after ']'; the port follows a ':', e.g. \"[2001:db8::1]:8333\"",
                shorten(after)
            )));
        }
    };
    Ok(Host::V6Scoped(ip, scope_id).with_port(port))
}

fn parse_port(port: &str) -> Result<u16, AddrErrorKind> {
    if port.is_empty() {
        return Err(AddrErrorKind::MissingPort);
    }
    // u16::from_str accepts a leading '+', which is not a port.
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddrErrorKind::InvalidPort);
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(AddrErrorKind::InvalidPort),
        Ok(p) => Ok(p),
    }
}

/// Validates an unbracketed host: an IP literal, an onion address or a DNS
/// name. Bracketed IPv6 is accepted too, for [`Addr::dns`].
fn classify_host(host: &str) -> Result<Host, AddrErrorKind> {
    if host.is_empty() {
        return Err(AddrErrorKind::InvalidHostName(
            "the host is missing; write it before the port, e.g. \"example.com:8333\"".into(),
        ));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        if let Ok(v6) = inner.parse::<Ipv6Addr>() {
            return Ok(Host::Ip(IpAddr::V6(v6)));
        }
    }
    let bare = host.strip_suffix('.').unwrap_or(host);
    if strip_onion_suffix(bare).is_some() {
        return validate_onion(bare).map(Host::Onion);
    }
    validate_dns(host).map(Host::Dns)
}

/// Returns the part before a case-insensitive ".onion" suffix.
fn strip_onion_suffix(host: &str) -> Option<&str> {
    const SUFFIX: &[u8] = b".onion";
    let cut = host.len().checked_sub(SUFFIX.len())?;
    // Comparing bytes avoids slicing inside a multibyte character; if they
    // match, `cut` is at an ASCII '.', hence a char boundary.
    if host.as_bytes()[cut..].eq_ignore_ascii_case(SUFFIX) {
        Some(&host[..cut])
    } else {
        None
    }
}

/// Validates a DNS host name and returns it lower-cased, without a trailing dot.
fn validate_dns(host: &str) -> Result<String, AddrErrorKind> {
    let invalid = |reason: String| Err(AddrErrorKind::InvalidHostName(reason));
    if host.is_empty() {
        return invalid("the host name is empty; write one, e.g. \"example.com\"".into());
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() {
        return invalid("\".\" alone is not a host name; write one, e.g. \"example.com\"".into());
    }
    if name.len() > MAX_HOST_LEN {
        return Err(AddrErrorKind::HostNameTooLong(name.len()));
    }
    let mut labels = 0;
    let mut all_numeric = true;
    for label in name.split('.') {
        labels += 1;
        if label.is_empty() {
            return invalid(format!(
                "the host name {name:?} has an empty part (a leading dot or two dots in a row); \
                 remove the extra dot, e.g. \"example.com\""
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return invalid(bad_host_char(c));
        }
        if label.starts_with('-') || label.ends_with('-') {
            let fixed = match label.trim_matches('-') {
                "" => "a",
                trimmed => trimmed,
            };
            return invalid(format!(
                "the part {:?} of the host name {} with '-'; each dot-separated part must \
                 begin and end with a letter, digit or '_', e.g. {:?}",
                shorten(label),
                if label.starts_with('-') {
                    "starts"
                } else {
                    "ends"
                },
                shorten(fixed)
            ));
        }
        if label.len() > MAX_LABEL_LEN {
            return invalid(format!(
                "the part {:?} of the host name is {} characters long; each dot-separated part \
                 may have at most {MAX_LABEL_LEN}, so use a shorter name or the IP address",
                shorten(label),
                label.len()
            ));
        }
        all_numeric &= label.bytes().all(|b| b.is_ascii_digit());
    }
    if all_numeric {
        return invalid(numeric_host_reason(name, labels));
    }
    Ok(name.to_ascii_lowercase())
}

/// Explains an all-numeric dotted host, which is meant as an IPv4 address
/// but is not a valid one (resolvers would treat it inconsistently).
fn numeric_host_reason(name: &str, parts: usize) -> String {
    if name.parse::<Ipv4Addr>().is_ok() {
        // Only reachable with a trailing dot, which `validate_dns` removed.
        return format!("an IPv4 address cannot end with a dot; remove it: {name:?}");
    }
    match parts {
        1 => format!(
            "the host {name:?} is only digits; write a host name such as \"example.com\" or a \
             full IPv4 address such as \"192.0.2.1\""
        ),
        2 | 3 => format!(
            "{name:?} looks like an incomplete IPv4 address ({parts} of 4 parts); write all \
             four parts, e.g. \"192.0.2.1\""
        ),
        4 => format!(
            "{name:?} looks like an IPv4 address, but each of the four parts must be a number \
             0-255 without leading zeros, e.g. \"192.0.2.1\""
        ),
        _ => format!(
            "{:?} looks like an IPv4 address with {parts} parts; an IPv4 address has exactly \
             four, e.g. \"192.0.2.1\"",
            shorten(name)
        ),
    }
}

fn bad_host_char(c: char) -> String {
    match c {
        ':' => "':' is not allowed in a host name; pass the port separately, \
                e.g. Addr::dns(\"example.com\", 8333), or parse \"example.com:8333\""
            .into(),
        '[' | ']' => "brackets are only for IPv6 addresses, e.g. \"[2001:db8::1]:8333\"; \
                      write host names without them, e.g. \"example.com:8333\""
            .into(),
        '/' => "'/' is not allowed in a host name; write just host:port, e.g. \
                \"example.com:8333\" (for a custom address type use Addr::custom)"
            .into(),
        '%' => "'%' (an IPv6 zone) is only allowed in brackets with a numeric index, \
                e.g. \"[fe80::1%2]:8333\""
            .into(),
        c if c.is_whitespace() => format!(
            "whitespace ({c:?}) is not allowed in a host name; remove it, e.g. \"example.com\""
        ),
        c if !c.is_ascii() => format!(
            "the character {c:?} is not allowed in a host name; write internationalized names \
             in their ASCII (punycode) form, e.g. \"xn--bcher-kva.example\""
        ),
        c => format!(
            "the character {c:?} is not allowed in a host name; use only letters a-z, digits \
             0-9, '-' and '_', e.g. \"example.com\""
        ),
    }
}

/// Validates "<56 base32>.onion" (any case, optional trailing dot) and
/// returns it lower-cased without the trailing dot.
fn validate_onion(host: &str) -> Result<String, AddrErrorKind> {
    let invalid = |reason: String| Err(AddrErrorKind::InvalidOnion(reason));
    let host = host.strip_suffix('.').unwrap_or(host);
    let Some(service) = strip_onion_suffix(host) else {
        let hint = if host.chars().count() == ONION_V3_LEN {
            format!("add it: \"{}.onion\"", host.to_lowercase())
        } else {
            "write e.g. \"<56 base32 characters>.onion\"".to_string()
        };
        return invalid(format!(
            "the \".onion\" suffix of the onion address is missing; {hint}"
        ));
    };
    if service.is_empty() {
        return invalid(
            "there is nothing before \".onion\"; write the service's 56-character v3 address, \
             e.g. \"<56 base32 characters>.onion\""
                .into(),
        );
    }
    if let Some((_, last)) = service.rsplit_once('.') {
        let hint = if last.chars().count() == ONION_V3_LEN {
            format!(": \"{}.onion\"", last.to_lowercase())
        } else {
            ", e.g. \"<56 base32 characters>.onion\"".to_string()
        };
        return invalid(format!(
            "subdomains of onion services (like \"www.<service>.onion\") are not supported; \
             use only the service address{hint}"
        ));
    }
    match service.chars().count() {
        ONION_V3_LEN => {}
        ONION_V2_LEN => {
            return invalid(
                "this is a 16-character v2 onion address; v2 addresses are no longer \
                 supported by Tor, so use the service's 56-character v3 address"
                    .into(),
            );
        }
        n => {
            return invalid(format!(
                "a v3 onion address has 56 base32 characters before \".onion\", this one has \
                 {n}; check for missing or extra characters"
            ));
        }
    }
    let bytes = decode_base32(service).map_err(|(pos, c)| {
        let digit_hint = if matches!(c, '0' | '1' | '8' | '9') {
            " (the digits 0, 1, 8 and 9 never appear in them)"
        } else {
            ""
        };
        AddrErrorKind::InvalidOnion(format!(
            "the character {c:?} at position {pos} is not base32; onion addresses use only the \
             letters a-z and the digits 2-7{digit_hint}, so check for a typo"
        ))
    })?;
    let (pubkey, rest) = bytes.split_at(32);
    let (checksum, version) = (&rest[..2], rest[2]);
    if version != ONION_VERSION {
        return invalid(format!(
            "the version byte is {version}, but only version 3 onion addresses are supported; \
             v3 addresses end in 'd', so check the last characters for a typo"
        ));
    }
    if checksum != &onion_checksum(pubkey, version)[..] {
        return invalid(
            "the checksum does not match, so the address has a typo; copy it again from \
             its source"
                .into(),
        );
    }
    Ok(format!("{}.onion", service.to_ascii_lowercase()))
}

/// First two bytes of SHA3-256(".onion checksum" || pubkey || version), as
/// specified for v3 onion addresses in Tor's rend-spec-v3.
fn onion_checksum(pubkey: &[u8], version: u8) -> [u8; 2] {
    let mut hasher = Sha3_256::new();
    hasher.update(b".onion checksum");
    hasher.update(pubkey);
    hasher.update([version]);
    let digest = hasher.finalize();
    [digest[0], digest[1]]
}

/// Decodes exactly 56 RFC 4648 base32 characters (either case, no padding)
/// into 35 bytes. On a bad character returns its 1-based position and itself.
fn decode_base32(text: &str) -> Result<[u8; ONION_V3_BYTES], (usize, char)> {
    let mut out = [0u8; ONION_V3_BYTES];
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut len = 0;
    for (i, c) in text.chars().enumerate() {
        let value = match c {
            'a'..='z' => c as u32 - 'a' as u32,
            'A'..='Z' => c as u32 - 'A' as u32,
            '2'..='7' => c as u32 - '2' as u32 + 26,
            _ => return Err((i + 1, c)),
        };
        acc = (acc << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            // Callers pass exactly 56 characters (280 bits = 35 bytes); the
            // bound check keeps any other length from panicking.
            if let Some(slot) = out.get_mut(len) {
                *slot = (acc >> bits) as u8;
            }
            len += 1;
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// Formats a host and port the way `Display` would, for error inputs.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// "host:8333", or a generic example when the host is empty or too long to
/// be worth repeating.
fn example_with_port(host: &str) -> String {
    if host.is_empty() || host.chars().count() > MAX_SHOWN {
        format!("example.com:{EXAMPLE_PORT}")
    } else {
        format!("{host}:{EXAMPLE_PORT}")
    }
}

/// Cuts a string to `MAX_SHOWN` characters (at a char boundary) for messages.
fn shorten(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(MAX_SHOWN) {
        Some((cut, _)) => Cow::Owned(format!("{}…", &s[..cut])),
        None => Cow::Borrowed(s),
    }
}

/// Builds the message for an input with several ':' and no brackets,
/// suggesting the bracketed form when the input is recognizably IPv6.
fn unbracketed_hint(input: &str) -> String {
    let split = input
        .rsplit_once(':')
        .filter(|(ip, port)| ip.parse::<Ipv6Addr>().is_ok() && parse_port(port).is_ok());
    match (input.parse::<Ipv6Addr>().is_ok(), split) {
        (true, Some((ip, port))) => format!(
            "IPv6 addresses need brackets: write \"[{ip}]:{port}\" if {port} is the port, \
             or \"[{input}]:{EXAMPLE_PORT}\" if it is part of the address"
        ),
        (true, None) => {
            format!("IPv6 addresses need brackets and a port, e.g. \"[{input}]:{EXAMPLE_PORT}\"")
        }
        (false, Some((ip, port))) => {
            format!("IPv6 addresses need brackets, e.g. \"[{ip}]:{port}\"")
        }
        (false, None) => "IPv6 addresses need brackets, e.g. \"[2001:db8::1]:8333\"; \
                          anything else may contain only one ':', before the port"
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DDG: &str = "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion";

    fn parse(s: &str) -> Result<Addr, AddrParseError> {
        s.parse()
    }

    fn err_kind(s: &str) -> AddrErrorKind {
        match parse(s) {
            Ok(a) => panic!("{s:?} parsed as {a:?}, expected an error"),
            Err(e) => e.kind().clone(),
        }
    }

    fn err_msg(s: &str) -> String {
        parse(s).expect_err(s).to_string()
    }

    /// Test-only RFC 4648 base32 encoder (lower case, no padding).
    fn base32(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
        let mut out = String::new();
        let (mut acc, mut bits) = (0u32, 0);
        for &b in bytes {
            acc = (acc << 8) | u32::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
            }
        }
        if bits > 0 {
            out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
        }
        out
    }

    /// Builds a v3 onion host from a public key, computing the checksum
    /// independently of the code under test.
    fn make_onion_with(pubkey: [u8; 32], version: u8) -> String {
        let mut h = Sha3_256::new();
        h.update(b".onion checksum");
        h.update(pubkey);
        h.update([version]);
        let d = h.finalize();
        let mut raw = pubkey.to_vec();
        raw.extend_from_slice(&[d[0], d[1], version]);
        format!("{}.onion", base32(&raw))
    }

    fn make_onion(seed: u8) -> String {
        let mut key = [0u8; 32];
        for (i, b) in key.iter_mut().enumerate() {
            *b = seed.wrapping_mul(31).wrapping_add(i as u8 * 7);
        }
        make_onion_with(key, 3)
    }

    /// Replaces the character at `idx` (ASCII input) with a different base32 one.
    fn flip(host: &str, idx: usize) -> String {
        let mut b = host.as_bytes().to_vec();
        b[idx] = if b[idx] == b'a' { b'b' } else { b'a' };
        String::from_utf8(b).unwrap()
    }

    // ---- parsing of every form ----

    #[test]
    fn parses_ipv4() {
        let a = parse("192.0.2.1:8333").unwrap();
        assert_eq!(a, Addr::Ip("192.0.2.1:8333".parse().unwrap()));
        assert_eq!(a.kind(), AddrKind::Ipv4);
        assert_eq!(a.port(), Some(8333));
        assert_eq!(a.host().as_deref(), Some("192.0.2.1"));
        assert_eq!(a.ip(), Some("192.0.2.1".parse().unwrap()));
        assert!(!a.is_onion());
    }

    #[test]
    fn parses_ipv6_and_scope() {
        let a = parse("[2001:DB8::1]:18444").unwrap();
        assert_eq!(a.kind(), AddrKind::Ipv6);
        assert_eq!(a.host().as_deref(), Some("2001:db8::1"));
        assert_eq!(a.to_string(), "[2001:db8::1]:18444");
        let s = parse("[fe80::1%3]:8333").unwrap();
        match s.socket_addr() {
            Some(SocketAddr::V6(v6)) => assert_eq!(v6.scope_id(), 3),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.to_string(), "[fe80::1%3]:8333");
        assert_eq!(parse("[::1]:1").unwrap().port(), Some(1));
        assert_eq!(parse("[::1]:65535").unwrap().port(), Some(65535));
    }

    #[test]
    fn parses_dns_lowercased_without_trailing_dot() {
        let a = parse("Seed.Example.COM.:8333").unwrap();
        assert_eq!(
            a,
            Addr::Dns {
                host: "seed.example.com".into(),
                port: 8333
            }
        );
        assert_eq!(a.kind(), AddrKind::Dns);
        assert_eq!(a.host().as_deref(), Some("seed.example.com"));
        assert_eq!(a.socket_addr(), None);
        assert_eq!(a.ip(), None);
        assert!(parse("localhost:1").is_ok());
        assert!(parse("_srv.my_host-1.example:80").is_ok());
        assert!(parse("a1-b2.c3:80").is_ok());
        assert!(parse("123.example:80").is_ok());
        assert!(parse("1.2.3.com:80").is_ok());
    }

    #[test]
    fn parses_onion() {
        let host = make_onion(1);
        let a = parse(&format!("{host}:9050")).unwrap();
        assert!(a.is_onion());
        assert_eq!(a.kind(), AddrKind::Onion);
        assert_eq!(a.host().as_deref(), Some(host.as_str()));
        assert_eq!(a.port(), Some(9050));
        assert_eq!(Addr::onion(&host, 9050).unwrap(), a);
        // A trailing dot is accepted like for other host names.
        assert_eq!(parse(&format!("{host}.:9050")).unwrap(), a);
    }

    #[test]
    fn display_parse_round_trip() {
        let onion = make_onion(2);
        let inputs = [
            "1.2.3.4:8333".to_string(),
            "0.0.0.0:1".to_string(),
            "255.255.255.255:65535".to_string(),
            "[::1]:8333".to_string(),
            "[2001:db8::1]:8333".to_string(),
            "[::ffff:1.2.3.4]:8333".to_string(),
            "[fe80::1%7]:8333".to_string(),
            "example.com:8333".to_string(),
            "xn--bcher-kva.example:1".to_string(),
            format!("{onion}:9050"),
            format!("{DDG}:443"),
        ];
        for s in &inputs {
            let a = parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(&a.to_string(), s);
            assert_eq!(parse(&a.to_string()).unwrap(), a);
        }
        // Non-canonical inputs round-trip through their canonical form.
        for s in ["EXAMPLE.com.:80", "[2001:0DB8:0::1]:80"] {
            let a = parse(s).unwrap();
            assert_eq!(parse(&a.to_string()).unwrap(), a);
        }
    }

    #[test]
    fn from_impls_and_flowinfo() {
        let sa: SocketAddr = "[2001:db8::1]:8333".parse().unwrap();
        assert_eq!(Addr::from(sa), Addr::Ip(sa));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(Addr::from((ip, 5)).to_string(), "10.0.0.1:5");
        let with_flow = SocketAddr::V6(SocketAddrV6::new(
            "2001:db8::1".parse().unwrap(),
            8333,
            77,
            0,
        ));
        assert_eq!(Addr::from(with_flow), Addr::Ip(sa));
    }

    // ---- constructors ----

    #[test]
    fn dns_constructor() {
        assert_eq!(
            Addr::dns("Example.ORG", 80).unwrap(),
            Addr::Dns {
                host: "example.org".into(),
                port: 80
            }
        );
        // IP literals become Addr::Ip.
        assert_eq!(
            Addr::dns("1.2.3.4", 80).unwrap(),
            parse("1.2.3.4:80").unwrap()
        );
        assert_eq!(Addr::dns("::1", 80).unwrap(), parse("[::1]:80").unwrap());
        assert_eq!(Addr::dns("[::1]", 80).unwrap(), parse("[::1]:80").unwrap());
        // Onion names can't go through DNS; they are validated as onions.
        assert!(Addr::dns(DDG, 80).unwrap().is_onion());
        let e = Addr::dns("example.com", 0).unwrap_err();
        assert_eq!(e.kind(), &AddrErrorKind::InvalidPort);
        assert_eq!(e.input(), "example.com:0");
        assert!(e.to_string().contains("\"example.com:8333\""), "{e}");
        let e = Addr::dns("example.com:8333", 1).unwrap_err();
        assert!(
            matches!(e.kind(), AddrErrorKind::InvalidHostName(r) if r.contains("port separately"))
        );
        assert_eq!(e.input(), "example.com:8333");
        let e = Addr::dns("[1.2.3.4]", 1).unwrap_err();
        assert!(e.to_string().contains("brackets are only for IPv6"), "{e}");
        assert!(matches!(
            Addr::dns("", 1).unwrap_err().kind(),
            AddrErrorKind::InvalidHostName(_)
        ));
    }

    #[test]
    fn onion_constructor() {
        let host = make_onion(3);
        assert!(Addr::onion(&host, 1).is_ok());
        let e = Addr::onion(&host, 0).unwrap_err();
        assert_eq!(e.kind(), &AddrErrorKind::InvalidPort);
        // The suffix is required, and the message shows the fixed form.
        let bare = host.strip_suffix(".onion").unwrap();
        let e = Addr::onion(bare, 80).unwrap_err();
        assert!(matches!(e.kind(), AddrErrorKind::InvalidOnion(_)));
        assert!(e.to_string().contains(&host), "{e}");
        assert!(matches!(
            Addr::onion("example.com", 80).unwrap_err().kind(),
            AddrErrorKind::InvalidOnion(_)
        ));
    }

    #[test]
    fn custom_addresses() {
        let a = Addr::custom("i2p", "abc.b32.i2p").unwrap();
        assert_eq!(a.kind(), AddrKind::Custom);
        assert_eq!(a.to_string(), "i2p/abc.b32.i2p");
        assert_eq!(a.port(), None);
        assert_eq!(a.host(), None);
        assert_eq!(a.ip(), None);
        assert_eq!(a.socket_addr(), None);
        let Addr::Custom(c) = &a else { panic!() };
        assert_eq!(c.network(), "i2p");
        assert_eq!(c.address(), "abc.b32.i2p");
        assert!(CustomAddr::new("unix", "/tmp/x y/sock").is_ok());
        for (net, addr) in [
            ("", "x"),
            ("my net", "x"),
            ("a/b", "x"),
            ("ünï", "x"),
            ("tab\t", "x"),
            ("i2p", ""),
        ] {
            let e = CustomAddr::new(net, addr).unwrap_err();
            assert!(
                matches!(e.kind(), AddrErrorKind::InvalidCustom(_)),
                "{net:?}"
            );
            assert_eq!(e.input(), format!("{net}/{addr}"));
            assert!(
                e.to_string().contains("e.g.") || e.to_string().contains("give"),
                "{e}"
            );
        }
        // The display form is not parseable: '/' is rejected with a pointer to Addr::custom.
        let e = parse("i2p/abc:1").unwrap_err();
        assert!(e.to_string().contains("Addr::custom"), "{e}");
    }

    // ---- errors ----

    #[test]
    fn empty_and_whitespace() {
        assert_eq!(err_kind(""), AddrErrorKind::Empty);
        assert_eq!(err_kind("  \t"), AddrErrorKind::Empty);
        assert!(err_msg("").contains("e.g."));
        for s in [" 1.2.3.4:8333", "1.2.3.4:8333 ", "\nexample.com:1"] {
            let e = parse(s).unwrap_err();
            assert!(
                matches!(e.kind(), AddrErrorKind::InvalidHostName(r) if r.contains("whitespace")),
                "{s:?}"
            );
            assert!(e.to_string().contains("remove it: \""), "{e}");
        }
        // No suggestion when trimming would not help.
        assert!(!err_msg(" foo ").contains("remove it: "));
    }

    #[test]
    fn missing_port() {
        assert_eq!(err_kind("foo"), AddrErrorKind::MissingPort);
        assert_eq!(
            err_msg("foo"),
            "invalid address \"foo\": missing port; add one, e.g. \"foo:8333\""
        );
        assert_eq!(err_kind("1.2.3.4"), AddrErrorKind::MissingPort);
        assert_eq!(err_kind("foo:"), AddrErrorKind::MissingPort);
        assert!(err_msg("foo:").ends_with("e.g. \"foo:8333\""));
        assert_eq!(err_kind("[::1]"), AddrErrorKind::MissingPort);
        assert!(err_msg("[::1]").ends_with("e.g. \"[::1]:8333\""));
        assert_eq!(err_kind("[::1]:"), AddrErrorKind::MissingPort);
    }

    #[test]
    fn invalid_port() {
        for s in [
            "foo:0",
            "foo:65536",
            "foo:99999999999999999999",
            "foo:abc",
            "foo:+80",
            "foo:-1",
            "foo:8 0",
            "foo:８０",
            "[::1]:0",
            "[::1]:x",
            "1.2.3.4:1e3",
        ] {
            assert_eq!(err_kind(s), AddrErrorKind::InvalidPort, "{s}");
            assert!(err_msg(s).contains("port must be 1-65535"), "{s}");
        }
        assert!(err_msg("foo:0").ends_with("e.g. \"foo:8333\""));
        assert!(err_msg("[::1]:0").ends_with("e.g. \"[::1]:8333\""));
        assert_eq!(parse("foo:08333").unwrap().port(), Some(8333));
    }

    #[test]
    fn unbracketed_ipv6() {
        assert_eq!(err_kind("::1"), AddrErrorKind::UnbracketedIpv6);
        assert!(err_msg("::1").contains("\"[::1]:8333\""));
        let m = err_msg("2001:db8::1:8333");
        assert!(
            m.contains("\"[2001:db8::1]:8333\"") && m.contains("\"[2001:db8::1:8333]:8333\""),
            "{m}"
        );
        let m = err_msg("fe80::1%eth0:80");
        assert!(
            m.contains("IPv6 addresses need brackets, e.g. \"[2001:db8::1]:8333\""),
            "{m}"
        );
        assert_eq!(err_kind("a:b:c"), AddrErrorKind::UnbracketedIpv6);
    }

    #[test]
    fn bracket_errors() {
        for s in [
            "[1.2.3.4]:80",
            "[example.com]:80",
            "[::1:80",
            "[::1]80",
            "[fe80::1%eth0]:80",
            "[fe80::1%]:80",
            "[fe80::1%+1]:80",
        ] {
            let e = parse(s).unwrap_err();
            assert!(
                matches!(e.kind(), AddrErrorKind::InvalidHostName(_)),
                "{s}: {e:?}"
            );
            assert!(e.to_string().contains("e.g."), "{e}");
        }
        assert!(err_msg("[1.2.3.4]:80").contains("\"1.2.3.4:8333\""));
    }

    #[test]
    fn url_rejected_with_suggestion() {
        let m = err_msg("tcp://example.com:8333/x");
        assert!(
            m.contains("URL") && m.contains("\"example.com:8333\""),
            "{m}"
        );
        assert!(err_msg("http://").contains("URL"));
    }

    #[test]
    fn host_name_errors() {
        let cases = [
            (":80", "missing"),
            ("-foo.com:80", "starts with '-'"),
            ("foo-.com:80", "ends with '-'"),
            ("foo..com:80", "empty part"),
            (".foo.com:80", "empty part"),
            ("..:80", "empty part"),
            (".:80", "alone"),
            ("foo!.com:80", "'!'"),
            ("foo bar:80", "whitespace"),
            ("bücher.de:80", "punycode"),
            ("a/b:80", "'/'"),
            ("foo%1:80", "zone"),
            ("1.2.3:80", "looks like an incomplete IPv4 address"),
            ("1.2:80", "incomplete IPv4"),
            ("12345:80", "only digits"),
            ("256.1.1.1:80", "0-255"),
            ("01.2.3.4:80", "leading zeros"),
            ("1.2.3.4.5:80", "exactly"),
            ("1.2.3.4.:80", "remove it: \"1.2.3.4\""),
        ];
        for (s, needle) in cases {
            let e = parse(s).unwrap_err();
            let AddrErrorKind::InvalidHostName(reason) = e.kind() else {
                panic!("{s}: {e:?}")
            };
            assert!(reason.contains(needle), "{s}: {reason}");
            assert!(
                ["e.g.", "remove", "write", "use"]
                    .iter()
                    .any(|w| reason.contains(w)),
                "{s}: no suggestion in {reason}"
            );
        }
        let long_label = format!("{}.com:80", "a".repeat(64));
        assert!(
            matches!(err_kind(&long_label), AddrErrorKind::InvalidHostName(r) if r.contains("at most 63"))
        );
        assert!(parse(&format!("{}.com:80", "a".repeat(63))).is_ok());
    }

    #[test]
    fn host_name_length_limit() {
        // 63+1+63+1+63+1+61 = 253 characters: the maximum.
        let ok = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(61));
        assert_eq!(ok.len(), 253);
        assert!(parse(&format!("{ok}:80")).is_ok());
        // With a trailing dot it is still 253 characters of name.
        assert!(parse(&format!("{ok}.:80")).is_ok());
        let long = format!("{ok}c");
        assert_eq!(long.len(), 254);
        assert_eq!(
            err_kind(&format!("{long}:80")),
            AddrErrorKind::HostNameTooLong(254)
        );
        let m = err_msg(&format!("{long}:80"));
        assert!(
            m.contains("254") && m.contains("253") && m.contains("shorter"),
            "{m}"
        );
        assert!(m.contains('…'), "long inputs are shortened: {m}");
        assert_eq!(
            Addr::dns(&long, 80).unwrap_err().kind(),
            &AddrErrorKind::HostNameTooLong(254)
        );
    }

    // ---- onion validation ----

    #[test]
    fn real_onion_validates() {
        let a = parse(&format!("{DDG}:443")).unwrap();
        assert_eq!(a.host().as_deref(), Some(DDG));
        for seed in 0..20 {
            assert!(Addr::onion(&make_onion(seed), 1).is_ok(), "seed {seed}");
        }
        assert!(Addr::onion(&make_onion_with([0; 32], 3), 1).is_ok());
        assert!(Addr::onion(&make_onion_with([0xff; 32], 3), 1).is_ok());
    }

    #[test]
    fn uppercase_onion_is_lowercased() {
        let host = make_onion(4);
        let upper = host.to_uppercase();
        let a = parse(&format!("{upper}:80")).unwrap();
        assert_eq!(a.host().as_deref(), Some(host.as_str()));
        let mixed = format!("{}.OnIoN", &DDG[..56].to_uppercase());
        assert_eq!(
            Addr::onion(&mixed, 80).unwrap().host().as_deref(),
            Some(DDG)
        );
    }

    #[test]
    fn flipped_character_breaks_checksum() {
        let host = make_onion(5);
        // Characters 0..=50 only touch the public key and checksum bytes.
        for idx in [0, 10, 30, 51] {
            let bad = flip(&host, idx);
            match Addr::onion(&bad, 80).unwrap_err().kind() {
                AddrErrorKind::InvalidOnion(r) => assert!(r.contains("checksum"), "{idx}: {r}"),
                k => panic!("{k:?}"),
            }
        }
        let ddg_bad = flip(DDG, 3);
        assert!(err_msg(&format!("{ddg_bad}:1")).contains("checksum"));
    }

    #[test]
    fn wrong_version_rejected() {
        for version in [0, 2, 4, 255] {
            let host = make_onion_with([9; 32], version);
            let e = Addr::onion(&host, 80).unwrap_err();
            let AddrErrorKind::InvalidOnion(r) = e.kind() else {
                panic!()
            };
            assert!(r.contains(&format!("version byte is {version}")), "{r}");
        }
        // Mistyping the last character shows up as a version problem.
        let host = make_onion(6);
        let last = host.len() - ".onion".len() - 1;
        let m = Addr::onion(&flip(&host, last), 1).unwrap_err().to_string();
        assert!(m.contains("version"), "{m}");
    }

    #[test]
    fn onion_shape_errors() {
        let onion = |s: &str| match parse(s).unwrap_err().kind() {
            AddrErrorKind::InvalidOnion(r) => r.clone(),
            k => panic!("{s}: {k:?}"),
        };
        // v2
        let r = onion("expyuzz4wqqyqhjn.onion:80");
        assert!(r.contains("v2") && r.contains("no longer supported"), "{r}");
        // wrong lengths
        let r = onion(&format!("{}.onion:80", "a".repeat(55)));
        assert!(r.contains("has 55"), "{r}");
        assert!(onion(&format!("{}.onion:80", "a".repeat(57))).contains("has 57"));
        assert!(onion(".onion:80").contains("nothing before"));
        assert!(onion("ONION.onion:80").contains("has 5"));
        // bad characters
        let good = make_onion(7);
        let with_digit = format!("0{}", &good[1..]);
        let r = onion(&format!("{with_digit}:80"));
        assert!(r.contains("'0' at position 1") && r.contains("2-7"), "{r}");
        let with_multibyte = format!("é{}", &good[1..]);
        assert_eq!(with_multibyte.chars().count(), good.chars().count());
        assert!(onion(&format!("{with_multibyte}:80")).contains("'é' at position 1"));
        // subdomains
        let r = onion(&format!("www.{good}:80"));
        assert!(
            r.contains("subdomain") && r.contains(&format!("\"{good}\"")),
            "{r}"
        );
        assert!(onion("a.b.onion:80").contains("subdomain"));
    }

    // ---- netgroups ----

    #[test]
    fn netgroups() {
        let g = |s: &str| parse(s).unwrap().netgroup();
        assert_eq!(g("10.1.2.3:1"), NetGroup::Ipv4([10, 1]));
        assert_eq!(g("10.1.2.3:1"), g("10.1.99.4:2"));
        assert_ne!(g("10.1.2.3:1"), g("10.2.2.3:1"));
        assert_eq!(g("10.1.2.3:1").to_string(), "10.1.0.0/16");
        // IPv4-mapped IPv6 shares the IPv4 group.
        assert_eq!(g("[::ffff:10.1.2.3]:1"), NetGroup::Ipv4([10, 1]));
        assert_eq!(
            g("[2001:db8:1:2::1]:1"),
            NetGroup::Ipv6([0x20, 0x01, 0x0d, 0xb8])
        );
        assert_eq!(g("[2001:db8:1:2::1]:1"), g("[2001:db8:ffff::9]:1"));
        assert_eq!(g("[2001:db8::1]:1").to_string(), "2001:db8::/32");
        assert_eq!(g("[::1]:1").to_string(), "::/32");
        let onion = make_onion(8);
        assert_eq!(
            g(&format!("{onion}:1")),
            NetGroup::Onion(onion.as_str().into())
        );
        assert_ne!(g(&format!("{onion}:1")), g(&format!("{DDG}:1")));
        assert_eq!(
            g(&format!("{onion}:1")).to_string(),
            format!("onion:{onion}")
        );
        assert_eq!(g("Seed.Example:1"), NetGroup::Dns("seed.example".into()));
        assert_eq!(g("seed.example:1").to_string(), "dns:seed.example");
        let c = Addr::custom("i2p", "xyz").unwrap().netgroup();
        assert_eq!(c, NetGroup::Custom("i2p".into(), "xyz".into()));
        assert_eq!(c.to_string(), "custom:i2p/xyz");
    }

    #[test]
    fn kind_display() {
        let names: Vec<String> = [
            AddrKind::Ipv4,
            AddrKind::Ipv6,
            AddrKind::Dns,
            AddrKind::Onion,
            AddrKind::Custom,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(names, ["IPv4", "IPv6", "DNS name", "onion", "custom"]);
    }

    #[test]
    fn error_is_std_error() {
        let e: Box<dyn std::error::Error> = Box::new(parse("x").unwrap_err());
        assert!(e.to_string().starts_with("invalid address \"x\": "));
        assert_eq!(parse("x").unwrap_err().input(), "x");
    }

    // ---- robustness ----

    #[test]
    fn multibyte_input_does_not_panic() {
        let inputs = [
            "ü:80",
            "üüü",
            "[ü]:80",
            "[::1%ü]:80",
            "[::1]ü",
            "例え.jp:80",
            "€.onion:80",
            "a€onion:1",
            "€onion:1",
            "é.onion",
            "x.oni€n:1",
            "\u{0}:1",
            "::€",
            "€:€:€",
            "a\u{301}.com:1",
            "🦀🦀🦀🦀🦀🦀.onion:1",
            "[🦀]:1",
            "🦀://🦀/:1",
            "ÿ.:1",
            "€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€.onion:1",
        ];
        for s in inputs {
            if let Err(e) = parse(s) {
                let _ = e.to_string();
            }
            for h in [s, &s[..s.char_indices().last().map_or(0, |(i, _)| i)]] {
                let _ = Addr::dns(h, 1).map_err(|e| e.to_string());
                let _ = Addr::onion(h, 1).map_err(|e| e.to_string());
                let _ = Addr::custom(h, h).map_err(|e| e.to_string());
            }
        }
        let huge = "€".repeat(10_000);
        let m = err_msg(&format!("{huge}:1"));
        assert!(
            m.chars().count() < 400,
            "message not shortened: {} chars",
            m.chars().count()
        );
    }

    /// Tiny xorshift64 so the fuzz test needs no `rand` dependency and is
    /// reproducible.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn fuzz_random_strings_never_panic() {
        const PIECES: &[&str] = &[
            ":",
            "[",
            "]",
            ".",
            "%",
            "/",
            "://",
            "-",
            "_",
            " ",
            "0",
            "1",
            "9",
            "255",
            "65535",
            "8333",
            "::",
            "ffff",
            "a",
            "Z",
            "x",
            ".onion",
            ".ONION",
            "é",
            "€",
            "🦀",
            "\u{0}",
            "\t",
            "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad",
            "www",
            "7",
        ];
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let seeds = [
            "1.2.3.4:8333".to_string(),
            "[2001:db8::1]:8333".to_string(),
            "[fe80::1%2]:1".to_string(),
            "example.com:80".to_string(),
            format!("{DDG}:443"),
            make_onion(9) + ":9050",
        ];
        let mut parsed = 0;
        for round in 0..6000 {
            let s = if round % 3 == 0 {
                // A valid address with a few random character edits.
                let mut chars: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
                for _ in 0..rng.below(3) {
                    let piece = PIECES[rng.below(PIECES.len())]
                        .chars()
                        .next()
                        .unwrap_or('a');
                    let at = rng.below(chars.len() + 1);
                    match rng.below(3) {
                        0 => chars.insert(at, piece),
                        1 if at < chars.len() => {
                            chars.remove(at);
                        }
                        _ if at < chars.len() => chars[at] = piece,
                        _ => {}
                    }
                }
                chars.into_iter().collect()
            } else if round % 3 == 1 {
                // Arbitrary bytes, made valid UTF-8.
                let len = rng.below(40);
                let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                // Structured pieces, more likely to reach deep code paths.
                (0..rng.below(12))
                    .map(|_| PIECES[rng.below(PIECES.len())])
                    .collect()
            };
            match s.parse::<Addr>() {
                Ok(a) => {
                    parsed += 1;
                    let shown = a.to_string();
                    assert_eq!(shown.parse::<Addr>().as_ref(), Ok(&a), "{s:?}");
                    let _ = (a.netgroup().to_string(), a.host(), a.kind());
                    assert!(a.port().is_some_and(|p| p != 0));
                }
                Err(e) => {
                    assert_eq!(e.input(), s);
                    assert!(e.to_string().starts_with("invalid address "));
                }
            }
            let _ = Addr::dns(&s, 1).map_err(|e| e.to_string());
            let _ = Addr::onion(&s, 1).map_err(|e| e.to_string());
            let _ = Addr::custom(&s, &s).map_err(|e| e.to_string());
        }
        // About a sixth parse; make sure the round-trip check really ran.
        assert!(
            parsed > 300,
            "only {parsed} fuzz inputs were valid addresses"
        );
    }
}
