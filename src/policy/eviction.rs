//! Inbound eviction: which inbound connection to drop when every inbound
//! slot is taken and another peer connects.
//!
//! The selection follows the rules Bitcoin Core uses for the same problem.
//! Peers are first protected by properties an attacker finds hard to fake
//! (a netgroup chosen by a secret key, low latency, recent useful
//! transactions and blocks, long uptime, a scarce network); among the rest,
//! the youngest connection of the netgroup holding the most connections is
//! chosen. An attacker who opens many connections from one address range
//! therefore mostly evicts its own connections, while honest long-lived,
//! useful peers stay.
//!
//! Everything here is pure: the caller collects an [`EvictionCandidate`] for
//! each connection, calls [`EvictionPolicy::select_to_evict`] (or
//! [`select_to_evict`] for the default counts), and closes the connection
//! whose key comes back.

use std::cmp::Ordering;
use std::hash::Hasher;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::addr::{Addr, NetGroup};

/// The network class of a candidate, used to reserve protected slots for
/// peers on networks that the latency and uptime rules put at a
/// disadvantage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CandidateNet {
    /// A routable or private IPv4 address.
    Ipv4,
    /// An IPv6 address that is not IPv4-mapped or loopback.
    Ipv6,
    /// A Tor onion service.
    Onion,
    /// An I2P destination.
    I2p,
    /// A CJDNS address.
    Cjdns,
    /// A loopback peer, often a local proxy forwarding anonymous traffic.
    Localhost,
    /// Anything else (DNS names, unknown custom networks).
    Other,
}

impl CandidateNet {
    /// Classifies a peer address.
    ///
    /// Loopback addresses (and 0.0.0.0/8, which some stacks report for
    /// local peers) are [`Localhost`](CandidateNet::Localhost); custom
    /// addresses whose network is named "i2p" or "cjdns" (any case) map to
    /// those networks; DNS names and other custom networks are
    /// [`Other`](CandidateNet::Other).
    pub fn from_addr(addr: &Addr) -> CandidateNet {
        match addr {
            Addr::Ip(sa) => Self::from_ip(sa.ip()),
            Addr::Onion { .. } => CandidateNet::Onion,
            Addr::I2p { .. } => CandidateNet::I2p,
            Addr::Cjdns { .. } => CandidateNet::Cjdns,
            Addr::Dns { .. } => CandidateNet::Other,
            Addr::Custom(c) if c.network().eq_ignore_ascii_case("i2p") => CandidateNet::I2p,
            Addr::Custom(c) if c.network().eq_ignore_ascii_case("cjdns") => CandidateNet::Cjdns,
            Addr::Custom(_) => CandidateNet::Other,
        }
    }

    /// Whether this network gets a share of the uptime-protected slots
    /// reserved: its peers tend to have high latency and so lose out under
    /// the ping rule.
    pub fn is_disadvantaged(self) -> bool {
        matches!(
            self,
            CandidateNet::Onion | CandidateNet::I2p | CandidateNet::Cjdns | CandidateNet::Localhost
        )
    }

    fn from_ip(ip: IpAddr) -> CandidateNet {
        // An IPv4-mapped IPv6 peer is an IPv4 peer; treat it as one.
        match ip.to_canonical() {
            IpAddr::V4(v4) if v4.is_loopback() || v4.octets()[0] == 0 => CandidateNet::Localhost,
            IpAddr::V4(_) => CandidateNet::Ipv4,
            IpAddr::V6(v6) if v6.is_loopback() => CandidateNet::Localhost,
            IpAddr::V6(_) => CandidateNet::Ipv6,
        }
    }
}

/// What the selection knows about one connection.
///
/// Fields the caller cannot observe keep the neutral values that
/// [`EvictionCandidate::new`] gives them; they then simply do not protect
/// anyone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvictionCandidate {
    /// Connection id; [`select_to_evict`] returns this for the victim.
    /// Among otherwise equal peers, a higher key counts as younger.
    pub key: u64,
    /// When the connection was established (its uptime is measured from
    /// here).
    pub connected: Instant,
    /// Lowest round-trip time seen, or `None` if never measured (counts as
    /// the worst ping).
    pub min_ping: Option<Duration>,
    /// When the peer last sent a block we had not seen.
    pub last_block: Option<Instant>,
    /// When the peer last sent a transaction we accepted and had not seen.
    pub last_tx: Option<Instant>,
    /// Whether the peer offers the services we need for block download.
    pub relevant_services: bool,
    /// Whether the peer asked to receive transactions; `false` marks a
    /// block-relay-only peer.
    pub relay_txes: bool,
    /// Whether the peer installed a bloom filter (costly to serve).
    pub bloom_filter: bool,
    /// The peer's netgroup hashed with the manager's [`EvictionKey`].
    pub keyed_netgroup: u64,
    /// The peer misbehaved mildly; if any unprotected candidate has this
    /// set, only such candidates are eligible.
    pub prefer_evict: bool,
    /// The peer is protected (noban permission or user-protected) and is
    /// never evicted.
    pub noban: bool,
    /// The peer connected to us; outbound connections are never evicted.
    pub inbound: bool,
    /// The peer's network class.
    pub network: CandidateNet,
}

impl EvictionCandidate {
    /// An inbound, unprotected candidate with nothing measured yet: no
    /// ping, no blocks or transactions, relaying transactions, no relevant
    /// services and no bloom filter.
    pub fn new(key: u64, connected: Instant, keyed_netgroup: u64, network: CandidateNet) -> Self {
        EvictionCandidate {
            key,
            connected,
            min_ping: None,
            last_block: None,
            last_tx: None,
            relevant_services: false,
            relay_txes: true,
            bloom_filter: false,
            keyed_netgroup,
            prefer_evict: false,
            noban: false,
            inbound: true,
            network,
        }
    }
}

/// A secret 128-bit key for hashing netgroups.
///
/// The netgroup rule protects the peers whose keyed netgroup hashes are
/// highest. With a secret key an attacker cannot pick address ranges that
/// land in the protected set. Create one key per manager and keep it for
/// the manager's lifetime so the protected groups stay stable.
#[derive(Clone)]
pub struct EvictionKey {
    k0: u64,
    k1: u64,
}

impl EvictionKey {
    /// A key from the thread-local cryptographic random generator.
    pub fn random() -> Self {
        EvictionKey::from_keys(rand::random(), rand::random())
    }

    /// A key from fixed halves, for reproducible tests and simulations.
    pub fn from_keys(k0: u64, k1: u64) -> Self {
        EvictionKey { k0, k1 }
    }

    /// The keyed hash of `group` (SipHash-2-4 over an unambiguous encoding
    /// of the group), for [`EvictionCandidate::keyed_netgroup`].
    pub fn keyed_netgroup(&self, group: &NetGroup) -> u64 {
        let mut h = SipHasher24::new(self.k0, self.k1);
        encode_netgroup(&mut h, group);
        h.finish()
    }
}

impl std::fmt::Debug for EvictionKey {
    /// Hides the key: it must stay secret, and logs are not.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EvictionKey { .. }")
    }
}

/// Feeds `group` to `h` with a type tag and length prefixes, so that two
/// different groups never produce the same byte stream.
fn encode_netgroup(h: &mut SipHasher24, group: &NetGroup) {
    match group {
        NetGroup::Ipv4(b) => {
            h.write(&[1]);
            h.write(b);
        }
        NetGroup::Ipv6(b) => {
            h.write(&[2]);
            h.write(b);
        }
        NetGroup::Onion(bits) => h.write(&[3, *bits]),
        NetGroup::I2p(bits) => h.write(&[6, *bits]),
        NetGroup::Cjdns(bits) => h.write(&[7, *bits]),
        NetGroup::Dns(host) => {
            h.write(&[4]);
            write_field(h, host);
        }
        NetGroup::Custom(network, address) => {
            h.write(&[5]);
            write_field(h, network);
            write_field(h, address);
        }
    }
}

fn write_field(h: &mut SipHasher24, s: &str) {
    h.write(&(s.len() as u64).to_le_bytes());
    h.write(s.as_bytes());
}

/// SipHash-2-4 with an explicit key. std's hashers cannot be keyed by the
/// caller, and the key must be reproducible in tests.
#[derive(Clone)]
struct SipHasher24 {
    v: [u64; 4],
    /// Bytes not yet forming a full 8-byte word, little-endian.
    tail: u64,
    /// Number of bytes in `tail`.
    ntail: usize,
    /// Total bytes written (only the low 8 bits matter to SipHash).
    len: u64,
}

impl SipHasher24 {
    fn new(k0: u64, k1: u64) -> Self {
        SipHasher24 {
            v: [
                k0 ^ 0x736f_6d65_7073_6575,
                k1 ^ 0x646f_7261_6e64_6f6d,
                k0 ^ 0x6c79_6765_6e65_7261,
                k1 ^ 0x7465_6462_7974_6573,
            ],
            tail: 0,
            ntail: 0,
            len: 0,
        }
    }

    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }

    fn compress(v: &mut [u64; 4], word: u64) {
        v[3] ^= word;
        Self::round(v);
        Self::round(v);
        v[0] ^= word;
    }
}

impl Hasher for SipHasher24 {
    fn write(&mut self, bytes: &[u8]) {
        self.len = self.len.wrapping_add(bytes.len() as u64);
        for &b in bytes {
            self.tail |= u64::from(b) << (8 * self.ntail);
            self.ntail += 1;
            if self.ntail == 8 {
                Self::compress(&mut self.v, self.tail);
                self.tail = 0;
                self.ntail = 0;
            }
        }
    }

    fn finish(&self) -> u64 {
        let mut v = self.v;
        Self::compress(&mut v, self.tail | (self.len << 56));
        v[2] ^= 0xff;
        for _ in 0..4 {
            Self::round(&mut v);
        }
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }
}

/// How many peers each rule protects. [`Default`] gives Bitcoin Core's
/// counts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvictionPolicy {
    /// Peers protected for having the highest keyed netgroup hashes
    /// (default 4).
    pub protect_netgroup: usize,
    /// Peers protected for the lowest minimum ping (default 8).
    pub protect_min_ping: usize,
    /// Peers protected for most recently sending novel transactions
    /// (default 4).
    pub protect_recent_tx: usize,
    /// Block-relay-only peers (not relaying transactions, with relevant
    /// services) protected for most recently sending blocks (default 8).
    pub protect_block_relay_only: usize,
    /// Peers protected for most recently sending novel blocks (default 4).
    pub protect_recent_block: usize,
    /// Share of the candidates left after the rules above that is protected
    /// for the longest uptime (default 0.5; clamped to 0..=1, NaN counts as
    /// 0).
    pub protect_uptime_ratio: f64,
    /// Share of the uptime-protected slots reserved for onion, I2P, CJDNS
    /// and localhost peers (default 0.5, i.e. a quarter of the remaining
    /// candidates; clamped like `protect_uptime_ratio`).
    pub disadvantaged_share: f64,
}

impl Default for EvictionPolicy {
    fn default() -> Self {
        EvictionPolicy {
            protect_netgroup: 4,
            protect_min_ping: 8,
            protect_recent_tx: 4,
            protect_block_relay_only: 8,
            protect_recent_block: 4,
            protect_uptime_ratio: 0.5,
            disadvantaged_share: 0.5,
        }
    }
}

/// Disadvantaged networks in the order they get first pick of spare
/// reserved slots when their candidate counts are equal.
const DISADVANTAGED: [CandidateNet; 4] = [
    CandidateNet::Cjdns,
    CandidateNet::I2p,
    CandidateNet::Localhost,
    CandidateNet::Onion,
];

impl EvictionPolicy {
    /// The key of the connection to evict, or `None` if every inbound,
    /// unprotected candidate is protected by one of the rules (then the new
    /// connection should be refused instead).
    ///
    /// Outbound and `noban` candidates are ignored. `now` measures uptime;
    /// a connection time after `now` counts as no uptime.
    pub fn select_to_evict(
        &self,
        mut candidates: Vec<EvictionCandidate>,
        now: Instant,
    ) -> Option<u64> {
        candidates.retain(|c| c.inbound && !c.noban);
        self.protect_by_rules(&mut candidates, now);
        self.protect_by_ratio(&mut candidates, now);
        if candidates.iter().any(|c| c.prefer_evict) {
            candidates.retain(|c| c.prefer_evict);
        }
        youngest_of_largest_group(&mut candidates, now)
    }

    /// Removes the peers protected by the fixed-count rules, in Core's
    /// order: each rule only sees the peers earlier rules left, so the order
    /// decides which rule a peer that excels at several is counted against.
    /// Public for policies built from these steps; `select_to_evict` runs
    /// it first.
    pub fn protect_by_rules(&self, c: &mut Vec<EvictionCandidate>, now: Instant) {
        erase_best(c, self.protect_netgroup, by_netgroup(now), |_| true);
        erase_best(c, self.protect_min_ping, by_ping(now), |_| true);
        erase_best(c, self.protect_recent_tx, by_tx(now), |_| true);
        erase_best(
            c,
            self.protect_block_relay_only,
            by_block_relay_only(now),
            is_block_relay_only,
        );
        erase_best(c, self.protect_recent_block, by_block(now), |_| true);
    }

    /// Protects a share of the remaining peers by uptime, part of it
    /// reserved for disadvantaged networks so they are not all crowded out
    /// by the fast, long-lived clearnet peers (Bitcoin Core's
    /// `ProtectEvictionCandidatesByRatio`): removes them from `c`. Public
    /// for policies built from these steps; `select_to_evict` runs it
    /// after [`protect_by_rules`](Self::protect_by_rules).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use connmgr::policy::{CandidateNet, EvictionCandidate, EvictionPolicy};
    ///
    /// let now = Instant::now();
    /// let mut c: Vec<EvictionCandidate> = (0..8u64)
    ///     .map(|k| {
    ///         let since = now - Duration::from_secs(100 - k);
    ///         EvictionCandidate::new(k, since, k, CandidateNet::Ipv4)
    ///     })
    ///     .collect();
    /// EvictionPolicy::default().protect_by_ratio(&mut c, now);
    /// // Half are protected: the four longest connected (keys 0 to 3) left.
    /// let mut left: Vec<u64> = c.iter().map(|c| c.key).collect();
    /// left.sort();
    /// assert_eq!(left, vec![4, 5, 6, 7]);
    /// ```
    pub fn protect_by_ratio(&self, c: &mut Vec<EvictionCandidate>, now: Instant) {
        let total = share(c.len(), self.protect_uptime_ratio);
        let reserved = share(total, self.disadvantaged_share);
        let done = protect_disadvantaged(c, reserved, now);
        erase_best(c, total.saturating_sub(done), by_uptime(now), |_| true);
    }
}

/// [`EvictionPolicy::select_to_evict`] with Bitcoin Core's default counts.
pub fn select_to_evict(candidates: Vec<EvictionCandidate>, now: Instant) -> Option<u64> {
    EvictionPolicy::default().select_to_evict(candidates, now)
}

/// `ratio` of `n`, rounded down, with the ratio clamped to 0..=1.
fn share(n: usize, ratio: f64) -> usize {
    // A NaN ratio survives the clamp and then casts to 0.
    (n as f64 * ratio.clamp(0.0, 1.0)) as usize
}

/// Reserves up to `budget` protected slots for disadvantaged networks,
/// dividing them evenly and letting networks with fewer candidates take
/// spare slots first. Returns how many peers it protected.
fn protect_disadvantaged(c: &mut Vec<EvictionCandidate>, budget: usize, now: Instant) -> usize {
    let mut nets = DISADVANTAGED.map(|net| (net, c.iter().filter(|x| x.network == net).count()));
    // Stable, so equal counts keep the order of DISADVANTAGED.
    nets.sort_by_key(|&(_, count)| count);
    let mut done = 0;
    while done < budget {
        let active = nets.iter().filter(|&&(_, count)| count > 0).count();
        if active == 0 {
            break;
        }
        let per_net = ((budget - done) / active).max(1);
        for (net, count) in nets.iter_mut().filter(|(_, count)| *count > 0) {
            let net = *net;
            let removed = erase_best(c, per_net, by_network(net, now), |x| x.network == net);
            done += removed;
            *count -= removed;
            if done >= budget {
                break;
            }
        }
    }
    done
}

/// Sorts `c` by `cmp` (least worth protecting first) and removes the
/// entries among the last `k` that satisfy `pred`. Returns how many it
/// removed. Mirrors Core: a `pred` failing in the tail wastes that slot.
fn erase_best<F, P>(c: &mut Vec<EvictionCandidate>, k: usize, cmp: F, pred: P) -> usize
where
    F: FnMut(&EvictionCandidate, &EvictionCandidate) -> Ordering,
    P: Fn(&EvictionCandidate) -> bool,
{
    c.sort_unstable_by(cmp);
    let start = c.len() - k.min(c.len());
    let mut keep = start;
    for i in start..c.len() {
        if !pred(&c[i]) {
            c.swap(keep, i);
            keep += 1;
        }
    }
    let removed = c.len() - keep;
    c.truncate(keep);
    removed
}

/// Keeps only the largest netgroup (ties: the one whose youngest member is
/// youngest) and returns its youngest member. An attacker's many young
/// connections from one range form the largest, youngest group.
fn youngest_of_largest_group(c: &mut [EvictionCandidate], now: Instant) -> Option<u64> {
    // Grouped by key, youngest first, so each run starts with its youngest.
    c.sort_unstable_by(|a, b| {
        a.keyed_netgroup
            .cmp(&b.keyed_netgroup)
            .then_with(|| seniority(a, b, now))
    });
    let mut best: Option<(usize, &EvictionCandidate)> = None;
    for group in c.chunk_by(|a, b| a.keyed_netgroup == b.keyed_netgroup) {
        let youngest = &group[0];
        let wins = best.is_none_or(|(size, other)| {
            group
                .len()
                .cmp(&size)
                .then_with(|| seniority(other, youngest, now))
                .is_gt()
        });
        if wins {
            best = Some((group.len(), youngest));
        }
    }
    best.map(|(_, youngest)| youngest.key)
}

fn is_block_relay_only(c: &EvictionCandidate) -> bool {
    !c.relay_txes && c.relevant_services
}

// The comparators below order candidates from least to most worth
// protecting; each ends in `seniority`, which is total, so the result never
// depends on the input order.

/// Shorter uptime is less worth; at equal uptime a higher key (a later
/// connection id) is.
fn seniority(a: &EvictionCandidate, b: &EvictionCandidate, now: Instant) -> Ordering {
    let up = |c: &EvictionCandidate| now.saturating_duration_since(c.connected);
    up(a).cmp(&up(b)).then_with(|| b.key.cmp(&a.key))
}

fn by_uptime(now: Instant) -> impl Fn(&EvictionCandidate, &EvictionCandidate) -> Ordering {
    move |a, b| seniority(a, b, now)
}

fn by_netgroup(now: Instant) -> impl Fn(&EvictionCandidate, &EvictionCandidate) -> Ordering {
    move |a, b| {
        a.keyed_netgroup
            .cmp(&b.keyed_netgroup)
            .then_with(|| seniority(a, b, now))
    }
}

fn by_ping(now: Instant) -> impl Fn(&EvictionCandidate, &EvictionCandidate) -> Ordering {
    // An unmeasured ping is the worst ping.
    let ping = |c: &EvictionCandidate| c.min_ping.unwrap_or(Duration::MAX);
    move |a, b| ping(b).cmp(&ping(a)).then_with(|| seniority(a, b, now))
}

fn by_tx(now: Instant) -> impl Fn(&EvictionCandidate, &EvictionCandidate) -> Ordering {
    // `None` (never sent one) sorts before any time. Bloom filters cost us
    // work, so among equals a peer using one is worth less.
    move |a, b| {
        a.last_tx
            .cmp(&b.last_tx)
            .then_with(|| a.relay_txes.cmp(&b.relay_txes))
            .then_with(|| b.bloom_filter.cmp(&a.bloom_filter))
            .then_with(|| seniority(a, b, now))
    }
}

fn by_block(now: Instant) -> impl Fn(&EvictionCandidate, &EvictionCandidate) -> Ordering {
    move |a, b| {
        a.last_block
            .cmp(&b.last_block)
            .then_with(|| a.relevant_services.cmp(&b.relevant_services))
            .then_with(|| seniority(a, b, now))
    }
}

fn by_block_relay_only(
    now: Instant,
) -> impl Fn(&EvictionCandidate, &EvictionCandidate) -> Ordering {
    // Transaction relayers first, so the tail holds block-relay-only peers.
    let block = by_block(now);
    move |a, b| b.relay_txes.cmp(&a.relay_txes).then_with(|| block(a, b))
}

fn by_network(
    net: CandidateNet,
    now: Instant,
) -> impl Fn(&EvictionCandidate, &EvictionCandidate) -> Ordering {
    // Members of `net` last, oldest at the very end.
    move |a, b| {
        (a.network == net)
            .cmp(&(b.network == net))
            .then_with(|| seniority(a, b, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::OnceLock;

    /// A fixed origin so that every test measures time from the same point.
    fn base() -> Instant {
        static BASE: OnceLock<Instant> = OnceLock::new();
        *BASE.get_or_init(Instant::now)
    }

    fn at(secs: u64) -> Instant {
        base() + Duration::from_secs(secs)
    }

    /// "Now" for tests that do not advance time: after every connection.
    fn now() -> Instant {
        at(1_000_000)
    }

    /// Inbound IPv4 candidate connected `secs` after the origin (larger is
    /// younger), alone in its netgroup.
    fn cand(key: u64, secs: u64) -> EvictionCandidate {
        EvictionCandidate::new(key, at(secs), key, CandidateNet::Ipv4)
    }

    /// A policy that protects nobody.
    fn none_protected() -> EvictionPolicy {
        EvictionPolicy {
            protect_netgroup: 0,
            protect_min_ping: 0,
            protect_recent_tx: 0,
            protect_block_relay_only: 0,
            protect_recent_block: 0,
            protect_uptime_ratio: 0.0,
            disadvantaged_share: 0.0,
        }
    }

    /// Evicts until the policy refuses and returns the keys left.
    fn survivors(policy: &EvictionPolicy, mut cands: Vec<EvictionCandidate>) -> BTreeSet<u64> {
        for _ in 0..=cands.len() {
            match policy.select_to_evict(cands.clone(), now()) {
                Some(victim) => cands.retain(|c| c.key != victim),
                None => return cands.iter().map(|c| c.key).collect(),
            }
        }
        panic!("eviction never stopped");
    }

    fn keys(range: impl IntoIterator<Item = u64>) -> BTreeSet<u64> {
        range.into_iter().collect()
    }

    /// Keys left after the ratio rule alone.
    fn left_after_ratio(cands: Vec<EvictionCandidate>) -> BTreeSet<u64> {
        let mut cands = cands;
        EvictionPolicy::default().protect_by_ratio(&mut cands, now());
        cands.iter().map(|c| c.key).collect()
    }

    #[test]
    fn defaults_are_cores() {
        let p = EvictionPolicy::default();
        assert_eq!(
            (
                p.protect_netgroup,
                p.protect_min_ping,
                p.protect_recent_tx,
                p.protect_block_relay_only,
                p.protect_recent_block
            ),
            (4, 8, 4, 8, 4)
        );
        assert_eq!((p.protect_uptime_ratio, p.disadvantaged_share), (0.5, 0.5));
    }

    #[test]
    fn empty_candidates_evict_nobody() {
        assert_eq!(select_to_evict(Vec::new(), now()), None);
        assert_eq!(none_protected().select_to_evict(Vec::new(), now()), None);
    }

    #[test]
    fn outbound_and_noban_peers_are_never_evicted() {
        let mut cands = Vec::new();
        for key in 0..10 {
            let mut c = cand(key, key);
            c.inbound = false;
            cands.push(c);
        }
        for key in 10..20 {
            let mut c = cand(key, key);
            c.noban = true;
            cands.push(c);
        }
        let policy = none_protected();
        assert_eq!(policy.select_to_evict(cands.clone(), now()), None);
        // One ordinary inbound peer, older than all the others, is the only
        // possible victim.
        cands.push(cand(99, 0));
        assert_eq!(policy.select_to_evict(cands, now()), Some(99));
    }

    #[test]
    fn netgroup_rule_protects_the_four_highest_keyed_groups() {
        let key = EvictionKey::from_keys(1, 2);
        let mut cands: Vec<_> = (0..20u8)
            .map(|i| {
                let group = key.keyed_netgroup(&NetGroup::Ipv4([i, 0]));
                EvictionCandidate::new(u64::from(i), at(u64::from(i)), group, CandidateNet::Ipv4)
            })
            .collect();
        cands.sort_by_key(|c| c.keyed_netgroup);
        let expected: BTreeSet<u64> = cands[16..].iter().map(|c| c.key).collect();
        let policy = EvictionPolicy {
            protect_netgroup: 4,
            ..none_protected()
        };
        assert_eq!(survivors(&policy, cands), expected);
    }

    #[test]
    fn netgroup_rule_may_protect_several_peers_of_one_group() {
        // Core protects the highest keyed values, not distinct groups.
        let mut cands: Vec<_> = (0..10).map(|k| cand(k, k)).collect();
        for key in [20, 21, 22] {
            cands.push(EvictionCandidate::new(
                key,
                at(key),
                500,
                CandidateNet::Ipv4,
            ));
        }
        let policy = EvictionPolicy {
            protect_netgroup: 4,
            ..none_protected()
        };
        assert_eq!(survivors(&policy, cands), keys([9, 20, 21, 22]));
    }

    #[test]
    fn ping_rule_protects_the_eight_lowest_pings() {
        // Low pings go to the youngest peers, which would otherwise go first.
        let cands = (0..20)
            .map(|k| {
                let mut c = cand(k, k);
                c.min_ping = (k % 4 != 0).then(|| Duration::from_millis(1_000 - k * 10));
                c
            })
            .collect();
        let policy = EvictionPolicy {
            protect_min_ping: 8,
            ..none_protected()
        };
        // Measured pings fall as k rises; multiples of 4 have none.
        assert_eq!(
            survivors(&policy, cands),
            keys([10, 11, 13, 14, 15, 17, 18, 19])
        );
    }

    #[test]
    fn tx_rule_protects_the_four_most_recent_with_cores_tie_breaks() {
        let mut cands: Vec<_> = (0..10).map(|k| cand(k, k)).collect();
        let tx = |key, secs, relay, bloom| {
            let mut c = cand(key, secs);
            c.last_tx = Some(at(if key == 10 { 600 } else { 500 }));
            c.relay_txes = relay;
            c.bloom_filter = bloom;
            c
        };
        cands.push(tx(10, 50, true, false)); // most recent transaction
        cands.push(tx(11, 1, false, false)); // not relaying: loses the tie
        cands.push(tx(12, 2, true, true)); // bloom filter: loses the tie
        cands.push(tx(13, 60, true, false)); // ties broken by uptime:
        cands.push(tx(14, 61, true, false)); // 13, 14 and 15 are older
        cands.push(tx(15, 62, true, false)); // than 16
        cands.push(tx(16, 63, true, false));
        let policy = EvictionPolicy {
            protect_recent_tx: 4,
            ..none_protected()
        };
        assert_eq!(survivors(&policy, cands), keys([10, 13, 14, 15]));
    }

    #[test]
    fn block_relay_only_rule_protects_up_to_eight() {
        let mut cands = Vec::new();
        for k in 0..12 {
            // Block-relay-only peers; later keys sent blocks more recently.
            let mut c = cand(k, 100 - k);
            c.relay_txes = false;
            c.relevant_services = true;
            c.last_block = Some(at(200 + k));
            cands.push(c);
        }
        for k in 20..30 {
            // Transaction relayers with even newer blocks do not count.
            let mut c = cand(k, k);
            c.relevant_services = true;
            c.last_block = Some(at(900));
            cands.push(c);
        }
        let policy = EvictionPolicy {
            protect_block_relay_only: 8,
            ..none_protected()
        };
        assert_eq!(survivors(&policy, cands), keys(4..12));
    }

    #[test]
    fn block_relay_only_slot_taken_by_peer_without_services_is_lost() {
        // As in Core, a non-relaying peer without the services we need
        // still sorts into the tail and uses up a slot it cannot take.
        let mut cands: Vec<_> = (0..8)
            .map(|k| {
                let mut c = cand(k, 100 + k);
                c.relay_txes = false;
                c.relevant_services = true;
                c.last_block = Some(at(300 - k));
                c
            })
            .collect();
        let mut odd = cand(20, 0);
        odd.relay_txes = false;
        odd.last_block = Some(at(900));
        cands.push(odd);
        let policy = EvictionPolicy {
            protect_block_relay_only: 8,
            ..none_protected()
        };
        // 7, the youngest, has the oldest block and falls outside the tail.
        assert_eq!(policy.select_to_evict(cands, now()), Some(7));
    }

    #[test]
    fn block_relay_only_rule_keeps_fewer_when_fewer_qualify() {
        let mut cands: Vec<_> = (0..10).map(|k| cand(k, k)).collect();
        for c in &mut cands[..3] {
            c.relay_txes = false;
            c.relevant_services = true;
        }
        let policy = EvictionPolicy {
            protect_block_relay_only: 8,
            ..none_protected()
        };
        assert_eq!(survivors(&policy, cands), keys(0..3));
    }

    #[test]
    fn block_rule_protects_the_four_most_recent() {
        let mut cands: Vec<_> = (0..10).map(|k| cand(k, k)).collect();
        for (k, secs) in [(10, 700), (11, 600), (12, 500), (13, 500), (14, 500)] {
            let mut c = cand(k, 50 - k);
            c.last_block = Some(at(secs));
            cands.push(c);
        }
        // Equal block times: relevant services win over uptime, so the
        // youngest of 12..15 is protected along with the older of 13, 14.
        cands[12].relevant_services = true;
        let policy = EvictionPolicy {
            protect_recent_block: 4,
            ..none_protected()
        };
        assert_eq!(survivors(&policy, cands), keys([10, 11, 12, 14]));
    }

    #[test]
    fn combined_rules_protect_exactly_their_counts() {
        // Each group of candidates excels in exactly one rule, so with
        // Core's defaults exactly 4 + 8 + 4 + 4 survive repeated eviction.
        let mut cands: Vec<_> = (0..60).map(|k| cand(k, 1_000 - k)).collect();
        for c in &mut cands[0..4] {
            c.keyed_netgroup = u64::MAX - c.key;
        }
        for c in &mut cands[4..12] {
            c.min_ping = Some(Duration::from_millis(5));
        }
        for c in &mut cands[12..16] {
            c.last_tx = Some(at(5_000));
        }
        for c in &mut cands[16..20] {
            c.last_block = Some(at(5_000));
        }
        assert_eq!(survivors(&EvictionPolicy::default(), cands), keys(0..20));
    }

    #[test]
    fn uptime_rule_protects_the_oldest_half() {
        assert_eq!(
            left_after_ratio((0..10).map(|k| cand(k, k)).collect()),
            keys(5..10)
        );
        assert_eq!(
            left_after_ratio((0..11).map(|k| cand(k, k)).collect()),
            keys(5..11)
        );
        // Five old peers in one netgroup would be its victims without the
        // uptime rule; with it, the youngest lone peer goes instead.
        let mut cands: Vec<_> = (0..10).map(|k| cand(k, k)).collect();
        for c in &mut cands[..5] {
            c.keyed_netgroup = 77;
        }
        let policy = EvictionPolicy {
            protect_uptime_ratio: 0.5,
            ..none_protected()
        };
        assert_eq!(policy.select_to_evict(cands.clone(), now()), Some(9));
        assert_eq!(none_protected().select_to_evict(cands, now()), Some(4));
    }

    #[test]
    fn onion_peers_get_reserved_uptime_slots() {
        // 16 old IPv4 peers and the 4 youngest on onion: the 4 onion peers
        // take reserved slots, the other 6 slots go to the oldest IPv4.
        let mut cands: Vec<_> = (0..20).map(|k| cand(k, k)).collect();
        for c in &mut cands[16..] {
            c.network = CandidateNet::Onion;
        }
        assert_eq!(left_after_ratio(cands.clone()), keys(6..16));
        // In one netgroup the youngest would go; it is an onion peer.
        for c in &mut cands {
            c.keyed_netgroup = 1;
        }
        let policy = EvictionPolicy {
            protect_uptime_ratio: 0.5,
            disadvantaged_share: 0.5,
            ..none_protected()
        };
        assert_eq!(policy.select_to_evict(cands.clone(), now()), Some(15));
        for c in &mut cands {
            c.network = CandidateNet::Ipv4;
        }
        assert_eq!(policy.select_to_evict(cands, now()), Some(19));
    }

    #[test]
    fn localhost_peers_get_reserved_uptime_slots() {
        let mut cands: Vec<_> = (0..20).map(|k| cand(k, k)).collect();
        cands[19].network = CandidateNet::Localhost;
        assert_eq!(left_after_ratio(cands), keys(9..19));
    }

    /// Candidates 0.. (older first) with the given network for each key.
    fn on_networks(nets: &[CandidateNet]) -> Vec<EvictionCandidate> {
        let mut cands: Vec<_> = (0..nets.len() as u64).map(|k| cand(k, k)).collect();
        for (c, net) in cands.iter_mut().zip(nets) {
            c.network = *net;
        }
        cands
    }

    #[test]
    fn reserved_slots_are_shared_over_several_passes() {
        use CandidateNet::*;
        // 20 candidates: 10 protected slots, 5 reserved. Localhost (1),
        // i2p (3) and onion (10) get 5 / 3 = 1 each in the first pass and
        // 2 / 2 = 1 each for the two left with peers in the second.
        let mut nets = vec![Ipv4; 6];
        nets.extend([Localhost, I2p, I2p, I2p]);
        nets.extend([Onion; 10]);
        // Reserved: 6, 7, 8, 10, 11; by uptime: 0..5.
        let left = keys([5, 9]).into_iter().chain(12..20).collect();
        assert_eq!(left_after_ratio(on_networks(&nets)), left);
    }

    #[test]
    fn reserved_slots_favour_networks_with_fewer_peers() {
        use CandidateNet::*;
        // 8 candidates: 4 protected, 2 reserved, one each for the two
        // smallest networks: onion (1) and localhost (2), not i2p (3).
        let nets = [Ipv4, Ipv4, I2p, I2p, I2p, Localhost, Localhost, Onion];
        // Reserved: 7 and 5; by uptime: 0 and 1.
        assert_eq!(left_after_ratio(on_networks(&nets)), keys([2, 3, 4, 6]));
        // Equal counts: CJDNS, then I2P, then localhost, then onion.
        let nets = [Ipv4, Ipv4, Ipv4, Ipv4, Onion, Localhost, I2p, Cjdns];
        assert_eq!(left_after_ratio(on_networks(&nets)), keys([2, 3, 4, 5]));
    }

    #[test]
    fn reservation_is_capped_at_half_of_the_protected_slots() {
        // All 20 on onion except the 2 oldest: only 5 of 10 slots reserved.
        let mut cands: Vec<_> = (0..20).map(|k| cand(k, k)).collect();
        for c in &mut cands[2..] {
            c.network = CandidateNet::Onion;
        }
        // Reserved: the 5 oldest onion peers 2..7; uptime: 0, 1, 7, 8, 9.
        assert_eq!(left_after_ratio(cands), keys(10..20));
    }

    #[test]
    fn victim_is_the_youngest_of_the_largest_group() {
        let mut cands = Vec::new();
        let mut push = |key, secs, group| {
            cands.push(EvictionCandidate::new(
                key,
                at(secs),
                group,
                CandidateNet::Ipv4,
            ));
        };
        push(1, 10, 100);
        push(2, 20, 100);
        push(3, 30, 100);
        push(4, 5, 200);
        push(5, 25, 200);
        push(6, 1, 200);
        push(7, 90, 300); // the youngest overall, but its group is smaller
        push(8, 80, 300);
        push(9, 15, 100);
        assert_eq!(none_protected().select_to_evict(cands, now()), Some(3));
    }

    #[test]
    fn equal_sized_groups_lose_by_their_youngest_member() {
        let mut cands = Vec::new();
        for (key, secs, group) in [(1, 10, 100), (2, 40, 100), (3, 5, 200), (4, 50, 200)] {
            cands.push(EvictionCandidate::new(
                key,
                at(secs),
                group,
                CandidateNet::Ipv4,
            ));
        }
        assert_eq!(
            none_protected().select_to_evict(cands.clone(), now()),
            Some(4)
        );
        // Equal connection times: the higher key counts as younger.
        cands[3].connected = at(40);
        assert_eq!(none_protected().select_to_evict(cands, now()), Some(4));
    }

    #[test]
    fn prefer_evict_peers_go_first_unless_protected() {
        let mut cands: Vec<_> = (0..6)
            .map(|k| EvictionCandidate::new(k, at(k), 100, CandidateNet::Ipv4))
            .collect();
        let mut odd = cand(10, 0);
        odd.prefer_evict = true;
        cands.push(odd);
        let policy = EvictionPolicy {
            protect_min_ping: 1,
            ..none_protected()
        };
        assert_eq!(policy.select_to_evict(cands.clone(), now()), Some(10));
        // The best ping protects it; the big group's youngest goes instead.
        cands[6].min_ping = Some(Duration::from_millis(1));
        assert_eq!(policy.select_to_evict(cands, now()), Some(5));
    }

    #[test]
    fn future_connection_times_count_as_no_uptime() {
        let cands = vec![cand(1, 2_000_000), cand(2, 10), cand(3, 3_000_000)];
        assert_eq!(none_protected().select_to_evict(cands, now()), Some(3));
    }

    #[test]
    fn ratios_are_clamped() {
        assert_eq!(share(10, 0.5), 5);
        assert_eq!(share(11, 0.5), 5);
        assert_eq!(share(10, 2.0), 10);
        assert_eq!(share(10, -1.0), 0);
        assert_eq!(share(10, f64::NAN), 0);
    }

    fn siphash(k0: u64, k1: u64, data: &[u8]) -> u64 {
        let mut h = SipHasher24::new(k0, k1);
        h.write(data);
        h.finish()
    }

    #[test]
    fn siphash_matches_reference_vectors() {
        // Key 00..0f, messages 00.. of length 0 and 15 (SipHash paper).
        let (k0, k1) = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(siphash(k0, k1, &[]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash(k0, k1, &msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    #[allow(deprecated)] // std's keyed SipHasher serves only as a cross-check
    fn siphash_matches_std_for_split_writes() {
        let data: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        for len in 0..data.len() {
            let mut reference = std::hash::SipHasher::new_with_keys(11, 22);
            reference.write(&data[..len]);
            let mut ours = SipHasher24::new(11, 22);
            let (a, b) = data[..len].split_at(len / 3);
            ours.write(a);
            ours.write(b);
            assert_eq!(ours.finish(), reference.finish(), "length {len}");
        }
    }

    #[test]
    fn keyed_netgroups_depend_on_key_and_group() {
        let a = EvictionKey::from_keys(1, 2);
        let b = EvictionKey::from_keys(1, 3);
        let group = NetGroup::Ipv4([203, 0]);
        assert_eq!(a.keyed_netgroup(&group), a.clone().keyed_netgroup(&group));
        assert_ne!(a.keyed_netgroup(&group), b.keyed_netgroup(&group));
        // Field boundaries and variants are part of the encoding.
        let split1 = NetGroup::Custom("a".into(), "bc".into());
        let split2 = NetGroup::Custom("ab".into(), "c".into());
        assert_ne!(a.keyed_netgroup(&split1), a.keyed_netgroup(&split2));
        let onion = NetGroup::Onion(0);
        let dns = NetGroup::Dns("x".into());
        assert_ne!(a.keyed_netgroup(&onion), a.keyed_netgroup(&dns));
        let all: BTreeSet<u64> = (0..=u16::MAX)
            .map(|i| a.keyed_netgroup(&NetGroup::Ipv4(i.to_be_bytes())))
            .collect();
        assert_eq!(all.len(), 65_536);
    }

    #[test]
    fn random_keys_differ_and_debug_hides_them() {
        let group = NetGroup::Ipv6([0x20, 0x01, 0x0d, 0xb8]);
        let a = EvictionKey::random();
        let b = EvictionKey::random();
        assert_ne!(a.keyed_netgroup(&group), b.keyed_netgroup(&group));
        assert_eq!(
            format!("{:?}", EvictionKey::from_keys(1, 2)),
            "EvictionKey { .. }"
        );
    }

    #[test]
    fn addresses_map_to_network_classes() {
        let net = |s: &str| CandidateNet::from_addr(&s.parse().unwrap());
        assert_eq!(net("192.0.2.1:8333"), CandidateNet::Ipv4);
        assert_eq!(net("[::ffff:192.0.2.1]:8333"), CandidateNet::Ipv4);
        assert_eq!(net("[2001:db8::1]:8333"), CandidateNet::Ipv6);
        assert_eq!(net("127.0.0.5:8333"), CandidateNet::Localhost);
        assert_eq!(net("[::1]:8333"), CandidateNet::Localhost);
        assert_eq!(net("[::ffff:127.0.0.1]:8333"), CandidateNet::Localhost);
        assert_eq!(net("example.com:8333"), CandidateNet::Other);
        let custom = |n: &str| CandidateNet::from_addr(&Addr::custom(n, "x").unwrap());
        assert_eq!(custom("I2P"), CandidateNet::I2p);
        assert_eq!(custom("cjdns"), CandidateNet::Cjdns);
        assert_eq!(custom("other"), CandidateNet::Other);
        assert!(CandidateNet::Onion.is_disadvantaged());
        assert!(CandidateNet::Localhost.is_disadvantaged());
        assert!(!CandidateNet::Ipv4.is_disadvantaged());
        assert!(!CandidateNet::Other.is_disadvantaged());
    }

    const SLOTS: usize = 125;
    const HONEST: u64 = 100;
    const ATTACKER_RANGE: NetGroup = NetGroup::Ipv4([203, 0]);

    /// 100 honest peers in 100 netgroups: connected early, good pings, a
    /// third recently relayed transactions and a fifth blocks.
    fn honest_peers(key: &EvictionKey) -> Vec<EvictionCandidate> {
        (0..HONEST)
            .map(|i| {
                let group = NetGroup::Ipv4([(i + 1) as u8, (i * 7) as u8]);
                let mut c = EvictionCandidate::new(
                    i,
                    at(i),
                    key.keyed_netgroup(&group),
                    CandidateNet::Ipv4,
                );
                c.min_ping = Some(Duration::from_millis(20 + i));
                c.relevant_services = true;
                c.last_tx = (i % 3 == 0).then(|| at(500 + i));
                c.last_block = (i % 5 == 0).then(|| at(600 + i));
                c
            })
            .collect()
    }

    /// Runs 1,000 attacker connections from one /16 against 125 full
    /// inbound slots; returns how many times the policy evicted someone.
    fn run_attack(key: &EvictionKey) -> usize {
        let attacker_group = key.keyed_netgroup(&ATTACKER_RANGE);
        let mut inbound = honest_peers(key);
        let mut evictions = 0;
        for j in 0..1_000u64 {
            let now = at(1_000 + j);
            if inbound.len() == SLOTS {
                let victim = select_to_evict(inbound.clone(), now);
                // With only these peers connected someone is always evictable.
                let victim = victim.expect("no victim chosen");
                assert!(victim >= HONEST, "honest peer {victim} evicted");
                inbound.retain(|c| c.key != victim);
                evictions += 1;
            }
            let mut c = EvictionCandidate::new(HONEST + j, now, attacker_group, CandidateNet::Ipv4);
            c.min_ping = (j % 2 == 0).then(|| Duration::from_millis(900));
            inbound.push(c);
            let attackers = inbound.iter().filter(|c| c.key >= HONEST).count();
            assert!(
                attackers <= SLOTS - HONEST as usize,
                "{attackers} attacker slots"
            );
            assert_eq!(inbound.len() - attackers, HONEST as usize);
        }
        evictions
    }

    #[test]
    fn attacker_from_one_range_only_evicts_itself() {
        assert_eq!(run_attack(&EvictionKey::from_keys(0x5eed, 0xcafe)), 975);
    }

    #[test]
    fn attacker_winning_the_netgroup_rule_still_only_evicts_itself() {
        // Find a fixed key under which the attacker's range has the highest
        // keyed netgroup, so four of its connections are protected.
        let key = (0..10_000u64)
            .map(|seed| EvictionKey::from_keys(seed, !seed))
            .find(|key| {
                let attacker = key.keyed_netgroup(&ATTACKER_RANGE);
                honest_peers(key)
                    .iter()
                    .all(|c| c.keyed_netgroup < attacker)
            })
            .expect("some key ranks the attacker first");
        assert_eq!(run_attack(&key), 975);
    }
}
