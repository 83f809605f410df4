//! Dialers and listeners written in C. Each hands the manager a
//! connection as a connected socket's descriptor, which the library then
//! owns, or as a stream made of C functions (read, write, close, free).

use std::ffi::{c_char, c_int, c_void};
use std::io::{self, Read, Write};
use std::sync::Arc;

use super::config::{config_arg, ConnmgrConfig};
use super::error::{guard, obj_arg, str_arg, ConnmgrStatus, Failure, FfiResult};
use super::events::UserData;
use crate::{Addr, CancelToken, Closer, Dial, DialContext, DialError, Listener, Stream};

/// Reads up to `len` bytes into `buf`, blocking until at least one is
/// there; returns how many, 0 at end of stream, or a negative number when
/// the read fails.
pub type ConnmgrStreamReadFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, buf: *mut u8, len: usize) -> isize>;

/// Writes up to `len` bytes from `buf`; returns how many (at least 1), or
/// a negative number when the write fails.
pub type ConnmgrStreamWriteFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, buf: *const u8, len: usize) -> isize>;

/// Shuts the stream down: a read blocked on another thread returns, and
/// later reads and writes fail. May run more than once, on any thread,
/// while reads and writes are in progress.
pub type ConnmgrStreamCloseFn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// Releases the stream's `user_data`; runs once, after every other call
/// on it has returned.
pub type ConnmgrStreamFreeFn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// Dial error kind for connmgr_dial_result_set_error: the peer refused.
pub const CONNMGR_DIAL_REFUSED: u32 = 0;
/// Dial error kind: the dial did not finish in time.
pub const CONNMGR_DIAL_TIMED_OUT: u32 = 1;
/// Dial error kind: this dialer cannot reach this kind of address.
pub const CONNMGR_DIAL_UNSUPPORTED: u32 = 2;
/// Dial error kind: a rule of the dialer refused the address.
pub const CONNMGR_DIAL_REJECTED: u32 = 3;
/// Dial error kind: any other failure.
pub const CONNMGR_DIAL_OTHER: u32 = 4;

/// The outcome of one dial or accept (opaque), filled by the C dialer or
/// listener with exactly one of connmgr_dial_result_set_fd,
/// connmgr_dial_result_set_stream or connmgr_dial_result_set_error. It
/// lives only during the callback that receives it.
pub struct ConnmgrDialResult {
    outcome: Option<Result<Box<dyn Stream>, DialError>>,
    /// The peer's address, set by a listener.
    remote: Option<Addr>,
    cancel: Option<CancelToken>,
}

impl ConnmgrDialResult {
    fn new(cancel: Option<CancelToken>) -> Self {
        ConnmgrDialResult {
            outcome: None,
            remote: None,
            cancel,
        }
    }

    /// Records `outcome` unless one is already there; a second one is
    /// dropped (closing its socket or freeing its stream).
    fn set(&mut self, outcome: Result<Box<dyn Stream>, DialError>) -> FfiResult {
        if self.outcome.is_some() {
            return Err(Failure::invalid(
                "a result is already set: call one of the setters once per dial or accept",
            ));
        }
        self.outcome = Some(outcome);
        Ok(())
    }
}

/// A stream behind C functions; clones share it, so reads, writes and
/// the closer may run at once on different threads.
struct CStream(Arc<CStreamFns>);

struct CStreamFns {
    user_data: UserData,
    read: unsafe extern "C" fn(*mut c_void, *mut u8, usize) -> isize,
    write: unsafe extern "C" fn(*mut c_void, *const u8, usize) -> isize,
    close: ConnmgrStreamCloseFn,
    free: ConnmgrStreamFreeFn,
}

impl Drop for CStreamFns {
    fn drop(&mut self) {
        if let Some(free) = self.free {
            // SAFETY: the caller's free function, run once, after the last
            // handle (stream, clone or closer) is gone.
            unsafe { free(self.user_data.get()) };
        }
    }
}

/// A C return value as a byte count, at most `len`.
fn c_count(n: isize, len: usize, what: &str) -> io::Result<usize> {
    match usize::try_from(n) {
        Ok(n) if n <= len => Ok(n),
        Ok(n) => Err(io::Error::other(format!(
            "the C stream's {what} function returned {n} for a buffer of {len} bytes"
        ))),
        Err(_) => Err(io::Error::other(format!(
            "the C stream's {what} function failed ({n})"
        ))),
    }
}

impl Read for CStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: the caller's read function with the documented
        // signature; `buf` has `buf.len()` writable bytes.
        let n = unsafe { (self.0.read)(self.0.user_data.get(), buf.as_mut_ptr(), buf.len()) };
        c_count(n, buf.len(), "read")
    }
}

impl Write for CStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: the caller's write function; `buf` has `buf.len()`
        // readable bytes.
        let n = unsafe { (self.0.write)(self.0.user_data.get(), buf.as_ptr(), buf.len()) };
        match c_count(n, buf.len(), "write")? {
            0 if !buf.is_empty() => Err(io::ErrorKind::WriteZero.into()),
            n => Ok(n),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for CStream {
    fn closer(&self) -> io::Result<Closer> {
        let fns = Arc::clone(&self.0);
        Ok(Closer::new(move || {
            if let Some(close) = fns.close {
                // SAFETY: the caller's close function, documented to be
                // callable from any thread, more than once.
                unsafe { close(fns.user_data.get()) };
            }
        }))
    }

    fn try_clone_stream(&self) -> io::Result<Box<dyn Stream>> {
        Ok(Box::new(CStream(Arc::clone(&self.0))))
    }
}

/// Puts a handed-over socket in the state the library's own are in:
/// blocking (reads and writes time out through their timeouts instead),
/// and on Apple platforms without SIGPIPE on a write to a closed peer.
#[cfg(unix)]
fn prepare_socket(sock: &socket2::SockRef<'_>) -> io::Result<()> {
    sock.set_nonblocking(false)?;
    #[cfg(target_vendor = "apple")]
    sock.set_nosigpipe(true)?;
    Ok(())
}

/// A stream for the socket `fd`, which from now on is ours: it must be
/// a connected stream socket.
fn stream_from_fd(fd: c_int) -> Result<Box<dyn Stream>, String> {
    if fd < 0 {
        return Err(format!(
            "descriptor {fd} is negative: pass a connected socket"
        ));
    }
    #[cfg(unix)]
    {
        use crate::transport::stream::SharedTcp;
        use std::os::fd::FromRawFd;
        // SAFETY: the caller hands us `fd` (documented: the library owns
        // it from this call on); it is closed exactly once, when the
        // stream's last handle drops.
        let tcp = unsafe { std::net::TcpStream::from_raw_fd(fd) };
        let sock = socket2::SockRef::from(&tcp);
        match sock.r#type() {
            Ok(t) if t == socket2::Type::STREAM => {}
            Ok(_) => return Err(format!("descriptor {fd} is not a stream socket")),
            Err(e) => return Err(format!("descriptor {fd} is not a socket: {e}")),
        }
        if let Err(e) = tcp.peer_addr() {
            return Err(format!("socket {fd} is not connected: {e}"));
        }
        prepare_socket(&sock).map_err(|e| format!("socket {fd}: {e}"))?;
        Ok(Box::new(SharedTcp::new(tcp)))
    }
    #[cfg(not(unix))]
    {
        Err(format!(
            "descriptor {fd}: handing over sockets is supported on Unix only; pass a stream instead"
        ))
    }
}

/// Takes the connected socket `fd` as the result: the library owns it
/// from this call on, whatever the call returns, and closes it when the
/// connection is freed. A descriptor that is not a connected stream
/// socket fails the dial (and is closed). The socket is switched to
/// blocking mode. Not on Windows, where it fails the dial with
/// CONNMGR_STATUS_INVALID_ARGUMENT and the descriptor stays the caller's.
///
/// Undefined behaviour unless `result` is NULL or the result the callback received; `fd` is a
/// descriptor the caller owns and gives up.
#[no_mangle]
pub unsafe extern "C" fn connmgr_dial_result_set_fd(
    result: *mut ConnmgrDialResult,
    fd: c_int,
) -> ConnmgrStatus {
    guard("connmgr_dial_result_set_fd", || {
        // Taken first, so the descriptor is ours (and closed) on every path.
        let stream = stream_from_fd(fd);
        // SAFETY: the caller promises a live result or NULL.
        let r = unsafe { result.as_mut() }.ok_or_else(|| Failure::null("result"))?;
        match stream {
            Ok(stream) => r.set(Ok(stream)),
            Err(why) => {
                let _ = r.set(Err(DialError::Other(why.clone())));
                Err(Failure::invalid(why))
            }
        }
    })
}

/// Takes a stream made of C functions as the result. `read` and `write`
/// are required; `close` (wake a blocked read, fail later calls) and
/// `free` (release `user_data`) may be NULL. From this call on the
/// library owns the stream, whatever the call returns: it calls `free`
/// exactly once, after the connection's last use. Reads, writes and
/// closes may come from different threads at the same time, like a
/// socket's.
///
/// Undefined behaviour unless `result` is NULL or the result the callback received; the functions
/// follow their documented contracts with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn connmgr_dial_result_set_stream(
    result: *mut ConnmgrDialResult,
    user_data: *mut c_void,
    read: ConnmgrStreamReadFn,
    write: ConnmgrStreamWriteFn,
    close: ConnmgrStreamCloseFn,
    free: ConnmgrStreamFreeFn,
) -> ConnmgrStatus {
    guard("connmgr_dial_result_set_stream", || {
        let user_data = UserData::new(user_data);
        let (Some(read), Some(write)) = (read, write) else {
            if let Some(free) = free {
                // SAFETY: ownership passed with this call; nothing else
                // will use `user_data`.
                unsafe { free(user_data.get()) };
            }
            return Err(Failure::null("read and write"));
        };
        let fns = CStreamFns {
            user_data,
            read,
            write,
            close,
            free,
        };
        let stream: Box<dyn Stream> = Box::new(CStream(Arc::new(fns)));
        // SAFETY: the caller promises a live result or NULL.
        let r = unsafe { result.as_mut() }.ok_or_else(|| Failure::null("result"))?;
        r.set(Ok(stream))
    })
}

/// Fails the dial with `kind` (CONNMGR_DIAL_*) and `message` (NULL for
/// none), which the dial-failed event carries.
///
/// Undefined behaviour unless `result` is NULL or the result the callback received; `message` is
/// NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn connmgr_dial_result_set_error(
    result: *mut ConnmgrDialResult,
    kind: u32,
    message: *const c_char,
) -> ConnmgrStatus {
    guard("connmgr_dial_result_set_error", || {
        // SAFETY: the caller promises a live result or NULL.
        let r = unsafe { result.as_mut() }.ok_or_else(|| Failure::null("result"))?;
        let text = if message.is_null() {
            "the C dialer failed".to_owned()
        } else {
            // SAFETY: not NULL; the caller promises a C string.
            unsafe { str_arg(message, "message") }?.to_owned()
        };
        let error = match kind {
            CONNMGR_DIAL_REFUSED => DialError::Refused,
            CONNMGR_DIAL_TIMED_OUT => DialError::TimedOut,
            CONNMGR_DIAL_UNSUPPORTED => DialError::Unsupported(text),
            CONNMGR_DIAL_REJECTED => DialError::Rejected(text),
            CONNMGR_DIAL_OTHER => DialError::Other(text),
            _ => {
                let _ = r.set(Err(DialError::Other(text)));
                return Err(Failure::invalid(format!(
                    "dial error kind {kind} is none of CONNMGR_DIAL_*; the dial fails as OTHER"
                )));
            }
        };
        r.set(Err(error))
    })
}

/// Whether the manager has given up on this dial (the request was
/// removed, or the manager is stopping): a slow dialer should then stop.
///
/// Undefined behaviour unless `result` is NULL or the result the callback received; `canceled` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_dial_result_is_canceled(
    result: *const ConnmgrDialResult,
    canceled: *mut bool,
) -> ConnmgrStatus {
    guard("connmgr_dial_result_is_canceled", || {
        // SAFETY: the caller promises a live result or NULL.
        let r = unsafe { obj_arg(result, "result") }?;
        let out = super::error::out_arg(canceled, "canceled")?;
        let value = r.cancel.as_ref().is_some_and(CancelToken::is_canceled);
        // SAFETY: not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(value) };
        Ok(())
    })
}

/// Sets the peer's address for an accepted connection ("192.0.2.7:50123",
/// or any address text connmgr parses); a listener must call it before
/// returning a connection.
///
/// Undefined behaviour unless `result` is NULL or the result the callback received; `remote` is
/// NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn connmgr_dial_result_set_remote(
    result: *mut ConnmgrDialResult,
    remote: *const c_char,
) -> ConnmgrStatus {
    guard("connmgr_dial_result_set_remote", || {
        // SAFETY: the caller promises a live result or NULL.
        let r = unsafe { result.as_mut() }.ok_or_else(|| Failure::null("result"))?;
        // SAFETY: the caller promises a C string or NULL.
        let text = unsafe { str_arg(remote, "remote") }?;
        let addr = text
            .parse::<Addr>()
            .map_err(|e| Failure::invalid(format!("`remote` {text:?} is not an address: {e}")))?;
        r.remote = Some(addr);
        Ok(())
    })
}

/// A dialer written in C: connects to `addr` (NUL-terminated, valid during
/// the call) within `timeout_ms` and fills `result`. Runs on the manager's
/// dialer threads, several at once; it may block up to the timeout.
pub type ConnmgrDialFn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        addr: *const c_char,
        timeout_ms: u64,
        result: *mut ConnmgrDialResult,
    ),
>;

/// A listener written in C: blocks until a peer connects, then fills
/// `result` with the connection and the peer's address
/// (connmgr_dial_result_set_remote) and returns true; returns false once
/// the listener is closed (after its close function ran). While the
/// manager runs, false or a result with an error counts as an accept
/// failure: the manager reports it, pauses (5 ms, doubling up to 1 s) and
/// calls again; at stop it ends the accept thread. Runs on an accept
/// thread of its own.
pub type ConnmgrAcceptFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, result: *mut ConnmgrDialResult) -> bool>;

struct CDialer {
    f: unsafe extern "C" fn(*mut c_void, *const c_char, u64, *mut ConnmgrDialResult),
    user_data: UserData,
}

impl Dial for CDialer {
    fn dial(&self, addr: &Addr, ctx: &DialContext) -> Result<Box<dyn Stream>, DialError> {
        let text = super::events::c_text(addr);
        let ms = u64::try_from(ctx.remaining().as_millis()).unwrap_or(u64::MAX);
        let mut result = ConnmgrDialResult::new(Some(ctx.token().clone()));
        // SAFETY: the caller's dialer with the documented signature;
        // `text` and `result` outlive the call.
        unsafe { (self.f)(self.user_data.get(), text.as_ptr(), ms, &mut result) };
        result
            .outcome
            .unwrap_or_else(|| Err(DialError::Other("the C dialer set no result".into())))
    }
}

struct CListener {
    accept: unsafe extern "C" fn(*mut c_void, *mut ConnmgrDialResult) -> bool,
    close: ConnmgrStreamCloseFn,
    local: Addr,
    /// Frees `user_data` when the listener and its closer are gone.
    fns: Arc<ListenerData>,
}

struct ListenerData {
    user_data: UserData,
    free: ConnmgrStreamFreeFn,
}

impl Drop for ListenerData {
    fn drop(&mut self) {
        if let Some(free) = self.free {
            // SAFETY: the caller's free function, run once, last.
            unsafe { free(self.user_data.get()) };
        }
    }
}

impl Listener for CListener {
    fn accept(&mut self) -> io::Result<(Box<dyn Stream>, Addr)> {
        let mut result = ConnmgrDialResult::new(None);
        // SAFETY: the caller's accept function; `result` outlives the call.
        let open = unsafe { (self.accept)(self.fns.user_data.get(), &mut result) };
        if !open {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the C listener is closed",
            ));
        }
        match (result.outcome, result.remote) {
            (Some(Ok(stream)), Some(remote)) => Ok((stream, remote)),
            (Some(Ok(_)), None) => Err(io::Error::other(
                "the C listener gave no remote address (call connmgr_dial_result_set_remote)",
            )),
            (Some(Err(e)), _) => Err(io::Error::other(e.to_string())),
            (None, _) => Err(io::Error::other("the C listener set no result")),
        }
    }

    fn local_addr(&self) -> io::Result<Addr> {
        Ok(self.local.clone())
    }

    fn closer(&self) -> io::Result<Closer> {
        let (close, fns) = (self.close, Arc::clone(&self.fns));
        Ok(Closer::new(move || {
            if let Some(close) = close {
                // SAFETY: the caller's close function, callable from any
                // thread, more than once.
                unsafe { close(fns.user_data.get()) };
            }
        }))
    }
}

/// Makes outbound connections with a C dialer instead of the built-in
/// TCP and SOCKS5 one (its proxy settings then go unused). The manager
/// calls `dial` for each attempt on its dialer threads. At stop every dial
/// is canceled (connmgr_dial_result_is_canceled turns true) and the
/// manager waits up to the stop grace (connmgr_config_set_stop_grace,
/// default 5000 ms) for its dialer threads; a dial still running after
/// that finishes on its own thread. So `user_data` must stay valid until
/// the manager is freed and every `dial` call has returned: return soon
/// after a cancel, or keep the dial timeout within the stop grace.
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `dial` follows its documented contract.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_set_dialer(
    cfg: *mut ConnmgrConfig,
    dial: ConnmgrDialFn,
    user_data: *mut c_void,
) -> ConnmgrStatus {
    guard("connmgr_config_set_dialer", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        let f = dial.ok_or_else(|| Failure::null("dial"))?;
        let user_data = UserData::new(user_data);
        c.push(move |b| b.dialer(CDialer { f, user_data }));
        Ok(())
    })
}

/// Adds a listener written in C that accepts on `local_addr` (the address
/// it reports, e.g. "127.0.0.1:8333"). `accept` runs on an accept thread
/// of its own; at stop the manager calls `close` (from another thread),
/// which must make a blocked `accept` return false; `free` (may be NULL)
/// runs once, after the config is freed and every manager made from it
/// is done with the listener. Each manager made from this config gets the
/// listener, so use the config for one manager only. If this call fails,
/// nothing is kept and `free` is not called: `user_data` stays yours.
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `local_addr` is NULL or a
/// NUL-terminated string; the functions follow their contracts.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_add_listener(
    cfg: *mut ConnmgrConfig,
    local_addr: *const c_char,
    accept: ConnmgrAcceptFn,
    close: ConnmgrStreamCloseFn,
    free: ConnmgrStreamFreeFn,
    user_data: *mut c_void,
) -> ConnmgrStatus {
    guard("connmgr_config_add_listener", || {
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        let accept = accept.ok_or_else(|| Failure::null("accept"))?;
        if close.is_none() {
            return Err(Failure::null(
                "close (stop needs it to end a blocked accept)",
            ));
        }
        // SAFETY: the caller promises a C string or NULL.
        let text = unsafe { str_arg(local_addr, "local_addr") }?;
        let local = text.parse::<Addr>().map_err(|e| {
            Failure::invalid(format!("`local_addr` {text:?} is not an address: {e}"))
        })?;
        let fns = Arc::new(ListenerData {
            user_data: UserData::new(user_data),
            free,
        });
        c.push(move |b| {
            b.listener(CListener {
                accept,
                close,
                local: local.clone(),
                fns: Arc::clone(&fns),
            })
        });
        Ok(())
    })
}

/// A listener for the listening socket `fd`, which from now on is ours.
fn listener_from_fd(fd: c_int) -> Result<std::net::TcpListener, String> {
    if fd < 0 {
        return Err(format!(
            "descriptor {fd} is negative: pass a listening socket"
        ));
    }
    #[cfg(unix)]
    {
        use std::os::fd::FromRawFd;
        // SAFETY: the caller hands us `fd` (documented: the library owns
        // it from this call on); it is closed once, when dropped.
        let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
        let sock = socket2::SockRef::from(&listener);
        match sock.r#type() {
            Ok(t) if t == socket2::Type::STREAM => {}
            Ok(_) => return Err(format!("descriptor {fd} is not a stream socket")),
            Err(e) => return Err(format!("descriptor {fd} is not a socket: {e}")),
        }
        // Only TCP over IPv4 or IPv6: the manager closes a listener by its
        // address, which other socket families do not give.
        if let Err(e) = listener.local_addr() {
            return Err(format!(
                "socket {fd} is not a TCP socket bound to an IP address: {e}"
            ));
        }
        // Elsewhere a socket that does not listen fails its first accept.
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        if !sock.is_listener().unwrap_or(false) {
            return Err(format!(
                "socket {fd} is not listening: call listen(2) on it first"
            ));
        }
        prepare_socket(&sock).map_err(|e| format!("socket {fd}: {e}"))?;
        Ok(listener)
    }
    #[cfg(not(unix))]
    {
        Err(format!(
            "descriptor {fd}: handing over sockets is supported on Unix only; use connmgr_config_add_listen_addr"
        ))
    }
}

/// Accepts inbound connections on `fd`, a bound and listening TCP socket
/// (IPv4 or IPv6) the caller made. The library owns `fd` from this call
/// on, whatever the call returns (on Unix; on Windows the call fails and
/// the descriptor stays the caller's), and switches it to blocking mode.
/// The socket goes to the first manager made from this config (stopping
/// it shuts the socket down); making a second one from the same config is
/// CONNMGR_STATUS_CONFIG.
///
/// Undefined behaviour unless `cfg` is NULL or a live config; `fd` is a
/// descriptor the caller owns and gives up.
#[no_mangle]
pub unsafe extern "C" fn connmgr_config_add_listen_fd(
    cfg: *mut ConnmgrConfig,
    fd: c_int,
) -> ConnmgrStatus {
    guard("connmgr_config_add_listen_fd", || {
        let listener = listener_from_fd(fd).map_err(Failure::invalid)?;
        // SAFETY: the caller promises `cfg` is NULL or live.
        let c = unsafe { config_arg(cfg) }?;
        let slot = std::cell::RefCell::new(Some(listener));
        c.try_push(move |b, dry| {
            let own = if dry {
                // Counted, not taken: a duplicate that closes right after.
                slot.borrow().as_ref().map(std::net::TcpListener::try_clone)
            } else {
                slot.borrow_mut().take().map(Ok)
            };
            let own = own
                .ok_or_else(|| {
                    Failure::new(
                        ConnmgrStatus::Config,
                        "the socket of connmgr_config_add_listen_fd went to an earlier manager: \
                         add a listening socket again for a new one",
                    )
                })?
                .map_err(|e| Failure::new(ConnmgrStatus::Io, format!("listening socket: {e}")))?;
            Ok(b.listener(crate::TcpListener::from_std(own)))
        });
        Ok(())
    })
}
