//! Micro-benchmarks of the hot paths behind the workloads: the Core's input
//! handling, snapshot copies, ban scores, trim and eviction selection, and
//! address parsing. Run with `cargo bench --bench micro` (add a name to
//! filter, e.g. `cargo bench --bench micro -- trim`).

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connmgr::core::{default_peer_id, Core, CoreConfig, Effect, Input, TagChange, Teardown};
use connmgr::policy::DynamicBanScore;
use connmgr::policy::{CandidateNet, EvictionCandidate, EvictionKey, EvictionPolicy};
use connmgr::policy::{TrimCandidate, TrimPolicy};
use connmgr::PeerId;
use connmgr::{pipe, Addr, Config, ConnManager, ConnReq, DialContext, DialError, Stream};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use parking_lot::Mutex;

/// Deterministic pseudo-random numbers (64-bit LCG, top bits).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

/// A distinct made-up address per `n` (for in-memory use only).
fn addr(n: u64) -> Addr {
    let b = (n as u32).to_be_bytes();
    Addr::Ip(SocketAddr::from((
        [10, b[1], b[2], b[3]],
        8333 + (n >> 24) as u16,
    )))
}

/// Connects request `n` on `core` and returns its id; panics unless the
/// Core asks for exactly the dial expected.
fn connect(core: &mut Core, now: Instant, n: u64, out: &mut Vec<Effect<u32>>) -> connmgr::ConnId {
    out.clear();
    let req = core.request(addr(n), false);
    core.handle_into(now, Input::Connect(req), out);
    let (id, attempt) = match out.first() {
        Some(Effect::Dial { id, attempt, .. }) => (*id, *attempt),
        other => panic!("expected a dial, got {other:?}"),
    };
    let conn = n as u32;
    core.handle_into(
        now,
        Input::DialSucceeded {
            id,
            attempt,
            conn,
            remote: None,
        },
        out,
    );
    id
}

/// One request through its whole life on a bare Core: `Connect`,
/// `DialSucceeded` (a `u32` stands in for the stream), `Teardown`. The
/// addresses cycle through 1,024 peers so the per-peer tables stay the
/// size of a busy node's; a fresh Core per sample keeps its undrained
/// publish lists short.
fn core_cycle(c: &mut Criterion) {
    c.bench_function("core/connect_established_teardown", |b| {
        b.iter_custom(|iters| {
            let mut core = Core::new(CoreConfig::default());
            let mut out = Vec::with_capacity(8);
            let now = Instant::now();
            let start = Instant::now();
            for i in 0..iters {
                let id = connect(&mut core, now, i % 1024, &mut out);
                out.clear();
                let mode = Teardown::Disconnect;
                core.handle_into(now, Input::Teardown { id, mode }, &mut out);
                black_box(&out);
            }
            start.elapsed()
        })
    });
}

const TRIM_CONNS: usize = 10_000;
const TRIM_HIGH: usize = 9_000;
const TRIM_LOW: usize = 8_000;

/// A Core holding 10,000 tagged connections, past the silence period of a
/// priming trim, so that the next `Input::Trim` closes 2,000.
fn trimmable_core() -> (Core, Instant) {
    let mut core = Core::new(with_cfg(CoreConfig::default(), |c| {
        c.watermarks = Some((TRIM_LOW, TRIM_HIGH));
        c.trim_grace = Duration::ZERO;
    }));
    let t0 = Instant::now();
    let mut out = Vec::new();
    core.handle_into(t0, Input::Start, &mut out);
    let mut rng = Lcg(7);
    for n in 0..=TRIM_CONNS as u64 {
        let change = TagChange::Set("score".into(), rng.next(1_000) as i64);
        let peer = PeerId::from(addr(n).to_string());
        core.handle_into(t0, Input::Tag { peer, change }, &mut out);
    }
    for n in 0..=TRIM_LOW as u64 {
        connect(&mut core, t0, n, &mut out);
    }
    core.handle_into(t0, Input::Trim, &mut out);
    for n in TRIM_LOW as u64 + 1..=TRIM_CONNS as u64 {
        connect(&mut core, t0, n, &mut out);
    }
    (core, t0 + connmgr::policy::DEFAULT_SILENCE)
}

/// One trim of 10,000 connections down to 8,000 on a bare Core: candidate
/// collection, selection and the 2,000 teardowns.
fn core_trim(c: &mut Criterion) {
    let mut g = c.benchmark_group("core");
    g.sample_size(20);
    g.bench_function("trim_10k_to_8k", |b| {
        b.iter_batched(
            trimmable_core,
            |(mut core, now)| {
                let out: Vec<Effect<u32>> = core.handle(now, Input::Trim);
                assert_eq!(out.len(), 2 * (TRIM_CONNS - TRIM_LOW));
                (core, out)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// Tagging a peer for the first time while 10,000 untagged connections are
/// established (the usual order: tag after the handshake). Each sample
/// uses fresh Cores, so every tag is a first tag.
fn core_first_tag(c: &mut Criterion) {
    const CONNS: u64 = 10_000;
    let mut g = c.benchmark_group("core");
    g.sample_size(10);
    g.bench_function("first_tag_among_10k_connections", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let mut core = Core::new(CoreConfig::default());
                let now = Instant::now();
                let mut out: Vec<Effect<u32>> = Vec::new();
                for n in 0..CONNS {
                    connect(&mut core, now, n, &mut out);
                }
                let batch = left.min(CONNS);
                let start = Instant::now();
                for n in 0..batch {
                    let peer = PeerId::from(addr(n).to_string());
                    let change = TagChange::Set("score".into(), 1);
                    core.handle_into(now, Input::Tag { peer, change }, &mut out);
                }
                total += start.elapsed();
                left -= batch;
            }
            total
        })
    });
    g.finish();
}

fn pipe_dialer(_: &Addr, _: &DialContext) -> Result<Box<dyn Stream>, DialError> {
    Ok(Box::new(pipe().0))
}

/// Reading the published state of a manager holding 10,000 established
/// connections: the full `snapshot()` copy and the `counts()` shortcut.
fn snapshot(c: &mut Criterion) {
    const N: usize = 10_000;
    let held = Arc::new(Mutex::new(Vec::new()));
    let connected = Arc::new(AtomicUsize::new(0));
    let (h, n) = (Arc::clone(&held), Arc::clone(&connected));
    let config = Config::builder()
        .dialer(pipe_dialer)
        .on_connection(move |_, _, conn| {
            h.lock().push(conn);
            n.fetch_add(1, Ordering::AcqRel);
        })
        .build();
    let manager = ConnManager::new(config).expect("valid config");
    manager.start().expect("start");
    for i in 0..N as u64 {
        manager
            .handle()
            .connect(ConnReq::new(addr(i)))
            .expect("connect");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while connected.load(Ordering::Acquire) < N {
        assert!(Instant::now() < deadline, "connections not established");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(manager.handle().snapshot().conns.len(), N);
    let mut g = c.benchmark_group("snapshot");
    g.bench_function("snapshot_10k", |b| b.iter(|| manager.handle().snapshot()));
    g.bench_function("counts_10k", |b| b.iter(|| manager.handle().counts()));
    g.finish();
    manager.stop();
}

/// The ban score: the convenience pair (two clock reads), one shared clock
/// read, a fixed instant, and the clock read alone.
fn banscore(c: &mut Criterion) {
    let mut g = c.benchmark_group("banscore");
    g.bench_function("increase_then_score", |b| {
        let mut s = DynamicBanScore::new();
        b.iter(|| {
            black_box(s.increase(0, black_box(1)));
            s.score()
        })
    });
    g.bench_function("increase_at_then_score_at_one_clock_read", |b| {
        let mut s = DynamicBanScore::new();
        b.iter(|| {
            let now = Instant::now();
            black_box(s.increase_at(0, black_box(1), now));
            s.score_at(now)
        })
    });
    g.bench_function("increase_at_then_score_at_fixed_now", |b| {
        let mut s = DynamicBanScore::new();
        let now = Instant::now();
        b.iter(|| {
            black_box(s.increase_at(0, black_box(1), black_box(now)));
            s.score_at(black_box(now))
        })
    });
    g.bench_function("decayed_score_at_90s", |b| {
        let mut s = DynamicBanScore::new();
        let t0 = Instant::now();
        s.increase_at(10, 1_000, t0);
        let later = t0 + Duration::from_secs(90);
        b.iter(|| s.score_at(black_box(later)))
    });
    g.bench_function("instant_now", |b| b.iter(Instant::now));
    g.finish();
}

/// Trim selection alone over 10,000 candidates with random values (2,000
/// chosen), and the candidate list's construction for comparison.
fn trim_select(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut rng = Lcg(11);
    let make = |rng: &mut Lcg| -> Vec<TrimCandidate> {
        (0..TRIM_CONNS as u64)
            .map(|key| TrimCandidate {
                key,
                peer: PeerId::from(addr(key).to_string()),
                inbound: rng.next(2) == 0,
                opened: t0 + Duration::from_millis(rng.next(100_000)),
                protected: false,
                value: rng.next(1_000) as i64,
            })
            .collect()
    };
    let cands = make(&mut rng);
    let policy = TrimPolicy::new(TRIM_LOW, TRIM_HIGH)
        .expect("watermarks")
        .with_grace(Duration::ZERO);
    let now = t0 + Duration::from_secs(200);
    assert_eq!(policy.select(&cands, now).len(), TRIM_CONNS - TRIM_LOW);
    let mut g = c.benchmark_group("trim");
    g.bench_function("select_10k", |b| {
        b.iter(|| policy.select(black_box(&cands), now))
    });
    g.bench_function("clone_10k_candidates", |b| b.iter(|| cands.clone()));
    g.finish();
}

/// Inbound eviction over a full house of 125 candidates from 40 netgroups,
/// with measured pings, blocks and transactions on some of them.
fn eviction(c: &mut Criterion) {
    let t0 = Instant::now();
    let now = t0 + Duration::from_secs(3_600);
    let key = EvictionKey::from_keys(1, 2);
    let mut rng = Lcg(3);
    let cands: Vec<EvictionCandidate> = (0..125u64)
        .map(|k| {
            let ip = SocketAddr::from(([100, rng.next(40) as u8, 7, k as u8], 8333));
            let a = Addr::Ip(ip);
            let group = key.keyed_netgroup(&a.netgroup());
            let connected = t0 + Duration::from_secs(rng.next(3_000));
            let mut c = EvictionCandidate::new(k, connected, group, CandidateNet::from_addr(&a));
            c.relevant_services = true;
            if rng.next(2) == 0 {
                c.min_ping = Some(Duration::from_millis(5 + rng.next(300)));
            }
            if rng.next(5) == 0 {
                c.last_block = Some(connected + Duration::from_secs(rng.next(500)));
            }
            if rng.next(3) == 0 {
                c.last_tx = Some(connected + Duration::from_secs(rng.next(500)));
            }
            c
        })
        .collect();
    let policy = EvictionPolicy::default();
    assert!(policy.select_to_evict(cands.clone(), now).is_some());
    c.bench_function("eviction/select_to_evict_125", |b| {
        b.iter_batched(
            || cands.clone(),
            |cands| policy.select_to_evict(cands, now),
            BatchSize::SmallInput,
        )
    });
}

/// Address parsing of each kind, and the address text every connection's
/// default peer id is made from.
fn addr_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("addr");
    let inputs = [
        ("parse_ipv4", "203.0.113.7:8333"),
        ("parse_ipv6", "[2001:db8::1:2]:8333"),
        ("parse_dns", "seed.bitcoin.example.org:8333"),
        (
            "parse_onion",
            "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion:443",
        ),
    ];
    for (name, text) in inputs {
        assert!(text.parse::<Addr>().is_ok(), "{text}");
        g.bench_function(name, |b| b.iter(|| black_box(text).parse::<Addr>()));
    }
    let v4: Addr = "203.0.113.7:8333".parse().expect("address");
    g.bench_function("to_string_ipv4", |b| b.iter(|| black_box(&v4).to_string()));
    g.bench_function("peer_id_from_ipv4", |b| {
        b.iter(|| default_peer_id(black_box(&v4)))
    });
    g.finish();
}

criterion_group! {
    name = micro;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = core_cycle, core_trim, core_first_tag, snapshot, banscore, trim_select, eviction, addr_parse
}
criterion_main!(micro);

/// `base` with the changes `f` makes (the config is non-exhaustive).
fn with_cfg(mut base: CoreConfig, f: impl FnOnce(&mut CoreConfig)) -> CoreConfig {
    f(&mut base);
    base
}
