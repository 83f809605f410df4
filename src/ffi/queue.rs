//! The pull-style event queue: events no callback takes wait here for
//! `connmgr_next_event`, and on Unix a pipe's read end becomes readable
//! while any wait, for poll/epoll loops.

use std::ffi::c_char;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use super::conn::ConnmgrConn;
use super::error::{guard, out_arg, write_text, ConnmgrStatus, Failure};
use super::manager::{cmanager_arg, ConnmgrConnType, ConnmgrManager};
use crate::{Addr, ConnType, Event};

/// Event kind from connmgr_event_kind: an outbound request connected.
pub const CONNMGR_EVENT_CONNECTED: u32 = 1;
/// Event kind: an established outbound connection closed.
pub const CONNMGR_EVENT_DISCONNECTED: u32 = 2;
/// Event kind: a listener accepted an inbound connection.
pub const CONNMGR_EVENT_ACCEPTED: u32 = 3;
/// Event kind: an inbound connection closed.
pub const CONNMGR_EVENT_INBOUND_CLOSED: u32 = 4;
/// Event kind: a dial failed, or the address source had no address.
pub const CONNMGR_EVENT_DIAL_FAILED: u32 = 5;
/// Event kind: anything else (listener and persistence events); its
/// description is in connmgr_event_text.
pub const CONNMGR_EVENT_OTHER: u32 = 6;

/// One event taken from the queue (opaque). Read it with the
/// connmgr_event_* functions and free it with connmgr_event_free.
pub struct ConnmgrEvent {
    kind: u32,
    id: u64,
    remote: String,
    conn_type: ConnmgrConnType,
    text: String,
    retry_in_ms: i64,
    conn: Option<crate::Conn>,
}

impl ConnmgrEvent {
    fn from_event(ev: Event) -> Self {
        let mut out = ConnmgrEvent {
            kind: CONNMGR_EVENT_OTHER,
            id: 0,
            remote: String::new(),
            conn_type: ConnmgrConnType::Manual,
            text: String::new(),
            retry_in_ms: -1,
            conn: None,
        };
        let addr = |a: Option<&Addr>| a.map(Addr::to_string).unwrap_or_default();
        match ev {
            Event::Connected { req, conn } => {
                out.kind = CONNMGR_EVENT_CONNECTED;
                out.id = conn.id().0;
                out.remote = conn.remote_addr().to_string();
                out.conn_type = req.conn_type().into();
                out.conn = Some(conn);
            }
            Event::Disconnected { req, reason } => {
                out.kind = CONNMGR_EVENT_DISCONNECTED;
                out.id = req.id().map_or(0, |id| id.0);
                out.remote = addr(req.addr());
                out.conn_type = req.conn_type().into();
                out.text = reason.to_string();
            }
            Event::Accepted { conn } => {
                out.kind = CONNMGR_EVENT_ACCEPTED;
                out.id = conn.id().0;
                out.remote = conn.remote_addr().to_string();
                out.conn_type = ConnType::Inbound.into();
                out.conn = Some(conn);
            }
            Event::InboundClosed { id, addr, reason } => {
                out.kind = CONNMGR_EVENT_INBOUND_CLOSED;
                out.id = id.0;
                out.remote = addr.to_string();
                out.conn_type = ConnType::Inbound.into();
                out.text = reason.to_string();
            }
            Event::DialFailed {
                req,
                error,
                retry_in,
            } => {
                out.kind = CONNMGR_EVENT_DIAL_FAILED;
                out.id = req.id().map_or(0, |id| id.0);
                out.remote = addr(req.addr());
                out.conn_type = req.conn_type().into();
                out.text = error.to_string();
                out.retry_in_ms =
                    retry_in.map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            }
            other => out.text = format!("{other:?}"),
        }
        out
    }
}

/// The queue of one manager: a bounded channel and, on Unix, a wake pipe.
pub(crate) struct EventQueue {
    tx: Sender<Event>,
    rx: Receiver<Event>,
    #[cfg(unix)]
    wake: Option<(std::io::PipeReader, std::io::PipeWriter)>,
}

impl EventQueue {
    /// A queue holding at most `cap` events.
    pub(crate) fn new(cap: usize) -> Self {
        let (tx, rx) = bounded(cap.max(1));
        EventQueue {
            tx,
            rx,
            #[cfg(unix)]
            wake: wake_pipe(),
        }
    }

    /// A feeder for the notifier thread: queues an event, or, when the
    /// queue is full, drops it (closing its connection) and logs.
    pub(crate) fn feeder(&self) -> impl Fn(Event) + Send + Sync + 'static {
        let tx = self.tx.clone();
        #[cfg(unix)]
        let wake = self.wake.as_ref().and_then(|(_, w)| w.try_clone().ok());
        move |ev| match tx.try_send(ev) {
            Ok(()) => {
                #[cfg(unix)]
                if let Some(w) = &wake {
                    use std::io::Write;
                    // Full pipe: it is readable anyway.
                    let _ = (&*w).write(&[1]);
                }
            }
            Err(TrySendError::Full(ev)) | Err(TrySendError::Disconnected(ev)) => {
                log::warn!(target: "connmgr", "C event queue full; dropped {ev:?}");
            }
        }
    }

    fn next(&self, timeout: Duration) -> Option<Event> {
        let ev = self.rx.recv_timeout(timeout).ok()?;
        #[cfg(unix)]
        self.settle_wake();
        Some(ev)
    }

    /// Keeps the pipe readable exactly while events wait: drained when the
    /// queue is empty, one byte left otherwise. A feeder sends before it
    /// writes, so a byte it writes after the check keeps the pipe readable.
    #[cfg(unix)]
    fn settle_wake(&self) {
        use std::io::{Read, Write};
        let Some((r, w)) = &self.wake else {
            return;
        };
        let mut buf = [0u8; 256];
        while matches!((&*r).read(&mut buf), Ok(n) if n > 0) {}
        if !self.rx.is_empty() {
            let _ = (&*w).write(&[1]);
        }
    }

    #[cfg(unix)]
    fn fd(&self) -> Option<std::os::raw::c_int> {
        use std::os::fd::AsRawFd;
        self.wake.as_ref().map(|(r, _)| r.as_raw_fd())
    }
}

/// A non-blocking pipe, or `None` if the system refuses one.
#[cfg(unix)]
fn wake_pipe() -> Option<(std::io::PipeReader, std::io::PipeWriter)> {
    use std::os::fd::AsRawFd;
    let (r, w) = std::io::pipe().ok()?;
    for fd in [r.as_raw_fd(), w.as_raw_fd()] {
        // SAFETY: `fd` is an open descriptor this function owns; F_GETFL
        // and F_SETFL only read and set its status flags.
        let ok = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
        };
        if !ok {
            return None;
        }
    }
    Some((r, w))
}

/// The queue of `mgr`, or a failure saying how to enable it.
fn queue_of(m: &ConnmgrManager) -> Result<&EventQueue, Failure> {
    m.queue().ok_or_else(|| {
        Failure::new(
            ConnmgrStatus::Config,
            "this manager has no event queue: call connmgr_config_set_event_queue(cfg, true) \
             before connmgr_manager_new",
        )
    })
}

/// Waits up to `timeout_ms` milliseconds for the next event no callback
/// took, and stores it in `*event` (free it with connmgr_event_free). No
/// event in time is CONNMGR_STATUS_TIMED_OUT with `*event` set to NULL.
/// Needs connmgr_config_set_event_queue; events come in the order they
/// happened. Any thread may call it, one at a time per manager.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `event` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_next_event(
    mgr: *const ConnmgrManager,
    timeout_ms: u64,
    event: *mut *mut ConnmgrEvent,
) -> ConnmgrStatus {
    guard("connmgr_next_event", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { cmanager_arg(mgr) }?;
        let out = out_arg(event, "event")?;
        // SAFETY: `event` is not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(std::ptr::null_mut()) };
        let q = queue_of(m)?;
        let ev = q.next(Duration::from_millis(timeout_ms)).ok_or_else(|| {
            Failure::new(
                ConnmgrStatus::TimedOut,
                format!("no event within {timeout_ms} ms"),
            )
        })?;
        let boxed = Box::into_raw(Box::new(ConnmgrEvent::from_event(ev)));
        // SAFETY: as above.
        unsafe { out.as_ptr().write(boxed) };
        Ok(())
    })
}

/// Stores in `*fd` a file descriptor that is readable while events wait in
/// the queue, for poll, select or epoll; read events with
/// connmgr_next_event, never from the descriptor. It belongs to the
/// manager and closes with connmgr_manager_free. Where the platform has
/// no pipes (Windows) it is CONNMGR_STATUS_IO.
///
/// Undefined behaviour unless `mgr` is NULL or a live manager; `fd` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_event_fd(
    mgr: *const ConnmgrManager,
    fd: *mut std::os::raw::c_int,
) -> ConnmgrStatus {
    guard("connmgr_event_fd", || {
        // SAFETY: the caller promises `mgr` is NULL or live.
        let m = unsafe { cmanager_arg(mgr) }?;
        let out = out_arg(fd, "fd")?;
        let q = queue_of(m)?;
        #[cfg(unix)]
        let found = q.fd();
        #[cfg(not(unix))]
        let found: Option<std::os::raw::c_int> = {
            let _ = q;
            None
        };
        let value = found.ok_or_else(|| {
            Failure::new(
                ConnmgrStatus::Io,
                "no wake descriptor on this platform: poll with connmgr_next_event's timeout",
            )
        })?;
        // SAFETY: `fd` is not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(value) };
        Ok(())
    })
}

/// Borrows the event behind `ev`.
///
/// Undefined behaviour unless `ev` is NULL or a live event that nothing else uses during `'a`.
unsafe fn event_arg<'a>(ev: *mut ConnmgrEvent) -> Result<&'a mut ConnmgrEvent, Failure> {
    // SAFETY: the caller's promise.
    unsafe { ev.as_mut() }.ok_or_else(|| Failure::null("event"))
}

/// Reads an event's kind (CONNMGR_EVENT_*), id, connection type and, for
/// dial failures, the milliseconds until a permanent request retries (-1
/// if it will not, and for other kinds). Any out pointer may be NULL.
///
/// Undefined behaviour unless `event` is NULL or a live event; each out pointer is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_event_info(
    event: *mut ConnmgrEvent,
    kind: *mut u32,
    id: *mut u64,
    conn_type: *mut ConnmgrConnType,
    retry_in_ms: *mut i64,
) -> ConnmgrStatus {
    guard("connmgr_event_info", || {
        // SAFETY: the caller promises `event` is NULL or live.
        let ev = unsafe { event_arg(event) }?;
        // SAFETY: the caller promises every non-NULL out pointer is
        // writable.
        unsafe {
            if let Some(p) = kind.as_mut() {
                *p = ev.kind;
            }
            if let Some(p) = id.as_mut() {
                *p = ev.id;
            }
            if let Some(p) = conn_type.as_mut() {
                *p = ev.conn_type;
            }
            if let Some(p) = retry_in_ms.as_mut() {
                *p = ev.retry_in_ms;
            }
        }
        Ok(())
    })
}

/// Copies an event's peer address ("" if none) into `buf` of `cap` bytes,
/// NUL-terminated; too small a buffer is CONNMGR_STATUS_BUFFER_TOO_SMALL.
///
/// Undefined behaviour unless `event` is NULL or a live event; `buf` is NULL or has `cap` writable
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn connmgr_event_remote(
    event: *mut ConnmgrEvent,
    buf: *mut c_char,
    cap: usize,
) -> ConnmgrStatus {
    guard("connmgr_event_remote", || {
        // SAFETY: the caller promises `event` is NULL or live.
        let ev = unsafe { event_arg(event) }?;
        // SAFETY: the caller promises `buf` has `cap` writable bytes.
        unsafe { write_text(buf, cap, &ev.remote, "buf") }
    })
}

/// Copies an event's text into `buf` of `cap` bytes, NUL-terminated: the
/// close reason of a close, the error of a dial failure, a description of
/// other events ("" for connects and accepts).
///
/// Undefined behaviour unless `event` is NULL or a live event; `buf` is NULL or has `cap` writable
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn connmgr_event_text(
    event: *mut ConnmgrEvent,
    buf: *mut c_char,
    cap: usize,
) -> ConnmgrStatus {
    guard("connmgr_event_text", || {
        // SAFETY: the caller promises `event` is NULL or live.
        let ev = unsafe { event_arg(event) }?;
        // SAFETY: the caller promises `buf` has `cap` writable bytes.
        unsafe { write_text(buf, cap, &ev.text, "buf") }
    })
}

/// Takes the connection of a connected or accepted event into `*conn`
/// (free it with connmgr_conn_free); NULL for other events or if already
/// taken. A connection left in the event closes when the event is freed.
///
/// Undefined behaviour unless `event` is NULL or a live event; `conn` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn connmgr_event_take_conn(
    event: *mut ConnmgrEvent,
    conn: *mut *mut ConnmgrConn,
) -> ConnmgrStatus {
    guard("connmgr_event_take_conn", || {
        // SAFETY: the caller promises `event` is NULL or live.
        let ev = unsafe { event_arg(event) }?;
        let out = out_arg(conn, "conn")?;
        let handle = ev.conn.take().map_or(std::ptr::null_mut(), |c| {
            Box::into_raw(Box::new(ConnmgrConn::new(c)))
        });
        // SAFETY: `conn` is not NULL and writable (caller's promise).
        unsafe { out.as_ptr().write(handle) };
        Ok(())
    })
}

/// Frees an event from connmgr_next_event (NULL is ignored); a connection
/// still in it closes.
///
/// Undefined behaviour unless `event` is NULL or an event not yet freed and not in use elsewhere.
#[no_mangle]
pub unsafe extern "C" fn connmgr_event_free(event: *mut ConnmgrEvent) -> ConnmgrStatus {
    guard("connmgr_event_free", || {
        if !event.is_null() {
            // SAFETY: the caller promises `event` came from
            // connmgr_next_event and is freed once.
            drop(unsafe { Box::from_raw(event) });
        }
        Ok(())
    })
}
