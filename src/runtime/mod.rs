//! The threads around the Core and the public manager: the handler that
//! owns the Core, the dialer pool, the notifier, the accept threads, the
//! persistence writer, and the handles callers use.

pub(crate) mod accept;
pub(crate) mod clock;
pub(crate) mod config;
pub(crate) mod conn;
pub(crate) mod decaying;
pub(crate) mod event;
pub(crate) mod fdlimit;
pub(crate) mod gate;
pub(crate) mod handle;
pub(crate) mod handler;
pub(crate) mod jobqueue;
pub(crate) mod join;
pub(crate) mod manager;
pub(crate) mod msg;
pub(crate) mod notifier;
mod peer_calls;
pub(crate) mod persist;
pub(crate) mod pool;
pub(crate) mod published;
mod reqtable;
pub(crate) mod request;
pub(crate) mod snapshot;
pub(crate) mod source;
pub(crate) mod spin;
