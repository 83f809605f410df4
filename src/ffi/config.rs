//! The config object: C setters that record settings, turned into a
//! [`Config`](crate::Config) when a manager is created. Strings must parse
//! and sizes and durations must be within their bounds
//! ([`crate::limits`]) when set; the rest is checked by `ConnManager::new`.

use std::ffi::{c_char, c_void};
use std::net::SocketAddr;
use std::time::Duration;

use super::error::{guard, obj_arg, out_arg, str_arg, ConnmgrStatus, Failure, FfiResult};
use super::events::{self, CAddressSource, ConnmgrAddressSourceFn, ConnmgrCallbacks, UserData};
use crate::limits;
use crate::runtime::config::{check_duration, check_size};
use crate::{
    Backoff, Config, ConfigBuilder, Network, Permissions, Socks5Dialer, Socks5Proxy, TcpDialer,
};

/// Backoff kind for connmgr_config_set_backoff: btcd's linear schedule
/// (retry count × retry duration, capped at the maximum). The default.
pub const CONNMGR_BACKOFF_LINEAR: u32 = 0;
/// Backoff kind for connmgr_config_set_backoff: the wait doubles on each
/// retry, capped at the maximum, then shortened by a random share of up to
/// `jitter` (0.0 to 1.0).
pub const CONNMGR_BACKOFF_EXPONENTIAL: u32 = 1;

/// Manager settings under construction (opaque). Create one with
/// connmgr_config_new, set what you need (everything has a default except
/// that there is no address source and no callbacks), pass it to
/// connmgr_manager_new (which copies it; it may be reused or freed right
/// after), and free it with connmgr_config_free. Not thread-safe: use one
/// config from one thread at a time.
#[derive(Default)]
pub struct ConnmgrConfig {
    target_outbound: Option<usize>,
    target_block_relay: Option<usize>,
    feeler_interval: Option<Option<Duration>>,
    max_inbound: Option<usize>,
    max_inbound_per_ip: Option<usize>,
    max_inbound_per_netgroup: Option<usize>,
    permissions: Vec<(String, Permissions)>,
    only_networks: Option<Vec<Network>>,
    evict_inbound: Option<bool>,
    feeler_timeout: Option<Duration>,
    one_shot_timeout: Option<Duration>,
    force_inbound_margin: Option<usize>,
    manual_duplicates: Option<bool>,
    event_queue: bool,
    /// Further settings, applied to the builder in call order.
    ops: Vec<BuilderOp>,
    /// Changes to the default eviction rules, in call order.
    pub(crate) eviction_rules: Vec<EvictionRule>,
    max_on: Vec<(Network, usize)>,
    min_on: Vec<(Network, usize)>,
    retry_duration: Option<Duration>,
    max_retry_duration: Option<Duration>,
    backoff: Option<Backoff>,
    pool_size: Option<usize>,
    dial_timeout: Option<Duration>,
    stop_grace: Option<Duration>,
    check_descriptors: Option<bool>,
    proxy: Option<ProxySettings>,
    /// A separate proxy for onion addresses, and one for I2P.
    onion_proxy: Option<SocketAddr>,
    i2p_proxy: Option<SocketAddr>,
    /// SOCKS5 connect and handshake timeouts, when set.
    socks_timeouts: Option<(Duration, Duration)>,
    proxy_all: bool,
    listen: Vec<SocketAddr>,
    source: Option<(
        unsafe extern "C" fn(*mut c_void, *mut c_char, usize) -> bool,
        UserData,
    )>,
    callbacks: ConnmgrCallbacks,
}

struct ProxySettings {
    addr: SocketAddr,
    isolate: bool,
    auth: Option<(String, String)>,
}

impl ConnmgrConfig {
    /// The Rust config these settings describe, with a SOCKS5-capable TCP
    /// dialer. Only settings the caller made are applied; the rest keep
    /// the Rust defaults.
    /// Whether the manager gets a pull queue.
    pub(crate) fn wants_queue(&self) -> bool {
        self.event_queue
    }

    /// With `dry`, the config is built only to be looked at
    /// (connmgr_config_descriptors_needed): resources given for one manager
    /// are borrowed, not taken, and nothing is claimed on shared networks.
    pub(crate) fn to_config(
        &self,
        queue: Option<&super::queue::EventQueue>,
        dry: bool,
    ) -> FfiResult<Config> {
        let mut b = Config::builder();
        if let Some(n) = self.target_outbound {
            b = b.target_outbound(n);
        }
        if let Some(n) = self.target_block_relay {
            b = b.target_block_relay(n);
        }
        if let Some(interval) = self.feeler_interval {
            b = b.feeler_interval(interval);
        }
        if let Some(n) = self.max_inbound {
            b = b.max_inbound(n);
        }
        for (subnet, p) in &self.permissions {
            b = b.permissions(subnet, *p);
        }
        if let Some(on) = self.evict_inbound {
            b = b.evict_inbound(on);
        }
        if let Some(d) = self.feeler_timeout {
            b = b.feeler_timeout(d);
        }
        if let Some(d) = self.one_shot_timeout {
            b = b.one_shot_timeout(d);
        }
        if let Some(n) = self.force_inbound_margin {
            b = b.force_inbound_margin(n);
        }
        if let Some(on) = self.manual_duplicates {
            b = b.manual_duplicates(on);
        }
        if let Some(nets) = &self.only_networks {
            b = b.only_networks(nets);
        }
        for (net, n) in &self.max_on {
            b = b.max_outbound_on(*net, *n);
        }
        for (net, n) in &self.min_on {
            b = b.min_outbound_on(*net, *n);
        }
        if let Some(n) = self.max_inbound_per_ip {
            b = b.max_inbound_per_ip(n);
        }
        if let Some(n) = self.max_inbound_per_netgroup {
            b = b.max_inbound_per_netgroup(n);
        }
        if let Some(d) = self.retry_duration {
            b = b.retry_duration(d);
        }
        if let Some(d) = self.max_retry_duration {
            b = b.max_retry_duration(d);
        }
        if let Some(kind) = self.backoff {
            b = b.backoff(kind);
        }
        if let Some(n) = self.pool_size {
            b = b.dialer_pool_size(n);
        }
        if let Some(d) = self.dial_timeout {
            b = b.dial_timeout(d);
        }
        if let Some(d) = self.stop_grace {
            b = b.stop_grace(d);
        }
        if let Some(check) = self.check_descriptors {
            b = b.check_descriptors(check);
        }
        for addr in &self.listen {
            b = b.listen(*addr);
        }
        let dialer = match &self.proxy {
            Some(p) => {
                let mut proxy = Socks5Proxy::builder(p.addr).isolate(p.isolate);
                if let Some((user, pass)) = &p.auth {
                    proxy = proxy.auth(user.as_str(), pass.as_str());
                }
                if let Some(d) = self.dial_timeout {
                    proxy = proxy.connect_timeout(d);
                }
                Socks5Dialer::new(self.finish_proxy(proxy, "SOCKS5 proxy")?)
            }
            None => Socks5Dialer::without_proxy(),
        };
        let mut dialer = dialer.proxy_all(self.proxy_all);
        if let Some(addr) = self.onion_proxy {
            let p = self.finish_proxy(Socks5Proxy::builder(addr), "onion proxy")?;
            dialer = dialer.onion_proxy(p);
        }
        if let Some(addr) = self.i2p_proxy {
            let p = self.finish_proxy(Socks5Proxy::builder(addr), "I2P proxy")?;
            dialer = dialer.i2p_proxy(p);
        }
        if let Some(d) = self.dial_timeout {
            // The dial deadline bounds each dial; the TCP connect's own
            // timeout must not cut it shorter.
            dialer = dialer.direct_dialer(TcpDialer::new().timeout(d));
        }
        b = b.dialer(dialer);
        if let Some((f, user_data)) = self.source {
            b = b.address_source(CAddressSource { f, user_data });
        }
        if !self.eviction_rules.is_empty() {
            let mut policy = crate::policy::EvictionPolicy::default();
            self.eviction_rules.iter().for_each(|set| set(&mut policy));
            b = b.eviction_policy(policy);
        }
        for op in &self.ops {
            b = op(b, dry)?;
        }
        let feeder = queue.map(|q| Box::new(q.feeder()) as events::Feeder);
        Ok(events::install(b, &self.callbacks, feeder).build())
    }
}

/// A change to one of the default eviction rules.
pub(crate) type EvictionRule = Box<dyn Fn(&mut crate::policy::EvictionPolicy)>;

/// A recorded change to the Rust builder.
/// The flag is `dry` of [`ConnmgrConfig::to_config`].
type BuilderOp = Box<dyn Fn(ConfigBuilder, bool) -> FfiResult<ConfigBuilder>>;

impl ConnmgrConfig {
    /// Records a change to apply to the builder.
    pub(crate) fn push(&mut self, op: impl Fn(ConfigBuilder) -> ConfigBuilder + 'static) {
        self.ops.push(Box::new(move |b, _| Ok(op(b))));
    }

    /// Records a change that can fail when the manager is made (one that
    /// needs a resource, such as a socket); it is told whether the build
    /// is a dry one.
    pub(crate) fn try_push(
        &mut self,
        op: impl Fn(ConfigBuilder, bool) -> FfiResult<ConfigBuilder> + 'static,
    ) {
        self.ops.push(Box::new(op));
    }
}

impl ConnmgrConfig {
    /// A proxy with the configured SOCKS timeouts, built.
    fn finish_proxy(
        &self,
        mut proxy: crate::Socks5ProxyBuilder,
        what: &str,
    ) -> FfiResult<Socks5Proxy> {
        if let Some((connect, handshake)) = self.socks_timeouts {
            proxy = proxy.connect_timeout(connect).handshake_timeout(handshake);
        }
        proxy
            .build()
            .map_err(|e| Failure::new(ConnmgrStatus::Config, format!("{what}: {e}")))
    }
}

/// Borrows the config behind `cfg` for changing it.
///
/// Undefined behaviour unless `cfg` is NULL or a live config that nothing else uses during `'a`.
pub(crate) unsafe fn config_arg<'a>(cfg: *mut ConnmgrConfig) -> FfiResult<&'a mut ConnmgrConfig> {
    // SAFETY: the caller's promise.
    unsafe { cfg.as_mut() }.ok_or_else(|| Failure::null("cfg"))
}

fn socket_addr(text: &str, what: &str) -> FfiResult<SocketAddr> {
    text.parse().map_err(|e| {
        Failure::invalid(format!(
            "`{what}` {text:?} is not an IP address with a port, e.g. \"127.0.0.1:8333\" or \"[::1]:8333\": {e}"
        ))
    })
}

/// Creates a config with every setting at its default and stores it in
/// `*out`; free it with connmgr_config_free.
///
/// Undefined behaviour unless `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_new(out: *mut *mut ConnmgrConfig) -> ConnmgrStatus {
    guard("connmgr_config_new", || {
        let out = out_arg(out, "out")?;
        let cfg = Box::into_raw(Box::<ConnmgrConfig>::default());
        // SAFETY: `out` is not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(cfg) };
        Ok(())
    })
}

/// Frees a config. NULL is accepted and does nothing; freeing twice is
/// undefined behaviour. Managers created from it are not affected.
///
/// Undefined behaviour unless `cfg` is NULL or a live config, not used again.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_free(cfg: *mut ConnmgrConfig) -> ConnmgrStatus {
    guard("connmgr_config_free", || {
        if !cfg.is_null() {
            // SAFETY: `cfg` came from Box::into_raw in connmgr_config_new and
            // the caller gives it up.
            drop(unsafe { Box::from_raw(cfg) });
        }
        Ok(())
    })
}

/// How many full-relay automatic outbound connections to keep from the
/// address source (default 8). Block-relay-only connections, feelers and
/// connmgr_connect requests come on top.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_target_outbound(
    cfg: *mut ConnmgrConfig,
    n: usize,
) -> ConnmgrStatus {
    guard("connmgr_config_set_target_outbound", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        check_size("target_outbound", n, limits::MAX_TARGET_OUTBOUND)?;
        c.target_outbound = Some(n);
        Ok(())
    })
}

/// How many block-relay-only automatic connections to keep (default 2),
/// filled from the anchors first, independently of the full-relay target.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_target_block_relay(
    cfg: *mut ConnmgrConfig,
    n: usize,
) -> ConnmgrStatus {
    guard("connmgr_config_set_target_block_relay", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        check_size("target_block_relay", n, limits::MAX_TARGET_OUTBOUND)?;
        c.target_block_relay = Some(n);
        Ok(())
    })
}

/// The mean time between feelers in milliseconds (default 120000); 0 makes
/// no feelers. A feeler starts only when every automatic target is met,
/// one at a time, and closes once connmgr_handshake_done is called for it.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_feeler_interval(
    cfg: *mut ConnmgrConfig,
    ms: u64,
) -> ConnmgrStatus {
    guard("connmgr_config_set_feeler_interval", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        let d = Duration::from_millis(ms);
        check_duration("feeler_interval", d)?;
        c.feeler_interval = Some((ms > 0).then_some(d));
        Ok(())
    })
}

/// Sends onion addresses through the SOCKS5 proxy at `addr` ("127.0.0.1:9050")
/// instead of the general one, for example a Tor kept only for onion
/// services.
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `addr` is NULL or a NUL-terminated
/// string.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_onion_proxy(
    cfg: *mut ConnmgrConfig,
    addr: *const c_char,
) -> ConnmgrStatus {
    guard("connmgr_config_set_onion_proxy", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        // SAFETY: the caller promises a C string or NULL.
        let text = unsafe { str_arg(addr, "addr") }?;
        c.onion_proxy = Some(socket_addr(text, "addr")?);
        Ok(())
    })
}

/// Sends ".b32.i2p" addresses through the I2P router's SOCKS5 port at
/// `addr`; without it I2P addresses cannot be dialed.
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `addr` is NULL or a NUL-terminated
/// string.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_i2p_proxy(
    cfg: *mut ConnmgrConfig,
    addr: *const c_char,
) -> ConnmgrStatus {
    guard("connmgr_config_set_i2p_proxy", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        // SAFETY: the caller promises a C string or NULL.
        let text = unsafe { str_arg(addr, "addr") }?;
        c.i2p_proxy = Some(socket_addr(text, "addr")?);
        Ok(())
    })
}

/// How long connecting to a SOCKS5 proxy and its handshake may take, in
/// milliseconds, for every proxy of this config; 0 for either is
/// CONNMGR_STATUS_INVALID_ARGUMENT.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_socks5_timeouts(
    cfg: *mut ConnmgrConfig,
    connect_ms: u64,
    handshake_ms: u64,
) -> ConnmgrStatus {
    guard("connmgr_config_set_socks5_timeouts", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        let (connect, handshake) = (
            Duration::from_millis(connect_ms),
            Duration::from_millis(handshake_ms),
        );
        if connect.is_zero() || handshake.is_zero() {
            return Err(Failure::invalid(
                "SOCKS5 timeouts must be positive: give milliseconds above 0",
            ));
        }
        check_duration("socks5 connect timeout", connect)?;
        check_duration("socks5 handshake timeout", handshake)?;
        c.socks_timeouts = Some((connect, handshake));
        Ok(())
    })
}

/// Network index for the per-network settings: IPv4.
pub const CONNMGR_NET_IPV4: u32 = 0;
/// Network index: IPv6.
pub const CONNMGR_NET_IPV6: u32 = 1;
/// Network index: Tor onion services.
pub const CONNMGR_NET_ONION: u32 = 2;
/// Network index: I2P.
pub const CONNMGR_NET_I2P: u32 = 3;
/// Network index: CJDNS.
pub const CONNMGR_NET_CJDNS: u32 = 4;

/// The network index `n` names.
pub(crate) fn network_arg(n: u32) -> FfiResult<Network> {
    Network::ALL.get(n as usize).copied().ok_or_else(|| {
        Failure::invalid(format!(
            "network {n} is unknown: use a CONNMGR_NET_* constant (0 to 4)"
        ))
    })
}

/// Automatic and feeler connections use only the networks whose bits are
/// set in `mask` (bit `1 << CONNMGR_NET_*`), as Bitcoin Core's -onlynet.
/// Unknown bits are CONNMGR_STATUS_INVALID_ARGUMENT.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_only_networks(
    cfg: *mut ConnmgrConfig,
    mask: u32,
) -> ConnmgrStatus {
    guard("connmgr_config_set_only_networks", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        if mask >> Network::ALL.len() != 0 {
            return Err(Failure::invalid(format!(
                "`mask` {mask:#x} has unknown bits: set 1 << CONNMGR_NET_* for each network"
            )));
        }
        let nets = Network::ALL
            .into_iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, n)| n)
            .collect();
        c.only_networks = Some(nets);
        Ok(())
    })
}

/// At most `n` automatic connections on network `net` (CONNMGR_NET_*).
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_max_outbound_on(
    cfg: *mut ConnmgrConfig,
    net: u32,
    n: usize,
) -> ConnmgrStatus {
    guard("connmgr_config_set_max_outbound_on", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        c.max_on.push((network_arg(net)?, n));
        Ok(())
    })
}

/// At least `n` full-relay connections on network `net` (CONNMGR_NET_*),
/// reserved among the full-relay slots; minimums that do not fit the
/// target are CONNMGR_STATUS_CONFIG from connmgr_manager_new.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_min_outbound_on(
    cfg: *mut ConnmgrConfig,
    net: u32,
    n: usize,
) -> ConnmgrStatus {
    guard("connmgr_config_set_min_outbound_on", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        check_size("min_outbound_on", n, limits::MAX_TARGET_OUTBOUND)?;
        c.min_on.push((network_arg(net)?, n));
        Ok(())
    })
}

/// Grants CONNMGR_PERM_* `permissions` to every peer whose address is in
/// `subnet` ("10.0.0.0/8", "2001:db8::/32" or one address), inbound and
/// outbound; a peer in several subnets gets all of theirs. A subnet that
/// does not parse, or unknown permission bits, are
/// CONNMGR_STATUS_INVALID_ARGUMENT; more entries than the bound
/// CONNMGR_STATUS_CONFIG when the manager is created.
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `subnet` is NULL or a NUL-terminated
/// string.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_add_permission(
    cfg: *mut ConnmgrConfig,
    subnet: *const c_char,
    permissions: u32,
) -> ConnmgrStatus {
    guard("connmgr_config_add_permission", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        // SAFETY: the caller promises `subnet` is NULL or a C string.
        let text = unsafe { str_arg(subnet, "subnet") }?;
        text.parse::<crate::Subnet>()
            .map_err(|e| Failure::invalid(format!("`subnet` {text:?}: {e}")))?;
        let p = super::manager::permissions_arg(permissions)?;
        c.permissions.push((text.to_string(), p));
        Ok(())
    })
}

/// At most `n` live inbound connections from one IP address (default: no
/// limit), checked before a slot is taken.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_max_inbound_per_ip(
    cfg: *mut ConnmgrConfig,
    n: usize,
) -> ConnmgrStatus {
    guard("connmgr_config_set_max_inbound_per_ip", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        check_size("max_inbound_per_ip", n, limits::MAX_INBOUND)?;
        c.max_inbound_per_ip = Some(n);
        Ok(())
    })
}

/// At most `n` live inbound connections from one netgroup (an IPv4 /16,
/// an IPv6 /32; default: no limit), checked before a slot is taken.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_max_inbound_per_netgroup(
    cfg: *mut ConnmgrConfig,
    n: usize,
) -> ConnmgrStatus {
    guard("connmgr_config_set_max_inbound_per_netgroup", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        check_size("max_inbound_per_netgroup", n, limits::MAX_INBOUND)?;
        c.max_inbound_per_netgroup = Some(n);
        Ok(())
    })
}

/// How many inbound connections may be live at once (default 125).
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_max_inbound(
    cfg: *mut ConnmgrConfig,
    n: usize,
) -> ConnmgrStatus {
    guard("connmgr_config_set_max_inbound", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        check_size("max_inbound", n, limits::MAX_INBOUND)?;
        c.max_inbound = Some(n);
        Ok(())
    })
}

/// The base wait between retries, in milliseconds (default 5000). Zero is
/// rejected by connmgr_manager_new with CONNMGR_STATUS_CONFIG.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_retry_duration(
    cfg: *mut ConnmgrConfig,
    ms: u64,
) -> ConnmgrStatus {
    guard("connmgr_config_set_retry_duration", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        let d = Duration::from_millis(ms);
        check_duration("retry_duration", d)?;
        c.retry_duration = Some(d);
        Ok(())
    })
}

/// The longest wait between retries, in milliseconds (default 300000); it
/// must not be below the retry duration.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_max_retry_duration(
    cfg: *mut ConnmgrConfig,
    ms: u64,
) -> ConnmgrStatus {
    guard("connmgr_config_set_max_retry_duration", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        let d = Duration::from_millis(ms);
        check_duration("max_retry_duration", d)?;
        c.max_retry_duration = Some(d);
        Ok(())
    })
}

/// How waits between retries grow: `kind` is CONNMGR_BACKOFF_LINEAR (the
/// default; `jitter` is ignored) or CONNMGR_BACKOFF_EXPONENTIAL with a
/// `jitter` from 0.0 to 1.0 (checked by connmgr_manager_new). Another kind
/// is CONNMGR_STATUS_INVALID_ARGUMENT.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_backoff(
    cfg: *mut ConnmgrConfig,
    kind: u32,
    jitter: f64,
) -> ConnmgrStatus {
    guard("connmgr_config_set_backoff", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        c.backoff = Some(match kind {
            CONNMGR_BACKOFF_LINEAR => Backoff::Linear,
            CONNMGR_BACKOFF_EXPONENTIAL => Backoff::Exponential { jitter },
            other => {
                return Err(Failure::invalid(format!(
                    "backoff kind {other} is unknown: use CONNMGR_BACKOFF_LINEAR ({CONNMGR_BACKOFF_LINEAR}) \
                     or CONNMGR_BACKOFF_EXPONENTIAL ({CONNMGR_BACKOFF_EXPONENTIAL})"
                )))
            }
        });
        Ok(())
    })
}

/// How many dialer threads the manager runs (default 8; at least 1).
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_dialer_pool_size(
    cfg: *mut ConnmgrConfig,
    n: usize,
) -> ConnmgrStatus {
    guard("connmgr_config_set_dialer_pool_size", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        check_size("dialer_pool_size", n, limits::MAX_DIALER_POOL)?;
        c.pool_size = Some(n);
        Ok(())
    })
}

/// The deadline of each dial (direct, or through the SOCKS5 proxy), in
/// milliseconds (default 10000; not 0).
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_dial_timeout(
    cfg: *mut ConnmgrConfig,
    ms: u64,
) -> ConnmgrStatus {
    guard("connmgr_config_set_dial_timeout", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        let d = Duration::from_millis(ms);
        check_duration("dial_timeout", d)?;
        c.dial_timeout = Some(d);
        Ok(())
    })
}

/// Whether the manager keeps the events no callback takes in a queue for
/// connmgr_next_event and connmgr_event_fd (default false: such events
/// are dropped, closing their connections). The queue holds 65536 events;
/// past that, new ones are dropped and logged.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_event_queue(
    cfg: *mut ConnmgrConfig,
    on: bool,
) -> ConnmgrStatus {
    guard("connmgr_config_set_event_queue", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        c.event_queue = on;
        Ok(())
    })
}

/// Whether a newcomer that finds every inbound slot taken evicts an
/// inbound connection chosen by Bitcoin Core's rules (true) or is refused
/// (false, the default).
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_evict_inbound(
    cfg: *mut ConnmgrConfig,
    on: bool,
) -> ConnmgrStatus {
    guard("connmgr_config_set_evict_inbound", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        c.evict_inbound = Some(on);
        Ok(())
    })
}

/// How long a feeler may stay open waiting for connmgr_handshake_done, in
/// milliseconds (default 60000); 0 is rejected by connmgr_manager_new.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_feeler_timeout(
    cfg: *mut ConnmgrConfig,
    ms: u64,
) -> ConnmgrStatus {
    guard("connmgr_config_set_feeler_timeout", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        let d = Duration::from_millis(ms);
        check_duration("feeler_timeout", d)?;
        c.feeler_timeout = Some(d);
        Ok(())
    })
}

/// How long a one-shot connection may stay open, in milliseconds (default
/// 300000); 0 is rejected by connmgr_manager_new.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_one_shot_timeout(
    cfg: *mut ConnmgrConfig,
    ms: u64,
) -> ConnmgrStatus {
    guard("connmgr_config_set_one_shot_timeout", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        let d = Duration::from_millis(ms);
        check_duration("one_shot_timeout", d)?;
        c.one_shot_timeout = Some(d);
        Ok(())
    })
}

/// How far past the inbound limit peers with CONNMGR_PERM_FORCE_INBOUND
/// may go when nothing can be evicted for them (default 4).
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_force_inbound_margin(
    cfg: *mut ConnmgrConfig,
    n: usize,
) -> ConnmgrStatus {
    guard("connmgr_config_set_force_inbound_margin", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        check_size("force_inbound_margin", n, limits::MAX_INBOUND)?;
        c.force_inbound_margin = Some(n);
        Ok(())
    })
}

/// Whether manual and one-shot requests may connect to a peer that already
/// has a connection or a dial in flight (default true). With false, such a
/// one-off request fails and a permanent one retries until the other
/// connection is gone.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_manual_duplicates(
    cfg: *mut ConnmgrConfig,
    allow: bool,
) -> ConnmgrStatus {
    guard("connmgr_config_set_manual_duplicates", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        c.manual_duplicates = Some(allow);
        Ok(())
    })
}

/// Whether connmgr_manager_start fails (CONNMGR_STATUS_CONFIG) when the
/// process's descriptor limit, raised as far as the hard limit allows, is
/// below what the config's connections need (default true); false only
/// logs the shortfall.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_check_descriptors(
    cfg: *mut ConnmgrConfig,
    check: bool,
) -> ConnmgrStatus {
    guard("connmgr_config_set_check_descriptors", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        c.check_descriptors = Some(check);
        Ok(())
    })
}

/// How long `connmgr_manager_stop` waits for dialer threads still inside
/// a dialer that ignores its cancel, in milliseconds (default 5000); past
/// it, stop returns and leaves them to finish on their own.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_stop_grace(
    cfg: *mut ConnmgrConfig,
    ms: u64,
) -> ConnmgrStatus {
    guard("connmgr_config_set_stop_grace", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        let d = Duration::from_millis(ms);
        check_duration("stop_grace", d)?;
        c.stop_grace = Some(d);
        Ok(())
    })
}

/// Dials through the SOCKS5 proxy at `addr` ("127.0.0.1:9050"): host
/// names and onion addresses go through it (IP addresses too with
/// connmgr_config_set_proxy_all). With `isolate`, every connection uses
/// fresh random credentials, so Tor puts each on its own circuit. An
/// address that does not parse is CONNMGR_STATUS_INVALID_ARGUMENT.
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `addr` is NULL or a NUL-terminated
/// string.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_socks5_proxy(
    cfg: *mut ConnmgrConfig,
    addr: *const c_char,
    isolate: bool,
) -> ConnmgrStatus {
    guard("connmgr_config_set_socks5_proxy", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        // SAFETY: the caller promises `addr` is NULL or a C string.
        let text = unsafe { str_arg(addr, "addr") }?;
        let addr = socket_addr(text, "addr")?;
        let auth = c.proxy.take().and_then(|p| p.auth);
        c.proxy = Some(ProxySettings {
            addr,
            isolate,
            auth,
        });
        Ok(())
    })
}

/// Authenticates to the SOCKS5 proxy with a username and password (each 1
/// to 255 bytes, checked by connmgr_manager_new). Needs
/// connmgr_config_set_socks5_proxy first (else
/// CONNMGR_STATUS_INVALID_ARGUMENT); isolation replaces these credentials.
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `username` and `password` are NULL or
/// NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_socks5_auth(
    cfg: *mut ConnmgrConfig,
    username: *const c_char,
    password: *const c_char,
) -> ConnmgrStatus {
    guard("connmgr_config_set_socks5_auth", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        // SAFETY: the caller promises C strings or NULL.
        let user = unsafe { str_arg(username, "username") }?;
        // SAFETY: as above.
        let pass = unsafe { str_arg(password, "password") }?;
        let proxy = c.proxy.as_mut().ok_or_else(|| {
            Failure::invalid("no SOCKS5 proxy set: call connmgr_config_set_socks5_proxy first")
        })?;
        proxy.auth = Some((user.to_owned(), pass.to_owned()));
        Ok(())
    })
}

/// "Proxy everything": IP addresses go through the SOCKS5 proxy too, and
/// without a proxy every non-onion dial fails rather than go direct
/// (default off).
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_proxy_all(
    cfg: *mut ConnmgrConfig,
    on: bool,
) -> ConnmgrStatus {
    guard("connmgr_config_set_proxy_all", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        c.proxy_all = on;
        Ok(())
    })
}

/// Adds a TCP address to listen on (`"0.0.0.0:8333"`, `"[::1]:0"`); port 0
/// picks a free port (read it back with connmgr_listen_addr). Bound by
/// connmgr_manager_new, which fails with CONNMGR_STATUS_CONFIG if it
/// cannot bind. An address that does not parse is
/// CONNMGR_STATUS_INVALID_ARGUMENT.
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `addr` is NULL or a NUL-terminated
/// string.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_add_listen_addr(
    cfg: *mut ConnmgrConfig,
    addr: *const c_char,
) -> ConnmgrStatus {
    guard("connmgr_config_add_listen_addr", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        // SAFETY: the caller promises `addr` is NULL or a C string.
        let text = unsafe { str_arg(addr, "addr") }?;
        c.listen.push(socket_addr(text, "addr")?);
        Ok(())
    })
}

/// Sets the address source that fills the outbound target (see
/// connmgr_address_source_fn). `user_data` is passed to it as is and must
/// stay valid, and usable from the manager's dialer threads, until the
/// manager is stopped or freed. Without a source the manager only dials
/// what connmgr_connect asks for.
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `source` is NULL or a function with
/// the documented signature.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_address_source(
    cfg: *mut ConnmgrConfig,
    source: ConnmgrAddressSourceFn,
    user_data: *mut c_void,
) -> ConnmgrStatus {
    guard("connmgr_config_set_address_source", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        let f = source.ok_or_else(|| Failure::null("source"))?;
        c.source = Some((f, UserData::new(user_data)));
        Ok(())
    })
}

/// Sets the event callbacks (see connmgr_callbacks), copying `*callbacks`;
/// a later call replaces all of them.
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `callbacks` is NULL or points to a
/// connmgr_callbacks whose function pointers are NULL or functions with the
/// documented signatures.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_callbacks(
    cfg: *mut ConnmgrConfig,
    callbacks: *const ConnmgrCallbacks,
) -> ConnmgrStatus {
    guard("connmgr_config_set_callbacks", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        // SAFETY: the caller promises NULL or a valid struct.
        c.callbacks = *unsafe { obj_arg(callbacks, "callbacks") }?;
        Ok(())
    })
}
