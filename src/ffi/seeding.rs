//! DNS seeding from C: the built-in networks' seeds or the caller's,
//! looked up through the system resolver, Tor, or a C lookup function.

use std::ffi::{c_char, c_void, CString};
use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use super::error::{guard, obj_arg, out_arg, str_arg, ConnmgrStatus, Failure, FfiResult};
use super::events::{c_text, UserData};
use crate::limits::MAX_DURATION;
use crate::seed::{
    seed_from_dns, Lookup, LookupError, LookupErrorKind, NetParams, SeedOptions, SeedResult,
    SystemLookup, TorLookup,
};

/// Built-in network for connmgr_netparams_builtin: Bitcoin mainnet.
pub const CONNMGR_SEEDNET_MAINNET: u32 = 0;
/// Built-in network: Bitcoin testnet3.
pub const CONNMGR_SEEDNET_TESTNET3: u32 = 1;
/// Built-in network: Bitcoin testnet4.
pub const CONNMGR_SEEDNET_TESTNET4: u32 = 2;
/// Built-in network: Bitcoin signet.
pub const CONNMGR_SEEDNET_SIGNET: u32 = 3;
/// Built-in network: Bitcoin regtest (no seeds).
pub const CONNMGR_SEEDNET_REGTEST: u32 = 4;

/// Lookup error kind for connmgr_lookup_answer_fail: no answer in time.
pub const CONNMGR_LOOKUP_TIMED_OUT: u32 = 0;
/// Lookup error kind: the name does not exist or has no addresses.
pub const CONNMGR_LOOKUP_NOT_FOUND: u32 = 1;
/// Lookup error kind: the host is not a valid DNS name.
pub const CONNMGR_LOOKUP_INVALID_NAME: u32 = 2;
/// Lookup error kind: the resolver or name server failed.
pub const CONNMGR_LOOKUP_RESOLVER: u32 = 3;
/// Lookup error kind: the proxy could not be reached or refused.
pub const CONNMGR_LOOKUP_PROXY: u32 = 4;

/// The most addresses one lookup answer holds; further ones are refused.
pub const CONNMGR_LOOKUP_MAX_ADDRS: usize = 1024;

/// A network's name, default port and DNS seeds (opaque); from
/// connmgr_netparams_builtin or connmgr_netparams_new, freed with
/// connmgr_netparams_free.
pub struct ConnmgrNetParams(NetParams);

/// How seeding runs (opaque): from connmgr_seed_options_new, changed with
/// its setters, freed with connmgr_seed_options_free. Not thread-safe.
pub struct ConnmgrSeedOptions {
    options: SeedOptions,
    /// The service bits asked for, as in `options`, for the seed callback.
    services: u64,
    tor_proxy: Option<std::net::SocketAddr>,
}

impl Default for ConnmgrSeedOptions {
    fn default() -> Self {
        ConnmgrSeedOptions {
            options: SeedOptions::new(),
            services: crate::seed::SF_NODE_NETWORK,
            tor_proxy: None,
        }
    }
}

/// What a C lookup found (opaque), filled during the lookup call with
/// connmgr_lookup_answer_add or connmgr_lookup_answer_fail.
pub struct ConnmgrLookupAnswer {
    ips: Vec<IpAddr>,
    error: Option<LookupError>,
    host: String,
}

/// A C lookup: resolves `host` (valid during the call) within
/// `timeout_ms`, adding each address to `answer` or failing it. Runs on a
/// thread of its own per seed, several at once.
pub type ConnmgrLookupFn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        host: *const c_char,
        timeout_ms: u64,
        answer: *mut ConnmgrLookupAnswer,
    ),
>;

/// Called once per seed, on the thread that called connmgr_seed_from_dns,
/// as its result comes in: the seed's host, why it gave nothing (NULL if
/// it gave addresses), and `count` addresses ("203.0.113.5:8333") with
/// their made-up last-seen times (Unix seconds, 3 to 7 days ago) and the
/// service bits asked for. Every pointer is valid during the call only.
pub type ConnmgrSeedFn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        seed: *const c_char,
        error: *const c_char,
        count: usize,
        addrs: *const *const c_char,
        last_seen_unix: *const u64,
        services: u64,
    ),
>;

fn put<T>(out: *mut *mut T, value: T) -> FfiResult {
    let out = out_arg(out, "out")?;
    // SAFETY: not NULL and writable (the caller's promise).
    unsafe { out.as_ptr().write(Box::into_raw(Box::new(value))) };
    Ok(())
}

/// Stores the parameters of built-in network `network`
/// (CONNMGR_SEEDNET_*) in `*out`.
///
/// Undefined behaviour unless `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_netparams_builtin(
    network: u32,
    out: *mut *mut ConnmgrNetParams,
) -> ConnmgrStatus {
    guard("connmgr_netparams_builtin", || {
        let params = match network {
            CONNMGR_SEEDNET_MAINNET => NetParams::mainnet(),
            CONNMGR_SEEDNET_TESTNET3 => NetParams::testnet3(),
            CONNMGR_SEEDNET_TESTNET4 => NetParams::testnet4(),
            CONNMGR_SEEDNET_SIGNET => NetParams::signet(),
            CONNMGR_SEEDNET_REGTEST => NetParams::regtest(),
            _ => {
                return Err(Failure::invalid(format!(
                    "network {network} is none of CONNMGR_SEEDNET_* (0 to 4)"
                )))
            }
        };
        put(out, ConnmgrNetParams(params))
    })
}

/// Stores a network named `name` with `default_port` and no seeds in
/// `*out`; add seeds with connmgr_netparams_add_seed.
///
/// Undefined behaviour unless `name` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_netparams_new(
    name: *const c_char,
    default_port: u16,
    out: *mut *mut ConnmgrNetParams,
) -> ConnmgrStatus {
    guard("connmgr_netparams_new", || {
        // SAFETY: the caller promises a C string or NULL.
        let name = unsafe { str_arg(name, "name") }?;
        put(out, ConnmgrNetParams(NetParams::new(name, default_port)))
    })
}

/// Adds DNS seed `host`; `has_filtering` says it serves `x<services>.`
/// subdomains. At most 64 seeds per network.
///
/// Undefined behaviour unless `params` is NULL or live; `host` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn connmgr_netparams_add_seed(
    params: *mut ConnmgrNetParams,
    host: *const c_char,
    has_filtering: bool,
) -> ConnmgrStatus {
    guard("connmgr_netparams_add_seed", || {
        // SAFETY: the caller promises `params` is NULL or live and unshared.
        let p = unsafe { params.as_mut() }.ok_or_else(|| Failure::null("params"))?;
        // SAFETY: the caller promises a C string or NULL.
        let host = unsafe { str_arg(host, "host") }?;
        if p.0.seeds().len() >= MAX_SEEDS {
            return Err(Failure::invalid(format!(
                "a network has at most {MAX_SEEDS} seeds"
            )));
        }
        let taken = std::mem::replace(&mut p.0, NetParams::new("", 0));
        p.0 = taken.seed(host, has_filtering);
        Ok(())
    })
}

/// Seeds looked up at once, one thread each: a bound on threads.
const MAX_SEEDS: usize = 64;

/// Frees network parameters (NULL does nothing).
///
/// Undefined behaviour unless `params` is NULL or live, not used again.
#[no_mangle]
pub unsafe extern "C" fn connmgr_netparams_free(params: *mut ConnmgrNetParams) -> ConnmgrStatus {
    guard("connmgr_netparams_free", || {
        if !params.is_null() {
            // SAFETY: from Box::into_raw here; the caller gives it up.
            drop(unsafe { Box::from_raw(params) });
        }
        Ok(())
    })
}

/// Stores seeding options with the defaults in `*out`: full nodes
/// (services 1), at most 32 addresses per seed, 15 s per seed, local
/// addresses dropped, fresh randomness, the system resolver.
///
/// Undefined behaviour unless `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_seed_options_new(
    out: *mut *mut ConnmgrSeedOptions,
) -> ConnmgrStatus {
    guard("connmgr_seed_options_new", || {
        put(out, ConnmgrSeedOptions::default())
    })
}

/// Frees seeding options (NULL does nothing).
///
/// Undefined behaviour unless `opts` is NULL or live, not used again.
#[no_mangle]
pub unsafe extern "C" fn connmgr_seed_options_free(opts: *mut ConnmgrSeedOptions) -> ConnmgrStatus {
    guard("connmgr_seed_options_free", || {
        if !opts.is_null() {
            // SAFETY: from Box::into_raw here; the caller gives it up.
            drop(unsafe { Box::from_raw(opts) });
        }
        Ok(())
    })
}

/// Borrows options for changing them.
///
/// Undefined behaviour unless `opts` is NULL or live and unshared.
unsafe fn opts_arg<'a>(opts: *mut ConnmgrSeedOptions) -> FfiResult<&'a mut ConnmgrSeedOptions> {
    // SAFETY: the caller's promise.
    unsafe { opts.as_mut() }.ok_or_else(|| Failure::null("opts"))
}

/// Sets the service bits asked for, at most `max_per_seed` addresses per
/// seed (1 to 4096), and the time each seed may take in milliseconds
/// (at least 1).
///
/// Undefined behaviour unless `opts` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn connmgr_seed_options_set_limits(
    opts: *mut ConnmgrSeedOptions,
    services: u64,
    max_per_seed: usize,
    timeout_ms: u64,
) -> ConnmgrStatus {
    guard("connmgr_seed_options_set_limits", || {
        // SAFETY: the caller promises `opts` is NULL or live.
        let o = unsafe { opts_arg(opts) }?;
        if !(1..=4096).contains(&max_per_seed) || timeout_ms == 0 {
            return Err(Failure::invalid(format!(
                "max_per_seed {max_per_seed} and timeout_ms {timeout_ms}: give 1 to 4096 addresses and at least 1 ms"
            )));
        }
        let timeout = Duration::from_millis(timeout_ms).min(MAX_DURATION);
        let taken = std::mem::take(&mut o.options);
        o.services = services;
        o.options = taken
            .services(services)
            .max_per_seed(max_per_seed)
            .timeout(timeout);
        Ok(())
    })
}

/// Keeps loopback, private and link-local addresses in answers (for seeds
/// on a private network, or tests), and fixes the random choices with
/// `rng_seed` when `fixed_rng` is true.
///
/// Undefined behaviour unless `opts` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn connmgr_seed_options_set_local(
    opts: *mut ConnmgrSeedOptions,
    allow_local: bool,
    fixed_rng: bool,
    rng_seed: u64,
) -> ConnmgrStatus {
    guard("connmgr_seed_options_set_local", || {
        // SAFETY: the caller promises `opts` is NULL or live.
        let o = unsafe { opts_arg(opts) }?;
        let mut taken = std::mem::take(&mut o.options).allow_local(allow_local);
        if fixed_rng {
            taken = taken.rng_seed(rng_seed);
        }
        o.options = taken;
        Ok(())
    })
}

/// Sets the time last-seen ages count back from, in Unix seconds (default:
/// now).
///
/// Undefined behaviour unless `opts` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn connmgr_seed_options_set_now(
    opts: *mut ConnmgrSeedOptions,
    unix_secs: u64,
) -> ConnmgrStatus {
    guard("connmgr_seed_options_set_now", || {
        // SAFETY: the caller promises `opts` is NULL or live.
        let o = unsafe { opts_arg(opts) }?;
        let now = UNIX_EPOCH
            .checked_add(Duration::from_secs(unix_secs))
            .ok_or_else(|| Failure::invalid(format!("{unix_secs} s is past the clock's range")))?;
        o.options = std::mem::take(&mut o.options).now(now);
        Ok(())
    })
}

/// Resolves seeds through Tor's RESOLVE at the SOCKS5 proxy `proxy`
/// ("127.0.0.1:9050") instead of the system resolver, when no lookup
/// function is given; names never reach local DNS.
///
/// Undefined behaviour unless `opts` is NULL or live; `proxy` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn connmgr_seed_options_set_tor_proxy(
    opts: *mut ConnmgrSeedOptions,
    proxy: *const c_char,
) -> ConnmgrStatus {
    guard("connmgr_seed_options_set_tor_proxy", || {
        // SAFETY: the caller promises `opts` is NULL or live.
        let o = unsafe { opts_arg(opts) }?;
        // SAFETY: the caller promises a C string or NULL.
        let text = unsafe { str_arg(proxy, "proxy") }?;
        o.tor_proxy = Some(text.parse().map_err(|e| {
            Failure::invalid(format!(
                "`proxy` {text:?} is not an IP address with a port: {e}"
            ))
        })?);
        Ok(())
    })
}

/// Adds address `ip` ("203.0.113.5" or "2001:db8::1", no port) to the
/// answer. More than CONNMGR_LOOKUP_MAX_ADDRS is
/// CONNMGR_STATUS_INVALID_ARGUMENT (the address is not added).
///
/// Undefined behaviour unless `answer` is NULL or the answer the lookup received; `ip` is NULL or a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn connmgr_lookup_answer_add(
    answer: *mut ConnmgrLookupAnswer,
    ip: *const c_char,
) -> ConnmgrStatus {
    guard("connmgr_lookup_answer_add", || {
        // SAFETY: the caller promises a live answer or NULL.
        let a = unsafe { answer.as_mut() }.ok_or_else(|| Failure::null("answer"))?;
        // SAFETY: the caller promises a C string or NULL.
        let text = unsafe { str_arg(ip, "ip") }?;
        let ip = text.parse::<IpAddr>().map_err(|e| {
            Failure::invalid(format!("`ip` {text:?} is not an IP address (no port): {e}"))
        })?;
        if a.ips.len() >= CONNMGR_LOOKUP_MAX_ADDRS {
            return Err(Failure::invalid(format!(
                "the answer holds {CONNMGR_LOOKUP_MAX_ADDRS} addresses already"
            )));
        }
        a.ips.push(ip);
        Ok(())
    })
}

/// Fails the lookup with `kind` (CONNMGR_LOOKUP_*) and `message` (NULL
/// for none); addresses added before are dropped. An unknown kind fails
/// it as CONNMGR_LOOKUP_RESOLVER and returns
/// CONNMGR_STATUS_INVALID_ARGUMENT.
///
/// Undefined behaviour unless `answer` is NULL or the answer the lookup received; `message` is NULL
/// or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn connmgr_lookup_answer_fail(
    answer: *mut ConnmgrLookupAnswer,
    kind: u32,
    message: *const c_char,
) -> ConnmgrStatus {
    guard("connmgr_lookup_answer_fail", || {
        // SAFETY: the caller promises a live answer or NULL.
        let a = unsafe { answer.as_mut() }.ok_or_else(|| Failure::null("answer"))?;
        let text = if message.is_null() {
            "the C lookup failed"
        } else {
            // SAFETY: not NULL; the caller promises a C string.
            unsafe { str_arg(message, "message") }?
        };
        let kind = match kind {
            CONNMGR_LOOKUP_TIMED_OUT => LookupErrorKind::TimedOut,
            CONNMGR_LOOKUP_NOT_FOUND => LookupErrorKind::NotFound,
            CONNMGR_LOOKUP_INVALID_NAME => LookupErrorKind::InvalidName,
            CONNMGR_LOOKUP_PROXY => LookupErrorKind::Proxy,
            CONNMGR_LOOKUP_RESOLVER => LookupErrorKind::Resolver,
            _ => {
                let e = LookupError::new(LookupErrorKind::Resolver, a.host.clone(), text);
                a.error = Some(e);
                return Err(Failure::invalid(format!(
                    "lookup error kind {kind} is none of CONNMGR_LOOKUP_*; the lookup fails as RESOLVER"
                )));
            }
        };
        a.error = Some(LookupError::new(kind, a.host.clone(), text));
        Ok(())
    })
}

/// A lookup backed by a C function.
struct CLookup {
    f: unsafe extern "C" fn(*mut c_void, *const c_char, u64, *mut ConnmgrLookupAnswer),
    user_data: UserData,
}

impl Lookup for CLookup {
    fn lookup(&self, host: &str, timeout: Duration) -> Result<Vec<IpAddr>, LookupError> {
        let c_host = c_text(host);
        let mut answer = ConnmgrLookupAnswer {
            ips: Vec::new(),
            error: None,
            host: host.to_owned(),
        };
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        // SAFETY: the caller's lookup with the documented signature;
        // `c_host` and `answer` outlive the call.
        unsafe { (self.f)(self.user_data.get(), c_host.as_ptr(), ms, &mut answer) };
        match answer.error {
            Some(e) => Err(e),
            None => Ok(answer.ips),
        }
    }
}

/// Hands one seed's result to the C callback.
fn deliver(f: ConnmgrSeedFn, ud: UserData, services: u64, result: SeedResult) {
    let Some(f) = f else { return };
    let seed = c_text(&result.seed);
    let error: Option<CString> = result.error.as_ref().map(c_text);
    let texts: Vec<CString> = result.addrs.iter().map(|a| c_text(&a.addr)).collect();
    let ptrs: Vec<*const c_char> = texts.iter().map(|t| t.as_ptr()).collect();
    let seen: Vec<u64> = result
        .addrs
        .iter()
        .map(|a| {
            a.last_seen
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
        .collect();
    // SAFETY: the caller's callback; every pointer refers to data alive
    // until it returns, and the arrays hold `ptrs.len()` entries.
    unsafe {
        f(
            ud.get(),
            seed.as_ptr(),
            error.as_ref().map_or(std::ptr::null(), |e| e.as_ptr()),
            ptrs.len(),
            ptrs.as_ptr(),
            seen.as_ptr(),
            services,
        )
    };
}

/// Looks up every DNS seed of `params` in parallel and calls `on_seed`
/// once per seed as results come in, on the calling thread; returns once
/// every lookup has ended (about the timeout at most, when a C lookup
/// honours its `timeout_ms`). `opts` may be NULL
/// for the defaults. The lookup is `lookup` when given (with
/// `lookup_data`), else Tor when the options name a proxy, else the
/// system resolver. Feed the addresses to your address source; nothing
/// here touches a manager. A network without seeds returns at once.
///
/// Undefined behaviour unless `params` is NULL or live; `opts` is NULL or live; the functions follow
/// their contracts with their user data.
#[no_mangle]
pub unsafe extern "C" fn connmgr_seed_from_dns(
    params: *const ConnmgrNetParams,
    opts: *const ConnmgrSeedOptions,
    lookup: ConnmgrLookupFn,
    lookup_data: *mut c_void,
    on_seed: ConnmgrSeedFn,
    seed_data: *mut c_void,
) -> ConnmgrStatus {
    guard("connmgr_seed_from_dns", || {
        // SAFETY: the caller promises `params` is NULL or live.
        let p = unsafe { obj_arg(params, "params") }?;
        let defaults = ConnmgrSeedOptions::default();
        // SAFETY: the caller promises `opts` is NULL or live.
        let o = unsafe { opts.as_ref() }.unwrap_or(&defaults);
        let ud = UserData::new(seed_data);
        let services = o.services;
        let sink = |r: SeedResult| deliver(on_seed, ud, services, r);
        match (lookup, o.tor_proxy) {
            (Some(f), _) => {
                let l = CLookup {
                    f,
                    user_data: UserData::new(lookup_data),
                };
                seed_from_dns(&p.0, &l, &o.options, sink);
            }
            (None, Some(proxy)) => seed_from_dns(&p.0, &TorLookup::new(proxy), &o.options, sink),
            (None, None) => seed_from_dns(&p.0, &SystemLookup::new(), &o.options, sink),
        }
        Ok(())
    })
}
