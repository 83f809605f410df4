//! Decaying tags from C: registered at run time with the built-in decay
//! and bump functions, bumped, removed from a peer (connmgr_untag) and
//! closed; and the trim report.

use std::ffi::c_char;
use std::time::Duration;

use super::error::{guard, out_arg, str_arg, ConnmgrStatus, Failure, FfiResult};
use super::manager::{manager_arg, ConnmgrManager};
use crate::limits::MAX_DURATION;
use crate::{BumpFn, DecayFn};

/// Decay kind for connmgr_register_decaying: values never decay.
pub const CONNMGR_DECAY_NONE: u32 = 0;
/// Decay kind: each interval subtracts `decay_param` (a whole number);
/// a value reaching 0 is removed.
pub const CONNMGR_DECAY_FIXED: u32 = 1;
/// Decay kind: each interval multiplies the value by `decay_param`
/// (0.0 to 1.0), rounding down.
pub const CONNMGR_DECAY_LINEAR: u32 = 2;
/// Decay kind: a value is removed `decay_param` milliseconds after its
/// last bump.
pub const CONNMGR_DECAY_EXPIRE_WHEN_INACTIVE: u32 = 3;

/// Bump kind for connmgr_register_decaying: adds the bump to the value.
pub const CONNMGR_BUMP_SUM: u32 = 0;
/// Bump kind: adds the bump, keeping the value within `bump_min` and
/// `bump_max`.
pub const CONNMGR_BUMP_SUM_BOUNDED: u32 = 1;
/// Bump kind: the bump replaces the value.
pub const CONNMGR_BUMP_OVERWRITE: u32 = 2;

/// The trim settings and the state of the last trim
/// (connmgr_get_trim_info).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnmgrTrimInfo {
    /// Whether watermarks are set (if not, the next four fields are 0).
    pub enabled: bool,
    /// Trimming goes down to this many connections.
    pub low_watermark: usize,
    /// Trimming starts above this many connections.
    pub high_watermark: usize,
    /// New connections are safe from trimming for this long.
    pub grace_ms: u64,
    /// The least time between two automatic trims.
    pub silence_ms: u64,
    /// Established connections now, both directions.
    pub connections: usize,
    /// Trims run so far.
    pub trims: u64,
    /// Milliseconds since the last trim ran, or UINT64_MAX if none has.
    pub ms_since_last_trim: u64,
    /// Connections the last trim closed.
    pub last_trim_closed: usize,
}

pub(crate) fn decay_fn(kind: u32, param: f64) -> FfiResult<DecayFn> {
    let bad = |what: &str| Failure::new(ConnmgrStatus::InvalidArgument, what.to_owned());
    match kind {
        CONNMGR_DECAY_NONE => Ok(DecayFn::none()),
        CONNMGR_DECAY_FIXED if param.is_finite() && param >= 0.0 && param <= i64::MAX as f64 => {
            Ok(DecayFn::fixed(param as i64))
        }
        CONNMGR_DECAY_LINEAR if (0.0..=1.0).contains(&param) => Ok(DecayFn::linear(param)),
        CONNMGR_DECAY_EXPIRE_WHEN_INACTIVE if param.is_finite() && param >= 0.0 => {
            let after = Duration::from_millis(param.min(MAX_DURATION.as_millis() as f64) as u64);
            Ok(DecayFn::expire_when_inactive(after))
        }
        CONNMGR_DECAY_FIXED..=CONNMGR_DECAY_EXPIRE_WHEN_INACTIVE => Err(bad(&format!(
            "decay parameter {param} does not suit decay kind {kind}: fixed takes a whole number \
             >= 0, linear 0.0 to 1.0, expire-when-inactive milliseconds >= 0"
        ))),
        _ => Err(bad(&format!(
            "decay kind {kind} is none of CONNMGR_DECAY_NONE, _FIXED, _LINEAR, _EXPIRE_WHEN_INACTIVE"
        ))),
    }
}

pub(crate) fn bump_fn(kind: u32, min: i64, max: i64) -> FfiResult<BumpFn> {
    match kind {
        CONNMGR_BUMP_SUM => Ok(BumpFn::sum()),
        CONNMGR_BUMP_SUM_BOUNDED if min <= max => Ok(BumpFn::sum_bounded(min, max)),
        CONNMGR_BUMP_SUM_BOUNDED => Err(Failure::new(
            ConnmgrStatus::InvalidArgument,
            format!("bump bounds {min}..{max}: the minimum must not exceed the maximum"),
        )),
        CONNMGR_BUMP_OVERWRITE => Ok(BumpFn::overwrite()),
        _ => Err(Failure::new(
            ConnmgrStatus::InvalidArgument,
            format!("bump kind {kind} is none of CONNMGR_BUMP_SUM, _SUM_BOUNDED, _OVERWRITE"),
        )),
    }
}

/// Registers decaying tag `name`: every `interval_ms` its decay function
/// (`decay_kind` with `decay_param`, see CONNMGR_DECAY_*) runs over each
/// peer's value; bumps combine through `bump_kind` (CONNMGR_BUMP_*;
/// `bump_min` and `bump_max` bound CONNMGR_BUMP_SUM_BOUNDED and are
/// ignored otherwise). Returns once registered; a name already registered,
/// a zero interval or too many tags is CONNMGR_STATUS_INVALID_ARGUMENT.
/// Not from a callback the manager runs on its handler thread.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `name` is NULL or a NUL-terminated
/// string.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn connmgr_register_decaying(
    mgr: *const ConnmgrManager,
    name: *const c_char,
    interval_ms: u64,
    decay_kind: u32,
    decay_param: f64,
    bump_kind: u32,
    bump_min: i64,
    bump_max: i64,
) -> ConnmgrStatus {
    guard("connmgr_register_decaying", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        // SAFETY: the caller promises a C string or NULL.
        let name = unsafe { str_arg(name, "name") }?;
        let decay = decay_fn(decay_kind, decay_param)?;
        let bump = bump_fn(bump_kind, bump_min, bump_max)?;
        let interval = Duration::from_millis(interval_ms);
        m.handle().register_decaying(name, interval, decay, bump)?;
        Ok(())
    })
}

/// Bumps `peer`'s value of decaying tag `name` by `delta`.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `peer` and `name` are NULL or
/// NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn connmgr_bump_decaying(
    mgr: *const ConnmgrManager,
    peer: *const c_char,
    name: *const c_char,
    delta: i64,
) -> ConnmgrStatus {
    guard("connmgr_bump_decaying", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        // SAFETY: the caller promises C strings or NULL.
        let peer = unsafe { str_arg(peer, "peer") }?;
        // SAFETY: as above.
        let name = unsafe { str_arg(name, "name") }?;
        m.handle().bump_decaying(peer, name, delta)?;
        Ok(())
    })
}

/// Closes decaying tag `name`: it and every peer's value of it go, and the
/// name may be registered again. Returns once applied.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `name` is NULL or a NUL-terminated
/// string.
#[no_mangle]
pub unsafe extern "C" fn connmgr_close_decaying(
    mgr: *const ConnmgrManager,
    name: *const c_char,
) -> ConnmgrStatus {
    guard("connmgr_close_decaying", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        // SAFETY: the caller promises a C string or NULL.
        let name = unsafe { str_arg(name, "name") }?;
        m.handle().close_decaying(name)?;
        Ok(())
    })
}

/// Fills `*info` with the trim settings and the state of the last trim.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `info` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_get_trim_info(
    mgr: *const ConnmgrManager,
    info: *mut ConnmgrTrimInfo,
) -> ConnmgrStatus {
    guard("connmgr_get_trim_info", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        let out = out_arg(info, "info")?;
        let t = m.handle().trim_info();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let mut c = ConnmgrTrimInfo {
            connections: t.connections,
            trims: t.trims,
            ms_since_last_trim: t.last_trim.map_or(u64::MAX, |at| {
                ms(m.handle().clock_now().saturating_duration_since(at))
            }),
            last_trim_closed: t.last_trim_closed,
            ..ConnmgrTrimInfo::default()
        };
        if let Some(p) = t.policy {
            c.enabled = true;
            c.low_watermark = p.low_watermark;
            c.high_watermark = p.high_watermark;
            c.grace_ms = ms(p.grace);
            c.silence_ms = ms(p.silence);
        }
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { out.as_ptr().write(c) };
        Ok(())
    })
}
