//! Listener threads: each listener accepts on a thread of its own and
//! hands connections to the handler, which decides whether to keep them.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

use crossbeam_channel::{select, Receiver, Sender};
use log::{debug, error, warn};

use crate::addr::Addr;
use crate::guard::panic_message;
use crate::runtime::event::Event;
use crate::runtime::gate::{self, Gate};
use crate::runtime::join::join_unless_self;
use crate::runtime::msg::Accepted;
use crate::runtime::notifier::Batch;
use crate::transport::listener::Listener;
use crate::transport::stream::{discard, Closer};

const LOG: &str = "connmgr";

/// The first pause after an accept error; it doubles up to the maximum.
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Controls one accept thread.
pub(crate) struct AcceptorHandle {
    thread: JoinHandle<()>,
    closer: Option<Closer>,
    stopping: Arc<AtomicBool>,
    /// Dropped on close, which wakes the thread from an error pause.
    wake: Sender<()>,
}

impl AcceptorHandle {
    pub(crate) fn thread_id(&self) -> ThreadId {
        self.thread.thread().id()
    }

    /// Makes the accept thread leave its loop.
    pub(crate) fn close(&self) {
        self.stopping.store(true, Ordering::Release);
        if let Some(closer) = &self.closer {
            closer.close();
        }
    }

    pub(crate) fn join(self, me: ThreadId) {
        drop(self.wake);
        join_unless_self(self.thread, me);
    }
}

/// Starts the accept thread for `listener`.
pub(crate) fn spawn_acceptor(
    mut listener: Box<dyn Listener>,
    accepted: Sender<Accepted>,
    gate: Option<Gate>,
    events: Sender<Batch>,
) -> std::io::Result<AcceptorHandle> {
    let closer = listener
        .closer()
        .map_err(|e| warn!(target: LOG, "listener cannot be closed from another thread: {e}"))
        .ok();
    let stopping = Arc::new(AtomicBool::new(false));
    let (wake, pause) = crossbeam_channel::bounded::<()>(0);
    let flag = Arc::clone(&stopping);
    let thread = thread::Builder::new()
        .name("connmgr-accept".into())
        .spawn(move || {
            let addr = listener.local_addr().ok();
            let report = |event: Event| {
                // The notifier outlives accept threads; if it is gone,
                // nobody is listening for events.
                let _ = events.send(Batch::one(event));
            };
            report(Event::Listening { addr: addr.clone() });
            let ctx = AcceptCtx {
                accepted: &accepted,
                gate: gate.as_ref(),
                stopping: &flag,
                pause: &pause,
                addr: addr.as_ref(),
                report: &report,
            };
            accept_loop(&mut *listener, &ctx);
            report(Event::ListenerClosed { addr });
        })?;
    Ok(AcceptorHandle {
        thread,
        closer,
        stopping,
        wake,
    })
}

/// What the accept loop works with.
struct AcceptCtx<'a> {
    accepted: &'a Sender<Accepted>,
    gate: Option<&'a Gate>,
    stopping: &'a AtomicBool,
    pause: &'a Receiver<()>,
    addr: Option<&'a Addr>,
    report: &'a dyn Fn(Event),
}

fn accept_loop(listener: &mut dyn Listener, ctx: &AcceptCtx<'_>) {
    let AcceptCtx {
        accepted,
        gate,
        stopping,
        pause,
        ..
    } = *ctx;
    let mut wait = FIRST_PAUSE;
    while !stopping.load(Ordering::Acquire) {
        // A panicking listener is user code failing, not the end of
        // accepting: it counts as an accept error.
        let result = catch_unwind(AssertUnwindSafe(|| listener.accept())).unwrap_or_else(|p| {
            error!(target: LOG, "Listener::accept panicked: {}", panic_message(&*p));
            Err(std::io::Error::other("Listener::accept panicked"))
        });
        match result {
            Ok((stream, remote)) => {
                wait = FIRST_PAUSE;
                if stopping.load(Ordering::Acquire) {
                    break;
                }
                if let Err(why) = gate::check(gate, &remote) {
                    debug!(target: LOG, "inbound {remote} refused by the gating rule: {why}");
                    discard(stream);
                    continue;
                }
                // Wait for room, but never past close: a full queue must not
                // hold this thread when the manager stops.
                select! {
                    send(accepted, Accepted { stream, remote }) -> sent => {
                        if sent.is_err() {
                            break; // the handler is gone
                        }
                    }
                    recv(pause) -> _ => break,
                }
            }
            Err(e) => {
                if stopping.load(Ordering::Acquire) {
                    break;
                }
                // Out of descriptors and the like: pause instead of spinning.
                warn!(target: LOG, "accept failed: {e}; pausing {wait:?}");
                (ctx.report)(Event::ListenError {
                    addr: ctx.addr.cloned(),
                    error: e.to_string(),
                    retry_in: wait,
                });
                if pause.recv_timeout(wait).is_err_and(|e| e.is_disconnected()) {
                    break;
                }
                wait = (wait * 2).min(MAX_PAUSE);
            }
        }
    }
    debug!(target: LOG, "accept thread exits");
}
