//! DNS seeding: first peer addresses for a node that knows none, from the
//! DNS seeds of its network (btcd's `SeedFromDNS`).
//!
//! [`seed_from_dns`] looks up every seed of a [`NetParams`] in parallel
//! through a [`Lookup`] (the system resolver, a pure-Rust resolver aimed
//! at a chosen name server, Tor's RESOLVE, or your own), turns the answers
//! into [`SeedAddr`]s with the network's default port and a made-up
//! last-seen time 3 to 7 days ago, and hands each seed's [`SeedResult`] to
//! a callback as soon as it is in.
//!
//! ```
//! use connmgr::seed::{seed_from_dns, LookupError, NetParams, SeedOptions};
//! use std::net::{IpAddr, Ipv4Addr};
//! use std::time::Duration;
//!
//! let net = NetParams::new("examplenet", 19333).seed("seed.example", false);
//! // A stand-in resolver; `SystemLookup` is the usual choice.
//! let lookup = |_host: &str, _timeout: Duration| -> Result<Vec<IpAddr>, LookupError> {
//!     Ok(vec![IpAddr::V4(Ipv4Addr::new(203, 0, 113, 2))])
//! };
//! let mut found = Vec::new();
//! seed_from_dns(&net, &lookup, &SeedOptions::new(), |result| {
//!     found.extend(result.addrs.into_iter().map(|seeded| seeded.addr));
//! });
//! assert_eq!(found, vec!["203.0.113.2:19333".parse().unwrap()]);
//! ```

mod lookup;
mod params;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::thread::{self, Scope};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use crate::addr::Addr;

#[cfg(feature = "hickory")]
pub use self::lookup::{DnsTransport, HickoryLookup};
pub use self::lookup::{Lookup, LookupError, LookupErrorKind, SystemLookup, TorLookup};
pub use self::params::{DnsSeed, NetParams, SF_NODE_NETWORK};

/// Log target for seeding messages, shared with the rest of the crate.
const LOG_TARGET: &str = "connmgr";
const DAY_SECS: u64 = 24 * 60 * 60;
/// Seeded addresses get a last-seen time this many seconds ago at least…
const MIN_AGE_SECS: u64 = 3 * DAY_SECS;
/// …and at most: old enough that an address manager prefers addresses it
/// hears about from peers, yet recent enough not to be discarded.
const MAX_AGE_SECS: u64 = 7 * DAY_SECS;

/// What one lookup thread reports.
type Outcome = Result<Vec<IpAddr>, LookupError>;

/// An address learned from a DNS seed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SeedAddr {
    /// The peer: an [`Addr::Ip`] with the network's default port.
    pub addr: Addr,
    /// A made-up last-seen time 3 to 7 days before seeding began, so that
    /// seeded addresses rank below ones learned from peers.
    pub last_seen: SystemTime,
    /// The service bits asked of the seed ([`SeedOptions::services`]): a
    /// hint until the peer's own version message says otherwise.
    pub services: u64,
}

/// What one seed gave.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SeedResult {
    /// The seed's host name as configured.
    pub seed: String,
    /// The name actually looked up (the host, or its `x<services>.`
    /// filtering subdomain).
    pub query: String,
    /// The addresses, at most [`SeedOptions::max_per_seed`]; empty on error.
    pub addrs: Vec<SeedAddr>,
    /// Why the seed gave no addresses, if it did not.
    pub error: Option<LookupError>,
}

/// How [`seed_from_dns`] seeds. Start from [`SeedOptions::new`] and change
/// what differs.
#[derive(Clone, Debug)]
pub struct SeedOptions {
    services: u64,
    max_per_seed: usize,
    timeout: Duration,
    now: Option<SystemTime>,
    rng_seed: Option<u64>,
    allow_local: bool,
}

impl Default for SeedOptions {
    fn default() -> Self {
        SeedOptions {
            services: SF_NODE_NETWORK,
            max_per_seed: 32,
            timeout: Duration::from_secs(15),
            now: None,
            rng_seed: None,
            allow_local: false,
        }
    }
}

impl SeedOptions {
    /// Full nodes, at most 32 addresses per seed, 15 s per seed, the real
    /// clock and a random generator seeded from the OS.
    pub fn new() -> Self {
        Self::default()
    }

    /// The service bits wanted (default [`SF_NODE_NETWORK`]). Anything
    /// else makes filtering seeds be asked through their
    /// `x<hex services>.` subdomain.
    pub fn services(mut self, services: u64) -> Self {
        self.services = services;
        self
    }

    /// At most this many addresses per seed (default 32); a random subset
    /// is kept when a seed returns more.
    pub fn max_per_seed(mut self, max: usize) -> Self {
        self.max_per_seed = max;
        self
    }

    /// How long each seed may take (default 15 s). Seeds run in parallel,
    /// so this also bounds the wait for the callbacks of all of them.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The time last-seen ages count back from (default: the system clock
    /// when seeding starts). Tests fix it to check ages exactly.
    pub fn now(mut self, now: SystemTime) -> Self {
        self.now = Some(now);
        self
    }

    /// Keeps loopback, private, shared (100.64/10), link-local and unique
    /// local addresses in answers (default: dropped, since a public seed
    /// has no business handing them out and they would point the node at
    /// its own network). Turn on for seeds on a private network or in tests.
    pub fn allow_local(mut self, allow: bool) -> Self {
        self.allow_local = allow;
        self
    }

    /// Seeds the random choices (subsets and ages) so that runs repeat
    /// (default: fresh randomness each call).
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.rng_seed = Some(seed);
        self
    }
}

/// Looks up every DNS seed of `params` and calls `on_seed` once per seed,
/// on the calling thread, as each result comes in.
///
/// Each seed is looked up on its own thread, with the filtering subdomain
/// when [`DnsSeed::query_name`] calls for it. A seed that fails or gives no
/// usable address is reported with an error and logged (target `connmgr`);
/// the others are unaffected. A seed still unanswered at the timeout is
/// reported as [`LookupErrorKind::TimedOut`] then, even if its lookup
/// ignores the timeout. Returns once every lookup thread has ended, so no
/// thread outlives the call; with the built-in lookups that is about the
/// timeout at most. A network without seeds returns at once.
pub fn seed_from_dns<L, F>(params: &NetParams, lookup: &L, options: &SeedOptions, mut on_seed: F)
where
    L: Lookup + ?Sized,
    F: FnMut(SeedResult),
{
    if params.seeds().is_empty() {
        log::debug!(target: LOG_TARGET, "network {} has no DNS seeds", params.name());
        return;
    }
    let plan = Plan::new(params, options);
    thread::scope(|scope| {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut pending = vec![true; plan.queries.len()];
        for (index, query) in plan.queries.iter().enumerate() {
            if let Err(error) =
                spawn_lookup(scope, lookup, index, query, options.timeout, tx.clone())
            {
                pending[index] = false;
                on_seed(plan.finish(index, Err(error)));
            }
        }
        drop(tx);
        collect(&plan, &rx, &mut pending, &mut on_seed);
    });
}

/// Everything fixed before the lookups start, shared by the collecting
/// loop.
struct Plan<'a> {
    params: &'a NetParams,
    options: &'a SeedOptions,
    queries: Vec<String>,
    now: SystemTime,
    deadline: Option<Instant>,
    // One generator per seed, drawn in seed order, so results do not
    // depend on which lookup answers first.
    rngs: Vec<SmallRng>,
}

impl<'a> Plan<'a> {
    fn new(params: &'a NetParams, options: &'a SeedOptions) -> Self {
        let mut master = match options.rng_seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::seed_from_u64(rand::random()),
        };
        let seeds = params.seeds();
        Plan {
            params,
            options,
            queries: seeds
                .iter()
                .map(|seed| seed.query_name(options.services))
                .collect(),
            now: options.now.unwrap_or_else(SystemTime::now),
            // No deadline at all if the timeout is too large to represent.
            deadline: Instant::now().checked_add(options.timeout),
            rngs: seeds
                .iter()
                .map(|_| SmallRng::seed_from_u64(master.random()))
                .collect(),
        }
    }

    /// Turns a lookup's outcome for seed `index` into its result, and logs.
    fn finish(&self, index: usize, outcome: Outcome) -> SeedResult {
        let seed = self.params.seeds()[index].host().to_owned();
        let query = self.queries[index].clone();
        // Each index is finished once, so a copy of its generator will do.
        let mut rng = self.rngs[index].clone();
        let outcome = outcome.and_then(|ips| self.to_seed_addrs(&query, ips, &mut rng));
        match outcome {
            Ok(addrs) => {
                log::info!(target: LOG_TARGET, "{} addresses from DNS seed {seed}", addrs.len());
                SeedResult {
                    seed,
                    query,
                    addrs,
                    error: None,
                }
            }
            Err(error) => {
                log::warn!(target: LOG_TARGET, "DNS seed {seed} failed: {error}");
                SeedResult {
                    seed,
                    query,
                    addrs: Vec::new(),
                    error: Some(error),
                }
            }
        }
    }

    /// Dialable, distinct addresses, capped, with port, age and services.
    fn to_seed_addrs(
        &self,
        query: &str,
        ips: Vec<IpAddr>,
        rng: &mut SmallRng,
    ) -> Result<Vec<SeedAddr>, LookupError> {
        let mut ips = usable_ips(ips, self.options.allow_local);
        if ips.is_empty() {
            return Err(LookupError::new(
                LookupErrorKind::NotFound,
                query,
                "the answer held no usable address",
            ));
        }
        if ips.len() > self.options.max_per_seed {
            ips.shuffle(rng);
            ips.truncate(self.options.max_per_seed);
        }
        let port = self.params.default_port();
        Ok(ips
            .into_iter()
            .map(|ip| SeedAddr {
                addr: Addr::Ip(SocketAddr::new(ip, port)),
                last_seen: random_last_seen(self.now, rng),
                services: self.options.services,
            })
            .collect())
    }
}

/// Starts the lookup thread for seed `index`; its outcome goes to `tx`.
fn spawn_lookup<'scope, 'env, L>(
    scope: &'scope Scope<'scope, 'env>,
    lookup: &'env L,
    index: usize,
    query: &'env str,
    timeout: Duration,
    tx: Sender<(usize, Outcome)>,
) -> Result<(), LookupError>
where
    L: Lookup + ?Sized,
{
    thread::Builder::new()
        .name(format!("connmgr-seed-{index}"))
        .spawn_scoped(scope, move || {
            let outcome = guarded_lookup(lookup, query, timeout);
            // After the timeout nobody listens any more; that is fine.
            let _ = tx.send((index, outcome));
        })
        .map(drop)
        .map_err(|err| {
            LookupError::new(
                LookupErrorKind::Resolver,
                query,
                "cannot start lookup thread",
            )
            .with_source(err)
        })
}

/// Runs a lookup, turning a panic into an error so one bad seed (or
/// lookup) cannot take seeding down.
fn guarded_lookup<L: Lookup + ?Sized>(lookup: &L, query: &str, timeout: Duration) -> Outcome {
    panic::catch_unwind(AssertUnwindSafe(|| lookup.lookup(query, timeout))).unwrap_or_else(|_| {
        Err(LookupError::new(
            LookupErrorKind::Panicked,
            query,
            "the lookup panicked",
        ))
    })
}

/// Delivers outcomes as they arrive until all are in or the deadline
/// passes, then reports the stragglers as timed out.
fn collect<F: FnMut(SeedResult)>(
    plan: &Plan<'_>,
    rx: &Receiver<(usize, Outcome)>,
    pending: &mut [bool],
    on_seed: &mut F,
) {
    while pending.iter().any(|&waiting| waiting) {
        let received = match plan.deadline {
            Some(deadline) => rx.recv_deadline(deadline),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let Ok((index, outcome)) = received else {
            break;
        };
        pending[index] = false;
        on_seed(plan.finish(index, outcome));
    }
    for (index, _) in pending.iter().enumerate().filter(|(_, &waiting)| waiting) {
        let query = &plan.queries[index];
        on_seed(plan.finish(
            index,
            Err(LookupError::timed_out(query, plan.options.timeout)),
        ));
    }
}

/// The dialable answers, each once, in the answer's order: an
/// IPv4-mapped IPv6 address is the IPv4 address it holds; unspecified,
/// multicast and broadcast ones go (a bogus answer must not make the node
/// connect to itself or flood a group), and local ones unless
/// `allow_local`.
pub(crate) fn usable_ips(ips: Vec<IpAddr>, allow_local: bool) -> Vec<IpAddr> {
    let mut seen = HashSet::new();
    ips.into_iter()
        .map(|ip| ip.to_canonical())
        .filter(|ip| is_dialable(ip) && (allow_local || !is_local(ip)) && seen.insert(*ip))
        .collect()
}

fn is_dialable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

/// Loopback, private, shared, link-local or unique local.
pub(crate) fn is_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// A time between 3 and 7 days (inclusive) before `now`.
fn random_last_seen(now: SystemTime, rng: &mut SmallRng) -> SystemTime {
    let age = Duration::from_secs(rng.random_range(MIN_AGE_SECS..=MAX_AGE_SECS));
    // Only a clock set near 1970 could underflow; clamp rather than fail.
    now.checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH)
}
