//! The policy settings the Core runs with, and their validation.

use std::time::Duration;

use crate::policy::backoff::Backoff;
use crate::policy::eviction::EvictionPolicy;
use crate::policy::networks::NetworkRules;
use crate::policy::permissions::PermissionTable;
use crate::policy::trim::{TrimPolicy, TrimPolicyError, DEFAULT_GRACE, DEFAULT_SILENCE};

/// The policy settings of a [`Core`](super::Core). The manager's
/// [`Config`](crate::Config) builder fills one; a Core driven directly
/// takes it as it is.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CoreConfig {
    /// Full-relay automatic outbound connections to keep.
    pub target_outbound: usize,
    /// Block-relay-only automatic outbound connections to keep, filled
    /// from the anchors first.
    pub target_block_relay: usize,
    /// Mean time between feelers (exponentially distributed); `None`
    /// makes none. A feeler starts only when every automatic target is
    /// met with established connections, and at most one runs at a time.
    pub feeler_interval: Option<Duration>,
    /// How long a feeler may stay open waiting for the node to report its
    /// handshake finished.
    pub feeler_timeout: Duration,
    /// How long a one-shot connection may stay open.
    pub one_shot_timeout: Duration,
    /// Whether an address source exists; without one the Core never makes
    /// automatic requests (connect-only mode).
    pub has_address_source: bool,
    /// Live inbound connections allowed.
    pub max_inbound: usize,
    /// Live inbound connections allowed from one IP address (IPv4-mapped
    /// IPv6 counted as IPv4); `None` sets no limit.
    pub max_inbound_per_ip: Option<usize>,
    /// Live inbound connections allowed from one netgroup (an IPv4 /16,
    /// an IPv6 /32, ...); `None` sets no limit.
    pub max_inbound_per_netgroup: Option<usize>,
    /// The base retry step.
    pub retry_duration: Duration,
    /// The longest wait between retries.
    pub max_retry_duration: Duration,
    /// How waits grow.
    pub backoff: Backoff,
    /// How long a connection must stay up before its retry count resets.
    pub min_stable_duration: Duration,
    /// Consecutive automatic failures after which each replacement waits
    /// `retry_duration`.
    pub max_failed_attempts: u32,
    /// Seed of the Core's random generator (backoff jitter, the eviction
    /// key): two Cores with one seed fed the same inputs behave the same.
    pub rng_seed: u64,
    /// At most one automatic outbound connection per routable netgroup.
    pub diversity: bool,
    /// How many long-lived block-relay-only addresses a clean stop
    /// reports as anchors.
    pub anchor_count: usize,
    /// Connection watermarks `(low, high)` for trimming; `None` never trims.
    pub watermarks: Option<(usize, usize)>,
    /// How long a new connection is safe from trimming.
    pub trim_grace: Duration,
    /// The least time between two trims.
    pub trim_silence: Duration,
    /// Ban score at which a misbehaving peer is banned and disconnected.
    pub ban_threshold: u32,
    /// Ban score from which misbehaviour is logged as a warning.
    pub warn_threshold: u32,
    /// How long a peer that reached the ban threshold stays banned.
    pub ban_duration: Duration,
    /// Most peers the peer book holds, tag-store entries and protected
    /// peers counted separately. At the bound, tagging or protecting a new
    /// peer that has no connection first forgets the oldest unconnected,
    /// unprotected entry; if there is none it is refused (and logged).
    pub max_peers: usize,
    /// Most bans kept; at the bound a new ban replaces expired ones, then
    /// the one that ends soonest.
    pub max_bans: usize,
    /// How long an unprotected peer that has tags but no connection is
    /// kept; a timer forgets it afterwards.
    pub idle_peer_ttl: Duration,
    /// How long an outbound dial may take, counted from when the Core asks
    /// for it (so time spent waiting for a free dialer counts). At the
    /// deadline the Core reports the dial as timed out whatever the dialer
    /// does, and a result that comes later is closed. `None` leaves every
    /// deadline to the dialer.
    pub dial_timeout: Option<Duration>,
    /// When inbound slots are full, evict a connection (chosen by Bitcoin
    /// Core's rules) for the newcomer instead of refusing it.
    pub evict_inbound: bool,
    /// How many peers each eviction rule protects (Bitcoin Core's counts
    /// by default).
    pub eviction_policy: EvictionPolicy,
    /// Which networks automatic connections use, and per-network limits.
    pub networks: NetworkRules,
    /// Whether manual and one-shot requests may dial a peer that already
    /// has a connection or a dial in flight (btcd's `Connect` always
    /// dials). When false, such a request fails (a permanent one retries
    /// with backoff) unless it allows duplicates itself.
    pub manual_duplicates: bool,
    /// Permissions granted by subnet to inbound connections and dials.
    pub permissions: PermissionTable,
    /// How far past `max_inbound` force-inbound peers may go when no
    /// connection can be evicted for them.
    pub force_inbound_margin: usize,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            target_outbound: 8,
            target_block_relay: 2,
            feeler_interval: Some(Duration::from_secs(2 * 60)),
            feeler_timeout: Duration::from_secs(60),
            one_shot_timeout: Duration::from_secs(5 * 60),
            has_address_source: false,
            max_inbound: 125,
            max_inbound_per_ip: None,
            max_inbound_per_netgroup: None,
            retry_duration: Duration::from_secs(5),
            max_retry_duration: Duration::from_secs(300),
            backoff: Backoff::Linear,
            min_stable_duration: Duration::from_secs(30),
            max_failed_attempts: 25,
            rng_seed: 0,
            diversity: true,
            anchor_count: 2,
            watermarks: None,
            trim_grace: DEFAULT_GRACE,
            trim_silence: DEFAULT_SILENCE,
            ban_threshold: 100,
            warn_threshold: 50,
            ban_duration: Duration::from_secs(24 * 60 * 60),
            evict_inbound: false,
            eviction_policy: EvictionPolicy::default(),
            permissions: PermissionTable::default(),
            networks: NetworkRules::default(),
            manual_duplicates: true,
            force_inbound_margin: 4,
            dial_timeout: Some(Duration::from_secs(10)),
            max_peers: 16_384,
            max_bans: 100_000,
            idle_peer_ttl: Duration::from_secs(10 * 60),
        }
    }
}

impl CoreConfig {
    /// The trimming policy the watermarks describe, if any.
    pub fn trim_policy(&self) -> Result<Option<TrimPolicy>, TrimPolicyError> {
        let Some((low, high)) = self.watermarks else {
            return Ok(None);
        };
        let policy = TrimPolicy::new(low, high)?
            .with_grace(self.trim_grace)
            .with_silence(self.trim_silence);
        Ok(Some(policy))
    }
}
