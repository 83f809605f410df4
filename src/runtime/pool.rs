//! The blocking dialer pool: a fixed set of worker threads that ask the
//! address source for addresses and dial, so that neither ever blocks the
//! handler thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use log::{error, warn};
use parking_lot::Mutex;

use crate::addr::Addr;
use crate::guard::panic_message;
use crate::runtime::gate::{self, Gate};
use crate::runtime::jobqueue::JobReceiver;
use crate::runtime::source::AddressSource;
use crate::transport::dial::{CancelToken, Dial, DialContext};
use crate::transport::stream::Stream;
use crate::types::later;
use crate::types::ConnId;
use crate::types::DialError;

const LOG: &str = "connmgr";

/// A job this short suggests the next one comes soon and is short too:
/// the worker then polls a little before it sleeps.
const QUICK_JOB: Duration = Duration::from_micros(50);

/// Work for a pool thread.
pub(crate) enum Job {
    Fetch {
        id: ConnId,
    },
    Dial {
        id: ConnId,
        attempt: u64,
        addr: Addr,
        deadline: Instant,
        token: CancelToken,
        /// Set when a worker takes the job (so a stuck thread is one
        /// that took it).
        taken: Arc<AtomicBool>,
    },
}

/// A pool thread's answer.
pub(crate) enum DialMsg {
    Address {
        id: ConnId,
        addr: Option<Addr>,
    },
    Done {
        id: ConnId,
        attempt: u64,
        result: Result<Box<dyn Stream>, DialError>,
    },
}

/// What every worker shares (and the handler, when it dials inline).
pub(crate) struct WorkerCtx {
    dialer: Arc<dyn Dial>,
    gate: Option<Gate>,
    source: Option<Arc<dyn AddressSource>>,
    results: Sender<DialMsg>,
}

impl WorkerCtx {
    pub(crate) fn new(
        dialer: Arc<dyn Dial>,
        gate: Option<Gate>,
        source: Option<Arc<dyn AddressSource>>,
        results: Sender<DialMsg>,
    ) -> Arc<Self> {
        Arc::new(WorkerCtx {
            dialer,
            gate,
            source,
            results,
        })
    }
}

/// The dialer threads: a fixed number, plus replacements for threads a
/// dialer holds past its deadline. Each replacement leaves one "retire"
/// ticket, and the next worker to finish a job takes it and exits, so the
/// pool shrinks back once the stuck dial returns.
pub(crate) struct Pool {
    jobs: JobReceiver<Job>,
    ctx: Arc<WorkerCtx>,
    /// Most replacements alive at once (beyond the fixed size).
    max_spares: usize,
    retire: Arc<AtomicUsize>,
    /// Each worker with a channel its thread drops on exit (so a join can
    /// wait for it with a deadline); `None` once joining began.
    threads: Mutex<Option<Vec<Worker>>>,
    /// The ids of the manager's own threads, which `stop` must not wait
    /// for from inside them.
    ids: Arc<Mutex<Vec<ThreadId>>>,
    spawned: AtomicUsize,
}

struct Worker {
    thread: JoinHandle<()>,
    gone: Receiver<()>,
}

impl Pool {
    pub(crate) fn new(
        jobs: JobReceiver<Job>,
        ctx: Arc<WorkerCtx>,
        max_spares: usize,
        ids: Arc<Mutex<Vec<ThreadId>>>,
    ) -> Arc<Self> {
        Arc::new(Pool {
            jobs,
            ctx,
            max_spares,
            retire: Arc::new(AtomicUsize::new(0)),
            threads: Mutex::new(Some(Vec::new())),
            ids,
            spawned: AtomicUsize::new(0),
        })
    }

    /// Starts `n` workers; they exit when the job queue's sender is gone
    /// (or when they take a retire ticket).
    pub(crate) fn spawn(&self, n: usize) -> std::io::Result<()> {
        for _ in 0..n {
            self.spawn_one()?;
        }
        Ok(())
    }

    fn spawn_one(&self) -> std::io::Result<()> {
        let mut threads = self.threads.lock();
        let Some(threads) = threads.as_mut() else {
            return Ok(()); // stopping: no new threads
        };
        let n = self.spawned.fetch_add(1, Ordering::Relaxed);
        let (ctx, jobs) = (Arc::clone(&self.ctx), self.jobs.clone());
        let retire = Arc::clone(&self.retire);
        let (alive, gone) = crossbeam_channel::bounded::<()>(0);
        let thread = thread::Builder::new()
            .name(format!("connmgr-dial-{n}"))
            .spawn(move || {
                let _alive = alive;
                worker(&ctx, &jobs, &retire);
            })?;
        // Workers that retired leave the lists, so replacements over a
        // long run cost nothing that stays.
        let (done, running): (Vec<Worker>, Vec<Worker>) = std::mem::take(threads)
            .into_iter()
            .partition(|w| w.thread.is_finished());
        *threads = running;
        let mut ids = self.ids.lock();
        ids.retain(|id| !done.iter().any(|w| w.thread.thread().id() == *id));
        ids.push(thread.thread().id());
        drop(ids);
        for w in done {
            let _ = w.thread.join();
        }
        threads.push(Worker { thread, gone });
        Ok(())
    }

    /// A dial passed its deadline and its thread may be stuck in the
    /// dialer: start a replacement, unless `max_spares` already run.
    pub(crate) fn replace_stuck(&self) {
        let took = self
            .retire
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                (r < self.max_spares).then_some(r + 1)
            });
        if took.is_err() {
            warn!(target: LOG, "{} dialer threads already replaced; not starting another", self.max_spares);
            return;
        }
        if let Err(e) = self.spawn_one() {
            self.retire.fetch_sub(1, Ordering::AcqRel);
            warn!(target: LOG, "cannot start a replacement dialer thread: {e}");
        }
    }

    /// Waits until `grace` from now for every worker but `me` to exit (the
    /// job queue must be closed first), joins those that did and leaves
    /// the rest, stuck in a dialer that ignores its cancel, to finish
    /// alone. Returns how many were left.
    pub(crate) fn join(&self, grace: Duration, me: ThreadId) -> usize {
        let threads = self.threads.lock().take().unwrap_or_default();
        let end = later(Instant::now(), grace);
        let mut left = 0;
        for w in threads {
            if w.thread.thread().id() == me {
                continue;
            }
            // Nothing is ever sent: disconnected means the thread let go
            // of its end on the way out.
            match w.gone.recv_deadline(end) {
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = w.thread.join();
                }
                _ => left += 1,
            }
        }
        if left > 0 {
            warn!(target: LOG, "{left} dialer thread(s) still in a dialer after the stop grace; leaving them to finish alone");
        }
        left
    }
}

fn worker(ctx: &WorkerCtx, jobs: &JobReceiver<Job>, retire: &AtomicUsize) {
    let mut quick = false;
    while let Some(job) = jobs.take(quick) {
        let began = Instant::now();
        let msg = match job {
            Job::Fetch { id } => DialMsg::Address {
                id,
                addr: fetch(ctx),
            },
            Job::Dial {
                id,
                attempt,
                addr,
                deadline,
                token,
                taken,
            } => {
                taken.store(true, Ordering::Release);
                DialMsg::Done {
                    id,
                    attempt,
                    result: dial(ctx, &addr, deadline, token),
                }
            }
        };
        quick = began.elapsed() < QUICK_JOB;
        if ctx.results.send(msg).is_err() {
            return; // the handler is gone: the result (and any stream) is dropped
        }
        let ticket = retire.fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1));
        if ticket.is_ok() {
            return; // a replacement took this thread's place
        }
    }
}

/// Asks the address source, surviving its panics.
pub(crate) fn fetch(ctx: &WorkerCtx) -> Option<Addr> {
    let source = ctx.source.as_ref()?;
    match catch_unwind(AssertUnwindSafe(|| source.next_address())) {
        Ok(addr) => addr,
        Err(panic) => {
            error!(target: LOG, "address source panicked: {}", panic_message(&*panic));
            None
        }
    }
}

/// Runs one dial with its gate and deadline, surviving panics.
pub(crate) fn dial(
    ctx: &WorkerCtx,
    addr: &Addr,
    deadline: Instant,
    token: CancelToken,
) -> Result<Box<dyn Stream>, DialError> {
    if token.is_canceled() {
        return Err(DialError::Canceled);
    }
    gate::check(ctx.gate.as_ref(), addr).map_err(DialError::Rejected)?;
    let dctx = DialContext::new(deadline, token);
    match catch_unwind(AssertUnwindSafe(|| ctx.dialer.dial(addr, &dctx))) {
        Ok(result) => result,
        Err(panic) => {
            let msg = panic_message(&*panic);
            warn!(target: LOG, "dialer panicked dialing {addr}: {msg}");
            Err(DialError::Panicked(msg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::jobqueue::JobQueue;
    use crate::types::ConnId;

    fn live(pool: &Pool) -> usize {
        let threads = pool.threads.lock();
        threads
            .as_ref()
            .map_or(0, |t| t.iter().filter(|w| !w.thread.is_finished()).count())
    }

    /// Replacements for stuck threads are bounded, the pool shrinks back
    /// once the stuck dial returns, and join waits only for the grace.
    #[test]
    fn replacements_are_bounded_and_retire() {
        let (release_tx, release) = crossbeam_channel::unbounded::<()>();
        let dialer = move |_: &Addr, _: &DialContext| -> Result<Box<dyn Stream>, DialError> {
            let _ = release.recv_timeout(Duration::from_secs(30));
            Err(DialError::Refused)
        };
        let (results_tx, results) = crossbeam_channel::unbounded();
        let ctx = WorkerCtx::new(Arc::new(dialer), None, None, results_tx);
        let (jobs_tx, jobs) = JobQueue::bounded(16);
        let pool = Pool::new(jobs, ctx, 1, Arc::new(Mutex::new(Vec::new())));
        pool.spawn(1).unwrap();
        let job = |n| Job::Dial {
            id: ConnId(n),
            attempt: 1,
            addr: "10.0.0.1:1".parse().unwrap(),
            deadline: Instant::now(),
            token: CancelToken::new(),
            taken: Arc::new(AtomicBool::new(false)),
        };
        jobs_tx.try_push(job(1)).ok().unwrap();
        for _ in 0..3 {
            pool.replace_stuck();
        }
        assert_eq!(live(&pool), 2, "one replacement at most");
        // The replacement takes the next job while the first is stuck.
        jobs_tx.try_push(job(3)).ok().unwrap();
        release_tx.send(()).unwrap();
        release_tx.send(()).unwrap();
        for _ in 0..2 {
            results.recv_timeout(Duration::from_secs(30)).unwrap();
        }
        // One of the two took the retire ticket.
        let end = Instant::now() + Duration::from_secs(30);
        while live(&pool) != 1 && Instant::now() < end {
            thread::yield_now();
        }
        assert_eq!(live(&pool), 1);
        // A stuck dial holds join only for the grace.
        jobs_tx.try_push(job(5)).ok().unwrap();
        drop(jobs_tx);
        let me = thread::current().id();
        assert_eq!(pool.join(Duration::from_millis(50), me), 1);
        drop(release_tx);
    }
}
