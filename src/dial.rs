//! The dialer abstraction: how the manager opens outbound streams, what a
//! dial may fail with, and how an in-flight dial is told to give up.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::addr::Addr;
use crate::stream::Stream;

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
}

impl<F> Dial for F
where
    F: Fn(&Addr, &DialContext) -> Result<Box<dyn Stream>, DialError> + Send + Sync + 'static,
{
    fn dial(&self, addr: &Addr, ctx: &DialContext) -> Result<Box<dyn Stream>, DialError> {
        self(addr, ctx)
    }
}

/// Why a dial failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialError {
    /// The peer refused the connection.
    Refused,
    /// The dial did not complete before its deadline.
    TimedOut,
    /// The manager canceled the dial (the request was removed, or the
    /// manager is stopping).
    Canceled,
    /// This dialer cannot reach this kind of address; the message says what
    /// would (for example a SOCKS5 proxy for onion addresses).
    Unsupported(String),
    /// A gating rule refused the address before any connection was made.
    Rejected(String),
    /// An I/O error other than the ones above.
    Io {
        /// The error's kind.
        kind: io::ErrorKind,
        /// The error's text.
        message: String,
    },
    /// The dialer panicked; the manager survived and counts a failure.
    Panicked(String),
    /// Any other failure, described.
    Other(String),
}

impl DialError {
    /// Maps an I/O error to the closest dial error.
    pub fn from_io(err: &io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::ConnectionRefused => DialError::Refused,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => DialError::TimedOut,
            kind => DialError::Io {
                kind,
                message: err.to_string(),
            },
        }
    }
}

impl From<io::Error> for DialError {
    fn from(err: io::Error) -> Self {
        DialError::from_io(&err)
    }
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialError::Refused => f.write_str("connection refused"),
            DialError::TimedOut => f.write_str("dial timed out"),
            DialError::Canceled => f.write_str("dial canceled"),
            DialError::Unsupported(why) => write!(f, "address not supported by this dialer: {why}"),
            DialError::Rejected(why) => write!(f, "dial rejected: {why}"),
            DialError::Io { message, .. } => write!(f, "i/o error: {message}"),
            DialError::Panicked(msg) => write!(f, "dialer panicked: {msg}"),
            DialError::Other(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for DialError {}

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
        DialContext::new(Instant::now() + timeout, CancelToken::new())
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
