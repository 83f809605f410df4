//! Soak: the threaded manager under random operations and faults from
//! several threads at once, checking the invariants a caller can see, and
//! that after `stop` nothing is live and no thread or descriptor is left.
//!
//! `cargo test` runs it for 2 seconds. For a long run:
//!
//! ```text
//! CONNMGR_SOAK_SECS=600 cargo test --release --test soak -- --nocapture
//! ```
//!
//! `CONNMGR_SOAK_SEED` picks the seed (default: from the clock, printed).

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{mem_addr, wait_until};
use connmgr::{
    Addr, Config, ConnManager, ConnReq, ConnState, Dial, DialContext, DialError, Event, Handle,
    Listener, MemoryNetwork, PipeStream, Stream, TcpDialer,
};
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

const OP_THREADS: u64 = 4;
const TARGET: usize = 6;
const MAX_INBOUND: usize = 12;
/// Addresses requests and the source pick from; a few are the manager's
/// own TCP listener, so real sockets are dialed and accepted too.
const POOL: u32 = 48;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Threads of this process, from /proc.
fn threads_now() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// Open descriptors of this process, from /proc.
fn fds_now() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// A dialer with faults: it panics, refuses, stalls until canceled or its
/// deadline, or connects (over TCP to the manager's own listener for a
/// few addresses, else an in-memory pipe whose far end is gone).
struct FaultyDialer {
    tcp: TcpDialer,
    own: Addr,
    seq: AtomicU64,
    seed: u64,
}

impl Dial for FaultyDialer {
    fn dial(&self, addr: &Addr, ctx: &DialContext) -> Result<Box<dyn Stream>, DialError> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut rng = SmallRng::seed_from_u64(self.seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        match rng.random_range(0..100) {
            0..5 => panic!("dialer fault"),
            5..20 => Err(DialError::Refused),
            20..28 => {
                let (tx, rx) = crossbeam_channel::bounded::<()>(1);
                ctx.on_cancel(move || {
                    let _ = tx.try_send(());
                });
                let _ = rx.recv_deadline(ctx.deadline());
                Err(DialError::TimedOut)
            }
            _ if addr_number(addr).is_multiple_of(8) => self.tcp.dial(&self.own, ctx),
            _ => Ok(Box::new(connmgr::pipe().0)),
        }
    }
}

fn addr_number(addr: &Addr) -> u32 {
    match addr {
        Addr::Ip(SocketAddr::V4(v4)) => u32::from_be_bytes(v4.ip().octets()) & 0xff_ffff,
        _ => 0,
    }
}

/// Connections the event thread holds for a while, bounded.
type Held = Arc<Mutex<Vec<connmgr::Conn>>>;

struct World {
    handle: Handle,
    net: MemoryNetwork,
    mem_listen: Addr,
    reqs: Mutex<Vec<ConnReq>>,
    stop: AtomicBool,
}

#[test]
fn soak_random_operations_and_faults() {
    let secs = env_u64("CONNMGR_SOAK_SECS").unwrap_or(2);
    let seed = env_u64("CONNMGR_SOAK_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    println!("soak: {secs} s, seed {seed}");
    quiet_injected_faults();
    let threads_before = threads_now();
    let fds_before = fds_now();

    let stats = run_soak(secs, seed);
    println!("soak: {stats}");

    // Nothing the manager started is left, thread or descriptor.
    assert!(
        wait_until(|| threads_now() == threads_before),
        "threads: {} before, {} after (seed {seed})",
        threads_before,
        threads_now()
    );
    assert!(
        wait_until(|| fds_now() == fds_before),
        "descriptors: {} before, {} after (seed {seed})",
        fds_before,
        fds_now()
    );
}

/// The faults this test injects panic on purpose: print nothing for
/// them (a backtrace per fault would slow the run to a crawl), and
/// everything for any other panic.
fn quiet_injected_faults() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .unwrap_or_default();
        if !text.ends_with(" fault") {
            default(info);
        }
    }));
}

/// Runs the manager for `secs` under load; returns a summary.
fn run_soak(secs: u64, seed: u64) -> String {
    let net = MemoryNetwork::new();
    let mem_listen = mem_addr(1_000);
    let listener = net.listen(mem_listen.clone()).unwrap();
    let tcp = connmgr::TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let own = tcp.local_addr().unwrap();
    let source_seq = AtomicU64::new(seed);
    let held: Held = Arc::new(Mutex::new(Vec::new()));
    let held_cb = Arc::clone(&held);
    let event_seq = AtomicU64::new(0);
    let config = Config::builder()
        .dialer(FaultyDialer {
            tcp: TcpDialer::new(),
            own,
            seq: AtomicU64::new(0),
            seed,
        })
        .address_source(move || {
            let n = source_seq.fetch_add(1, Ordering::Relaxed);
            (!n.is_multiple_of(5)).then(|| mem_addr((n % u64::from(POOL)) as u32))
        })
        .listener(listener)
        .listener(tcp)
        .target_outbound(TARGET)
        .max_inbound(MAX_INBOUND)
        .evict_inbound(seed.is_multiple_of(2))
        .watermarks(4, 10)
        .trim_grace(Duration::from_millis(50))
        .trim_silence(Duration::ZERO)
        .retry_duration(Duration::from_millis(20))
        .max_retry_duration(Duration::from_millis(200))
        .dial_timeout(Duration::from_millis(100))
        .stop_grace(Duration::from_secs(5))
        .dialer_pool_size(4)
        .max_queued_events(256)
        .on_event(move |_, event| {
            let n = event_seq.fetch_add(1, Ordering::Relaxed);
            if n.is_multiple_of(97) {
                panic!("callback fault");
            }
            if let Event::Connected { conn, .. } | Event::Accepted { conn } = event {
                let mut held = held_cb.lock();
                if held.len() < 32 && !n.is_multiple_of(3) {
                    held.push(conn);
                }
            }
        })
        .build();
    let m = ConnManager::new(config).unwrap();
    m.start().unwrap();
    let world = Arc::new(World {
        handle: m.handle().clone(),
        net,
        mem_listen,
        reqs: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
    });
    let end = Instant::now() + Duration::from_secs(secs);
    let ops = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..OP_THREADS)
        .map(|t| {
            let (world, held, ops) = (Arc::clone(&world), Arc::clone(&held), Arc::clone(&ops));
            thread::Builder::new()
                .name(format!("soak-{t}"))
                .spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(seed.wrapping_add(t));
                    let mut clients = Vec::new();
                    while Instant::now() < end && !world.stop.load(Ordering::Relaxed) {
                        operate(&world, &held, &mut clients, &mut rng);
                        ops.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .unwrap()
        })
        .collect();
    for w in workers {
        if let Err(panic) = w.join() {
            std::panic::resume_unwind(panic);
        }
    }
    let h = m.handle();
    common::sync(h);
    check_live_invariants(h);
    let snap = h.snapshot();
    m.stop();
    held.lock().clear();

    // Every request reached a final state; nothing is live.
    for req in world.reqs.lock().iter() {
        assert!(
            !matches!(req.state(), ConnState::Pending | ConnState::Established),
            "{req:?} still live after stop (seed {seed})"
        );
    }
    let after = h.snapshot();
    assert!(after.conns.is_empty(), "{:?}", after.conns);
    assert!(!h.is_running());
    format!(
        "{} ops, {} dials, {} outbound and {} inbound established, {} closed",
        ops.load(Ordering::Relaxed),
        snap.stats.dials,
        snap.stats.outbound_established,
        snap.stats.inbound_accepted,
        snap.stats.closed
    )
}

/// A call about a request that may have ended meanwhile.
fn known_or_gone<T>(result: Result<T, connmgr::Error>) {
    match result {
        Ok(_) | Err(connmgr::Error::UnknownId(_)) => {}
        Err(e) => panic!("{e}"),
    }
}

/// What a caller can check at any time.
fn check_live_invariants(h: &Handle) {
    let counts = h.counts();
    assert!(counts.inbound <= MAX_INBOUND, "{counts:?}");
    // The default two block-relay-only slots come on top of the target.
    assert!(counts.full_relay_outbound <= TARGET, "{counts:?}");
    assert!(counts.block_relay_outbound <= 2, "{counts:?}");
    assert!(counts.feelers <= 1, "{counts:?}");
    let snap = h.snapshot();
    let mut ids = HashSet::new();
    for c in &snap.conns {
        assert!(ids.insert(c.id), "{:?} listed twice", c.id);
    }
    assert!(h.is_running());
}

/// One random operation.
fn operate(world: &World, held: &Held, clients: &mut Vec<PipeStream>, rng: &mut SmallRng) {
    let h = &world.handle;
    let addr = mem_addr(rng.random_range(0..POOL));
    let peer = format!("peer-{}", rng.random_range(0..24));
    let pick = rng.random_range(0..256usize);
    let some_id = || {
        let reqs = world.reqs.lock();
        reqs.get(pick % reqs.len().max(1)).and_then(ConnReq::id)
    };
    // Calls may fail only because the manager is busy being stopped,
    // which this test never does before the workers end.
    match rng.random_range(0..20) {
        0 | 1 => {
            let req = match rng.random_bool(0.3) {
                true => ConnReq::permanent(addr),
                false => ConnReq::new(addr),
            };
            h.connect(req.clone()).unwrap();
            let mut reqs = world.reqs.lock();
            reqs.push(req);
            if reqs.len() > 256 {
                reqs.remove(0);
            }
        }
        2 => {
            if let Some(id) = some_id() {
                known_or_gone(h.remove(id));
            }
        }
        3 => {
            if let Some(id) = some_id() {
                known_or_gone(h.disconnect(id));
            }
        }
        4 => {
            if let Some(id) = some_id() {
                known_or_gone(h.reconnect(id));
            }
        }
        5 => {
            let subnet = format!("10.0.0.{}/32", rng.random_range(0..POOL))
                .parse()
                .unwrap();
            let d = Duration::from_millis(rng.random_range(10..300));
            h.ban(subnet, d, "soak").unwrap();
        }
        6 => {
            let subnet = format!("10.0.0.{}/32", rng.random_range(0..POOL))
                .parse()
                .unwrap();
            h.unban(subnet).unwrap();
        }
        7 => h
            .tag(peer.as_str(), "t", rng.random_range(-10..10))
            .unwrap(),
        8 => h.untag(peer.as_str(), "t").unwrap(),
        9 => {
            let fail = rng.random_bool(0.1);
            h.upsert_tag(peer.as_str(), "u", move |v| {
                if fail {
                    panic!("upsert fault");
                }
                v.saturating_add(1)
            })
            .unwrap();
        }
        10 => match h.protect(peer.as_str(), "p") {
            Ok(()) | Err(connmgr::Error::PeerBookFull) => {}
            Err(e) => panic!("protect: {e}"),
        },
        11 => {
            h.unprotect(peer.as_str(), "p").unwrap();
        }
        12 => {
            let trimmed = h.trim().unwrap();
            assert!(trimmed.closed.len() <= 10, "{trimmed:?}");
        }
        13 => {
            if let Some(c) = h.snapshot().conns.first() {
                known_or_gone(h.misbehaving(c.id, rng.random_range(0..60), 0, "soak"));
            }
        }
        14 => {
            if let Some(c) = h.snapshot().conns.last() {
                let _ = h.set_peer_id(c.id, peer.as_str());
            }
        }
        15 | 16 => {
            // An inbound peer arrives (bounded per thread).
            if clients.len() < 8 {
                if let Ok(s) = world.net.connect(&world.mem_listen) {
                    clients.push(s);
                }
            }
        }
        17 => {
            if !clients.is_empty() {
                // A peer that says something and leaves.
                let mut c = clients.swap_remove(rng.random_range(0..clients.len()));
                let _ = c.write(b"x");
            }
        }
        18 => {
            let mut held = held.lock();
            if !held.is_empty() {
                let i = rng.random_range(0..held.len());
                held.swap_remove(i);
            }
        }
        _ => check_live_invariants(h),
    }
}
