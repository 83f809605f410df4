//! # connmgr
//!
//! A thread-based peer connection manager for peer-to-peer nodes. It keeps
//! a target number of automatic outbound connections filled from an address
//! source, retries permanent peers forever with backoff, accepts inbound
//! connections within a limit, and reports everything through callbacks or
//! an event channel. No async runtime is involved: one handler thread owns
//! all state, a pool of threads dials, a notifier thread runs callbacks.
//!
//! All policy lives in [`Core`], a sans-IO state machine driven with an
//! explicit `now`; the threads around it only move messages. Tests can
//! drive it — or a whole manager with a [`ManualClock`] and the in-memory
//! [`MemoryNetwork`] — without sockets or waiting.
//!
//! ```
//! use connmgr::{Addr, Config, ConnManager, ConnReq, MemoryNetwork};
//! use std::time::Duration;
//!
//! // Two peers on an in-memory network (TcpDialer works the same way).
//! let net = MemoryNetwork::new();
//! let peer: Addr = "127.0.0.1:8333".parse().unwrap();
//! let mut listener = net.listen(peer.clone()).unwrap();
//!
//! let (tx, rx) = crossbeam_channel::unbounded();
//! let config = Config::builder()
//!     .dialer(net.dialer())
//!     .on_connection(move |_handle, req, conn| {
//!         tx.send((req.id(), conn)).unwrap();
//!     })
//!     .build();
//! let manager = ConnManager::new(config).unwrap();
//! manager.start().unwrap();
//!
//! let id = manager.connect(ConnReq::permanent(peer)).unwrap();
//! let (connected, _conn) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
//! assert_eq!(connected, Some(id));
//! # use connmgr::Listener;
//! # let _ = listener.accept().unwrap();
//! manager.stop();
//! assert!(!manager.is_running());
//! ```

#![deny(missing_docs)]

mod accept;
pub mod addr;
mod backoff;
mod clock;
mod config;
mod conn;
pub mod core;
mod dial;
mod event;
#[cfg(feature = "ffi")]
pub mod ffi;
mod handler;
mod idmap;
mod listener;
mod manager;
pub mod memory;
mod notifier;
pub mod pipe;
pub mod policy;
mod pool;
pub mod proxy;
mod request;
pub mod seed;
mod snapshot;
pub mod socks;
mod source;
mod stream;
mod tcp;

pub use crate::addr::{Addr, AddrErrorKind, AddrKind, AddrParseError, CustomAddr, NetGroup};
pub use crate::backoff::Backoff;
pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::config::{Config, ConfigBuilder, ConfigError};
pub use crate::conn::{Conn, ConnId, ConnState, Direction};
pub use crate::core::Core;
pub use crate::dial::{CancelToken, Dial, DialContext, DialError};
pub use crate::event::Event;
pub use crate::listener::Listener;
pub use crate::manager::{ConnManager, Error, Handle};
pub use crate::memory::{MemoryDialer, MemoryListener, MemoryNetwork};
pub use crate::pipe::{pipe, pipe_with_capacity, PipeStream};
pub use crate::proxy::Socks5Dialer;
pub use crate::request::ConnReq;
pub use crate::snapshot::{ConnInfo, Counts, Snapshot, Stats};
pub use crate::socks::{
    tor_resolve, tor_resolve_ptr, tor_resolve_ptr_with, tor_resolve_with, Socks5Proxy,
    Socks5ProxyBuilder, SocksError, SocksTarget,
};
pub use crate::source::AddressSource;
pub use crate::stream::{Closer, Stream};
pub use crate::tcp::{TcpDialer, TcpListener};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
