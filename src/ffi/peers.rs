//! Peer calls for C beyond tagging: peer ids, protection queries, a
//! peer's tag total, and the ban list.

use std::ffi::c_char;

use super::error::{guard, out_arg, str_arg, write_text, ConnmgrStatus, Failure};
use super::manager::manager_arg;
use super::ConnmgrManager;
use crate::{ConnId, PeerId};

/// Returns once the manager has handled every call made before it (from
/// any thread) and published the result, so the queries (snapshots, tag
/// info, bans) show their effect. CONNMGR_STATUS_STOPPED once stopped.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager.
#[no_mangle]
pub unsafe extern "C" fn connmgr_barrier(mgr: *const ConnmgrManager) -> ConnmgrStatus {
    guard("connmgr_barrier", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        m.handle().barrier()?;
        Ok(())
    })
}

/// Names connection `id`'s peer `peer` (default: its address text), so
/// tags and protection follow the peer across addresses and connections.
/// An id that is not live is CONNMGR_STATUS_UNKNOWN_ID.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `peer` is NULL or a NUL-terminated
/// string.
#[no_mangle]
pub unsafe extern "C" fn connmgr_set_peer_id(
    mgr: *const ConnmgrManager,
    id: u64,
    peer: *const c_char,
) -> ConnmgrStatus {
    guard("connmgr_set_peer_id", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        // SAFETY: the caller promises a C string or NULL.
        let peer = unsafe { str_arg(peer, "peer") }?;
        m.handle().set_peer_id(ConnId(id), peer)?;
        Ok(())
    })
}

/// Stores in `*protected` whether `peer` is protected under tag `tag`, or
/// under any tag when `tag` is NULL.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `peer` is NULL or a NUL-terminated
/// string; `tag` is NULL or one; `protected` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_is_protected(
    mgr: *const ConnmgrManager,
    peer: *const c_char,
    tag: *const c_char,
    protected: *mut bool,
) -> ConnmgrStatus {
    guard("connmgr_is_protected", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        // SAFETY: the caller promises C strings or NULL.
        let peer = unsafe { str_arg(peer, "peer") }?;
        let tag = match tag.is_null() {
            true => None,
            // SAFETY: as above; not NULL here.
            false => Some(unsafe { str_arg(tag, "tag") }?),
        };
        let out = out_arg(protected, "protected")?;
        let yes = m.handle().is_protected(&PeerId::from(peer), tag);
        // SAFETY: `protected` is not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(yes) };
        Ok(())
    })
}

/// Stores `peer`'s total tag value in `*value` and how many tags it has in
/// `*tags` (either may be NULL). A peer the tag store does not hold is
/// CONNMGR_STATUS_UNKNOWN_ID.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `peer` is NULL or a NUL-terminated
/// string; `value` and `tags` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_tag_info(
    mgr: *const ConnmgrManager,
    peer: *const c_char,
    value: *mut i64,
    tags: *mut usize,
) -> ConnmgrStatus {
    guard("connmgr_tag_info", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        // SAFETY: the caller promises a C string or NULL.
        let peer = unsafe { str_arg(peer, "peer") }?;
        let info = m.handle().tag_info(&PeerId::from(peer)).ok_or_else(|| {
            Failure::new(
                ConnmgrStatus::UnknownId,
                format!("the tag store holds nothing about {peer:?}"),
            )
        })?;
        // SAFETY: the caller promises each non-NULL pointer is writable.
        unsafe {
            if let Some(p) = value.as_mut() {
                *p = info.value;
            }
            if let Some(p) = tags.as_mut() {
                *p = info.tags.len();
            }
        }
        Ok(())
    })
}

/// Stores how many bans are in force in `*count`; read them with
/// connmgr_get_ban.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_ban_count(
    mgr: *const ConnmgrManager,
    count: *mut usize,
) -> ConnmgrStatus {
    guard("connmgr_ban_count", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        let out = out_arg(count, "count")?;
        let n = m.handle().bans().len();
        // SAFETY: `count` is not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(n) };
        Ok(())
    })
}

/// Copies ban `index` (0 up to connmgr_ban_count, in subnet order): its
/// subnet as text into `subnet` (`subnet_cap` bytes), its reason into
/// `reason` (`reason_cap` bytes), and the milliseconds it stays in force
/// into `*ms_left`. Bans may end between calls: an index past the end is
/// CONNMGR_STATUS_INVALID_ARGUMENT.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `subnet` and `reason` are NULL or have
/// their capacities of writable bytes; `ms_left` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_get_ban(
    mgr: *const ConnmgrManager,
    index: usize,
    subnet: *mut c_char,
    subnet_cap: usize,
    reason: *mut c_char,
    reason_cap: usize,
    ms_left: *mut u64,
) -> ConnmgrStatus {
    guard("connmgr_get_ban", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        let out = out_arg(ms_left, "ms_left")?;
        let mut bans = m.handle().bans();
        bans.sort_by_key(|b| b.subnet);
        let ban = bans.get(index).ok_or_else(|| {
            Failure::invalid(format!(
                "ban index {index} is out of range: {} in force",
                bans.len()
            ))
        })?;
        let left = ban
            .until
            .saturating_duration_since(m.handle().clock_now())
            .as_millis();
        // SAFETY: the caller promises `subnet` has `subnet_cap` bytes.
        unsafe { write_text(subnet, subnet_cap, &ban.subnet.to_string(), "subnet") }?;
        // SAFETY: the caller promises `reason` has `reason_cap` bytes.
        unsafe { write_text(reason, reason_cap, &ban.reason, "reason") }?;
        // SAFETY: `ms_left` is not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(u64::try_from(left).unwrap_or(u64::MAX)) };
        Ok(())
    })
}

/// Stores, for request or connection `id`, the milliseconds since it
/// entered its state in `*ms_in_state` and those until its next attempt
/// in `*ms_to_next_attempt` (-1 when none is scheduled); either may be
/// NULL. An id the manager no longer tracks is CONNMGR_STATUS_UNKNOWN_ID.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; each out pointer is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_conn_times(
    mgr: *const ConnmgrManager,
    id: u64,
    ms_in_state: *mut u64,
    ms_to_next_attempt: *mut i64,
) -> ConnmgrStatus {
    guard("connmgr_conn_times", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        let info = known(m, id)?;
        let now = m.handle().clock_now();
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let in_state = ms(now.saturating_duration_since(info.since));
        let next = info.next_attempt.map_or(-1, |at| {
            i64::try_from(at.saturating_duration_since(now).as_millis()).unwrap_or(i64::MAX)
        });
        // SAFETY: the caller promises each non-NULL pointer is writable.
        unsafe {
            if let Some(p) = ms_in_state.as_mut() {
                *p = in_state;
            }
            if let Some(p) = ms_to_next_attempt.as_mut() {
                *p = next;
            }
        }
        Ok(())
    })
}

/// Copies the peer id of request or connection `id` into `buf` of `cap`
/// bytes: the one set with connmgr_set_peer_id, else its address text
/// ("" while an automatic request waits for an address).
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `buf` is NULL or has `cap` writable
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn connmgr_conn_peer(
    mgr: *const ConnmgrManager,
    id: u64,
    buf: *mut c_char,
    cap: usize,
) -> ConnmgrStatus {
    guard("connmgr_conn_peer", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        let info = known(m, id)?;
        let peer = match (&info.peer, &info.addr) {
            (Some(p), _) => p.to_string(),
            (None, Some(a)) => a.to_string(),
            (None, None) => String::new(),
        };
        // SAFETY: the caller promises `buf` has `cap` writable bytes.
        unsafe { write_text(buf, cap, &peer, "buf") }
    })
}

/// The published entry of `id`, or an unknown-id failure.
fn known(m: &crate::ConnManager, id: u64) -> Result<crate::ConnInfo, Failure> {
    m.handle().conn_info(ConnId(id)).ok_or_else(|| {
        Failure::new(
            ConnmgrStatus::UnknownId,
            format!("no request or connection {id} is tracked (see connmgr_snapshot)"),
        )
    })
}
