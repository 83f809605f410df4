//! Whole-manager tests: real handler, dialer pool and notifier threads, with
//! in-memory connections, closure dialers and a manual clock.

mod common;

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use connmgr::*;
use crossbeam_channel::{bounded, select, unbounded, Receiver};
use parking_lot::Mutex;

type DialResult = Result<Box<dyn Stream>, DialError>;

const SECS_5: Duration = Duration::from_secs(5);

/// Pins a closure to the dialer signature, so its argument types are
/// inferred.
fn dialer<F>(f: F) -> F
where
    F: Fn(&Addr, &DialContext) -> DialResult + Send + Sync + 'static,
{
    f
}

/// A connected stream whose other end is already gone.
fn stream() -> Box<dyn Stream> {
    Box::new(pipe().0)
}

/// A dialer that connects at once and counts its calls.
fn instant_dialer(calls: &Arc<AtomicUsize>) -> impl Dial {
    let calls = Arc::clone(calls);
    dialer(move |_, _| {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(stream())
    })
}

/// A dialer that fails at once and counts its calls.
fn failing_dialer(calls: &Arc<AtomicUsize>) -> impl Dial {
    let calls = Arc::clone(calls);
    dialer(move |_, _| {
        calls.fetch_add(1, Ordering::SeqCst);
        Err(DialError::Refused)
    })
}

/// An address source handing out a fresh address on every call, counting
/// its calls.
fn fresh_source(calls: &Arc<AtomicU32>) -> impl AddressSource {
    let calls = Arc::clone(calls);
    move || Some(mem_addr(calls.fetch_add(1, Ordering::SeqCst)))
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn handle_of(m: &ConnManager) -> Handle {
    Handle::clone(m.handle())
}

/// Stops on another thread and panics if that does not return in time.
fn stop_within(handle: &Handle) {
    let h = handle.clone();
    let (tx, rx) = bounded(1);
    thread::spawn(move || {
        h.stop();
        let _ = tx.send(());
    });
    rx.recv_timeout(DEADLINE).expect("stop did not return");
}

/// Starts `stop` on another thread; the receiver fires when it returns.
fn stop_in_background(handle: &Handle) -> Receiver<()> {
    let h = handle.clone();
    let (tx, rx) = bounded(1);
    thread::spawn(move || {
        h.stop();
        let _ = tx.send(());
    });
    rx
}

/// Every event up to and including the first that matches `pred`.
fn events_until(rx: &Receiver<Event>, mut pred: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let end = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(ev) => {
                let done = pred(&ev);
                seen.push(ev);
                if done {
                    return seen;
                }
            }
            Err(_) => panic!("expected event not seen; got: {seen:#?}"),
        }
    }
}

fn is_connected(ev: &Event, id: ConnId) -> bool {
    matches!(ev, Event::Connected { conn, .. } if conn.id() == id)
}

fn is_disconnected(ev: &Event, id: ConnId) -> bool {
    matches!(ev, Event::Disconnected { req, .. } if req.id() == Some(id))
}

fn is_dial_failed(ev: &Event, id: ConnId) -> bool {
    matches!(ev, Event::DialFailed { req, .. } if req.id() == Some(id))
}

/// Waits for the Connected event of `id` and returns its connection.
fn expect_connected(rx: &Receiver<Event>, id: ConnId) -> Conn {
    match expect_event(rx, |ev| is_connected(ev, id)) {
        Event::Connected { req, conn } => {
            assert_eq!(req.id(), Some(id));
            conn
        }
        _ => unreachable!(),
    }
}

/// Waits for the DialFailed event of `id` and returns its error and wait.
fn expect_dial_failed(rx: &Receiver<Event>, id: ConnId) -> (DialError, Option<Duration>) {
    match expect_event(rx, |ev| is_dial_failed(ev, id)) {
        Event::DialFailed {
            error, retry_in, ..
        } => (error, retry_in),
        _ => unreachable!(),
    }
}

/// Waits until the published entry for `id` satisfies `cond`; returns it.
fn wait_info(m: &Handle, id: ConnId, cond: impl Fn(&ConnInfo) -> bool) -> ConnInfo {
    assert!(
        wait_until(|| m.conn_info(id).is_some_and(|c| cond(&c))),
        "entry {id} never matched: {:?}",
        m.conn_info(id)
    );
    m.conn_info(id).unwrap()
}

fn config_error(builder: ConfigBuilder) -> ConfigError {
    ConnManager::new(builder.build()).expect_err("a bad config was accepted")
}

fn with_dialer() -> ConfigBuilder {
    Config::builder().dialer(failing_dialer(&counter()))
}

/// Every bad setting is refused with its own error, and the message names
/// the setting to change.
#[test]
fn config_errors_name_the_setting_to_fix() {
    let cases: Vec<(ConfigBuilder, ConfigError, &str)> = vec![
        (Config::builder(), ConfigError::NoDialer, "dialer"),
        (
            with_dialer().dialer_pool_size(0),
            ConfigError::ZeroDialerPool,
            "dialer_pool_size",
        ),
        (
            with_dialer().dial_queue_size(0),
            ConfigError::ZeroDialQueue,
            "dial_queue_size",
        ),
        (
            with_dialer().dial_timeout(Duration::ZERO),
            ConfigError::ZeroDialTimeout,
            "dial_timeout",
        ),
        (
            with_dialer().retry_duration(Duration::ZERO),
            ConfigError::ZeroRetryDuration,
            "retry_duration",
        ),
        (
            with_dialer()
                .retry_duration(Duration::from_secs(10))
                .max_retry_duration(SECS_5),
            ConfigError::MaxRetryBelowRetry {
                retry: Duration::from_secs(10),
                max: SECS_5,
            },
            "max_retry_duration",
        ),
        (
            with_dialer().backoff(Backoff::Exponential { jitter: 1.5 }),
            ConfigError::InvalidJitter(1.5),
            "jitter",
        ),
        (
            with_dialer().backoff(Backoff::Exponential { jitter: -0.1 }),
            ConfigError::InvalidJitter(-0.1),
            "0.0..=1.0",
        ),
        (
            with_dialer().max_failed_attempts(0),
            ConfigError::ZeroMaxFailedAttempts,
            "max_failed_attempts",
        ),
        (
            with_dialer().feeler_interval(Some(Duration::ZERO)),
            ConfigError::ZeroDuration("feeler_interval"),
            "feeler_interval",
        ),
        (
            with_dialer().feeler_timeout(Duration::ZERO),
            ConfigError::ZeroDuration("feeler_timeout"),
            "feeler_timeout",
        ),
        (
            with_dialer().one_shot_timeout(Duration::ZERO),
            ConfigError::ZeroDuration("one_shot_timeout"),
            "one_shot_timeout",
        ),
        (
            with_dialer().target_block_relay(limits::MAX_TARGET_OUTBOUND + 1),
            ConfigError::TooLarge {
                setting: "target_block_relay",
                given: limits::MAX_TARGET_OUTBOUND as u64 + 1,
                max: limits::MAX_TARGET_OUTBOUND as u64,
            },
            "target_block_relay",
        ),
    ];
    for (builder, expected, hint) in cases {
        let err = config_error(builder);
        assert_eq!(err, expected);
        let text = err.to_string();
        assert!(text.contains(hint), "{text:?} does not mention {hint:?}");
    }

    // A jitter that is not a number is refused too.
    let err = config_error(with_dialer().backoff(Backoff::Exponential { jitter: f64::NAN }));
    assert!(
        matches!(err, ConfigError::InvalidJitter(j) if j.is_nan()),
        "{err:?}"
    );

    // A listen address that is already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = config_error(with_dialer().listen(addr));
    match &err {
        ConfigError::Listen { addr: a, reason } => {
            assert_eq!(*a, addr);
            assert!(!reason.is_empty());
        }
        other => panic!("expected Listen, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(&addr.to_string()), "{text}");
    assert!(text.contains("port 0"), "{text}");
}

/// Starting twice and stopping twice are harmless; once stopped, starting
/// and every call return `Error::Stopped`.
#[test]
fn start_and_stop_twice_then_everything_is_stopped() {
    let calls = counter();
    let m = ConnManager::new(Config::builder().dialer(instant_dialer(&calls)).build()).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();
    m.start().unwrap();
    assert!(m.handle().is_running());
    assert!(wait_until(|| m.handle().snapshot().running));
    let id = m.handle().connect(ConnReq::new(mem_addr(1))).unwrap();
    let conn = expect_connected(&rx, id);
    wait_info(m.handle(), id, |c| c.state == ConnState::Established);

    let other = handle_of(&m);
    m.stop();
    m.stop();
    other.stop();
    assert!(!m.handle().is_running());
    assert!(!other.is_running());
    assert!(!m.handle().snapshot().running);
    assert!(conn.is_closed());
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    assert_eq!(m.start(), Err(Error::Stopped));
    assert_eq!(
        m.handle().connect(ConnReq::new(mem_addr(2))),
        Err(Error::Stopped)
    );
    assert_eq!(
        other.connect(ConnReq::new(mem_addr(3))),
        Err(Error::Stopped)
    );
    assert_eq!(m.handle().new_conn_req(), Err(Error::Stopped));
    assert_eq!(m.handle().disconnect(id), Err(Error::Stopped));
    assert_eq!(m.handle().reconnect(id), Err(Error::Stopped));
    assert_eq!(m.handle().remove(id), Err(Error::Stopped));
    assert!(Error::Stopped.to_string().contains("create a new one"));
}

/// A manager stopped before it ever started cannot be started, and lets go
/// of its dialer.
#[test]
fn stop_before_start_stops_for_good() {
    let marker = Arc::new(());
    let held = Arc::clone(&marker);
    let d = dialer(move |_, _| {
        let _ = &held;
        Ok(stream())
    });
    let m = ConnManager::new(Config::builder().dialer(d).build()).unwrap();
    // Requests before start are accepted and wait for it.
    m.handle().connect(ConnReq::new(mem_addr(1))).unwrap();
    m.stop();
    assert!(!m.handle().is_running());
    assert_eq!(m.start(), Err(Error::Stopped));
    assert_eq!(
        m.handle().connect(ConnReq::new(mem_addr(2))),
        Err(Error::Stopped)
    );
    assert_eq!(Arc::strong_count(&marker), 1, "the config was not dropped");
}

/// Dropping a running manager without `stop` stops it: its threads finish,
/// its connections close, and handles see it stopped.
#[test]
fn dropping_a_running_manager_stops_it() {
    let marker = Arc::new(());
    let in_dialer = Arc::clone(&marker);
    let held = Arc::new(Mutex::new(Vec::new()));
    let held2 = Arc::clone(&held);
    let config = Config::builder()
        .dialer(dialer(move |_, _| {
            let _ = &in_dialer;
            Ok(stream())
        }))
        .on_connection(move |_, _, conn| held2.lock().push(conn))
        .build();
    let m = ConnManager::new(config).unwrap();
    m.start().unwrap();
    m.handle().connect(ConnReq::permanent(mem_addr(1))).unwrap();
    assert!(wait_until(|| held.lock().len() == 1));
    let h = handle_of(&m);

    let (tx, rx) = bounded(1);
    thread::spawn(move || {
        drop(m);
        let _ = tx.send(());
    });
    rx.recv_timeout(DEADLINE).expect("drop did not return");

    assert!(!h.is_running());
    assert!(!h.snapshot().running);
    assert_eq!(h.connect(ConnReq::new(mem_addr(2))), Err(Error::Stopped));
    assert!(held.lock()[0].is_closed());
    assert_eq!(
        Arc::strong_count(&marker),
        1,
        "a dialer thread is still alive"
    );
}

/// Without an address source the manager dials only what it is asked to,
/// whatever the target; `new_conn_req` needs a source.
#[test]
fn connect_only_mode_never_dials_on_its_own() {
    let calls = counter();
    let config = Config::builder()
        .dialer(instant_dialer(&calls))
        .target_outbound(8)
        .build();
    let m = ConnManager::new(config).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();
    let err = m.handle().new_conn_req().unwrap_err();
    assert_eq!(err, Error::NoAddressSource);
    assert!(err.to_string().contains("address_source"));

    let id = m.handle().connect(ConnReq::new(mem_addr(1))).unwrap();
    let mut events = events_until(&rx, |ev| is_connected(ev, id));
    assert!(wait_until(|| m
        .handle()
        .snapshot()
        .stats
        .outbound_established
        == 1));
    let snap = m.handle().snapshot();
    assert_eq!(snap.stats.dials, 1, "{snap:?}");
    assert_eq!(snap.counts.pending, 0);
    assert_eq!(snap.counts.automatic_outbound, 0);
    assert_eq!(snap.conns.len(), 1);
    assert_eq!(snap.conns[0].id, id);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    m.stop();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Everything the manager ever reported (stop delivers the rest) is
    // about our request: no automatic request was even attempted.
    events.extend(rx.try_iter());
    assert!(events.iter().all(|ev| ev.id() == Some(id)), "{events:#?}");
}

/// With fresh addresses the manager establishes exactly the target of
/// automatic connections, and no more.
#[test]
fn outbound_target_is_reached_exactly_and_never_exceeded() {
    let net = MemoryNetwork::new();
    let _listeners: Vec<_> = (0..16)
        .chain([100])
        .map(|n| net.listen(mem_addr(n)).unwrap())
        .collect();
    let fetched = Arc::new(AtomicU32::new(0));
    let config = Config::builder()
        .dialer(net.dialer())
        .address_source(fresh_source(&fetched))
        .target_outbound(8)
        // btcd's manager has one automatic type: no block-relay slots, no feelers.
        .target_block_relay(0)
        .feeler_interval(None)
        .build();
    let m = ConnManager::new(config).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();
    assert!(
        wait_until(|| m.handle().counts().automatic_outbound == 8),
        "{:?}",
        m.handle().snapshot()
    );

    // A later explicit request: once it is through, the automatic ones have
    // had every chance to overshoot.
    let sentinel = m.handle().connect(ConnReq::new(mem_addr(100))).unwrap();
    let events = events_until(&rx, |ev| is_connected(ev, sentinel));
    let automatic = events
        .iter()
        .filter(|ev| matches!(ev, Event::Connected { req, .. } if req.is_automatic()))
        .count();
    assert_eq!(automatic, 8, "{events:#?}");
    assert_eq!(events.len(), 9, "unexpected events: {events:#?}");

    assert!(wait_until(|| m
        .handle()
        .snapshot()
        .stats
        .outbound_established
        == 9));
    let snap = m.handle().snapshot();
    assert_eq!(snap.counts.automatic_outbound, 8, "{snap:?}");
    assert_eq!(snap.counts.outbound, 9);
    assert_eq!(snap.counts.pending, 0);
    assert_eq!(snap.stats.dials, 9);
    assert_eq!(snap.stats.dial_failures, 0);
    assert_eq!(fetched.load(Ordering::SeqCst), 8);
    drop(events);
    m.stop();
}

/// Permanent requests, made before and after start, come on top of the
/// automatic target instead of eating into it.
#[test]
fn permanent_requests_come_on_top_of_the_target() {
    let net = MemoryNetwork::new();
    let _listeners: Vec<_> = (0..16)
        .chain(100..104)
        .map(|n| net.listen(mem_addr(n)).unwrap())
        .collect();
    let fetched = Arc::new(AtomicU32::new(0));
    let config = Config::builder()
        .dialer(net.dialer())
        .address_source(fresh_source(&fetched))
        .target_outbound(8)
        // btcd's manager has one automatic type: no block-relay slots, no feelers.
        .target_block_relay(0)
        .feeler_interval(None)
        .build();
    let m = ConnManager::new(config).unwrap();
    let rx = m.handle().events();
    let mut permanent = vec![
        m.handle()
            .connect(ConnReq::permanent(mem_addr(100)))
            .unwrap(),
        m.handle()
            .connect(ConnReq::permanent(mem_addr(101)))
            .unwrap(),
    ];
    m.start().unwrap();
    permanent.push(
        m.handle()
            .connect(ConnReq::permanent(mem_addr(102)))
            .unwrap(),
    );
    permanent.push(
        m.handle()
            .connect(ConnReq::permanent(mem_addr(103)))
            .unwrap(),
    );

    let mut conns = Vec::new();
    while conns.len() < 12 {
        match expect_event(&rx, |_| true) {
            Event::Connected { conn, .. } => conns.push(conn),
            other => panic!("unexpected {other:?}"),
        }
    }
    for id in &permanent {
        assert!(conns.iter().any(|c| c.id() == *id), "{id} never connected");
    }
    assert!(
        wait_until(|| m.handle().counts().outbound == 12),
        "{:?}",
        m.handle().snapshot()
    );
    let snap = m.handle().snapshot();
    assert_eq!(snap.counts.automatic_outbound, 8, "{snap:?}");
    assert_eq!(snap.counts.permanent, 4);
    assert_eq!(snap.stats.dials, 12);
    assert_eq!(fetched.load(Ordering::SeqCst), 8);
    m.stop();
}

/// A permanent request that fails keeps its id, waits 5 s then 10 s on the
/// clock (and not before), goes Failing → Pending → Established.
#[test]
fn permanent_retry_keeps_its_id_and_waits_for_the_clock() {
    let clock = ManualClock::new();
    let target = mem_addr(1);
    let probe = mem_addr(2);
    let calls = counter();
    let (entered_tx, entered_rx) = unbounded();
    let (release_tx, release_rx) = unbounded::<()>();
    let (probe2, calls2) = (probe.clone(), Arc::clone(&calls));
    let d = dialer(move |addr, _| {
        if *addr == probe2 {
            return Err(DialError::Rejected("probe".into()));
        }
        let n = calls2.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= 2 {
            return Err(DialError::Refused);
        }
        let _ = entered_tx.send(());
        release_rx
            .recv_timeout(DEADLINE)
            .map_err(|_| DialError::TimedOut)?;
        Ok(stream())
    });
    let config = Config::builder().dialer(d).clock(clock.clone()).build();
    let m = ConnManager::new(config).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();

    let req = ConnReq::permanent(target);
    let id = m.handle().connect(req.clone()).unwrap();
    assert_eq!(req.id(), Some(id));
    let mut failures = 0;

    for (round, wait) in [(1u64, 5u64), (2, 10)] {
        let (error, retry_in) = expect_dial_failed(&rx, id);
        failures += 1;
        assert_eq!(error, DialError::Refused);
        assert_eq!(retry_in, Some(Duration::from_secs(wait)));
        assert!(wait_until(|| req.state() == ConnState::Failing));
        assert_eq!(req.id(), Some(id));

        // Not yet due: a probe dial goes through, ours does not come back.
        clock.advance(Duration::from_secs(wait - 1));
        let p = m.handle().connect(ConnReq::new(probe.clone())).unwrap();
        assert_eq!(expect_dial_failed(&rx, p).1, None);
        failures += 1;
        assert!(wait_until(
            || m.handle().snapshot().stats.dial_failures == failures
        ));
        assert_eq!(calls.load(Ordering::SeqCst) as u64, round);
        assert_eq!(m.handle().snapshot().stats.dials, failures);
        assert_eq!(req.state(), ConnState::Failing);

        clock.advance(Duration::from_secs(1));
    }

    entered_rx
        .recv_timeout(DEADLINE)
        .expect("third dial never came");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(wait_until(|| req.state() == ConnState::Pending));
    release_tx.send(()).unwrap();
    let conn = expect_connected(&rx, id);
    assert_eq!(conn.id(), id);
    assert!(wait_until(|| req.state() == ConnState::Established));
    assert_eq!(req.id(), Some(id));
    m.stop();
}

/// Linear backoff grows by the retry step up to the cap: 5, 10, 15, 20, 20.
#[test]
fn retry_wait_grows_linearly_up_to_the_cap() {
    let clock = ManualClock::new();
    let calls = counter();
    let config = Config::builder()
        .dialer(failing_dialer(&calls))
        .clock(clock.clone())
        .retry_duration(SECS_5)
        .max_retry_duration(Duration::from_secs(20))
        .build();
    let m = ConnManager::new(config).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();
    let id = m.handle().connect(ConnReq::permanent(mem_addr(1))).unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let (_, retry_in) = expect_dial_failed(&rx, id);
        let wait = retry_in.expect("a permanent request always retries");
        seen.push(wait.as_secs());
        clock.advance(wait);
    }
    assert_eq!(seen, [5, 10, 15, 20, 20]);
    m.stop();
}

/// A peer that accepts and drops at once does not get redialed in a tight
/// loop: waits grow like failures until a connection stays up for
/// `min_stable_duration`, which resets them.
#[test]
fn peer_that_drops_at_once_still_backs_off() {
    let clock = ManualClock::new();
    let hold = Arc::new(AtomicBool::new(false));
    let (up_tx, up_rx) = unbounded();
    let (conn_tx, conn_rx) = unbounded();
    let hold2 = Arc::clone(&hold);
    let config = Config::builder()
        .dialer(instant_dialer(&counter()))
        .clock(clock.clone())
        .min_stable_duration(Duration::from_secs(60))
        .on_connection(move |_, req, conn| {
            let _ = up_tx.send(req.id());
            if hold2.load(Ordering::SeqCst) {
                let _ = conn_tx.send(conn);
            } else {
                drop(conn);
            }
        })
        .build();
    let m = ConnManager::new(config).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();
    let id = m.handle().connect(ConnReq::permanent(mem_addr(1))).unwrap();

    for k in 1..=3u32 {
        assert_eq!(up_rx.recv_timeout(DEADLINE).unwrap(), Some(id));
        expect_event(&rx, |ev| is_disconnected(ev, id));
        let info = wait_info(m.handle(), id, |c| {
            c.state == ConnState::Disconnected && c.retries == k
        });
        let wait = info.next_attempt.expect("a retry is scheduled") - info.since;
        assert_eq!(wait, SECS_5 * k, "wait after drop {k}");
        assert_eq!(m.handle().snapshot().stats.dials, u64::from(k));
        if k == 3 {
            hold.store(true, Ordering::SeqCst);
        }
        clock.advance(wait);
    }

    // This time the connection stays up long enough to count as stable.
    assert_eq!(up_rx.recv_timeout(DEADLINE).unwrap(), Some(id));
    let conn: Conn = conn_rx.recv_timeout(DEADLINE).unwrap();
    clock.advance(Duration::from_secs(60));
    drop(conn);
    expect_event(&rx, |ev| is_disconnected(ev, id));
    let info = wait_info(m.handle(), id, |c| c.state == ConnState::Disconnected);
    assert_eq!(info.retries, 1);
    assert_eq!(info.next_attempt.unwrap() - info.since, SECS_5);
    m.stop();
}

/// When every dial fails, automatic dials stop after `max_failed_attempts`
/// failures in a row (plus the ones already in flight), and resume only one
/// retry duration later, one per slot.
#[test]
fn network_failure_throttles_automatic_dials() {
    let clock = ManualClock::new();
    let calls = counter();
    let fetched = Arc::new(AtomicU32::new(0));
    let config = Config::builder()
        .dialer(failing_dialer(&calls))
        .address_source(fresh_source(&fetched))
        .target_outbound(8)
        // btcd's manager has one automatic type: no block-relay slots, no feelers.
        .target_block_relay(0)
        .feeler_interval(None)
        .max_failed_attempts(25)
        .retry_duration(SECS_5)
        .clock(clock.clone())
        .build();
    let m = ConnManager::new(config).unwrap();
    m.start().unwrap();

    // Settled: every failure is in, nothing is pending, so every slot waits
    // on the throttle timer (which only the clock can fire).
    let settled = |m: &ConnManager, min_failures: u64| {
        let s = m.handle().snapshot();
        s.stats.dial_failures >= min_failures
            && s.counts.pending == 0
            && s.stats.dials == s.stats.dial_failures
    };
    assert!(
        wait_until(|| settled(&m, 25)),
        "{:?}",
        m.handle().snapshot()
    );
    let snap = m.handle().snapshot();
    assert!(snap.stats.consecutive_failures >= 25, "{snap:?}");
    assert!(
        (25..=25 + 8).contains(&snap.stats.dials),
        "dials: {}",
        snap.stats.dials
    );
    assert!(snap.conns.is_empty(), "{snap:?}");
    assert_eq!(calls.load(Ordering::SeqCst) as u64, snap.stats.dials);
    assert_eq!(u64::from(fetched.load(Ordering::SeqCst)), snap.stats.dials);

    let before = snap.stats.dials;
    clock.advance(SECS_5);
    assert!(
        wait_until(|| settled(&m, before + 8)),
        "{:?}",
        m.handle().snapshot()
    );
    assert_eq!(m.handle().snapshot().stats.dials, before + 8);
    m.stop();
}

/// `stop` waits for a dial that ignores cancellation, and returns once it
/// fails.
#[test]
fn stop_waits_for_a_failing_dial_in_flight() {
    let (entered_tx, entered_rx) = unbounded::<DialContext>();
    let (release_tx, release_rx) = unbounded::<()>();
    let d = dialer(move |_, ctx| {
        let _ = entered_tx.send(ctx.clone());
        let _ = release_rx.recv_timeout(DEADLINE);
        Err(DialError::Refused)
    });
    let m = ConnManager::new(Config::builder().dialer(d).build()).unwrap();
    m.start().unwrap();
    let req = ConnReq::new(mem_addr(1));
    m.handle().connect(req.clone()).unwrap();
    let ctx = entered_rx.recv_timeout(DEADLINE).unwrap();

    let done = stop_in_background(m.handle());
    assert!(wait_until(|| !m.handle().is_running()));
    assert!(
        wait_until(|| ctx.is_canceled()),
        "stop did not cancel the dial"
    );
    assert!(
        done.try_recv().is_err(),
        "stop returned with a dial in flight"
    );
    release_tx.send(()).unwrap();
    done.recv_timeout(DEADLINE).expect("stop did not return");
    assert_eq!(req.state(), ConnState::Canceled);
}

/// `stop` cancels a dial that honours its context, without any release.
#[test]
fn stop_cancels_a_dial_that_honours_cancellation() {
    let (entered_tx, entered_rx) = unbounded();
    let (release_tx, release_rx) = unbounded::<()>();
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let saw = Arc::clone(&saw_cancel);
    let d = dialer(move |_, ctx| {
        let (cancel_tx, cancel_rx) = bounded(1);
        ctx.on_cancel(move || {
            let _ = cancel_tx.send(());
        });
        let _ = entered_tx.send(());
        select! {
            recv(cancel_rx) -> _ => {
                saw.store(ctx.is_canceled(), Ordering::SeqCst);
                Err(DialError::Canceled)
            }
            recv(release_rx) -> _ => Ok(stream()),
            default(DEADLINE * 3) => Err(DialError::TimedOut),
        }
    });
    let m = ConnManager::new(Config::builder().dialer(d).build()).unwrap();
    m.start().unwrap();
    m.handle().connect(ConnReq::new(mem_addr(1))).unwrap();
    entered_rx.recv_timeout(DEADLINE).unwrap();
    stop_within(m.handle());
    assert!(saw_cancel.load(Ordering::SeqCst));
    drop(release_tx);
}

/// Removing a request whose dial is in flight cancels it: state Canceled,
/// gone from the snapshot, and no event ever reported for it.
#[test]
fn removing_a_pending_request_cancels_it_silently() {
    let slow = mem_addr(1);
    let (entered_tx, entered_rx) = unbounded();
    let slow2 = slow.clone();
    let d = dialer(move |addr, ctx| {
        if *addr != slow2 {
            return Ok(stream());
        }
        let (cancel_tx, cancel_rx) = bounded(1);
        ctx.on_cancel(move || {
            let _ = cancel_tx.send(());
        });
        let _ = entered_tx.send(());
        let _ = cancel_rx.recv_timeout(DEADLINE);
        Err(DialError::Canceled)
    });
    let config = Config::builder().dialer(d).dialer_pool_size(1).build();
    let m = ConnManager::new(config).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();
    let req = ConnReq::new(slow);
    let id = m.handle().connect(req.clone()).unwrap();
    entered_rx.recv_timeout(DEADLINE).unwrap();
    m.handle().remove(id).unwrap();
    assert!(wait_until(|| req.state() == ConnState::Canceled));
    assert!(wait_until(|| m.handle().conn_info(id).is_none()));

    // One dialer thread: the next dial runs only after the removed one is
    // done and its result is in.
    let sentinel = m.handle().connect(ConnReq::new(mem_addr(2))).unwrap();
    let events = events_until(&rx, |ev| is_connected(ev, sentinel));
    assert!(events.iter().all(|ev| ev.id() != Some(id)), "{events:#?}");
    assert_eq!(req.state(), ConnState::Canceled);
    assert!(wait_until(|| m
        .handle()
        .snapshot()
        .stats
        .outbound_established
        == 1));
    assert_eq!(m.handle().snapshot().stats.dial_failures, 0);
    assert_eq!(m.handle().remove(id), Err(Error::UnknownId(id)));
    m.stop();
}

/// A dial that succeeds after its request was removed is closed and never
/// reported.
#[test]
fn removed_request_ignores_a_late_success_and_closes_it() {
    let slow = mem_addr(1);
    let (entered_tx, entered_rx) = unbounded();
    let (release_tx, release_rx) = unbounded::<()>();
    let (far_tx, far_rx) = unbounded::<PipeStream>();
    let slow2 = slow.clone();
    let d = dialer(move |addr, _| {
        if *addr != slow2 {
            return Ok(stream());
        }
        let _ = entered_tx.send(());
        let _ = release_rx.recv_timeout(DEADLINE);
        let (ours, theirs) = pipe();
        let _ = far_tx.send(theirs);
        Ok(Box::new(ours))
    });
    let config = Config::builder().dialer(d).dialer_pool_size(1).build();
    let m = ConnManager::new(config).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();
    let req = ConnReq::new(slow);
    let id = m.handle().connect(req.clone()).unwrap();
    entered_rx.recv_timeout(DEADLINE).unwrap();
    m.handle().remove(id).unwrap();
    assert!(wait_until(|| req.state() == ConnState::Canceled));
    release_tx.send(()).unwrap();
    let mut far = far_rx.recv_timeout(DEADLINE).unwrap();

    let sentinel = m.handle().connect(ConnReq::new(mem_addr(2))).unwrap();
    let events = events_until(&rx, |ev| is_connected(ev, sentinel));
    assert!(events.iter().all(|ev| ev.id() != Some(id)), "{events:#?}");
    assert_eq!(req.state(), ConnState::Canceled);

    far.set_read_timeout(Some(DEADLINE));
    let n = far
        .read(&mut [0u8; 8])
        .expect("the late stream was not closed");
    assert_eq!(n, 0);
    assert!(wait_until(|| m
        .handle()
        .snapshot()
        .stats
        .outbound_established
        >= 1));
    assert_eq!(m.handle().snapshot().stats.outbound_established, 1);
    m.stop();
}

/// Disconnecting an established one-off request closes it and finishes it.
#[test]
fn disconnecting_a_one_off_request_finishes_it() {
    let calls = counter();
    let m = ConnManager::new(Config::builder().dialer(instant_dialer(&calls)).build()).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();
    let req = ConnReq::new(mem_addr(1));
    let id = m.handle().connect(req.clone()).unwrap();
    let conn = expect_connected(&rx, id);
    wait_info(m.handle(), id, |c| c.state == ConnState::Established);

    m.handle().disconnect(id).unwrap();
    expect_event(&rx, |ev| is_disconnected(ev, id));
    assert!(wait_until(|| m.handle().conn_info(id).is_none()));
    assert_eq!(req.state(), ConnState::Disconnected);
    assert!(conn.is_closed());
    assert_eq!(m.handle().disconnect(id), Err(Error::UnknownId(id)));
    assert_eq!(m.handle().snapshot().stats.dials, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    m.stop();
}

/// Disconnecting a permanent request closes it, then redials only once the
/// retry wait has passed on the clock, under the same id.
#[test]
fn disconnecting_a_permanent_request_retries_after_backoff() {
    let clock = ManualClock::new();
    let calls = counter();
    let config = Config::builder()
        .dialer(instant_dialer(&calls))
        .clock(clock.clone())
        .build();
    let m = ConnManager::new(config).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();
    let req = ConnReq::permanent(mem_addr(1));
    let id = m.handle().connect(req.clone()).unwrap();
    let first = expect_connected(&rx, id);
    wait_info(m.handle(), id, |c| c.state == ConnState::Established);

    m.handle().disconnect(id).unwrap();
    expect_event(&rx, |ev| is_disconnected(ev, id));
    assert!(first.is_closed());
    let info = wait_info(m.handle(), id, |c| c.state == ConnState::Disconnected);
    assert_eq!(info.next_attempt, Some(info.since + SECS_5));
    assert_eq!(req.state(), ConnState::Disconnected);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    clock.advance(SECS_5);
    let second = expect_connected(&rx, id);
    assert!(!second.is_closed());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(wait_until(|| req.state() == ConnState::Established));
    m.stop();
}

/// `reconnect` redials at once, without waiting on the clock: an
/// established request is closed and dialed again, a request waiting to
/// retry dials now.
#[test]
fn reconnect_redials_at_once() {
    let clock = ManualClock::new();
    let calls = counter();
    let calls2 = Arc::clone(&calls);
    let flaky = mem_addr(2);
    let d = dialer(move |addr, _| {
        let n = calls2.fetch_add(1, Ordering::SeqCst);
        // The first dial to the flaky peer fails.
        if *addr == mem_addr(2) && n == 2 {
            return Err(DialError::Refused);
        }
        Ok(stream())
    });
    let config = Config::builder().dialer(d).clock(clock).build();
    let m = ConnManager::new(config).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();

    let id = m.handle().connect(ConnReq::new(mem_addr(1))).unwrap();
    let first = expect_connected(&rx, id);
    wait_info(m.handle(), id, |c| c.state == ConnState::Established);
    m.handle().reconnect(id).unwrap();
    let events = events_until(&rx, |ev| is_connected(ev, id));
    assert!(is_disconnected(&events[0], id), "{events:#?}");
    assert_eq!(events.len(), 2, "{events:#?}");
    assert!(first.is_closed());
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let req = ConnReq::permanent(flaky);
    let pid = m.handle().connect(req.clone()).unwrap();
    assert_eq!(expect_dial_failed(&rx, pid).1, Some(SECS_5));
    wait_info(m.handle(), pid, |c| c.state == ConnState::Failing);
    m.handle().reconnect(pid).unwrap();
    let _conn = expect_connected(&rx, pid);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert!(wait_until(|| req.state() == ConnState::Established));
    m.stop();
}

/// A memory listener's connections arrive as Accepted events, show up as
/// inbound in the snapshot, and report InboundClosed when closed.
#[test]
fn memory_listener_reports_inbound_connections() {
    let net = MemoryNetwork::new();
    let here = mem_addr(7);
    let config = Config::builder()
        .dialer(net.dialer())
        .listener(net.listen(here.clone()).unwrap())
        .build();
    let m = ConnManager::new(config).unwrap();
    assert_eq!(m.handle().listen_addrs(), std::slice::from_ref(&here));
    let rx = m.handle().events();
    m.start().unwrap();

    let mut client = net.connect(&here).unwrap();
    let mut conn = match expect_event(&rx, |ev| matches!(ev, Event::Accepted { .. })) {
        Event::Accepted { conn } => conn,
        _ => unreachable!(),
    };
    let id = conn.id();
    assert_eq!(conn.direction(), Direction::Inbound);
    let info = wait_info(m.handle(), id, |_| true);
    assert_eq!(info.direction, Direction::Inbound);
    assert_eq!(info.state, ConnState::Established);
    assert_eq!(info.addr.as_ref(), Some(conn.remote_addr()));
    assert_eq!(m.handle().counts().inbound, 1);
    assert_eq!(m.handle().reconnect(id), Err(Error::NotOutbound(id)));

    std::io::Write::write_all(&mut client, b"ping").unwrap();
    let mut buf = [0u8; 4];
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");

    conn.close();
    match expect_event(&rx, |ev| matches!(ev, Event::InboundClosed { .. })) {
        Event::InboundClosed {
            id: closed, addr, ..
        } => {
            assert_eq!(closed, id);
            assert_eq!(&addr, conn.remote_addr());
        }
        _ => unreachable!(),
    }
    client.set_read_timeout(Some(DEADLINE));
    assert_eq!(client.read(&mut buf).unwrap(), 0);
    assert!(wait_until(|| m.handle().conn_info(id).is_none()));
    assert_eq!(m.handle().counts().inbound, 0);
    m.stop();
}

/// Closing an inbound connection twice frees exactly one slot: with a limit
/// of 2, a third client gets in and a fourth is refused.
#[test]
fn inbound_limit_frees_one_slot_per_connection_closed_twice() {
    let net = MemoryNetwork::new();
    let here = mem_addr(7);
    let config = Config::builder()
        .dialer(net.dialer())
        .listener(net.listen(here.clone()).unwrap())
        .max_inbound(2)
        .build();
    let m = ConnManager::new(config).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();

    let accept = |client: &MemoryNetwork| {
        let c = client.connect(&here).unwrap();
        match expect_event(&rx, |ev| matches!(ev, Event::Accepted { .. })) {
            Event::Accepted { conn } => (c, conn),
            _ => unreachable!(),
        }
    };
    let (mut c1, conn1) = accept(&net);
    let (_c2, _conn2) = accept(&net);
    let id1 = conn1.id();
    conn1.close();
    conn1.close();
    drop(conn1);
    match expect_event(&rx, |ev| matches!(ev, Event::InboundClosed { .. })) {
        Event::InboundClosed { id, .. } => assert_eq!(id, id1),
        _ => unreachable!(),
    }
    c1.set_read_timeout(Some(DEADLINE));
    assert_eq!(c1.read(&mut [0u8; 1]).unwrap(), 0);

    let (c3, _conn3) = accept(&net);
    let mut c4 = net.connect(&here).unwrap();
    assert!(
        wait_until(|| m.handle().snapshot().stats.inbound_refused == 1),
        "{:?}",
        m.handle().snapshot()
    );
    c4.set_read_timeout(Some(DEADLINE));
    assert_eq!(
        c4.read(&mut [0u8; 1]).unwrap(),
        0,
        "refused client not closed"
    );
    // The third client is still connected.
    let mut c3 = c3;
    c3.set_read_timeout(Some(Duration::ZERO));
    let err = c3.read(&mut [0u8; 1]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);

    let snap = m.handle().snapshot();
    assert_eq!(snap.counts.inbound, 2, "{snap:?}");
    assert_eq!(snap.stats.inbound_accepted, 3);
    assert_eq!(snap.stats.peak_inbound, 2);
    assert_eq!(snap.stats.closed, 1);
    assert!(rx.try_recv().is_err(), "no other event expected");
    m.stop();
}

/// What the connection callback saw when calling back into the manager.
#[derive(Debug)]
struct Report {
    id: ConnId,
    in_snapshot: bool,
    connected_other: Option<Result<ConnId, Error>>,
    took_down: Result<(), Error>,
}

/// Callbacks run on the notifier thread and may call connect, snapshot,
/// disconnect and remove on their handle without deadlock.
#[test]
fn callbacks_can_call_back_into_the_manager() {
    let first = mem_addr(1);
    let (tx, reports) = unbounded();
    let first2 = first.clone();
    let config = Config::builder()
        .dialer(instant_dialer(&counter()))
        .on_connection(move |h, req, conn| {
            let id = conn.id();
            let in_snapshot = h.snapshot().get(id).is_some() && h.conn_info(id).is_some();
            let _ = h.counts();
            let (connected_other, took_down) = if req.addr() == Some(&first2) {
                (Some(h.connect(ConnReq::new(mem_addr(2)))), h.disconnect(id))
            } else {
                (None, h.remove(id))
            };
            let _ = tx.send(Report {
                id,
                in_snapshot,
                connected_other,
                took_down,
            });
            // Dropping `conn` closes it too; the manager already did.
        })
        .build();
    let m = ConnManager::new(config).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();
    let a = m.handle().connect(ConnReq::new(first)).unwrap();

    let ra: Report = reports.recv_timeout(DEADLINE).expect("callback stuck");
    assert_eq!(ra.id, a);
    assert!(ra.in_snapshot, "{ra:?}");
    assert_eq!(ra.took_down, Ok(()));
    let b = match ra.connected_other {
        Some(Ok(b)) => b,
        other => panic!("connect from a callback failed: {other:?}"),
    };
    let rb: Report = reports.recv_timeout(DEADLINE).expect("callback stuck");
    assert_eq!(rb.id, b);
    assert!(rb.in_snapshot);
    assert_eq!(rb.took_down, Ok(()));

    expect_event(&rx, |ev| is_disconnected(ev, a));
    expect_event(&rx, |ev| is_disconnected(ev, b));
    assert!(wait_until(|| m.handle().snapshot().conns.is_empty()));
    stop_within(m.handle());
}

/// A callback may stop the manager; the test thread's later stop returns
/// too.
#[test]
fn stop_from_a_callback_then_from_outside() {
    let (tx, rx) = unbounded();
    let config = Config::builder()
        .dialer(instant_dialer(&counter()))
        .on_connection(move |h, _, _| {
            h.stop();
            let _ = tx.send(h.is_running());
        })
        .build();
    let m = ConnManager::new(config).unwrap();
    m.start().unwrap();
    m.handle().connect(ConnReq::new(mem_addr(1))).unwrap();
    let running = rx.recv_timeout(DEADLINE).expect("stop in a callback stuck");
    assert!(!running);
    stop_within(m.handle());
    assert!(!m.handle().is_running());
    assert_eq!(
        m.handle().connect(ConnReq::new(mem_addr(2))),
        Err(Error::Stopped)
    );
}

/// A callback calling stop while the test thread's stop is waiting for that
/// very callback: both return.
#[test]
fn stop_from_a_callback_while_outside_stop_waits() {
    let (entered_tx, entered_rx) = unbounded();
    let (go_tx, go_rx) = unbounded::<()>();
    let (done_tx, done_rx) = unbounded();
    let config = Config::builder()
        .dialer(instant_dialer(&counter()))
        .on_connection(move |h, _, _| {
            let _ = entered_tx.send(());
            let _ = go_rx.recv_timeout(DEADLINE);
            h.stop();
            let _ = done_tx.send(());
        })
        .build();
    let m = ConnManager::new(config).unwrap();
    m.start().unwrap();
    m.handle().connect(ConnReq::new(mem_addr(1))).unwrap();
    entered_rx.recv_timeout(DEADLINE).unwrap();

    let outside = stop_in_background(m.handle());
    assert!(wait_until(|| !m.handle().is_running()));
    go_tx.send(()).unwrap();
    done_rx
        .recv_timeout(DEADLINE)
        .expect("stop in the callback did not return");
    outside
        .recv_timeout(DEADLINE)
        .expect("outside stop did not return");
}

/// A panicking callback does not stop later events: its connection is
/// closed (reported as Disconnected) and the next one is delivered.
#[test]
fn panicking_callback_is_survived() {
    let bad = mem_addr(1);
    let (tx, conns) = unbounded();
    let bad2 = bad.clone();
    let config = Config::builder()
        .dialer(instant_dialer(&counter()))
        .on_connection(move |_, req, conn| {
            if req.addr() == Some(&bad2) {
                panic!("callback failure on purpose");
            }
            let _ = tx.send(conn);
        })
        .build();
    let m = ConnManager::new(config).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();
    let a = m.handle().connect(ConnReq::new(bad)).unwrap();
    expect_event(&rx, |ev| is_disconnected(ev, a));
    let b = m.handle().connect(ConnReq::new(mem_addr(2))).unwrap();
    let conn: Conn = conns
        .recv_timeout(DEADLINE)
        .expect("no event after a panic");
    assert_eq!(conn.id(), b);
    assert!(m.handle().is_running());
    m.stop();
}

/// A panicking dialer counts as a failed dial, and later dials work.
#[test]
fn panicking_dialer_is_survived() {
    let bad = mem_addr(1);
    let bad2 = bad.clone();
    let d = dialer(move |addr, _| {
        if *addr == bad2 {
            panic!("dialer failure on purpose");
        }
        Ok(stream())
    });
    let m = ConnManager::new(Config::builder().dialer(d).build()).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();
    let a = m.handle().connect(ConnReq::new(bad)).unwrap();
    match expect_dial_failed(&rx, a) {
        (DialError::Panicked(msg), None) => assert!(msg.contains("on purpose"), "{msg}"),
        other => panic!("unexpected {other:?}"),
    }
    let b = m.handle().connect(ConnReq::new(mem_addr(2))).unwrap();
    let _conn = expect_connected(&rx, b);
    assert!(wait_until(|| m
        .handle()
        .snapshot()
        .stats
        .outbound_established
        == 1));
    assert_eq!(m.handle().snapshot().stats.dial_failures, 1);
    m.stop();
}

/// A panicking address source counts as "no address"; the slot is refilled
/// after the retry duration and then connects.
#[test]
fn panicking_address_source_is_survived() {
    let clock = ManualClock::new();
    let asked = Arc::new(AtomicU32::new(0));
    let asked2 = Arc::clone(&asked);
    let source = move || {
        if asked2.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("address source failure on purpose");
        }
        Some(mem_addr(1))
    };
    let config = Config::builder()
        .dialer(instant_dialer(&counter()))
        .address_source(source)
        .target_outbound(1)
        // btcd's manager has one automatic type: no block-relay slots, no feelers.
        .target_block_relay(0)
        .feeler_interval(None)
        .clock(clock.clone())
        .build();
    let m = ConnManager::new(config).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();
    match expect_event(&rx, |ev| matches!(ev, Event::DialFailed { .. })) {
        Event::DialFailed { req, retry_in, .. } => {
            assert!(req.is_automatic());
            assert_eq!(retry_in, None);
        }
        _ => unreachable!(),
    }
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    clock.advance(SECS_5);
    // Kept open: dropping it would make the manager refill the slot.
    let _conn = match expect_event(&rx, |ev| matches!(ev, Event::Connected { .. })) {
        Event::Connected { req, conn } => {
            assert!(req.is_automatic());
            assert_eq!(conn.remote_addr(), &mem_addr(1));
            conn
        }
        _ => unreachable!(),
    };
    assert_eq!(asked.load(Ordering::SeqCst), 2);
    m.stop();
}

/// For many requests going through several reconnects, each request's
/// events alternate Connected, Disconnected, starting with Connected.
#[test]
fn events_for_each_request_alternate_connected_disconnected() {
    const REQUESTS: usize = 20;
    const ROUNDS: usize = 4;
    let config = Config::builder()
        .dialer(instant_dialer(&counter()))
        .clock(ManualClock::new())
        .build();
    let m = ConnManager::new(config).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();
    let ids: Vec<ConnId> = (0..REQUESTS as u32)
        .map(|n| m.handle().connect(ConnReq::permanent(mem_addr(n))).unwrap())
        .collect();

    let mut log: std::collections::HashMap<ConnId, Vec<&str>> = Default::default();
    let mut disconnects = 0;
    let end = Instant::now() + DEADLINE;
    while disconnects < REQUESTS * ROUNDS {
        let ev = rx
            .recv_timeout(end.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("stuck after {disconnects} disconnects: {log:?}"));
        match ev {
            Event::Connected { req, conn } => {
                let id = req.id().unwrap();
                let seen = log.entry(id).or_default();
                seen.push("C");
                let ups = seen.iter().filter(|k| **k == "C").count();
                if ups < ROUNDS {
                    m.handle().reconnect(id).unwrap();
                } else {
                    m.handle().remove(id).unwrap();
                }
                // The manager closes it; our close right after must not
                // confuse the next incarnation.
                drop(conn);
            }
            Event::Disconnected { req, .. } => {
                log.entry(req.id().unwrap()).or_default().push("D");
                disconnects += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let expected: Vec<&str> = ["C", "D"].repeat(ROUNDS);
    for id in ids {
        assert_eq!(log.get(&id), Some(&expected), "events of {id}");
    }
    assert!(wait_until(|| m.handle().snapshot().conns.is_empty()));
    m.stop();
}

/// Once `stop` returns, no callback starts any more and the callbacks
/// themselves have been dropped.
#[test]
fn no_callback_runs_after_stop_returns() {
    let started = counter();
    let late = counter();
    let stopped = Arc::new(AtomicBool::new(false));
    let marker = Arc::new(());
    let (s, l, st, mk) = (
        Arc::clone(&started),
        Arc::clone(&late),
        Arc::clone(&stopped),
        Arc::clone(&marker),
    );
    let config = Config::builder()
        .dialer(instant_dialer(&counter()))
        .on_connection(move |_, _, conn| {
            let _ = &mk;
            if st.load(Ordering::SeqCst) {
                l.fetch_add(1, Ordering::SeqCst);
            }
            s.fetch_add(1, Ordering::SeqCst);
            // Slow, so that events queue up behind this one.
            thread::sleep(Duration::from_millis(1));
            drop(conn);
        })
        .build();
    let m = ConnManager::new(config).unwrap();
    m.start().unwrap();
    for n in 0..50 {
        m.handle().connect(ConnReq::new(mem_addr(n))).unwrap();
    }
    assert!(wait_until(|| started.load(Ordering::SeqCst) >= 1));
    stop_within(m.handle());
    stopped.store(true, Ordering::SeqCst);
    let at_stop = started.load(Ordering::SeqCst);
    assert_eq!(Arc::strong_count(&marker), 1, "callbacks still alive");
    // Give a (wrongly) surviving notifier a moment to show itself.
    thread::sleep(Duration::from_millis(20));
    assert_eq!(started.load(Ordering::SeqCst), at_stop);
    assert_eq!(late.load(Ordering::SeqCst), 0);
}

/// A receiver taken before `start` loses nothing: every connection's
/// event, and the disconnects `stop` causes, are in it after `stop`.
#[test]
fn events_subscribed_before_start_lose_nothing_through_stop() {
    let net = MemoryNetwork::new();
    let peers: Vec<_> = (0..5).map(|i| net.listen(mem_addr(i)).unwrap()).collect();
    let m = ConnManager::new(Config::builder().dialer(net.dialer()).build()).unwrap();
    let events = m.handle().events();
    for i in 0..5 {
        m.handle().connect(ConnReq::new(mem_addr(i))).unwrap();
    }
    m.start().unwrap();
    let mut conns = Vec::new();
    for _ in 0..5 {
        match events.recv_timeout(DEADLINE).unwrap() {
            Event::Connected { conn, .. } => conns.push(conn),
            other => panic!("expected Connected, got {other:?}"),
        }
    }
    m.stop();
    let after: Vec<Event> = events.try_iter().collect();
    let disconnected = after
        .iter()
        .filter(|e| matches!(e, Event::Disconnected { .. }))
        .count();
    assert_eq!(disconnected, 5, "{after:?}");
    assert!(conns.iter().all(Conn::is_closed));
    drop(peers);
}

/// A request's handle shows its state whoever held it before: the handle a
/// callback gets is right even when the manager had let its own copy go
/// (nobody kept one and over a thousand newer events came), and a handle
/// the user keeps sees every later change, up to the final state.
#[test]
fn request_handles_follow_their_request_whoever_holds_them() {
    const OTHERS: u32 = 1_100;
    let (up_tx, up_rx) = unbounded();
    let (down_tx, down_rx) = unbounded();
    let kept = Arc::new(Mutex::new(None));
    let kept2 = Arc::clone(&kept);
    let config = Config::builder()
        .dialer(instant_dialer(&counter()))
        .on_connection(move |_, req: ConnReq, conn| {
            if req.addr() == Some(&mem_addr(1)) {
                *kept2.lock() = Some(req.clone());
            }
            let _ = up_tx.send((req.id(), req.state(), conn));
        })
        .on_disconnection(move |_, req, _| {
            let _ = down_tx.send((
                req.id(),
                req.state(),
                req.is_permanent(),
                req.addr().cloned(),
            ));
        })
        .build();
    let m = ConnManager::new(config).unwrap();
    m.start().unwrap();
    let a = m.handle().connect(ConnReq::new(mem_addr(1))).unwrap();
    let b = m.handle().connect(ConnReq::permanent(mem_addr(2))).unwrap();
    for n in 0..OTHERS {
        m.handle().connect(ConnReq::new(mem_addr(3 + n))).unwrap();
    }
    let mut conns = std::collections::HashMap::new();
    for _ in 0..OTHERS + 2 {
        let (id, state, conn) = up_rx.recv_timeout(DEADLINE).expect("connected");
        assert_eq!(state, ConnState::Established);
        conns.insert(id.expect("submitted"), conn);
    }
    let handle = kept.lock().clone().expect("the callback kept a's handle");
    assert_eq!(
        (handle.id(), handle.state()),
        (Some(a), ConnState::Established)
    );

    drop(conns.remove(&b));
    let (id, state, permanent, addr) = down_rx.recv_timeout(DEADLINE).expect("b closed");
    assert_eq!(
        (id, state, permanent),
        (Some(b), ConnState::Disconnected, true)
    );
    assert_eq!(addr, Some(mem_addr(2)));

    drop(conns.remove(&a));
    let (id, state, ..) = down_rx.recv_timeout(DEADLINE).expect("a closed");
    assert_eq!((id, state), (Some(a), ConnState::Disconnected));
    assert!(wait_until(|| handle.state() == ConnState::Disconnected));
    assert!(
        m.handle().conn_info(a).is_none(),
        "a one-off request finishes"
    );
    m.stop();
}
