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
    let ev = events
        .recv_timeout(DEADLINE)
        .expect("no inbound after the panic");
    assert!(matches!(ev, Event::Accepted { .. }), "{ev:?}");
    assert!(calls.load(Ordering::SeqCst) >= 2);
    m.stop();
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

/// If the handler thread dies anyway (here of a panicking injected
/// clock), the manager says so: one event, `is_running() == false`, an
/// error from every call, and `stop()` still returns.
#[test]
fn a_dead_handler_is_reported() {
    let net = MemoryNetwork::new();
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clock = BrokenClock {
        fail: Arc::clone(&fail),
    };
    let m = ConnManager::new(base(&net).clock(clock).build()).unwrap();
    let events = m.handle().events();
    m.start().unwrap();
    sync(m.handle());
    fail.store(true, Ordering::SeqCst);
    m.handle().tag("peer", "t", 1).unwrap();
    let ev = events
        .recv_timeout(DEADLINE)
        .expect("the death went unreported");
    match &ev {
        Event::ThreadFailed { thread, error } => {
            assert_eq!(thread, "connmgr-handler");
            assert!(error.contains("clock failure"), "{error}");
        }
        other => panic!("expected ThreadFailed, got {other:?}"),
    }
    assert!(!m.handle().is_running());
    assert!(matches!(
        m.handle().connect(ConnReq::new(mem_addr(1))),
        Err(connmgr::Error::Crashed(_))
    ));
    let (tx, rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        m.stop();
        tx.send(()).unwrap();
    });
    rx.recv_timeout(DEADLINE).expect("stop after a crash hung");
}

/// An events receiver nobody drains holds at most `max_queued_events`;
/// connections in the events dropped past that are closed.
#[test]
fn undrained_events_receiver_is_bounded() {
    let net = MemoryNetwork::new();
    let addr = mem_addr(9);
    let listener = net.listen(addr.clone()).unwrap();
    let m = ConnManager::new(base(&net).listener(listener).max_queued_events(5).build()).unwrap();
    let events = m.handle().events();
    m.start().unwrap();
    let clients: Vec<_> = (0..20).map(|_| net.connect(&addr).unwrap()).collect();
    assert!(
        common::wait_until(|| m.handle().snapshot().stats.inbound_accepted == 20
            && m.handle().counts().inbound == 5),
        "{:?}",
        m.handle().counts()
    );
    assert_eq!(events.len(), 5);
    drop(clients);
    m.stop();
}
