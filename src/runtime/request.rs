//! Connection requests: what the user asks the manager to connect to, and
//! the handle through which they read its published state.

use std::fmt;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::addr::Addr;
use crate::core::ReqSpec;
use crate::types::{ConnId, ConnState};

/// A request for an outbound connection.
///
/// Cloning gives another handle to the same request. Once submitted with
/// [`Handle::connect`](crate::Handle::connect) it has an id, and
/// [`state`](Self::state) reads the state the manager last published for
/// it, including the final one after the request has finished.
#[derive(Clone)]
pub struct ConnReq {
    inner: Arc<ReqInner>,
}

struct ReqInner {
    id: OnceLock<ConnId>,
    addr: OnceLock<Addr>,
    permanent: bool,
    automatic: bool,
    view: Mutex<ReqView>,
}

/// The part of a request the handler publishes on every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReqView {
    pub(crate) state: ConnState,
    pub(crate) retries: u32,
}

impl ConnReq {
    /// A one-off request to `addr`: not retried when it fails or drops.
    ///
    /// ```
    /// use connmgr::{ConnReq, ConnState};
    ///
    /// let req = ConnReq::new("127.0.0.1:8333".parse().unwrap());
    /// assert!(!req.is_permanent() && req.id().is_none());
    /// assert_eq!(req.state(), ConnState::Pending);
    /// assert_eq!(req.to_string(), "unsubmitted (127.0.0.1:8333)");
    /// ```
    pub fn new(addr: Addr) -> Self {
        Self::build(Some(addr), false, false)
    }

    /// A permanent request to `addr`: retried forever with backoff, under
    /// the same id, until removed.
    pub fn permanent(addr: Addr) -> Self {
        Self::build(Some(addr), true, false)
    }

    /// A one-off request whose address the manager takes from its address
    /// source.
    pub(crate) fn from_source() -> Self {
        Self::build(None, false, false)
    }

    fn build(addr: Option<Addr>, permanent: bool, automatic: bool) -> Self {
        let cell = OnceLock::new();
        if let Some(addr) = addr {
            let _ = cell.set(addr);
        }
        ConnReq {
            inner: Arc::new(ReqInner {
                id: OnceLock::new(),
                addr: cell,
                permanent,
                automatic,
                view: Mutex::new(ReqView {
                    state: ConnState::Pending,
                    retries: 0,
                }),
            }),
        }
    }

    /// The id, once the request has been submitted.
    pub fn id(&self) -> Option<ConnId> {
        self.inner.id.get().copied()
    }

    /// The address, once known (requests filled from the address source
    /// learn theirs when the source answers).
    pub fn addr(&self) -> Option<&Addr> {
        self.inner.addr.get()
    }

    /// Whether the request is retried forever.
    pub fn is_permanent(&self) -> bool {
        self.inner.permanent
    }

    /// Whether the manager created the request to fill its outbound target.
    pub fn is_automatic(&self) -> bool {
        self.inner.automatic
    }

    /// The state the manager last published for this request.
    pub fn state(&self) -> ConnState {
        self.inner.view.lock().state
    }

    /// How many consecutive failed attempts the request has made since its
    /// last stable connection.
    pub fn retries(&self) -> u32 {
        self.inner.view.lock().retries
    }

    /// Assigns the id; false if the request already had one.
    pub(crate) fn assign_id(&self, id: ConnId) -> bool {
        self.inner.id.set(id).is_ok()
    }

    /// Records the address the source gave; false if one was already set.
    pub(crate) fn set_addr(&self, addr: Addr) -> bool {
        self.inner.addr.set(addr).is_ok()
    }

    pub(crate) fn publish(&self, view: ReqView) {
        *self.inner.view.lock() = view;
    }

    /// A handle for a request the Core made or that the user never held.
    pub(crate) fn from_spec(spec: &ReqSpec) -> Self {
        let req = Self::build(spec.addr.clone(), spec.permanent, spec.automatic);
        req.assign_id(spec.id);
        req
    }

    /// The plain request the Core takes, under `id`.
    pub(crate) fn spec(&self, id: ConnId) -> ReqSpec {
        match self.addr() {
            Some(addr) => ReqSpec::new(id, addr.clone(), self.is_permanent()),
            None => ReqSpec::from_source(id),
        }
    }
}

impl fmt::Debug for ConnReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnReq")
            .field("id", &self.id())
            .field("addr", &self.addr())
            .field("permanent", &self.is_permanent())
            .field("automatic", &self.is_automatic())
            .field("state", &self.state())
            .finish()
    }
}

impl fmt::Display for ConnReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.id(), self.addr()) {
            (Some(id), Some(addr)) => write!(f, "{id} ({addr})"),
            (Some(id), None) => write!(f, "{id} (address pending)"),
            (None, Some(addr)) => write!(f, "unsubmitted ({addr})"),
            (None, None) => f.write_str("unsubmitted (address pending)"),
        }
    }
}
