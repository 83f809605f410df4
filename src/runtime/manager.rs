//! The public face: [`ConnManager`] owns the threads; [`Handle`] is the
//! cheap, cloneable way to ask things of it, from any thread and from
//! callbacks.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, ThreadId};

use crossbeam_channel::{Receiver, Sender};
use log::{info, warn};
use parking_lot::{Condvar, Mutex};

use crate::addr::Addr;
use crate::core::info::{ConnInfo, Counts};
use crate::core::{Core, Input, PeerReport, ReqSpec, Teardown};
use crate::policy::banlist::BanList;
use crate::policy::tags::PeerId;
use crate::runtime::accept::{spawn_acceptor, AcceptorHandle};
use crate::runtime::clock::Clock;
use crate::runtime::config::{Config, ConfigError};
use crate::runtime::event::Event;
use crate::runtime::handler::{Accepted, Handler, HandlerParts, Msg, PersistTx, Stream0};
use crate::runtime::notifier::{self, Callbacks, EventSink};
use crate::runtime::persist::{spawn_writer, take_anchors, Files, SaveJob};
use crate::runtime::pool::{spawn_pool, DialMsg, Job, WorkerCtx};
use crate::runtime::request::ConnReq;
use crate::runtime::snapshot::{Snapshot, SnapshotStore};
use crate::transport::listener::Listener;
use crate::transport::tcp::TcpListener;
use crate::types::ConnId;

const LOG: &str = "connmgr";

const NEW: u8 = 0;
const RUNNING: u8 = 1;
const STOPPED: u8 = 2;

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
    /// No decaying tag of this name was registered in the config.
    UnknownTag(String),
    /// The call waits for the handler thread, and was made from code
    /// running on it (an inline dialer or address source, or a tag
    /// function); make it from another thread.
    OnHandlerThread,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Stopped => f.write_str("the connection manager is stopped; create a new one"),
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
    pub(super) phase: AtomicU8,
    pub(super) has_source: bool,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) events_rx: Receiver<Event>,
    pub(super) events_enabled: Arc<AtomicBool>,
    pub(super) listen_addrs: Vec<Addr>,
    pub(super) handler_thread: ThreadId,
    pub(super) lifecycle: Mutex<Lifecycle>,
    /// Threads the manager started, so that `stop` called on one of them
    /// does not wait for itself.
    pub(super) own_threads: Mutex<Vec<ThreadId>>,
    /// Set when `stop` ran on the notifier thread: drop what is left.
    pub(super) abandon: Arc<AtomicBool>,
    pub(super) stop_done: Mutex<bool>,
    pub(super) stop_cv: Condvar,
}

pub(super) enum Lifecycle {
    /// Made, not started: the handler runs; the rest waits here.
    Ready {
        handler: JoinHandle<()>,
        parts: Box<Parts>,
    },
    Running(Threads),
    Stopped,
}

/// What `start` turns into threads.
pub(super) struct Parts {
    config: Config,
    listeners: Vec<Box<dyn Listener>>,
    events_tx: Sender<Event>,
    notify_tx: Sender<Vec<Event>>,
    notify_rx: Receiver<Vec<Event>>,
    jobs_rx: Receiver<Job>,
    results_tx: Sender<DialMsg>,
    accepted_tx: Sender<Accepted>,
    persist_rx: Option<Receiver<SaveJob>>,
    ctx: Arc<WorkerCtx>,
}

pub(super) struct Threads {
    handler: JoinHandle<()>,
    pool: Vec<JoinHandle<()>>,
    notifier: Option<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
    acceptors: Vec<AcceptorHandle>,
}

/// A cloneable handle to a manager: submit and take down requests, read
/// snapshots. Callbacks receive one. Handles do not keep the manager
/// running; once it stops, calls return [`Error::Stopped`].
#[derive(Clone)]
pub struct Handle {
    pub(super) shared: Arc<Shared>,
}

/// The connection manager. Create it with [`ConnManager::new`], then
/// [`start`](Self::start) it; [`handle`](Self::handle) gives the
/// [`Handle`] through which everything else is asked. Dropping it stops
/// it.
///
/// ```
/// use connmgr::{Config, ConnManager, MemoryNetwork};
///
/// let net = MemoryNetwork::new();
/// let manager = ConnManager::new(Config::builder().dialer(net.dialer()).build()).unwrap();
/// manager.start().unwrap();
/// assert!(manager.handle().is_running());
/// manager.stop();
/// assert!(!manager.handle().is_running());
/// ```
pub struct ConnManager {
    handle: Handle,
}

impl ConnManager {
    /// Checks `config`, binds its listen addresses, loads the ban file,
    /// and starts the handler thread, which holds requests made before
    /// [`start`](Self::start) until then.
    pub fn new(mut config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut listeners = std::mem::take(&mut config.listeners);
        for addr in &config.listen_addrs {
            let l = TcpListener::bind(*addr).map_err(|e| ConfigError::Listen {
                addr: *addr,
                reason: e.to_string(),
            })?;
            listeners.push(Box::new(l));
        }
        let listen_addrs = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let loaded_bans = load_bans(&config)?;
        let (requests_tx, requests) = crossbeam_channel::unbounded();
        let (events_tx, events_rx) = crossbeam_channel::unbounded();
        let (jobs_tx, jobs_rx) = crossbeam_channel::bounded(config.queue_size);
        let (results_tx, results_rx) = crossbeam_channel::unbounded::<DialMsg>();
        let (accepted_tx, accepted_rx) = crossbeam_channel::bounded::<Accepted>(1024);
        let (notify_tx, notify_rx) = crossbeam_channel::unbounded();
        let persisted = config.ban_file.is_some() || config.anchors_file.is_some();
        let (persist_tx, persist_rx) = match persisted {
            true => {
                let (tx, rx) = crossbeam_channel::unbounded();
                (Some(tx), Some(rx))
            }
            false => (None, None),
        };
        let dialer = config.dialer.clone().ok_or(ConfigError::NoDialer)?;
        let ctx = WorkerCtx::new(
            dialer,
            config.dial_gate.clone(),
            config.source.clone(),
            config.dial_timeout,
            results_tx.clone(),
        );
        let store = Arc::new(Mutex::new(SnapshotStore::default()));
        let mut handler = Handler::new(HandlerParts {
            core: Core::new(config.core.clone()),
            clock: Arc::clone(&config.clock),
            requests,
            request_tx: requests_tx.clone(),
            results: results_rx,
            _results_tx: results_tx.clone(),
            accepted: accepted_rx,
            _accepted_tx: accepted_tx.clone(),
            jobs: jobs_tx,
            events: notify_tx.clone(),
            store: Arc::clone(&store),
            close_on_stop: config.close_on_stop,
            inline: config.inline_dial.then(|| Arc::clone(&ctx)),
            persist: persist_tx.map(|tx| PersistTx {
                tx,
                bans: config.ban_file.is_some(),
                anchors: config.anchors_file.is_some(),
            }),
        });
        let decaying = std::mem::take(&mut config.decaying);
        handler.prime(
            decaying
                .into_iter()
                .map(Input::RegisterDecaying)
                .chain([Input::LoadBans(loaded_bans)]),
        );
        let handler = thread::Builder::new()
            .name("connmgr-handler".into())
            .spawn(move || handler.run())
            .map_err(|e| ConfigError::Spawn(e.to_string()))?;
        let shared = Arc::new(Shared {
            requests: requests_tx,
            caller_ids: AtomicU64::new(0),
            store,
            phase: AtomicU8::new(NEW),
            has_source: config.core.has_address_source,
            clock: Arc::clone(&config.clock),
            events_rx,
            events_enabled: Arc::new(AtomicBool::new(false)),
            listen_addrs,
            handler_thread: handler.thread().id(),
            lifecycle: Mutex::new(Lifecycle::Stopped),
            own_threads: Mutex::new(vec![handler.thread().id()]),
            abandon: Arc::new(AtomicBool::new(false)),
            stop_done: Mutex::new(false),
            stop_cv: Condvar::new(),
        });
        *shared.lifecycle.lock() = Lifecycle::Ready {
            handler,
            parts: Box::new(Parts {
                config,
                listeners,
                events_tx,
                notify_tx,
                notify_rx,
                jobs_rx,
                results_tx,
                accepted_tx,
                persist_rx,
                ctx,
            }),
        };
        Ok(ConnManager {
            handle: Handle { shared },
        })
    }

    /// The handle through which requests, policy calls and snapshots go;
    /// clone it freely.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Starts the dialer, notifier, persistence and listener threads,
    /// then lets the handler dial what waits and fill the outbound target.
    /// Starting a running manager does nothing; starting a stopped one is
    /// [`Error::Stopped`].
    pub fn start(&self) -> Result<(), Error> {
        let shared = &self.handle.shared;
        let mut lifecycle = shared.lifecycle.lock();
        let (handler, parts) = match std::mem::replace(&mut *lifecycle, Lifecycle::Stopped) {
            Lifecycle::Ready { handler, parts } => (handler, parts),
            Lifecycle::Running(threads) => {
                *lifecycle = Lifecycle::Running(threads);
                return Ok(());
            }
            Lifecycle::Stopped => return Err(Error::Stopped),
        };
        let anchors = parts
            .config
            .anchors_file
            .as_deref()
            .map(take_anchors)
            .unwrap_or_default();
        let mut threads = Threads {
            handler,
            pool: Vec::new(),
            notifier: None,
            writer: None,
            acceptors: Vec::new(),
        };
        if let Err(e) = self.spawn_threads(&mut threads, *parts) {
            // Join what did start.
            *lifecycle = Lifecycle::Running(threads);
            drop(lifecycle);
            self.stop();
            return Err(Error::Spawn(e.to_string()));
        }
        shared.own_threads.lock().extend(threads.ids());
        *lifecycle = Lifecycle::Running(threads);
        let _ = shared.requests.send(Msg::Start(anchors));
        // A stop that began meanwhile wins; it will join these threads.
        let _ = shared
            .phase
            .compare_exchange(NEW, RUNNING, Ordering::AcqRel, Ordering::Acquire);
        info!(target: LOG, "connection manager started");
        Ok(())
    }

    /// Spawns the threads into `threads`; on failure those already running
    /// stay there for `stop` to join.
    fn spawn_threads(&self, threads: &mut Threads, parts: Parts) -> std::io::Result<()> {
        let Parts {
            config,
            listeners,
            events_tx,
            notify_tx,
            notify_rx,
            jobs_rx,
            results_tx,
            accepted_tx,
            persist_rx,
            ctx,
        } = parts;
        drop(results_tx);
        let handle = self.handle.clone();
        let notifier = spawn_notifier(handle, notify_rx, config.callbacks, events_tx)?;
        threads.notifier = Some(notifier);
        if let Some(rx) = persist_rx {
            let files = Files {
                bans: config.ban_file,
                anchors: config.anchors_file,
            };
            threads.writer = Some(spawn_writer(rx, files, notify_tx)?);
        }
        // Inline dialing needs no pool.
        let pool_size = if config.inline_dial {
            0
        } else {
            config.pool_size
        };
        spawn_pool(pool_size, jobs_rx, &ctx, &mut threads.pool)?;
        for l in listeners {
            let gate = config.accept_gate.clone();
            let acceptor = spawn_acceptor(l, accepted_tx.clone(), gate)?;
            threads.acceptors.push(acceptor);
        }
        Ok(())
    }

    /// Stops the manager: closes listeners, cancels pending dials and
    /// timers, closes established connections (unless `close_on_stop` is
    /// off), delivers the remaining events and joins every thread it
    /// started. Calling it again does nothing. Every request ends in a
    /// final state, and the snapshot holds nothing live afterwards.
    ///
    /// Called from a callback, it returns once every other thread has
    /// finished; events still queued behind that callback are dropped.
    pub fn stop(&self) {
        self.handle.stop_all();
    }
}

/// Loads the configured ban file, if any; a missing file is an empty list.
fn load_bans(config: &Config) -> Result<BanList, ConfigError> {
    let Some(path) = &config.ban_file else {
        return Ok(BanList::new());
    };
    BanList::load(path, config.clock.now(), config.clock.wall())
        .map_err(|e| ConfigError::BanFile(e.to_string()))
}

fn spawn_notifier(
    handle: Handle,
    rx: Receiver<Vec<Event>>,
    callbacks: Callbacks,
    events_tx: Sender<Event>,
) -> std::io::Result<JoinHandle<()>> {
    let sink = EventSink {
        tx: events_tx,
        enabled: Arc::clone(&handle.shared.events_enabled),
    };
    let abandon = Arc::clone(&handle.shared.abandon);
    thread::Builder::new()
        .name("connmgr-notify".into())
        .spawn(move || notifier::run(rx, callbacks, sink, handle, abandon))
}

impl Threads {
    fn ids(&self) -> Vec<ThreadId> {
        let mut ids = vec![self.handler.thread().id()];
        ids.extend(self.notifier.iter().map(|h| h.thread().id()));
        ids.extend(self.writer.iter().map(|h| h.thread().id()));
        ids.extend(self.pool.iter().map(|h| h.thread().id()));
        ids.extend(self.acceptors.iter().map(|a| a.thread_id()));
        ids
    }
}

impl Drop for ConnManager {
    fn drop(&mut self) {
        self.handle.stop_all();
    }
}

impl fmt::Debug for ConnManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnManager")
            .field("running", &self.handle.is_running())
            .finish()
    }
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

    fn report(&self, id: ConnId, report: PeerReport) -> Result<(), Error> {
        self.check_known(id)?;
        self.input(Input::Report { id, report })
    }

    /// A copy of everything the manager last published.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.store.lock().snapshot()
    }

    /// The published entry for one id.
    pub fn conn_info(&self, id: ConnId) -> Option<ConnInfo> {
        self.shared.store.lock().get(id).cloned()
    }

    /// The published counts by state and direction.
    pub fn counts(&self) -> Counts {
        self.shared.store.lock().counts()
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
    /// from the first call on; every call returns a receiver of the same
    /// queue.
    pub fn events(&self) -> Receiver<Event> {
        self.shared.events_enabled.store(true, Ordering::Release);
        self.shared.events_rx.clone()
    }

    /// Stops the manager; see [`ConnManager::stop`].
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

    pub(super) fn check_open(&self) -> Result<(), Error> {
        match self.shared.phase.load(Ordering::Acquire) {
            STOPPED => Err(Error::Stopped),
            _ => Ok(()),
        }
    }

    /// Sends one input to the handler.
    pub(super) fn input(&self, input: Input<Stream0>) -> Result<(), Error> {
        self.send(Msg::Input(input))
    }

    pub(super) fn send(&self, msg: Msg) -> Result<(), Error> {
        self.shared.requests.send(msg).map_err(|_| Error::Stopped)
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
        let mut store = self.shared.store.lock();
        if !store.accepting {
            return Err(Error::Stopped);
        }
        store.upsert(Core::pending_info(&spec, now));
        if self.send(Msg::Connect(req, spec)).is_err() {
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
        self.send(Msg::Barrier { input, ask, reply })?;
        answer.recv().map_err(|_| Error::Stopped)
    }

    /// Fails with [`Error::OnHandlerThread`] when called from code the
    /// handler thread runs, for calls that wait for the handler.
    pub(super) fn check_not_handler(&self) -> Result<(), Error> {
        if thread::current().id() == self.shared.handler_thread {
            return Err(Error::OnHandlerThread);
        }
        Ok(())
    }

    /// The first caller does the stopping; other threads wait for it to
    /// finish, except the manager's own threads (a callback calling stop
    /// while stop waits for that callback), which return at once.
    fn stop_all(&self) {
        let shared = &self.shared;
        let me = thread::current().id();
        if shared.phase.swap(STOPPED, Ordering::AcqRel) == STOPPED {
            if !shared.own_threads.lock().contains(&me) {
                let mut done = shared.stop_done.lock();
                while !*done {
                    shared.stop_cv.wait(&mut done);
                }
            }
            return;
        }
        let previous = std::mem::replace(&mut *shared.lifecycle.lock(), Lifecycle::Stopped);
        match previous {
            Lifecycle::Running(threads) => {
                threads.join(&shared.requests, me, &shared.abandon);
                info!(target: LOG, "connection manager stopped");
            }
            Lifecycle::Ready { handler, .. } => {
                let _ = shared.requests.send(Msg::Stop);
                join_unless_self(handler, me);
            }
            Lifecycle::Stopped => {}
        }
        shared.store.lock().running = false;
        *shared.stop_done.lock() = true;
        shared.stop_cv.notify_all();
    }
}

impl Threads {
    /// Shuts every thread down in dependency order and joins it, except
    /// the calling thread itself.
    fn join(self, requests: &Sender<Msg>, me: ThreadId, abandon: &AtomicBool) {
        for acceptor in &self.acceptors {
            acceptor.close();
        }
        for acceptor in self.acceptors {
            acceptor.join(me);
        }
        let _ = requests.send(Msg::Stop);
        join_unless_self(self.handler, me);
        // The handler is gone, so the writer's queue is closed: it
        // finishes the last saves and exits.
        if let Some(writer) = self.writer {
            join_unless_self(writer, me);
        }
        for worker in self.pool {
            join_unless_self(worker, me);
        }
        match self.notifier {
            Some(n) if n.thread().id() == me => abandon.store(true, Ordering::Release),
            Some(n) => join_unless_self(n, me),
            None => {}
        }
    }
}

/// Joins `h` unless it is the calling thread (which finishes on its own
/// once it returns to its loop).
pub(crate) fn join_unless_self(h: JoinHandle<()>, me: ThreadId) {
    if h.thread().id() == me {
        return;
    }
    if h.join().is_err() {
        warn!(target: LOG, "a manager thread panicked");
    }
}
