//! The blocking dialer pool: a fixed set of worker threads that ask the
//! address source for addresses and dial, so that neither ever blocks the
//! handler thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use log::{error, warn};

use crate::addr::Addr;
use crate::guard::panic_message;
use crate::runtime::gate::{self, Gate};
use crate::runtime::source::AddressSource;
use crate::transport::dial::{CancelToken, Dial, DialContext};
use crate::transport::stream::Stream;
use crate::types::later;
use crate::types::ConnId;
use crate::types::DialError;

const LOG: &str = "connmgr";

/// Work for a pool thread.
pub(crate) enum Job {
    Fetch {
        id: ConnId,
    },
    Dial {
        id: ConnId,
        attempt: u64,
        addr: Addr,
        token: CancelToken,
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
    dial_timeout: Duration,
    results: Sender<DialMsg>,
}

impl WorkerCtx {
    pub(crate) fn new(
        dialer: Arc<dyn Dial>,
        gate: Option<Gate>,
        source: Option<Arc<dyn AddressSource>>,
        dial_timeout: Duration,
        results: Sender<DialMsg>,
    ) -> Arc<Self> {
        Arc::new(WorkerCtx {
            dialer,
            gate,
            source,
            dial_timeout,
            results,
        })
    }
}

/// Starts `size` workers reading from `jobs`, pushing each into
/// `threads` as it starts (so a failure leaves the started ones there to
/// join). They exit when every sender of `jobs` is gone.
pub(crate) fn spawn_pool(
    size: usize,
    jobs: Receiver<Job>,
    ctx: &Arc<WorkerCtx>,
    threads: &mut Vec<JoinHandle<()>>,
) -> std::io::Result<()> {
    for n in 0..size {
        let ctx = Arc::clone(ctx);
        let jobs = jobs.clone();
        let t = thread::Builder::new()
            .name(format!("connmgr-dial-{n}"))
            .spawn(move || worker(&ctx, &jobs))?;
        threads.push(t);
    }
    Ok(())
}

fn worker(ctx: &WorkerCtx, jobs: &Receiver<Job>) {
    for job in jobs.iter() {
        let msg = match job {
            Job::Fetch { id } => DialMsg::Address {
                id,
                addr: fetch(ctx),
            },
            Job::Dial {
                id,
                attempt,
                addr,
                token,
            } => DialMsg::Done {
                id,
                attempt,
                result: dial(ctx, &addr, token),
            },
        };
        if ctx.results.send(msg).is_err() {
            return; // the handler is gone: the result (and any stream) is dropped
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
    token: CancelToken,
) -> Result<Box<dyn Stream>, DialError> {
    if token.is_canceled() {
        return Err(DialError::Canceled);
    }
    gate::check(ctx.gate.as_ref(), addr).map_err(DialError::Rejected)?;
    let dctx = DialContext::new(later(Instant::now(), ctx.dial_timeout), token);
    match catch_unwind(AssertUnwindSafe(|| ctx.dialer.dial(addr, &dctx))) {
        Ok(result) => result,
        Err(panic) => {
            let msg = panic_message(&*panic);
            warn!(target: LOG, "dialer panicked dialing {addr}: {msg}");
            Err(DialError::Panicked(msg))
        }
    }
}
