//! Peer permissions, as Bitcoin Core's whitelist flags: what a trusted
//! peer may do that others may not, granted by subnet or on a request.

use std::fmt;
use std::net::IpAddr;
use std::ops::{BitOr, BitOrAssign};
use std::str::FromStr;

use super::banlist::Subnet;

/// A set of peer permissions. The manager acts on [`NOBAN`](Self::NOBAN),
/// [`FORCE_INBOUND`](Self::FORCE_INBOUND) and
/// [`NO_EVICT`](Self::NO_EVICT); the others are hints it keeps and shows
/// for the node's own relay code, as Core's flags of the same names.
///
/// ```
/// use connmgr::policy::Permissions;
///
/// let p: Permissions = "noban,relay".parse().unwrap();
/// assert!(p.contains(Permissions::NOBAN) && p.contains(Permissions::RELAY));
/// assert!(!p.contains(Permissions::FORCE_INBOUND));
/// assert_eq!(p.to_string(), "noban,relay");
/// assert!("nobanz".parse::<Permissions>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(transparent))]
pub struct Permissions(u32);

impl Permissions {
    /// No permissions.
    pub const NONE: Permissions = Permissions(0);
    /// Never banned or disconnected for misbehaviour; accepted and dialed
    /// even when its address is banned (an explicit ban still closes it);
    /// never evicted.
    pub const NOBAN: Permissions = Permissions(1);
    /// Accepted when inbound slots are full: another inbound connection is
    /// evicted by the normal rules (even without `evict_inbound`), or, if
    /// none can be, the limit is exceeded by at most the configured
    /// margin. Not held back by the per-source inbound limits.
    pub const FORCE_INBOUND: Permissions = Permissions(2);
    /// Never evicted and never trimmed, like a protected peer.
    pub const NO_EVICT: Permissions = Permissions(4);
    /// Hint: relay the peer's transactions even when not relaying others'.
    pub const RELAY: Permissions = Permissions(8);
    /// Hint: relay the peer's transactions even if they are already known.
    pub const FORCE_RELAY: Permissions = Permissions(16);
    /// Hint: the peer may use bloom filters.
    pub const BLOOM_FILTER: Permissions = Permissions(32);
    /// Hint: the peer may download blocks past the upload limit.
    pub const DOWNLOAD: Permissions = Permissions(64);
    /// Hint: the peer may ask for the whole mempool.
    pub const MEMPOOL: Permissions = Permissions(128);
    /// Hint: the peer's address requests are always answered.
    pub const ADDR: Permissions = Permissions(256);

    /// Every flag with its name, in the order they print.
    const NAMES: [(Permissions, &'static str); 9] = [
        (Self::NOBAN, "noban"),
        (Self::FORCE_INBOUND, "forceinbound"),
        (Self::NO_EVICT, "noevict"),
        (Self::RELAY, "relay"),
        (Self::FORCE_RELAY, "forcerelay"),
        (Self::BLOOM_FILTER, "bloomfilter"),
        (Self::DOWNLOAD, "download"),
        (Self::MEMPOOL, "mempool"),
        (Self::ADDR, "addr"),
    ];

    /// The set from its bits (as the C API passes it); unknown bits are
    /// refused.
    pub fn from_bits(bits: u32) -> Option<Permissions> {
        let all = Self::NAMES.iter().fold(0, |acc, (p, _)| acc | p.0);
        (bits & !all == 0).then_some(Permissions(bits))
    }

    /// The bits of the set.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every flag of `other` is in the set.
    pub const fn contains(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether the peer is never evicted nor trimmed.
    pub(crate) const fn keeps(self) -> bool {
        self.0 & (Self::NOBAN.0 | Self::NO_EVICT.0) != 0
    }
}

impl BitOr for Permissions {
    type Output = Permissions;
    fn bitor(self, rhs: Permissions) -> Permissions {
        Permissions(self.0 | rhs.0)
    }
}

impl BitOrAssign for Permissions {
    fn bitor_assign(&mut self, rhs: Permissions) {
        self.0 |= rhs.0;
    }
}

impl fmt::Display for Permissions {
    /// Core's names joined by commas; `none` for the empty set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = Self::NAMES
            .iter()
            .filter(|(p, _)| self.contains(*p))
            .map(|(_, name)| *name)
            .collect();
        f.write_str(&names.join(","))
    }
}

impl FromStr for Permissions {
    type Err = String;

    /// Parses Core's comma-separated names (`"noban,relay"`); `none` or an
    /// empty string is the empty set.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = Permissions::NONE;
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if word == "none" {
                continue;
            }
            let Some((p, _)) = Self::NAMES.iter().find(|(_, name)| *name == word) else {
                let known: Vec<&str> = Self::NAMES.iter().map(|(_, n)| *n).collect();
                return Err(format!(
                    "unknown permission {word:?}: use {}",
                    known.join(", ")
                ));
            };
            set |= *p;
        }
        Ok(set)
    }
}

/// Permissions granted by subnet: a connection gets the union of every
/// entry whose subnet contains its address, as Core merges `-whitelist`
/// entries. Lookups scan the entries, whose count the manager's config
/// bounds ([`MAX_PERMISSION_ENTRIES`](crate::limits::MAX_PERMISSION_ENTRIES)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PermissionTable {
    entries: Vec<(Subnet, Permissions)>,
}

impl PermissionTable {
    /// A table of `entries`.
    pub fn new(entries: Vec<(Subnet, Permissions)>) -> Self {
        PermissionTable { entries }
    }

    /// The permissions of a peer at `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Permissions {
        self.entries
            .iter()
            .filter(|(subnet, _)| subnet.contains(ip))
            .fold(Permissions::NONE, |acc, (_, p)| acc | *p)
    }

    /// Adds an entry.
    pub fn push(&mut self, subnet: Subnet, permissions: Permissions) {
        self.entries.push((subnet, permissions));
    }

    /// How many entries the table has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bits_are_checked() {
        let all: Permissions = "noban,forceinbound,noevict,relay,forcerelay,bloomfilter,\
                                download,mempool,addr"
            .parse()
            .unwrap();
        assert_eq!(all.bits(), 511);
        assert_eq!(all.to_string().parse::<Permissions>().unwrap(), all);
        assert_eq!(Permissions::from_bits(511), Some(all));
        assert_eq!(Permissions::from_bits(512), None);
        assert_eq!("".parse::<Permissions>().unwrap(), Permissions::NONE);
        assert_eq!(Permissions::NONE.to_string(), "none");
        let err = "noban,bogus".parse::<Permissions>().unwrap_err();
        assert!(err.contains("bogus") && err.contains("noban"), "{err}");
    }

    #[test]
    fn a_table_merges_every_matching_subnet() {
        let table = PermissionTable::new(vec![
            ("10.0.0.0/8".parse().unwrap(), Permissions::NOBAN),
            ("10.1.0.0/16".parse().unwrap(), Permissions::RELAY),
            ("2001:db8::/32".parse().unwrap(), Permissions::FORCE_INBOUND),
        ]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            table.lookup(ip("10.1.2.3")),
            Permissions::NOBAN | Permissions::RELAY
        );
        assert_eq!(table.lookup(ip("10.2.0.1")), Permissions::NOBAN);
        assert_eq!(table.lookup(ip("::ffff:10.2.0.1")), Permissions::NOBAN);
        assert_eq!(table.lookup(ip("2001:db8::1")), Permissions::FORCE_INBOUND);
        assert_eq!(table.lookup(ip("192.0.2.1")), Permissions::NONE);
    }
}
