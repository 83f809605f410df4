//! Manager settings, their builder, and the errors that reject bad ones.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::addr::Addr;
use crate::core::CoreConfig;
use crate::core::DecayingSpec;
use crate::limits;
use crate::policy::backoff::Backoff;
use crate::policy::networks::Network;
use crate::policy::permissions::Permissions;
use crate::policy::tags::{BumpFn, DecayFn};
use crate::policy::trim::TrimPolicyError;
use crate::runtime::clock::{Clock, GuardedClock, SystemClock};
use crate::runtime::conn::Conn;
use crate::runtime::event::Event;
use crate::runtime::fdlimit::RESERVED_DESCRIPTORS;
use crate::runtime::gate::Gate;
use crate::runtime::handle::Handle;
use crate::runtime::notifier::Callbacks;
use crate::runtime::request::ConnReq;
use crate::runtime::source::AddressSource;
use crate::transport::dial::Dial;
use crate::transport::listener::Listener;
use crate::types::CloseReason;

/// Everything a [`ConnManager`](crate::ConnManager) needs. Build one with
/// [`Config::builder`]; [`ConnManager::new`](crate::ConnManager::new)
/// checks it.
pub struct Config {
    /// The first `permissions` subnet that did not parse, and why.
    pub(crate) bad_permission: Option<(String, String)>,
    pub(crate) dialer: Option<Arc<dyn Dial>>,
    pub(crate) source: Option<Arc<dyn AddressSource>>,
    pub(crate) listeners: Vec<Box<dyn Listener>>,
    pub(crate) listen_addrs: Vec<SocketAddr>,
    pub(crate) core: CoreConfig,
    pub(crate) stop_grace: Duration,
    pub(crate) pool_size: usize,
    pub(crate) queue_size: usize,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) close_on_stop: bool,
    pub(crate) callbacks: Callbacks,
    pub(crate) dial_gate: Option<Gate>,
    pub(crate) accept_gate: Option<Gate>,
    pub(crate) anchors_file: Option<PathBuf>,
    pub(crate) decaying: Vec<DecayingSpec>,
    pub(crate) ban_file: Option<PathBuf>,
    pub(crate) inline_dial: bool,
    pub(crate) max_queued_events: usize,
    pub(crate) check_descriptors: bool,
}

impl Config {
    /// A builder with the defaults: target outbound 8, max inbound 125,
    /// linear backoff from 5 s capped at 5 min, a connection must stay up
    /// 30 s before its retry count resets, throttling after 25 automatic
    /// failures in a row, 10 s dial timeout, 8 dialer threads with a queue
    /// of 1024 jobs, the system clock, and established connections closed
    /// on stop. There is no default dialer.
    ///
    /// ```
    /// use connmgr::{Backoff, Config, ConfigError, ConnManager, TcpDialer};
    /// use std::time::Duration;
    ///
    /// let config = Config::builder()
    ///     .dialer(TcpDialer::new())
    ///     .target_outbound(4)
    ///     .max_inbound(32)
    ///     .backoff(Backoff::Exponential { jitter: 0.2 })
    ///     .dial_timeout(Duration::from_secs(5))
    ///     .build();
    /// assert!(config.validate().is_ok());
    ///
    /// // A bad setting is a typed error that says what to change.
    /// let bad = Config::builder().dialer(TcpDialer::new()).dialer_pool_size(0).build();
    /// let err = ConnManager::new(bad).unwrap_err();
    /// assert_eq!(err, ConfigError::ZeroDialerPool);
    /// assert!(err.to_string().contains("dialer_pool_size"));
    /// ```
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder {
            config: Config {
                dialer: None,
                source: None,
                listeners: Vec::new(),
                listen_addrs: Vec::new(),
                core: CoreConfig {
                    // Secret per manager: the eviction key derives from it.
                    rng_seed: rand::random(),
                    ..CoreConfig::default()
                },
                bad_permission: None,
                stop_grace: Duration::from_secs(5),
                pool_size: 8,
                queue_size: 1024,
                clock: Arc::new(SystemClock),
                close_on_stop: true,
                callbacks: Callbacks::default(),
                dial_gate: None,
                accept_gate: None,
                anchors_file: None,
                decaying: Vec::new(),
                ban_file: None,
                inline_dial: false,
                max_queued_events: 65_536,
                check_descriptors: true,
            },
        }
    }

    /// The descriptors this config can use at once: every outbound and
    /// inbound connection it allows (both automatic targets, a feeler,
    /// the inbound limit), one per listener, one socket per
    /// dialer thread and replacement (none when every dial and address
    /// request runs on the handler thread), and
    /// [`RESERVED_DESCRIPTORS`](crate::RESERVED_DESCRIPTORS) for files and
    /// lookups. `start` compares it with the process's limit.
    ///
    /// ```
    /// use connmgr::Config;
    ///
    /// let c = Config::builder().target_outbound(8).max_inbound(125).build();
    /// // 8 full-relay, 2 block-relay, 1 feeler, 125 inbound, 8 dialers (2 each).
    /// assert_eq!(c.descriptors_needed(), 8 + 2 + 1 + 125 + 2 * 8 + connmgr::RESERVED_DESCRIPTORS);
    /// ```
    pub fn descriptors_needed(&self) -> u64 {
        let listeners = self.listeners.len() + self.listen_addrs.len();
        let pool = if self.needs_pool() {
            2 * self.pool_size
        } else {
            0
        };
        let feeler = usize::from(self.core.feeler_interval.is_some());
        [
            self.core.target_outbound,
            self.core.target_block_relay,
            feeler,
            self.core.max_inbound,
            listeners,
            pool,
        ]
        .into_iter()
        .map(|n| n as u64)
        .fold(RESERVED_DESCRIPTORS, u64::saturating_add)
    }

    /// Whether dials run on the handler thread: `inline_dial(true)`, or a
    /// dialer that says it never blocks with no dial gate (a gate is a
    /// closure, which may block).
    pub(crate) fn dials_inline(&self) -> bool {
        self.inline_dial
            || (self.dialer.as_ref().is_some_and(|d| d.never_blocks()) && self.dial_gate.is_none())
    }

    /// Whether the address source runs on the handler thread: none is set,
    /// it says it never blocks, or `inline_dial(true)`.
    pub(crate) fn fetches_inline(&self) -> bool {
        self.inline_dial || self.source.as_ref().is_none_or(|s| s.never_blocks())
    }

    /// Whether any work goes to dialer threads.
    pub(crate) fn needs_pool(&self) -> bool {
        !(self.dials_inline() && self.fetches_inline())
    }

    /// Checks every setting, naming the first one that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = &self.core;
        if self.dialer.is_none() {
            return Err(ConfigError::NoDialer);
        }
        if self.pool_size == 0 {
            return Err(ConfigError::ZeroDialerPool);
        }
        if self.queue_size == 0 {
            return Err(ConfigError::ZeroDialQueue);
        }
        if self.core.dial_timeout.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::ZeroDialTimeout);
        }
        if c.retry_duration.is_zero() {
            return Err(ConfigError::ZeroRetryDuration);
        }
        if c.max_retry_duration < c.retry_duration {
            return Err(ConfigError::MaxRetryBelowRetry {
                retry: c.retry_duration,
                max: c.max_retry_duration,
            });
        }
        if let Backoff::Exponential { jitter } = c.backoff {
            if !(0.0..=1.0).contains(&jitter) {
                return Err(ConfigError::InvalidJitter(jitter));
            }
        }
        if c.max_failed_attempts == 0 {
            return Err(ConfigError::ZeroMaxFailedAttempts);
        }
        if c.ban_threshold == 0 {
            return Err(ConfigError::ZeroBanThreshold);
        }
        let positive = [
            (
                "feeler_interval",
                c.feeler_interval.unwrap_or(Duration::MAX),
            ),
            ("feeler_timeout", c.feeler_timeout),
            ("one_shot_timeout", c.one_shot_timeout),
        ];
        if let Some((setting, _)) = positive.into_iter().find(|(_, d)| d.is_zero()) {
            return Err(ConfigError::ZeroDuration(setting));
        }
        c.trim_policy().map_err(ConfigError::Watermarks)?;
        c.networks
            .check(c.target_outbound)
            .map_err(ConfigError::NetworkRules)?;
        if let Some((subnet, reason)) = &self.bad_permission {
            return Err(ConfigError::Permission {
                subnet: subnet.clone(),
                reason: reason.clone(),
            });
        }
        self.check_bounds()?;
        self.check_decaying()
    }

    /// Every size and duration against its bound in [`crate::limits`].
    fn check_bounds(&self) -> Result<(), ConfigError> {
        let c = &self.core;
        let (low, high) = c.watermarks.unwrap_or((0, 0));
        let sizes = [
            (
                "target_outbound",
                c.target_outbound,
                limits::MAX_TARGET_OUTBOUND,
            ),
            (
                "target_block_relay",
                c.target_block_relay,
                limits::MAX_TARGET_OUTBOUND,
            ),
            ("max_inbound", c.max_inbound, limits::MAX_INBOUND),
            (
                "force_inbound_margin",
                c.force_inbound_margin,
                limits::MAX_INBOUND,
            ),
            (
                "permissions",
                c.permissions.len(),
                limits::MAX_PERMISSION_ENTRIES,
            ),
            (
                "max_inbound_per_ip",
                c.max_inbound_per_ip.unwrap_or(0),
                limits::MAX_INBOUND,
            ),
            (
                "max_inbound_per_netgroup",
                c.max_inbound_per_netgroup.unwrap_or(0),
                limits::MAX_INBOUND,
            ),
            ("dialer_pool_size", self.pool_size, limits::MAX_DIALER_POOL),
            ("dial_queue_size", self.queue_size, limits::MAX_DIAL_QUEUE),
            ("watermarks (low)", low, limits::MAX_WATERMARK),
            ("watermarks (high)", high, limits::MAX_WATERMARK),
            ("anchor_count", c.anchor_count, limits::MAX_ANCHORS),
            ("max_peers", c.max_peers, limits::MAX_PEERS),
            ("max_bans", c.max_bans, limits::MAX_BANS),
            (
                "max_queued_events",
                self.max_queued_events,
                limits::MAX_QUEUED_EVENTS,
            ),
            (
                "decaying tags",
                self.decaying.len(),
                limits::MAX_DECAYING_TAGS,
            ),
        ];
        for (setting, given, max) in sizes {
            check_size(setting, given, max)?;
        }
        let durations = [
            ("retry_duration", c.retry_duration),
            ("max_retry_duration", c.max_retry_duration),
            ("min_stable_duration", c.min_stable_duration),
            ("dial_timeout", c.dial_timeout.unwrap_or_default()),
            ("stop_grace", self.stop_grace),
            ("ban_duration", c.ban_duration),
            ("trim_grace", c.trim_grace),
            ("trim_silence", c.trim_silence),
            ("idle_peer_ttl", c.idle_peer_ttl),
            ("feeler_interval", c.feeler_interval.unwrap_or_default()),
            ("feeler_timeout", c.feeler_timeout),
            ("one_shot_timeout", c.one_shot_timeout),
        ];
        for (setting, given) in durations {
            check_duration(setting, given)?;
        }
        for d in &self.decaying {
            check_duration("decaying tag interval", d.interval)?;
        }
        Ok(())
    }

    fn check_decaying(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for d in &self.decaying {
            if d.interval.is_zero() {
                return Err(ConfigError::DecayingTag(format!(
                    "decaying tag {:?} has a zero interval: give it a positive one, e.g. 1 min",
                    d.name
                )));
            }
            if !seen.insert(d.name.as_str()) {
                return Err(ConfigError::DecayingTag(format!(
                    "decaying tag {:?} is registered twice: give each a distinct name",
                    d.name
                )));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("has_dialer", &self.dialer.is_some())
            .field("has_address_source", &self.source.is_some())
            .field("listeners", &self.listeners.len())
            .field("listen_addrs", &self.listen_addrs)
            .field("core", &self.core)
            .field("dial_timeout", &self.core.dial_timeout)
            .field("stop_grace", &self.stop_grace)
            .field("pool_size", &self.pool_size)
            .field("queue_size", &self.queue_size)
            .field("close_on_stop", &self.close_on_stop)
            .finish()
    }
}

/// `given` against its bound `max`, naming `setting` if it is above.
pub(crate) fn check_size(
    setting: &'static str,
    given: usize,
    max: usize,
) -> Result<(), ConfigError> {
    if given > max {
        return Err(ConfigError::TooLarge {
            setting,
            given: given as u64,
            max: max as u64,
        });
    }
    Ok(())
}

/// `given` against [`limits::MAX_DURATION`], naming `setting` if longer.
pub(crate) fn check_duration(setting: &'static str, given: Duration) -> Result<(), ConfigError> {
    if given > limits::MAX_DURATION {
        return Err(ConfigError::TooLong {
            setting,
            given,
            max: limits::MAX_DURATION,
        });
    }
    Ok(())
}

/// Builds a [`Config`]. Every setter takes and returns the builder.
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// How outbound connections are made (required), e.g.
    /// [`TcpDialer`](crate::TcpDialer).
    pub fn dialer(mut self, dialer: impl Dial) -> Self {
        self.config.dialer = Some(Arc::new(dialer));
        self
    }

    /// Where automatic outbound connections get addresses. Without one the
    /// manager is connect-only: it dials only what it is asked to.
    pub fn address_source(mut self, source: impl AddressSource) -> Self {
        self.config.source = Some(Arc::new(source));
        self.config.core.has_address_source = true;
        self
    }

    /// How many full-relay automatic outbound connections to keep
    /// (default 8, as Bitcoin Core). Block-relay-only connections, feelers
    /// and explicit requests come on top.
    pub fn target_outbound(mut self, n: usize) -> Self {
        self.config.core.target_outbound = n;
        self
    }

    /// How many block-relay-only automatic outbound connections to keep
    /// (default 2, as Bitcoin Core), filled from the anchors first and
    /// independently of the full-relay target. The node should relay
    /// only blocks over them ([`ConnType::BlockRelay`](crate::ConnType)).
    pub fn target_block_relay(mut self, n: usize) -> Self {
        self.config.core.target_block_relay = n;
        self
    }

    /// The mean time between feelers (default 2 min; `None` makes none).
    /// Once every automatic target is met, the manager opens one
    /// short-lived connection at a time to an address from the source,
    /// after an exponentially distributed wait around this mean, and
    /// closes it when the node calls
    /// [`Handle::handshake_done`](crate::Handle::handshake_done) or at the
    /// feeler timeout. Feelers never count against a target; their
    /// results tell the address source which addresses answer.
    pub fn feeler_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.core.feeler_interval = interval;
        self
    }

    /// How long a feeler may stay open waiting for its handshake
    /// (default 60 s, Bitcoin Core's peer connect timeout).
    pub fn feeler_timeout(mut self, d: Duration) -> Self {
        self.config.core.feeler_timeout = d;
        self
    }

    /// How long a one-shot connection may stay open before the manager
    /// closes it (default 5 min, as Bitcoin Core's address-fetch
    /// connections).
    pub fn one_shot_timeout(mut self, d: Duration) -> Self {
        self.config.core.one_shot_timeout = d;
        self
    }

    /// How many inbound connections may be live at once (default 125);
    /// more are closed as they arrive.
    pub fn max_inbound(mut self, n: usize) -> Self {
        self.config.core.max_inbound = n;
        self
    }

    /// A TCP address to listen on, bound by `ConnManager::new` with a
    /// backlog of 1024. Port 0 picks a free port; read it back with
    /// [`Handle::listen_addrs`](crate::Handle::listen_addrs).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.config.listen_addrs.push(addr);
        self
    }

    /// A listener of any kind, already bound.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.config.listeners.push(Box::new(listener));
        self
    }

    /// The base wait between retries (default 5 s).
    pub fn retry_duration(mut self, d: Duration) -> Self {
        self.config.core.retry_duration = d;
        self
    }

    /// The longest wait between retries (default 5 min).
    pub fn max_retry_duration(mut self, d: Duration) -> Self {
        self.config.core.max_retry_duration = d;
        self
    }

    /// How waits grow (default [`Backoff::Linear`], as btcd).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.config.core.backoff = backoff;
        self
    }

    /// How long a connection must stay up before its request's retry count
    /// resets (default 30 s), so a peer that accepts and drops at once
    /// still backs off to the cap.
    pub fn min_stable_duration(mut self, d: Duration) -> Self {
        self.config.core.min_stable_duration = d;
        self
    }

    /// Automatic failures in a row after which each replacement waits the
    /// retry duration (default 25).
    pub fn max_failed_attempts(mut self, n: u32) -> Self {
        self.config.core.max_failed_attempts = n;
        self
    }

    /// How long each dial may take (default 10 s), counted from when the
    /// manager decides to dial, so time spent waiting for a free dialer
    /// thread counts. The dialer is told the deadline; at the deadline
    /// the manager reports the dial as timed out and cancels it whatever
    /// the dialer does, closes anything it returns later, and starts a
    /// replacement thread in case the dialer is stuck (at most
    /// `dialer_pool_size` replacements at once).
    pub fn dial_timeout(mut self, d: Duration) -> Self {
        self.config.core.dial_timeout = Some(d);
        self
    }

    /// How long `stop` waits for dialer threads still inside a dialer
    /// that ignores its cancel (default 5 s). Past it, `stop` returns and
    /// leaves such threads to finish on their own; whatever they return
    /// is closed.
    pub fn stop_grace(mut self, d: Duration) -> Self {
        self.config.stop_grace = d;
        self
    }

    /// Dialer threads (default 8).
    pub fn dialer_pool_size(mut self, n: usize) -> Self {
        self.config.pool_size = n;
        self
    }

    /// Dial jobs that may wait for a dialer thread (default 1024); more
    /// wait in the handler's own backlog.
    pub fn dial_queue_size(mut self, n: usize) -> Self {
        self.config.queue_size = n;
        self
    }

    /// The clock (default the system clock); tests use a
    /// [`ManualClock`](crate::ManualClock). The manager contains its
    /// panics and never lets its readings go backwards: a `now` that
    /// panics is answered with the last good reading plus the real time
    /// since, a `wake_at` that panics with a real timer.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.config.clock = Arc::new(GuardedClock::new(Arc::new(clock)));
        self
    }

    /// Whether `stop` closes established connections (default true). When
    /// false they stay open and belong to the user.
    pub fn close_on_stop(mut self, close: bool) -> Self {
        self.config.close_on_stop = close;
        self
    }

    /// Seed of the Core's random generator: backoff jitter and the secret
    /// key of inbound eviction's netgroup protection. Default: drawn at
    /// random for each config; set one only for reproducible runs, since a
    /// known seed lets an attacker predict which netgroups are protected.
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.config.core.rng_seed = seed;
        self
    }

    /// Called on the notifier thread when an outbound request connects.
    pub fn on_connection(
        mut self,
        f: impl Fn(&Handle, ConnReq, Conn) + Send + Sync + 'static,
    ) -> Self {
        self.config.callbacks.connected = Some(Box::new(f));
        self
    }

    /// Called on the notifier thread when an established outbound
    /// connection closes, with why it closed.
    pub fn on_disconnection(
        mut self,
        f: impl Fn(&Handle, ConnReq, CloseReason) + Send + Sync + 'static,
    ) -> Self {
        self.config.callbacks.disconnected = Some(Box::new(f));
        self
    }

    /// Called on the notifier thread when an inbound connection is
    /// accepted.
    pub fn on_accept(mut self, f: impl Fn(&Handle, Conn) + Send + Sync + 'static) -> Self {
        self.config.callbacks.accepted = Some(Box::new(f));
        self
    }

    /// Called on the notifier thread for every event that no callback
    /// above takes.
    pub fn on_event(mut self, f: impl Fn(&Handle, Event) + Send + Sync + 'static) -> Self {
        self.config.callbacks.event = Some(Box::new(f));
        self
    }

    /// Whether automatic outbound connections are limited to one per
    /// routable netgroup (IPv4 /16, IPv6 /32, each onion host its own)
    /// (default true). Loopback, private and link-local addresses are
    /// exempt: they are reachable only on networks you control.
    pub fn outbound_diversity(mut self, on: bool) -> Self {
        self.config.core.diversity = on;
        self
    }

    /// A rule run on a dialer thread before each dial: `Err(reason)`
    /// refuses the address, which fails the dial with
    /// [`DialError::Rejected`](crate::DialError::Rejected). A panicking
    /// rule refuses.
    pub fn dial_gate(
        mut self,
        f: impl Fn(&Addr) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.config.dial_gate = Some(Arc::new(f));
        self
    }

    /// A rule run on the accept thread for each inbound connection before
    /// the manager or the user sees it: `Err(reason)` closes it. A
    /// panicking rule refuses.
    pub fn accept_gate(
        mut self,
        f: impl Fn(&Addr) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.config.accept_gate = Some(Arc::new(f));
        self
    }

    /// A file for anchors: at a clean stop the addresses of the
    /// longest-lived block-relay-only automatic connections are written
    /// there (Bitcoin Core's anchors); at start they are read (and the file
    /// removed) and dialed first, as block-relay-only connections, before
    /// the address source is asked for those slots.
    pub fn anchors_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.anchors_file = Some(path.into());
        self
    }

    /// How many anchors a clean stop saves (default 2).
    pub fn anchor_count(mut self, n: usize) -> Self {
        self.config.core.anchor_count = n;
        self
    }

    /// Trims connections (both directions) down to `low` whenever there
    /// are more than `high`: unprotected ones outside the grace period,
    /// lowest tag value first, inbound before outbound. Off by default;
    /// keep `high` above the outbound target plus the inbound you expect,
    /// or automatic connections will be trimmed and refilled in turn.
    pub fn watermarks(mut self, low: usize, high: usize) -> Self {
        self.config.core.watermarks = Some((low, high));
        self
    }

    /// How long a new connection is safe from trimming (default 1 min).
    pub fn trim_grace(mut self, d: Duration) -> Self {
        self.config.core.trim_grace = d;
        self
    }

    /// Most peers the peer book holds (default 16,384): tag-store entries
    /// and protected peers are each bounded by it. At the bound a tag for
    /// a new peer without a connection forgets the oldest such entry, and
    /// a protection for one is refused with
    /// [`Error::PeerBookFull`](crate::Error::PeerBookFull).
    pub fn max_peers(mut self, n: usize) -> Self {
        self.config.core.max_peers = n;
        self
    }

    /// Most events left waiting (default 65,536), counted twice over:
    /// those waiting in the [`Handle::events`] receiver, and those waiting
    /// behind a callback that has not returned. Past it new events are
    /// dropped with a warning, and a connection in a dropped event is
    /// closed (the manager sees the close like any other), so neither a
    /// receiver nobody drains nor a callback that blocks can grow memory
    /// without bound.
    pub fn max_queued_events(mut self, n: usize) -> Self {
        self.config.max_queued_events = n;
        self
    }

    /// Most bans kept (default 100,000); at the bound a new ban replaces
    /// expired ones, then the one that ends soonest.
    pub fn max_bans(mut self, n: usize) -> Self {
        self.config.core.max_bans = n;
        self
    }

    /// How long a peer with tags but no connection (and no protection) is
    /// kept before a timer forgets it (default 10 min).
    pub fn idle_peer_ttl(mut self, d: Duration) -> Self {
        self.config.core.idle_peer_ttl = d;
        self
    }

    /// The least time between two trims (default 10 s).
    pub fn trim_silence(mut self, d: Duration) -> Self {
        self.config.core.trim_silence = d;
        self
    }

    /// Registers a decaying tag: every `interval`, `decay` runs over each
    /// peer's value; [`Handle::bump_decaying`](crate::Handle::bump_decaying)
    /// combines bumps through `bump`.
    pub fn decaying_tag(
        mut self,
        name: &str,
        interval: Duration,
        decay: DecayFn,
        bump: BumpFn,
    ) -> Self {
        self.config.decaying.push(DecayingSpec {
            name: name.to_owned(),
            interval,
            decay,
            bump,
        });
        self
    }

    /// The ban score at which a misbehaving peer is disconnected and
    /// banned (default 100, as btcd).
    pub fn ban_threshold(mut self, score: u32) -> Self {
        self.config.core.ban_threshold = score;
        self
    }

    /// The ban score from which misbehaviour is logged as a warning
    /// (default 50).
    pub fn warn_threshold(mut self, score: u32) -> Self {
        self.config.core.warn_threshold = score;
        self
    }

    /// How long a peer that reaches the ban threshold stays banned
    /// (default 24 h).
    pub fn ban_duration(mut self, d: Duration) -> Self {
        self.config.core.ban_duration = d;
        self
    }

    /// A file that keeps the ban list across restarts: loaded by
    /// `ConnManager::new` (a corrupt file is a [`ConfigError::BanFile`]),
    /// rewritten whenever the list changes.
    pub fn ban_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.ban_file = Some(path.into());
        self
    }

    /// At most `n` live inbound connections from one IP address (default:
    /// no limit, as one host may run several nodes behind a NAT). Checked
    /// before a slot is taken or made by eviction, so a flood from one
    /// host is refused without pushing out other peers; refusals are
    /// counted in [`Stats::refusals`](crate::Stats).
    pub fn max_inbound_per_ip(mut self, n: usize) -> Self {
        self.config.core.max_inbound_per_ip = Some(n);
        self
    }

    /// At most `n` live inbound connections from one netgroup (an IPv4
    /// /16, an IPv6 /32, 16 groups each for onion, I2P and CJDNS; default:
    /// no limit). Checked like [`max_inbound_per_ip`](Self::max_inbound_per_ip).
    pub fn max_inbound_per_netgroup(mut self, n: usize) -> Self {
        self.config.core.max_inbound_per_netgroup = Some(n);
        self
    }

    /// When inbound slots are full, evict an inbound connection chosen by
    /// Bitcoin Core's rules instead of refusing the newcomer (default
    /// off). Outbound and protected peers are never evicted; report ping
    /// and usefulness with [`Handle::report_ping`](crate::Handle::report_ping)
    /// and friends so that good peers are kept. The rules protect up to 20
    /// peers before choosing, so eviction needs more inbound slots than
    /// that; with fewer, newcomers are refused as without it.
    pub fn evict_inbound(mut self, on: bool) -> Self {
        self.config.core.evict_inbound = on;
        self
    }

    /// Automatic (full-relay, block-relay-only) and feeler connections
    /// use only addresses on `networks`, as Bitcoin Core's `-onlynet`;
    /// addresses on other networks, and DNS names, are skipped like banned
    /// ones. Manual requests and inbound connections are not affected.
    pub fn only_networks(mut self, networks: &[Network]) -> Self {
        self.config.core.networks.only(networks);
        self
    }

    /// At most `n` automatic connections (both types together) on
    /// `network`; further addresses on it are skipped.
    pub fn max_outbound_on(mut self, network: Network, n: usize) -> Self {
        self.config.core.networks.set_max(network, n);
        self
    }

    /// At least `n` full-relay connections on `network`: once the free
    /// full-relay slots are no more than what the minimums still need,
    /// each new slot takes only addresses on a network below its minimum.
    /// When the source has none for it, reservations pause for the
    /// longest retry wait, so the slot is filled from any network
    /// meanwhile. The minimums must fit `target_outbound`
    /// ([`ConfigError::NetworkRules`] otherwise).
    ///
    /// ```
    /// use connmgr::policy::Network;
    /// use connmgr::{Config, ConfigError, MemoryNetwork};
    ///
    /// let net = MemoryNetwork::new();
    /// let too_many = Config::builder()
    ///     .dialer(net.dialer())
    ///     .target_outbound(2)
    ///     .min_outbound_on(Network::Onion, 3)
    ///     .build();
    /// assert!(matches!(too_many.validate(), Err(ConfigError::NetworkRules(_))));
    /// ```
    pub fn min_outbound_on(mut self, network: Network, n: usize) -> Self {
        self.config.core.networks.set_min(network, n);
        self
    }

    /// Bitcoin Core's rule of keeping at least one outbound connection on
    /// every network it can reach: a minimum of one full-relay connection
    /// on each of `reachable`.
    pub fn keep_one_outbound_per_network(mut self, reachable: &[Network]) -> Self {
        for net in reachable {
            let min = self.config.core.networks.min(*net).max(1);
            self.config.core.networks.set_min(*net, min);
        }
        self
    }

    /// Whether manual and one-shot requests may connect to a peer that
    /// already has a connection (either direction) or a dial in flight
    /// (default true: btcd's `Connect` always dials). With `false`, as
    /// Bitcoin Core's added nodes, such a one-off request fails with
    /// [`DialError::Rejected`](crate::DialError::Rejected) and a permanent
    /// one retries with backoff until the other connection is gone, unless
    /// the request says [`ConnReq::allow_duplicate`](crate::ConnReq::allow_duplicate).
    /// Automatic requests and feelers never dial a peer in use.
    pub fn manual_duplicates(mut self, allow: bool) -> Self {
        self.config.core.manual_duplicates = allow;
        self
    }

    /// Grants `permissions` to every peer whose address is in `subnet`
    /// (`"10.0.0.0/8"`, `"2001:db8::/32"`, or one address), as Bitcoin
    /// Core's `-whitelist`: inbound connections from it and dials to it.
    /// A peer in several subnets gets all their permissions. A subnet that
    /// does not parse is a [`ConfigError::Permission`] from `build`'s
    /// validation; at most
    /// [`MAX_PERMISSION_ENTRIES`](crate::limits::MAX_PERMISSION_ENTRIES).
    ///
    /// ```
    /// use connmgr::{Config, ConfigError, MemoryNetwork, Permissions};
    ///
    /// let net = MemoryNetwork::new();
    /// let ok = Config::builder()
    ///     .dialer(net.dialer())
    ///     .permissions("10.0.0.0/8", Permissions::NOBAN | Permissions::FORCE_INBOUND)
    ///     .build();
    /// assert!(ok.validate().is_ok());
    /// let bad = Config::builder()
    ///     .dialer(net.dialer())
    ///     .permissions("10.0.0.0/33", Permissions::NOBAN)
    ///     .build();
    /// assert!(matches!(bad.validate(), Err(ConfigError::Permission { .. })));
    /// ```
    pub fn permissions(mut self, subnet: impl AsRef<str>, permissions: Permissions) -> Self {
        let text = subnet.as_ref();
        match text.parse() {
            Ok(subnet) => self.config.core.permissions.push(subnet, permissions),
            Err(e) => {
                let bad = (text.chars().take(100).collect(), e.to_string());
                self.config.bad_permission.get_or_insert(bad);
            }
        }
        self
    }

    /// How far past `max_inbound` peers with the `FORCE_INBOUND`
    /// permission may go when no inbound connection can be evicted for
    /// them (default 4).
    pub fn force_inbound_margin(mut self, n: usize) -> Self {
        self.config.core.force_inbound_margin = n;
        self
    }

    /// How many inbound peers each of Bitcoin Core's eviction rules
    /// protects before one is chosen (default: Core's counts, 4 by
    /// netgroup, 8 by ping, 4 by transactions, 8 block-relay-only, 4 by
    /// blocks, then half by uptime). Used with
    /// [`evict_inbound`](Self::evict_inbound).
    pub fn eviction_policy(mut self, policy: crate::policy::EvictionPolicy) -> Self {
        self.config.core.eviction_policy = policy;
        self
    }

    /// Declares that the dialer, the address source and the dial gate
    /// complete at once and never block, so the handler thread calls them
    /// itself instead of handing each dial to the pool: two thread
    /// hand-offs fewer per connection. Default off. Not needed for a
    /// dialer or source that says so itself ([`Dial::never_blocks`],
    /// [`AddressSource::never_blocks`]; `MemoryDialer` does): this setting
    /// is for closures, which cannot. Anything that can block — a socket,
    /// a lock held elsewhere, a DNS lookup — must not be used this way: it
    /// would stall the whole manager. Panics are still caught.
    pub fn inline_dial(mut self, on: bool) -> Self {
        self.config.inline_dial = on;
        self
    }

    /// Whether `start` fails when the process's descriptor limit is too
    /// low for the connections this config allows (default true). Either
    /// way `start` first raises the soft limit as far as the hard limit
    /// lets it; with false a shortfall is only logged.
    pub fn check_descriptors(mut self, check: bool) -> Self {
        self.config.check_descriptors = check;
        self
    }

    /// The finished config (checked by `ConnManager::new`).
    pub fn build(self) -> Config {
        self.config
    }
}

/// A setting that cannot work, and what to do instead.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// No dialer was set.
    NoDialer,
    /// The dialer pool has no threads.
    ZeroDialerPool,
    /// The dial queue has no room.
    ZeroDialQueue,
    /// The dial timeout is zero.
    ZeroDialTimeout,
    /// The retry duration is zero.
    ZeroRetryDuration,
    /// The maximum retry wait is shorter than the base retry wait.
    MaxRetryBelowRetry {
        /// The base wait.
        retry: Duration,
        /// The maximum.
        max: Duration,
    },
    /// The backoff jitter is outside 0.0 to 1.0.
    InvalidJitter(f64),
    /// The failure throttle threshold is zero.
    ZeroMaxFailedAttempts,
    /// The trimming watermarks are inconsistent.
    Watermarks(TrimPolicyError),
    /// A decaying tag cannot be registered; the message says why.
    DecayingTag(String),
    /// The ban threshold is zero, which would ban every peer at once.
    ZeroBanThreshold,
    /// The per-network rules cannot work; the message says why.
    NetworkRules(String),
    /// A `permissions` subnet does not parse.
    Permission {
        /// The subnet as given.
        subnet: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A duration setting that must be positive is zero; it names the
    /// setting.
    ZeroDuration(&'static str),
    /// The ban file exists but cannot be read or is corrupt.
    BanFile(String),
    /// A size setting is above its bound (see [`crate::limits`]).
    TooLarge {
        /// The setting, as its builder method is named.
        setting: &'static str,
        /// The value given.
        given: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// A duration setting is above [`crate::limits::MAX_DURATION`].
    TooLong {
        /// The setting, as its builder method is named.
        setting: &'static str,
        /// The value given.
        given: Duration,
        /// The longest value allowed.
        max: Duration,
    },
    /// The operating system refused to start the handler thread.
    Spawn(String),
    /// A listen address could not be bound.
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The operating system's reason.
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NoDialer => f.write_str(
                "no dialer configured: set one with ConfigBuilder::dialer, e.g. TcpDialer::new()",
            ),
            ConfigError::ZeroDialerPool => {
                f.write_str("dialer pool size is 0: set dialer_pool_size to at least 1")
            }
            ConfigError::ZeroDialQueue => {
                f.write_str("dial queue size is 0: set dial_queue_size to at least 1")
            }
            ConfigError::ZeroDialTimeout => {
                f.write_str("dial timeout is 0: set dial_timeout to a positive duration, e.g. 10 s")
            }
            ConfigError::ZeroRetryDuration => f.write_str(
                "retry duration is 0, which would retry in a busy loop: set retry_duration, e.g. 5 s",
            ),
            ConfigError::MaxRetryBelowRetry { retry, max } => write!(
                f,
                "max retry duration {max:?} is below the retry duration {retry:?}: \
                 raise max_retry_duration or lower retry_duration"
            ),
            ConfigError::InvalidJitter(j) => write!(
                f,
                "backoff jitter {j} is outside 0.0..=1.0: use a share, e.g. 0.2 for up to 20%"
            ),
            ConfigError::ZeroMaxFailedAttempts => f.write_str(
                "max failed attempts is 0, which would throttle from the first failure: \
                 set max_failed_attempts to at least 1 (default 25)",
            ),
            ConfigError::Watermarks(e) => write!(f, "invalid watermarks: {e}"),
            ConfigError::DecayingTag(why) => f.write_str(why),
            ConfigError::NetworkRules(why) => write!(f, "per-network rules: {why}"),
            ConfigError::Permission { subnet, reason } => write!(
                f,
                "permissions subnet {subnet:?} does not parse: {reason}; \
                 give an address or a subnet such as \"10.0.0.0/8\""
            ),
            ConfigError::ZeroDuration(setting) => write!(
                f,
                "{setting} is 0: give it a positive duration (or leave the default)"
            ),
            ConfigError::ZeroBanThreshold => f.write_str(
                "ban threshold is 0, which would ban every peer on its first score: \
                 set ban_threshold to at least 1 (default 100)",
            ),
            ConfigError::TooLarge {
                setting,
                given,
                max,
            } => write!(f, "{setting} is {given}, above its bound of {max}: set it to at most {max}"),
            ConfigError::TooLong {
                setting,
                given,
                max,
            } => write!(
                f,
                "{setting} is {given:?}, above its bound of {max:?} (one year): set a shorter one"
            ),
            ConfigError::BanFile(why) => write!(
                f,
                "{why}; fix or remove the ban file, or point ban_file elsewhere"
            ),
            ConfigError::Spawn(why) => write!(
                f,
                "cannot start the handler thread: {why}; free threads or memory and try again"
            ),
            ConfigError::Listen { addr, reason } => write!(
                f,
                "cannot listen on {addr}: {reason}; pick a free address or port 0"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}
