//! The connection-handler thread: the thin shell around the
//! [`Core`](crate::core::Core). It turns channel messages into Core
//! inputs, carries out the Core's effects, and publishes the Core's
//! changes once per batch.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{never, select, Receiver, Sender};
use log::{debug, error, warn};
use parking_lot::Mutex;

use crate::addr::Addr;
use crate::core::info::Trimmed;
use crate::core::{Changes, Core, CoreEvent, Effect, Input, ReqSpec};
use crate::idmap::{IdHasher, IdMap};
use crate::limits;
use crate::policy::tags::TagError;
use crate::runtime::clock::Clock;
use crate::runtime::conn::{Conn, ConnShared};
use crate::runtime::event::Event;
use crate::runtime::jobqueue::JobSender;
use crate::runtime::msg::{Accepted, Msg, Stream0};
use crate::runtime::notifier::Batch;
use crate::runtime::persist::SaveJob;
use crate::runtime::pool::{self, DialMsg, Job, Pool, WorkerCtx};
use crate::runtime::reqtable::ReqTable;
use crate::runtime::request::ReqView;
use crate::runtime::snapshot::SnapshotStore;
use crate::runtime::spin;
use crate::transport::dial::CancelToken;
use crate::transport::stream::discard;
use crate::types::{later, ConnId, ConnState};

const LOG: &str = "connmgr";

/// Messages that drain in one wake-up before the state is published.
const BATCH: usize = 4096;

/// The fewest polls before the handler sleeps (see [`spin::Poller`]).
const POLL_ROUNDS: u32 = 64;

/// The channels and shared state the handler works with.
pub(crate) struct HandlerParts {
    pub(crate) core: Core,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) requests: Receiver<Msg>,
    pub(crate) request_tx: Sender<Msg>,
    pub(crate) results: Receiver<DialMsg>,
    /// Kept so `results` never reads as disconnected (which would spin
    /// the select) when the pool is empty of senders.
    pub(crate) _results_tx: Sender<DialMsg>,
    pub(crate) accepted: Receiver<Accepted>,
    /// Kept for the same reason when there are no listeners.
    pub(crate) _accepted_tx: Sender<Accepted>,
    pub(crate) jobs: JobSender<Job>,
    pub(crate) events: Sender<Batch>,
    /// Events sent to the notifier and not yet delivered; shared with it.
    pub(crate) undelivered: Arc<AtomicUsize>,
    /// Most undelivered events; past it new ones are dropped.
    pub(crate) max_undelivered: usize,
    pub(crate) store: Arc<Mutex<SnapshotStore>>,
    pub(crate) close_on_stop: bool,
    /// Set when dials run on this thread (a dialer that never blocks, or
    /// `inline_dial`).
    pub(crate) inline_dial: Option<Arc<WorkerCtx>>,
    /// Set when the address source runs on this thread.
    pub(crate) inline_fetch: Option<Arc<WorkerCtx>>,
    /// The dialer threads, to replace one stuck past a deadline (`None`
    /// when everything runs inline).
    pub(crate) pool: Option<Arc<Pool>>,
    /// Where saves go, if anything is persisted.
    pub(crate) persist: Option<PersistTx>,
}

/// The persistence thread's queue, and which files it keeps.
pub(crate) struct PersistTx {
    pub(crate) tx: Sender<SaveJob>,
    pub(crate) bans: bool,
    pub(crate) anchors: bool,
}

/// What woke the handler.
enum Wake {
    Request(Option<Msg>),
    Result(Option<DialMsg>),
    Accepted(Option<Accepted>),
    Timer,
}

type DialKey = (ConnId, u64);

/// A decaying tag registration's outcome.
type Registered = Result<(), TagError>;

/// The handler's state; made by the manager, which primes the Core
/// through it before the thread starts.
pub(crate) struct Handler {
    parts: HandlerParts,
    /// Jobs the bounded queue had no room for, oldest first.
    backlog: VecDeque<Job>,
    /// Cancel tokens of dials in flight, by request and attempt, with the
    /// flag a worker sets when it takes the job.
    dials: HashMap<DialKey, (CancelToken, Arc<AtomicBool>), BuildHasherDefault<IdHasher>>,
    /// What closes each established connection, by serial.
    live: IdMap<u64, Arc<ConnShared>>,
    /// The request handles someone outside may hold.
    reqs: ReqTable,
    effects: Vec<Effect<Stream0>>,
    changes: Changes,
    /// Answers of dials made on this thread, not yet fed to the Core.
    inline_results: VecDeque<DialMsg>,
    /// The token of inline dials, which finish before anyone could cancel.
    never_canceled: CancelToken,
    /// Events of the current batch, sent after it is published.
    outbox: Vec<Event>,
    /// Answers to send after the batch is published.
    replies: Vec<(Sender<bool>, bool)>,
    /// Registration answers to send after the batch is published.
    registrations: Vec<(Sender<Registered>, Registered)>,
    /// Callers waiting for this batch's trim, and what it closed.
    trim_waiters: Vec<Sender<Trimmed>>,
    trimmed: Vec<ConnId>,
    /// The time of the current batch, read once when first needed.
    now: Option<Instant>,
    timer: Option<(Instant, Receiver<Instant>)>,
    /// How long to poll before sleeping, learnt from the gaps.
    poller: spin::Poller,
    stopping: bool,
    /// Whether the last batch had to be cut (warn once per episode).
    overflowing: bool,
}

impl Handler {
    pub(crate) fn new(parts: HandlerParts) -> Self {
        Handler {
            parts,
            backlog: VecDeque::new(),
            dials: HashMap::default(),
            live: IdMap::default(),
            reqs: ReqTable::default(),
            effects: Vec::new(),
            changes: Changes::default(),
            inline_results: VecDeque::new(),
            never_canceled: CancelToken::new(),
            outbox: Vec::new(),
            replies: Vec::new(),
            registrations: Vec::new(),
            trim_waiters: Vec::new(),
            trimmed: Vec::new(),
            now: None,
            timer: None,
            poller: spin::Poller::new(POLL_ROUNDS),
            stopping: false,
            overflowing: false,
        }
    }

    /// Feeds inputs before the thread runs, and publishes their changes,
    /// so callers see their effect as soon as the manager exists.
    pub(crate) fn prime(&mut self, inputs: impl IntoIterator<Item = Input<Stream0>>) {
        for input in inputs {
            self.step(input);
        }
        self.publish(false);
        self.now = None;
    }

    /// Runs until a [`Msg::Stop`] (or until every request sender is
    /// gone), then shuts the Core down.
    pub(crate) fn run(mut self) {
        while !self.stopping {
            self.now = None;
            if let Some(polled) = self.poll_briefly() {
                self.wait_and_handle(polled);
            }
            self.drain();
            self.trim_for_waiters();
            self.flush_jobs();
            self.publish(true);
        }
        self.shut_down();
    }

    /// Blocks until one message or the timer arrives, and handles it;
    /// `polled` is when the poll before the sleep began.
    fn wait_and_handle(&mut self, polled: Instant) {
        let timer = self.timer_channel();
        let parts = &self.parts;
        let wake = select! {
            recv(parts.requests) -> msg => Wake::Request(msg.ok()),
            recv(parts.results) -> msg => Wake::Result(msg.ok()),
            recv(parts.accepted) -> msg => Wake::Accepted(msg.ok()),
            recv(timer) -> _ => Wake::Timer,
        };
        self.poller.slept_since(polled);
        match wake {
            Wake::Request(Some(msg)) => self.on_msg(msg),
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
        if let Ok(msg) = self.parts.requests.try_recv() {
            self.on_msg(msg);
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

    /// Polls for a little while before going to sleep (see
    /// [`spin`](crate::runtime::spin)): under churn the next message is
    /// usually a callback answering on the notifier thread.
    /// Returns when the window opened if it caught nothing.
    fn poll_briefly(&mut self) -> Option<Instant> {
        let mut window = self.poller.open();
        loop {
            if self.try_one_each() {
                return None;
            }
            if !window.pause() {
                return Some(window.opened());
            }
        }
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

    fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Input(input) => self.step(input),
            Msg::Connect(req, spec) => {
                self.reqs.submitted(spec.id, req);
                self.step(Input::Connect(spec));
            }
            Msg::Barrier { input, ask, reply } => {
                if let Some(input) = input {
                    self.step(input);
                }
                let answer = ask.is_some_and(|p| self.parts.core.is_protected(&p, None));
                self.replies.push((reply, answer));
            }
            Msg::Trim(reply) => self.trim_waiters.push(reply),
            Msg::Register(spec, reply) => {
                self.step(Input::RegisterDecaying(spec));
                let outcome = self.parts.core.take_registration().unwrap_or(Ok(()));
                self.registrations.push((reply, outcome));
            }
            Msg::Start(anchors) => {
                self.step(Input::Anchors(anchors));
                self.step(Input::Start);
            }
            Msg::Stop => self.stopping = true,
        }
    }

    /// Runs one trim for every caller that asked in this batch: callers
    /// arriving together share it, as libp2p's `TrimOpenConns` callers do.
    fn trim_for_waiters(&mut self) {
        if self.stopping {
            // Nothing trims any more: the waiters hear the manager stopped.
            self.trim_waiters.clear();
        } else if !self.trim_waiters.is_empty() {
            self.step(Input::Trim);
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
                self.dials.remove(&(id, attempt));
                match result {
                    Ok(conn) => Input::DialSucceeded {
                        id,
                        attempt,
                        remote: conn.remote_ip(),
                        conn,
                    },
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
            Effect::FetchAddress { id } => match &self.parts.inline_fetch {
                Some(ctx) => {
                    let addr = pool::fetch(ctx);
                    self.inline_results.push_back(DialMsg::Address { id, addr });
                }
                None => self.queue(Job::Fetch { id }),
            },
            Effect::Dial {
                id,
                attempt,
                addr,
                deadline,
            } => self.dial(id, attempt, addr, deadline),
            Effect::CancelDial { id, attempt } => {
                if let Some((token, _)) = self.dials.remove(&(id, attempt)) {
                    token.cancel();
                }
            }
            Effect::DialExpired { id, attempt } => {
                if let Some((token, taken)) = self.dials.remove(&(id, attempt)) {
                    token.cancel();
                    // A job still queued expires without holding a thread:
                    // a worker that takes it sees the cancel and moves on.
                    if let (Some(pool), true) = (&self.parts.pool, taken.load(Ordering::Acquire)) {
                        pool.replace_stuck();
                    }
                }
            }
            Effect::Established {
                req,
                id,
                serial,
                addr,
                direction,
                conn,
            } => self.hand_over(req, id, serial, addr, direction, conn),
            Effect::Discard { conn } => discard(conn),
            // Kept for this batch's waiters; a trim nobody waits for
            // (`request_trim`) answers nobody.
            Effect::TrimDone { closed } if !self.trim_waiters.is_empty() => self.trimmed = closed,
            Effect::TrimDone { .. } => {}
            Effect::SaveAnchors(addrs) => self.save(|p| p.anchors, || SaveJob::Anchors(addrs)),
            Effect::SaveBans(list) => {
                let (now, wall) = (self.parts.clock.now(), self.parts.clock.wall());
                self.save(|p| p.bans, || SaveJob::Bans { list, now, wall });
            }
            Effect::Close { serial } => {
                if let Some(shared) = self.live.remove(&serial) {
                    shared.close_by_manager();
                }
            }
            Effect::Notify(ev) => {
                let event = match ev {
                    CoreEvent::Disconnected { req, reason } => Event::Disconnected {
                        req: self.reqs.handle_for(&req),
                        reason,
                    },
                    CoreEvent::DialFailed {
                        req,
                        error,
                        retry_in,
                    } => Event::DialFailed {
                        req: self.reqs.handle_for(&req),
                        error,
                        retry_in,
                    },
                    CoreEvent::InboundClosed { id, addr, reason } => {
                        Event::InboundClosed { id, addr, reason }
                    }
                };
                self.outbox.push(event);
            }
        }
    }

    fn dial(&mut self, id: ConnId, attempt: u64, addr: Addr, deadline: Option<Instant>) {
        // The Core's deadline is on the injected clock; the dialer's is
        // the same time left, on the real one.
        let now = self.now.unwrap_or_else(|| self.parts.clock.now());
        let left = deadline.map_or(limits::MAX_DURATION, |d| d.saturating_duration_since(now));
        let deadline = later(Instant::now(), left);
        match &self.parts.inline_dial {
            Some(ctx) => {
                let result = pool::dial(ctx, &addr, deadline, self.never_canceled.clone());
                let msg = DialMsg::Done {
                    id,
                    attempt,
                    result,
                };
                self.inline_results.push_back(msg);
            }
            None => {
                let token = CancelToken::new();
                let taken = Arc::new(AtomicBool::new(false));
                self.dials
                    .insert((id, attempt), (token.clone(), Arc::clone(&taken)));
                self.queue(Job::Dial {
                    id,
                    attempt,
                    addr,
                    deadline,
                    token,
                    taken,
                });
            }
        }
    }

    /// Wraps an established stream in a [`Conn`] and queues its event.
    fn hand_over(
        &mut self,
        req: Option<ReqSpec>,
        id: ConnId,
        serial: u64,
        addr: Addr,
        direction: crate::types::Direction,
        conn: Stream0,
    ) {
        let closer = match conn.closer() {
            Ok(closer) => closer,
            Err(e) => {
                // A connection the manager could not close would escape
                // stop, trims and bans: close it now instead, and let the
                // Core count it closed (the user sees the disconnect).
                error!(target: LOG, "cannot keep connection {id} to {addr}: no closer ({e}); closing it");
                drop(conn);
                let _ = self
                    .parts
                    .request_tx
                    .send(Msg::Input(Input::Closed { id, serial }));
                return;
            }
        };
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
            Some(spec) => Event::Connected {
                req: self.reqs.handle_for(&spec),
                conn,
            },
            None => Event::Accepted { conn },
        };
        self.outbox.push(event);
    }

    /// Queues a file write, if that file is kept.
    fn save(&self, kept: impl Fn(&PersistTx) -> bool, job: impl FnOnce() -> SaveJob) {
        if let Some(p) = self.parts.persist.as_ref().filter(|p| kept(p)) {
            // The writer outlives the handler, so this fails only if it died.
            if p.tx.send(job()).is_err() {
                warn!(target: LOG, "persistence thread gone; a save was dropped");
            }
        }
    }

    /// Sends the batch's events as one message: one notifier wake-up per
    /// batch, not per event.
    fn send_events(&mut self) {
        for (reply, answer) in self.replies.drain(..) {
            let _ = reply.send(answer);
        }
        for (reply, outcome) in self.registrations.drain(..) {
            let _ = reply.send(outcome);
        }
        if !self.trim_waiters.is_empty() {
            let closed = std::mem::take(&mut self.trimmed);
            for reply in self.trim_waiters.drain(..) {
                let _ = reply.send(Trimmed {
                    closed: closed.clone(),
                });
            }
        }
        if self.outbox.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.outbox);
        self.bound_batch(&mut batch);
        if batch.is_empty() {
            return;
        }
        self.reqs.lend(&batch);
        // The notifier outlives the handler, so this fails only if it died.
        if self.parts.events.send(Batch::counted(batch)).is_err() {
            debug!(target: LOG, "notifier gone; events dropped");
        }
    }

    /// Cuts `batch` to what fits behind a slow callback: a connection in
    /// a dropped event closes as its handle drops, and the Core hears of
    /// it like any close.
    fn bound_batch(&mut self, batch: &mut Vec<Event>) {
        let queued = self.parts.undelivered.load(Ordering::Acquire);
        let room = self.parts.max_undelivered.saturating_sub(queued);
        if batch.len() > room {
            if !self.overflowing {
                warn!(
                    target: LOG,
                    "{queued} events wait for a callback that does not return; dropping {} (connections in them close)",
                    batch.len() - room
                );
            }
            self.overflowing = true;
            batch.truncate(room);
        } else {
            self.overflowing = false;
        }
        self.parts
            .undelivered
            .fetch_add(batch.len(), Ordering::AcqRel);
    }

    fn queue(&mut self, job: Job) {
        // Keep order: once anything waits in the backlog, queue behind it.
        if !self.backlog.is_empty() {
            self.backlog.push_back(job);
        } else if let Err(job) = self.parts.jobs.try_push(job) {
            self.backlog.push_back(job);
        }
    }

    /// Moves backlogged jobs into the queue as workers free up.
    fn flush_jobs(&mut self) {
        while let Some(job) = self.backlog.pop_front() {
            if let Err(job) = self.parts.jobs.try_push(job) {
                self.backlog.push_front(job);
                return;
            }
        }
    }

    /// Publishes the Core's changes of this batch, then releases its
    /// events and answers.
    fn publish(&mut self, running: bool) {
        self.parts.core.take_changes(&mut self.changes);
        let now = self.now.unwrap_or_else(|| self.parts.clock.now());
        let clock_ref = (now, self.parts.clock.wall());
        {
            let mut store = self.parts.store.lock();
            store.apply(&mut self.changes);
            store.running = running;
            store.clock_ref = Some(clock_ref);
        }
        self.reqs
            .release(self.parts.undelivered.load(Ordering::Acquire));
        self.reqs.publish(&self.changes);
        self.send_events();
    }

    fn shut_down(&mut self) {
        self.now = None;
        let close = self.parts.close_on_stop;
        self.step(Input::Stop {
            close_established: close,
        });
        for (_, (token, _)) in self.dials.drain() {
            token.cancel();
        }
        // Jobs that never reached a worker are dropped unstarted.
        self.backlog.clear();
        // Without close_on_stop the user keeps them open; either way the
        // manager lets go.
        self.live.clear();
        self.publish(false);
        self.refuse_the_rest();
    }

    /// Answers every message that came too late: requests end canceled
    /// and leave the snapshot. Taken under the store's lock, which callers
    /// hold while sending a request, so nothing can slip in after it.
    fn refuse_the_rest(&mut self) {
        let mut store = self.parts.store.lock();
        store.accepting = false;
        while let Ok(msg) = self.parts.requests.try_recv() {
            match msg {
                Msg::Connect(req, spec) => {
                    store.remove(spec.id);
                    req.publish(ReqView {
                        state: ConnState::Canceled,
                        retries: 0,
                    });
                }
                Msg::Barrier { reply, .. } => drop(reply),
                Msg::Input(Input::Accepted { conn, .. }) => discard(conn),
                _ => {}
            }
        }
    }
}
