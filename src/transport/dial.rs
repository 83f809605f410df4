//! The dialer abstraction: how the manager opens outbound streams, what a
//! dial may fail with, and how an in-flight dial is told to give up.

use std::fmt;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::addr::Addr;
use crate::transport::stream::Stream;
use crate::types::DialError;

/// Opens outbound streams. Implemented by [`TcpDialer`](crate::TcpDialer),
/// [`MemoryDialer`](crate::MemoryDialer) and by any closure
/// `Fn(&Addr, &DialContext) -> Result<Box<dyn Stream>, DialError>`.
///
/// Dials run on the manager's dialer pool threads and may block, but they
/// must give up by [`DialContext::deadline`] and should stop early when
/// [`DialContext::is_canceled`] turns true (or register
/// [`DialContext::on_cancel`]): `stop()` waits for in-flight dials.
pub trait Dial: Send + Sync + 'static {
    /// Connects to `addr`.
    fn dial(&self, addr: &Addr, ctx: &DialContext) -> Result<Box<dyn Stream>, DialError>;

    /// Whether every dial returns at once without waiting on anything (no
    /// socket, no lock held elsewhere, no lookup). Then the manager dials
    /// on its handler thread instead of handing each dial to the pool,
    /// which saves two thread hand-offs per connection. Default `false`;
    /// [`MemoryDialer`](crate::MemoryDialer) says `true`. Saying `true`
    /// for a dialer that can block stalls the whole manager while it does.
    fn never_blocks(&self) -> bool {
        false
    }
}

impl<F> Dial for F
where
    F: Fn(&Addr, &DialContext) -> Result<Box<dyn Stream>, DialError> + Send + Sync + 'static,
{
    fn dial(&self, addr: &Addr, ctx: &DialContext) -> Result<Box<dyn Stream>, DialError> {
        self(addr, ctx)
    }
}

type CancelHook = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct CancelState {
    canceled: bool,
    hooks: Vec<CancelHook>,
}

/// A shared flag that cancels one dial, running the hooks the dialer
/// registered (for example shutting down a socket that is still
/// connecting).
#[derive(Clone, Default)]
pub struct CancelToken(Arc<Mutex<CancelState>>);

impl CancelToken {
    /// A token that is not canceled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels: sets the flag and runs every registered hook once.
    pub fn cancel(&self) {
        let hooks = {
            let mut state = self.0.lock();
            state.canceled = true;
            std::mem::take(&mut state.hooks)
        };
        for hook in hooks {
            hook();
        }
    }

    /// Whether [`cancel`](Self::cancel) has been called.
    pub fn is_canceled(&self) -> bool {
        self.0.lock().canceled
    }

    /// Runs `hook` on cancel, or at once if already canceled.
    pub fn on_cancel(&self, hook: impl FnOnce() + Send + 'static) {
        let mut state = self.0.lock();
        if state.canceled {
            drop(state);
            hook();
        } else {
            state.hooks.push(Box::new(hook));
        }
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("canceled", &self.is_canceled())
            .finish()
    }
}

/// What a dialer is told about one dial: its deadline and its cancel
/// token.
#[derive(Debug, Clone)]
pub struct DialContext {
    deadline: Instant,
    cancel: CancelToken,
}

impl DialContext {
    /// A context that expires at `deadline` and is canceled through `cancel`.
    pub fn new(deadline: Instant, cancel: CancelToken) -> Self {
        DialContext { deadline, cancel }
    }

    /// A context with `timeout` from now and its own token.
    pub fn with_timeout(timeout: Duration) -> Self {
        DialContext::new(
            crate::types::later(Instant::now(), timeout),
            CancelToken::new(),
        )
    }

    /// When the dial must have given up.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Time left before the deadline (zero once it has passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Whether the manager has canceled this dial.
    pub fn is_canceled(&self) -> bool {
        self.cancel.is_canceled()
    }

    /// Runs `hook` when the dial is canceled (at once if it already is).
    pub fn on_cancel(&self, hook: impl FnOnce() + Send + 'static) {
        self.cancel.on_cancel(hook)
    }

    /// The token behind this context.
    pub fn token(&self) -> &CancelToken {
        &self.cancel
    }
}
