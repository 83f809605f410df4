//! Identifiers, states and the connection object handed to the user.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::addr::Addr;
use crate::core::Input;
use crate::runtime::msg::Msg;
use crate::transport::stream::{Closer, Stream};
use crate::types::{ConnId, Direction};

/// What the manager keeps of a live connection: enough to close it and to
/// learn, exactly once, that the user closed it. The user's handles share
/// the same allocation and count themselves in it.
pub(crate) struct ConnShared {
    id: ConnId,
    serial: u64,
    remote: Addr,
    direction: Direction,
    closed: AtomicBool,
    /// The user's handles ([`Conn`]s and [`ConnHold`]s) still alive; the
    /// last one to go closes the connection.
    users: AtomicU32,
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
            users: AtomicU32::new(0),
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

/// One of the user's handles on a connection: the connection closes when
/// the last one is dropped. A count in the shared state, rather than a
/// second `Arc`, so a connection costs one allocation.
struct UserRef(Arc<ConnShared>);

impl UserRef {
    /// The first handle.
    fn new(shared: Arc<ConnShared>) -> Self {
        shared.users.fetch_add(1, Ordering::Relaxed);
        UserRef(shared)
    }

    /// Another handle, unless four billion are alive already (the count
    /// must never wrap to zero and close the connection under them).
    fn try_clone(&self) -> io::Result<Self> {
        let users = &self.0.users;
        users
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1))
            .map_err(|_| io::Error::other("too many handles to one connection"))?;
        Ok(UserRef(Arc::clone(&self.0)))
    }
}

impl Drop for UserRef {
    fn drop(&mut self) {
        // AcqRel: the last handle sees every other handle's writes before
        // it closes.
        if self.0.users.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.close_by_user();
        }
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
    guard: UserRef,
}

impl Conn {
    pub(crate) fn new(stream: Box<dyn Stream>, shared: Arc<ConnShared>) -> Self {
        Conn {
            stream,
            guard: UserRef::new(shared),
        }
    }

    /// A connection no manager tracks, such as the peer's end of an
    /// in-memory pipe handed to C code: closing it tells nobody.
    #[cfg(feature = "ffi")]
    pub(crate) fn unmanaged(
        stream: Box<dyn Stream>,
        remote: Addr,
        direction: Direction,
    ) -> io::Result<Conn> {
        let closer = stream.closer()?;
        // Nobody receives: the close notice is dropped at once.
        let (notify, _) = crossbeam_channel::bounded(0);
        let shared = ConnShared::new(ConnId(0), 0, remote, direction, closer, notify);
        Ok(Conn::new(stream, shared))
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
        let guard = self.guard.try_clone()?;
        Ok(Conn {
            stream: self.stream.try_clone_stream()?,
            guard,
        })
    }

    /// The underlying stream, for stream-specific calls.
    pub fn stream_mut(&mut self) -> &mut dyn Stream {
        &mut *self.stream
    }

    /// How long a read may block (`None`: forever), on this connection and
    /// its clones: a blocking node uses it to time out an idle peer. TCP
    /// and SOCKS connections and in-memory pipes support it.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)
    }

    /// How long a write may block (`None`: forever).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_write_timeout(timeout)
    }

    /// Turns Nagle's algorithm off (`true`) or on. `TcpDialer` turns it
    /// off by default.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.stream.set_nodelay(nodelay)
    }

    /// TCP keepalive probes after `idle` without traffic (`None`: off).
    pub fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        self.stream.set_keepalive(idle)
    }

    /// The socket's peer address (through a SOCKS5 proxy, the proxy's;
    /// [`remote_addr`](Self::remote_addr) is the peer's).
    pub fn peer_socket_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_socket_addr()
    }

    /// The socket's local address.
    pub fn local_socket_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_socket_addr()
    }

    /// The TCP socket under this connection, if there is one, for any
    /// other socket option.
    pub fn tcp_stream(&self) -> Option<&TcpStream> {
        self.stream.tcp_stream()
    }

    /// The socket's file descriptor, to register with a poll loop (the
    /// connection keeps owning it).
    #[cfg(unix)]
    pub fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.tcp_stream().map(AsRawFd::as_raw_fd)
    }

    /// The socket's handle, to register with an event loop (the connection
    /// keeps owning it).
    #[cfg(windows)]
    pub fn raw_socket(&self) -> Option<std::os::windows::io::RawSocket> {
        use std::os::windows::io::AsRawSocket;
        self.tcp_stream().map(AsRawSocket::as_raw_socket)
    }

    /// Takes the TCP socket out as a plain [`TcpStream`] (a second
    /// descriptor for the same socket), with a [`ConnHold`] that keeps the
    /// connection counted as open: drop the hold (or call its `close`)
    /// when done, and the manager sees the close as it would a `Conn`'s.
    /// The manager can still close the socket (stop, trims, bans), which
    /// the stream then sees as end-of-file. Gives the `Conn` back when
    /// there is no socket or no descriptor is left.
    pub fn into_tcp(self) -> Result<(TcpStream, ConnHold), Conn> {
        match self.stream.tcp_stream().map(TcpStream::try_clone) {
            Some(Ok(tcp)) => Ok((tcp, ConnHold { guard: self.guard })),
            _ => Err(self),
        }
    }
}

/// What keeps a connection taken out with [`Conn::into_tcp`] counted as
/// open; dropping it (with every other handle) tells the manager it
/// closed.
pub struct ConnHold {
    guard: UserRef,
}

impl ConnHold {
    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.guard.0.id
    }

    /// Closes the socket and tells the manager (as [`Conn::close`]).
    pub fn close(&self) {
        self.guard.0.close_by_user();
    }
}

impl fmt::Debug for ConnHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnHold").field("id", &self.id()).finish()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::pipe::pipe;

    fn managed() -> (Conn, crossbeam_channel::Receiver<Msg>, Arc<ConnShared>) {
        let (end, _peer) = pipe();
        let stream: Box<dyn Stream> = Box::new(end);
        let closer = stream.closer().expect("a pipe has a closer");
        let (tx, rx) = crossbeam_channel::unbounded();
        let addr: Addr = "10.0.0.1:8333".parse().unwrap();
        let shared = ConnShared::new(ConnId(4), 9, addr, Direction::Outbound, closer, tx);
        (Conn::new(stream, Arc::clone(&shared)), rx, shared)
    }

    fn closed_notices(rx: &crossbeam_channel::Receiver<Msg>) -> usize {
        rx.try_iter()
            .filter(|m| {
                matches!(
                    m,
                    Msg::Input(Input::Closed {
                        id: ConnId(4),
                        serial: 9
                    })
                )
            })
            .count()
    }

    #[test]
    fn only_the_last_handle_closes_and_tells_the_manager_once() {
        let (conn, rx, shared) = managed();
        let second = conn.try_clone().expect("pipes clone");
        drop(conn);
        assert!(!second.is_closed());
        assert_eq!(closed_notices(&rx), 0);
        drop(second);
        assert!(shared.closed.load(Ordering::Acquire));
        assert_eq!(closed_notices(&rx), 1);
    }

    #[test]
    fn a_close_by_the_manager_is_not_reported_back() {
        let (conn, rx, shared) = managed();
        shared.close_by_manager();
        assert!(conn.is_closed());
        conn.close();
        drop(conn);
        assert_eq!(closed_notices(&rx), 0);
    }

    #[test]
    fn close_on_any_handle_closes_all_once() {
        let (conn, rx, _shared) = managed();
        let second = conn.try_clone().expect("pipes clone");
        second.close();
        assert!(conn.is_closed());
        drop((conn, second));
        assert_eq!(closed_notices(&rx), 1);
    }
}
