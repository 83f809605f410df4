//! The in-memory network from C: a manager that dials and listens on
//! in-process addresses, and peers in C that accept and connect there,
//! for tests and demos without sockets.

use std::ffi::c_char;
use std::time::Duration;

use super::config::{config_arg, ConnmgrConfig};
use super::conn::ConnmgrConn;
use super::error::{guard, obj_arg, out_arg, str_arg, ConnmgrStatus, Failure, FfiResult};
use crate::{Addr, Conn, Direction, MemoryListener, MemoryNetwork};

/// A network of in-process addresses (opaque). Any address text names a
/// place on it ("10.0.0.1:8333", "peer-a.example:1"). Create it with
/// connmgr_memory_network_new and free it with
/// connmgr_memory_network_free; managers and listeners using it keep
/// what they need, so it may be freed at any time. Thread-safe.
pub struct ConnmgrMemoryNetwork(MemoryNetwork);

/// A C peer's listener on an in-memory address (opaque). Thread-safe;
/// freeing it closes it.
pub struct ConnmgrMemoryListener(MemoryListener);

fn addr_arg(text: &str, what: &str) -> FfiResult<Addr> {
    text.parse::<Addr>()
        .map_err(|e| Failure::invalid(format!("`{what}` {text:?} is not an address: {e}")))
}

/// A connection handle for a C peer's end of a pipe.
fn peer_handle(
    stream: crate::PipeStream,
    remote: Addr,
    direction: Direction,
) -> FfiResult<*mut ConnmgrConn> {
    let conn = Conn::unmanaged(Box::new(stream), remote, direction).map_err(|e| Failure::io(&e))?;
    Ok(Box::into_raw(Box::new(ConnmgrConn::new(conn))))
}

/// Creates an empty in-memory network and stores it in `*out`.
///
/// Undefined behaviour unless `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_memory_network_new(
    out: *mut *mut ConnmgrMemoryNetwork,
) -> ConnmgrStatus {
    guard("connmgr_memory_network_new", || {
        let out = out_arg(out, "out")?;
        let net = Box::into_raw(Box::new(ConnmgrMemoryNetwork(MemoryNetwork::new())));
        // SAFETY: not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(net) };
        Ok(())
    })
}

/// Frees a network handle (NULL does nothing). Listeners, connections and
/// managers using the network go on working.
///
/// Undefined behaviour unless `net` is NULL or a live network handle, not used again.
#[no_mangle]
pub unsafe extern "C" fn connmgr_memory_network_free(
    net: *mut ConnmgrMemoryNetwork,
) -> ConnmgrStatus {
    guard("connmgr_memory_network_free", || {
        if !net.is_null() {
            // SAFETY: from Box::into_raw in connmgr_memory_network_new; the
            // caller gives it up.
            drop(unsafe { Box::from_raw(net) });
        }
        Ok(())
    })
}

/// Makes managers from this config dial through `net` instead of TCP.
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `net` is NULL or a live network.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_memory_dialer(
    cfg: *mut ConnmgrConfig,
    net: *const ConnmgrMemoryNetwork,
) -> ConnmgrStatus {
    guard("connmgr_config_set_memory_dialer", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        // SAFETY: the caller promises `net` is NULL or live.
        let net = unsafe { obj_arg(net, "net") }?.0.clone();
        c.push(move |b| b.dialer(net.dialer()));
        Ok(())
    })
}

/// Makes managers from this config listen on `addr` of `net`. An address
/// someone already listens on is CONNMGR_STATUS_CONFIG from
/// connmgr_manager_new.
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `net` is NULL or a live network;
/// `addr` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_add_memory_listen(
    cfg: *mut ConnmgrConfig,
    net: *const ConnmgrMemoryNetwork,
    addr: *const c_char,
) -> ConnmgrStatus {
    guard("connmgr_config_add_memory_listen", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        // SAFETY: the caller promises `net` is NULL or live.
        let net = unsafe { obj_arg(net, "net") }?.0.clone();
        // SAFETY: the caller promises a C string or NULL.
        let addr = addr_arg(unsafe { str_arg(addr, "addr") }?, "addr")?;
        c.try_push(move |b, dry| {
            // A dry build must not take the address from the real network.
            let net = if dry {
                MemoryNetwork::new()
            } else {
                net.clone()
            };
            let listener = net.listen(addr.clone()).map_err(|e| {
                Failure::new(
                    ConnmgrStatus::Config,
                    format!("memory listen on {addr}: {e}"),
                )
            })?;
            Ok(b.listener(listener))
        });
        Ok(())
    })
}

/// Listens on `addr` of `net` for a C peer and stores the listener in
/// `*out`; free it with connmgr_memory_listener_free. An address already
/// in use is CONNMGR_STATUS_INVALID_ARGUMENT.
///
/// Undefined behaviour unless `net` is NULL or a live network; `addr` is NULL or a NUL-terminated
/// string; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_memory_listen(
    net: *const ConnmgrMemoryNetwork,
    addr: *const c_char,
    out: *mut *mut ConnmgrMemoryListener,
) -> ConnmgrStatus {
    guard("connmgr_memory_listen", || {
        // SAFETY: the caller promises `net` is NULL or live.
        let net = unsafe { obj_arg(net, "net") }?;
        // SAFETY: the caller promises a C string or NULL.
        let addr = addr_arg(unsafe { str_arg(addr, "addr") }?, "addr")?;
        let out = out_arg(out, "out")?;
        let listener = net
            .0
            .listen(addr)
            .map_err(|e| Failure::invalid(e.to_string()))?;
        let l = Box::into_raw(Box::new(ConnmgrMemoryListener(listener)));
        // SAFETY: not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(l) };
        Ok(())
    })
}

/// Waits up to `timeout_ms` for a connection to `listener` and stores its
/// handle in `*conn` (the C side owns it: connmgr_conn_free).
/// CONNMGR_STATUS_TIMED_OUT when none came. The handle's id is 0 and its
/// direction inbound; no manager tracks it.
///
/// Undefined behaviour unless `listener` is NULL or a live listener; `conn` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_memory_accept(
    listener: *const ConnmgrMemoryListener,
    timeout_ms: u64,
    conn: *mut *mut ConnmgrConn,
) -> ConnmgrStatus {
    guard("connmgr_memory_accept", || {
        // SAFETY: the caller promises `listener` is NULL or live.
        let l = unsafe { obj_arg(listener, "listener") }?;
        let out = out_arg(conn, "conn")?;
        let wait = Duration::from_millis(timeout_ms).min(crate::limits::MAX_DURATION);
        let Some((stream, remote)) = l.0.accept_within(wait).map_err(|e| Failure::io(&e))? else {
            return Err(Failure::new(
                ConnmgrStatus::TimedOut,
                format!("no connection within {timeout_ms} ms"),
            ));
        };
        let handle = peer_handle(stream, remote, Direction::Inbound)?;
        // SAFETY: not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(handle) };
        Ok(())
    })
}

/// Closes and frees a C peer's listener (NULL does nothing): the address
/// is free again and connections never accepted are closed.
///
/// Undefined behaviour unless `listener` is NULL or a live listener, not used again (no accept may
/// be in progress on another thread).
#[no_mangle]
pub unsafe extern "C" fn connmgr_memory_listener_free(
    listener: *mut ConnmgrMemoryListener,
) -> ConnmgrStatus {
    guard("connmgr_memory_listener_free", || {
        if !listener.is_null() {
            // SAFETY: from Box::into_raw in connmgr_memory_listen; the
            // caller gives it up.
            drop(unsafe { Box::from_raw(listener) });
        }
        Ok(())
    })
}

/// Connects a C peer to `addr` of `net` (a manager's memory listener, or
/// another C peer's) and stores the handle in `*conn` (connmgr_conn_free;
/// id 0, direction outbound). Nothing listening there is CONNMGR_STATUS_IO.
///
/// Undefined behaviour unless `net` is NULL or a live network; `addr` is NULL or a NUL-terminated
/// string; `conn` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_memory_connect(
    net: *const ConnmgrMemoryNetwork,
    addr: *const c_char,
    conn: *mut *mut ConnmgrConn,
) -> ConnmgrStatus {
    guard("connmgr_memory_connect", || {
        // SAFETY: the caller promises `net` is NULL or live.
        let net = unsafe { obj_arg(net, "net") }?;
        // SAFETY: the caller promises a C string or NULL.
        let addr = addr_arg(unsafe { str_arg(addr, "addr") }?, "addr")?;
        let out = out_arg(conn, "conn")?;
        let stream = net.0.connect(&addr).map_err(|e| Failure::io(&e))?;
        let handle = peer_handle(stream, addr, Direction::Outbound)?;
        // SAFETY: not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(handle) };
        Ok(())
    })
}
