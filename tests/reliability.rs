//! No setting, input, user closure or trait object kills or wedges the
//! manager: bounded settings, saturating time, guarded listeners and
//! closures, and `stop()` from the handler thread itself.

mod common;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use common::{mem_addr, sync, DEADLINE};
use connmgr::limits;
use connmgr::{
    Addr, Closer, Config, ConfigBuilder, ConfigError, ConnManager, ConnReq, Event, Handle,
    Listener, MemoryNetwork, Stream, Subnet,
};

fn base(net: &MemoryNetwork) -> ConfigBuilder {
    Config::builder().dialer(net.dialer())
}

fn too_large(setting: &str, build: impl FnOnce(ConfigBuilder) -> ConfigBuilder) {
    let net = MemoryNetwork::new();
    let err = ConnManager::new(build(base(&net)).build()).unwrap_err();
    match &err {
        ConfigError::TooLarge { setting: s, .. } | ConfigError::TooLong { setting: s, .. } => {
            assert_eq!(*s, setting, "{err}")
        }
        other => panic!("{setting}: expected a bound error, got {other:?}"),
    }
    assert!(err.to_string().contains(setting), "{err}");
}

/// Every size and duration has an upper bound, checked with a typed error
/// that names the setting, before anything is allocated or spawned.
#[test]
fn oversized_settings_are_typed_errors() {
    too_large("dial_queue_size", |b| b.dial_queue_size(usize::MAX));
    too_large("dial_queue_size", |b| b.dial_queue_size(1 << 36));
    too_large("target_outbound", |b| b.target_outbound(1_000_000));
    too_large("dialer_pool_size", |b| b.dialer_pool_size(20_000));
    too_large("max_inbound", |b| b.max_inbound(usize::MAX));
    too_large("watermarks (high)", |b| b.watermarks(1, usize::MAX));
    too_large("retry_duration", |b| {
        b.retry_duration(Duration::MAX)
            .max_retry_duration(Duration::MAX)
    });
    too_large("max_retry_duration", |b| {
        b.max_retry_duration(Duration::MAX)
    });
    too_large("dial_timeout", |b| b.dial_timeout(Duration::MAX));
    too_large("trim_silence", |b| b.trim_silence(Duration::MAX));
    too_large("trim_grace", |b| b.trim_grace(Duration::MAX));
    // At the bound itself, a setting is accepted.
    let net = MemoryNetwork::new();
    let at = base(&net)
        .target_outbound(limits::MAX_TARGET_OUTBOUND)
        .dial_timeout(limits::MAX_DURATION)
        .build();
    assert!(at.validate().is_ok());
}

/// A ban of any length, `Duration::MAX` included, leaves the manager
/// running and answering.
#[test]
fn endless_ban_keeps_the_manager_running() {
    let net = MemoryNetwork::new();
    let m = ConnManager::new(base(&net).build()).unwrap();
    m.start().unwrap();
    let h = m.handle();
    let subnet: Subnet = "198.51.100.0/24".parse().unwrap();
    h.ban(subnet, Duration::MAX, "forever").unwrap();
    sync(h);
    assert!(h.is_running());
    assert_eq!(h.bans().len(), 1);
    h.connect(ConnReq::new(mem_addr(1))).unwrap();
    sync(h);
    m.stop();
}

/// A panicking tag closure leaves the tag as it was and the handler alive.
#[test]
fn panicking_tag_closure_is_contained() {
    let net = MemoryNetwork::new();
    let m = ConnManager::new(base(&net).build()).unwrap();
    m.start().unwrap();
    let h = m.handle();
    h.tag("peer", "t", 5).unwrap();
    h.upsert_tag("peer", "t", |_| panic!("closure fails"))
        .unwrap();
    sync(h);
    assert_eq!(h.tag_info(&"peer".into()).unwrap().tags["t"], 5);
    h.upsert_tag("peer", "t", |v| v + 1).unwrap();
    sync(h);
    assert_eq!(h.tag_info(&"peer".into()).unwrap().tags["t"], 6);
    assert!(h.is_running());
    m.stop();
}

/// A listener whose `accept` panics now and then.
struct FlakyListener {
    inner: connmgr::MemoryListener,
    calls: Arc<AtomicUsize>,
}

impl Listener for FlakyListener {
    fn accept(&mut self) -> io::Result<(Box<dyn Stream>, Addr)> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("listener fails");
        }
        self.inner.accept()
    }
    fn local_addr(&self) -> io::Result<Addr> {
        self.inner.local_addr()
    }
    fn closer(&self) -> io::Result<Closer> {
        self.inner.closer()
    }
}

/// A panic inside `Listener::accept` counts as an accept error: the
/// thread pauses and accepts again.
#[test]
fn panicking_listener_keeps_accepting() {
    let net = MemoryNetwork::new();
    let addr = mem_addr(7);
    let inner = net.listen(addr.clone()).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let listener = FlakyListener {
        inner,
        calls: Arc::clone(&calls),
    };
    let m = ConnManager::new(base(&net).listener(listener).build()).unwrap();
    let events = m.handle().events();
    m.start().unwrap();
    let _client = net.connect(&addr).unwrap();
    let next = || events.recv_timeout(DEADLINE).expect("an event");
    let listening = next();
    assert!(
        matches!(&listening, Event::Listening { addr: Some(a) } if *a == addr),
        "{listening:?}"
    );
    // The panic is reported like any accept error, with its pause.
    match next() {
        Event::ListenError {
            error, retry_in, ..
        } => {
            assert!(error.contains("panicked"), "{error}");
            assert!(retry_in > Duration::ZERO);
        }
        other => panic!("expected ListenError, got {other:?}"),
    }
    let ev = next();
    assert!(matches!(ev, Event::Accepted { .. }), "{ev:?}");
    assert!(calls.load(Ordering::SeqCst) >= 2);
    m.stop();
    // Listeners close first at stop, before the connections do.
    let closed: Vec<Event> = events.try_iter().collect();
    assert!(
        matches!(closed.first(), Some(Event::ListenerClosed { addr: Some(a) }) if *a == addr),
        "{closed:?}"
    );
}

/// With `inline_dial`, an address source runs on the handler thread; one
/// that calls `stop()` there neither deadlocks nor leaves threads behind.
#[test]
fn stop_from_the_handler_thread_returns() {
    let net = MemoryNetwork::new();
    let cell: Arc<OnceLock<Handle>> = Arc::new(OnceLock::new());
    let seen = Arc::clone(&cell);
    let stopped = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&stopped);
    let config = base(&net)
        .inline_dial(true)
        .target_outbound(1)
        .address_source(move || -> Option<Addr> {
            if let Some(h) = seen.get() {
                h.stop();
                count.fetch_add(1, Ordering::SeqCst);
            }
            None
        })
        .build();
    let m = ConnManager::new(config).unwrap();
    cell.set(m.handle().clone()).ok().unwrap();
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let runner = thread::spawn(move || {
        m.start().unwrap();
        assert!(common::wait_until(|| !m.handle().is_running()));
        drop(m);
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(DEADLINE)
        .expect("stop from the handler thread deadlocked");
    runner.join().unwrap();
    assert!(stopped.load(Ordering::SeqCst) >= 1);
}

/// A ban holds against the address a dial really reached: banning
/// 127.0.0.1 refuses a dial to `localhost`, which the pre-dial check
/// cannot see through.
#[test]
fn ban_applies_to_the_address_a_name_reached() {
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let m = ConnManager::new(
        Config::builder()
            .dialer(connmgr::TcpDialer::new())
            .dial_timeout(Duration::from_secs(5))
            .build(),
    )
    .unwrap();
    let events = m.handle().events();
    m.start().unwrap();
    let h = m.handle();
    h.ban(
        "127.0.0.1/32".parse().unwrap(),
        Duration::from_secs(60),
        "test",
    )
    .unwrap();
    let addr: Addr = format!("localhost:{port}").parse().unwrap();
    h.connect(ConnReq::new(addr)).unwrap();
    let ev = events
        .recv_timeout(DEADLINE)
        .expect("no answer to the dial");
    match ev {
        Event::DialFailed {
            error: connmgr::DialError::Rejected(why),
            ..
        } => assert!(why.contains("127.0.0.1"), "{why}"),
        other => panic!("expected a rejected dial, got {other:?}"),
    }
    assert_eq!(h.counts().outbound, 0);
    m.stop();
}

/// Requests made before `start` on a manager stopped without starting
/// end canceled and leave the snapshot.
#[test]
fn requests_before_start_end_when_stopped_unstarted() {
    let net = MemoryNetwork::new();
    let m = ConnManager::new(base(&net).build()).unwrap();
    let reqs: Vec<ConnReq> = (0..5).map(|i| ConnReq::new(mem_addr(i))).collect();
    for r in &reqs {
        m.handle().connect(r.clone()).unwrap();
    }
    m.stop();
    for r in &reqs {
        assert_eq!(r.state(), connmgr::ConnState::Canceled, "{r:?}");
    }
    let snap = m.handle().snapshot();
    assert!(snap.conns.is_empty(), "{:?}", snap.conns);
}

/// `connect` racing `stop` from another thread: every request `connect`
/// accepted reaches a final state, and the snapshot holds nothing live.
#[test]
fn connect_racing_stop_leaves_nothing_pending() {
    for round in 0..50u32 {
        let net = MemoryNetwork::new();
        let _listener = net.listen(mem_addr(round)).unwrap();
        let m = Arc::new(ConnManager::new(base(&net).build()).unwrap());
        m.start().unwrap();
        let h = m.handle().clone();
        let caller = thread::spawn(move || {
            let mut accepted = Vec::new();
            for _ in 0..20 {
                let r = ConnReq::new(mem_addr(round));
                if h.connect(r.clone()).is_ok() {
                    accepted.push(r);
                }
            }
            accepted
        });
        m.stop();
        let accepted = caller.join().unwrap();
        for r in &accepted {
            assert!(
                !matches!(r.state(), connmgr::ConnState::Pending),
                "round {round}: {r:?} still pending"
            );
        }
        let live: Vec<_> = m
            .handle()
            .snapshot()
            .conns
            .into_iter()
            .filter(|c| {
                matches!(
                    c.state,
                    connmgr::ConnState::Pending | connmgr::ConnState::Established
                )
            })
            .collect();
        assert!(live.is_empty(), "round {round}: {live:?}");
    }
}

/// A clock that panics once told to.
struct BrokenClock {
    fail: Arc<std::sync::atomic::AtomicBool>,
}

impl connmgr::Clock for BrokenClock {
    fn now(&self) -> std::time::Instant {
        if self.fail.load(Ordering::SeqCst) {
            panic!("clock failure");
        }
        std::time::Instant::now()
    }
    fn wake_at(
        &self,
        deadline: std::time::Instant,
    ) -> crossbeam_channel::Receiver<std::time::Instant> {
        crossbeam_channel::at(deadline)
    }
}

/// A panicking injected clock is contained: the manager keeps running,
/// answers calls, and its timers still fire on the real time that passes
/// (here a permanent request's retry after a refused dial).
#[test]
fn a_panicking_clock_is_contained() {
    let net = MemoryNetwork::new();
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clock = BrokenClock {
        fail: Arc::clone(&fail),
    };
    let m = ConnManager::new(
        base(&net)
            .clock(clock)
            .retry_duration(Duration::from_millis(20))
            .build(),
    )
    .unwrap();
    let events = m.handle().events();
    m.start().unwrap();
    sync(m.handle());
    fail.store(true, Ordering::SeqCst);
    m.handle().tag("peer", "t", 1).unwrap();
    sync(m.handle());
    assert!(m.handle().is_running());
    assert_eq!(
        m.handle().tag_info(&"peer".into()).map(|t| t.value),
        Some(1)
    );
    // Nothing listens at the address: each attempt is refused and retried.
    m.handle().connect(ConnReq::permanent(mem_addr(1))).unwrap();
    for attempt in 0..2 {
        let ev = events.recv_timeout(DEADLINE).expect("a retry never came");
        assert!(
            matches!(ev, Event::DialFailed { .. }),
            "attempt {attempt}: {ev:?}"
        );
    }
    assert!(m.handle().is_running());
    m.stop();
}

/// Connects 20 clients to `addr` and waits until all were accepted and
/// five are still open; the clients.
fn flood_until_five_kept(
    m: &ConnManager,
    net: &MemoryNetwork,
    addr: &Addr,
) -> Vec<connmgr::PipeStream> {
    let clients: Vec<_> = (0..20).map(|_| net.connect(addr).unwrap()).collect();
    assert!(
        common::wait_until(|| m.handle().snapshot().stats.inbound_accepted == 20
            && m.handle().counts().inbound == 5),
        "{:?}",
        m.handle().counts()
    );
    clients
}

/// An events receiver nobody drains holds at most `max_queued_events`;
/// connections in the events dropped past that are closed.
#[test]
fn undrained_events_receiver_is_bounded() {
    let net = MemoryNetwork::new();
    let addr = mem_addr(9);
    let listener = net.listen(addr.clone()).unwrap();
    // Room for the listener's Listening event and five connections.
    let m = ConnManager::new(base(&net).listener(listener).max_queued_events(6).build()).unwrap();
    let events = m.handle().events();
    m.start().unwrap();
    let clients = flood_until_five_kept(&m, &net, &addr);
    assert_eq!(events.len(), 6);
    drop(clients);
    m.stop();
}

/// A callback that blocks holds at most `max_queued_events` events
/// behind it; connections in the events dropped past that are closed, and
/// the manager counts them closed.
#[test]
fn events_behind_a_blocked_callback_are_bounded() {
    let net = MemoryNetwork::new();
    let addr = mem_addr(9);
    let listener = net.listen(addr.clone()).unwrap();
    let (release_tx, release) = crossbeam_channel::bounded::<()>(0);
    let delivered = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&delivered);
    let m = ConnManager::new(
        base(&net)
            .listener(listener)
            .max_queued_events(5)
            .on_accept(move |_, conn| {
                seen.fetch_add(1, Ordering::SeqCst);
                let _ = release.recv_timeout(DEADLINE);
                drop(conn);
            })
            .build(),
    )
    .unwrap();
    m.start().unwrap();
    let clients = flood_until_five_kept(&m, &net, &addr);
    drop(release_tx);
    assert!(common::wait_until(|| m.handle().counts().inbound == 0));
    assert_eq!(delivered.load(Ordering::SeqCst), 5);
    drop(clients);
    m.stop();
}

/// A dialer that blocks until released, ignoring its deadline and cancel;
/// each call reports its start and, when released, returns `stream`.
fn stuck_dialer(
    entered: crossbeam_channel::Sender<()>,
    release: crossbeam_channel::Receiver<()>,
    stream: impl Fn() -> Box<dyn Stream> + Send + Sync + 'static,
) -> impl connmgr::Dial {
    move |_: &Addr, _: &connmgr::DialContext| -> Result<Box<dyn Stream>, connmgr::DialError> {
        let _ = entered.send(());
        let _ = release.recv_timeout(DEADLINE * 3);
        Ok(stream())
    }
}

/// The manager owns dial deadlines: a dialer that ignores its deadline is
/// reported as timed out at the deadline (on the injected clock), a
/// replacement thread keeps dialing going with a pool of one, and what
/// the stuck dialer returns late is closed.
#[test]
fn a_dialer_ignoring_its_deadline_times_out_on_time() {
    let clock = connmgr::ManualClock::new();
    let (entered_tx, entered) = crossbeam_channel::unbounded();
    let (release_tx, release) = crossbeam_channel::unbounded();
    let (late_tx, late) = crossbeam_channel::unbounded();
    let stuck = stuck_dialer(entered_tx.clone(), release, move || {
        let (ours, theirs) = connmgr::pipe();
        let _ = late_tx.send(theirs);
        Box::new(ours)
    });
    // Only the first address sticks; the second fails at once.
    let dialer = move |a: &Addr, ctx: &connmgr::DialContext| {
        if *a == mem_addr(1) {
            return connmgr::Dial::dial(&stuck, a, ctx);
        }
        let _ = entered_tx.send(());
        Err(connmgr::DialError::Refused)
    };
    let m = ConnManager::new(
        Config::builder()
            .dialer(dialer)
            .dialer_pool_size(1)
            .dial_timeout(Duration::from_millis(200))
            .clock(clock.clone())
            .build(),
    )
    .unwrap();
    let events = m.handle().events();
    m.start().unwrap();
    let h = m.handle();
    let first = ConnReq::new(mem_addr(1));
    h.connect(first.clone()).unwrap();
    entered
        .recv_timeout(DEADLINE)
        .expect("first dial never started");

    clock.advance(Duration::from_millis(200));
    match events.recv_timeout(DEADLINE).expect("no timeout reported") {
        Event::DialFailed {
            req,
            error: connmgr::DialError::TimedOut,
            ..
        } => assert_eq!(req.id(), first.id()),
        other => panic!("expected a timed-out dial, got {other:?}"),
    }
    assert_eq!(first.state(), connmgr::ConnState::Failing);

    // The only pool thread is still stuck: a second dial starts anyway.
    h.connect(ConnReq::new(mem_addr(2))).unwrap();
    entered
        .recv_timeout(DEADLINE)
        .expect("no thread took the second dial");

    // Released, the first dial's late stream is closed, never handed out.
    release_tx.send(()).unwrap();
    let mut theirs = late.recv_timeout(DEADLINE).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        io::Read::read(&mut theirs, &mut buf).unwrap(),
        0,
        "late stream left open"
    );
    m.stop();
    assert!(!events
        .try_iter()
        .any(|e| matches!(e, Event::Connected { ref req, .. } if req.id() == first.id())));
}

/// `stop` waits for a dialer that ignores its cancel only as long as the
/// stop grace, then returns.
#[test]
fn stop_does_not_wait_past_the_grace_for_a_stuck_dialer() {
    let (entered_tx, entered) = crossbeam_channel::unbounded();
    let (release_tx, release) = crossbeam_channel::unbounded();
    let dialer = stuck_dialer(entered_tx, release, || Box::new(connmgr::pipe().0));
    let m = ConnManager::new(
        Config::builder()
            .dialer(dialer)
            .stop_grace(Duration::from_millis(100))
            .build(),
    )
    .unwrap();
    m.start().unwrap();
    let req = ConnReq::new(mem_addr(1));
    m.handle().connect(req.clone()).unwrap();
    entered.recv_timeout(DEADLINE).unwrap();
    let (done_tx, done) = crossbeam_channel::bounded(1);
    let h = m.handle().clone();
    thread::spawn(move || {
        h.stop();
        let _ = done_tx.send(());
    });
    done.recv_timeout(DEADLINE)
        .expect("stop waited for a stuck dialer past its grace");
    assert_eq!(req.state(), connmgr::ConnState::Canceled);
    drop(release_tx);
}

/// A stream the manager could not close (no closer: say, no descriptor
/// left to duplicate) is never handed out to escape stop, trims and
/// bans: it is closed at once and the manager counts it closed.
#[test]
fn a_stream_without_a_closer_is_closed_not_leaked() {
    struct NoCloser(connmgr::PipeStream);
    impl io::Read for NoCloser {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }
    impl io::Write for NoCloser {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.0.flush()
        }
    }
    impl Stream for NoCloser {
        fn closer(&self) -> io::Result<Closer> {
            Err(io::Error::from_raw_os_error(24)) // EMFILE
        }
    }
    let (peer_tx, peer) = crossbeam_channel::unbounded();
    let dialer = move |_: &Addr, _: &connmgr::DialContext| {
        let (ours, theirs) = connmgr::pipe();
        let _ = peer_tx.send(theirs);
        Ok(Box::new(NoCloser(ours)) as Box<dyn Stream>)
    };
    let m = ConnManager::new(Config::builder().dialer(dialer).build()).unwrap();
    let events = m.handle().events();
    m.start().unwrap();
    let req = ConnReq::new(mem_addr(1));
    m.handle().connect(req.clone()).unwrap();
    let ev = events.recv_timeout(DEADLINE).expect("no event");
    assert!(matches!(ev, Event::Disconnected { .. }), "{ev:?}");
    let mut theirs = peer.recv_timeout(DEADLINE).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(io::Read::read(&mut theirs, &mut buf).unwrap(), 0);
    assert!(common::wait_until(|| m.handle().counts().outbound == 0));
    m.stop();
}

/// A caller flooding the manager with calls while the handler is busy
/// waits once `MAX_QUEUED_REQUESTS` are queued instead of queueing without
/// end, and every call still lands once the handler catches up.
#[test]
fn a_flood_of_calls_waits_at_the_queue_bound() {
    let net = MemoryNetwork::new();
    let m = ConnManager::new(base(&net).max_peers(1_000).build()).unwrap();
    m.start().unwrap();
    let h = m.handle().clone();
    // Hold the handler inside a tag closure until the gate opens.
    let (gate_tx, gate) = crossbeam_channel::bounded::<()>(0);
    let (inside_tx, inside) = crossbeam_channel::bounded::<()>(1);
    h.upsert_tag("holder", "t", move |v| {
        let _ = inside_tx.send(());
        let _ = gate.recv();
        v
    })
    .unwrap();
    inside
        .recv_timeout(DEADLINE)
        .expect("the closure never ran");

    let total = limits::MAX_QUEUED_REQUESTS + 10_000;
    let done = Arc::new(AtomicUsize::new(0));
    let flooder = {
        let (h, done) = (h.clone(), Arc::clone(&done));
        thread::spawn(move || {
            for i in 0..total {
                h.tag(format!("p{i}"), "t", 1).unwrap();
                done.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    assert!(
        common::wait_until(|| h.queued_calls() >= limits::MAX_QUEUED_REQUESTS),
        "the queue never filled: {}",
        h.queued_calls()
    );
    // The handler is held, so nothing drains: the flooder must be waiting.
    assert!(h.queued_calls() <= limits::MAX_QUEUED_REQUESTS + 2);
    assert!(done.load(Ordering::SeqCst) <= limits::MAX_QUEUED_REQUESTS + 1);
    assert!(!flooder.is_finished());

    drop(gate_tx);
    flooder.join().unwrap();
    assert_eq!(done.load(Ordering::SeqCst), total);
    sync(&h);
    assert!(h.tag_info(&format!("p{}", total - 1).into()).is_some());
    assert!(h.trim_info().peers <= 1_000 + 1, "{}", h.trim_info().peers);
    m.stop();
}

/// The same bound on `connect`, which also writes the pending entry into
/// the snapshot store: the wait happens before the store's lock is taken,
/// so the handler can catch up.
#[test]
fn a_flood_of_connects_waits_without_deadlock() {
    let net = MemoryNetwork::new();
    let m = ConnManager::new(base(&net).build()).unwrap();
    m.start().unwrap();
    let h = m.handle().clone();
    let (gate_tx, gate) = crossbeam_channel::bounded::<()>(0);
    let (inside_tx, inside) = crossbeam_channel::bounded::<()>(1);
    h.upsert_tag("holder", "t", move |v| {
        let _ = inside_tx.send(());
        let _ = gate.recv();
        v
    })
    .unwrap();
    inside
        .recv_timeout(DEADLINE)
        .expect("the closure never ran");
    let total = limits::MAX_QUEUED_REQUESTS + 1_000;
    let (done_tx, done) = crossbeam_channel::bounded::<()>(1);
    let flooder = {
        let h = h.clone();
        thread::spawn(move || {
            for i in 0..total {
                h.connect(ConnReq::new(mem_addr(i as u32))).unwrap();
            }
            let _ = done_tx.send(());
        })
    };
    assert!(common::wait_until(
        || h.queued_calls() >= limits::MAX_QUEUED_REQUESTS
    ));
    assert!(h.queued_calls() <= limits::MAX_QUEUED_REQUESTS + 2);
    drop(gate_tx);
    done.recv_timeout(DEADLINE)
        .expect("the flooding thread never finished: deadlock");
    flooder.join().unwrap();
    sync(&h);
    m.stop();
}
