//! The listener abstraction for inbound connections.

use std::io;

use crate::addr::Addr;
use crate::transport::stream::{Closer, Stream};

/// A source of inbound streams. Each listener given to the manager gets an
/// accept thread of its own.
///
/// Implemented by [`TcpListener`](crate::TcpListener) and
/// [`MemoryListener`](crate::MemoryListener).
pub trait Listener: Send + 'static {
    /// Blocks until a peer connects; returns the stream and the peer's
    /// address.
    fn accept(&mut self) -> io::Result<(Box<dyn Stream>, Addr)>;

    /// The address this listener accepts on.
    fn local_addr(&self) -> io::Result<Addr>;

    /// A handle that unblocks a pending [`accept`](Self::accept) from
    /// another thread and makes it, and every later call, fail.
    fn closer(&self) -> io::Result<Closer>;
}
