//! User rules written in C: dial and accept gates, tag updates
//! (upsert), and custom decay and bump functions for decaying tags.

use std::ffi::{c_char, c_void, CStr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::config::{config_arg, ConnmgrConfig};
use super::decaying::{bump_fn, decay_fn};
use super::error::{guard, str_arg, ConnmgrStatus, Failure};
use super::events::{c_text, UserData};
use super::manager::{manager_arg, ConnmgrManager};
use crate::limits::MAX_DURATION;
use crate::{Addr, BumpFn, DecayFn};

/// Room for a gate's reason, with its NUL.
const REASON_MAX: usize = 256;

/// A dial or accept rule: returns true to allow `addr` (valid during the
/// call), or false to refuse it, optionally writing why as a
/// NUL-terminated string of at most `reason_cap - 1` bytes into `reason`.
pub type ConnmgrGateFn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        addr: *const c_char,
        reason: *mut c_char,
        reason_cap: usize,
    ) -> bool,
>;

/// A tag update for connmgr_upsert_tag: the tag's new value from its
/// current one (0 when the peer has no such tag).
pub type ConnmgrUpsertFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, current: i64) -> i64>;

/// A custom decay function: the value after one interval, from the current
/// `value` and the milliseconds since its last bump; set `*remove` to true
/// to remove the value from the peer.
pub type ConnmgrDecayFn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        value: i64,
        ms_since_bump: u64,
        remove: *mut bool,
    ) -> i64,
>;

/// A custom bump function: the new value from the `current` one and the
/// bump's `delta`.
pub type ConnmgrBumpFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, current: i64, delta: i64) -> i64>;

type GatePtr = unsafe extern "C" fn(*mut c_void, *const c_char, *mut c_char, usize) -> bool;

/// Runs the C gate `f` on `addr`.
fn ask_gate(f: GatePtr, user_data: UserData, addr: &Addr) -> Result<(), String> {
    let text = c_text(addr);
    let mut reason = [0 as c_char; REASON_MAX];
    // SAFETY: the caller's gate with the documented signature; `text`
    // and `reason` (with `reason.len()` writable bytes) outlive the call.
    let allowed = unsafe {
        f(
            user_data.get(),
            text.as_ptr(),
            reason.as_mut_ptr(),
            reason.len(),
        )
    };
    if allowed {
        return Ok(());
    }
    // Whatever the gate wrote, the text ends inside the buffer.
    reason[REASON_MAX - 1] = 0;
    // SAFETY: NUL-terminated (just ensured) and alive here.
    let why = unsafe { CStr::from_ptr(reason.as_ptr()) }.to_string_lossy();
    Err(if why.is_empty() {
        "refused by the C gate".to_owned()
    } else {
        why.into_owned()
    })
}

/// A rule run on a dialer thread before each dial; a refused address
/// fails the dial as rejected, with the gate's reason. It may run on
/// several dialer threads at once; `user_data` must stay valid as long as
/// a dialer thread may still call it (see connmgr_config_set_dialer).
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `gate` follows its contract, with
/// `user_data` valid until the manager is freed.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_dial_gate(
    cfg: *mut ConnmgrConfig,
    gate: ConnmgrGateFn,
    user_data: *mut c_void,
) -> ConnmgrStatus {
    guard("connmgr_config_set_dial_gate", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        let f = gate.ok_or_else(|| Failure::null("gate"))?;
        let ud = UserData::new(user_data);
        c.push(move |b| b.dial_gate(move |addr| ask_gate(f, ud, addr)));
        Ok(())
    })
}

/// A rule run on the accept threads for each inbound connection before
/// the manager counts it; a refused connection is closed at once.
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `gate` follows its contract, with
/// `user_data` valid until the manager is freed.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_accept_gate(
    cfg: *mut ConnmgrConfig,
    gate: ConnmgrGateFn,
    user_data: *mut c_void,
) -> ConnmgrStatus {
    guard("connmgr_config_set_accept_gate", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        let f = gate.ok_or_else(|| Failure::null("gate"))?;
        let ud = UserData::new(user_data);
        c.push(move |b| b.accept_gate(move |addr| ask_gate(f, ud, addr)));
        Ok(())
    })
}

/// Replaces tag `name` of `peer` with `f(user_data, current)` and returns
/// once it is applied, so `user_data` may live on the caller's stack. `f`
/// runs once, on the manager's handler thread: keep it short; calls into
/// the manager from it fail. Not from a decay or bump function or another
/// upsert function (CONNMGR_STATUS_INVALID_ARGUMENT).
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `peer` and `name` are NULL or
/// NUL-terminated strings; `f` follows its contract.
#[no_mangle]
pub unsafe extern "C" fn connmgr_upsert_tag(
    mgr: *const ConnmgrManager,
    peer: *const c_char,
    name: *const c_char,
    f: ConnmgrUpsertFn,
    user_data: *mut c_void,
) -> ConnmgrStatus {
    guard("connmgr_upsert_tag", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        // SAFETY: the caller promises C strings or NULL.
        let peer = unsafe { str_arg(peer, "peer") }?;
        // SAFETY: as above.
        let name = unsafe { str_arg(name, "name") }?;
        let f = f.ok_or_else(|| Failure::null("f"))?;
        let h = m.handle();
        // Waiting below is what keeps `user_data` valid; on the handler
        // thread it could not wait.
        h.check_not_handler()?;
        // The update runs `f` only while this call still waits: if the
        // wait ends early (the manager stopped), a late update leaves the
        // value as it is instead of touching a `user_data` that is gone.
        // `f` runs under the lock, so clearing the slot waits for it.
        let slot = Arc::new(Mutex::new(Some(UserData::new(user_data))));
        let inner = Arc::clone(&slot);
        h.upsert_tag(peer, name, move |v| match *inner.lock() {
            // SAFETY: the caller's function; `user_data` is valid while
            // the slot holds it (the caller is still in this call).
            Some(ud) => unsafe { f(ud.get(), v) },
            None => v,
        })?;
        let waited = h.barrier();
        *slot.lock() = None;
        waited?;
        Ok(())
    })
}

/// The decay and bump functions for a C decaying tag.
fn c_decay_fns(decay: ConnmgrDecayFn, bump: ConnmgrBumpFn, ud: UserData) -> (DecayFn, BumpFn) {
    let decay = match decay {
        None => DecayFn::none(),
        Some(f) => DecayFn::new(move |value, last_bump: Instant, at: Instant| {
            let since = at.saturating_duration_since(last_bump);
            let ms = u64::try_from(since.as_millis()).unwrap_or(u64::MAX);
            let mut remove = false;
            // SAFETY: the caller's decay function; `remove` outlives the
            // call.
            let new = unsafe { f(ud.get(), value, ms, &mut remove) };
            (new, remove)
        }),
    };
    let bump = match bump {
        None => BumpFn::sum(),
        // SAFETY: the caller's bump function with the documented signature.
        Some(f) => BumpFn::new(move |current, delta| unsafe { f(ud.get(), current, delta) }),
    };
    (decay, bump)
}

/// Registers decaying tag `name` with C functions: every `interval_ms`,
/// `decay` runs over each peer's value (NULL: values never decay); bumps
/// combine through `bump` (NULL: they add up). Both run on the manager's
/// handler thread, so they must be quick and must not call into the
/// manager (such calls fail); `user_data` must stay valid until the tag
/// is closed or the manager freed. Errors as connmgr_register_decaying.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `name` is NULL or a NUL-terminated
/// string; the functions follow their contracts.
#[no_mangle]
pub unsafe extern "C" fn connmgr_register_decaying_fn(
    mgr: *const ConnmgrManager,
    name: *const c_char,
    interval_ms: u64,
    decay: ConnmgrDecayFn,
    bump: ConnmgrBumpFn,
    user_data: *mut c_void,
) -> ConnmgrStatus {
    guard("connmgr_register_decaying_fn", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        // SAFETY: the caller promises a C string or NULL.
        let name = unsafe { str_arg(name, "name") }?;
        let (decay, bump) = c_decay_fns(decay, bump, UserData::new(user_data));
        let interval = Duration::from_millis(interval_ms);
        m.handle().register_decaying(name, interval, decay, bump)?;
        Ok(())
    })
}

/// Registers decaying tag `name` in the config, with the built-in decay
/// and bump kinds of connmgr_register_decaying, so it exists from the
/// start. A bad kind or parameter is CONNMGR_STATUS_INVALID_ARGUMENT; a
/// zero interval or a repeated name CONNMGR_STATUS_CONFIG from
/// connmgr_manager_new.
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `name` is NULL or a NUL-terminated
/// string.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn connmgr_config_add_decaying(
    cfg: *mut ConnmgrConfig,
    name: *const c_char,
    interval_ms: u64,
    decay_kind: u32,
    decay_param: f64,
    bump_kind: u32,
    bump_min: i64,
    bump_max: i64,
) -> ConnmgrStatus {
    guard("connmgr_config_add_decaying", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        // SAFETY: the caller promises a C string or NULL.
        let name = unsafe { str_arg(name, "name") }?.to_owned();
        // Checked now, so that a bad kind is reported by this call.
        decay_fn(decay_kind, decay_param)?;
        bump_fn(bump_kind, bump_min, bump_max)?;
        let interval = Duration::from_millis(interval_ms).min(MAX_DURATION);
        c.try_push(move |b, _| {
            let decay = decay_fn(decay_kind, decay_param)?;
            let bump = bump_fn(bump_kind, bump_min, bump_max)?;
            Ok(b.decaying_tag(&name, interval, decay, bump))
        });
        Ok(())
    })
}

/// Registers decaying tag `name` in the config with C functions, as
/// connmgr_register_decaying_fn does on a running manager.
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `name` is NULL or a NUL-terminated
/// string; the functions follow their contracts.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_add_decaying_fn(
    cfg: *mut ConnmgrConfig,
    name: *const c_char,
    interval_ms: u64,
    decay: ConnmgrDecayFn,
    bump: ConnmgrBumpFn,
    user_data: *mut c_void,
) -> ConnmgrStatus {
    guard("connmgr_config_add_decaying_fn", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        // SAFETY: the caller promises a C string or NULL.
        let name = unsafe { str_arg(name, "name") }?.to_owned();
        let ud = UserData::new(user_data);
        let interval = Duration::from_millis(interval_ms).min(MAX_DURATION);
        c.push(move |b| {
            let (decay, bump) = c_decay_fns(decay, bump, ud);
            b.decaying_tag(&name, interval, decay, bump)
        });
        Ok(())
    })
}
