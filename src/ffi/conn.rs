//! Connection handles: what the connected and accepted callbacks hand to
//! C code, to read, write and close one connection.

use std::ffi::c_char;
use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use parking_lot::Mutex;

use super::error::{guard, obj_arg, out_arg, write_text, ConnmgrStatus, Failure};
use crate::{Conn, ConnId, Direction};

/// Which side opened a connection.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnmgrDirection {
    /// We dialed the peer.
    Outbound = 0,
    /// The peer dialed one of our listeners.
    Inbound = 1,
}

impl From<Direction> for ConnmgrDirection {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Outbound => ConnmgrDirection::Outbound,
            Direction::Inbound => ConnmgrDirection::Inbound,
        }
    }
}

/// One live connection, owned by the C side (opaque).
///
/// Handed out by the connected and accepted callbacks; free it with
/// connmgr_conn_free. Every function on it is thread-safe: one thread may
/// block in connmgr_conn_read while another writes or closes (closing wakes
/// the reader). A handle stays valid after its manager is stopped or freed.
pub struct ConnmgrConn {
    id: ConnId,
    direction: Direction,
    remote: String,
    halves: Halves,
}

/// Separate handles for reading, writing and closing, so that a blocked
/// read holds up neither; a stream that cannot be cloned shares one.
enum Halves {
    Split {
        read: Mutex<Conn>,
        write: Mutex<Conn>,
        control: Mutex<Conn>,
    },
    Shared(Mutex<Conn>),
}

impl ConnmgrConn {
    pub(crate) fn new(conn: Conn) -> Self {
        let id = conn.id();
        let direction = conn.direction();
        let remote = conn.remote_addr().to_string();
        let halves = match (conn.try_clone(), conn.try_clone()) {
            (Ok(write), Ok(control)) => Halves::Split {
                read: Mutex::new(conn),
                write: Mutex::new(write),
                control: Mutex::new(control),
            },
            _ => Halves::Shared(Mutex::new(conn)),
        };
        ConnmgrConn {
            id,
            direction,
            remote,
            halves,
        }
    }

    fn reader(&self) -> &Mutex<Conn> {
        match &self.halves {
            Halves::Split { read, .. } => read,
            Halves::Shared(conn) => conn,
        }
    }

    fn writer(&self) -> &Mutex<Conn> {
        match &self.halves {
            Halves::Split { write, .. } => write,
            Halves::Shared(conn) => conn,
        }
    }

    fn control(&self) -> &Mutex<Conn> {
        match &self.halves {
            Halves::Split { control, .. } => control,
            Halves::Shared(conn) => conn,
        }
    }
}

/// Reads up to `len` bytes into `buf`, blocking until at least one byte
/// arrives, and stores how many in `*n`. `*n == 0` with CONNMGR_STATUS_OK
/// means end of stream: the peer closed, or the connection was closed
/// (connmgr_conn_close, connmgr_disconnect, connmgr_remove, stop).
/// Returns CONNMGR_STATUS_TIMED_OUT when the read timeout passes or, in
/// non-blocking mode, when no byte is waiting; CONNMGR_STATUS_IO if the
/// read fails.
///
/// Undefined behaviour unless `conn` is NULL or a live handle; `buf` is NULL or has `len` writable
/// bytes (it may be NULL only when `len` is 0); `n` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_conn_read(
    conn: *const ConnmgrConn,
    buf: *mut u8,
    len: usize,
    n: *mut usize,
) -> ConnmgrStatus {
    guard("connmgr_conn_read", || {
        // SAFETY: the caller promises `conn` is NULL or live.
        let conn = unsafe { obj_arg(conn, "conn") }?;
        let n = out_arg(n, "n")?;
        let read = if len == 0 {
            0
        } else {
            let buf = out_arg(buf, "buf")?;
            // SAFETY: `buf` has `len` writable bytes (caller's promise) and
            // nothing else uses them during the call.
            let slice = unsafe { std::slice::from_raw_parts_mut(buf.as_ptr(), len) };
            let mut stream = conn.reader().lock();
            loop {
                match stream.read(slice) {
                    Ok(read) => break read,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Failure::io(&e)),
                }
            }
        };
        // SAFETY: `n` is not NULL and writable (caller's promise).
        unsafe { n.as_ptr().write(read) };
        Ok(())
    })
}

/// Writes all `len` bytes of `buf`, blocking until they are handed to the
/// operating system. Returns CONNMGR_STATUS_IO if the connection is closed
/// or the write fails (some bytes may have been sent).
///
/// Undefined behaviour unless `conn` is NULL or a live handle; `buf` is NULL or has `len` readable
/// bytes (it may be NULL only when `len` is 0).
#[no_mangle]
pub unsafe extern "C" fn connmgr_conn_write(
    conn: *const ConnmgrConn,
    buf: *const u8,
    len: usize,
) -> ConnmgrStatus {
    guard("connmgr_conn_write", || {
        // SAFETY: the caller promises `conn` is NULL or live.
        let conn = unsafe { obj_arg(conn, "conn") }?;
        if len == 0 {
            return Ok(());
        }
        let buf = out_arg(buf.cast_mut(), "buf")?;
        // SAFETY: `buf` has `len` readable bytes (caller's promise).
        let slice = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast_const(), len) };
        let mut stream = conn.writer().lock();
        stream
            .write_all(slice)
            .and_then(|()| stream.flush())
            .map_err(|e| Failure::io(&e))
    })
}

/// Sets how long connmgr_conn_read and connmgr_conn_write may block, in
/// milliseconds (0: no limit, the default). Past it they return
/// CONNMGR_STATUS_TIMED_OUT and the connection stays usable. In-memory
/// connections honour it too.
///
/// Undefined behaviour unless `conn` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn connmgr_conn_set_timeouts(
    conn: *const ConnmgrConn,
    read_ms: u64,
    write_ms: u64,
) -> ConnmgrStatus {
    guard("connmgr_conn_set_timeouts", || {
        // SAFETY: the caller promises `conn` is NULL or live.
        let conn = unsafe { obj_arg(conn, "conn") }?;
        let limit = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        let c = conn.control().lock();
        c.set_read_timeout(limit(read_ms))
            .and_then(|()| c.set_write_timeout(limit(write_ms)))
            .map_err(|e| Failure::io(&e))
    })
}

/// Turns Nagle's algorithm off (`nodelay` true) or on for a TCP
/// connection; other streams return CONNMGR_STATUS_IO.
///
/// Undefined behaviour unless `conn` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn connmgr_conn_set_nodelay(
    conn: *const ConnmgrConn,
    nodelay: bool,
) -> ConnmgrStatus {
    guard("connmgr_conn_set_nodelay", || {
        // SAFETY: the caller promises `conn` is NULL or live.
        let conn = unsafe { obj_arg(conn, "conn") }?;
        let c = conn.control().lock();
        c.set_nodelay(nodelay).map_err(|e| Failure::io(&e))
    })
}

/// Puts a TCP connection in non-blocking mode (or back): reads and writes
/// that would wait return CONNMGR_STATUS_TIMED_OUT at once, for event
/// loops that poll connmgr_conn_fd. Other streams return
/// CONNMGR_STATUS_IO.
///
/// Undefined behaviour unless `conn` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn connmgr_conn_set_nonblocking(
    conn: *const ConnmgrConn,
    nonblocking: bool,
) -> ConnmgrStatus {
    guard("connmgr_conn_set_nonblocking", || {
        // SAFETY: the caller promises `conn` is NULL or live.
        let conn = unsafe { obj_arg(conn, "conn") }?;
        let c = conn.control().lock();
        let tcp = c.tcp_stream().ok_or_else(|| {
            Failure::new(
                ConnmgrStatus::Io,
                "not a TCP connection: only TCP connections have a non-blocking mode",
            )
        })?;
        tcp.set_nonblocking(nonblocking)
            .map_err(|e| Failure::io(&e))
    })
}

/// Stores the connection's socket descriptor in `*fd`, for poll, select
/// or epoll (read and write through connmgr_conn_read and
/// connmgr_conn_write, and close with connmgr_conn_close, not close(2)).
/// A connection without one (in memory, or a custom stream) is
/// CONNMGR_STATUS_IO; so is every connection on Windows.
///
/// Undefined behaviour unless `conn` is NULL or a live handle; `fd` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_conn_fd(
    conn: *const ConnmgrConn,
    fd: *mut std::os::raw::c_int,
) -> ConnmgrStatus {
    guard("connmgr_conn_fd", || {
        // SAFETY: the caller promises `conn` is NULL or live.
        let conn = unsafe { obj_arg(conn, "conn") }?;
        let out = out_arg(fd, "fd")?;
        #[cfg(unix)]
        let found = conn.control().lock().raw_fd();
        #[cfg(not(unix))]
        let found: Option<std::os::raw::c_int> = {
            let _ = conn;
            None
        };
        let value = found.ok_or_else(|| {
            Failure::new(
                ConnmgrStatus::Io,
                "this connection has no descriptor (in memory, a custom stream, or Windows)",
            )
        })?;
        // SAFETY: `fd` is not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(value) };
        Ok(())
    })
}

/// Closes the connection and tells the manager, which treats it as a
/// disconnect (a permanent request is retried, an inbound slot is freed).
/// Wakes a read blocked on another thread. Closing again does nothing. The
/// handle stays allocated: free it with connmgr_conn_free.
///
/// Undefined behaviour unless `conn` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn connmgr_conn_close(conn: *const ConnmgrConn) -> ConnmgrStatus {
    guard("connmgr_conn_close", || {
        // SAFETY: the caller promises `conn` is NULL or live.
        let conn = unsafe { obj_arg(conn, "conn") }?;
        conn.control().lock().close();
        Ok(())
    })
}

/// Frees a connection handle, closing the connection first if it is still
/// open. NULL is accepted and does nothing. Freeing a handle twice, or
/// while another thread still uses it, is undefined behaviour.
///
/// Undefined behaviour unless `conn` is NULL or a live handle that no other thread is using, and is
/// not used again.
#[no_mangle]
pub unsafe extern "C" fn connmgr_conn_free(conn: *mut ConnmgrConn) -> ConnmgrStatus {
    guard("connmgr_conn_free", || {
        if !conn.is_null() {
            // SAFETY: the handle came from Box::into_raw in the callback
            // glue, and the caller gives up its only use of it.
            drop(unsafe { Box::from_raw(conn) });
        }
        Ok(())
    })
}

/// Stores the connection's id in `*id`: the id connmgr_connect returned for
/// an outbound request, or a fresh one for an inbound connection.
///
/// Undefined behaviour unless `conn` is NULL or a live handle; `id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_conn_id(conn: *const ConnmgrConn, id: *mut u64) -> ConnmgrStatus {
    guard("connmgr_conn_id", || {
        // SAFETY: the caller promises `conn` is NULL or live.
        let conn = unsafe { obj_arg(conn, "conn") }?;
        let id = out_arg(id, "id")?;
        // SAFETY: `id` is not NULL and writable (caller's promise).
        unsafe { id.as_ptr().write(conn.id.0) };
        Ok(())
    })
}

/// Stores which side opened the connection in `*direction`.
///
/// Undefined behaviour unless `conn` is NULL or a live handle; `direction` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_conn_direction(
    conn: *const ConnmgrConn,
    direction: *mut ConnmgrDirection,
) -> ConnmgrStatus {
    guard("connmgr_conn_direction", || {
        // SAFETY: the caller promises `conn` is NULL or live.
        let conn = unsafe { obj_arg(conn, "conn") }?;
        let out = out_arg(direction, "direction")?;
        // SAFETY: `direction` is not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(conn.direction.into()) };
        Ok(())
    })
}

/// Writes the peer's address (`"127.0.0.1:8333"`, `"[::1]:8333"`,
/// `"host.example:8333"`, ...) as a NUL-terminated string into `buf` of
/// `cap` bytes. CONNMGR_ADDR_MAX bytes are always enough for IP, DNS and
/// onion addresses. Returns CONNMGR_STATUS_BUFFER_TOO_SMALL (writing
/// nothing; the message says how many bytes are needed) if it does not
/// fit; `buf` may be NULL only then, with `cap` 0.
///
/// Undefined behaviour unless `conn` is NULL or a live handle; `buf` is NULL or has `cap` writable
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn connmgr_conn_remote(
    conn: *const ConnmgrConn,
    buf: *mut c_char,
    cap: usize,
) -> ConnmgrStatus {
    guard("connmgr_conn_remote", || {
        // SAFETY: the caller promises `conn` is NULL or live.
        let conn = unsafe { obj_arg(conn, "conn") }?;
        // SAFETY: the caller promises `buf` has `cap` writable bytes.
        unsafe { write_text(buf, cap, &conn.remote, "buf") }
    })
}
