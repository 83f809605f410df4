//! Bans of IP addresses and CIDR subnets that expire, and a small text file
//! format to keep them across restarts.
//!
//! Expiry times are [`Instant`]s so that a wall-clock jump cannot lift or
//! extend a ban while the process runs; only the file stores wall-clock
//! (Unix) times, converted at the edges by [`BanList::save`] and
//! [`BanList::load`].

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::addr::Addr;

/// First line of every ban list file; names the format and its version.
pub const BAN_FILE_HEADER: &str = "# connmgr ban list v1";

/// Prefix shared by all versions of the header, to tell "unknown version"
/// apart from "not a ban list at all" in error messages.
const HEADER_STEM: &str = "# connmgr ban list v";

/// Longest ban a file may restore. Longer (or absurd) expiry times are cut to
/// this so that adding them to an `Instant` cannot overflow.
pub const MAX_BAN_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// Largest ban list file that will be read; protects memory against a wrong
/// path pointing at some huge file.
pub const MAX_BAN_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Error messages shorten inputs beyond this many characters so that a huge
/// string cannot flood a log.
const MAX_SHOWN: usize = 80;

/// Examples quoted by subnet parse errors.
const SUBNET_EXAMPLES: &str = "e.g. \"192.0.2.7\", \"192.0.2.0/24\" or \"2001:db8::/32\"";

/// Number of bits in an address of the given family.
fn max_prefix(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// Clears the host bits of an IPv4 address below `prefix` (at most 32).
fn mask_v4(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    Ipv4Addr::from(u32::from(ip) & mask)
}

/// Clears the host bits of an IPv6 address below `prefix` (at most 128).
fn mask_v6(ip: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    Ipv6Addr::from(u128::from(ip) & mask)
}

/// Cuts `s` to [`MAX_SHOWN`] characters for use in an error message.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(MAX_SHOWN) {
        Some((end, _)) => format!("{}...", &s[..end]),
        None => s.to_string(),
    }
}

/// An IPv4 or IPv6 network: an address with its host bits cleared and a
/// prefix length. A single host is a subnet with the full prefix length.
///
/// Subnets are normalised on creation: host bits are cleared, and an
/// IPv4-mapped IPv6 subnet (`::ffff:a.b.c.d/96+n`) becomes the IPv4 subnet
/// `a.b.c.d/n`, so that the same network has a single representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    network: IpAddr,
    prefix: u8,
}

impl Subnet {
    /// Creates the subnet `ip/prefix`, clearing host bits.
    ///
    /// Fails if `prefix` exceeds 32 for IPv4 or 128 for IPv6.
    pub fn new(ip: IpAddr, prefix: u8) -> Result<Self, SubnetParseError> {
        let max = max_prefix(ip);
        if prefix > max {
            let input = format!("{ip}/{prefix}");
            return Err(SubnetParseError::PrefixTooLong { input, max });
        }
        Ok(Self::normalised(ip, prefix))
    }

    /// The subnet holding exactly `ip`.
    pub fn host(ip: IpAddr) -> Self {
        Self::normalised(ip, max_prefix(ip))
    }

    /// Builds the canonical form; `prefix` must already be in range.
    fn normalised(ip: IpAddr, prefix: u8) -> Self {
        match ip {
            IpAddr::V4(v4) => Subnet {
                network: IpAddr::V4(mask_v4(v4, prefix)),
                prefix,
            },
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => Self::normalised(IpAddr::V4(v4), prefix - 96),
                _ => Subnet {
                    network: IpAddr::V6(mask_v6(v6, prefix)),
                    prefix,
                },
            },
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether this subnet is a single address (/32 or /128).
    pub fn is_host(&self) -> bool {
        self.prefix == max_prefix(self.network)
    }

    /// Whether `ip` lies in this subnet.
    ///
    /// An IPv4-mapped IPv6 address is treated as the IPv4 address it maps,
    /// so `::ffff:192.0.2.1` is in `192.0.2.0/24`; conversely an IPv4 address
    /// is in an IPv6 subnet that covers its mapped form (such as `::/0`).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_v4(ip, self.prefix) == net,
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
            (IpAddr::V6(net), IpAddr::V4(ip)) => mask_v6(ip.to_ipv6_mapped(), self.prefix) == net,
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask_v6(ip, self.prefix) == net,
        }
    }
}

impl From<IpAddr> for Subnet {
    /// The single-host subnet of the address.
    fn from(ip: IpAddr) -> Self {
        Subnet::host(ip)
    }
}

impl fmt::Display for Subnet {
    /// Hosts print as a bare address, wider subnets as `network/prefix`;
    /// both forms parse back to the same subnet.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_host() {
            write!(f, "{}", self.network)
        } else {
            write!(f, "{}/{}", self.network, self.prefix)
        }
    }
}

impl FromStr for Subnet {
    type Err = SubnetParseError;

    /// Parses `"192.0.2.7"`, `"192.0.2.0/24"`, `"2001:db8::/32"` or `"::1"`;
    /// surrounding whitespace is ignored and host bits are cleared.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.is_empty() {
            return Err(SubnetParseError::Empty);
        }
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let ip: IpAddr = addr_text
            .parse()
            .map_err(|_| SubnetParseError::InvalidAddress {
                input: shorten(text),
            })?;
        let prefix = match prefix_text {
            Some(p) => parse_prefix(p, text, max_prefix(ip))?,
            None => max_prefix(ip),
        };
        Ok(Subnet::normalised(ip, prefix))
    }
}

/// Parses the prefix length after '/', which must be plain decimal digits
/// no larger than `max`. `whole` is the full input, for error messages.
fn parse_prefix(p: &str, whole: &str, max: u8) -> Result<u8, SubnetParseError> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SubnetParseError::InvalidPrefix {
            input: shorten(whole),
        });
    }
    // Overlong digit strings fail to parse; they are too long either way.
    match p.parse::<u8>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(SubnetParseError::PrefixTooLong {
            input: shorten(whole),
            max,
        }),
    }
}

/// Why a text could not be read as a [`Subnet`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubnetParseError {
    /// The text was empty or only whitespace.
    Empty,
    /// The part before '/' is not an IPv4 or IPv6 address.
    InvalidAddress {
        /// The rejected text (shortened if very long).
        input: String,
    },
    /// The part after '/' is not a decimal number.
    InvalidPrefix {
        /// The rejected text (shortened if very long).
        input: String,
    },
    /// The prefix length is longer than the address.
    PrefixTooLong {
        /// The rejected text (shortened if very long).
        input: String,
        /// The largest allowed prefix length: 32 or 128.
        max: u8,
    },
}

impl fmt::Display for SubnetParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubnetParseError::Empty => write!(
                f,
                "the subnet is empty; give an IP address or a CIDR subnet, {SUBNET_EXAMPLES}"
            ),
            SubnetParseError::InvalidAddress { input } => write!(
                f,
                "invalid subnet {input:?}: the part before any '/' is not an IPv4 or IPv6 \
                 address; write {SUBNET_EXAMPLES}"
            ),
            SubnetParseError::InvalidPrefix { input } => write!(
                f,
                "invalid subnet {input:?}: the prefix length after '/' must be a decimal \
                 number of bits; write {SUBNET_EXAMPLES}"
            ),
            SubnetParseError::PrefixTooLong { input, max } => write!(
                f,
                "invalid subnet {input:?}: the prefix length must be at most {max}, the \
                 number of bits in the address; write {SUBNET_EXAMPLES}"
            ),
        }
    }
}

impl StdError for SubnetParseError {}

/// One ban as reported by [`BanList::bans`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct BanEntry {
    /// The banned address or network.
    pub subnet: Subnet,
    /// The ban applies while the current time is before this instant.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub until: Instant,
    /// `until` on the wall clock, in entries the manager hands out
    /// (`Handle::bans`); `None` where no clock reading is at hand, as in a
    /// bare [`BanList`].
    pub until_wall: Option<SystemTime>,
    /// Why the ban was imposed, for logs and operators.
    pub reason: String,
}

impl BanEntry {
    /// Whether the ban is in force at `now`.
    pub fn in_force(&self, now: Instant) -> bool {
        in_force(self.until, now)
    }
}

/// The one expiry rule: a ban holds while `now` is before its end.
fn in_force(until: Instant, now: Instant) -> bool {
    now < until
}

/// Expiry and reason of one ban, stored under its subnet.
#[derive(Clone, Debug)]
struct Ban {
    until: Instant,
    reason: String,
}

impl Ban {
    /// Whether the ban is in force at `now`.
    fn active(&self, now: Instant) -> bool {
        in_force(self.until, now)
    }

    /// Applies a new ban of the same subnet: the later expiry wins, along
    /// with its reason, so a ban is never shortened.
    fn extend(&mut self, until: Instant, reason: String) {
        if until > self.until {
            self.until = until;
            self.reason = reason;
        }
    }

    /// The public form of this ban.
    fn entry(&self, subnet: Subnet) -> BanEntry {
        BanEntry {
            subnet,
            until: self.until,
            until_wall: None,
            reason: self.reason.clone(),
        }
    }
}

/// A set of banned addresses and subnets, each with an expiry time and a
/// reason.
///
/// Single hosts live in a hash map and wider subnets in a short list, so
/// [`is_banned`](Self::is_banned) costs one hash lookup plus a scan of the
/// (usually empty) subnet list. A ban is in force while `now < until`.
/// Expired bans stop matching at once but stay in memory until
/// [`sweep`](Self::sweep). The list is plain data; share it behind a lock.
#[derive(Clone, Default)]
pub struct BanList {
    hosts: HashMap<IpAddr, Ban>,
    nets: Vec<(Subnet, Ban)>,
}

impl fmt::Debug for BanList {
    /// Every ban, expired or not, in subnet order: the same list always
    /// prints the same, whatever order its map keeps.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts = self.hosts.iter().map(|(ip, b)| b.entry(Subnet::host(*ip)));
        let nets = self.nets.iter().map(|(s, b)| b.entry(*s));
        let mut all: Vec<BanEntry> = hosts.chain(nets).collect();
        all.sort_by_key(|e| e.subnet);
        f.debug_list().entries(all).finish()
    }
}

impl BanList {
    /// Creates an empty ban list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bans `subnet` until `until` and returns the expiry now in force.
    ///
    /// If the subnet is already banned, the ban is extended when `until` is
    /// later (taking the new reason) and left as it is otherwise.
    pub fn ban(&mut self, subnet: Subnet, until: Instant, reason: String) -> Instant {
        if subnet.is_host() {
            return match self.hosts.entry(subnet.network()) {
                Entry::Occupied(mut slot) => {
                    slot.get_mut().extend(until, reason);
                    slot.get().until
                }
                Entry::Vacant(slot) => slot.insert(Ban { until, reason }).until,
            };
        }
        if let Some((_, ban)) = self.nets.iter_mut().find(|(s, _)| *s == subnet) {
            ban.extend(until, reason);
            return ban.until;
        }
        self.nets.push((subnet, Ban { until, reason }));
        until
    }

    /// Lifts the ban of exactly `subnet` (not of subnets inside or around
    /// it); returns whether there was one, expired or not.
    pub fn unban(&mut self, subnet: &Subnet) -> bool {
        if subnet.is_host() {
            return self.hosts.remove(&subnet.network()).is_some();
        }
        let before = self.nets.len();
        self.nets.retain(|(s, _)| s != subnet);
        self.nets.len() != before
    }

    /// Whether `ip` is covered by a ban in force at `now`. IPv4-mapped IPv6
    /// addresses are checked as the IPv4 address they carry.
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        let ip = ip.to_canonical();
        // Skipping the lookup when no host is banned saves hashing.
        let host_hit = !self.hosts.is_empty() && self.hosts.get(&ip).is_some_and(|b| b.active(now));
        host_hit
            || self
                .nets
                .iter()
                .any(|(s, b)| b.active(now) && s.contains(ip))
    }

    /// Whether `addr` is banned at `now`; addresses without an IP (host
    /// names, onion services) are never banned by this list.
    pub fn is_addr_banned(&self, addr: &Addr, now: Instant) -> bool {
        addr.ip().is_some_and(|ip| self.is_banned(ip, now))
    }

    /// The ban in force at `now` that covers `addr`'s IP, if any.
    pub fn ban_for_addr(&self, addr: &Addr, now: Instant) -> Option<BanEntry> {
        self.ban_for(addr.ip()?, now)
    }

    /// The ban in force at `now` that covers `ip` and lasts longest, if any;
    /// useful to tell a peer or a log why it was refused.
    pub fn ban_for(&self, ip: IpAddr, now: Instant) -> Option<BanEntry> {
        let ip = ip.to_canonical();
        let host = self.hosts.get(&ip).map(|b| (Subnet::host(ip), b));
        let nets = self.nets.iter().filter(|(s, _)| s.contains(ip));
        host.into_iter()
            .chain(nets.map(|(s, b)| (*s, b)))
            .filter(|(_, b)| b.active(now))
            .max_by_key(|(_, b)| b.until)
            .map(|(s, b)| b.entry(s))
    }

    /// All bans in force at `now`, ordered by subnet.
    pub fn bans(&self, now: Instant) -> Vec<BanEntry> {
        let hosts = self.hosts.iter().map(|(ip, b)| (Subnet::host(*ip), b));
        let nets = self.nets.iter().map(|(s, b)| (*s, b));
        let mut out: Vec<BanEntry> = hosts
            .chain(nets)
            .filter(|(_, b)| b.active(now))
            .map(|(s, b)| b.entry(s))
            .collect();
        out.sort_by_key(|e| e.subnet);
        out
    }

    /// Drops the bans that have expired at `now`; returns how many.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let before = self.len();
        self.hosts.retain(|_, b| b.active(now));
        self.nets.retain(|(_, b)| b.active(now));
        before - self.len()
    }

    /// Removes the ban that ends soonest (ties broken by subnet), returning
    /// its subnet; used to keep a list within a bound.
    pub fn evict_soonest(&mut self) -> Option<Subnet> {
        let host = self
            .hosts
            .iter()
            .map(|(ip, b)| (b.until, Subnet::host(*ip)))
            .min();
        let net = self.nets.iter().map(|(s, b)| (b.until, *s)).min();
        let (_, subnet) = [host, net].into_iter().flatten().min()?;
        self.unban(&subnet);
        Some(subnet)
    }

    /// Whether a ban on exactly `subnet` is stored (in force or not).
    pub fn has(&self, subnet: &Subnet) -> bool {
        if subnet.is_host() {
            return self.hosts.contains_key(&subnet.network());
        }
        self.nets.iter().any(|(s, _)| s == subnet)
    }

    /// Number of stored bans, including expired ones not yet swept.
    pub fn len(&self) -> usize {
        self.hosts.len() + self.nets.len()
    }

    /// Whether no bans are stored, not even expired ones.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ban file text for the bans in force at `now`: a header, then
    /// one line per ban with its expiry in Unix seconds (rounded up, so a
    /// saved ban is never shorter) and its percent-encoded reason.
    /// `wall_now` is the wall-clock time matching `now`.
    pub fn to_file_text(&self, now: Instant, wall_now: SystemTime) -> io::Result<String> {
        let wall = since_epoch(wall_now).ok_or_else(clock_error)?;
        let mut text = format!(
            "{BAN_FILE_HEADER}\n# <subnet> <expiry, Unix seconds> <reason, percent-encoded>\n"
        );
        for entry in self.bans(now) {
            let expiry = expiry_unix_secs(entry.until, now, wall);
            let reason = percent_encode(&entry.reason);
            text.push_str(&format!("{} {expiry} {reason}\n", entry.subnet));
        }
        Ok(text)
    }

    /// Adds the bans in ban file text `bytes` to this list (extending
    /// existing ones as [`ban`](Self::ban) does) and returns how many
    /// unexpired bans it held. The whole text is checked before anything
    /// is added, so on error this list is left exactly as it was.
    pub fn merge_file_text(
        &mut self,
        bytes: &[u8],
        now: Instant,
        wall_now: SystemTime,
    ) -> Result<usize, BanFileError> {
        let wall = since_epoch(wall_now).ok_or_else(|| BanFileError::Corrupt {
            line: 0,
            reason: clock_error().to_string(),
        })?;
        let entries = parse_ban_file(bytes, now, wall)?;
        let count = entries.len();
        for e in entries {
            self.ban(e.subnet, e.until, e.reason);
        }
        Ok(count)
    }
}

/// Why a ban list file could not be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum BanFileError {
    /// The file exists but could not be read (or the wall-clock time given
    /// was before 1970).
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file is larger than [`MAX_BAN_FILE_BYTES`].
    TooLarge {
        /// The file that was being read.
        path: PathBuf,
    },
    /// The file's content is not a valid ban list.
    Corrupt {
        /// The 1-based line number of the first problem.
        line: usize,
        /// What is wrong on that line.
        reason: String,
    },
}

impl fmt::Display for BanFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BanFileError::Io { path, source } => {
                write!(f, "cannot read ban list file {}: {source}", path.display())
            }
            BanFileError::TooLarge { path } => write!(
                f,
                "ban list file {} is larger than {MAX_BAN_FILE_BYTES} bytes; is the path right?",
                path.display()
            ),
            BanFileError::Corrupt { line, reason } => {
                write!(f, "ban list file is corrupt at line {line}: {reason}")
            }
        }
    }
}

impl StdError for BanFileError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            BanFileError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The error for a wall-clock time before the Unix epoch.
pub(crate) fn clock_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "the wall-clock time is before 1970, so ban expiry times cannot be converted",
    )
}

/// Time since the Unix epoch, or `None` for a time before it.
fn since_epoch(t: SystemTime) -> Option<Duration> {
    t.duration_since(UNIX_EPOCH).ok()
}

/// The Unix time (whole seconds, rounded up) at which a ban ending at
/// `until` expires, given that `now` corresponds to `wall` since the epoch.
fn expiry_unix_secs(until: Instant, now: Instant, wall: Duration) -> u64 {
    let remaining = until.saturating_duration_since(now);
    let expiry = wall.saturating_add(remaining);
    let round_up = u64::from(expiry.subsec_nanos() > 0);
    expiry.as_secs().saturating_add(round_up)
}

/// The instant at which a ban stored with Unix expiry `secs` ends, or `None`
/// if it has already expired at `wall` (which corresponds to `now`).
fn expiry_instant(secs: u64, now: Instant, wall: Duration) -> Result<Option<Instant>, String> {
    let remaining = match Duration::from_secs(secs).checked_sub(wall) {
        Some(r) if !r.is_zero() => r.min(MAX_BAN_DURATION),
        _ => return Ok(None),
    };
    match now.checked_add(remaining) {
        Some(until) => Ok(Some(until)),
        None => Err(format!("the expiry time {secs} is too far in the future")),
    }
}

/// Parses a whole ban file, returning the unexpired bans or the first error.
fn parse_ban_file(
    bytes: &[u8],
    now: Instant,
    wall: Duration,
) -> Result<Vec<BanEntry>, BanFileError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut entries = Vec::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let corrupt = |reason: String| BanFileError::Corrupt { line, reason };
        let text = std::str::from_utf8(raw)
            .map_err(|_| corrupt("the line is not valid UTF-8 text".into()))?;
        let text = text.strip_suffix('\r').unwrap_or(text);
        if line == 1 {
            check_header(text).map_err(corrupt)?;
            continue;
        }
        if let Some(entry) = parse_ban_line(text, now, wall).map_err(corrupt)? {
            entries.push(entry);
        }
    }
    Ok(entries)
}

/// Checks the first line of a ban file.
fn check_header(text: &str) -> Result<(), String> {
    if text == BAN_FILE_HEADER {
        return Ok(());
    }
    if text.starts_with(HEADER_STEM) {
        return Err(format!(
            "unsupported format version {:?}; this program reads {BAN_FILE_HEADER:?}",
            shorten(text)
        ));
    }
    Err(format!(
        "the file does not start with {BAN_FILE_HEADER:?}, so it is not a ban list"
    ))
}

/// Parses one line after the header: `None` for blank lines, comments and
/// expired bans.
fn parse_ban_line(text: &str, now: Instant, wall: Duration) -> Result<Option<BanEntry>, String> {
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    let (subnet, expiry, reason) = match fields[..] {
        [s, e] => (s, e, ""),
        [s, e, r] => (s, e, r),
        [_] => return Err(expected_fields("the expiry time is missing")),
        _ => return Err(expected_fields("there are more than three fields")),
    };
    let subnet: Subnet = subnet.parse().map_err(|e| format!("bad subnet: {e}"))?;
    let secs = parse_unix_secs(expiry)?;
    let reason = percent_decode(reason)?;
    let Some(until) = expiry_instant(secs, now, wall)? else {
        return Ok(None);
    };
    Ok(Some(BanEntry {
        subnet,
        until,
        until_wall: UNIX_EPOCH.checked_add(Duration::from_secs(secs)),
        reason,
    }))
}

/// An error message that names what is wrong and the expected line shape.
fn expected_fields(problem: &str) -> String {
    format!(
        "{problem}; expected \"<subnet> <expiry Unix seconds> <percent-encoded reason>\", \
         e.g. \"192.0.2.0/24 1767225600 too%20many%20bad%20blocks\""
    )
}

/// Parses an expiry field: decimal digits only, fitting in a u64.
fn parse_unix_secs(field: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "the expiry time {:?} is not a whole number of seconds since 1970, \
             e.g. 1767225600",
            shorten(field)
        )
    };
    if !field.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    field.parse().map_err(|_| bad())
}

/// Whether a reason byte must be escaped so that the reason stays one
/// whitespace-free field on one line.
fn needs_escape(b: u8) -> bool {
    b == b'%' || b <= b' ' || b == 0x7f
}

/// Escapes '%', spaces and control characters as `%XX`; other characters,
/// including non-ASCII ones, are kept so that reasons stay readable.
fn percent_encode(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    for ch in reason.chars() {
        match u8::try_from(ch) {
            Ok(b) if needs_escape(b) => out.push_str(&format!("%{b:02X}")),
            _ => out.push(ch),
        }
    }
    out
}

/// Reverses [`percent_encode`]; rejects broken escapes and non-UTF-8 results.
fn percent_decode(field: &str) -> Result<String, String> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        // Checked by hand: from_str_radix would also accept a '+' sign.
        let byte = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .map(|h| hex_value(h[0]) << 4 | hex_value(h[1]))
            .ok_or_else(|| "the reason has a '%' not followed by two hex digits".to_string())?;
        out.push(byte);
        i += 3;
    }
    String::from_utf8(out).map_err(|_| "the reason decodes to bytes that are not UTF-8".into())
}

/// The value of an ASCII hex digit (already checked to be one).
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit.wrapping_sub(b'A').wrapping_add(10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::fs;
    use std::sync::atomic::{AtomicU64, Ordering};

    static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);
    use std::net::SocketAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> Subnet {
        s.parse().unwrap()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// A fixed wall-clock time on a whole second, for exact round trips.
    fn wall0() -> SystemTime {
        UNIX_EPOCH + secs(1_700_000_000)
    }

    /// A directory in the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let dir = std::env::temp_dir().join(format!(
                "connmgr-bans-{tag}-{}-{n}-{nanos}",
                std::process::id()
            ));
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn file(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Accepted forms parse and print in normalised form.
    #[test]
    fn subnet_parses_and_normalises() {
        let cases = [
            ("1.2.3.4", "1.2.3.4", 32),
            ("1.2.3.77/24", "1.2.3.0/24", 24),
            (" 10.9.8.7/8 ", "10.0.0.0/8", 8),
            ("0.0.0.0/0", "0.0.0.0/0", 0),
            ("1.2.3.4/32", "1.2.3.4", 32),
            ("2001:db8:1::5/32", "2001:db8::/32", 32),
            ("::1", "::1", 128),
            ("::/0", "::/0", 0),
            ("::ffff:1.2.3.4", "1.2.3.4", 32),
            ("::ffff:10.1.2.3/104", "10.0.0.0/8", 8),
            ("::ffff:0:0/96", "0.0.0.0/0", 0),
            ("::ffff:0:0/95", "::fffe:0:0/95", 95),
        ];
        for (input, shown, prefix) in cases {
            let s = net(input);
            assert_eq!(s.to_string(), shown, "{input}");
            assert_eq!(s.prefix_len(), prefix, "{input}");
            assert_eq!(net(shown), s, "round trip of {input}");
        }
    }

    /// Constructors agree with parsing and reject over-long prefixes.
    #[test]
    fn subnet_constructors() {
        assert_eq!(Subnet::new(ip("1.2.3.4"), 16).unwrap(), net("1.2.0.0/16"));
        assert_eq!(Subnet::host(ip("::ffff:1.2.3.4")), net("1.2.3.4"));
        assert_eq!(Subnet::from(ip("2001:db8::1")), net("2001:db8::1/128"));
        assert!(net("2001:db8::1").is_host());
        assert!(!net("2001:db8::/64").is_host());
        assert_eq!(net("1.2.3.0/24").network(), ip("1.2.3.0"));
        let err = Subnet::new(ip("1.2.3.4"), 33).unwrap_err();
        assert!(matches!(
            err,
            SubnetParseError::PrefixTooLong { max: 32, .. }
        ));
        assert!(Subnet::new(ip("::"), 129).is_err());
        assert!(Subnet::new(ip("::"), 128).is_ok());
    }

    /// Containment works for IPv4, IPv6 and IPv4-mapped IPv6 addresses.
    #[test]
    fn subnet_contains() {
        let v4 = net("1.2.3.0/24");
        assert!(v4.contains(ip("1.2.3.0")));
        assert!(v4.contains(ip("1.2.3.255")));
        assert!(v4.contains(ip("::ffff:1.2.3.9")));
        assert!(!v4.contains(ip("1.2.4.1")));
        assert!(!v4.contains(ip("2001:db8::1")));
        let v6 = net("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("1.2.3.4")));
        assert!(net("::/0").contains(ip("1.2.3.4")));
        assert!(net("0.0.0.0/0").contains(ip("255.255.255.255")));
        assert!(!net("0.0.0.0/0").contains(ip("::1")));
        assert!(net("::1").contains(ip("::1")));
    }

    /// A predicate telling whether a parse error is the expected one.
    type ErrorCheck = fn(&SubnetParseError) -> bool;

    /// Bad inputs give typed errors whose messages explain and give examples.
    #[test]
    fn subnet_parse_errors() {
        let cases: [(&str, ErrorCheck); 10] = [
            ("", |e| *e == SubnetParseError::Empty),
            ("   ", |e| *e == SubnetParseError::Empty),
            ("1.2.3", |e| {
                matches!(e, SubnetParseError::InvalidAddress { .. })
            }),
            ("example.com/24", |e| {
                matches!(e, SubnetParseError::InvalidAddress { .. })
            }),
            ("1.2.3.4/", |e| {
                matches!(e, SubnetParseError::InvalidPrefix { .. })
            }),
            ("1.2.3.4/x", |e| {
                matches!(e, SubnetParseError::InvalidPrefix { .. })
            }),
            ("1.2.3.4/+5", |e| {
                matches!(e, SubnetParseError::InvalidPrefix { .. })
            }),
            ("1.2.3.4/24/5", |e| {
                matches!(e, SubnetParseError::InvalidPrefix { .. })
            }),
            ("1.2.3.4/33", |e| {
                matches!(e, SubnetParseError::PrefixTooLong { max: 32, .. })
            }),
            ("::/99999999999999999999", |e| {
                matches!(e, SubnetParseError::PrefixTooLong { max: 128, .. })
            }),
        ];
        for (input, check) in cases {
            let err = input.parse::<Subnet>().unwrap_err();
            assert!(check(&err), "{input:?} gave {err:?}");
            let msg = err.to_string();
            assert!(msg.contains("e.g. \"192.0.2.7\""), "{msg}");
            assert!(msg.contains(input.trim()), "{msg}");
        }
        let msg = "::/129".parse::<Subnet>().unwrap_err().to_string();
        assert!(msg.contains("at most 128"), "{msg}");
    }

    /// Very long inputs are shortened in error messages.
    #[test]
    fn subnet_error_shortens_long_input() {
        let long = "x".repeat(10_000);
        let msg = long.parse::<Subnet>().unwrap_err().to_string();
        assert!(msg.len() < 400, "{}", msg.len());
    }

    /// A host ban matches the address (also in mapped form) until it expires.
    #[test]
    fn host_ban_expires() {
        let t0 = Instant::now();
        let mut list = BanList::new();
        list.ban(net("1.2.3.4"), t0 + secs(60), "spam".into());
        assert!(list.is_banned(ip("1.2.3.4"), t0));
        assert!(list.is_banned(ip("::ffff:1.2.3.4"), t0 + secs(59)));
        assert!(!list.is_banned(ip("1.2.3.5"), t0));
        assert!(!list.is_banned(ip("1.2.3.4"), t0 + secs(60)));
        assert_eq!(list.len(), 1);
    }

    /// Subnet bans match every address inside, for both families.
    #[test]
    fn subnet_bans_match_members() {
        let t0 = Instant::now();
        let mut list = BanList::new();
        list.ban(net("10.0.0.0/8"), t0 + secs(10), "a".into());
        list.ban(net("2001:db8::/32"), t0 + secs(10), "b".into());
        list.ban(net("::ffff:192.168.0.0/112"), t0 + secs(10), "c".into());
        assert!(list.is_banned(ip("10.200.1.1"), t0));
        assert!(list.is_banned(ip("::ffff:10.0.0.1"), t0));
        assert!(list.is_banned(ip("2001:db8:5::1"), t0));
        assert!(list.is_banned(ip("192.168.44.1"), t0));
        assert!(!list.is_banned(ip("11.0.0.1"), t0));
        assert!(!list.is_banned(ip("2001:db9::1"), t0));
        assert!(!list.is_banned(ip("10.0.0.1"), t0 + secs(10)));
    }

    /// Addresses are checked by IP; host names are never banned.
    #[test]
    fn addr_bans_use_the_ip() {
        let t0 = Instant::now();
        let mut list = BanList::new();
        list.ban(net("127.0.0.0/8"), t0 + secs(10), "local".into());
        let sa: SocketAddr = "127.0.0.1:8333".parse().unwrap();
        assert!(list.is_addr_banned(&Addr::Ip(sa), t0));
        let sa: SocketAddr = "[::1]:8333".parse().unwrap();
        assert!(!list.is_addr_banned(&Addr::Ip(sa), t0));
        let dns = Addr::Dns {
            host: "localhost".into(),
            port: 8333,
        };
        assert!(!list.is_addr_banned(&dns, t0));
    }

    /// Banning again extends a ban (taking the new reason) but never
    /// shortens it, for hosts and subnets alike.
    #[test]
    fn ban_extends_never_shortens() {
        let t0 = Instant::now();
        for subnet in [net("1.2.3.4"), net("1.2.0.0/16")] {
            let mut list = BanList::new();
            assert_eq!(
                list.ban(subnet, t0 + secs(100), "first".into()),
                t0 + secs(100)
            );
            assert_eq!(
                list.ban(subnet, t0 + secs(50), "short".into()),
                t0 + secs(100)
            );
            let entry = &list.bans(t0)[0];
            assert_eq!(
                (entry.until, entry.reason.as_str()),
                (t0 + secs(100), "first")
            );
            assert_eq!(
                list.ban(subnet, t0 + secs(200), "long".into()),
                t0 + secs(200)
            );
            let entry = &list.bans(t0)[0];
            assert_eq!(
                (entry.until, entry.reason.as_str()),
                (t0 + secs(200), "long")
            );
            assert_eq!(list.len(), 1);
        }
    }

    /// Unbanning removes exactly the given subnet and reports whether it was
    /// there.
    #[test]
    fn unban_removes_exact_subnet() {
        let t0 = Instant::now();
        let mut list = BanList::new();
        list.ban(net("1.2.3.4"), t0 + secs(10), String::new());
        list.ban(net("5.6.0.0/16"), t0 + secs(10), String::new());
        assert!(!list.unban(&net("5.6.7.0/24")));
        assert!(list.is_banned(ip("5.6.7.8"), t0));
        assert!(list.unban(&net("::ffff:1.2.3.4")));
        assert!(!list.unban(&net("1.2.3.4")));
        assert!(list.unban(&net("5.6.0.0/16")));
        assert!(!list.is_banned(ip("1.2.3.4"), t0));
        assert!(!list.is_banned(ip("5.6.7.8"), t0));
        assert!(list.is_empty());
    }

    /// Sweeping drops only expired bans; listing already hides them.
    #[test]
    fn sweep_and_listing_drop_expired() {
        let t0 = Instant::now();
        let mut list = BanList::new();
        list.ban(net("1.1.1.1"), t0 + secs(5), "old".into());
        list.ban(net("2.2.0.0/16"), t0 + secs(5), "old".into());
        list.ban(net("::2"), t0 + secs(50), "new".into());
        list.ban(net("3.3.0.0/16"), t0 + secs(50), "new".into());
        let now = t0 + secs(5);
        let shown: Vec<String> = list
            .bans(now)
            .iter()
            .map(|e| e.subnet.to_string())
            .collect();
        assert_eq!(shown, ["3.3.0.0/16", "::2"]);
        assert_eq!(list.len(), 4);
        assert_eq!(list.sweep(now), 2);
        assert_eq!(list.len(), 2);
        assert_eq!(list.sweep(now), 0);
        assert_eq!(list.sweep(t0 + secs(50)), 2);
        assert!(list.is_empty());
    }

    /// The lookup names the longest-lasting ban in force for an address.
    #[test]
    fn ban_for_reports_longest_match() {
        let t0 = Instant::now();
        let mut list = BanList::new();
        list.ban(net("1.2.3.4"), t0 + secs(10), "host".into());
        list.ban(net("1.2.0.0/16"), t0 + secs(30), "wide".into());
        list.ban(net("1.0.0.0/8"), t0 + secs(20), "wider".into());
        assert_eq!(list.ban_for(ip("1.2.3.4"), t0).unwrap().reason, "wide");
        assert_eq!(list.ban_for(ip("1.9.9.9"), t0).unwrap().reason, "wider");
        assert_eq!(list.ban_for(ip("1.9.9.9"), t0 + secs(20)), None);
        assert_eq!(list.ban_for(ip("9.9.9.9"), t0), None);
    }

    /// Saving and loading with matching clocks restores every ban exactly,
    /// including awkward reasons; the file has the documented shape.
    #[test]
    fn save_load_round_trip() {
        let dir = TempDir::new("roundtrip");
        let path = dir.file("bans.txt");
        let t0 = Instant::now();
        let mut list = BanList::new();
        list.ban(
            net("1.2.3.4"),
            t0 + secs(3600),
            "too many bad blocks".into(),
        );
        list.ban(
            net("10.0.0.0/8"),
            t0 + secs(60),
            "100% bad\nline\ttab".into(),
        );
        list.ban(net("2001:db8::/32"), t0 + secs(7), "ünïcödé ✓".into());
        list.ban(net("::1"), t0 + secs(9), String::new());
        list.ban(net("9.9.9.9"), t0 + secs(1), "expired".into());
        let now = t0 + secs(1);
        list.save(&path, now, wall0()).unwrap();

        let text = fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(BAN_FILE_HEADER));
        assert!(
            text.contains("\n1.2.3.4 1700003599 too%20many%20bad%20blocks\n"),
            "{text}"
        );
        assert!(!text.contains("9.9.9.9"), "{text}");

        let loaded = BanList::load(&path, now, wall0()).unwrap();
        assert_eq!(loaded.bans(now), list.bans(now));
        assert_eq!(loaded.len(), 4);
    }

    /// Loading later shifts expiries by the wall-clock time that passed and
    /// skips bans that ended meanwhile.
    #[test]
    fn load_converts_wall_clock_to_instants() {
        let dir = TempDir::new("shift");
        let path = dir.file("bans");
        let t0 = Instant::now();
        let mut list = BanList::new();
        list.ban(net("1.2.3.4"), t0 + secs(100), "a".into());
        list.ban(net("5.6.7.8"), t0 + secs(20), "b".into());
        list.save(&path, t0, wall0()).unwrap();

        let t1 = t0 + secs(5);
        let loaded = BanList::load(&path, t1, wall0() + secs(30)).unwrap();
        let bans = loaded.bans(t1);
        assert_eq!(bans.len(), 1);
        assert_eq!(bans[0].subnet, net("1.2.3.4"));
        assert_eq!(bans[0].until, t1 + secs(70));
    }

    /// Sub-second remainders round up when saved, so a ban never shrinks.
    #[test]
    fn save_rounds_expiry_up() {
        let t0 = Instant::now();
        let until = t0 + Duration::from_millis(1500);
        assert_eq!(expiry_unix_secs(until, t0, secs(10)), 12);
        assert_eq!(expiry_unix_secs(t0 + secs(2), t0, secs(10)), 12);
        assert_eq!(expiry_unix_secs(t0, t0 + secs(1), secs(10)), 10);
    }

    /// A missing or empty file is an empty list, not an error.
    #[test]
    fn missing_or_empty_file_is_empty() {
        let dir = TempDir::new("missing");
        let t0 = Instant::now();
        let list = BanList::load(dir.file("nope"), t0, wall0()).unwrap();
        assert!(list.is_empty());
        fs::write(dir.file("empty"), b"").unwrap();
        assert!(BanList::load(dir.file("empty"), t0, wall0())
            .unwrap()
            .is_empty());
    }

    /// Comments, blank lines, CRLF endings and duplicate lines are accepted;
    /// duplicates merge like repeated bans.
    #[test]
    fn load_tolerates_comments_crlf_and_duplicates() {
        let dir = TempDir::new("lenient");
        let path = dir.file("bans");
        let text = format!(
            "{BAN_FILE_HEADER}\r\n\r\n# note\r\n  1.2.3.4  1700000100  a \r\n\
             1.2.3.4 1700000200 b\r\n2001:db8::/32 1700000050\r\n"
        );
        fs::write(&path, text).unwrap();
        let t0 = Instant::now();
        let mut list = BanList::new();
        assert_eq!(list.merge_from_file(&path, t0, wall0()).unwrap(), 3);
        let bans = list.bans(t0);
        assert_eq!(bans.len(), 2);
        assert_eq!(
            (bans[0].until, bans[0].reason.as_str()),
            (t0 + secs(200), "b")
        );
        assert_eq!(
            (bans[1].until, bans[1].reason.as_str()),
            (t0 + secs(50), "")
        );
    }

    /// Each kind of damage is reported with its line, and the list being
    /// merged into keeps exactly its previous content.
    #[test]
    fn corrupt_files_leave_list_intact() {
        let h = BAN_FILE_HEADER;
        let good = "7.7.7.7 1700000100 ok";
        let cases: Vec<(Vec<u8>, usize, &str)> = vec![
            (b"\xff\xfe garbage".to_vec(), 1, "UTF-8"),
            (b"hello world\n".to_vec(), 1, "not a ban list"),
            (b"# connmgr ban list v2\n".to_vec(), 1, "version"),
            (
                format!("{h}\n{good}\n1.2.3.4\n").into(),
                3,
                "expiry time is missing",
            ),
            (
                format!("{h}\n1.2.3.4 abc r\n").into(),
                2,
                "not a whole number",
            ),
            (
                format!("{h}\n1.2.3.4 -5 r\n").into(),
                2,
                "not a whole number",
            ),
            (
                format!("{h}\n1.2.3.4 99999999999999999999999 r\n").into(),
                2,
                "not a whole",
            ),
            (
                format!("{h}\n1.2.3.4 100 a b\n").into(),
                2,
                "more than three",
            ),
            (format!("{h}\n300.1.1.1 100 r\n").into(), 2, "bad subnet"),
            (format!("{h}\n1.2.3.4/40 100 r\n").into(), 2, "at most 32"),
            (
                format!("{h}\n{good}\n1.2.3.4 100 %zz\n").into(),
                3,
                "two hex digits",
            ),
            (
                format!("{h}\n1.2.3.4 100 abc%4\n").into(),
                2,
                "two hex digits",
            ),
            (
                format!("{h}\n1.2.3.4 100 %+1\n").into(),
                2,
                "two hex digits",
            ),
            (format!("{h}\n1.2.3.4 100 %ff\n").into(), 2, "not UTF-8"),
            (
                [format!("{h}\n{good}\n").as_bytes(), b"1.2.3.4 1 \xc3\n"].concat(),
                3,
                "UTF-8",
            ),
        ];
        let dir = TempDir::new("corrupt");
        let t0 = Instant::now();
        let mut list = BanList::new();
        list.ban(net("8.8.8.8"), t0 + secs(5), "kept".into());
        let before = list.bans(t0);
        for (i, (bytes, want_line, want_text)) in cases.into_iter().enumerate() {
            let path = dir.file(&format!("case{i}"));
            fs::write(&path, &bytes).unwrap();
            let err = list.merge_from_file(&path, t0, wall0()).unwrap_err();
            let BanFileError::Corrupt { line, ref reason } = err else {
                panic!("case {i}: expected Corrupt, got {err:?}");
            };
            assert_eq!(line, want_line, "case {i}: {reason}");
            assert!(reason.contains(want_text), "case {i}: {reason}");
            assert!(
                err.to_string().contains(&format!("line {want_line}")),
                "case {i}"
            );
            assert_eq!(list.bans(t0), before, "case {i} changed the list");
            assert!(BanList::load(&path, t0, wall0()).is_err(), "case {i}");
        }
    }

    /// The largest storable expiry loads as a capped, still-active ban.
    #[test]
    fn huge_expiry_is_capped() {
        let dir = TempDir::new("huge");
        let path = dir.file("bans");
        fs::write(
            &path,
            format!("{BAN_FILE_HEADER}\n1.2.3.4 {} r\n", u64::MAX),
        )
        .unwrap();
        let t0 = Instant::now();
        let list = BanList::load(&path, t0, wall0()).unwrap();
        assert_eq!(list.bans(t0)[0].until, t0 + MAX_BAN_DURATION);
    }

    /// A ban expiring exactly at the loading wall-clock time is not loaded.
    #[test]
    fn ban_ending_now_is_skipped() {
        let dir = TempDir::new("endnow");
        let path = dir.file("bans");
        fs::write(&path, format!("{BAN_FILE_HEADER}\n1.2.3.4 1700000000 r\n")).unwrap();
        let mut list = BanList::new();
        assert_eq!(
            list.merge_from_file(&path, Instant::now(), wall0())
                .unwrap(),
            0
        );
        assert!(list.is_empty());
    }

    /// Arbitrary bytes, with or without a valid header, never panic.
    #[test]
    fn garbage_never_panics() {
        let dir = TempDir::new("garbage");
        let path = dir.file("bans");
        let t0 = Instant::now();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let alphabet = b"0123456789abcdef.:/% \n\r#\t\xff\xc3x";
        for round in 0..300 {
            let len = (seed % 200) as usize;
            let mut bytes = if round % 2 == 0 {
                format!("{BAN_FILE_HEADER}\n").into_bytes()
            } else {
                Vec::new()
            };
            for _ in 0..len {
                // xorshift64: a tiny deterministic generator, good enough to
                // scatter bytes.
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                bytes.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            fs::write(&path, &bytes).unwrap();
            let mut list = BanList::new();
            if let Err(e) = list.merge_from_file(&path, t0, wall0()) {
                assert!(!e.to_string().is_empty());
                assert!(list.is_empty());
            }
        }
    }

    /// Saving replaces an existing file and leaves no temporary files.
    #[test]
    fn save_replaces_atomically_without_leftovers() {
        let dir = TempDir::new("atomic");
        let path = dir.file("bans");
        fs::write(&path, "old content").unwrap();
        let t0 = Instant::now();
        let mut list = BanList::new();
        list.ban(net("1.2.3.4"), t0 + secs(10), "x".into());
        list.save(&path, t0, wall0()).unwrap();
        list.save(&path, t0, wall0()).unwrap();
        let names: Vec<OsString> = fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [OsString::from("bans")]);
        assert_eq!(BanList::load(&path, t0, wall0()).unwrap().len(), 1);
    }

    /// Saving into a missing directory or with a clock before 1970 fails
    /// cleanly.
    #[test]
    fn save_errors_are_reported() {
        let dir = TempDir::new("saveerr");
        let t0 = Instant::now();
        let list = BanList::new();
        assert!(list
            .save(dir.file("no/such/dir/bans"), t0, wall0())
            .is_err());
        let before_1970 = UNIX_EPOCH - secs(1);
        let err = list.save(dir.file("bans"), t0, before_1970).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = BanList::load(dir.file("bans"), t0, before_1970).unwrap_err();
        assert!(err.to_string().contains("before 1970"), "{err}");
        assert!(StdError::source(&err).is_some());
    }

    /// Reading a directory as a ban file is an I/O error naming the path.
    #[test]
    fn unreadable_path_is_io_error() {
        let dir = TempDir::new("ioerr");
        let err = BanList::load(&dir.0, Instant::now(), wall0()).unwrap_err();
        assert!(matches!(err, BanFileError::Io { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&dir.0.display().to_string()),
            "{err}"
        );
    }

    /// Percent-encoding keeps reasons on one field and decodes back.
    #[test]
    fn reason_encoding_round_trips() {
        for reason in ["", "plain", "a b", "50%", "%41", "\r\n\t\x7f", "ü ✓"] {
            let encoded = percent_encode(reason);
            assert!(
                !encoded.bytes().any(needs_escape_but_percent),
                "{encoded:?}"
            );
            assert_eq!(percent_decode(&encoded).unwrap(), reason);
        }
        assert_eq!(percent_encode("a b%"), "a%20b%25");
    }

    /// Bytes other than '%' that the encoder must never leave raw.
    fn needs_escape_but_percent(b: u8) -> bool {
        b != b'%' && needs_escape(b)
    }
}
