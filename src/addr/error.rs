//! Address errors and the helpers their messages share.

use std::borrow::Cow;
use std::fmt;
use std::net::Ipv6Addr;

use super::parse::{parse_port, MAX_HOST_LEN};

/// Error messages shorten inputs beyond this many characters so that a huge
/// string cannot flood a log.
const MAX_SHOWN: usize = 120;
/// Port used in the examples of error messages.
pub(super) const EXAMPLE_PORT: &str = "8333";

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
    /// The host ends in ".i2p" but is not a valid ".b32.i2p" address.
    InvalidI2p(String),
    /// The text starts with "cjdns:" but is not a valid CJDNS address.
    InvalidCjdns(String),
    /// The network or address of a custom address is not acceptable.
    InvalidCustom(String),
}

impl AddrParseError {
    pub(super) fn new(input: impl Into<String>, kind: AddrErrorKind) -> Self {
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
    /// [`Addr::dns`](super::Addr::dns) and [`Addr::onion`](super::Addr::onion) ("host:port" if the port was the
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
            | AddrErrorKind::InvalidI2p(reason)
            | AddrErrorKind::InvalidCjdns(reason)
            | AddrErrorKind::InvalidCustom(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for AddrParseError {}

/// Formats a host and port the way `Display` would, for error inputs.
pub(super) fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// "host:8333", or a generic example when the host is empty or too long to
/// be worth repeating.
pub(super) fn example_with_port(host: &str) -> String {
    if host.is_empty() || host.chars().count() > MAX_SHOWN {
        format!("example.com:{EXAMPLE_PORT}")
    } else {
        format!("{host}:{EXAMPLE_PORT}")
    }
}

/// Cuts a string to `MAX_SHOWN` characters (at a char boundary) for messages.
pub(super) fn shorten(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(MAX_SHOWN) {
        Some((cut, _)) => Cow::Owned(format!("{}…", &s[..cut])),
        None => Cow::Borrowed(s),
    }
}

/// Builds the message for an input with several ':' and no brackets,
/// suggesting the bracketed form when the input is recognizably IPv6.
pub(super) fn unbracketed_hint(input: &str) -> String {
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
