//! The manager handle: lifecycle, requests, policy calls and snapshots.

use std::ffi::c_char;
use std::time::Duration;

use super::config::ConnmgrConfig;
use super::conn::ConnmgrDirection;
use super::error::{
    guard, obj_arg, out_arg, str_arg, write_text, ConnmgrStatus, Failure, FfiResult,
};
use super::CONNMGR_ADDR_MAX;
use crate::core::PeerReport;
use crate::policy::banlist::Subnet;
use crate::{
    Addr, ConnId, ConnInfo, ConnManager, ConnReq, ConnState, ConnType, Counts, Permissions,
};

/// A connection manager (opaque). Create it with connmgr_manager_new, start
/// it with connmgr_manager_start, stop it with connmgr_manager_stop and
/// free it with connmgr_manager_free. Every function taking a manager is
/// thread-safe, and may be called from callbacks, except
/// connmgr_manager_free, which must not run while any other call on the
/// manager is in progress, nor from a callback.
pub struct ConnmgrManager {
    manager: ConnManager,
    /// The pull queue, with connmgr_config_set_event_queue.
    queue: Option<super::queue::EventQueue>,
}

impl ConnmgrManager {
    /// The pull queue, if the config asked for one.
    pub(crate) fn queue(&self) -> Option<&super::queue::EventQueue> {
        self.queue.as_ref()
    }
}

/// Where a request or connection stands.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnmgrState {
    /// Waiting for an address or a dial result.
    Pending = 0,
    /// The last dial failed; a permanent request waits for its retry.
    Failing = 1,
    /// Removed before it connected.
    Canceled = 2,
    /// Connected.
    Established = 3,
    /// Was connected, now closed; a permanent request waits for its retry.
    Disconnected = 4,
}

impl From<ConnState> for ConnmgrState {
    fn from(s: ConnState) -> Self {
        match s {
            ConnState::Pending => ConnmgrState::Pending,
            ConnState::Failing => ConnmgrState::Failing,
            ConnState::Canceled => ConnmgrState::Canceled,
            ConnState::Established => ConnmgrState::Established,
            ConnState::Disconnected => ConnmgrState::Disconnected,
        }
    }
}

/// What a connection is for (Bitcoin Core's connection types).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnmgrConnType {
    /// Opened by the peer.
    Inbound = 0,
    /// Made by the manager to fill the full-relay target.
    FullRelay = 1,
    /// Made by the manager to fill the block-relay-only target (anchors
    /// first); relay blocks only.
    BlockRelay = 2,
    /// Asked for with connmgr_connect or connmgr_connect_ex.
    Manual = 3,
    /// A short-lived test of an address from the source, closed once
    /// connmgr_handshake_done is called for it or at the feeler timeout.
    Feeler = 4,
    /// Connect, fetch addresses, close (CONNMGR_REQ_ONE_SHOT).
    OneShot = 5,
}

impl From<ConnType> for ConnmgrConnType {
    fn from(t: ConnType) -> Self {
        match t {
            ConnType::Inbound => ConnmgrConnType::Inbound,
            ConnType::FullRelay => ConnmgrConnType::FullRelay,
            ConnType::BlockRelay => ConnmgrConnType::BlockRelay,
            ConnType::Feeler => ConnmgrConnType::Feeler,
            ConnType::OneShot => ConnmgrConnType::OneShot,
            _ => ConnmgrConnType::Manual,
        }
    }
}

/// Flag for connmgr_connect_ex: retry forever with backoff until removed.
pub const CONNMGR_REQ_PERMANENT: u32 = 1;
/// Flag for connmgr_connect_ex: the node should relay blocks only over
/// this connection (shown in the snapshot and the counts).
pub const CONNMGR_REQ_BLOCK_RELAY_ONLY: u32 = 2;
/// Flag for connmgr_connect_ex: a one-shot connection (connect, let the
/// node fetch addresses, close); the manager closes it at the one-shot
/// timeout if the node has not. Cannot be combined with
/// CONNMGR_REQ_PERMANENT.
pub const CONNMGR_REQ_ONE_SHOT: u32 = 4;

/// Permission for connmgr_connect_ex and connmgr_config_add_permission:
/// never banned or disconnected for misbehaviour, dialed and accepted even
/// when banned, never evicted.
pub const CONNMGR_PERM_NOBAN: u32 = 1;
/// Permission: accepted when inbound slots are full (another inbound peer
/// is evicted, or the limit is exceeded by at most the margin).
pub const CONNMGR_PERM_FORCE_INBOUND: u32 = 2;
/// Permission: never evicted and never trimmed.
pub const CONNMGR_PERM_NO_EVICT: u32 = 4;
/// Permission hint for the node: relay this peer's transactions.
pub const CONNMGR_PERM_RELAY: u32 = 8;
/// Permission hint: relay this peer's transactions even if known.
pub const CONNMGR_PERM_FORCE_RELAY: u32 = 16;
/// Permission hint: the peer may use bloom filters.
pub const CONNMGR_PERM_BLOOM_FILTER: u32 = 32;
/// Permission hint: the peer may download past the upload limit.
pub const CONNMGR_PERM_DOWNLOAD: u32 = 64;
/// Permission hint: the peer may ask for the mempool.
pub const CONNMGR_PERM_MEMPOOL: u32 = 128;
/// Permission hint: the peer's address requests are always answered.
pub const CONNMGR_PERM_ADDR: u32 = 256;

/// The permissions `bits` describe, or an invalid-argument failure.
pub(crate) fn permissions_arg(bits: u32) -> FfiResult<Permissions> {
    Permissions::from_bits(bits).ok_or_else(|| {
        Failure::invalid(format!(
            "`permissions` {bits:#x} has unknown bits: combine CONNMGR_PERM_* constants"
        ))
    })
}

/// How many requests and connections are in each state, as last
/// published.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnmgrCounts {
    /// Outbound requests waiting for an address or a dial.
    pub pending: usize,
    /// Outbound requests whose last dial failed, waiting to retry.
    pub failing: usize,
    /// Permanent requests whose connection dropped, waiting to retry.
    pub disconnected: usize,
    /// Established outbound connections.
    pub outbound: usize,
    /// Established inbound connections.
    pub inbound: usize,
    /// Established automatic (target-filling) outbound connections:
    /// full-relay and block-relay-only.
    pub automatic_outbound: usize,
    /// Live permanent requests, in any state.
    pub permanent: usize,
    /// Established full-relay automatic connections.
    pub full_relay_outbound: usize,
    /// Established block-relay-only connections, automatic or manual.
    pub block_relay_outbound: usize,
    /// Established feelers.
    pub feelers: usize,
    /// Established one-shot connections.
    pub one_shot: usize,
}

impl From<Counts> for ConnmgrCounts {
    fn from(c: Counts) -> Self {
        ConnmgrCounts {
            pending: c.pending,
            failing: c.failing,
            disconnected: c.disconnected,
            outbound: c.outbound,
            inbound: c.inbound,
            automatic_outbound: c.automatic_outbound,
            permanent: c.permanent,
            full_relay_outbound: c.full_relay_outbound,
            block_relay_outbound: c.block_relay_outbound,
            feelers: c.feelers,
            one_shot: c.one_shot,
        }
    }
}

/// One request or inbound connection in a snapshot.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ConnmgrConnInfo {
    /// Its id.
    pub id: u64,
    /// The peer's address, NUL-terminated; "" when `has_addr` is false. An
    /// address longer than CONNMGR_ADDR_MAX - 1 bytes (only possible for
    /// custom address kinds) is cut short.
    pub addr: [c_char; CONNMGR_ADDR_MAX],
    /// False while an automatic request waits for the address source.
    pub has_addr: bool,
    /// Its state.
    pub state: ConnmgrState,
    /// Who opened it.
    pub direction: ConnmgrDirection,
    /// Whether it is retried forever.
    pub permanent: bool,
    /// Whether the manager made it to fill a target (full-relay or
    /// block-relay-only).
    pub automatic: bool,
    /// Consecutive failed attempts since the last stable connection.
    pub retries: u32,
    /// What it is for.
    pub conn_type: ConnmgrConnType,
    /// Whether the node should relay blocks only over it.
    pub block_relay_only: bool,
    /// Its peer's permissions, CONNMGR_PERM_* bits: the request's and
    /// every configured subnet's its address is in.
    pub permissions: u32,
}

impl ConnmgrConnInfo {
    fn from_info(info: &ConnInfo) -> Self {
        let mut addr = [0 as c_char; CONNMGR_ADDR_MAX];
        if let Some(a) = &info.addr {
            let text = a.to_string();
            let mut end = text.len().min(CONNMGR_ADDR_MAX - 1);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            for (dst, src) in addr.iter_mut().zip(&text.as_bytes()[..end]) {
                *dst = *src as c_char;
            }
        }
        ConnmgrConnInfo {
            id: info.id.0,
            addr,
            has_addr: info.addr.is_some(),
            state: info.state.into(),
            direction: info.direction.into(),
            permanent: info.permanent,
            automatic: info.is_automatic(),
            retries: info.retries,
            conn_type: info.conn_type.into(),
            block_relay_only: info.block_relay_only,
            permissions: info.permissions.bits(),
        }
    }
}

/// Borrows the C manager behind `mgr`.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager that stays valid for `'a`.
pub(super) unsafe fn cmanager_arg<'a>(mgr: *const ConnmgrManager) -> FfiResult<&'a ConnmgrManager> {
    // SAFETY: the caller's promise.
    unsafe { obj_arg(mgr, "mgr") }
}

/// Borrows the manager behind `mgr`.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager that stays valid for `'a`.
pub(super) unsafe fn manager_arg<'a>(mgr: *const ConnmgrManager) -> FfiResult<&'a ConnManager> {
    // SAFETY: the caller's promise.
    unsafe { obj_arg(mgr, "mgr") }.map(|m| &m.manager)
}

fn subnet_arg(text: &str) -> FfiResult<Subnet> {
    text.parse().map_err(|e| {
        Failure::invalid(format!(
            "`subnet` {text:?} is not an IP address or CIDR range such as \"203.0.113.0/24\": {e}"
        ))
    })
}

/// Creates a manager from `cfg` (copied: the config may be freed or reused
/// right after) and stores it in `*out`. Checks every setting and binds
/// the listen addresses: a setting that cannot work, or an address that
/// cannot be bound, is CONNMGR_STATUS_CONFIG, with the message naming it.
/// Nothing runs until connmgr_manager_start.
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_manager_new(
    cfg: *const ConnmgrConfig,
    out: *mut *mut ConnmgrManager,
) -> ConnmgrStatus {
    guard("connmgr_manager_new", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let cfg = unsafe { obj_arg(cfg, "cfg") }?;
        let out = out_arg(out, "out")?;
        let queue = cfg
            .wants_queue()
            .then(|| super::queue::EventQueue::new(65_536));
        let manager = ConnManager::new(cfg.to_config(queue.as_ref(), false)?)?;
        let mgr = Box::into_raw(Box::new(ConnmgrManager { manager, queue }));
        // SAFETY: `out` is not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(mgr) };
        Ok(())
    })
}

/// Starts the manager's threads and fills the outbound target. Starting a
/// running manager does nothing; starting a stopped one is
/// CONNMGR_STATUS_STOPPED.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager.
#[no_mangle]
pub unsafe extern "C" fn connmgr_manager_start(mgr: *const ConnmgrManager) -> ConnmgrStatus {
    guard("connmgr_manager_start", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        m.start()?;
        Ok(())
    })
}

/// Stops the manager: closes listeners, cancels dials, closes established
/// connections, delivers the events still queued (callbacks may run during
/// this call, on the notifier thread) and joins the manager's threads (a
/// dial still running after the stop grace is left to finish on its own
/// thread; see connmgr_config_set_dialer). Stopping
/// again does nothing. May be called from a callback: it then returns
/// once the other threads are done, and events queued behind that callback
/// are dropped (their connections closed). Every later call on the
/// manager except snapshot, is-running, listen-address, stop and free is
/// CONNMGR_STATUS_STOPPED.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager.
#[no_mangle]
pub unsafe extern "C" fn connmgr_manager_stop(mgr: *const ConnmgrManager) -> ConnmgrStatus {
    guard("connmgr_manager_stop", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        m.stop();
        Ok(())
    })
}

/// Frees the manager, stopping it first if it is running (see
/// connmgr_manager_stop). NULL is accepted and does nothing. Freeing twice,
/// freeing while another thread is still calling into the manager, and
/// freeing from a callback are undefined behaviour. Connection handles
/// already handed out stay valid and must still be freed.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager that no other call is using, and is not
/// used again.
#[no_mangle]
pub unsafe extern "C" fn connmgr_manager_free(mgr: *mut ConnmgrManager) -> ConnmgrStatus {
    guard("connmgr_manager_free", || {
        if !mgr.is_null() {
            // SAFETY: `mgr` came from Box::into_raw in connmgr_manager_new
            // and the caller gives up its only use; dropping stops it.
            drop(unsafe { Box::from_raw(mgr) });
        }
        Ok(())
    })
}

/// Stores in `*running` whether the manager is between start and stop.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `running` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_manager_is_running(
    mgr: *const ConnmgrManager,
    running: *mut bool,
) -> ConnmgrStatus {
    guard("connmgr_manager_is_running", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        let out = out_arg(running, "running")?;
        // SAFETY: `running` is not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(m.handle().is_running()) };
        Ok(())
    })
}

/// Writes the address of listener number `index` (in the order they were
/// added; port 0 resolved to the real port) as a NUL-terminated string into
/// `buf` of `cap` bytes. An index past the last listener is
/// CONNMGR_STATUS_INVALID_ARGUMENT; a buffer too small is
/// CONNMGR_STATUS_BUFFER_TOO_SMALL (CONNMGR_ADDR_MAX is always enough).
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `buf` is NULL or has `cap` writable
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn connmgr_listen_addr(
    mgr: *const ConnmgrManager,
    index: usize,
    buf: *mut c_char,
    cap: usize,
) -> ConnmgrStatus {
    guard("connmgr_listen_addr", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        let addrs = m.handle().listen_addrs();
        let addr = addrs.get(index).ok_or_else(|| {
            Failure::invalid(format!(
                "listener index {index} is out of range: the manager has {} listener(s)",
                addrs.len()
            ))
        })?;
        // SAFETY: the caller promises `buf` has `cap` writable bytes.
        unsafe { write_text(buf, cap, &addr.to_string(), "buf") }
    })
}

/// Asks for an outbound connection to `addr` (`"127.0.0.1:8333"`,
/// `"[::1]:8333"`, `"host.example:8333"`, or an onion address with its
/// port) and stores its id in `*id`. A `permanent` request is retried forever with backoff,
/// under the same id, until removed; another is tried once. The result
/// arrives through the connected or dial-failed callback. An address that
/// does not parse is CONNMGR_STATUS_INVALID_ARGUMENT.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `addr` is NULL or a NUL-terminated
/// string; `id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_connect(
    mgr: *const ConnmgrManager,
    addr: *const c_char,
    permanent: bool,
    id: *mut u64,
) -> ConnmgrStatus {
    guard("connmgr_connect", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        // SAFETY: the caller promises `addr` is NULL or a C string.
        let text = unsafe { str_arg(addr, "addr") }?;
        let out = out_arg(id, "id")?;
        let addr: Addr = text
            .parse()
            .map_err(|e| Failure::invalid(format!("`addr` {text:?}: {e}")))?;
        let req = if permanent {
            ConnReq::permanent(addr)
        } else {
            ConnReq::new(addr)
        };
        let new_id = m.handle().connect(req)?;
        // SAFETY: `id` is not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(new_id.0) };
        Ok(())
    })
}

/// Like connmgr_connect, with CONNMGR_REQ_* `flags`: CONNMGR_REQ_PERMANENT,
/// CONNMGR_REQ_BLOCK_RELAY_ONLY, CONNMGR_REQ_ONE_SHOT, or 0 for a one-off
/// manual request, and CONNMGR_PERM_* `permissions` for its peer (0 for
/// none). Unknown flags or permissions, or a permanent one-shot request,
/// are CONNMGR_STATUS_INVALID_ARGUMENT.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `addr` is NULL or a NUL-terminated
/// string; `id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_connect_ex(
    mgr: *const ConnmgrManager,
    addr: *const c_char,
    flags: u32,
    permissions: u32,
    id: *mut u64,
) -> ConnmgrStatus {
    guard("connmgr_connect_ex", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        // SAFETY: the caller promises `addr` is NULL or a C string.
        let text = unsafe { str_arg(addr, "addr") }?;
        let out = out_arg(id, "id")?;
        let addr: Addr = text
            .parse()
            .map_err(|e| Failure::invalid(format!("`addr` {text:?}: {e}")))?;
        let req = request_for(addr, flags)?.with_permissions(permissions_arg(permissions)?);
        let new_id = m.handle().connect(req)?;
        // SAFETY: `id` is not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(new_id.0) };
        Ok(())
    })
}

/// The request `flags` describe for `addr`.
fn request_for(addr: Addr, flags: u32) -> FfiResult<ConnReq> {
    let known = CONNMGR_REQ_PERMANENT | CONNMGR_REQ_BLOCK_RELAY_ONLY | CONNMGR_REQ_ONE_SHOT;
    if flags & !known != 0 {
        return Err(Failure::invalid(format!(
            "`flags` {flags:#x} has unknown bits: combine CONNMGR_REQ_PERMANENT, \
             CONNMGR_REQ_BLOCK_RELAY_ONLY and CONNMGR_REQ_ONE_SHOT"
        )));
    }
    let permanent = flags & CONNMGR_REQ_PERMANENT != 0;
    let one_shot = flags & CONNMGR_REQ_ONE_SHOT != 0;
    let req = match (permanent, one_shot) {
        (true, true) => {
            return Err(Failure::invalid(
                "`flags`: a one-shot request cannot be permanent; drop one of the two flags",
            ))
        }
        (true, false) => ConnReq::permanent(addr),
        (false, true) => ConnReq::one_shot(addr),
        (false, false) => ConnReq::new(addr),
    };
    Ok(if flags & CONNMGR_REQ_BLOCK_RELAY_ONLY != 0 {
        req.block_relay_only()
    } else {
        req
    })
}

/// Tells the manager the node finished its protocol handshake on
/// connection `id`: a feeler is then closed (its job is done); other
/// connections are not affected. An id that is not live is
/// CONNMGR_STATUS_UNKNOWN_ID.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager.
#[no_mangle]
pub unsafe extern "C" fn connmgr_handshake_done(
    mgr: *const ConnmgrManager,
    id: u64,
) -> ConnmgrStatus {
    guard("connmgr_handshake_done", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        m.handle().handshake_done(ConnId(id))?;
        Ok(())
    })
}

/// Report kind for connmgr_report: a round-trip time of `value`
/// microseconds (the lowest one counts).
pub const CONNMGR_REPORT_PING: u32 = 0;
/// Report kind for connmgr_report: the peer delivered a block we did not
/// have (`value` unused).
pub const CONNMGR_REPORT_NOVEL_BLOCK: u32 = 1;
/// Report kind for connmgr_report: the peer delivered a transaction we did
/// not have (`value` unused).
pub const CONNMGR_REPORT_NOVEL_TX: u32 = 2;
/// Report kind for connmgr_report: whether the peer relays transactions
/// (`value` 0 or 1; default 1). One that does not but offers the services
/// we need counts as block-relay-only.
pub const CONNMGR_REPORT_RELAYS_TXS: u32 = 3;
/// Report kind for connmgr_report: whether the peer installed a bloom
/// filter (`value` 0 or 1; default 0).
pub const CONNMGR_REPORT_BLOOM_FILTER: u32 = 4;
/// Report kind for connmgr_report: whether the peer offers the services we
/// need (`value` 0 or 1; default 1).
pub const CONNMGR_REPORT_RELEVANT_SERVICES: u32 = 5;
/// Report kind for connmgr_report: the peer misbehaved mildly and is
/// evicted before others (`value` unused).
pub const CONNMGR_REPORT_PREFER_EVICT: u32 = 6;

/// The report `kind` and `value` describe.
fn report_for(kind: u32, value: u64) -> FfiResult<PeerReport> {
    let flag = || match value {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(Failure::invalid(format!(
            "`value` {other} for report kind {kind}: give 0 or 1"
        ))),
    };
    Ok(match kind {
        CONNMGR_REPORT_PING => PeerReport::Ping(Duration::from_micros(value)),
        CONNMGR_REPORT_NOVEL_BLOCK => PeerReport::NovelBlock,
        CONNMGR_REPORT_NOVEL_TX => PeerReport::NovelTx,
        CONNMGR_REPORT_RELAYS_TXS => PeerReport::RelaysTxs(flag()?),
        CONNMGR_REPORT_BLOOM_FILTER => PeerReport::BloomFilter(flag()?),
        CONNMGR_REPORT_RELEVANT_SERVICES => PeerReport::RelevantServices(flag()?),
        CONNMGR_REPORT_PREFER_EVICT => PeerReport::PreferEvict,
        other => {
            return Err(Failure::invalid(format!(
                "report kind {other} is unknown: use one of the CONNMGR_REPORT_* constants"
            )))
        }
    })
}

/// Reports what the node learned about inbound connection `id`, for
/// choosing which inbound connection to evict when slots are full: `kind`
/// is a CONNMGR_REPORT_* constant, `value` its argument. An unknown kind or
/// a flag other than 0 or 1 is CONNMGR_STATUS_INVALID_ARGUMENT; an id that
/// is not live is CONNMGR_STATUS_UNKNOWN_ID. Reports about outbound
/// connections are accepted and ignored.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager.
#[no_mangle]
pub unsafe extern "C" fn connmgr_report(
    mgr: *const ConnmgrManager,
    id: u64,
    kind: u32,
    value: u64,
) -> ConnmgrStatus {
    guard("connmgr_report", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        let report = report_for(kind, value)?;
        m.handle().report(ConnId(id), report)?;
        Ok(())
    })
}

/// Asks for one extra outbound connection to an address from the address
/// source, on top of the target, and stores its id in `*id`. Without an
/// address source it is CONNMGR_STATUS_CONFIG.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_new_conn_req(
    mgr: *const ConnmgrManager,
    id: *mut u64,
) -> ConnmgrStatus {
    guard("connmgr_new_conn_req", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        let out = out_arg(id, "id")?;
        let new_id = m.handle().new_conn_req()?;
        // SAFETY: `id` is not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(new_id.0) };
        Ok(())
    })
}

/// Closes connection `id`: a permanent request is retried with backoff,
/// an automatic one replaced, any other finishes; a request still
/// connecting is canceled; an inbound connection is closed. An id that is
/// not live is CONNMGR_STATUS_UNKNOWN_ID.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager.
#[no_mangle]
pub unsafe extern "C" fn connmgr_disconnect(mgr: *const ConnmgrManager, id: u64) -> ConnmgrStatus {
    guard("connmgr_disconnect", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        m.handle().disconnect(ConnId(id))?;
        Ok(())
    })
}

/// Closes outbound connection `id` and dials the same address again at
/// once. An inbound id is CONNMGR_STATUS_INVALID_ARGUMENT; an id that is
/// not live is CONNMGR_STATUS_UNKNOWN_ID.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager.
#[no_mangle]
pub unsafe extern "C" fn connmgr_reconnect(mgr: *const ConnmgrManager, id: u64) -> ConnmgrStatus {
    guard("connmgr_reconnect", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        m.handle().reconnect(ConnId(id))?;
        Ok(())
    })
}

/// Finishes request `id` for good: canceled if still connecting, closed
/// without retry if established; an inbound connection is closed. An id
/// that is not live is CONNMGR_STATUS_UNKNOWN_ID.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager.
#[no_mangle]
pub unsafe extern "C" fn connmgr_remove(mgr: *const ConnmgrManager, id: u64) -> ConnmgrStatus {
    guard("connmgr_remove", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        m.handle().remove(ConnId(id))?;
        Ok(())
    })
}

/// Bans `subnet` (an address, "203.0.113.7", or a CIDR range,
/// "203.0.113.0/24") for `duration_ms` milliseconds: live connections in it
/// close, dials to it fail and inbound connections from it are refused.
/// `reason` is logged. A subnet that does not parse is
/// CONNMGR_STATUS_INVALID_ARGUMENT.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `subnet` and `reason` are NULL or
/// NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn connmgr_ban(
    mgr: *const ConnmgrManager,
    subnet: *const c_char,
    duration_ms: u64,
    reason: *const c_char,
) -> ConnmgrStatus {
    guard("connmgr_ban", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        // SAFETY: the caller promises C strings or NULL.
        let subnet = subnet_arg(unsafe { str_arg(subnet, "subnet") }?)?;
        // SAFETY: as above.
        let reason = unsafe { str_arg(reason, "reason") }?;
        m.handle()
            .ban(subnet, Duration::from_millis(duration_ms), reason)?;
        Ok(())
    })
}

/// Lifts the ban on exactly `subnet` (as given to connmgr_ban).
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `subnet` is NULL or a NUL-terminated
/// string.
#[no_mangle]
pub unsafe extern "C" fn connmgr_unban(
    mgr: *const ConnmgrManager,
    subnet: *const c_char,
) -> ConnmgrStatus {
    guard("connmgr_unban", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        // SAFETY: the caller promises a C string or NULL.
        let subnet = subnet_arg(unsafe { str_arg(subnet, "subnet") }?)?;
        m.handle().unban(subnet)?;
        Ok(())
    })
}

/// Raises connection `id`'s ban score by a `persistent` part (never
/// decays) and a `transient` part (halves every minute); at the ban
/// threshold (100) the peer is disconnected and banned. `reason` is
/// logged. An id that is not live is CONNMGR_STATUS_UNKNOWN_ID.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `reason` is NULL or a NUL-terminated
/// string.
#[no_mangle]
pub unsafe extern "C" fn connmgr_misbehaving(
    mgr: *const ConnmgrManager,
    id: u64,
    persistent: u32,
    transient: u32,
    reason: *const c_char,
) -> ConnmgrStatus {
    guard("connmgr_misbehaving", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        // SAFETY: the caller promises a C string or NULL.
        let reason = unsafe { str_arg(reason, "reason") }?;
        m.handle()
            .misbehaving(ConnId(id), persistent, transient, reason)?;
        Ok(())
    })
}

/// Sets tag `name` of `peer` to `value`. A peer is named by its address
/// text ("127.0.0.1:8333") unless connmgr_set_peer_id gave it another id; its total tag
/// value decides which connections a trim closes first.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `peer` and `name` are NULL or
/// NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn connmgr_tag(
    mgr: *const ConnmgrManager,
    peer: *const c_char,
    name: *const c_char,
    value: i64,
) -> ConnmgrStatus {
    guard("connmgr_tag", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        // SAFETY: the caller promises C strings or NULL.
        let peer = unsafe { str_arg(peer, "peer") }?;
        // SAFETY: as above.
        let name = unsafe { str_arg(name, "name") }?;
        m.handle().tag(peer, name, value)?;
        Ok(())
    })
}

/// Removes tag `name` from `peer`.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `peer` and `name` are NULL or
/// NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn connmgr_untag(
    mgr: *const ConnmgrManager,
    peer: *const c_char,
    name: *const c_char,
) -> ConnmgrStatus {
    guard("connmgr_untag", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        // SAFETY: the caller promises C strings or NULL.
        let peer = unsafe { str_arg(peer, "peer") }?;
        // SAFETY: as above.
        let name = unsafe { str_arg(name, "name") }?;
        m.handle().untag(peer, name)?;
        Ok(())
    })
}

/// Protects `peer` under `tag`: its connections are never trimmed or
/// evicted while any tag protects it.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `peer` and `tag` are NULL or
/// NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn connmgr_protect(
    mgr: *const ConnmgrManager,
    peer: *const c_char,
    tag: *const c_char,
) -> ConnmgrStatus {
    guard("connmgr_protect", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        // SAFETY: the caller promises C strings or NULL.
        let peer = unsafe { str_arg(peer, "peer") }?;
        // SAFETY: as above.
        let tag = unsafe { str_arg(tag, "tag") }?;
        m.handle().protect(peer, tag)?;
        Ok(())
    })
}

/// Removes `tag`'s protection from `peer` and stores in
/// `*still_protected` whether another tag still protects it.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `peer` and `tag` are NULL or
/// NUL-terminated strings; `still_protected` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_unprotect(
    mgr: *const ConnmgrManager,
    peer: *const c_char,
    tag: *const c_char,
    still_protected: *mut bool,
) -> ConnmgrStatus {
    guard("connmgr_unprotect", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        // SAFETY: the caller promises C strings or NULL.
        let peer = unsafe { str_arg(peer, "peer") }?;
        // SAFETY: as above.
        let tag = unsafe { str_arg(tag, "tag") }?;
        let out = out_arg(still_protected, "still_protected")?;
        let still = m.handle().unprotect(peer, tag)?;
        // SAFETY: `still_protected` is not NULL and writable.
        unsafe { out.as_ptr().write(still) };
        Ok(())
    })
}

/// Asks for a trim and returns at once (callable from any thread, callbacks
/// included); see connmgr_trim_wait for a trim that reports what it
/// closed. Without watermarks (connmgr_config_set_watermarks) a trim does
/// nothing.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager.
#[no_mangle]
pub unsafe extern "C" fn connmgr_trim(mgr: *const ConnmgrManager) -> ConnmgrStatus {
    guard("connmgr_trim", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        m.handle().request_trim()?;
        Ok(())
    })
}

/// Trims now and waits until done: closes unprotected connections outside
/// their grace period, lowest tag value first, down to the low watermark.
/// Stores how many it closed in `*closed` and the first `capacity` of
/// their ids into `ids` (which may be NULL when `capacity` is 0). Waits at
/// most `timeout_ms` milliseconds (0: no deadline); past it the call
/// returns CONNMGR_STATUS_TIMED_OUT and the trim still runs. Callers that
/// ask at the same time share one trim.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `closed` is NULL or writable; `ids` is
/// NULL or has room for `capacity` ids.
#[no_mangle]
pub unsafe extern "C" fn connmgr_trim_wait(
    mgr: *const ConnmgrManager,
    timeout_ms: u64,
    ids: *mut u64,
    capacity: usize,
    closed: *mut usize,
) -> ConnmgrStatus {
    guard("connmgr_trim_wait", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        if closed.is_null() {
            return Err(Failure::null("closed"));
        }
        if ids.is_null() && capacity > 0 {
            return Err(Failure::null("ids"));
        }
        let trimmed = match timeout_ms {
            0 => m.handle().trim()?,
            ms => m
                .handle()
                .trim_within(std::time::Duration::from_millis(ms))?,
        };
        let n = trimmed.closed.len().min(capacity);
        for (i, id) in trimmed.closed.iter().take(n).enumerate() {
            // SAFETY: `ids` has room for `capacity` >= n entries.
            unsafe { *ids.add(i) = id.0 };
        }
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { *closed = trimmed.closed.len() };
        Ok(())
    })
}

/// Copies the published entry of request or connection `id` into `*info`
/// (its type, permissions, state, ...); an id the manager no longer
/// tracks is CONNMGR_STATUS_UNKNOWN_ID. In a connected or accepted
/// callback the entry is already published, so the callback can read the
/// connection's type here.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `info` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_get_conn_info(
    mgr: *const ConnmgrManager,
    id: u64,
    info: *mut ConnmgrConnInfo,
) -> ConnmgrStatus {
    guard("connmgr_get_conn_info", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        let out = out_arg(info, "info")?;
        let entry = m.handle().conn_info(ConnId(id)).ok_or_else(|| {
            Failure::new(
                ConnmgrStatus::UnknownId,
                format!("no request or connection {id} is tracked (see connmgr_snapshot)"),
            )
        })?;
        // SAFETY: `info` is not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(ConnmgrConnInfo::from_info(&entry)) };
        Ok(())
    })
}

/// Copies the manager's published state: the counts into `*counts`, and
/// one entry per live request or inbound connection, in id order, into
/// `infos` (an array of `capacity` entries), storing how many in
/// `*written`.
///
/// If the array is too small the call returns
/// CONNMGR_STATUS_BUFFER_TOO_SMALL, fills `*counts`, leaves the array
/// untouched, and stores the number of entries needed in `*written`: grow
/// the array and call again (connections may come and go meanwhile, so
/// leave some room). `infos` may be NULL when `capacity` is 0, to ask for
/// the size. Works after stop too.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `counts` and `written` are NULL or
/// writable; `infos` is NULL or has room for `capacity` entries.
#[no_mangle]
pub unsafe extern "C" fn connmgr_snapshot(
    mgr: *const ConnmgrManager,
    counts: *mut ConnmgrCounts,
    infos: *mut ConnmgrConnInfo,
    capacity: usize,
    written: *mut usize,
) -> ConnmgrStatus {
    guard("connmgr_snapshot", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        let counts_out = out_arg(counts, "counts")?;
        let written_out = out_arg(written, "written")?;
        let snap = m.handle().snapshot();
        let needed = snap.conns.len();
        // SAFETY: both are not NULL and writable (caller's promise).
        unsafe {
            counts_out.as_ptr().write(snap.counts.into());
            written_out.as_ptr().write(needed);
        }
        if needed > capacity {
            return Err(Failure::new(
                ConnmgrStatus::BufferTooSmall,
                format!("`infos` has room for {capacity} entries but {needed} are needed"),
            ));
        }
        if needed == 0 {
            return Ok(());
        }
        let infos = out_arg(infos, "infos")?;
        for (i, info) in snap.conns.iter().enumerate() {
            // SAFETY: `infos` has room for `capacity >= needed > i`
            // entries (caller's promise).
            unsafe {
                infos
                    .as_ptr()
                    .add(i)
                    .write(ConnmgrConnInfo::from_info(info))
            };
        }
        Ok(())
    })
}

/// Stores in `*n` how many calls wait in the manager's request queue (a
/// load gauge: near its bound, calls start to wait or fail).
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `n` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_queued_calls(
    mgr: *const ConnmgrManager,
    n: *mut usize,
) -> ConnmgrStatus {
    guard("connmgr_queued_calls", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { manager_arg(mgr) }?;
        let out = out_arg(n, "n")?;
        let value = m.handle().queued_calls();
        // SAFETY: not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(value) };
        Ok(())
    })
}
