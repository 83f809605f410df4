//! Callbacks from the manager into C: event callbacks and the address
//! source, as function pointers with a `void *user_data`.

use std::ffi::{c_char, c_void, CStr, CString};

use log::warn;

use super::conn::ConnmgrConn;
use super::CONNMGR_ADDR_MAX;
use crate::{Addr, AddressSource, ConfigBuilder, Event};

const LOG: &str = "connmgr::ffi";

/// Called when an outbound request connects: its id (as returned by
/// connmgr_connect), the peer's address, whether the request is permanent,
/// and the new connection. The connection handle belongs to the callee,
/// who must free it with connmgr_conn_free (on any thread, at any time).
/// `remote` is valid only during the call.
pub type ConnmgrConnectedFn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        id: u64,
        remote: *const c_char,
        permanent: bool,
        conn: *mut ConnmgrConn,
    ),
>;

/// Called when an established outbound connection closes (always after
/// its connected callback): the request's id, the peer's address (valid
/// only during the call) and whether the request is permanent (then it
/// will be retried).
pub type ConnmgrDisconnectedFn = Option<
    unsafe extern "C" fn(user_data: *mut c_void, id: u64, remote: *const c_char, permanent: bool),
>;

/// Called when a listener accepts an inbound connection within the limit:
/// its id, the peer's address (valid only during the call) and the
/// connection, which the callee must free with connmgr_conn_free.
pub type ConnmgrAcceptedFn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        id: u64,
        remote: *const c_char,
        conn: *mut ConnmgrConn,
    ),
>;

/// Called when an accepted inbound connection closes: its id and the
/// peer's address (valid only during the call).
pub type ConnmgrInboundClosedFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, id: u64, remote: *const c_char)>;

/// Called when a dial fails or the address source had no address: the
/// request's id, the address ("" if none was known yet), why (both strings
/// valid only during the call), and in how many milliseconds a permanent
/// request tries again (-1 if it will not).
pub type ConnmgrDialFailedFn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        id: u64,
        remote: *const c_char,
        error: *const c_char,
        retry_in_ms: i64,
    ),
>;

/// The address source: writes the next address to try for an automatic
/// outbound connection (`"203.0.113.5:8333"`, `"[2001:db8::1]:8333"`,
/// `"seed.example:8333"`, an onion address with port) as a NUL-terminated
/// string of at most `cap - 1` bytes into `buf`, and returns true; or
/// returns false when it has none right now (the manager asks again after
/// the retry duration). Runs on one of the manager's dialer threads, maybe
/// on several at once; it may block briefly. An address that does not
/// parse counts as none (and is logged).
pub type ConnmgrAddressSourceFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, buf: *mut c_char, cap: usize) -> bool>;

/// The event callbacks, passed to connmgr_config_set_callbacks, which
/// copies the struct. Any function pointer may be NULL. Zero-initialise
/// the struct and set the fields you use.
///
/// Every callback runs on the manager's notifier thread, one at a time, in
/// the order the events happened. A callback may call back into the API
/// (connect, disconnect, snapshot, even stop), but must not free the
/// manager. `user_data` is passed to every callback as is; it must stay
/// valid, and be safe to use from the notifier thread, until the manager
/// is stopped or freed.
///
/// Without a connected (or accepted) callback, new outbound (or inbound)
/// connections are closed at once.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ConnmgrCallbacks {
    /// Passed as the first argument of every callback.
    pub user_data: *mut c_void,
    /// An outbound request connected.
    pub connected: ConnmgrConnectedFn,
    /// An established outbound connection closed.
    pub disconnected: ConnmgrDisconnectedFn,
    /// An inbound connection was accepted.
    pub accepted: ConnmgrAcceptedFn,
    /// An accepted inbound connection closed.
    pub inbound_closed: ConnmgrInboundClosedFn,
    /// A dial failed.
    pub dial_failed: ConnmgrDialFailedFn,
}

impl Default for ConnmgrCallbacks {
    fn default() -> Self {
        ConnmgrCallbacks {
            user_data: std::ptr::null_mut(),
            connected: None,
            disconnected: None,
            accepted: None,
            inbound_closed: None,
            dial_failed: None,
        }
    }
}

/// The caller's `user_data`, carried to the manager's threads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UserData(*mut c_void);

// SAFETY: the pointer is never dereferenced here, only passed back to the
// caller's functions; the API documents that it must be usable from the
// manager's threads.
unsafe impl Send for UserData {}
// SAFETY: as above; sharing it only copies the pointer.
unsafe impl Sync for UserData {}

impl UserData {
    pub(crate) fn new(p: *mut c_void) -> Self {
        UserData(p)
    }

    /// The pointer (a method, so closures capture the whole wrapper).
    pub(crate) fn get(self) -> *mut c_void {
        self.0
    }
}

/// Text for C: an address or message, with any NUL shown instead.
pub(crate) fn c_text(text: impl ToString) -> CString {
    CString::new(text.to_string().replace('\0', "\\0")).unwrap_or_default()
}

/// Hands a connection to C: the callee owns the returned handle.
fn handle_for(conn: crate::Conn) -> *mut ConnmgrConn {
    Box::into_raw(Box::new(ConnmgrConn::new(conn)))
}

/// Installs the C callbacks that are set on `builder`.
/// Where the events no callback takes go: the pull queue's feeder.
pub(crate) type Feeder = Box<dyn Fn(Event) + Send + Sync>;

pub(crate) fn install(
    mut builder: ConfigBuilder,
    cbs: &ConnmgrCallbacks,
    queue: Option<Feeder>,
) -> ConfigBuilder {
    let ud = UserData::new(cbs.user_data);
    if let Some(f) = cbs.connected {
        builder = builder.on_connection(move |_, req, conn| {
            let remote = c_text(conn.remote_addr());
            let id = conn.id().0;
            let handle = handle_for(conn);
            // SAFETY: `f` is the caller's callback with the documented
            // signature; `remote` outlives the call; `handle` is a fresh
            // handle whose ownership passes to the callee.
            unsafe { f(ud.get(), id, remote.as_ptr(), req.is_permanent(), handle) };
        });
    }
    if let Some(f) = cbs.disconnected {
        builder = builder.on_disconnection(move |_, req, _reason| {
            let remote = c_text(req.addr().map(Addr::to_string).unwrap_or_default());
            let id = req.id().map_or(0, |id| id.0);
            // SAFETY: `f` is the caller's callback; `remote` outlives the
            // call.
            unsafe { f(ud.get(), id, remote.as_ptr(), req.is_permanent()) };
        });
    }
    if let Some(f) = cbs.accepted {
        builder = builder.on_accept(move |_, conn| {
            let remote = c_text(conn.remote_addr());
            let id = conn.id().0;
            let handle = handle_for(conn);
            // SAFETY: as for `connected`.
            unsafe { f(ud.get(), id, remote.as_ptr(), handle) };
        });
    }
    let (closed, failed) = (cbs.inbound_closed, cbs.dial_failed);
    if closed.is_some() || failed.is_some() || queue.is_some() {
        builder = builder.on_event(move |_, event| match event {
            Event::InboundClosed { id, addr, .. } if closed.is_some() => {
                if let Some(f) = closed {
                    let remote = c_text(addr);
                    // SAFETY: `f` is the caller's callback; `remote`
                    // outlives the call.
                    unsafe { f(ud.get(), id.0, remote.as_ptr()) };
                }
            }
            Event::DialFailed {
                req,
                error,
                retry_in,
            } if failed.is_some() => {
                if let Some(f) = failed {
                    let remote = c_text(req.addr().map(Addr::to_string).unwrap_or_default());
                    let error = c_text(error);
                    let retry =
                        retry_in.map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                    let id = req.id().map_or(0, |id| id.0);
                    // SAFETY: `f` is the caller's callback; both strings
                    // outlive the call.
                    unsafe { f(ud.get(), id, remote.as_ptr(), error.as_ptr(), retry) };
                }
            }
            // Events whose own callback is unset go to the queue, if
            // there is one; a connection dropped here is closed.
            other => {
                if let Some(feed) = &queue {
                    feed(other);
                }
            }
        });
    }
    builder
}

/// An address source backed by a C function.
pub(crate) struct CAddressSource {
    pub(crate) f: unsafe extern "C" fn(*mut c_void, *mut c_char, usize) -> bool,
    pub(crate) user_data: UserData,
}

impl AddressSource for CAddressSource {
    fn next_address(&self) -> Option<Addr> {
        let mut buf = [0 as c_char; CONNMGR_ADDR_MAX];
        // SAFETY: `f` is the caller's source with the documented
        // signature; `buf` has `buf.len()` writable bytes.
        let found = unsafe { (self.f)(self.user_data.get(), buf.as_mut_ptr(), buf.len()) };
        if !found {
            return None;
        }
        // Whatever the callee wrote, the text ends inside the buffer.
        buf[CONNMGR_ADDR_MAX - 1] = 0;
        // SAFETY: `buf` is NUL-terminated (just ensured) and lives here.
        let text = unsafe { CStr::from_ptr(buf.as_ptr()) };
        let Ok(text) = text.to_str() else {
            warn!(target: LOG, "address source returned text that is not UTF-8; skipped");
            return None;
        };
        match text.parse::<Addr>() {
            Ok(addr) => Some(addr),
            Err(e) => {
                warn!(target: LOG, "address source returned {text:?}, which does not parse: {e}");
                None
            }
        }
    }
}
