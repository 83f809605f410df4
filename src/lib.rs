//! # connmgr
//!
//! A thread-based peer connection manager for peer-to-peer nodes. It keeps
//! a target number of automatic outbound connections filled from an address
//! source, retries permanent peers forever with backoff, accepts inbound
//! connections within a limit, and reports everything through callbacks or
//! an event channel. No async runtime is involved: one handler thread owns
//! all state, a pool of threads dials, a notifier thread runs callbacks.
//!
//! All policy lives in [`Core`](crate::core::Core), a sans-IO state machine driven with an
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
//! let id = manager.handle().connect(ConnReq::permanent(peer)).unwrap();
//! let (connected, _conn) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
//! assert_eq!(connected, Some(id));
//! # use connmgr::Listener;
//! # let _ = listener.accept().unwrap();
//! manager.stop();
//! assert!(!manager.handle().is_running());
//! ```

#![deny(missing_docs)]

// Layers, bottom up: vocabulary (types, addr, idmap, guard), pure policy
// algorithms, the pure Core, then the transports and the threaded runtime;
// on top, seeding, the C API and the rust-bitcoin conversions.
mod addr;
#[cfg(feature = "bitcoin")]
pub mod bitcoin_p2p;
pub mod core;
#[cfg(feature = "ffi")]
pub mod ffi;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod guard;
mod idmap;
pub mod limits;
pub mod policy;
mod runtime;
pub mod seed;
#[cfg(feature = "serde")]
mod serde_impls;
mod transport;
mod types;

pub use crate::addr::{Addr, AddrErrorKind, AddrKind, AddrParseError, CustomAddr, NetGroup};
#[cfg(feature = "bitcoin")]
pub use crate::bitcoin_p2p::BitcoinAddrError;
pub use crate::core::info::{
    CloseCounts, ConnInfo, Counts, InboundRefusals, Stats, TrimInfo, Trimmed,
};
pub use crate::policy::backoff::Backoff;
pub use crate::policy::banlist::{BanEntry, BanFileError, Subnet, SubnetParseError};
pub use crate::policy::networks::Network;
pub use crate::policy::permissions::Permissions;
pub use crate::policy::tags::{BumpFn, DecayFn, PeerId, TagError, TagInfo};
pub use crate::runtime::clock::{Clock, ManualClock, SystemClock};
pub use crate::runtime::config::{Config, ConfigBuilder, ConfigError};
pub use crate::runtime::conn::{Conn, ConnHold};
pub use crate::runtime::decaying::DecayingTag;
pub use crate::runtime::event::Event;
pub use crate::runtime::fdlimit::{ensure_descriptors, DescriptorCheck, RESERVED_DESCRIPTORS};
pub use crate::runtime::handle::{Error, Handle};
pub use crate::runtime::manager::ConnManager;
pub use crate::runtime::request::ConnReq;
pub use crate::runtime::snapshot::Snapshot;
pub use crate::runtime::source::AddressSource;
pub use crate::transport::dial::{CancelToken, Dial, DialContext};
pub use crate::transport::listener::Listener;
pub use crate::transport::memory::{MemoryDialer, MemoryListener, MemoryNetwork};
pub use crate::transport::pipe::{pipe, pipe_with_capacity, PipeStream, DEFAULT_CAPACITY};
pub use crate::transport::proxy::{Route, Socks5Dialer};
pub use crate::transport::socks::{
    tor_resolve, tor_resolve_ptr, tor_resolve_ptr_with, tor_resolve_with, Socks5Proxy,
    Socks5ProxyBuilder, SocksError, SocksTarget,
};
pub use crate::transport::stream::{Closer, Stream};
pub use crate::transport::tcp::{TcpDialer, TcpListener};
pub use crate::types::{CloseReason, ConnId, ConnState, ConnType, DialError, Direction};
/// Re-exported: [`Handle::events`] returns its [`Receiver`](crossbeam_channel::Receiver).
pub use crossbeam_channel;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The Rust code blocks of the documents in docs/, compiled (and run where
/// they are not marked otherwise) as doctests, so they keep matching the
/// code.
#[cfg(doctest)]
pub mod docs_doctests {
    #[doc = include_str!("../docs/addresses.md")]
    pub struct Addresses;
    #[doc = include_str!("../docs/architecture.md")]
    pub struct Architecture;
    #[doc = include_str!("../docs/connections.md")]
    pub struct Connections;
    #[doc = include_str!("../docs/ffi.md")]
    pub struct Ffi;
    #[doc = include_str!("../docs/performance.md")]
    pub struct Performance;
    #[doc = include_str!("../docs/policy.md")]
    pub struct Policy;
    #[doc = include_str!("../docs/proxy.md")]
    pub struct Proxy;
    #[doc = include_str!("../docs/reliability.md")]
    pub struct Reliability;
    #[doc = include_str!("../docs/seeding.md")]
    pub struct Seeding;
}
