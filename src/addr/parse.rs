//! Parsing address text: IP literals, host names, onion and I2P names and
//! the "cjdns:" form, with messages that say what to write instead.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use super::error::{shorten, EXAMPLE_PORT};
use super::i2p::{is_i2p_name, validate_i2p};
use super::onion::{strip_onion_suffix, validate_onion};
use super::{is_cjdns_ip, Addr, AddrErrorKind};

/// Longest host name DNS can carry, not counting an optional trailing dot.
pub(super) const MAX_HOST_LEN: usize = 253;
/// Longest single label (dot-separated part) of a host name.
const MAX_LABEL_LEN: usize = 63;
/// The prefix that marks a CJDNS address in text.
pub(super) const CJDNS_PREFIX: &str = "cjdns:";

/// A validated host before its port is attached, so that host errors can be
/// reported before port errors.
pub(super) enum Host {
    Ip(IpAddr),
    V6Scoped(Ipv6Addr, u32),
    Dns(String),
    Onion(String),
    I2p(String),
}

impl Host {
    pub(super) fn with_port(self, port: u16) -> Addr {
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
            Host::I2p(host) => Addr::I2p {
                host: host.into(),
                port,
            },
        }
    }
}

pub(super) fn parse_addr(s: &str) -> Result<Addr, AddrErrorKind> {
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
    if let Some(rest) = strip_prefix_ignore_case(s, CJDNS_PREFIX) {
        return parse_cjdns(rest);
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
    let port = match host {
        // I2P's SAM 3.1 has no ports; Bitcoin writes them as 0.
        Host::I2p(_) if port == "0" => 0,
        _ => parse_port(port)?,
    };
    Ok(host.with_port(port))
}

/// Parses what follows "cjdns:": a bracketed fc00::/8 address and a port.
fn parse_cjdns(rest: &str) -> Result<Addr, AddrErrorKind> {
    let invalid = |reason: String| Err(AddrErrorKind::InvalidCjdns(reason));
    let Some(bracketed) = rest.strip_prefix('[') else {
        return invalid(
            "after \"cjdns:\" write the IPv6 address in brackets and the port, e.g. \
             \"cjdns:[fc00::1]:8333\""
                .into(),
        );
    };
    match parse_bracketed(bracketed)? {
        Addr::Ip(SocketAddr::V6(v6)) if v6.scope_id() != 0 => {
            invalid("a CJDNS address takes no IPv6 zone; remove the \"%...\" part".into())
        }
        Addr::Ip(SocketAddr::V6(v6)) if is_cjdns_ip(*v6.ip()) => Ok(Addr::Cjdns {
            ip: *v6.ip(),
            port: v6.port(),
        }),
        other => invalid(format!(
            "{} is not a CJDNS address; CJDNS addresses are in fc00::/8, e.g. \
             \"cjdns:[fc00::1]:8333\"",
            other.host().unwrap_or_default()
        )),
    }
}

/// Returns the part of `s` after `prefix` (ASCII, any case).
fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.as_bytes().get(..prefix.len())?;
    // A match means byte `prefix.len()` follows an ASCII byte: a boundary.
    head.eq_ignore_ascii_case(prefix.as_bytes())
        .then(|| &s[prefix.len()..])
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

pub(super) fn parse_port(port: &str) -> Result<u16, AddrErrorKind> {
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
pub(super) fn classify_host(host: &str) -> Result<Host, AddrErrorKind> {
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
    if is_i2p_name(bare) {
        return validate_i2p(bare).map(Host::I2p);
    }
    validate_dns(host).map(Host::Dns)
}

/// Validates a DNS host name and returns it lower-cased, without a trailing dot.
pub(super) fn validate_dns(host: &str) -> Result<String, AddrErrorKind> {
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
