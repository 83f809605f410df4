//! Host-name lookups that honour a dial's deadline and cancel.
//!
//! The system resolver (`getaddrinfo`) blocks and cannot be interrupted,
//! so each lookup runs on its own short-lived helper thread while the dial
//! waits for the first of: the answer, its deadline, its cancel. A lookup
//! the dial stops waiting for finishes alone, within the system
//! resolver's own timeout, and its answer is dropped. At most
//! [`MAX_NAME_LOOKUPS`] run at once in the process, so a silent DNS
//! server cannot pile up threads.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use crossbeam_channel::{bounded, select_biased, Receiver};

use crate::limits::MAX_NAME_LOOKUPS;
use crate::transport::dial::DialContext;
use crate::types::DialError;

/// Most addresses one lookup gives; the rest are ignored.
const MAX_ANSWERS: usize = 32;

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Releases a lookup slot when the helper thread ends, however it ends.
struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        IN_FLIGHT
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_NAME_LOOKUPS).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Resolves `host:port` for a dial with the system resolver, giving up at
/// `ctx`'s deadline or cancel.
pub(crate) fn resolve(
    host: &str,
    port: u16,
    ctx: &DialContext,
) -> Result<Vec<SocketAddr>, DialError> {
    resolve_with(system_lookup, host, port, ctx)
}

fn system_lookup(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    (host, port)
        .to_socket_addrs()
        .map(|addrs| addrs.take(MAX_ANSWERS).collect())
}

type Lookup = fn(&str, u16) -> std::io::Result<Vec<SocketAddr>>;

fn resolve_with(
    lookup: Lookup,
    host: &str,
    port: u16,
    ctx: &DialContext,
) -> Result<Vec<SocketAddr>, DialError> {
    if ctx.is_canceled() {
        return Err(DialError::Canceled);
    }
    let slot = Slot::take().ok_or_else(|| {
        DialError::Other(format!(
            "cannot resolve {host}: {MAX_NAME_LOOKUPS} name lookups already in flight (is the DNS server answering?)"
        ))
    })?;
    let (answer_tx, answer) = bounded(1);
    let name = host.to_owned();
    thread::Builder::new()
        .name("connmgr-resolve".into())
        .spawn(move || {
            let _slot = slot;
            let _ = answer_tx.send(lookup(&name, port));
        })
        .map_err(|e| DialError::Other(format!("cannot resolve {host}: no lookup thread: {e}")))?;
    let (cancel_tx, canceled) = bounded::<()>(1);
    ctx.on_cancel(move || {
        let _ = cancel_tx.try_send(());
    });
    wait(host, &answer, &canceled, ctx)
}

fn wait(
    host: &str,
    answer: &Receiver<std::io::Result<Vec<SocketAddr>>>,
    canceled: &Receiver<()>,
    ctx: &DialContext,
) -> Result<Vec<SocketAddr>, DialError> {
    let timeout = crossbeam_channel::at(ctx.deadline());
    select_biased! {
        recv(canceled) -> _ => Err(DialError::Canceled),
        recv(answer) -> found => match found {
            Ok(Ok(addrs)) => Ok(addrs),
            Ok(Err(e)) => Err(DialError::Other(format!("cannot resolve {host}: {e}"))),
            Err(_) => Err(DialError::Other(format!("cannot resolve {host}: the lookup thread died"))),
        },
        recv(timeout) -> _ => Err(DialError::TimedOut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use crate::transport::dial::CancelToken;

    /// Lookups that block until the test lets them go.
    static GATE: Mutex<Option<Receiver<()>>> = Mutex::new(None);
    /// The one test at a time that uses the shared gate and slot count.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn blocked_lookup(_: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        let gate = GATE.lock().unwrap().clone();
        if let Some(gate) = gate {
            let _ = gate.recv_timeout(Duration::from_secs(30));
        }
        Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
    }

    fn blocking() -> crossbeam_channel::Sender<()> {
        let (tx, rx) = bounded(0);
        *GATE.lock().unwrap() = Some(rx);
        tx
    }

    fn ctx(timeout: Duration) -> DialContext {
        DialContext::new(Instant::now() + timeout, CancelToken::new())
    }

    #[test]
    fn a_silent_lookup_ends_at_the_deadline() {
        let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let release = blocking();
        let c = ctx(Duration::from_millis(50));
        let err = resolve_with(blocked_lookup, "slow.test", 1, &c).unwrap_err();
        assert!(matches!(err, DialError::TimedOut), "{err}");
        assert!(Instant::now() >= c.deadline());
        drop(release);
    }

    #[test]
    fn a_cancel_ends_a_lookup() {
        let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let release = blocking();
        let c = ctx(Duration::from_secs(60));
        let token = c.token().clone();
        let canceler = thread::spawn(move || token.cancel());
        let err = resolve_with(blocked_lookup, "slow.test", 1, &c).unwrap_err();
        assert!(matches!(err, DialError::Canceled), "{err}");
        canceler.join().unwrap();
        drop(release);
    }

    #[test]
    fn an_answer_comes_back() {
        let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        *GATE.lock().unwrap() = None;
        let addrs = resolve_with(
            blocked_lookup,
            "fast.test",
            9,
            &ctx(Duration::from_secs(60)),
        )
        .unwrap();
        assert_eq!(addrs, vec![SocketAddr::from(([127, 0, 0, 1], 9))]);
    }

    #[test]
    fn lookups_in_flight_are_bounded() {
        let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let release = blocking();
        // Lookups the other tests left behind end once their gate is gone.
        let end = Instant::now() + Duration::from_secs(30);
        while IN_FLIGHT.load(Ordering::Acquire) != 0 && Instant::now() < end {
            thread::yield_now();
        }
        let held: Vec<Slot> = std::iter::from_fn(Slot::take).collect();
        assert_eq!(held.len(), MAX_NAME_LOOKUPS);
        let err = resolve_with(
            blocked_lookup,
            "more.test",
            1,
            &ctx(Duration::from_secs(60)),
        )
        .unwrap_err();
        assert!(err.to_string().contains("already in flight"), "{err}");
        drop(held);
        drop(release);
    }
}
