//! The connection-handler thread: the thin shell around [`Core`]. It turns
//! channel messages into Core inputs, carries out the Core's effects, and
//! publishes the state of each batch.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{never, select, Receiver, Sender, TrySendError};
use log::{debug, warn};
use parking_lot::Mutex;

use crate::addr::Addr;
use crate::core::{Core, CoreEvent, DecayingSpec, Effect, Input};
use crate::idmap::IdMap;
use crate::policy::banlist::BanList;
use crate::runtime::accept::discard;
use crate::runtime::clock::Clock;
use crate::runtime::conn::{Conn, ConnShared};
use crate::runtime::event::Event;
use crate::runtime::persist::save_anchors;
use crate::runtime::pool::{self, DialMsg, Job, WorkerCtx};
use crate::runtime::snapshot::SnapshotStore;
use crate::transport::dial::CancelToken;
use crate::transport::stream::{Closer, Stream};
use crate::types::ConnId;

const LOG: &str = "connmgr";

/// Messages that drain in one wake-up before the state is published.
const BATCH: usize = 4096;

/// Polls before sleeping: half spin hints, half yields.
const SPIN_ROUNDS: u32 = 64;

/// What callers (and closing connections) ask of the handler: Core inputs,
/// in the order they were sent, or to stop.
pub(crate) enum Request {
    Input(Input<Stream0>),
    Stop,
}

/// A connection a listener thread accepted.
pub(crate) struct Accepted {
    pub(crate) stream: Box<dyn Stream>,
    pub(crate) remote: Addr,
}

/// The channels and shared state the handler works with.
pub(crate) struct HandlerParts {
    pub(crate) core: Core,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) requests: Receiver<Request>,
    pub(crate) request_tx: Sender<Request>,
    pub(crate) results: Receiver<DialMsg>,
    /// Kept so `results` never reads as disconnected (which would spin
    /// the select) when the pool is empty of senders.
    pub(crate) _results_tx: Sender<DialMsg>,
    pub(crate) accepted: Receiver<Accepted>,
    /// Kept for the same reason when there are no listeners.
    pub(crate) _accepted_tx: Sender<Accepted>,
    pub(crate) jobs: Sender<Job>,
    pub(crate) events: Sender<Vec<Event>>,
    pub(crate) store: Arc<Mutex<SnapshotStore>>,
    pub(crate) close_on_stop: bool,
    /// Where a clean stop saves the anchors, if anywhere.
    pub(crate) anchors_file: Option<PathBuf>,
    /// Anchors read at start, to dial first.
    pub(crate) anchors: Vec<Addr>,
    /// Set when dials and the address source run on this thread.
    pub(crate) inline: Option<Arc<WorkerCtx>>,
    /// Decaying tags to register before starting.
    pub(crate) decaying: Vec<DecayingSpec>,
    /// Where the ban list is saved, if anywhere.
    pub(crate) ban_file: Option<PathBuf>,
    /// Bans loaded from that file.
    pub(crate) loaded_bans: BanList,
}

pub(crate) type Stream0 = Box<dyn Stream>;

/// What woke the handler.
enum Wake {
    Request(Option<Request>),
    Result(Option<DialMsg>),
    Accepted(Option<Accepted>),
    Timer,
}

struct Handler {
    parts: HandlerParts,
    /// Jobs the bounded queue had no room for, oldest first.
    backlog: VecDeque<Job>,
    /// Cancel tokens of dials in flight, with their attempt numbers.
    dials: IdMap<ConnId, (u64, CancelToken)>,
    /// What closes each established connection, by serial.
    live: IdMap<u64, Arc<ConnShared>>,
    effects: Vec<Effect<Stream0>>,
    /// Answers of dials made on this thread, not yet fed to the Core.
    inline_results: VecDeque<DialMsg>,
    /// The token of inline dials, which finish before anyone could cancel.
    never_canceled: CancelToken,
    /// Events of the current batch, sent after it is published.
    outbox: Vec<Event>,
    /// The time of the current batch, read once when first needed.
    now: Option<Instant>,
    timer: Option<(Instant, Receiver<Instant>)>,
    stopping: bool,
}

/// Runs the handler until a [`Request::Stop`] (or until every request
/// sender is gone), then shuts the Core down.
pub(crate) fn run(parts: HandlerParts) {
    let mut h = Handler {
        parts,
        backlog: VecDeque::new(),
        dials: IdMap::default(),
        live: IdMap::default(),
        effects: Vec::new(),
        inline_results: VecDeque::new(),
        never_canceled: CancelToken::new(),
        outbox: Vec::new(),
        now: None,
        timer: None,
        stopping: false,
    };
    for spec in std::mem::take(&mut h.parts.decaying) {
        h.step(Input::RegisterDecaying(spec));
    }
    let bans = std::mem::take(&mut h.parts.loaded_bans);
    h.step(Input::LoadBans(bans));
    let anchors = std::mem::take(&mut h.parts.anchors);
    h.step(Input::Anchors(anchors));
    h.step(Input::Start);
    h.publish(true);
    while !h.stopping {
        h.now = None;
        if !h.poll_briefly() {
            h.wait_and_handle();
        }
        h.drain();
        h.flush_jobs();
        h.publish(true);
    }
    h.shut_down();
}

impl Handler {
    /// Blocks until one message or the timer arrives, and handles it.
    fn wait_and_handle(&mut self) {
        let timer = self.timer_channel();
        let parts = &self.parts;
        let wake = select! {
            recv(parts.requests) -> msg => Wake::Request(msg.ok()),
            recv(parts.results) -> msg => Wake::Result(msg.ok()),
            recv(parts.accepted) -> msg => Wake::Accepted(msg.ok()),
            recv(timer) -> _ => Wake::Timer,
        };
        match wake {
            Wake::Request(Some(req)) => self.on_request(req),
            // Every handle is gone: nobody can ask for anything any more.
            Wake::Request(None) => self.stopping = true,
            Wake::Result(Some(msg)) => self.on_result(msg),
            Wake::Accepted(Some(a)) => self.on_accepted(a),
            Wake::Result(None) | Wake::Accepted(None) => {}
            Wake::Timer => {
                self.timer = None;
                self.step(Input::Tick);
            }
        }
    }

    /// Handles whatever else is ready, up to a batch, without blocking.
    fn drain(&mut self) {
        for _ in 0..BATCH {
            if self.stopping || !self.try_one_each() {
                return;
            }
        }
    }

    /// Takes at most one message from each channel; whether any came.
    fn try_one_each(&mut self) -> bool {
        let mut any = false;
        if let Ok(req) = self.parts.requests.try_recv() {
            self.on_request(req);
            any = true;
        }
        if let Ok(msg) = self.parts.results.try_recv() {
            self.on_result(msg);
            any = true;
        }
        if let Ok(a) = self.parts.accepted.try_recv() {
            self.on_accepted(a);
            any = true;
        }
        any
    }

    /// Polls for a little while before going to sleep: under churn the
    /// next message usually comes within microseconds (a callback answering
    /// on the notifier thread), and catching it awake saves a sleep and a
    /// wake-up on each side, which cost far more on a small machine.
    fn poll_briefly(&mut self) -> bool {
        for round in 0..SPIN_ROUNDS {
            if self.try_one_each() {
                return true;
            }
            if round < SPIN_ROUNDS / 2 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        false
    }

    /// The channel that fires at the Core's next deadline, re-armed only
    /// when that deadline changes.
    fn timer_channel(&mut self) -> Receiver<Instant> {
        match self.parts.core.next_deadline() {
            None => {
                self.timer = None;
                never()
            }
            Some(at) => match &self.timer {
                Some((armed, rx)) if *armed == at => rx.clone(),
                _ => {
                    let rx = self.parts.clock.wake_at(at);
                    self.timer = Some((at, rx.clone()));
                    rx
                }
            },
        }
    }

    fn on_request(&mut self, req: Request) {
        match req {
            Request::Input(input) => self.step(input),
            Request::Stop => self.stopping = true,
        }
    }

    fn on_result(&mut self, msg: DialMsg) {
        let input = self.result_input(msg);
        self.step(input);
    }

    /// The Core input for a pool answer, forgetting the dial's cancel token.
    fn result_input(&mut self, msg: DialMsg) -> Input<Stream0> {
        match msg {
            DialMsg::Address { id, addr } => Input::AddressFound { id, addr },
            DialMsg::Done {
                id,
                attempt,
                result,
            } => {
                if matches!(self.dials.get(&id), Some((a, _)) if *a == attempt) {
                    self.dials.remove(&id);
                }
                match result {
                    Ok(conn) => Input::DialSucceeded { id, attempt, conn },
                    Err(error) => Input::DialFailed { id, attempt, error },
                }
            }
        }
    }

    fn on_accepted(&mut self, a: Accepted) {
        self.step(Input::Accepted {
            conn: a.stream,
            remote: a.remote,
        });
    }

    /// Feeds one input to the Core and carries out its effects.
    /// Feeds one input to the Core, then the results of any dials it made
    /// on this thread, until nothing is left.
    fn step(&mut self, input: Input<Stream0>) {
        self.feed(input);
        while let Some(msg) = self.inline_results.pop_front() {
            let input = self.result_input(msg);
            self.feed(input);
        }
    }

    fn feed(&mut self, input: Input<Stream0>) {
        // One clock read per batch: a batch takes microseconds.
        let now = *self.now.get_or_insert_with(|| self.parts.clock.now());
        let mut effects = std::mem::take(&mut self.effects);
        self.parts.core.handle_into(now, input, &mut effects);
        for effect in effects.drain(..) {
            self.apply(effect);
        }
        self.effects = effects;
    }

    fn apply(&mut self, effect: Effect<Stream0>) {
        match effect {
            Effect::FetchAddress { id } => match &self.parts.inline {
                Some(ctx) => {
                    let addr = pool::fetch(ctx);
                    self.inline_results.push_back(DialMsg::Address { id, addr });
                }
                None => self.queue(Job::Fetch { id }),
            },
            Effect::Dial { id, attempt, addr } => match &self.parts.inline {
                Some(ctx) => {
                    let result = pool::dial(ctx, &addr, self.never_canceled.clone());
                    let msg = DialMsg::Done {
                        id,
                        attempt,
                        result,
                    };
                    self.inline_results.push_back(msg);
                }
                None => {
                    let token = CancelToken::new();
                    self.dials.insert(id, (attempt, token.clone()));
                    self.queue(Job::Dial {
                        id,
                        attempt,
                        addr,
                        token,
                    });
                }
            },
            Effect::CancelDial { id } => {
                if let Some((_, token)) = self.dials.remove(&id) {
                    token.cancel();
                }
            }
            Effect::Established {
                req,
                id,
                serial,
                addr,
                direction,
                conn,
            } => {
                let closer = conn.closer().unwrap_or_else(|e| {
                    warn!(target: LOG, "cannot get a closer for {id}: {e}; the manager cannot close it");
                    Closer::noop()
                });
                let shared = ConnShared::new(
                    id,
                    serial,
                    addr,
                    direction,
                    closer,
                    self.parts.request_tx.clone(),
                );
                self.live.insert(serial, Arc::clone(&shared));
                let conn = Conn::new(conn, shared);
                let event = match req {
                    Some(req) => Event::Connected { req, conn },
                    None => Event::Accepted { conn },
                };
                self.emit(event);
            }
            Effect::Discard { conn } => discard(conn),
            Effect::SaveAnchors(addrs) => self.save_anchors(&addrs),
            Effect::SaveBans(list) => self.save_bans(&list),
            Effect::Close { serial } => {
                if let Some(shared) = self.live.remove(&serial) {
                    shared.close_by_manager();
                }
            }
            Effect::Notify(ev) => self.emit(match ev {
                CoreEvent::Disconnected { req } => Event::Disconnected { req },
                CoreEvent::DialFailed {
                    req,
                    error,
                    retry_in,
                } => Event::DialFailed {
                    req,
                    error,
                    retry_in,
                },
                CoreEvent::InboundClosed { id, addr } => Event::InboundClosed { id, addr },
            }),
        }
    }

    /// Holds an event until the batch's state is published, so a callback
    /// never sees a connection that `snapshot()` and `req.state()` do not.
    fn emit(&mut self, event: Event) {
        self.outbox.push(event);
    }

    /// Sends the batch's events as one message: one notifier wake-up per
    /// batch, not per event.
    fn send_events(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.outbox);
        // The notifier outlives the handler, so this fails only if it died.
        if self.parts.events.send(batch).is_err() {
            debug!(target: LOG, "notifier gone; events dropped");
        }
    }

    fn queue(&mut self, job: Job) {
        // Keep order: once anything waits in the backlog, queue behind it.
        if !self.backlog.is_empty() {
            self.backlog.push_back(job);
        } else if let Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) =
            self.parts.jobs.try_send(job)
        {
            self.backlog.push_back(job);
        }
    }

    /// Moves backlogged jobs into the queue as workers free up.
    fn flush_jobs(&mut self) {
        while let Some(job) = self.backlog.pop_front() {
            if let Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) =
                self.parts.jobs.try_send(job)
            {
                self.backlog.push_front(job);
                return;
            }
        }
    }

    /// Publishes the batch's state, then releases its events.
    fn publish(&mut self, running: bool) {
        {
            let mut store = self.parts.store.lock();
            self.parts.core.publish(&mut store);
            store.running = running;
        }
        self.send_events();
    }

    fn save_bans(&self, list: &BanList) {
        let Some(path) = &self.parts.ban_file else {
            return;
        };
        let clock = &self.parts.clock;
        if let Err(e) = list.save(path, clock.now(), clock.wall()) {
            warn!(target: LOG, "cannot save bans to {}: {e}", path.display());
        }
    }

    fn save_anchors(&self, addrs: &[Addr]) {
        let Some(path) = &self.parts.anchors_file else {
            return;
        };
        if let Err(e) = save_anchors(path, addrs) {
            warn!(target: LOG, "cannot save anchors to {}: {e}", path.display());
        }
    }

    fn shut_down(&mut self) {
        self.now = None;
        let close = self.parts.close_on_stop;
        self.step(Input::Stop {
            close_established: close,
        });
        for (_, (_, token)) in self.dials.drain() {
            token.cancel();
        }
        // Jobs that never reached a worker are dropped unstarted.
        self.backlog.clear();
        // Without close_on_stop the user keeps them open; either way the
        // manager lets go.
        self.live.clear();
        self.publish(false);
    }
}
