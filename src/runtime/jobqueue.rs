//! The queue between the handler and the dialer threads.
//!
//! A channel wakes a parked receiver on every send, and its receivers spin
//! before they park; with eight workers on a small machine that is a
//! thread wake-up per job and workers burning the CPU the handler needs.
//! This queue wakes a worker only when no awake worker is free to take the
//! job: a worker that finishes a job takes the next one without sleeping,
//! so an instant dialer's jobs run one after another on one hot thread,
//! and a worker that takes a job while others still wait wakes the next
//! worker (a chain), so blocking dials still spread over the whole pool.
//! A worker whose last job was quick polls briefly before it sleeps (the
//! next quick job usually comes within microseconds, and catching it
//! awake saves a wake-up on each side); after a slow job it sleeps at
//! once, since a blocking dialer gains nothing from a worker spinning.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::runtime::spin;

/// Polls a worker makes before sleeping after a quick job (see
/// [`spin::Window`]). A count with no time part: the workers outnumber the
/// CPUs, so their polls are mostly yields to one another, and a time
/// part showed no gain in w12.
const LINGER_ROUNDS: u32 = 32;

/// A bounded multi-consumer queue with a single producer.
pub(crate) struct JobQueue<T> {
    state: Mutex<State<T>>,
    wake: Condvar,
    capacity: usize,
}

struct State<T> {
    jobs: VecDeque<T>,
    /// Workers waiting for a wake-up token.
    idle: usize,
    /// Workers awake and not in a job (those woken but not yet running
    /// included): the ones that will look at the queue before sleeping.
    searching: usize,
    /// Wake-ups issued and not yet taken by a waiting worker (so a
    /// spurious or stolen wake-up never loses one).
    tokens: usize,
    closed: bool,
}

impl<T> JobQueue<T> {
    /// A queue holding at most `capacity` jobs (at least one).
    pub(crate) fn bounded(capacity: usize) -> (JobSender<T>, JobReceiver<T>) {
        let queue = Arc::new(JobQueue {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                idle: 0,
                searching: 0,
                tokens: 0,
                closed: false,
            }),
            wake: Condvar::new(),
            capacity: capacity.max(1),
        });
        (JobSender(Arc::clone(&queue)), JobReceiver(queue))
    }

    /// Wakes a sleeping worker for waiting jobs, unless an awake one will
    /// see them anyway.
    fn wake_if_none_searching(&self, s: &mut State<T>) {
        if s.searching == 0 && s.idle > s.tokens {
            s.tokens += 1;
            s.searching += 1;
            self.wake.notify_one();
        }
    }
}

/// The handler's end; dropping it closes the queue (workers finish what
/// is queued, then exit).
pub(crate) struct JobSender<T>(Arc<JobQueue<T>>);

impl<T> JobSender<T> {
    /// Queues `job`, or gives it back when the queue is full or closed.
    pub(crate) fn try_push(&self, job: T) -> Result<(), T> {
        let q = &self.0;
        let mut s = q.state.lock();
        if s.closed || s.jobs.len() >= q.capacity {
            return Err(job);
        }
        s.jobs.push_back(job);
        q.wake_if_none_searching(&mut s);
        Ok(())
    }
}

impl<T> Drop for JobSender<T> {
    fn drop(&mut self) {
        self.0.state.lock().closed = true;
        self.0.wake.notify_all();
    }
}

/// A worker's end (cloned for each worker).
pub(crate) struct JobReceiver<T>(Arc<JobQueue<T>>);

impl<T> Clone for JobReceiver<T> {
    fn clone(&self) -> Self {
        JobReceiver(Arc::clone(&self.0))
    }
}

impl<T> JobReceiver<T> {
    /// Takes the next job, sleeping while there is none; `None` once the
    /// queue is closed and empty. A worker calls it between jobs, so it
    /// counts as searching until it gets one; with `linger` it polls
    /// [`LINGER_ROUNDS`] times before sleeping.
    pub(crate) fn take(&self, linger: bool) -> Option<T> {
        let q = &self.0;
        let mut s = q.state.lock();
        s.searching += 1;
        let mut window = linger.then(|| spin::Window::open(Duration::ZERO, LINGER_ROUNDS));
        loop {
            if let Some(job) = s.jobs.pop_front() {
                s.searching -= 1;
                if !s.jobs.is_empty() {
                    q.wake_if_none_searching(&mut s);
                }
                return Some(job);
            }
            if s.closed {
                s.searching -= 1;
                return None;
            }
            // Still counted as searching while it polls, so a push
            // meanwhile wakes nobody: the queue is looked at again after
            // every unlocked pause, the last one included, or such a job
            // would wait for the next push.
            if let Some(w) = window.as_mut() {
                if !MutexGuard::unlocked(&mut s, || w.pause()) {
                    window = None;
                }
                continue;
            }
            s.searching -= 1;
            s.idle += 1;
            while s.tokens == 0 && !s.closed {
                q.wake.wait(&mut s);
            }
            s.idle -= 1;
            if s.tokens > 0 {
                // The waker counted this worker as searching already.
                s.tokens -= 1;
            } else {
                s.searching += 1;
            }
        }
    }

    /// Jobs waiting (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.state.lock().jobs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;
    use std::time::{Duration, Instant};

    /// Starts `n` workers, each running `work(its number, the receiver)`.
    fn workers<R: Send + 'static>(
        rx: &JobReceiver<usize>,
        n: usize,
        work: impl Fn(usize, &JobReceiver<usize>) -> R + Send + Sync + 'static,
    ) -> Vec<thread::JoinHandle<R>> {
        let work = Arc::new(work);
        (0..n)
            .map(|k| {
                let (rx, work) = (rx.clone(), Arc::clone(&work));
                thread::spawn(move || work(k, &rx))
            })
            .collect()
    }

    /// Starts `n` workers that take jobs until the queue closes, worker
    /// `k` lingering if `linger(k)`; the count of jobs they took.
    fn counting_workers(
        rx: &JobReceiver<usize>,
        n: usize,
        linger: fn(usize) -> bool,
    ) -> (Arc<AtomicUsize>, Vec<thread::JoinHandle<()>>) {
        let taken = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&taken);
        let handles = workers(rx, n, move |k, rx| {
            while rx.take(linger(k)).is_some() {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        (taken, handles)
    }

    /// Waits until more than `n` jobs were taken; fails at `end`.
    fn wait_taken(taken: &AtomicUsize, n: usize, end: Instant) {
        while taken.load(Ordering::SeqCst) <= n {
            assert!(Instant::now() < end, "job {n} was never taken");
            thread::yield_now();
        }
    }

    #[test]
    fn full_and_closed_queues_give_the_job_back() {
        let (tx, rx) = JobQueue::bounded(2);
        assert!(tx.try_push(1).is_ok());
        assert!(tx.try_push(2).is_ok());
        assert_eq!(tx.try_push(3), Err(3));
        assert_eq!(rx.len(), 2);
        assert_eq!(rx.take(false), Some(1));
        drop(tx);
        // What was queued is still handed out, then the end.
        assert_eq!(rx.take(false), Some(2));
        assert_eq!(rx.take(false), None);
    }

    /// Blocking jobs spread over the workers: eight jobs that each wait
    /// for all eight to have started can only finish if every one got
    /// its own worker.
    #[test]
    fn blocking_jobs_get_a_worker_each() {
        let (tx, rx) = JobQueue::<usize>::bounded(64);
        let started = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&started);
        let workers = workers(&rx, 8, move |_, rx| {
            let mut done = 0;
            while rx.take(false).is_some() {
                seen.fetch_add(1, Ordering::SeqCst);
                let end = Instant::now() + Duration::from_secs(30);
                while seen.load(Ordering::SeqCst) < 8 && Instant::now() < end {
                    thread::yield_now();
                }
                done += 1;
            }
            done
        });
        for n in 0..8 {
            tx.try_push(n).unwrap();
        }
        drop(tx);
        let done: Vec<usize> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        assert_eq!(started.load(Ordering::SeqCst), 8);
        assert!(
            done.iter().all(|&d| d == 1),
            "each worker took one job: {done:?}"
        );
    }

    /// Jobs pushed one at a time while every worker sleeps are all taken:
    /// no wake-up is lost between a push and a worker going to sleep.
    #[test]
    fn no_job_is_left_behind() {
        let (tx, rx) = JobQueue::<usize>::bounded(16);
        // Half the workers linger before sleeping, half sleep at once.
        let (taken, workers) = counting_workers(&rx, 4, |k| k % 2 == 0);
        let end = Instant::now() + Duration::from_secs(60);
        for n in 0..20_000 {
            while tx.try_push(n).is_err() {
                assert!(Instant::now() < end, "workers stopped taking jobs");
                thread::yield_now();
            }
            // Now and then wait for the queue to empty, so that workers
            // go to sleep and must be woken for the next job.
            if n % 100 == 0 {
                wait_taken(&taken, n, end);
            }
        }
        drop(tx);
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(taken.load(Ordering::SeqCst), 20_000);
    }

    /// A job pushed at any point of a lone worker's linger is taken with
    /// no later push to wake the worker: a push that lands while the
    /// worker is between its last poll and its sleep is not left waiting.
    #[test]
    fn a_push_during_the_linger_is_taken() {
        let (tx, rx) = JobQueue::<usize>::bounded(4);
        let (taken, workers) = counting_workers(&rx, 1, |_| true);
        let end = Instant::now() + Duration::from_secs(60);
        for n in 0..3_000 {
            // Lands the push at a different point of the linger each time.
            let wait = Instant::now() + Duration::from_nanos((n % 97) * 150);
            while Instant::now() < wait {
                std::hint::spin_loop();
            }
            tx.try_push(n as usize)
                .expect("the lone worker took the last job");
            wait_taken(&taken, n as usize, end);
        }
        drop(tx);
        for w in workers {
            w.join().unwrap();
        }
    }
}
