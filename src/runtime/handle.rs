//! [`Handle`]: the cheap, cloneable way to ask things of a manager, from
//! any thread and from callbacks; and the [`Error`] its calls return.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::{self, ThreadId};

use crossbeam_channel::{Receiver, Sender};
use log::warn;
use parking_lot::{Condvar, Mutex};

use crate::addr::Addr;
use crate::core::info::{ConnInfo, Counts, TrimInfo};
use crate::core::{Core, Input, PeerReport, ReqSpec, Teardown};
use crate::limits;
use crate::policy::tags::{PeerId, TagError};
use crate::policy::trim::TrimPolicy;
use crate::runtime::clock::Clock;
use crate::runtime::event::Event;
use crate::runtime::msg::{Msg, Stream0};
use crate::runtime::request::ConnReq;
use crate::runtime::snapshot::{Snapshot, SnapshotStore};
use crate::types::ConnId;

const LOG: &str = "connmgr";

pub(super) const NEW: u8 = 0;
pub(super) const RUNNING: u8 = 1;
pub(super) const STOPPED: u8 = 2;
pub(super) const CRASHED: u8 = 3;

/// Why a manager call could not be done.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The manager has been stopped; make a new one.
    Stopped,
    /// The request was already submitted (under this id).
    AlreadySubmitted(ConnId),
    /// No live request or connection has this id.
    UnknownId(ConnId),
    /// The operation needs an outbound request, but this id is inbound.
    NotOutbound(ConnId),
    /// `new_conn_req` needs an address source, and none is configured.
    NoAddressSource,
    /// The operating system refused to start a thread.
    Spawn(String),
    /// No decaying tag of this name is registered.
    UnknownTag(String),
    /// The call waits for the handler thread, and was made from code
    /// running on it (an inline dialer or address source, or a tag
    /// function); make it from another thread.
    OnHandlerThread,
    /// The peer book is at its bound (`max_peers`) with peers it must
    /// keep, so a protection for a peer with no connection was refused;
    /// unprotect peers or raise the bound.
    PeerBookFull,
    /// The handler thread died (the text says why); the manager can only
    /// be stopped. Reported once as [`Event::ThreadFailed`] too.
    Crashed(String),
    /// A waiting call's deadline passed before the handler answered; what
    /// it asked for still happens.
    TimedOut,
    /// A decaying tag could not be registered (the reason says why).
    Tag(TagError),
    /// The process may open fewer descriptors than the config's
    /// connections need, even after raising the soft limit to the hard
    /// one; `start` refused. Raise the hard limit (`ulimit -Hn`, systemd's
    /// `LimitNOFILE`), lower `max_inbound` or `target_outbound`, or turn
    /// the check into a warning with `check_descriptors(false)`.
    DescriptorLimit {
        /// What the config needs ([`Config::descriptors_needed`](crate::Config::descriptors_needed)).
        needed: u64,
        /// The limit in force.
        limit: u64,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Stopped => f.write_str("the connection manager is stopped; create a new one"),
            Error::Crashed(why) => write!(
                f,
                "the manager's handler thread died ({why}); stop it and create a new one"
            ),
            Error::PeerBookFull => f.write_str(
                "the peer book is full of protected peers: unprotect some, or raise ConfigBuilder::max_peers",
            ),
            Error::AlreadySubmitted(id) => write!(
                f,
                "this request was already submitted as {id}; build a new ConnReq for another connection"
            ),
            Error::UnknownId(id) => write!(
                f,
                "no live request or connection {id}; it may have finished (see snapshot())"
            ),
            Error::NotOutbound(id) => write!(
                f,
                "{id} is an inbound connection and cannot be reconnected; use disconnect or remove"
            ),
            Error::NoAddressSource => f.write_str(
                "no address source configured: set ConfigBuilder::address_source, or use connect with an address",
            ),
            Error::Spawn(why) => write!(f, "cannot start a manager thread: {why}"),
            Error::Tag(e) => e.fmt(f),
            Error::DescriptorLimit { needed, limit } => write!(
                f,
                "the config needs {needed} descriptors but the process may open only {limit}: \
                 raise the hard limit (ulimit -Hn, LimitNOFILE), lower max_inbound or \
                 target_outbound, or set check_descriptors(false)"
            ),
            Error::TimedOut => f.write_str(
                "the handler did not answer before the deadline; the call still takes effect",
            ),
            Error::OnHandlerThread => f.write_str(
                "this call waits for the handler thread and was made on it (from an inline \
                 dialer, address source or tag function): make it from another thread",
            ),
            Error::UnknownTag(name) => write!(
                f,
                "no decaying tag named {name:?}; register it with ConfigBuilder::decaying_tag"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// What a handle shares with the manager and its threads.
pub(super) struct Shared {
    pub(super) requests: Sender<Msg>,
    /// Mints caller ids (the Core mints its own).
    pub(super) caller_ids: AtomicU64,
    pub(super) store: Arc<Mutex<SnapshotStore>>,
    /// `NEW`, `RUNNING`, `STOPPED`, or `CRASHED` (set by a dying handler).
    pub(super) phase: Arc<AtomicU8>,
    pub(super) has_source: bool,
    /// The trim settings, fixed at creation.
    pub(super) trim_policy: Option<TrimPolicy>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) events_rx: Receiver<Event>,
    pub(super) events_enabled: Arc<AtomicBool>,
    pub(super) listen_addrs: Vec<Addr>,
    pub(super) handler_thread: ThreadId,
    /// Joins the manager's threads; the manager implements it.
    pub(super) threads: Arc<dyn JoinAll>,
    /// Threads the manager started, so that `stop` called on one of them
    /// does not wait for itself.
    pub(super) own_threads: Arc<Mutex<Vec<ThreadId>>>,
    /// Set when `stop` ran on the notifier thread: drop what is left.
    pub(super) abandon: Arc<AtomicBool>,
    pub(super) stop_done: Mutex<bool>,
    pub(super) stop_cv: Condvar,
    /// The thread that finishes a stop begun on the handler thread, for
    /// whoever waits on the stop (the manager's drop) to join.
    pub(super) reaper: Mutex<Option<thread::JoinHandle<()>>>,
    /// Why the handler thread died, once it has.
    pub(super) crashed: Arc<Mutex<Option<String>>>,
}

/// Stops and joins the manager's threads, except the calling one.
pub(super) trait JoinAll: Send + Sync {
    fn join_all(&self, me: ThreadId);
}

/// A cloneable handle to a manager: submit and take down requests, read
/// snapshots. Callbacks receive one. Handles do not keep the manager
/// running; once it stops, calls return [`Error::Stopped`].
#[derive(Clone)]
pub struct Handle {
    pub(super) shared: Arc<Shared>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("running", &self.is_running())
            .finish()
    }
}

impl Handle {
    /// Submits an outbound request and returns its id. Explicit requests
    /// come on top of the automatic outbound target.
    ///
    /// ```
    /// use connmgr::{Config, ConnManager, ConnReq, ConnState, MemoryNetwork};
    ///
    /// let net = MemoryNetwork::new();
    /// let manager = ConnManager::new(Config::builder().dialer(net.dialer()).build()).unwrap();
    /// let handle = manager.handle();
    /// let req = ConnReq::permanent("127.0.0.1:8333".parse().unwrap());
    /// let id = handle.connect(req.clone()).unwrap();
    /// assert_eq!(req.id(), Some(id));
    /// assert_eq!(handle.conn_info(id).unwrap().state, ConnState::Pending);
    /// ```
    pub fn connect(&self, req: ConnReq) -> Result<ConnId, Error> {
        self.check_open()?;
        if let Some(id) = req.id() {
            return Err(Error::AlreadySubmitted(id));
        }
        let id = self.mint_caller_id();
        if !req.assign_id(id) {
            return Err(Error::AlreadySubmitted(req.id().unwrap_or(id)));
        }
        let spec = req.spec(id);
        self.submit(req, spec)
    }

    /// Submits a one-off request whose address comes from the address
    /// source (btcd's `NewConnReq`), on top of the target.
    ///
    /// ```
    /// use connmgr::{Addr, Config, ConnManager, Error, MemoryNetwork};
    ///
    /// let net = MemoryNetwork::new();
    /// let peer: Addr = "127.0.0.1:8333".parse().unwrap();
    /// let _listener = net.listen(peer.clone()).unwrap();
    /// let config = Config::builder()
    ///     .dialer(net.dialer())
    ///     .target_outbound(0)
    ///     .address_source(move || Some(peer.clone()))
    ///     .build();
    /// let manager = ConnManager::new(config).unwrap();
    /// let id = manager.handle().new_conn_req().unwrap();
    /// assert!(manager.handle().conn_info(id).is_some());
    ///
    /// // Without a source there is nothing to ask.
    /// let plain = ConnManager::new(Config::builder().dialer(net.dialer()).build()).unwrap();
    /// assert_eq!(plain.handle().new_conn_req(), Err(Error::NoAddressSource));
    /// ```
    pub fn new_conn_req(&self) -> Result<ConnId, Error> {
        self.check_open()?;
        if !self.shared.has_source {
            return Err(Error::NoAddressSource);
        }
        let req = ConnReq::from_source();
        let id = self.mint_caller_id();
        req.assign_id(id);
        let spec = req.spec(id);
        self.submit(req, spec)
    }

    /// Closes an established connection. A permanent request is retried
    /// with backoff, an automatic one is replaced from the address source,
    /// any other finishes. A request still connecting is canceled. An
    /// inbound connection is closed.
    ///
    /// ```
    /// use connmgr::{Config, ConnManager, ConnReq, Event, MemoryNetwork};
    /// use std::time::Duration;
    ///
    /// let net = MemoryNetwork::new();
    /// let addr = "127.0.0.1:8333".parse().unwrap();
    /// let _peer = net.listen(addr).unwrap();
    /// let manager = ConnManager::new(Config::builder().dialer(net.dialer()).build()).unwrap();
    /// let events = manager.handle().events();
    /// manager.start().unwrap();
    /// let id = manager.handle().connect(ConnReq::new("127.0.0.1:8333".parse().unwrap())).unwrap();
    /// let ev = events.recv_timeout(Duration::from_secs(10)).unwrap();
    /// assert!(matches!(ev, Event::Connected { .. }));
    /// manager.handle().disconnect(id).unwrap();
    /// let ev = events.recv_timeout(Duration::from_secs(10)).unwrap();
    /// assert!(matches!(ev, Event::Disconnected { .. }));
    /// ```
    pub fn disconnect(&self, id: ConnId) -> Result<(), Error> {
        self.teardown(id, Teardown::Disconnect)
    }

    /// Closes an established outbound connection and dials the same
    /// address again at once, permanent or not; a request waiting to retry
    /// dials now.
    pub fn reconnect(&self, id: ConnId) -> Result<(), Error> {
        if let Some(c) = self.conn_info(id) {
            if !Teardown::Reconnect.applies_to(c.direction) {
                return Err(Error::NotOutbound(id));
            }
        }
        self.teardown(id, Teardown::Reconnect)
    }

    /// Finishes a request for good: cancels it if it is still connecting
    /// (a dial that completes later is closed and never reported), closes
    /// it without retry if established. Closes an inbound connection.
    ///
    /// ```
    /// use connmgr::{Config, ConnManager, ConnReq, ConnState, MemoryNetwork};
    ///
    /// let net = MemoryNetwork::new();
    /// let manager = ConnManager::new(Config::builder().dialer(net.dialer()).build()).unwrap();
    /// let h = manager.handle();
    /// let req = ConnReq::permanent("127.0.0.1:8333".parse().unwrap());
    /// let id = h.connect(req.clone()).unwrap();
    /// h.remove(id).unwrap();
    /// h.barrier().unwrap();
    /// assert_eq!(req.state(), ConnState::Canceled);
    /// assert!(h.conn_info(id).is_none());
    /// ```
    pub fn remove(&self, id: ConnId) -> Result<(), Error> {
        self.teardown(id, Teardown::Remove)
    }

    /// Reports a round-trip time measured with a connection's peer; the
    /// lowest one is kept and protects good inbound peers from eviction.
    pub fn report_ping(&self, id: ConnId, rtt: std::time::Duration) -> Result<(), Error> {
        self.report(id, PeerReport::Ping(rtt))
    }

    /// Reports that a connection's peer delivered a block we did not have.
    pub fn report_novel_block(&self, id: ConnId) -> Result<(), Error> {
        self.report(id, PeerReport::NovelBlock)
    }

    /// Reports that a connection's peer delivered a transaction we did not
    /// have.
    pub fn report_novel_tx(&self, id: ConnId) -> Result<(), Error> {
        self.report(id, PeerReport::NovelTx)
    }

    /// Tells the manager the node finished its protocol handshake on
    /// connection `id` (in Bitcoin, `version`/`verack`). A feeler has then
    /// done its job and is closed with
    /// [`CloseReason::FeelerDone`](crate::CloseReason::FeelerDone); other connections are not
    /// affected, so a node may call it for every connection.
    pub fn handshake_done(&self, id: ConnId) -> Result<(), Error> {
        self.check_known(id)?;
        self.input(Input::HandshakeDone { id })
    }

    /// Reports what the node learned about connection `id`, for choosing
    /// which inbound connection to evict: every input of Bitcoin Core's
    /// eviction ([`PeerReport`]: ping, novel blocks and transactions,
    /// whether the peer relays transactions, has a bloom filter, offers
    /// the services we need, or is discouraged). Reports about outbound
    /// connections are ignored: they are never evicted.
    ///
    /// ```
    /// use connmgr::core::PeerReport;
    /// use connmgr::{Config, ConnManager, Error, MemoryNetwork};
    ///
    /// let net = MemoryNetwork::new();
    /// let manager = ConnManager::new(Config::builder().dialer(net.dialer()).build()).unwrap();
    /// let unknown = connmgr::ConnId(2);
    /// let err = manager.handle().report(unknown, PeerReport::RelaysTxs(false)).unwrap_err();
    /// assert!(matches!(err, Error::UnknownId(_)));
    /// ```
    pub fn report(&self, id: ConnId, report: PeerReport) -> Result<(), Error> {
        self.check_known(id)?;
        self.input(Input::Report { id, report })
    }

    /// A copy of everything the manager last published.
    ///
    /// ```
    /// use connmgr::{Config, ConnManager, ConnReq, MemoryNetwork};
    ///
    /// let net = MemoryNetwork::new();
    /// let manager = ConnManager::new(Config::builder().dialer(net.dialer()).build()).unwrap();
    /// let id = manager.handle().connect(ConnReq::new("127.0.0.1:1".parse().unwrap())).unwrap();
    /// let snap = manager.handle().snapshot();
    /// assert_eq!(snap.get(id).map(|c| c.permanent), Some(false));
    /// assert_eq!(snap.counts.pending, 1);
    /// assert!(!snap.running);
    /// ```
    pub fn snapshot(&self) -> Snapshot {
        self.shared.store.lock().snapshot()
    }

    /// The published entry for one id.
    pub fn conn_info(&self, id: ConnId) -> Option<ConnInfo> {
        self.shared.store.lock().conn_info(id)
    }

    /// The published counts by state and direction.
    pub fn counts(&self) -> Counts {
        self.shared.store.lock().counts()
    }

    /// The trim settings and the state of the last trim, as published (as
    /// libp2p's `GetInfo`): watermarks, grace and silence periods, the
    /// connections counted against them, and when the last trim ran and
    /// how many it closed.
    ///
    /// ```
    /// use connmgr::{Config, ConnManager, MemoryNetwork};
    ///
    /// let net = MemoryNetwork::new();
    /// let config = Config::builder().dialer(net.dialer()).watermarks(2, 4).build();
    /// let manager = ConnManager::new(config).unwrap();
    /// let info = manager.handle().trim_info();
    /// let policy = info.policy.unwrap();
    /// assert_eq!((policy.low_watermark, policy.high_watermark), (2, 4));
    /// assert_eq!((info.trims, info.last_trim), (0, None));
    /// ```
    pub fn trim_info(&self) -> TrimInfo {
        let store = self.shared.store.lock();
        let counts = store.counts();
        TrimInfo::new(
            self.shared.trim_policy,
            counts.inbound + counts.outbound,
            store.peer_count(),
            &store.stats(),
        )
    }

    /// Calls queued for the handler thread and not yet taken. A caller
    /// thread that finds [`MAX_QUEUED_REQUESTS`](limits::MAX_QUEUED_REQUESTS)
    /// waiting waits for the handler to catch up, so while the manager
    /// runs this stays within that bound plus two per calling thread (the
    /// call and the wait itself); calls from the manager's own threads
    /// (callbacks, dialers) and calls made before `start` never wait.
    pub fn queued_calls(&self) -> usize {
        self.shared.requests.len()
    }

    /// Whether the manager is between `start` and `stop`.
    pub fn is_running(&self) -> bool {
        self.shared.phase.load(Ordering::Acquire) == RUNNING
    }

    /// The addresses the manager's listeners accept on.
    pub fn listen_addrs(&self) -> &[Addr] {
        &self.shared.listen_addrs
    }

    /// A receiver for the events no callback takes. Events flow into it
    /// from the first call on, up to `max_queued_events` waiting; nothing
    /// happens before [`start`](crate::ConnManager::start), so a receiver
    /// taken before it sees every event, through the last ones `stop`
    /// causes (the connections it closes). Every call returns a receiver
    /// of the same queue: with several, each event goes to exactly one of
    /// them (a connection has one owner), so give one thread the receiver
    /// and fan out from there if several parts of a node need events.
    ///
    /// ```
    /// use connmgr::{Config, ConnManager, Event, MemoryNetwork};
    /// use std::time::Duration;
    ///
    /// let net = MemoryNetwork::new();
    /// let listener = net.listen("127.0.0.1:8333".parse().unwrap()).unwrap();
    /// let config = Config::builder().dialer(net.dialer()).listener(listener).build();
    /// let manager = ConnManager::new(config).unwrap();
    /// let events = manager.handle().events();
    /// manager.start().unwrap();
    /// let _client = net.connect(&"127.0.0.1:8333".parse().unwrap()).unwrap();
    /// let ev = events.recv_timeout(Duration::from_secs(10)).unwrap();
    /// assert!(matches!(ev, Event::Listening { .. }));
    /// let ev = events.recv_timeout(Duration::from_secs(10)).unwrap();
    /// assert!(matches!(ev, Event::Accepted { .. }));
    /// ```
    pub fn events(&self) -> Receiver<Event> {
        self.shared.events_enabled.store(true, Ordering::Release);
        self.shared.events_rx.clone()
    }

    /// Stops the manager; see [`ConnManager::stop`](crate::ConnManager::stop).
    pub fn stop(&self) {
        self.stop_all();
    }

    fn teardown(&self, id: ConnId, mode: Teardown) -> Result<(), Error> {
        self.check_known(id)?;
        self.input(Input::Teardown { id, mode })
    }

    /// Checks the manager is open and `id` is live.
    pub(super) fn check_known(&self, id: ConnId) -> Result<(), Error> {
        self.check_open()?;
        if !self.shared.store.lock().contains(id) {
            return Err(Error::UnknownId(id));
        }
        Ok(())
    }

    /// The manager's clock now, for callers turning published instants
    /// into ages (the C API).
    #[cfg(feature = "ffi")]
    pub(crate) fn clock_now(&self) -> std::time::Instant {
        self.shared.clock.now()
    }

    pub(super) fn check_open(&self) -> Result<(), Error> {
        match self.shared.phase.load(Ordering::Acquire) {
            STOPPED => Err(Error::Stopped),
            CRASHED => Err(Error::Crashed(
                self.shared.crashed.lock().clone().unwrap_or_default(),
            )),
            _ => Ok(()),
        }
    }

    /// Sends one input to the handler.
    pub(super) fn input(&self, input: Input<Stream0>) -> Result<(), Error> {
        self.send(Msg::Input(input))
    }

    /// Queues `msg` for the handler, first waiting for it to catch up if
    /// [`MAX_QUEUED_REQUESTS`](limits::MAX_QUEUED_REQUESTS) are waiting.
    pub(super) fn send(&self, msg: Msg) -> Result<(), Error> {
        self.wait_if_full();
        self.send_now(msg)
    }

    /// Waits for the handler to catch up when the queue is at its bound.
    /// Never call it holding a lock the handler takes (the snapshot
    /// store's): the handler could not answer.
    fn wait_if_full(&self) {
        if self.shared.requests.len() >= limits::MAX_QUEUED_REQUESTS {
            self.catch_up();
        }
    }

    fn send_now(&self, msg: Msg) -> Result<(), Error> {
        self.shared.requests.send(msg).map_err(|_| Error::Stopped)
    }

    /// Waits until the handler has taken everything queued so far, where
    /// waiting is safe: while it runs, and not on the manager's threads.
    fn catch_up(&self) {
        let me = thread::current().id();
        if self.is_running() && !self.shared.own_threads.lock().contains(&me) {
            let _ = self.call_raw(None, None);
        }
    }

    fn mint_caller_id(&self) -> ConnId {
        ConnId::caller(self.shared.caller_ids.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Makes a new request visible at once, with the entry the Core gives
    /// a request it has not handled yet, and sends it. Both happen under
    /// the store's lock, which the handler takes for its last look at the
    /// queue: a request either reaches the handler or is refused.
    fn submit(&self, req: ConnReq, spec: ReqSpec) -> Result<ConnId, Error> {
        let id = spec.id;
        let now = self.shared.clock.now();
        // Wait (if at all) before taking the store's lock: the handler
        // needs it to catch up.
        self.wait_if_full();
        let mut store = self.shared.store.lock();
        if !store.accepting {
            return Err(Error::Stopped);
        }
        store.upsert(Core::pending_info(&spec, now));
        if self.send_now(Msg::Connect(req, spec)).is_err() {
            store.remove(id);
            return Err(Error::Stopped);
        }
        Ok(id)
    }

    /// Returns once the handler has applied every call made before it
    /// (from any thread) and published the result, so that
    /// [`snapshot`](Self::snapshot), [`counts`](Self::counts) and the other
    /// readers show their effect. Fails with [`Error::OnHandlerThread`]
    /// on the handler thread and [`Error::Stopped`] once stopped.
    ///
    /// ```
    /// use connmgr::{Config, ConnManager, MemoryNetwork};
    ///
    /// let net = MemoryNetwork::new();
    /// let manager = ConnManager::new(Config::builder().dialer(net.dialer()).build()).unwrap();
    /// let h = manager.handle();
    /// h.tag("peer-a", "useful", 5).unwrap();
    /// h.barrier().unwrap();
    /// assert_eq!(h.tag_info(&"peer-a".into()).unwrap().value, 5);
    /// ```
    pub fn barrier(&self) -> Result<(), Error> {
        self.call_raw(None, None).map(drop)
    }

    /// Sends `input` and waits until it is applied and published;
    /// answers whether `ask` is then protected.
    pub(super) fn call(&self, input: Input<Stream0>, ask: Option<PeerId>) -> Result<bool, Error> {
        self.call_raw(Some(input), ask)
    }

    fn call_raw(&self, input: Option<Input<Stream0>>, ask: Option<PeerId>) -> Result<bool, Error> {
        self.check_open()?;
        self.check_not_handler()?;
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send_now(Msg::Barrier { input, ask, reply })?;
        answer.recv().map_err(|_| Error::Stopped)
    }

    /// Fails with [`Error::OnHandlerThread`] when called from code the
    /// handler thread runs, for calls that wait for the handler.
    pub(crate) fn check_not_handler(&self) -> Result<(), Error> {
        if thread::current().id() == self.shared.handler_thread {
            return Err(Error::OnHandlerThread);
        }
        Ok(())
    }

    /// The first caller does the stopping; other threads wait for it to
    /// finish, except the manager's own threads (a callback calling stop
    /// while stop waits for that callback), which return at once.
    pub(super) fn stop_all(&self) {
        let shared = &self.shared;
        let me = thread::current().id();
        if shared.phase.swap(STOPPED, Ordering::AcqRel) == STOPPED {
            if !shared.own_threads.lock().contains(&me) {
                let mut done = shared.stop_done.lock();
                while !*done {
                    shared.stop_cv.wait(&mut done);
                }
                drop(done);
                if let Some(reaper) = shared.reaper.lock().take() {
                    let _ = reaper.join();
                }
            }
            return;
        }
        if me == shared.handler_thread {
            // Code the handler runs (an inline dialer or source, a tag
            // function) cannot wait for the handler: a helper thread does
            // the joins while the handler returns to its loop and stops.
            let handle = self.clone();
            let spawned = thread::Builder::new()
                .name("connmgr-stop".into())
                .spawn(move || handle.finish_stop(thread::current().id()));
            match spawned {
                Ok(reaper) => {
                    *shared.reaper.lock() = Some(reaper);
                    return;
                }
                Err(e) => warn!(target: LOG, "cannot spawn the stop thread: {e}"),
            }
        }
        self.finish_stop(me);
    }

    /// Joins the manager's threads (all but `me`) and wakes the waiters.
    fn finish_stop(&self, me: ThreadId) {
        let shared = &self.shared;
        shared.threads.join_all(me);
        shared.store.lock().running = false;
        *shared.stop_done.lock() = true;
        shared.stop_cv.notify_all();
    }
}
