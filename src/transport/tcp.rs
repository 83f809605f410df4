//! TCP: a dialer with a connect timeout that can be canceled mid-connect,
//! and a listener with a deep backlog that can be closed from another
//! thread.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::addr::Addr;
use crate::transport::connect;
use crate::transport::dial::{Dial, DialContext};
use crate::transport::listener::Listener;
use crate::transport::resolve::resolve;
use crate::transport::stream::{Closer, SharedTcp, Stream};
use crate::types::DialError;

/// Listen backlog: std's 128 overflows under connection floods and stalls
/// clients for a SYN retransmit.
const BACKLOG: i32 = 1024;

/// Dials IP and DNS-name addresses over TCP.
///
/// Each dial gives up at the earlier of the dialer's own timeout and the
/// manager's deadline, and a cancel shuts the socket down mid-connect.
/// Onion addresses are refused: they can only be reached through a
/// SOCKS5 proxy.
#[derive(Debug, Clone)]
pub struct TcpDialer {
    timeout: Duration,
    nodelay: bool,
}

impl Default for TcpDialer {
    fn default() -> Self {
        Self::new()
    }
}

impl TcpDialer {
    /// A dialer with a 10 s connect timeout and `TCP_NODELAY` on.
    pub fn new() -> Self {
        TcpDialer {
            timeout: Duration::from_secs(10),
            nodelay: true,
        }
    }

    /// Sets the connect timeout (a zero timeout is raised to 1 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Sets `TCP_NODELAY` on dialed streams.
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// Connects to one socket address.
    pub fn connect(&self, addr: SocketAddr, ctx: &DialContext) -> Result<TcpStream, DialError> {
        let timeout = self.timeout.min(ctx.remaining());
        if timeout.is_zero() {
            return Err(DialError::TimedOut);
        }
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        let aborter = socket.try_clone()?;
        // Where the system allows (Linux), shutting a connecting socket
        // down ends the wait at once; elsewhere the wait's slices see the
        // cancel (transport/connect.rs).
        ctx.on_cancel(move || {
            let _ = aborter.shutdown(Shutdown::Both);
        });
        if ctx.is_canceled() {
            return Err(DialError::Canceled);
        }
        let result = connect::connect(&socket, addr, timeout, ctx);
        if ctx.is_canceled() {
            return Err(DialError::Canceled);
        }
        result?;
        // A connect woken by shutdown can report success without a peer.
        socket.peer_addr()?;
        socket.set_tcp_nodelay(self.nodelay)?;
        Ok(socket.into())
    }
}

impl Dial for TcpDialer {
    fn dial(&self, addr: &Addr, ctx: &DialContext) -> Result<Box<dyn Stream>, DialError> {
        let targets: Vec<SocketAddr> = match addr {
            Addr::Ip(_) | Addr::Cjdns { .. } => addr.socket_addr().into_iter().collect(),
            Addr::Dns { host, port } => resolve(host, *port, ctx)?,
            Addr::Onion { .. } => {
                return Err(DialError::Unsupported(
                    "onion addresses are reachable only through a SOCKS5 proxy such as Tor".into(),
                ))
            }
            Addr::I2p { .. } => {
                return Err(DialError::Unsupported(
                    "I2P addresses are reachable only through an I2P router's SOCKS5 proxy \
                     (Socks5Dialer::i2p_proxy) or a dialer of your own"
                        .into(),
                ))
            }
            Addr::Custom(c) => {
                return Err(DialError::Unsupported(format!(
                    "TCP cannot dial {} addresses; give the manager a dialer for that network",
                    c.network()
                )))
            }
        };
        let mut last = DialError::Other(format!("{addr} resolved to no addresses"));
        for target in targets {
            match self.connect(target, ctx) {
                Ok(stream) => return Ok(Box::new(SharedTcp::new(stream))),
                Err(e @ (DialError::Canceled | DialError::TimedOut)) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// A TCP listener that the manager can close from its own thread.
#[derive(Debug)]
pub struct TcpListener {
    inner: std::net::TcpListener,
}

impl TcpListener {
    /// Binds `addr` with a backlog of 1024 and, off Windows, address reuse
    /// (so a restart can bind while old connections linger in TIME_WAIT).
    /// Windows's SO_REUSEADDR would let a second socket take the same port,
    /// so it is left off there.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        #[cfg(not(windows))]
        socket.set_reuse_address(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        Ok(TcpListener {
            inner: socket.into(),
        })
    }

    /// Wraps a bound std listener.
    pub fn from_std(inner: std::net::TcpListener) -> Self {
        TcpListener { inner }
    }

    /// The bound socket address.
    pub fn local_socket_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl Listener for TcpListener {
    fn accept(&mut self) -> io::Result<(Box<dyn Stream>, Addr)> {
        let (stream, peer) = self.inner.accept()?;
        Ok((Box::new(SharedTcp::new(stream)), Addr::Ip(peer)))
    }

    fn local_addr(&self) -> io::Result<Addr> {
        self.inner.local_addr().map(Addr::Ip)
    }

    fn closer(&self) -> io::Result<Closer> {
        let handle = self.inner.try_clone()?;
        let local = self.inner.local_addr()?;
        Ok(Closer::new(move || {
            // On Linux, shutting a listening socket down wakes a blocked
            // accept; elsewhere a throwaway connection does.
            if SockRef::from(&handle).shutdown(Shutdown::Both).is_err() {
                let _ = TcpStream::connect_timeout(&wake_addr(local), Duration::from_millis(200));
            }
        }))
    }
}

/// Where to connect to wake a listener bound to `local`.
fn wake_addr(local: SocketAddr) -> SocketAddr {
    let mut addr = local;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}
