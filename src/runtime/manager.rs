//! The public face: [`ConnManager`] owns the threads; [`Handle`] is the
//! cheap, cloneable way to ask things of it, from any thread and from
//! callbacks.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, ThreadId};

use crossbeam_channel::{Receiver, Sender};
use log::{info, warn};
use parking_lot::{Condvar, Mutex};

use crate::addr::Addr;
use crate::core::info::{ConnInfo, Counts};
use crate::core::{Core, Input, PeerReport, Teardown};
use crate::policy::banlist::BanList;
use crate::runtime::accept::{spawn_acceptor, AcceptorHandle};
use crate::runtime::clock::Clock;
use crate::runtime::config::{Config, ConfigError};
use crate::runtime::event::Event;
use crate::runtime::handler::{self, Accepted, HandlerParts, Request, Stream0};
use crate::runtime::notifier::{self, Callbacks, EventSink};
use crate::runtime::persist::take_anchors;
use crate::runtime::pool::{spawn_pool, DialMsg, WorkerCtx};
use crate::runtime::request::{ConnReq, IdGen};
use crate::runtime::snapshot::{Snapshot, SnapshotStore};
use crate::transport::listener::Listener;
use crate::transport::tcp::TcpListener;
use crate::types::{ConnId, ConnState, Direction};

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
    pub(super) requests: Sender<Request>,
    pub(super) ids: IdGen,
    pub(super) store: Arc<Mutex<SnapshotStore>>,
    pub(super) phase: AtomicU8,
    pub(super) has_source: bool,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) events_rx: Receiver<Event>,
    pub(super) events_enabled: Arc<AtomicBool>,
    pub(super) listen_addrs: Vec<Addr>,
    /// Names of the registered decaying tags.
    pub(super) decaying: HashSet<String>,
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
    Ready(Box<Parts>),
    Running(Threads),
    Stopped,
}

/// What `start` turns into threads.
pub(super) struct Parts {
    config: Config,
    loaded_bans: BanList,
    listeners: Vec<Box<dyn Listener>>,
    requests: Receiver<Request>,
    events_tx: Sender<Event>,
}

pub(super) struct Threads {
    handler: JoinHandle<()>,
    pool: Vec<JoinHandle<()>>,
    notifier: JoinHandle<()>,
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
/// [`start`](Self::start) it; every [`Handle`] method is available on it
/// directly. Dropping it stops it.
pub struct ConnManager {
    handle: Handle,
}

impl ConnManager {
    /// Checks `config`, binds its listen addresses, and prepares the
    /// manager. Nothing runs until [`start`](Self::start); requests made
    /// before then wait for it.
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
        config.core.has_address_source = config.source.is_some();
        config.core.trim = config.trim_policy()?;
        let loaded_bans = load_bans(&config)?;
        let (requests_tx, requests) = crossbeam_channel::unbounded();
        let (events_tx, events_rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            requests: requests_tx,
            ids: IdGen::default(),
            store: Arc::new(Mutex::new(SnapshotStore::default())),
            phase: AtomicU8::new(NEW),
            has_source: config.source.is_some(),
            clock: Arc::clone(&config.clock),
            events_rx,
            events_enabled: Arc::new(AtomicBool::new(false)),
            listen_addrs,
            decaying: config.decaying.iter().map(|d| d.name.clone()).collect(),
            lifecycle: Mutex::new(Lifecycle::Stopped),
            own_threads: Mutex::new(Vec::new()),
            abandon: Arc::new(AtomicBool::new(false)),
            stop_done: Mutex::new(false),
            stop_cv: Condvar::new(),
        });
        *shared.lifecycle.lock() = Lifecycle::Ready(Box::new(Parts {
            config,
            loaded_bans,
            listeners,
            requests,
            events_tx,
        }));
        Ok(ConnManager {
            handle: Handle { shared },
        })
    }

    /// Starts the handler, dialer, notifier and listener threads and fills
    /// the outbound target. Starting a running manager does nothing;
    /// starting a stopped one is [`Error::Stopped`].
    pub fn start(&self) -> Result<(), Error> {
        let shared = &self.handle.shared;
        let mut lifecycle = shared.lifecycle.lock();
        let parts = match std::mem::replace(&mut *lifecycle, Lifecycle::Stopped) {
            Lifecycle::Ready(parts) => parts,
            Lifecycle::Running(threads) => {
                *lifecycle = Lifecycle::Running(threads);
                return Ok(());
            }
            Lifecycle::Stopped => return Err(Error::Stopped),
        };
        let threads = self
            .spawn_threads(*parts)
            .map_err(|e| Error::Spawn(e.to_string()))?;
        shared.own_threads.lock().extend(threads.ids());
        *lifecycle = Lifecycle::Running(threads);
        // A stop that began meanwhile wins; it will join these threads.
        let _ = shared
            .phase
            .compare_exchange(NEW, RUNNING, Ordering::AcqRel, Ordering::Acquire);
        info!(target: LOG, "connection manager started");
        Ok(())
    }

    fn spawn_threads(&self, parts: Parts) -> std::io::Result<Threads> {
        let Parts {
            config,
            loaded_bans,
            listeners,
            requests,
            events_tx,
        } = parts;
        let shared = &self.handle.shared;
        let (jobs_tx, jobs_rx) = crossbeam_channel::bounded(config.queue_size);
        let (results_tx, results_rx) = crossbeam_channel::unbounded::<DialMsg>();
        let (accepted_tx, accepted_rx) = crossbeam_channel::bounded::<Accepted>(1024);
        let (notify_tx, notify_rx) = crossbeam_channel::unbounded();

        let notifier = spawn_notifier(self.handle.clone(), notify_rx, config.callbacks, events_tx)?;
        let dialer = config
            .dialer
            .ok_or_else(|| std::io::Error::other(ConfigError::NoDialer.to_string()))?;
        let ctx = WorkerCtx::new(
            dialer,
            config.dial_gate,
            config.source,
            config.dial_timeout,
            results_tx.clone(),
        );
        // Inline dialing needs no pool.
        let pool_size = if config.inline_dial {
            0
        } else {
            config.pool_size
        };
        let pool = spawn_pool(pool_size, jobs_rx, &ctx)?;
        let core = Core::with_ids(config.core, shared.ids.clone());
        let parts = HandlerParts {
            core,
            clock: config.clock,
            requests,
            request_tx: shared.requests.clone(),
            results: results_rx,
            _results_tx: results_tx,
            accepted: accepted_rx,
            _accepted_tx: accepted_tx.clone(),
            jobs: jobs_tx,
            events: notify_tx,
            store: Arc::clone(&shared.store),
            close_on_stop: config.close_on_stop,
            anchors: config
                .anchors_file
                .as_deref()
                .map(take_anchors)
                .unwrap_or_default(),
            anchors_file: config.anchors_file,
            decaying: config.decaying,
            ban_file: config.ban_file,
            loaded_bans,
            inline: config.inline_dial.then_some(ctx),
        };
        let handler = thread::Builder::new()
            .name("connmgr-handler".into())
            .spawn(move || handler::run(parts))?;
        let acceptors = listeners
            .into_iter()
            .map(|l| spawn_acceptor(l, accepted_tx.clone(), config.accept_gate.clone()))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Threads {
            handler,
            pool,
            notifier,
            acceptors,
        })
    }

    /// Stops the manager: closes listeners, cancels pending dials and
    /// timers, closes established connections (unless `close_on_stop` is
    /// off), delivers the remaining events and joins every thread it
    /// started. Calling it again does nothing.
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
        let mut ids = vec![self.handler.thread().id(), self.notifier.thread().id()];
        ids.extend(self.pool.iter().map(|h| h.thread().id()));
        ids.extend(self.acceptors.iter().map(|a| a.thread_id()));
        ids
    }
}

impl std::ops::Deref for ConnManager {
    type Target = Handle;

    fn deref(&self) -> &Handle {
        &self.handle
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
            .field("running", &self.is_running())
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
    pub fn connect(&self, req: ConnReq) -> Result<ConnId, Error> {
        self.check_open()?;
        let id = self.shared.ids.next();
        if !req.assign_id(id) {
            return Err(Error::AlreadySubmitted(req.assigned_id()));
        }
        self.announce(&req, id);
        self.send_new(id, Input::Connect(req))
    }

    /// Submits a one-off request whose address comes from the address
    /// source (btcd's `NewConnReq`), on top of the target.
    pub fn new_conn_req(&self) -> Result<ConnId, Error> {
        self.check_open()?;
        if !self.shared.has_source {
            return Err(Error::NoAddressSource);
        }
        let req = ConnReq::from_source(false);
        let id = self.shared.ids.next();
        req.assign_id(id);
        self.announce(&req, id);
        self.send_new(id, Input::ConnectFromSource(req))
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
        if self
            .conn_info(id)
            .is_some_and(|c| c.direction == Direction::Inbound)
        {
            return Err(Error::NotOutbound(id));
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
        self.shared
            .requests
            .send(Request::Input(input))
            .map_err(|_| Error::Stopped)
    }

    /// Sends a request announced under `id`, withdrawing the announcement
    /// if the handler is gone.
    fn send_new(&self, id: ConnId, input: Input<Stream0>) -> Result<ConnId, Error> {
        self.input(input).map(|()| id).inspect_err(|_| {
            self.shared.store.lock().remove(id);
        })
    }

    /// Makes a new request visible at once, before the handler sees it.
    fn announce(&self, req: &ConnReq, id: ConnId) {
        let now = self.shared.clock.now();
        self.shared.store.lock().upsert(ConnInfo {
            id,
            addr: req.addr().cloned(),
            direction: Direction::Outbound,
            state: ConnState::Pending,
            permanent: req.is_permanent(),
            automatic: req.is_automatic(),
            peer: None,
            retries: 0,
            since: now,
            next_attempt: None,
        });
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
        if let Lifecycle::Running(threads) = previous {
            threads.join(&shared.requests, me, &shared.abandon);
            info!(target: LOG, "connection manager stopped");
        }
        shared.store.lock().running = false;
        *shared.stop_done.lock() = true;
        shared.stop_cv.notify_all();
    }
}

impl Threads {
    /// Shuts every thread down in dependency order and joins it, except
    /// the calling thread itself.
    fn join(self, requests: &Sender<Request>, me: ThreadId, abandon: &AtomicBool) {
        for acceptor in &self.acceptors {
            acceptor.close();
        }
        for acceptor in self.acceptors {
            acceptor.join(me);
        }
        let _ = requests.send(Request::Stop);
        join_unless_self(self.handler, me);
        for worker in self.pool {
            join_unless_self(worker, me);
        }
        if self.notifier.thread().id() == me {
            abandon.store(true, Ordering::Release);
        } else {
            join_unless_self(self.notifier, me);
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
