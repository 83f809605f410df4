//! An in-memory, connected, full-duplex byte stream pair.
//!
//! [`pipe`] returns two [`PipeStream`]s wired to each other: bytes written to
//! one are read from the other. They behave like a blocking socket pair
//! (bounded buffers, end-of-file, broken pipe, timeouts, shutdown from
//! another thread), so code that talks to peers can be tested without the
//! operating system's network stack.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::transport::stream::{CloseEnd, Closer, Stream};

/// Buffer capacity per direction used by [`pipe`].
pub const DEFAULT_CAPACITY: usize = 64 * 1024;

/// Drained buffers larger than this are freed, so a pipe that once carried a
/// burst does not keep the memory while idle.
const RETAIN: usize = 4 * 1024;

/// Smallest allocation for a buffer, so streams of tiny writes do not
/// reallocate on every call.
const MIN_ALLOC: usize = 64;

/// Creates a connected pair of streams with [`DEFAULT_CAPACITY`] bytes of
/// buffer in each direction.
///
/// ```
/// use std::io::{Read, Write};
///
/// let (mut a, mut b) = connmgr::pipe();
/// a.write_all(b"ping").unwrap();
/// let mut buf = [0u8; 4];
/// b.read_exact(&mut buf).unwrap();
/// assert_eq!(&buf, b"ping");
/// ```
pub fn pipe() -> (PipeStream, PipeStream) {
    pipe_with_capacity(DEFAULT_CAPACITY)
}

/// Creates a connected pair of streams with `capacity` bytes of buffer in
/// each direction (0 is treated as 1). Buffers are allocated on first use.
pub fn pipe_with_capacity(capacity: usize) -> (PipeStream, PipeStream) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            bufs: [Buf::default(), Buf::default()],
            timeouts: Timeouts::default(),
            capacity: capacity.max(1),
            handles: [1, 1],
            closed: [false, false],
        }),
        cond: [Condvar::new(), Condvar::new()],
    });
    (
        PipeStream {
            shared: Arc::clone(&shared),
            end: 0,
        },
        PipeStream { shared, end: 1 },
    )
}

/// Everything both ends share: one allocation per pair.
struct Shared {
    state: Mutex<State>,
    /// `cond[d]` signals changes to `bufs[d]` (data added or removed) and
    /// closes; readers and writers of direction `d` wait on it.
    cond: [Condvar; 2],
}

struct State {
    /// `bufs[e]` holds bytes written by end `e`, not yet read by the peer.
    bufs: [Buf; 2],
    /// Per end, like a socket option: shared by every handle of that end.
    timeouts: Timeouts,
    capacity: usize,
    /// Live `PipeStream` handles per end; the end closes when it reaches 0.
    handles: [u32; 2],
    /// End `e` was shut down or dropped.
    closed: [bool; 2],
}

/// The bytes one end wrote, boxed on first use: 8 bytes while a pipe is
/// idle instead of a `VecDeque`'s 24 (every pipe holds two).
#[derive(Default)]
// The box is the point: it puts the queue's 24 bytes off the pipe's
// allocation until the end first writes.
#[allow(clippy::box_collection)]
struct Buf(Option<Box<VecDeque<u8>>>);

impl Buf {
    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len())
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The queue, made if this end never wrote.
    fn queue(&mut self) -> &mut VecDeque<u8> {
        self.0.get_or_insert_with(Box::default)
    }
}

/// Which of a [`Timeouts`]' two kinds.
const READ: usize = 0;
const WRITE: usize = 1;

/// Both ends' read and write timeouts, boxed once one is set: most pipes
/// never set one, and every pipe would otherwise carry 32 bytes of them.
#[derive(Default)]
struct Timeouts(Option<Box<[[Timeout; 2]; 2]>>);

impl Timeouts {
    fn get(&self, kind: usize, end: usize) -> Option<Duration> {
        self.0.as_ref().and_then(|t| t[kind][end].get())
    }

    fn set(&mut self, kind: usize, end: usize, timeout: Option<Duration>) {
        let timeout = Timeout::new(timeout);
        if self.0.is_none() && timeout == Timeout::FOREVER {
            return; // nothing to box
        }
        let all = self
            .0
            .get_or_insert_with(|| Box::new([[Timeout::FOREVER; 2]; 2]));
        all[kind][end] = timeout;
    }
}

/// A timeout in 8 bytes instead of an `Option<Duration>`'s 16:
/// nanoseconds, with `u64::MAX` for none. A timeout past 584 years is as
/// good as none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timeout(u64);

impl Timeout {
    const FOREVER: Timeout = Timeout(u64::MAX);

    fn new(timeout: Option<Duration>) -> Self {
        timeout
            .and_then(|t| u64::try_from(t.as_nanos()).ok())
            .map_or(Timeout::FOREVER, Timeout)
    }

    fn get(self) -> Option<Duration> {
        (self != Timeout::FOREVER).then(|| Duration::from_nanos(self.0))
    }
}

impl Shared {
    /// Closes end `end`: its reads return end-of-file, writes on either end
    /// fail, and the peer can still drain what this end wrote.
    fn close(&self, end: usize) {
        let mut state = self.state.lock();
        if state.closed[end] {
            return;
        }
        state.closed[end] = true;
        // Nobody will read what the peer sent us; free it now.
        state.bufs[1 - end] = Buf::default();
        drop(state);
        for cond in &self.cond {
            cond.notify_all();
        }
    }

    /// Waits on `cond` until notified or `deadline`; returns false once the
    /// deadline has passed.
    fn wait(cond: &Condvar, guard: &mut MutexGuard<'_, State>, deadline: Option<Instant>) -> bool {
        match deadline {
            None => {
                cond.wait(guard);
                true
            }
            Some(deadline) => !cond.wait_until(guard, deadline).timed_out(),
        }
    }
}

impl CloseEnd for Shared {
    fn close_end(&self, end: bool) {
        self.close(usize::from(end));
    }
}

/// Turns a timeout into a deadline. `None` (or one too far away to
/// represent) means wait forever.
fn deadline_for(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// One end of an in-memory stream pair made by [`pipe`].
///
/// Reads block until the peer writes, writes block while the buffer toward
/// the peer is full. Dropping the last handle of an end closes it: the peer
/// then reads what was already buffered followed by end-of-file, and its
/// writes fail with [`io::ErrorKind::BrokenPipe`].
///
/// Extra handles to the same end come from [`try_clone`](Self::try_clone),
/// for reading on one thread while writing on another.
pub struct PipeStream {
    shared: Arc<Shared>,
    /// 0 or 1: which end of the pair this handle is.
    end: usize,
}

impl PipeStream {
    /// Sets how long a read waits for data before failing with
    /// [`io::ErrorKind::TimedOut`]; `None` waits forever. A zero duration
    /// never waits: a read with nothing buffered fails with
    /// [`io::ErrorKind::WouldBlock`]. Applies to every handle of this end.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) {
        let mut state = self.shared.state.lock();
        state.timeouts.set(READ, self.end, timeout);
    }

    /// Sets how long a write waits for buffer space before failing with
    /// [`io::ErrorKind::TimedOut`]; `None` waits forever. A zero duration
    /// never waits: a write into a full buffer fails with
    /// [`io::ErrorKind::WouldBlock`]. Applies to every handle of this end.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) {
        let mut state = self.shared.state.lock();
        state.timeouts.set(WRITE, self.end, timeout);
    }

    /// Shuts this end down in both directions, from any thread: blocked
    /// reads and writes on both ends wake up, this end reads end-of-file,
    /// and writes on either end fail. The peer can still read what this end
    /// had written. Calling it again does nothing.
    pub fn shutdown(&self) {
        self.shared.close(self.end);
    }

    /// Whether this end or its peer has been shut down or dropped (so
    /// writes fail; buffered data may still be readable).
    pub fn is_closed(&self) -> bool {
        let state = self.shared.state.lock();
        state.closed[0] || state.closed[1]
    }

    /// Returns another handle to this same end.
    pub fn try_clone(&self) -> PipeStream {
        let mut state = self.shared.state.lock();
        // Saturating: four billion handles is not a real case, and an
        // undercount only closes the end early rather than panicking.
        state.handles[self.end] = state.handles[self.end].saturating_add(1);
        drop(state);
        PipeStream {
            shared: Arc::clone(&self.shared),
            end: self.end,
        }
    }
}

impl Read for PipeStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let me = self.end;
        let peer = 1 - me;
        let mut state = self.shared.state.lock();
        let timeout = state.timeouts.get(READ, me);
        let deadline = deadline_for(timeout);
        loop {
            if state.closed[me] {
                return Ok(0);
            }
            let incoming = &mut state.bufs[peer];
            if !incoming.is_empty() {
                let queue = incoming.queue();
                let n = queue.len().min(buf.len());
                let (front, back) = queue.as_slices();
                let from_front = n.min(front.len());
                buf[..from_front].copy_from_slice(&front[..from_front]);
                buf[from_front..n].copy_from_slice(&back[..n - from_front]);
                queue.drain(..n);
                if queue.is_empty() && queue.capacity() > RETAIN {
                    *incoming = Buf::default();
                }
                drop(state);
                // Space was freed: wake the peer's writers.
                self.shared.cond[peer].notify_all();
                return Ok(n);
            }
            if state.closed[peer] {
                return Ok(0);
            }
            if timeout == Some(Duration::ZERO) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            if !Shared::wait(&self.shared.cond[peer], &mut state, deadline) {
                // One last look: data may have arrived just at the deadline.
                if state.closed[me] || !state.bufs[peer].is_empty() || state.closed[peer] {
                    continue;
                }
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "pipe read timed out",
                ));
            }
        }
    }
}

impl Write for PipeStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let me = self.end;
        let mut state = self.shared.state.lock();
        let timeout = state.timeouts.get(WRITE, me);
        let deadline = deadline_for(timeout);
        loop {
            if state.closed[me] || state.closed[1 - me] {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "pipe closed"));
            }
            let capacity = state.capacity;
            let outgoing = state.bufs[me].queue();
            let space = capacity.saturating_sub(outgoing.len());
            if space > 0 {
                let n = space.min(buf.len());
                let needed = outgoing.len() + n;
                if needed > outgoing.capacity() {
                    // Grow geometrically for throughput, but never past the
                    // pipe's capacity, so a small pipe stays small.
                    let target = needed
                        .max(outgoing.capacity().saturating_mul(2))
                        .max(MIN_ALLOC)
                        .min(capacity)
                        .max(needed);
                    outgoing.reserve_exact(target - outgoing.len());
                }
                outgoing.extend(&buf[..n]);
                drop(state);
                // Data arrived: wake the peer's readers.
                self.shared.cond[me].notify_all();
                return Ok(n);
            }
            if timeout == Some(Duration::ZERO) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            if !Shared::wait(&self.shared.cond[me], &mut state, deadline) {
                let still_blocked = !state.closed[me]
                    && !state.closed[1 - me]
                    && state.bufs[me].len() >= state.capacity;
                if still_blocked {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "pipe write timed out",
                    ));
                }
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        // Written bytes are visible to the peer at once; nothing to flush.
        Ok(())
    }
}

impl Stream for PipeStream {
    fn closer(&self) -> io::Result<Closer> {
        // The closer holds the shared state but not a handle, so it does not
        // keep the end open.
        Ok(Closer::for_end(
            Arc::clone(&self.shared) as _,
            self.end == 1,
        ))
    }

    fn try_clone_stream(&self) -> io::Result<Box<dyn Stream>> {
        Ok(Box::new(self.try_clone()))
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        PipeStream::set_read_timeout(self, timeout);
        Ok(())
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        PipeStream::set_write_timeout(self, timeout);
        Ok(())
    }

    /// A pipe never delays small writes: there is nothing to turn off.
    fn set_nodelay(&self, _nodelay: bool) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for PipeStream {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        state.handles[self.end] = state.handles[self.end].saturating_sub(1);
        let last = state.handles[self.end] == 0;
        drop(state);
        if last {
            self.shared.close(self.end);
        }
    }
}

impl fmt::Debug for PipeStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state.lock();
        f.debug_struct("PipeStream")
            .field("end", &self.end)
            .field("closed", &state.closed[self.end])
            .field("peer_closed", &state.closed[1 - self.end])
            .field("unread", &state.bufs[1 - self.end].len())
            .field("unsent", &state.bufs[self.end].len())
            .field("capacity", &state.capacity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_keep_their_value_in_eight_bytes() {
        for t in [Some(Duration::ZERO), Some(Duration::from_millis(10)), None] {
            assert_eq!(Timeout::new(t).get(), t);
        }
        assert_eq!(Timeout::new(Some(Duration::MAX)).get(), None);
        // One allocation per pair, kept small: both ends' state.
        assert!(std::mem::size_of::<Shared>() <= 72);
    }

    #[test]
    fn each_end_and_kind_keeps_its_own_timeout() {
        let mut t = Timeouts::default();
        t.set(READ, 0, None);
        assert!(t.0.is_none(), "no timeout set, nothing boxed");
        let ms = |n| Some(Duration::from_millis(n));
        t.set(READ, 1, ms(5));
        t.set(WRITE, 0, ms(7));
        assert_eq!(
            [
                t.get(READ, 0),
                t.get(READ, 1),
                t.get(WRITE, 0),
                t.get(WRITE, 1)
            ],
            [None, ms(5), ms(7), None]
        );
        t.set(READ, 1, None);
        assert_eq!(t.get(READ, 1), None);
    }
    use crossbeam_channel::bounded;
    use std::thread;

    /// Generous bound so a broken wake-up fails the test instead of hanging.
    const DEADLINE: Duration = Duration::from_secs(10);

    /// Runs `f` on a thread and returns its result, failing if it takes
    /// longer than [`DEADLINE`].
    fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = bounded(1);
        thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(DEADLINE)
            .expect("thread did not finish in time")
    }

    #[test]
    fn data_flows_both_ways() {
        let (mut a, mut b) = pipe();
        a.write_all(b"ping").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(b.read(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"ping");
        b.write_all(b"pong!").unwrap();
        assert_eq!(a.read(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"pong!");
    }

    #[test]
    fn read_returns_at_most_buf_len_and_handles_wraparound() {
        let (mut a, mut b) = pipe_with_capacity(8);
        let mut buf = [0u8; 5];
        a.write_all(b"abcdef").unwrap();
        assert_eq!(b.read(&mut buf).unwrap(), 5);
        assert_eq!(&buf, b"abcde");
        // Wraps around the ring's end.
        assert_eq!(a.write(b"ghijklmn").unwrap(), 7);
        let mut all = [0u8; 8];
        assert_eq!(b.read(&mut all).unwrap(), 8);
        assert_eq!(&all, b"fghijklm");
    }

    #[test]
    fn empty_buffers_return_zero_at_once() {
        let (mut a, _b) = pipe();
        assert_eq!(a.read(&mut []).unwrap(), 0);
        assert_eq!(a.write(&[]).unwrap(), 0);
        a.flush().unwrap();
    }

    #[test]
    fn zero_capacity_is_one() {
        let (mut a, mut b) = pipe_with_capacity(0);
        assert_eq!(a.write(b"xy").unwrap(), 1);
        let mut buf = [0u8; 2];
        assert_eq!(b.read(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], b'x');
    }

    #[test]
    fn eof_after_peer_drop_keeps_buffered_data() {
        let (mut a, mut b) = pipe();
        a.write_all(b"last words").unwrap();
        drop(a);
        let mut out = Vec::new();
        b.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"last words");
        assert_eq!(b.read(&mut [0u8; 4]).unwrap(), 0);
    }

    #[test]
    fn write_after_peer_drop_is_broken_pipe() {
        let (a, mut b) = pipe();
        drop(a);
        assert!(b.is_closed());
        let err = b.write(b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn shutdown_is_idempotent_and_ends_both_directions() {
        let (mut a, mut b) = pipe();
        b.write_all(b"unread").unwrap();
        a.write_all(b"sent").unwrap();
        a.shutdown();
        a.shutdown();
        assert!(a.is_closed());
        // This end reads EOF at once, even with data pending toward it.
        assert_eq!(a.read(&mut [0u8; 8]).unwrap(), 0);
        assert_eq!(a.write(b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        // The peer still gets what was sent before the shutdown.
        let mut out = Vec::new();
        b.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"sent");
        assert_eq!(b.write(b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn blocked_writer_is_woken_by_reader() {
        let (mut a, mut b) = pipe_with_capacity(4);
        a.write_all(b"full").unwrap();
        let writer = thread::spawn(move || {
            // Blocks until the reader makes room.
            a.write_all(b"more").map(|()| a)
        });
        thread::sleep(Duration::from_millis(20));
        let got = on_thread(move || {
            let mut out = [0u8; 8];
            b.read_exact(&mut out).map(|()| out)
        })
        .unwrap();
        assert_eq!(&got, b"fullmore");
        writer.join().unwrap().unwrap();
    }

    #[test]
    fn write_blocks_then_times_out_when_full() {
        let (mut a, _b) = pipe_with_capacity(2);
        a.write_all(b"ab").unwrap();
        a.set_write_timeout(Some(Duration::from_millis(10)));
        assert_eq!(a.write(b"c").unwrap_err().kind(), io::ErrorKind::TimedOut);
        a.set_write_timeout(Some(Duration::ZERO));
        assert_eq!(a.write(b"c").unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn closer_from_another_thread_wakes_blocked_read() {
        let (mut a, _b) = pipe();
        let closer = a.closer().unwrap();
        let (tx, rx) = bounded(1);
        let reader = thread::spawn(move || {
            let _ = tx.send(a.read(&mut [0u8; 8]).map_err(|e| e.kind()));
        });
        thread::sleep(Duration::from_millis(20));
        closer.close();
        assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), Ok(0));
        reader.join().unwrap();
    }

    #[test]
    fn peer_closer_wakes_blocked_read_and_write() {
        let (mut a, mut b) = pipe_with_capacity(1);
        let mut a2 = a.try_clone();
        a2.write_all(b"x").unwrap();
        let (tx, rx) = bounded(2);
        let tx2 = tx.clone();
        let reader = thread::spawn(move || {
            let _ = tx.send(("read", a.read(&mut [0u8; 8]).map_err(|e| e.kind())));
        });
        let writer = thread::spawn(move || {
            let _ = tx2.send(("write", a2.write(b"y").map_err(|e| e.kind())));
        });
        thread::sleep(Duration::from_millis(20));
        b.closer().unwrap().close();
        let mut results = [
            rx.recv_timeout(DEADLINE).unwrap(),
            rx.recv_timeout(DEADLINE).unwrap(),
        ];
        results.sort();
        assert_eq!(results[0], ("read", Ok(0)));
        assert_eq!(results[1], ("write", Err(io::ErrorKind::BrokenPipe)));
        reader.join().unwrap();
        writer.join().unwrap();
        // b's own reads end at once too.
        assert_eq!(b.read(&mut [0u8; 1]).unwrap(), 0);
    }

    #[test]
    fn read_timeout_and_zero_timeout() {
        let (mut a, _b) = pipe();
        a.set_read_timeout(Some(Duration::from_millis(10)));
        assert_eq!(
            a.read(&mut [0u8; 1]).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        a.set_read_timeout(Some(Duration::ZERO));
        assert_eq!(
            a.read(&mut [0u8; 1]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        // A huge timeout must not overflow Instant arithmetic.
        a.set_read_timeout(Some(Duration::MAX));
        a.set_read_timeout(None);
    }

    #[test]
    fn try_clone_shares_the_end() {
        let (a, mut b) = pipe();
        let mut a2 = a.try_clone();
        a2.write_all(b"via clone").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(b.read(&mut buf).unwrap(), 9);
        // Timeouts are per end, so the clone sees the original's setting.
        a.set_read_timeout(Some(Duration::ZERO));
        assert_eq!(
            a2.read(&mut [0u8; 1]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        // Dropping one handle keeps the end open; dropping the last closes it.
        drop(a);
        assert!(!b.is_closed());
        b.write_all(b"still here").unwrap();
        drop(a2);
        assert!(b.is_closed());
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }

    #[test]
    fn try_clone_stream_and_shutdown_via_handle() {
        let (a, mut b) = pipe();
        let mut boxed = a.try_clone_stream().unwrap();
        boxed.write_all(b"boxed").unwrap();
        let mut buf = [0u8; 5];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"boxed");
        boxed.closer().unwrap().close();
        assert!(a.is_closed());
    }

    #[test]
    fn closer_does_not_keep_end_open() {
        let (a, mut b) = pipe();
        let closer = a.closer().unwrap();
        drop(a);
        assert_eq!(b.read(&mut [0u8; 1]).unwrap(), 0);
        closer.close();
    }

    #[test]
    fn large_transfer_through_small_pipe() {
        let (mut a, mut b) = pipe_with_capacity(7);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let writer = thread::spawn(move || a.write_all(&data));
        let got = on_thread(move || {
            let mut out = Vec::new();
            b.read_to_end(&mut out).map(|_| out)
        })
        .unwrap();
        assert_eq!(got, expected);
        writer.join().unwrap().unwrap();
    }

    #[test]
    fn idle_pair_is_small() {
        let per_pair = std::mem::size_of::<Shared>()
            + 2 * std::mem::size_of::<usize>() // Arc counts
            + 2 * std::mem::size_of::<PipeStream>();
        assert!(per_pair < 300, "idle pair uses {per_pair} bytes");
    }

    #[test]
    fn debug_output_names_the_type() {
        let (a, _b) = pipe();
        assert!(format!("{a:?}").starts_with("PipeStream"));
    }
}
