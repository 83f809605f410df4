//! The byte-stream abstraction the manager hands out, and the handle it
//! keeps to close a stream from its own thread.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// A connected byte stream: anything readable and writable that can move
/// between threads and that the manager can close from another thread.
///
/// The manager never reads or writes the stream itself; it hands it to the
/// user in a [`Conn`](crate::Conn) and keeps only a [`Closer`], so that
/// `stop`, `disconnect` and `remove` can shut the stream down while the user
/// is blocked in a read.
pub trait Stream: Read + Write + Send + 'static {
    /// Returns a handle that shuts this stream down from any thread.
    ///
    /// After the closer runs, pending and future reads on the stream return
    /// end-of-file or an error, and writes fail.
    fn closer(&self) -> io::Result<Closer>;

    /// Returns an independent handle to the same stream, for reading on
    /// one thread while writing on another. Streams that cannot be shared
    /// return an [`io::ErrorKind::Unsupported`] error (the default).
    fn try_clone_stream(&self) -> io::Result<Box<dyn Stream>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this stream type cannot be cloned",
        ))
    }

    /// The IP address at the other end, when this stream knows it; the
    /// manager checks it against the ban list after a dial, so a name that
    /// resolves to a banned address is refused. A stream through a proxy
    /// must return `None` (the default), since its socket reaches the
    /// proxy, not the peer.
    fn remote_ip(&self) -> Option<IpAddr> {
        None
    }

    /// The TCP socket under this stream, if there is one (for a stream
    /// through a SOCKS5 proxy, the socket to the proxy). The socket
    /// controls below use it by default.
    fn tcp_stream(&self) -> Option<&TcpStream> {
        None
    }

    /// How long a read may block (`None`: forever); as
    /// [`TcpStream::set_read_timeout`]. Unsupported without a socket
    /// unless the stream says otherwise (pipes do).
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp_stream()
            .ok_or_else(no_socket)?
            .set_read_timeout(timeout)
    }

    /// How long a write may block (`None`: forever).
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp_stream()
            .ok_or_else(no_socket)?
            .set_write_timeout(timeout)
    }

    /// Turns Nagle's algorithm off (`true`) or on.
    fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.tcp_stream()
            .ok_or_else(no_socket)?
            .set_nodelay(nodelay)
    }

    /// TCP keepalive probes after `idle` without traffic (`None`: off).
    fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        let sock = socket2::SockRef::from(self.tcp_stream().ok_or_else(no_socket)?);
        match idle {
            None => sock.set_keepalive(false),
            Some(idle) => sock.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle)),
        }
    }

    /// The socket's peer address (for a proxied stream, the proxy's).
    fn peer_socket_addr(&self) -> io::Result<SocketAddr> {
        self.tcp_stream().ok_or_else(no_socket)?.peer_addr()
    }

    /// The socket's local address.
    fn local_socket_addr(&self) -> io::Result<SocketAddr> {
        self.tcp_stream().ok_or_else(no_socket)?.local_addr()
    }
}

fn no_socket() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "this stream has no socket (an in-memory pipe or a custom stream)",
    )
}

/// A cloneable handle that closes one stream (or listener) from any
/// thread. Closing twice is harmless.
#[derive(Clone)]
pub struct Closer(CloseBy);

#[derive(Clone)]
enum CloseBy {
    /// A function of the stream's own.
    Function(Arc<dyn Fn() + Send + Sync>),
    /// End `.1` of a pair whose shared state is already an `Arc`: no
    /// allocation of its own (the manager keeps one closer per
    /// connection).
    End(Arc<dyn CloseEnd>, bool),
}

/// Shared state of a stream pair that can close either end.
pub(crate) trait CloseEnd: Send + Sync {
    /// Closes end `end` (`false` for the first, `true` for the second).
    fn close_end(&self, end: bool);
}

impl Closer {
    /// Wraps the function that performs the close.
    pub fn new(close: impl Fn() + Send + Sync + 'static) -> Self {
        Closer(CloseBy::Function(Arc::new(close)))
    }

    /// Closes end `end` of `pair`, reusing the pair's allocation.
    pub(crate) fn for_end(pair: Arc<dyn CloseEnd>, end: bool) -> Self {
        Closer(CloseBy::End(pair, end))
    }

    /// A closer that does nothing, for streams that need no help to close.
    pub fn noop() -> Self {
        Closer::new(|| {})
    }

    /// Runs the close.
    pub fn close(&self) {
        match &self.0 {
            CloseBy::Function(close) => close(),
            CloseBy::End(pair, end) => pair.close_end(*end),
        }
    }
}

impl fmt::Debug for Closer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Closer")
    }
}

impl Stream for TcpStream {
    fn tcp_stream(&self) -> Option<&TcpStream> {
        Some(self)
    }

    fn closer(&self) -> io::Result<Closer> {
        let handle = self.try_clone()?;
        Ok(Closer::new(move || {
            // NotConnected only means the peer got there first.
            let _ = handle.shutdown(Shutdown::Both);
        }))
    }

    fn try_clone_stream(&self) -> io::Result<Box<dyn Stream>> {
        Ok(Box::new(self.try_clone()?))
    }

    fn remote_ip(&self) -> Option<IpAddr> {
        self.peer_addr().ok().map(|a| a.ip())
    }
}

/// A TCP stream shared with its closer and its clones, so the manager
/// can always close it: closing needs no second descriptor, and so cannot
/// fail when the process is out of them (`EMFILE`). The dialers and
/// listeners of this crate hand out TCP in this form.
pub(crate) struct SharedTcp(Arc<TcpStream>);

impl SharedTcp {
    pub(crate) fn new(stream: TcpStream) -> Self {
        SharedTcp(Arc::new(stream))
    }
}

impl Read for SharedTcp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for SharedTcp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        (&*self.0).flush()
    }
}

impl Stream for SharedTcp {
    fn closer(&self) -> io::Result<Closer> {
        let stream = Arc::clone(&self.0);
        Ok(Closer::new(move || {
            // NotConnected only means the peer got there first.
            let _ = stream.shutdown(Shutdown::Both);
        }))
    }

    fn try_clone_stream(&self) -> io::Result<Box<dyn Stream>> {
        Ok(Box::new(SharedTcp(Arc::clone(&self.0))))
    }

    fn remote_ip(&self) -> Option<IpAddr> {
        self.0.peer_addr().ok().map(|a| a.ip())
    }

    fn tcp_stream(&self) -> Option<&TcpStream> {
        Some(&self.0)
    }
}

/// A TCP stream to a SOCKS5 proxy, carrying a tunnel to the peer: its
/// socket's peer is the proxy, so it reports no remote IP.
pub(crate) struct Proxied(pub(crate) SharedTcp);

impl Read for Proxied {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Proxied {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Stream for Proxied {
    fn closer(&self) -> io::Result<Closer> {
        self.0.closer()
    }

    fn try_clone_stream(&self) -> io::Result<Box<dyn Stream>> {
        Ok(Box::new(Proxied(SharedTcp(Arc::clone(&(self.0).0)))))
    }

    fn tcp_stream(&self) -> Option<&TcpStream> {
        Some(&(self.0).0)
    }
}

impl Stream for Box<dyn Stream> {
    fn closer(&self) -> io::Result<Closer> {
        (**self).closer()
    }

    fn try_clone_stream(&self) -> io::Result<Box<dyn Stream>> {
        (**self).try_clone_stream()
    }

    fn remote_ip(&self) -> Option<IpAddr> {
        (**self).remote_ip()
    }

    fn tcp_stream(&self) -> Option<&TcpStream> {
        (**self).tcp_stream()
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_read_timeout(timeout)
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_write_timeout(timeout)
    }

    fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        (**self).set_nodelay(nodelay)
    }

    fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        (**self).set_keepalive(idle)
    }

    fn peer_socket_addr(&self) -> io::Result<SocketAddr> {
        (**self).peer_socket_addr()
    }

    fn local_socket_addr(&self) -> io::Result<SocketAddr> {
        (**self).local_socket_addr()
    }
}

/// Closes a stream nobody will hear of.
pub(crate) fn discard(stream: Box<dyn Stream>) {
    if let Ok(closer) = stream.closer() {
        closer.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// The closer and every clone share the one socket (no descriptor is
    /// duplicated, so neither can fail with `EMFILE`), and the closer ends
    /// reads on all of them.
    #[test]
    fn shared_tcp_closes_without_a_second_descriptor() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        let _peer = server.accept().unwrap();
        let mut stream = SharedTcp::new(client);
        let closer = stream.closer().unwrap();
        let clone = stream.try_clone_stream().unwrap();
        assert_eq!(Arc::strong_count(&stream.0), 3);
        assert_eq!(stream.remote_ip(), Some(IpAddr::from([127, 0, 0, 1])));
        closer.close();
        let mut buf = [0u8; 1];
        assert_eq!(stream.read(&mut buf).unwrap(), 0);
        drop((clone, closer));
        assert_eq!(Arc::strong_count(&stream.0), 1);
    }
}
