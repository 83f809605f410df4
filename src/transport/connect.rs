//! A TCP connect that a cancel can end on every platform.
//!
//! std's `connect_timeout` waits inside the kernel where nothing else can
//! wake it, except that Linux ends the wait when another thread shuts the
//! socket down. Other systems do not, so the connect here is non-blocking
//! and its wait is cut into slices with a look at the cancel flag between
//! them: a shutdown still ends it at once where the system allows, and
//! elsewhere a cancel takes effect within one slice.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::Socket;

use crate::transport::dial::DialContext;
use crate::types::DialError;

/// The longest a cancel waits to be seen where a shutdown does not wake a
/// connect in progress.
pub(crate) const CANCEL_SLICE: Duration = Duration::from_millis(50);

/// Connects `socket` to `addr` within `timeout`, ending early with
/// [`DialError::Canceled`] once `ctx` is canceled. The socket is left in
/// blocking mode.
pub(crate) fn connect(
    socket: &Socket,
    addr: SocketAddr,
    timeout: Duration,
    ctx: &DialContext,
) -> Result<(), DialError> {
    // `timeout` is bounded by the dial deadline, so this cannot overflow;
    // were it to, the dial has no time left.
    let deadline = Instant::now()
        .checked_add(timeout)
        .ok_or(DialError::TimedOut)?;
    socket.set_nonblocking(true)?;
    let started = match socket.connect(&addr.into()) {
        Ok(()) => Ok(()),
        Err(e) if in_progress(&e) => wait_connected(socket, deadline, ctx),
        Err(e) => Err(e.into()),
    };
    socket.set_nonblocking(false)?;
    started
}

#[cfg(unix)]
fn in_progress(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINPROGRESS)
}

#[cfg(not(unix))]
fn in_progress(e: &io::Error) -> bool {
    // Windows reports a non-blocking connect under way as WSAEWOULDBLOCK.
    e.kind() == io::ErrorKind::WouldBlock
}

/// What one look at a connect in progress found.
enum Progress {
    Connected,
    Pending,
}

/// Whether the connect has finished: its error if it failed, `Connected`
/// once the socket has a peer.
fn check(socket: &Socket) -> Result<Progress, DialError> {
    if let Some(e) = socket.take_error()? {
        return Err(e.into());
    }
    match socket.peer_addr() {
        Ok(_) => Ok(Progress::Connected),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(Progress::Pending),
        Err(e) => Err(e.into()),
    }
}

/// Waits until the connect finishes, the deadline passes or `ctx` is
/// canceled, one slice at a time.
fn wait_connected(socket: &Socket, deadline: Instant, ctx: &DialContext) -> Result<(), DialError> {
    let mut slice = Duration::from_millis(1);
    loop {
        if ctx.is_canceled() {
            return Err(DialError::Canceled);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(DialError::TimedOut);
        }
        let ready = wait_writable(socket, left.min(slice))?;
        if ctx.is_canceled() {
            return Err(DialError::Canceled);
        }
        if ready {
            // Writable means finished: failed (an error), or connected.
            return match check(socket)? {
                Progress::Connected => Ok(()),
                Progress::Pending => Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the connect ended without a peer",
                )
                .into()),
            };
        }
        slice = (slice * 2).min(CANCEL_SLICE);
    }
}

/// Waits up to `wait` for the socket to become writable (the connect
/// finished, well or badly). Interrupted waits count as not ready.
#[cfg(unix)]
fn wait_writable(socket: &Socket, wait: Duration) -> Result<bool, DialError> {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // Round up so that a sub-millisecond remainder does not spin.
    let millis = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: poll reads and writes only the one pollfd we own.
    match unsafe { libc::poll(&mut fd, 1, millis) } {
        n if n > 0 => Ok(true),
        0 => Ok(false),
        _ => match io::Error::last_os_error() {
            e if e.kind() == io::ErrorKind::Interrupted => Ok(false),
            e => Err(e.into()),
        },
    }
}

/// Without a poll call in std, other systems ask the socket directly and
/// sleep between looks (1 ms at first, doubling up to [`CANCEL_SLICE`]).
#[cfg(not(unix))]
fn wait_writable(socket: &Socket, wait: Duration) -> Result<bool, DialError> {
    if let Progress::Connected = check(socket)? {
        return Ok(true);
    }
    std::thread::sleep(wait);
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Protocol, Type};
    use std::net::{Ipv4Addr, TcpListener, TcpStream};

    const SAFETY: Duration = Duration::from_secs(20);

    fn socket() -> Socket {
        Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap()
    }

    fn loopback(port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    #[test]
    fn connects_and_reports_refusal() {
        let listener = TcpListener::bind(loopback(0)).unwrap();
        let ctx = DialContext::with_timeout(SAFETY);
        let s = socket();
        connect(&s, listener.local_addr().unwrap(), SAFETY, &ctx).unwrap();
        assert!(s.peer_addr().is_ok());
        assert!(!s.nonblocking().unwrap_or(true), "left in blocking mode");
        let closed = listener.local_addr().unwrap();
        drop((listener, s));
        let err = connect(&socket(), closed, SAFETY, &ctx).unwrap_err();
        assert_eq!(err, DialError::Refused);
    }

    /// With no shutdown hook at all (as on systems where a shutdown does
    /// not wake a connect), a cancel still ends a connect that would hang.
    #[test]
    fn cancel_is_seen_between_slices() {
        // A listener whose backlog is full leaves new connects hanging.
        let listener = socket();
        listener.bind(&loopback(0).into()).unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        while fillers.len() < 64 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(s) => fillers.push(s),
                Err(_) => break,
            }
        }
        let ctx = DialContext::with_timeout(SAFETY);
        let token = ctx.token().clone();
        let canceler = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            token.cancel();
        });
        let started = Instant::now();
        let result = connect(&socket(), addr, SAFETY, &ctx);
        canceler.join().unwrap();
        assert_eq!(result, Err(DialError::Canceled));
        assert!(started.elapsed() < SAFETY, "the cancel was not seen");
        drop(fillers);
    }
}
