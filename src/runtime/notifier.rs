//! The notifier thread: delivers events to the user's callbacks, in order,
//! off the handler thread, surviving panics.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use log::{error, warn};

use crate::guard::panic_message;
use crate::runtime::conn::Conn;
use crate::runtime::event::Event;
use crate::runtime::handle::Handle;
use crate::runtime::request::ConnReq;
use crate::runtime::spin;
use crate::types::CloseReason;

const LOG: &str = "connmgr";

type ConnectedFn = dyn Fn(&Handle, ConnReq, Conn) + Send + Sync;
type DisconnectedFn = dyn Fn(&Handle, ConnReq, CloseReason) + Send + Sync;
type AcceptedFn = dyn Fn(&Handle, Conn) + Send + Sync;
type EventFn = dyn Fn(&Handle, Event) + Send + Sync;

/// The user's callbacks. Each event goes to its own callback if set, else
/// to `on_event`, else to the events receiver if the user asked for one.
#[derive(Default)]
pub(crate) struct Callbacks {
    pub(crate) connected: Option<Box<ConnectedFn>>,
    pub(crate) disconnected: Option<Box<DisconnectedFn>>,
    pub(crate) accepted: Option<Box<AcceptedFn>>,
    pub(crate) event: Option<Box<EventFn>>,
}

/// Counts one event as delivered when dropped (after its callback, or if
/// it panicked).
struct Taken<'a>(&'a AtomicUsize);

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Where events go that no callback takes.
pub(crate) struct EventSink {
    pub(crate) tx: Sender<Event>,
    pub(crate) enabled: Arc<AtomicBool>,
    /// Most events left waiting in the receiver; past it new ones are
    /// dropped (a dropped connection closes).
    pub(crate) max_queued: usize,
    /// Events the handler sent that are not delivered yet.
    pub(crate) undelivered: Arc<AtomicUsize>,
}

/// Delivers every event from `events` until the handler hangs up, unless
/// `abandon` turns true (stop was called from a callback: nothing may run
/// after it returns).
pub(crate) fn run(
    events: Receiver<Batch>,
    callbacks: Callbacks,
    sink: EventSink,
    handle: Handle,
    abandon: Arc<AtomicBool>,
) {
    let mut warned = false;
    let mut busy = false;
    let mut poller = spin::Poller::new(POLL_ROUNDS);
    while let Some(batch) = next_batch(&events, &mut busy, &mut poller) {
        deliver_batch(batch, &callbacks, &sink, &handle, &abandon, &mut warned);
    }
}

/// The fewest polls before the notifier sleeps (see [`spin::Poller`]).
const POLL_ROUNDS: u32 = 64;

/// A sleep shorter than this means batches come fast enough that polling
/// for the next one pays.
const BUSY_GAP: Duration = Duration::from_micros(100);

/// The next batch; `None` once the handler is gone and every batch is
/// delivered. While batches come fast (`busy`) it polls a little while
/// before sleeping (see [`spin`]): under churn the handler's next batch
/// follows the callbacks' answers within microseconds. After a long sleep
/// it sleeps again at once, so an idle manager spends nothing on polls.
fn next_batch(
    events: &Receiver<Batch>,
    busy: &mut bool,
    poller: &mut spin::Poller,
) -> Option<Batch> {
    let mut polled = None;
    if *busy {
        let mut window = poller.open();
        polled = Some(window.opened());
        loop {
            match events.try_recv() {
                Ok(batch) => return Some(batch),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) if window.pause() => {}
                Err(TryRecvError::Empty) => break,
            }
        }
    }
    let slept = Instant::now();
    let batch = events.recv().ok();
    *busy = slept.elapsed() < BUSY_GAP;
    if let Some(opened) = polled {
        poller.slept_since(opened);
    }
    batch
}

/// Events sent to the notifier together: the handler's batch (counted
/// against its bound), or one event from another thread.
pub(crate) struct Batch {
    events: Vec<Event>,
    counted: bool,
}

impl Batch {
    /// A handler batch, counted in `undelivered`.
    pub(crate) fn counted(events: Vec<Event>) -> Self {
        Batch {
            events,
            counted: true,
        }
    }

    /// The events, in order.
    #[cfg(test)]
    pub(crate) fn events(&self) -> &[Event] {
        &self.events
    }

    /// One event from outside the handler (a listener, the writer, a
    /// dying thread): rare, so not counted.
    pub(crate) fn one(event: Event) -> Self {
        Batch {
            events: vec![event],
            counted: false,
        }
    }
}

fn deliver_batch(
    batch: Batch,
    callbacks: &Callbacks,
    sink: &EventSink,
    handle: &Handle,
    abandon: &AtomicBool,
    warned: &mut bool,
) {
    for event in batch.events {
        // Counted out as it is taken, so a callback that blocks holds the
        // handler's count (and its bound) up.
        let _taken = batch.counted.then(|| Taken(&sink.undelivered));
        if abandon.load(Ordering::Acquire) {
            continue; // dropping a connection here closes it
        }
        let kind = event.kind();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            deliver(callbacks, sink, handle, event, warned)
        }));
        if let Err(panic) = outcome {
            error!(target: LOG, "{kind} callback panicked: {}", panic_message(&*panic));
        }
    }
}

fn deliver(
    callbacks: &Callbacks,
    sink: &EventSink,
    handle: &Handle,
    event: Event,
    warned: &mut bool,
) {
    let event = match (event, callbacks) {
        (
            Event::Connected { req, conn },
            Callbacks {
                connected: Some(f), ..
            },
        ) => return f(handle, req, conn),
        (
            Event::Disconnected { req, reason },
            Callbacks {
                disconnected: Some(f),
                ..
            },
        ) => return f(handle, req, reason),
        (
            Event::Accepted { conn },
            Callbacks {
                accepted: Some(f), ..
            },
        ) => return f(handle, conn),
        (event, Callbacks { event: Some(f), .. }) => return f(handle, event),
        (event, _) => event,
    };
    if sink.enabled.load(Ordering::Acquire) {
        if sink.tx.len() >= sink.max_queued {
            warn!(
                target: LOG,
                "events receiver holds {} undelivered events; dropping a {} event",
                sink.max_queued,
                event.kind()
            );
            return;
        }
        let _ = sink.tx.send(event);
    } else if matches!(event, Event::Connected { .. } | Event::Accepted { .. }) && !*warned {
        *warned = true;
        warn!(target: LOG, "no callback or events receiver takes new connections; closing them");
    }
}
