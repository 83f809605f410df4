//! Running totals for C, one number per key: a new total adds a key and
//! never changes a struct's layout.

use super::error::{guard, out_arg, ConnmgrStatus, Failure};
use super::manager::manager_arg;
use super::ConnmgrManager;
use crate::Stats;

/// Stat key for connmgr_get_stat: dials started.
pub const CONNMGR_STAT_DIALS: u32 = 0;
/// Stat key: dials that failed.
pub const CONNMGR_STAT_DIAL_FAILURES: u32 = 1;
/// Stat key: outbound connections established.
pub const CONNMGR_STAT_OUTBOUND_ESTABLISHED: u32 = 2;
/// Stat key: inbound connections accepted.
pub const CONNMGR_STAT_INBOUND_ACCEPTED: u32 = 3;
/// Stat key: inbound connections refused, every reason.
pub const CONNMGR_STAT_INBOUND_REFUSED: u32 = 4;
/// Stat key: established connections that closed.
pub const CONNMGR_STAT_CLOSED: u32 = 5;
/// Stat key: automatic dials that failed in a row.
pub const CONNMGR_STAT_CONSECUTIVE_FAILURES: u32 = 6;
/// Stat key: the most inbound connections live at once.
pub const CONNMGR_STAT_PEAK_INBOUND: u32 = 7;
/// Stat key: trims run.
pub const CONNMGR_STAT_TRIMS: u32 = 8;
/// Stat key: connections closed by trims.
pub const CONNMGR_STAT_TRIMMED: u32 = 9;
/// Stat key: inbound connections evicted for newcomers.
pub const CONNMGR_STAT_EVICTED: u32 = 10;
/// Stat key: feelers started.
pub const CONNMGR_STAT_FEELERS: u32 = 11;
/// Stat key: tag and protect calls dropped because the peer book was full.
pub const CONNMGR_STAT_PEERS_REFUSED: u32 = 12;
/// Stat key: closes on the node's side.
pub const CONNMGR_STAT_CLOSED_BY_NODE: u32 = 13;
/// Stat key: closes by disconnect.
pub const CONNMGR_STAT_CLOSED_DISCONNECT: u32 = 14;
/// Stat key: closes by reconnect.
pub const CONNMGR_STAT_CLOSED_RECONNECT: u32 = 15;
/// Stat key: closes by remove.
pub const CONNMGR_STAT_CLOSED_REMOVED: u32 = 16;
/// Stat key: closes for bans.
pub const CONNMGR_STAT_CLOSED_BANNED: u32 = 17;
/// Stat key: closes for misbehaviour.
pub const CONNMGR_STAT_CLOSED_MISBEHAVING: u32 = 18;
/// Stat key: closes at stop.
pub const CONNMGR_STAT_CLOSED_STOPPED: u32 = 19;
/// Stat key: feelers closed once their handshake finished.
pub const CONNMGR_STAT_CLOSED_FEELER_DONE: u32 = 20;
/// Stat key: feelers and one-shot connections closed at their timeout.
pub const CONNMGR_STAT_CLOSED_EXPIRED: u32 = 21;
/// Stat key: inbound refused with every slot taken.
pub const CONNMGR_STAT_REFUSED_FULL: u32 = 22;
/// Stat key: inbound refused as banned.
pub const CONNMGR_STAT_REFUSED_BANNED: u32 = 23;
/// Stat key: inbound refused by the per-IP limit.
pub const CONNMGR_STAT_REFUSED_PER_IP: u32 = 24;
/// Stat key: inbound refused by the per-netgroup limit.
pub const CONNMGR_STAT_REFUSED_PER_NETGROUP: u32 = 25;
/// Stat key: inbound refused while stopping.
pub const CONNMGR_STAT_REFUSED_STOPPING: u32 = 26;

/// The total `key` names in `s`, if it names one.
fn stat(s: &Stats, key: u32) -> Option<u64> {
    let c = &s.closes;
    let r = &s.refusals;
    let v = match key {
        CONNMGR_STAT_DIALS => s.dials,
        CONNMGR_STAT_DIAL_FAILURES => s.dial_failures,
        CONNMGR_STAT_OUTBOUND_ESTABLISHED => s.outbound_established,
        CONNMGR_STAT_INBOUND_ACCEPTED => s.inbound_accepted,
        CONNMGR_STAT_INBOUND_REFUSED => s.inbound_refused,
        CONNMGR_STAT_CLOSED => s.closed,
        CONNMGR_STAT_CONSECUTIVE_FAILURES => u64::from(s.consecutive_failures),
        CONNMGR_STAT_PEAK_INBOUND => s.peak_inbound as u64,
        CONNMGR_STAT_TRIMS => s.trims,
        CONNMGR_STAT_TRIMMED => s.trimmed,
        CONNMGR_STAT_EVICTED => s.evicted,
        CONNMGR_STAT_FEELERS => s.feelers,
        CONNMGR_STAT_PEERS_REFUSED => s.peers_refused,
        CONNMGR_STAT_CLOSED_BY_NODE => c.closed,
        CONNMGR_STAT_CLOSED_DISCONNECT => c.disconnect,
        CONNMGR_STAT_CLOSED_RECONNECT => c.reconnect,
        CONNMGR_STAT_CLOSED_REMOVED => c.removed,
        CONNMGR_STAT_CLOSED_BANNED => c.banned,
        CONNMGR_STAT_CLOSED_MISBEHAVING => c.misbehaving,
        CONNMGR_STAT_CLOSED_STOPPED => c.stopped,
        CONNMGR_STAT_CLOSED_FEELER_DONE => c.feeler_done,
        CONNMGR_STAT_CLOSED_EXPIRED => c.expired,
        CONNMGR_STAT_REFUSED_FULL => r.full,
        CONNMGR_STAT_REFUSED_BANNED => r.banned,
        CONNMGR_STAT_REFUSED_PER_IP => r.per_ip,
        CONNMGR_STAT_REFUSED_PER_NETGROUP => r.per_netgroup,
        CONNMGR_STAT_REFUSED_STOPPING => r.stopping,
        _ => return None,
    };
    Some(v)
}

/// Stores the running total `key` (a CONNMGR_STAT_* constant) in
/// `*value`, as last published. An unknown key is
/// CONNMGR_STATUS_INVALID_ARGUMENT. Works after stop too.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `value` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_get_stat(
    mgr: *const ConnmgrManager,
    key: u32,
    value: *mut u64,
) -> ConnmgrStatus {
    guard("connmgr_get_stat", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        let out = out_arg(value, "value")?;
        let v = stat(&m.handle().snapshot().stats, key).ok_or_else(|| {
            Failure::invalid(format!(
                "stat key {key} is unknown: use a CONNMGR_STAT_* constant"
            ))
        })?;
        // SAFETY: `value` is not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(v) };
        Ok(())
    })
}
