//! An in-memory network: listeners and a dialer that connect through
//! [`pipe`]s instead of sockets, so the whole manager can
//! run (and be tested) without touching the operating system's network.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::addr::Addr;
use crate::transport::dial::{Dial, DialContext};
use crate::transport::listener::Listener;
use crate::transport::pipe::{pipe, PipeStream};
use crate::transport::stream::{Closer, Stream};
use crate::types::DialError;

/// A connection waiting to be accepted: the listener's end and the peer's
/// address.
type Pending = (PipeStream, Addr);

/// A registry of listening addresses. Clones share the same network, so a
/// test can keep one clone to listen on while the manager dials through
/// another (via [`MemoryNetwork::dialer`]).
#[derive(Clone, Default)]
pub struct MemoryNetwork {
    inner: Arc<NetInner>,
}

#[derive(Default)]
struct NetInner {
    registry: Mutex<Registry>,
    /// Numbers the `client-<n>` addresses that listeners report.
    next_client: AtomicU64,
}

#[derive(Default)]
struct Registry {
    listeners: HashMap<Addr, Registration>,
    next_listener: u64,
}

struct Registration {
    /// Tells a closing listener whether this entry is still its own, so an
    /// old listener never unregisters a newer one on the same address.
    id: u64,
    queue: Sender<Pending>,
}

impl MemoryNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts listening on `addr`. Fails with
    /// [`io::ErrorKind::AddrInUse`] if a live listener already has it.
    pub fn listen(&self, addr: Addr) -> io::Result<MemoryListener> {
        let (queue, incoming) = crossbeam_channel::unbounded();
        let mut registry = self.inner.registry.lock();
        if registry.listeners.contains_key(&addr) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("memory address {addr} is already in use"),
            ));
        }
        let id = registry.next_listener;
        registry.next_listener = registry.next_listener.wrapping_add(1);
        registry
            .listeners
            .insert(addr.clone(), Registration { id, queue });
        drop(registry);
        Ok(MemoryListener {
            core: Arc::new(ListenerCore {
                network: self.clone(),
                addr,
                id,
                incoming,
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// A dialer that connects through this network.
    pub fn dialer(&self) -> MemoryDialer {
        MemoryDialer {
            network: self.clone(),
        }
    }

    /// Connects to the listener on `addr`, handing it the other end of a
    /// new pipe. Fails with [`io::ErrorKind::ConnectionRefused`] if nobody
    /// listens there.
    pub fn connect(&self, addr: &Addr) -> io::Result<PipeStream> {
        let registry = self.inner.registry.lock();
        let Some(registration) = registry.listeners.get(addr) else {
            return Err(refused(addr));
        };
        // Counted only for connections that reach a listener, so clients
        // are numbered 1, 2, 3... as the listener sees them.
        let n = self
            .inner
            .next_client
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        let peer = Addr::custom("memory", &format!("client-{n}"))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let (ours, theirs) = pipe();
        // Sending under the registry lock means a listener that has
        // unregistered can be sure no more connections will reach its queue.
        match registration.queue.send((theirs, peer)) {
            Ok(()) => Ok(ours),
            Err(_) => Err(refused(addr)),
        }
    }
}

fn refused(addr: &Addr) -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionRefused,
        format!("nothing listens on memory address {addr}"),
    )
}

impl fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let registry = self.inner.registry.lock();
        f.debug_struct("MemoryNetwork")
            .field("listening", &registry.listeners.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Accepts connections made to one address of a [`MemoryNetwork`].
///
/// Closing it (through its [`closer`](Listener::closer) or by dropping it)
/// wakes a blocked [`accept`](Listener::accept), frees the address so later
/// connects are refused, and closes connections that were never accepted.
pub struct MemoryListener {
    core: Arc<ListenerCore>,
}

/// Shared between the listener and its closers.
struct ListenerCore {
    network: MemoryNetwork,
    addr: Addr,
    id: u64,
    incoming: Receiver<Pending>,
    closed: AtomicBool,
}

impl ListenerCore {
    fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        {
            let mut registry = self.network.inner.registry.lock();
            if registry
                .listeners
                .get(&self.addr)
                .is_some_and(|r| r.id == self.id)
            {
                // Dropping the only sender disconnects the queue, which
                // wakes an accept blocked in `recv`.
                registry.listeners.remove(&self.addr);
            }
        }
        // Nobody will accept these; dropping them closes them, so their
        // dialers see end-of-file instead of hanging.
        while self.incoming.try_recv().is_ok() {}
    }

    fn closed_error() -> io::Error {
        io::Error::new(io::ErrorKind::NotConnected, "memory listener is closed")
    }
}

impl MemoryListener {
    /// Waits up to `timeout` for a connection; `Ok(None)` if none came.
    #[cfg(feature = "ffi")]
    pub(crate) fn accept_within(
        &self,
        timeout: std::time::Duration,
    ) -> io::Result<Option<(PipeStream, Addr)>> {
        if self.core.closed.load(Ordering::SeqCst) {
            return Err(ListenerCore::closed_error());
        }
        match self.core.incoming.recv_timeout(timeout) {
            Ok(_) if self.core.closed.load(Ordering::SeqCst) => Err(ListenerCore::closed_error()),
            Ok(pending) => Ok(Some(pending)),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Ok(None),
            Err(_) => Err(ListenerCore::closed_error()),
        }
    }
}

impl Listener for MemoryListener {
    fn accept(&mut self) -> io::Result<(Box<dyn Stream>, Addr)> {
        if self.core.closed.load(Ordering::SeqCst) {
            return Err(ListenerCore::closed_error());
        }
        match self.core.incoming.recv() {
            // A connection that raced with close is dropped, so every accept
            // after close fails consistently.
            Ok(_) if self.core.closed.load(Ordering::SeqCst) => Err(ListenerCore::closed_error()),
            Ok((stream, peer)) => Ok((Box::new(stream), peer)),
            Err(_) => Err(ListenerCore::closed_error()),
        }
    }

    fn local_addr(&self) -> io::Result<Addr> {
        Ok(self.core.addr.clone())
    }

    fn closer(&self) -> io::Result<Closer> {
        let core = Arc::clone(&self.core);
        Ok(Closer::new(move || core.close()))
    }
}

impl Drop for MemoryListener {
    fn drop(&mut self) {
        self.core.close();
    }
}

impl fmt::Debug for MemoryListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryListener")
            .field("addr", &self.core.addr)
            .field("closed", &self.core.closed.load(Ordering::SeqCst))
            .field("pending", &self.core.incoming.len())
            .finish()
    }
}

/// A [`Dial`] implementation that connects through a [`MemoryNetwork`].
#[derive(Clone, Debug)]
pub struct MemoryDialer {
    network: MemoryNetwork,
}

impl MemoryDialer {
    /// The network this dialer connects through.
    pub fn network(&self) -> &MemoryNetwork {
        &self.network
    }
}

impl Dial for MemoryDialer {
    /// Connecting hands over a pipe end at once.
    fn never_blocks(&self) -> bool {
        true
    }

    fn dial(&self, addr: &Addr, ctx: &DialContext) -> Result<Box<dyn Stream>, DialError> {
        // Connecting never blocks, so checking once up front is enough.
        if ctx.is_canceled() {
            return Err(DialError::Canceled);
        }
        match self.network.connect(addr) {
            Ok(stream) => Ok(Box::new(stream)),
            Err(err) => Err(DialError::from_io(&err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::dial::CancelToken;
    use crossbeam_channel::bounded;
    use std::io::{Read, Write};
    use std::thread;
    use std::time::Duration;

    /// Generous bound so a broken wake-up fails the test instead of hanging.
    const DEADLINE: Duration = Duration::from_secs(10);

    fn addr(name: &str) -> Addr {
        Addr::custom("memory", name).unwrap()
    }

    #[test]
    fn listen_connect_accept_round_trip() {
        let net = MemoryNetwork::new();
        let mut listener = net.listen(addr("server")).unwrap();
        assert_eq!(listener.local_addr().unwrap(), addr("server"));
        let mut client = net.connect(&addr("server")).unwrap();
        let (mut server, peer) = listener.accept().unwrap();
        assert_eq!(peer, addr("client-1"));
        client.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        server.write_all(b"world").unwrap();
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"world");

        let _second = net.connect(&addr("server")).unwrap();
        let (_, peer) = listener.accept().unwrap();
        assert_eq!(peer, addr("client-2"));
    }

    #[test]
    fn accept_blocks_until_a_connection_arrives() {
        let net = MemoryNetwork::new();
        let mut listener = net.listen(addr("server")).unwrap();
        let (tx, rx) = bounded(1);
        let acceptor = thread::spawn(move || {
            let _ = tx.send(
                listener
                    .accept()
                    .map(|(_, peer)| peer)
                    .map_err(|e| e.kind()),
            );
        });
        thread::sleep(Duration::from_millis(20));
        let _client = net.connect(&addr("server")).unwrap();
        assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), Ok(addr("client-1")));
        acceptor.join().unwrap();
    }

    #[test]
    fn refused_when_nobody_listens() {
        let net = MemoryNetwork::new();
        let err = net.connect(&addr("nobody")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        let ctx = DialContext::with_timeout(DEADLINE);
        let err = net.dialer().dial(&addr("nobody"), &ctx).err().unwrap();
        assert_eq!(err, DialError::Refused);
    }

    #[test]
    fn address_in_use_until_listener_closes() {
        let net = MemoryNetwork::new();
        let first = net.listen(addr("server")).unwrap();
        let err = net.listen(addr("server")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let closer = first.closer().unwrap();
        closer.close();
        let mut second = net.listen(addr("server")).unwrap();
        // The first listener's late close must not unregister the second.
        drop(first);
        closer.close();
        let _client = net.connect(&addr("server")).unwrap();
        assert!(second.accept().is_ok());
    }

    #[test]
    fn closing_wakes_blocked_accept_and_refuses_later_connects() {
        let net = MemoryNetwork::new();
        let mut listener = net.listen(addr("server")).unwrap();
        let closer = listener.closer().unwrap();
        let (tx, rx) = bounded(1);
        let acceptor = thread::spawn(move || {
            let first = listener.accept().map(|_| ()).map_err(|e| e.kind());
            let again = listener.accept().map(|_| ()).map_err(|e| e.kind());
            let _ = tx.send((first, again));
        });
        thread::sleep(Duration::from_millis(20));
        closer.close();
        let (first, again) = rx.recv_timeout(DEADLINE).unwrap();
        assert_eq!(first, Err(io::ErrorKind::NotConnected));
        assert_eq!(again, Err(io::ErrorKind::NotConnected));
        acceptor.join().unwrap();
        let err = net.connect(&addr("server")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn closing_drops_unaccepted_connections() {
        let net = MemoryNetwork::new();
        let listener = net.listen(addr("server")).unwrap();
        let mut client = net.connect(&addr("server")).unwrap();
        listener.closer().unwrap().close();
        assert_eq!(client.read(&mut [0u8; 1]).unwrap(), 0);
        assert_eq!(
            client.write(b"x").unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
    }

    #[test]
    fn dropping_listener_frees_the_address() {
        let net = MemoryNetwork::new();
        drop(net.listen(addr("server")).unwrap());
        let err = net.connect(&addr("server")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        assert!(net.listen(addr("server")).is_ok());
    }

    #[test]
    fn dialer_connects_and_honours_cancel() {
        let net = MemoryNetwork::new();
        let mut listener = net.listen(addr("server")).unwrap();
        let dialer = net.dialer();
        assert!(format!("{:?}", dialer.network()).contains("server"));

        let ctx = DialContext::with_timeout(DEADLINE);
        let mut stream = dialer.dial(&addr("server"), &ctx).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        stream.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");

        let token = CancelToken::new();
        token.cancel();
        let ctx = DialContext::new(std::time::Instant::now() + DEADLINE, token);
        let err = dialer.dial(&addr("server"), &ctx).err().unwrap();
        assert_eq!(err, DialError::Canceled);
        assert!(format!("{listener:?}").contains("pending: 0"));
    }
}
