//! Connection handles: what the connected and accepted callbacks hand to
//! C code, to read, write and close one connection.

use std::ffi::c_char;
use std::io::{ErrorKind, Read, Write};

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
/// Returns CONNMGR_STATUS_IO if the read fails.
///
/// # Safety
///
/// `conn` is NULL or a live handle; `buf` is NULL or has `len` writable
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
/// # Safety
///
/// `conn` is NULL or a live handle; `buf` is NULL or has `len` readable
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

/// Closes the connection and tells the manager, which treats it as a
/// disconnect (a permanent request is retried, an inbound slot is freed).
/// Wakes a read blocked on another thread. Closing again does nothing. The
/// handle stays allocated: free it with connmgr_conn_free.
///
/// # Safety
///
/// `conn` is NULL or a live handle.
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
/// # Safety
///
/// `conn` is NULL or a live handle that no other thread is using, and is
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
/// # Safety
///
/// `conn` is NULL or a live handle; `id` is NULL or writable.
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
/// # Safety
///
/// `conn` is NULL or a live handle; `direction` is NULL or writable.
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
/// # Safety
///
/// `conn` is NULL or a live handle; `buf` is NULL or has `cap` writable
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
