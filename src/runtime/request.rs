//! Connection requests: what the user asks the manager to connect to, and
//! the handle through which they read its published state.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::addr::Addr;
use crate::core::ReqSpec;
use crate::policy::permissions::Permissions;
use crate::types::{ConnId, ConnState, ConnType};

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

/// 72 bytes: the handler keeps one for every live request.
struct ReqInner {
    /// The id once submitted; 0 before (ids start at 1).
    id: AtomicU64,
    addr: OnceLock<Addr>,
    kind: Kind,
    /// The last published [`ReqView`], packed so that readers take no lock.
    view: AtomicU64,
}

/// What a request is, fixed once it is built.
#[derive(Debug, Clone, Copy)]
struct Kind {
    permanent: bool,
    conn_type: ConnType,
    block_relay_only: bool,
    permissions: Permissions,
    allow_duplicate: bool,
}

impl Kind {
    const fn manual(permanent: bool) -> Self {
        Kind {
            permanent,
            conn_type: ConnType::Manual,
            block_relay_only: false,
            permissions: Permissions::NONE,
            allow_duplicate: false,
        }
    }
}

/// The part of a request the handler publishes on every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReqView {
    pub(crate) state: ConnState,
    pub(crate) retries: u32,
}

impl ReqView {
    const STATES: [ConnState; 5] = [
        ConnState::Pending,
        ConnState::Failing,
        ConnState::Canceled,
        ConnState::Established,
        ConnState::Disconnected,
    ];

    /// The retries in the high half, the state's index in the low byte.
    fn pack(self) -> u64 {
        let index = Self::STATES.iter().position(|s| *s == self.state);
        (u64::from(self.retries) << 32) | index.unwrap_or(0) as u64
    }

    fn unpack(packed: u64) -> Self {
        ReqView {
            state: Self::STATES[(packed as u8 as usize).min(Self::STATES.len() - 1)],
            retries: (packed >> 32) as u32,
        }
    }

    fn load(cell: &AtomicU64) -> Self {
        // Acquire: pairs with the handler's release in `publish`.
        Self::unpack(cell.load(Ordering::Acquire))
    }
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
        Self::build(Some(addr), Kind::manual(false))
    }

    /// A permanent request to `addr`: retried forever with backoff, under
    /// the same id, until removed.
    pub fn permanent(addr: Addr) -> Self {
        Self::build(Some(addr), Kind::manual(true))
    }

    /// A one-shot request to `addr` ([`ConnType::OneShot`], Bitcoin Core's
    /// address-fetch connection): connect, let the node fetch addresses,
    /// then close it. Never retried; the manager closes it at the one-shot
    /// timeout if the node has not.
    ///
    /// ```
    /// use connmgr::{ConnReq, ConnType};
    ///
    /// let req = ConnReq::one_shot("127.0.0.1:8333".parse().unwrap());
    /// assert_eq!(req.conn_type(), ConnType::OneShot);
    /// assert!(!req.is_permanent());
    /// ```
    pub fn one_shot(addr: Addr) -> Self {
        let kind = Kind {
            conn_type: ConnType::OneShot,
            ..Kind::manual(false)
        };
        Self::build(Some(addr), kind)
    }

    /// The same request marked block-relay-only: the node should relay
    /// blocks only over it (Bitcoin Core's blocks-only manual peers). It
    /// shows in [`is_block_relay_only`](Self::is_block_relay_only), the
    /// snapshot and the counts. Mark a request before submitting or
    /// cloning it: a submitted request is returned unchanged, and earlier
    /// clones keep the old mark.
    ///
    /// ```
    /// use connmgr::ConnReq;
    ///
    /// let req = ConnReq::permanent("127.0.0.1:8333".parse().unwrap()).block_relay_only();
    /// assert!(req.is_block_relay_only() && req.is_permanent());
    /// ```
    pub fn block_relay_only(self) -> Self {
        if self.id().is_some() {
            return self;
        }
        let kind = Kind {
            block_relay_only: true,
            ..self.inner.kind
        };
        Self::build(self.addr().cloned(), kind)
    }

    /// The same request with `permissions` for its peer, on top of those
    /// of the configured subnets its address is in: `NOBAN` dials it even
    /// when banned and never bans it for misbehaviour, `NO_EVICT` keeps it
    /// from trims; hints show in the snapshot. Like
    /// [`block_relay_only`](Self::block_relay_only), set it before
    /// submitting or cloning.
    ///
    /// ```
    /// use connmgr::{ConnReq, Permissions};
    ///
    /// let req = ConnReq::permanent("127.0.0.1:8333".parse().unwrap())
    ///     .with_permissions(Permissions::NOBAN | Permissions::NO_EVICT);
    /// assert!(req.permissions().contains(Permissions::NOBAN));
    /// ```
    pub fn with_permissions(self, permissions: Permissions) -> Self {
        if self.id().is_some() {
            return self;
        }
        let kind = Kind {
            permissions,
            ..self.inner.kind
        };
        Self::build(self.addr().cloned(), kind)
    }

    /// The same request, allowed to connect to a peer that already has a
    /// connection (either direction) or a dial in flight when the manager
    /// refuses duplicate manual connections
    /// ([`ConfigBuilder::manual_duplicates(false)`](crate::ConfigBuilder::manual_duplicates)).
    /// Set it before submitting or cloning.
    pub fn allow_duplicate(self) -> Self {
        if self.id().is_some() {
            return self;
        }
        let kind = Kind {
            allow_duplicate: true,
            ..self.inner.kind
        };
        Self::build(self.addr().cloned(), kind)
    }

    /// The permissions the request grants its peer (the snapshot shows
    /// them merged with the configured subnets').
    pub fn permissions(&self) -> Permissions {
        self.inner.kind.permissions
    }

    /// A one-off request whose address the manager takes from its address
    /// source.
    pub(crate) fn from_source() -> Self {
        Self::build(None, Kind::manual(false))
    }

    fn build(addr: Option<Addr>, kind: Kind) -> Self {
        let cell = OnceLock::new();
        if let Some(addr) = addr {
            let _ = cell.set(addr);
        }
        ConnReq {
            inner: Arc::new(ReqInner {
                id: AtomicU64::new(0),
                addr: cell,
                kind,
                view: AtomicU64::new(
                    ReqView {
                        state: ConnState::Pending,
                        retries: 0,
                    }
                    .pack(),
                ),
            }),
        }
    }

    /// The id, once the request has been submitted.
    pub fn id(&self) -> Option<ConnId> {
        match self.inner.id.load(Ordering::Acquire) {
            0 => None,
            id => Some(ConnId(id)),
        }
    }

    /// The address, once known (requests filled from the address source
    /// learn theirs when the source answers).
    pub fn addr(&self) -> Option<&Addr> {
        self.inner.addr.get()
    }

    /// Whether the request is retried forever.
    pub fn is_permanent(&self) -> bool {
        self.inner.kind.permanent
    }

    /// Whether the manager created the request to fill a target
    /// (full-relay or block-relay-only).
    pub fn is_automatic(&self) -> bool {
        self.inner.kind.conn_type.is_automatic()
    }

    /// What the request is for.
    pub fn conn_type(&self) -> ConnType {
        self.inner.kind.conn_type
    }

    /// Whether the node should relay blocks only over this connection:
    /// block-relay connections, and requests marked with
    /// [`block_relay_only`](Self::block_relay_only).
    pub fn is_block_relay_only(&self) -> bool {
        self.inner.kind.block_relay_only || self.inner.kind.conn_type == ConnType::BlockRelay
    }

    /// The state the manager last published for this request.
    pub fn state(&self) -> ConnState {
        ReqView::load(&self.inner.view).state
    }

    /// How many consecutive failed attempts the request has made since its
    /// last stable connection.
    pub fn retries(&self) -> u32 {
        ReqView::load(&self.inner.view).retries
    }

    /// Assigns the id; false if the request already had one (or `id` is
    /// 0, which no request is given).
    pub(crate) fn assign_id(&self, id: ConnId) -> bool {
        id.0 != 0
            && self
                .inner
                .id
                .compare_exchange(0, id.0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Records the address the source gave; false if one was already set.
    pub(crate) fn set_addr(&self, addr: Addr) -> bool {
        self.inner.addr.set(addr).is_ok()
    }

    /// Whether this is the only handle to the request: then nobody else
    /// can get one, since handles are cloned only from handles.
    pub(crate) fn is_sole_holder(&self) -> bool {
        Arc::strong_count(&self.inner) == 1
    }

    pub(crate) fn publish(&self, view: ReqView) {
        self.inner.view.store(view.pack(), Ordering::Release);
    }

    /// A handle for a request the Core made or that the user never held.
    pub(crate) fn from_spec(spec: &ReqSpec) -> Self {
        let kind = Kind {
            permanent: spec.permanent,
            conn_type: spec.conn_type,
            block_relay_only: spec.block_relay_only,
            permissions: spec.permissions,
            allow_duplicate: spec.allow_duplicate,
        };
        let req = Self::build(spec.addr.clone(), kind);
        req.assign_id(spec.id);
        req
    }

    /// The plain request the Core takes, under `id`.
    pub(crate) fn spec(&self, id: ConnId) -> ReqSpec {
        let mut spec = match self.addr() {
            Some(addr) => ReqSpec::new(id, addr.clone(), self.is_permanent()),
            None => ReqSpec::from_source(id),
        };
        spec.conn_type = self.conn_type();
        spec.block_relay_only = self.inner.kind.block_relay_only;
        spec.permissions = self.inner.kind.permissions;
        spec.allow_duplicate = self.inner.kind.allow_duplicate;
        spec
    }
}

impl fmt::Debug for ConnReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnReq")
            .field("id", &self.id())
            .field("addr", &self.addr())
            .field("permanent", &self.is_permanent())
            .field("conn_type", &self.conn_type())
            .field("block_relay_only", &self.is_block_relay_only())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_survive_packing() {
        for state in ReqView::STATES {
            for retries in [0, 1, 77, u32::MAX] {
                let view = ReqView { state, retries };
                assert_eq!(ReqView::unpack(view.pack()), view);
            }
        }
    }

    #[test]
    fn published_views_are_read_back() {
        let req = ConnReq::permanent("10.0.0.1:8333".parse().unwrap());
        assert_eq!((req.state(), req.retries()), (ConnState::Pending, 0));
        req.publish(ReqView {
            state: ConnState::Failing,
            retries: 3,
        });
        assert_eq!((req.state(), req.retries()), (ConnState::Failing, 3));
    }

    #[test]
    fn an_id_is_assigned_once() {
        let req = ConnReq::new("10.0.0.1:8333".parse().unwrap());
        assert!(!req.assign_id(ConnId(0)));
        assert_eq!(req.id(), None);
        assert!(req.assign_id(ConnId(5)));
        assert!(!req.assign_id(ConnId(7)));
        assert_eq!(req.id(), Some(ConnId(5)));
    }

    #[test]
    fn the_shared_part_stays_small() {
        assert!(std::mem::size_of::<ReqInner>() <= 72);
    }
}
