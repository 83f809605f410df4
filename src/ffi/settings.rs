//! Config setters for trimming, bans, retries, anchors and bounds: each
//! records a change to the Rust builder, applied in call order by
//! connmgr_manager_new (a later call for the same setting wins).

use std::ffi::c_char;
use std::time::Duration;

use super::config::{config_arg, ConnmgrConfig};
use super::error::{guard, str_arg, ConnmgrStatus};
use crate::limits;
use crate::runtime::config::{check_duration, check_size};

/// Trims connections (both directions) down to `low` whenever there are
/// more than `high`, as go-libp2p's connection manager (default: never
/// trims). `low` must be below `high`; checked by connmgr_manager_new.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_watermarks(
    cfg: *mut ConnmgrConfig,
    low: usize,
    high: usize,
) -> ConnmgrStatus {
    guard("connmgr_config_set_watermarks", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        check_size("watermarks (low)", low, limits::MAX_WATERMARK)?;
        check_size("watermarks (high)", high, limits::MAX_WATERMARK)?;
        c.push(move |b| b.watermarks(low, high));
        Ok(())
    })
}

/// How long a new connection is safe from trims, in milliseconds (default
/// 60000).
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_trim_grace(
    cfg: *mut ConnmgrConfig,
    ms: u64,
) -> ConnmgrStatus {
    guard("connmgr_config_set_trim_grace", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        let d = Duration::from_millis(ms);
        check_duration("trim_grace", d)?;
        c.push(move |b| b.trim_grace(d));
        Ok(())
    })
}

/// The least time between two automatic trims, in milliseconds (default
/// 10000).
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_trim_silence(
    cfg: *mut ConnmgrConfig,
    ms: u64,
) -> ConnmgrStatus {
    guard("connmgr_config_set_trim_silence", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        let d = Duration::from_millis(ms);
        check_duration("trim_silence", d)?;
        c.push(move |b| b.trim_silence(d));
        Ok(())
    })
}

/// The ban score at which a misbehaving peer is banned and disconnected
/// (default 100); 0 is rejected by connmgr_manager_new.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_ban_threshold(
    cfg: *mut ConnmgrConfig,
    n: u32,
) -> ConnmgrStatus {
    guard("connmgr_config_set_ban_threshold", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        c.push(move |b| b.ban_threshold(n));
        Ok(())
    })
}

/// The ban score from which misbehaviour is logged as a warning (default
/// 50).
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_warn_threshold(
    cfg: *mut ConnmgrConfig,
    n: u32,
) -> ConnmgrStatus {
    guard("connmgr_config_set_warn_threshold", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        c.push(move |b| b.warn_threshold(n));
        Ok(())
    })
}

/// How long a peer that reached the ban threshold stays banned, in
/// milliseconds (default 86400000, a day).
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_ban_duration(
    cfg: *mut ConnmgrConfig,
    ms: u64,
) -> ConnmgrStatus {
    guard("connmgr_config_set_ban_duration", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        let d = Duration::from_millis(ms);
        check_duration("ban_duration", d)?;
        c.push(move |b| b.ban_duration(d));
        Ok(())
    })
}

/// How long a connection must stay up before its request's retry count
/// resets, in milliseconds (default 30000).
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_min_stable_duration(
    cfg: *mut ConnmgrConfig,
    ms: u64,
) -> ConnmgrStatus {
    guard("connmgr_config_set_min_stable_duration", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        let d = Duration::from_millis(ms);
        check_duration("min_stable_duration", d)?;
        c.push(move |b| b.min_stable_duration(d));
        Ok(())
    })
}

/// Automatic failures in a row after which each replacement waits the
/// retry duration (default 25); 0 is rejected by connmgr_manager_new.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_max_failed_attempts(
    cfg: *mut ConnmgrConfig,
    n: u32,
) -> ConnmgrStatus {
    guard("connmgr_config_set_max_failed_attempts", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        c.push(move |b| b.max_failed_attempts(n));
        Ok(())
    })
}

/// How many dials may wait for a free dialer thread (default 1024).
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_dial_queue_size(
    cfg: *mut ConnmgrConfig,
    n: usize,
) -> ConnmgrStatus {
    guard("connmgr_config_set_dial_queue_size", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        check_size("dial_queue_size", n, limits::MAX_DIAL_QUEUE)?;
        c.push(move |b| b.dial_queue_size(n));
        Ok(())
    })
}

/// Whether connmgr_manager_stop closes established connections (default
/// true); with false they stay open with their owners.
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_close_on_stop(
    cfg: *mut ConnmgrConfig,
    on: bool,
) -> ConnmgrStatus {
    guard("connmgr_config_set_close_on_stop", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        c.push(move |b| b.close_on_stop(on));
        Ok(())
    })
}

/// Whether automatic connections are limited to one per routable
/// netgroup (default true).
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_outbound_diversity(
    cfg: *mut ConnmgrConfig,
    on: bool,
) -> ConnmgrStatus {
    guard("connmgr_config_set_outbound_diversity", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        c.push(move |b| b.outbound_diversity(on));
        Ok(())
    })
}

/// How many anchors (block-relay-only addresses) a clean stop saves
/// (default 2).
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_anchor_count(
    cfg: *mut ConnmgrConfig,
    n: usize,
) -> ConnmgrStatus {
    guard("connmgr_config_set_anchor_count", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        check_size("anchor_count", n, limits::MAX_ANCHORS)?;
        c.push(move |b| b.anchor_count(n));
        Ok(())
    })
}

/// Most peers the peer book holds beyond those with a live connection
/// (default 16384).
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_max_peers(
    cfg: *mut ConnmgrConfig,
    n: usize,
) -> ConnmgrStatus {
    guard("connmgr_config_set_max_peers", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        check_size("max_peers", n, limits::MAX_PEERS)?;
        c.push(move |b| b.max_peers(n));
        Ok(())
    })
}

/// Most bans kept (default 100000).
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_max_bans(
    cfg: *mut ConnmgrConfig,
    n: usize,
) -> ConnmgrStatus {
    guard("connmgr_config_set_max_bans", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        check_size("max_bans", n, limits::MAX_BANS)?;
        c.push(move |b| b.max_bans(n));
        Ok(())
    })
}

/// How long a tagged peer without a connection is kept, in milliseconds
/// (default 600000).
///
/// Undefined behaviour unless `cfg` is NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_idle_peer_ttl(
    cfg: *mut ConnmgrConfig,
    ms: u64,
) -> ConnmgrStatus {
    guard("connmgr_config_set_idle_peer_ttl", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        let d = Duration::from_millis(ms);
        check_duration("idle_peer_ttl", d)?;
        c.push(move |b| b.idle_peer_ttl(d));
        Ok(())
    })
}

/// A file for anchors: written at a clean stop, read (and removed) at
/// start. `path` must be UTF-8.
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `path` is NULL or a NUL-terminated
/// string.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_anchors_file(
    cfg: *mut ConnmgrConfig,
    path: *const c_char,
) -> ConnmgrStatus {
    guard("connmgr_config_set_anchors_file", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        // SAFETY: the caller promises `path` is NULL or a C string.
        let text = unsafe { str_arg(path, "path") }?.to_string();
        c.push(move |b| b.anchors_file(text.clone()));
        Ok(())
    })
}

/// A file that keeps the ban list across restarts: loaded by
/// connmgr_manager_new (a corrupt file is CONNMGR_STATUS_CONFIG), rewritten
/// whenever the list changes. `path` must be UTF-8.
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `path` is NULL or a NUL-terminated
/// string.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_ban_file(
    cfg: *mut ConnmgrConfig,
    path: *const c_char,
) -> ConnmgrStatus {
    guard("connmgr_config_set_ban_file", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        // SAFETY: the caller promises `path` is NULL or a C string.
        let text = unsafe { str_arg(path, "path") }?.to_string();
        c.push(move |b| b.ban_file(text.clone()));
        Ok(())
    })
}
