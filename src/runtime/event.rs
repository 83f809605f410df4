//! Events the manager reports to the user.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::addr::Addr;
use crate::runtime::conn::Conn;
use crate::runtime::request::ConnReq;
use crate::types::DialError;
use crate::types::{CloseReason, ConnId};

/// Something that happened to a request or connection. Delivered in order
/// on the notifier thread: to the matching callback if one is set,
/// otherwise to [`Config`](crate::Config)'s `on_event` callback, otherwise
/// to the [`events`](crate::Handle::events) receiver.
#[non_exhaustive]
pub enum Event {
    /// An outbound request connected; the connection is now the user's.
    Connected {
        /// The request.
        req: ConnReq,
        /// The connection.
        conn: Conn,
    },
    /// An established outbound connection closed (always after its
    /// `Connected`).
    Disconnected {
        /// The request.
        req: ConnReq,
        /// Why it closed.
        reason: CloseReason,
    },
    /// A listener accepted an inbound connection within the limit.
    Accepted {
        /// The connection.
        conn: Conn,
    },
    /// An accepted inbound connection closed.
    InboundClosed {
        /// The connection's id.
        id: ConnId,
        /// The peer's address.
        addr: Addr,
        /// Why it closed.
        reason: CloseReason,
    },
    /// A dial failed, or the address source had no address.
    DialFailed {
        /// The request.
        req: ConnReq,
        /// Why.
        error: DialError,
        /// When a permanent request will try again.
        retry_in: Option<Duration>,
    },
    /// The ban file or the anchors file could not be written; the manager
    /// goes on and tries again at the next change.
    SaveFailed {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        error: String,
    },
    /// A manager thread died of a panic (a defect: user code is guarded).
    /// The manager is no longer running: every call fails with
    /// [`Error::Crashed`](crate::Error::Crashed) until it is stopped.
    ThreadFailed {
        /// The thread's name.
        thread: String,
        /// The panic's message.
        error: String,
    },
    /// A listener's accept thread started: it accepts on `addr`.
    Listening {
        /// The address it accepts on, if the listener can say.
        addr: Option<Addr>,
    },
    /// A listener's accept failed (out of descriptors, say); it accepts
    /// again after `retry_in`, which doubles from 5 ms up to 1 s while the
    /// errors go on.
    ListenError {
        /// The listener's address, if it can say.
        addr: Option<Addr>,
        /// The operating system's reason.
        error: String,
        /// The pause before the next accept.
        retry_in: Duration,
    },
    /// A listener stopped accepting: the manager stopped, or the handler
    /// it hands connections to is gone.
    ListenerClosed {
        /// The listener's address, if it can say.
        addr: Option<Addr>,
    },
}

impl Event {
    /// The id the event is about, if it is about a connection.
    pub fn id(&self) -> Option<ConnId> {
        match self {
            Event::Connected { conn, .. } | Event::Accepted { conn } => Some(conn.id()),
            Event::Disconnected { req, .. } | Event::DialFailed { req, .. } => req.id(),
            Event::InboundClosed { id, .. } => Some(*id),
            Event::SaveFailed { .. }
            | Event::ThreadFailed { .. }
            | Event::Listening { .. }
            | Event::ListenError { .. }
            | Event::ListenerClosed { .. } => None,
        }
    }

    /// The request handle the event carries, if any.
    pub(crate) fn req(&self) -> Option<&ConnReq> {
        match self {
            Event::Connected { req, .. }
            | Event::Disconnected { req, .. }
            | Event::DialFailed { req, .. } => Some(req),
            _ => None,
        }
    }

    /// A short name for logs: "connected", "disconnected", ...
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Connected { .. } => "connected",
            Event::Disconnected { .. } => "disconnected",
            Event::Accepted { .. } => "accepted",
            Event::InboundClosed { .. } => "inbound-closed",
            Event::DialFailed { .. } => "dial-failed",
            Event::SaveFailed { .. } => "save-failed",
            Event::ThreadFailed { .. } => "thread-failed",
            Event::Listening { .. } => "listening",
            Event::ListenError { .. } => "listen-error",
            Event::ListenerClosed { .. } => "listener-closed",
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Connected { req, conn } => f
                .debug_struct("Connected")
                .field("req", req)
                .field("conn", conn)
                .finish(),
            Event::Disconnected { req, reason } => f
                .debug_struct("Disconnected")
                .field("req", req)
                .field("reason", reason)
                .finish(),
            Event::Accepted { conn } => f.debug_struct("Accepted").field("conn", conn).finish(),
            Event::InboundClosed { id, addr, reason } => f
                .debug_struct("InboundClosed")
                .field("id", id)
                .field("addr", addr)
                .field("reason", reason)
                .finish(),
            Event::DialFailed {
                req,
                error,
                retry_in,
            } => f
                .debug_struct("DialFailed")
                .field("req", req)
                .field("error", error)
                .field("retry_in", retry_in)
                .finish(),
            Event::ThreadFailed { thread, error } => f
                .debug_struct("ThreadFailed")
                .field("thread", thread)
                .field("error", error)
                .finish(),
            Event::SaveFailed { path, error } => f
                .debug_struct("SaveFailed")
                .field("path", path)
                .field("error", error)
                .finish(),
            Event::Listening { addr } => f.debug_struct("Listening").field("addr", addr).finish(),
            Event::ListenError {
                addr,
                error,
                retry_in,
            } => f
                .debug_struct("ListenError")
                .field("addr", addr)
                .field("error", error)
                .field("retry_in", retry_in)
                .finish(),
            Event::ListenerClosed { addr } => f
                .debug_struct("ListenerClosed")
                .field("addr", addr)
                .finish(),
        }
    }
}
