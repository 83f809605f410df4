//! [`ConnManager`]: owns the threads around the Core, starts and stops
//! them; everything else is asked through its [`Handle`].

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use log::{error, info, warn};
use parking_lot::{Condvar, Mutex};

use crate::core::{Core, Input};
use crate::guard::panic_message;
use crate::policy::banlist::BanList;
use crate::runtime::accept::{spawn_acceptor, AcceptorHandle};
use crate::runtime::config::{Config, ConfigError};
use crate::runtime::event::Event;
use crate::runtime::fdlimit::ensure_descriptors;
use crate::runtime::handle::{Error, Handle, JoinAll, Shared, CRASHED, NEW, RUNNING, STOPPED};
use crate::runtime::handler::{Handler, HandlerParts, PersistTx};
use crate::runtime::jobqueue::JobQueue;
use crate::runtime::join::join_unless_self;
use crate::runtime::msg::{Accepted, Msg};
use crate::runtime::notifier::{self, Batch, Callbacks, EventSink};
use crate::runtime::persist::{spawn_writer, take_anchors, Files, SaveJob};
use crate::runtime::pool::{DialMsg, Pool, WorkerCtx};
use crate::runtime::snapshot::SnapshotStore;
use crate::transport::listener::Listener;
use crate::transport::tcp::TcpListener;

const LOG: &str = "connmgr";

/// The manager's threads through their life, behind one lock.
pub(super) struct Lifecycle {
    state: Mutex<Stage>,
    requests: Sender<Msg>,
    abandon: Arc<AtomicBool>,
}

pub(super) enum Stage {
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
    notify_tx: Sender<Batch>,
    notify_rx: Receiver<Batch>,
    undelivered: Arc<AtomicUsize>,
    results_tx: Sender<DialMsg>,
    accepted_tx: Sender<Accepted>,
    persist_rx: Option<Receiver<SaveJob>>,
    pool: Arc<Pool>,
    descriptors_needed: u64,
}

pub(super) struct Threads {
    handler: JoinHandle<()>,
    pool: Arc<Pool>,
    stop_grace: Duration,
    notifier: Option<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
    acceptors: Vec<AcceptorHandle>,
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
    lifecycle: Arc<Lifecycle>,
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
        let descriptors_needed = config.descriptors_needed();
        let (requests_tx, requests) = crossbeam_channel::unbounded();
        let (events_tx, events_rx) = crossbeam_channel::unbounded();
        let (jobs_tx, jobs_rx) = JobQueue::bounded(config.queue_size);
        let (results_tx, results_rx) = crossbeam_channel::unbounded::<DialMsg>();
        let (accepted_tx, accepted_rx) = crossbeam_channel::bounded::<Accepted>(1024);
        let (notify_tx, notify_rx) = crossbeam_channel::unbounded();
        let undelivered = Arc::new(AtomicUsize::new(0));
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
            results_tx.clone(),
        );
        let own_threads = Arc::new(Mutex::new(Vec::new()));
        let pool = Pool::new(
            jobs_rx,
            Arc::clone(&ctx),
            config.pool_size,
            Arc::clone(&own_threads),
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
            undelivered: Arc::clone(&undelivered),
            max_undelivered: config.max_queued_events,
            store: Arc::clone(&store),
            close_on_stop: config.close_on_stop,
            inline_dial: config.dials_inline().then(|| Arc::clone(&ctx)),
            inline_fetch: config.fetches_inline().then(|| Arc::clone(&ctx)),
            pool: config.needs_pool().then(|| Arc::clone(&pool)),
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
        let crashed = Arc::new(Mutex::new(None));
        let phase = Arc::new(AtomicU8::new(NEW));
        let report = CrashReport {
            phase: Arc::clone(&phase),
            crashed: Arc::clone(&crashed),
            store: Arc::clone(&store),
            events: notify_tx.clone(),
        };
        let handler = thread::Builder::new()
            .name("connmgr-handler".into())
            .spawn(move || {
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| handler.run())) {
                    report.died("connmgr-handler", panic_message(&*panic));
                }
            })
            .map_err(|e| ConfigError::Spawn(e.to_string()))?;
        let handler_thread = handler.thread().id();
        own_threads.lock().push(handler_thread);
        let has_source = config.core.has_address_source;
        // Validated above, so this is the policy or none.
        let trim_policy = config.core.trim_policy().ok().flatten();
        let clock = Arc::clone(&config.clock);
        let abandon = Arc::new(AtomicBool::new(false));
        let lifecycle = Arc::new(Lifecycle {
            state: Mutex::new(Stage::Ready {
                handler,
                parts: Box::new(Parts {
                    config,
                    listeners,
                    events_tx,
                    notify_tx,
                    notify_rx,
                    undelivered,
                    results_tx,
                    accepted_tx,
                    persist_rx,
                    pool,
                    descriptors_needed,
                }),
            }),
            requests: requests_tx.clone(),
            abandon: Arc::clone(&abandon),
        });
        let shared = Arc::new(Shared {
            requests: requests_tx,
            caller_ids: AtomicU64::new(0),
            store,
            phase,
            has_source,
            trim_policy,
            clock,
            events_rx,
            events_enabled: Arc::new(AtomicBool::new(false)),
            listen_addrs,
            handler_thread,
            threads: Arc::clone(&lifecycle) as Arc<dyn JoinAll>,
            own_threads,
            abandon,
            stop_done: Mutex::new(false),
            stop_cv: Condvar::new(),
            reaper: Mutex::new(None),
            crashed,
        });
        Ok(ConnManager {
            handle: Handle { shared },
            lifecycle,
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
        let mut stage = self.lifecycle.state.lock();
        if let Stage::Ready { parts, .. } = &*stage {
            check_descriptors(parts)?;
        }
        let (handler, parts) = match std::mem::replace(&mut *stage, Stage::Stopped) {
            Stage::Ready { handler, parts } => (handler, parts),
            Stage::Running(threads) => {
                *stage = Stage::Running(threads);
                return Ok(());
            }
            Stage::Stopped => return Err(Error::Stopped),
        };
        let anchors = parts
            .config
            .anchors_file
            .as_deref()
            .map(take_anchors)
            .unwrap_or_default();
        let mut threads = Threads {
            handler,
            pool: Arc::clone(&parts.pool),
            stop_grace: parts.config.stop_grace,
            notifier: None,
            writer: None,
            acceptors: Vec::new(),
        };
        if let Err(e) = self.spawn_threads(&mut threads, *parts) {
            // Join what did start.
            *stage = Stage::Running(threads);
            drop(stage);
            self.stop();
            return Err(Error::Spawn(e.to_string()));
        }
        shared.own_threads.lock().extend(threads.ids());
        *stage = Stage::Running(threads);
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
            undelivered,
            results_tx,
            accepted_tx,
            persist_rx,
            pool,
            descriptors_needed: _,
        } = parts;
        drop(results_tx);
        let handle = self.handle.clone();
        // Work that all runs inline needs no pool.
        let pool_size = if config.needs_pool() {
            config.pool_size
        } else {
            0
        };
        let notifier = spawn_notifier(
            handle,
            notify_rx,
            config.callbacks,
            EventSink {
                tx: events_tx,
                enabled: Arc::clone(&self.handle.shared.events_enabled),
                max_queued: config.max_queued_events,
                undelivered,
            },
        )?;
        threads.notifier = Some(notifier);
        if let Some(rx) = persist_rx {
            let files = Files {
                bans: config.ban_file,
                anchors: config.anchors_file,
            };
            threads.writer = Some(spawn_writer(rx, files, notify_tx.clone())?);
        }
        pool.spawn(pool_size)?;
        for l in listeners {
            let gate = config.accept_gate.clone();
            let acceptor = spawn_acceptor(l, accepted_tx.clone(), gate, notify_tx.clone())?;
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

/// Raises the descriptor limit for what the config needs; an error if it
/// stays short and the config asks for the check.
fn check_descriptors(parts: &Parts) -> Result<(), Error> {
    let check = ensure_descriptors(parts.descriptors_needed);
    match check.limit {
        Some(limit) if !check.fits() => {
            if parts.config.check_descriptors {
                return Err(Error::DescriptorLimit {
                    needed: check.needed,
                    limit,
                });
            }
            warn!(
                target: LOG,
                "the config needs {} descriptors but the process may open only {limit}",
                check.needed
            );
            Ok(())
        }
        _ => Ok(()),
    }
}

/// What a dying thread leaves behind: the reason for every later call, a
/// store that no longer says running, and one event.
struct CrashReport {
    phase: Arc<AtomicU8>,
    crashed: Arc<Mutex<Option<String>>>,
    store: Arc<Mutex<SnapshotStore>>,
    events: Sender<Batch>,
}

impl CrashReport {
    fn died(self, thread: &str, why: String) {
        error!(target: LOG, "{thread} died: {why}");
        *self.crashed.lock() = Some(why.clone());
        // A stop already under way keeps its STOPPED; otherwise calls
        // now fail with the reason.
        let _ = self
            .phase
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                (p != STOPPED).then_some(CRASHED)
            });
        self.store.lock().running = false;
        let _ = self.events.send(Batch::one(Event::ThreadFailed {
            thread: thread.to_owned(),
            error: why,
        }));
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
    rx: Receiver<Batch>,
    callbacks: Callbacks,
    sink: EventSink,
) -> std::io::Result<JoinHandle<()>> {
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

impl JoinAll for Lifecycle {
    fn join_all(&self, me: ThreadId) {
        let stage = std::mem::replace(&mut *self.state.lock(), Stage::Stopped);
        match stage {
            Stage::Running(threads) => {
                threads.join(&self.requests, me, &self.abandon);
                info!(target: LOG, "connection manager stopped");
            }
            Stage::Ready { handler, .. } => {
                let _ = self.requests.send(Msg::Stop);
                join_unless_self(handler, me);
            }
            Stage::Stopped => {}
        }
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
        // The handler dropped the job queue; workers finish their dials
        // (canceled) and exit. One stuck in a dialer delays stop by at
        // most the grace.
        self.pool.join(self.stop_grace, me);
        match self.notifier {
            Some(n) if n.thread().id() == me => abandon.store(true, Ordering::Release),
            Some(n) => join_unless_self(n, me),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread that dies leaves its reason, the CRASHED phase (unless a
    /// stop already began), a store that no longer says running, and one
    /// event naming the thread. No outside input can kill the handler any
    /// more, so the report is checked here directly.
    #[test]
    fn a_crash_report_leaves_phase_reason_and_event() {
        for (before, after) in [(RUNNING, CRASHED), (STOPPED, STOPPED)] {
            let (events, rx) = crossbeam_channel::unbounded();
            let store = Arc::new(Mutex::new(SnapshotStore::default()));
            store.lock().running = true;
            let report = CrashReport {
                phase: Arc::new(AtomicU8::new(before)),
                crashed: Arc::new(Mutex::new(None)),
                store: Arc::clone(&store),
                events,
            };
            let (phase, crashed) = (Arc::clone(&report.phase), Arc::clone(&report.crashed));
            report.died("connmgr-handler", "boom".into());
            assert_eq!(phase.load(Ordering::Acquire), after);
            assert_eq!(crashed.lock().as_deref(), Some("boom"));
            assert!(!store.lock().running);
            match rx.try_recv().unwrap().events() {
                [Event::ThreadFailed { thread, error }] => {
                    assert_eq!(
                        (thread.as_str(), error.as_str()),
                        ("connmgr-handler", "boom")
                    )
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
