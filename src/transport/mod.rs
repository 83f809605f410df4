//! Ways to reach peers and be reached: the byte-stream trait, dialers and
//! listeners over TCP, SOCKS5 and in-memory pipes.

pub(crate) mod connect;
pub(crate) mod dial;
pub(crate) mod listener;
pub(crate) mod memory;
pub(crate) mod pipe;
pub(crate) mod proxy;
pub(crate) mod resolve;
pub(crate) mod socks;
pub(crate) mod stream;
pub(crate) mod tcp;
