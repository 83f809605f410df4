//! Tor's RESOLVE and RESOLVE_PTR for C: names resolved by the Tor network
//! through its SOCKS port, never by local DNS.

use std::ffi::c_char;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::error::{guard, str_arg, write_text, ConnmgrStatus, Failure};
use crate::transport::socks::{tor_resolve, tor_resolve_ptr, SocksError};

/// A SOCKS failure as a status: a timeout is CONNMGR_STATUS_TIMED_OUT, a
/// proxy that cannot be reached CONNMGR_STATUS_IO, and a refusal from Tor
/// (no such name, ...) CONNMGR_STATUS_INVALID_ARGUMENT, each with the
/// proxy's reason.
fn socks_failure(e: &SocksError) -> Failure {
    let status = match e {
        SocksError::TimedOut => ConnmgrStatus::TimedOut,
        SocksError::Io(_) | SocksError::ProxyUnreachable { .. } => ConnmgrStatus::Io,
        _ => ConnmgrStatus::InvalidArgument,
    };
    Failure::new(status, e.to_string())
}

fn proxy_arg(text: &str) -> Result<SocketAddr, Failure> {
    text.parse().map_err(|e| {
        Failure::invalid(format!(
            "`proxy` {text:?} is not an IP address with a port, e.g. \"127.0.0.1:9050\": {e}"
        ))
    })
}

/// Asks the Tor SOCKS port at `proxy` ("127.0.0.1:9050") for an address
/// of `host` (Tor's RESOLVE), within `timeout_ms` milliseconds, and writes
/// it as text ("192.0.2.7" or "2001:db8::7") into `buf` of `cap` bytes.
/// Blocks the calling thread; the manager is not involved.
///
/// Undefined behaviour unless `proxy` and `host` are NULL or NUL-terminated strings; `buf` is NULL
/// or has `cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn connmgr_tor_resolve(
    proxy: *const c_char,
    host: *const c_char,
    timeout_ms: u64,
    buf: *mut c_char,
    cap: usize,
) -> ConnmgrStatus {
    guard("connmgr_tor_resolve", || {
        // SAFETY: the caller promises C strings or NULL.
        let proxy = proxy_arg(unsafe { str_arg(proxy, "proxy") }?)?;
        // SAFETY: as above.
        let host = unsafe { str_arg(host, "host") }?;
        let ips = tor_resolve(proxy, host, Duration::from_millis(timeout_ms))
            .map_err(|e| socks_failure(&e))?;
        let ip = ips
            .first()
            .ok_or_else(|| Failure::new(ConnmgrStatus::Io, "Tor gave no address"))?;
        // SAFETY: the caller promises `buf` has `cap` writable bytes.
        unsafe { write_text(buf, cap, &ip.to_string(), "buf") }
    })
}

/// Asks the Tor SOCKS port at `proxy` for the host name of `ip` (Tor's
/// RESOLVE_PTR), within `timeout_ms` milliseconds, and writes it into
/// `buf` of `cap` bytes. Blocks the calling thread.
///
/// Undefined behaviour unless `proxy` and `ip` are NULL or NUL-terminated strings; `buf` is NULL or
/// has `cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn connmgr_tor_resolve_ptr(
    proxy: *const c_char,
    ip: *const c_char,
    timeout_ms: u64,
    buf: *mut c_char,
    cap: usize,
) -> ConnmgrStatus {
    guard("connmgr_tor_resolve_ptr", || {
        // SAFETY: the caller promises C strings or NULL.
        let proxy = proxy_arg(unsafe { str_arg(proxy, "proxy") }?)?;
        // SAFETY: as above.
        let text = unsafe { str_arg(ip, "ip") }?;
        let ip: IpAddr = text
            .parse()
            .map_err(|e| Failure::invalid(format!("`ip` {text:?} is not an IP address: {e}")))?;
        let name = tor_resolve_ptr(proxy, ip, Duration::from_millis(timeout_ms))
            .map_err(|e| socks_failure(&e))?;
        // SAFETY: the caller promises `buf` has `cap` writable bytes.
        unsafe { write_text(buf, cap, &name, "buf") }
    })
}
