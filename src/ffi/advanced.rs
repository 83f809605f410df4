//! Config setters for eviction tuning, per-network minimums, event
//! bounds, inline dialing and reproducible runs (a fixed random seed and
//! a clock the caller advances).

use std::time::Duration;

use super::config::{config_arg, network_arg, ConnmgrConfig, EvictionRule};
use super::error::{guard, obj_arg, out_arg, ConnmgrStatus, Failure};
use crate::limits;
use crate::runtime::config::check_size;
use crate::{ManualClock, Network};

/// Eviction rule for connmgr_config_set_eviction_rule: inbound peers
/// protected for the highest keyed netgroup hashes (default 4).
pub const CONNMGR_EVICT_NETGROUP: u32 = 0;
/// Eviction rule: peers protected for the lowest ping (default 8).
pub const CONNMGR_EVICT_MIN_PING: u32 = 1;
/// Eviction rule: peers protected for recent novel transactions (default 4).
pub const CONNMGR_EVICT_RECENT_TX: u32 = 2;
/// Eviction rule: block-relay-only peers protected for recent blocks
/// (default 8).
pub const CONNMGR_EVICT_BLOCK_RELAY_ONLY: u32 = 3;
/// Eviction rule: peers protected for recent novel blocks (default 4).
pub const CONNMGR_EVICT_RECENT_BLOCK: u32 = 4;
/// Eviction rule: share (0.0 to 1.0) of the rest protected for the longest
/// uptime (default 0.5).
pub const CONNMGR_EVICT_UPTIME_RATIO: u32 = 5;
/// Eviction rule: share (0.0 to 1.0) of the uptime slots kept for onion,
/// I2P, CJDNS and localhost peers (default 0.5).
pub const CONNMGR_EVICT_DISADVANTAGED_SHARE: u32 = 6;

/// Sets one of the inbound eviction rules (CONNMGR_EVICT_*) to `value`:
/// a count (a whole number up to the inbound bound) for the first five,
/// a share from 0.0 to 1.0 for the last two. Rules not set keep Bitcoin
/// Core's values. Used with connmgr_config_set_evict_inbound.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_eviction_rule(
    cfg: *mut ConnmgrConfig,
    rule: u32,
    value: f64,
) -> ConnmgrStatus {
    guard("connmgr_config_set_eviction_rule", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        let count = || -> Result<usize, Failure> {
            let whole = value.is_finite() && value >= 0.0 && value.fract() == 0.0;
            if !whole || value > limits::MAX_INBOUND as f64 {
                return Err(Failure::invalid(format!(
                    "eviction rule {rule} takes a whole count from 0 to {}, got {value}",
                    limits::MAX_INBOUND
                )));
            }
            Ok(value as usize)
        };
        let share = || -> Result<f64, Failure> {
            if !(0.0..=1.0).contains(&value) {
                return Err(Failure::invalid(format!(
                    "eviction rule {rule} takes a share from 0.0 to 1.0, got {value}"
                )));
            }
            Ok(value)
        };
        let set: EvictionRule = match rule {
            CONNMGR_EVICT_NETGROUP => {
                let n = count()?;
                Box::new(move |p| p.protect_netgroup = n)
            }
            CONNMGR_EVICT_MIN_PING => {
                let n = count()?;
                Box::new(move |p| p.protect_min_ping = n)
            }
            CONNMGR_EVICT_RECENT_TX => {
                let n = count()?;
                Box::new(move |p| p.protect_recent_tx = n)
            }
            CONNMGR_EVICT_BLOCK_RELAY_ONLY => {
                let n = count()?;
                Box::new(move |p| p.protect_block_relay_only = n)
            }
            CONNMGR_EVICT_RECENT_BLOCK => {
                let n = count()?;
                Box::new(move |p| p.protect_recent_block = n)
            }
            CONNMGR_EVICT_UPTIME_RATIO => {
                let s = share()?;
                Box::new(move |p| p.protect_uptime_ratio = s)
            }
            CONNMGR_EVICT_DISADVANTAGED_SHARE => {
                let s = share()?;
                Box::new(move |p| p.disadvantaged_share = s)
            }
            _ => {
                return Err(Failure::invalid(format!(
                    "eviction rule {rule} is none of CONNMGR_EVICT_* (0 to 6)"
                )))
            }
        };
        c.eviction_rules.push(set);
        Ok(())
    })
}

/// Keeps at least one full-relay connection on each network whose bit is
/// set in `mask` (1 << CONNMGR_NET_*), Bitcoin Core's rule for the
/// networks a node can reach.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_keep_one_outbound_per_network(
    cfg: *mut ConnmgrConfig,
    mask: u32,
) -> ConnmgrStatus {
    guard("connmgr_config_set_keep_one_outbound_per_network", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        if mask >> Network::ALL.len() != 0 {
            return Err(Failure::invalid(format!(
                "`mask` {mask:#x} has unknown bits: set 1 << CONNMGR_NET_* for each network"
            )));
        }
        let nets = (0..Network::ALL.len() as u32)
            .filter(|i| mask & (1 << i) != 0)
            .map(network_arg)
            .collect::<Result<Vec<_>, _>>()?;
        c.push(move |b| b.keep_one_outbound_per_network(&nets));
        Ok(())
    })
}

/// The most events left waiting (default 65536; 1 to 16777216): past it,
/// new events are dropped with a warning and a connection in a dropped
/// event is closed.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_max_queued_events(
    cfg: *mut ConnmgrConfig,
    n: usize,
) -> ConnmgrStatus {
    guard("connmgr_config_set_max_queued_events", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        check_size("max_queued_events", n, limits::MAX_QUEUED_EVENTS)?;
        c.push(move |b| b.max_queued_events(n));
        Ok(())
    })
}

/// Lets the handler thread run the dialer, address source and dial gate
/// itself instead of the dialer pool (default off). Only for C functions
/// that return at once and never block: a blocking one stalls the whole
/// manager.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_inline_dial(
    cfg: *mut ConnmgrConfig,
    on: bool,
) -> ConnmgrStatus {
    guard("connmgr_config_set_inline_dial", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        c.push(move |b| b.inline_dial(on));
        Ok(())
    })
}

/// Fixes the seed of the manager's random choices (backoff jitter, feeler
/// timing, the eviction netgroup key), for reproducible runs. Default:
/// random for each manager; a known seed lets an attacker predict which
/// netgroups eviction protects, so leave it unset in production.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_rng_seed(
    cfg: *mut ConnmgrConfig,
    seed: u64,
) -> ConnmgrStatus {
    guard("connmgr_config_set_rng_seed", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        c.push(move |b| b.rng_seed(seed));
        Ok(())
    })
}

/// A clock that moves only when told (opaque), for tests that drive
/// retries, trims, bans and decay without waiting. Thread-safe; free it
/// with connmgr_manual_clock_free (managers using it keep their share).
pub struct ConnmgrManualClock(ManualClock);

/// Creates a manual clock and stores it in `*out`.
///
/// Undefined behaviour unless `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_manual_clock_new(
    out: *mut *mut ConnmgrManualClock,
) -> ConnmgrStatus {
    guard("connmgr_manual_clock_new", || {
        let out = out_arg(out, "out")?;
        let clock = Box::into_raw(Box::new(ConnmgrManualClock(ManualClock::new())));
        // SAFETY: not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(clock) };
        Ok(())
    })
}

/// Moves the clock forward by `ms` milliseconds (at most the duration
/// bound), waking whatever waits for that time.
///
/// Undefined behaviour unless `clock` is NULL or a live clock.
#[no_mangle]
pub unsafe extern "C" fn connmgr_manual_clock_advance(
    clock: *const ConnmgrManualClock,
    ms: u64,
) -> ConnmgrStatus {
    guard("connmgr_manual_clock_advance", || {
        // SAFETY: the caller promises `clock` is NULL or live.
        let c = unsafe { obj_arg(clock, "clock") }?;
        c.0.advance(Duration::from_millis(ms).min(limits::MAX_DURATION));
        Ok(())
    })
}

/// Frees a clock handle (NULL does nothing); managers using the clock go
/// on using it.
///
/// Undefined behaviour unless `clock` is NULL or a live clock, not used again.
#[no_mangle]
pub unsafe extern "C" fn connmgr_manual_clock_free(
    clock: *mut ConnmgrManualClock,
) -> ConnmgrStatus {
    guard("connmgr_manual_clock_free", || {
        if !clock.is_null() {
            // SAFETY: from Box::into_raw in connmgr_manual_clock_new; the
            // caller gives it up.
            drop(unsafe { Box::from_raw(clock) });
        }
        Ok(())
    })
}

/// Makes managers from this config read time from `clock` instead of the
/// system clock.
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `clock` is NULL or a live clock.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_clock(
    cfg: *mut ConnmgrConfig,
    clock: *const ConnmgrManualClock,
) -> ConnmgrStatus {
    guard("connmgr_config_set_clock", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        // SAFETY: the caller promises `clock` is NULL or live.
        let clock = unsafe { obj_arg(clock, "clock") }?.0.clone();
        c.push(move |b| b.clock(clock.clone()));
        Ok(())
    })
}

/// Stores in `*n` how many file descriptors a manager made from this
/// config may hold at once (connections, listeners, dialer threads and a
/// reserve), to compare with the process limit before starting. Nothing
/// is bound or taken; settings that cannot work are reported as
/// CONNMGR_STATUS_CONFIG, as connmgr_manager_new would (a listen address
/// in use shows only there).
///
/// Undefined behaviour unless `cfg` is NULL or a live config and `n` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_descriptors_needed(
    cfg: *const ConnmgrConfig,
    n: *mut u64,
) -> ConnmgrStatus {
    guard("connmgr_config_descriptors_needed", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { obj_arg(cfg, "cfg") }?;
        let out = out_arg(n, "n")?;
        let config = c.to_config(None, true)?;
        config.validate()?;
        let needed = config.descriptors_needed();
        // SAFETY: not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(needed) };
        Ok(())
    })
}
