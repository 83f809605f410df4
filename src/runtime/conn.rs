//! Identifiers, states and the connection object handed to the user.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::addr::Addr;
use crate::core::Input;
use crate::runtime::msg::Msg;
use crate::transport::stream::{Closer, Stream};
use crate::types::{ConnId, Direction};

/// What the manager keeps of a live connection: enough to close it and to
/// learn, exactly once, that the user closed it.
pub(crate) struct ConnShared {
    id: ConnId,
    serial: u64,
    remote: Addr,
    direction: Direction,
    closed: AtomicBool,
    closer: Closer,
    notify: Sender<Msg>,
}

impl ConnShared {
    pub(crate) fn new(
        id: ConnId,
        serial: u64,
        remote: Addr,
        direction: Direction,
        closer: Closer,
        notify: Sender<Msg>,
    ) -> Arc<Self> {
        Arc::new(ConnShared {
            id,
            serial,
            remote,
            direction,
            closed: AtomicBool::new(false),
            closer,
            notify,
        })
    }

    /// Closes on the manager's behalf; the manager already knows.
    pub(crate) fn close_by_manager(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.closer.close();
        }
    }

    /// Closes on the user's behalf and tells the manager, once.
    fn close_by_user(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.closer.close();
            // After stop the handler is gone; nothing is left to tell.
            let _ = self.notify.send(Msg::Input(Input::Closed {
                id: self.id,
                serial: self.serial,
            }));
        }
    }
}

/// Closes the connection when the last clone of a [`Conn`] is dropped.
struct DropGuard(Arc<ConnShared>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.close_by_user();
    }
}

/// A live connection handed to the user: the stream plus what the manager
/// knows of it.
///
/// Read and write it like any stream. Closing it — with
/// [`close`](Self::close), or by dropping the last handle — tells the
/// manager, which then treats it as a disconnect: an inbound slot is freed,
/// a permanent request is retried, the outbound target is refilled.
pub struct Conn {
    stream: Box<dyn Stream>,
    guard: Arc<DropGuard>,
}

impl Conn {
    pub(crate) fn new(stream: Box<dyn Stream>, shared: Arc<ConnShared>) -> Self {
        Conn {
            stream,
            guard: Arc::new(DropGuard(shared)),
        }
    }

    fn shared(&self) -> &ConnShared {
        &self.guard.0
    }

    /// The id of the request (outbound) or of the inbound connection.
    pub fn id(&self) -> ConnId {
        self.shared().id
    }

    /// The peer's address.
    pub fn remote_addr(&self) -> &Addr {
        &self.shared().remote
    }

    /// Which side opened the connection.
    pub fn direction(&self) -> Direction {
        self.shared().direction
    }

    /// Whether the connection was closed by either side of the manager.
    pub fn is_closed(&self) -> bool {
        self.shared().closed.load(Ordering::Acquire)
    }

    /// Closes the stream and tells the manager. Closing again does nothing.
    pub fn close(&self) {
        self.shared().close_by_user();
    }

    /// A second handle to the same connection (for example to read on one
    /// thread and write on another). Dropping a handle closes the
    /// connection only when it is the last one; [`close`](Self::close) on
    /// any handle closes it for all. Fails if the stream type cannot be
    /// cloned.
    pub fn try_clone(&self) -> io::Result<Conn> {
        Ok(Conn {
            stream: self.stream.try_clone_stream()?,
            guard: Arc::clone(&self.guard),
        })
    }

    /// The underlying stream, for stream-specific calls such as timeouts.
    pub fn stream_mut(&mut self) -> &mut dyn Stream {
        &mut *self.stream
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id())
            .field("remote", &self.remote_addr())
            .field("direction", &self.direction())
            .field("closed", &self.is_closed())
            .finish()
    }
}
