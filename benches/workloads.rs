//! The benchmark workloads of the project's benchmark plan (w1–w9).
//!
//! `cargo bench --bench workloads` runs all; `cargo bench --bench workloads
//! -- w4` runs one. Each figure is the median of `BENCH_RUNS` runs (default
//! 3) and is printed as `RESULT name=<workload>_<figure> value=<n> unit=<u>`.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use connmgr::{
    pipe, Addr, Config, ConnManager, ConnReq, DialContext, DialError, Stream, TcpDialer,
};
use crossbeam_channel::{bounded, Sender};
use parking_lot::Mutex;

type Workload = fn(usize);

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let runs = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3);
    let all: [(&str, Workload); 9] = [
        ("w1", w1),
        ("w2", w2),
        ("w3", w3),
        ("w4", w4),
        ("w5", w5),
        ("w6", w6),
        ("w7", w7),
        ("w8", w8),
        ("w9", w9),
    ];
    for (name, run) in all {
        if filter.is_empty() || filter.iter().any(|f| f == name) {
            eprintln!("running {name} ({runs} runs)");
            run(runs);
        }
    }
}

fn report(name: &str, value: f64, unit: &str) {
    println!("RESULT name={name} value={value:.3} unit={unit}");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Process CPU time (all threads), from the kernel's per-process clock.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the pointer we own.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Resident memory in bytes, from /proc/self/status.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A distinct made-up address per `n`, for in-memory dialers.
fn addr(n: u64) -> Addr {
    let b = (n as u32).to_be_bytes();
    Addr::Ip(SocketAddr::from((
        [10, b[1], b[2], b[3]],
        8333 + (n >> 24) as u16,
    )))
}

fn pipe_dialer(_: &Addr, _: &DialContext) -> Result<Box<dyn Stream>, DialError> {
    Ok(Box::new(pipe().0))
}

/// Counts events and signals when a count is reached.
#[derive(Clone)]
struct Counter {
    n: Arc<AtomicUsize>,
    goal: Arc<AtomicUsize>,
    done: Sender<()>,
}

impl Counter {
    fn new(done: Sender<()>) -> Self {
        Counter {
            n: Arc::new(AtomicUsize::new(0)),
            goal: Arc::new(AtomicUsize::new(usize::MAX)),
            done,
        }
    }

    fn hit(&self) {
        if self.n.fetch_add(1, Ordering::AcqRel) + 1 == self.goal.load(Ordering::Acquire) {
            let _ = self.done.send(());
        }
    }
}

/// A connect-only manager over pipes that keeps every connection.
struct Storm {
    manager: ConnManager,
    held: Arc<Mutex<Vec<connmgr::Conn>>>,
    connected: Counter,
    disconnected: Counter,
    done: crossbeam_channel::Receiver<()>,
}

impl Storm {
    fn new() -> Self {
        let (tx, done) = bounded(4);
        let connected = Counter::new(tx.clone());
        let disconnected = Counter::new(tx);
        let held = Arc::new(Mutex::new(Vec::new()));
        let (c, d, h) = (connected.clone(), disconnected.clone(), Arc::clone(&held));
        let config = Config::builder()
            .dialer(pipe_dialer)
            .dial_queue_size(16384)
            .on_connection(move |_, _, conn| {
                h.lock().push(conn);
                c.hit();
            })
            .on_disconnection(move |_, _| d.hit())
            .build();
        let manager = ConnManager::new(config).expect("valid config");
        manager.start().expect("start");
        Storm {
            manager,
            held,
            connected,
            disconnected,
            done,
        }
    }

    /// Connects `n` distinct addresses; returns the seconds it took.
    fn connect_all(&self, n: usize) -> (f64, Vec<connmgr::ConnId>) {
        self.connected.goal.store(n, Ordering::Release);
        let addrs: Vec<Addr> = (0..n as u64).map(addr).collect();
        let t0 = Instant::now();
        let ids = addrs
            .into_iter()
            .map(|a| self.manager.connect(ConnReq::new(a)).expect("connect"))
            .collect();
        self.done.recv().expect("all connected");
        (t0.elapsed().as_secs_f64(), ids)
    }

    fn disconnect_all(&self, ids: &[connmgr::ConnId]) -> f64 {
        self.disconnected.goal.store(ids.len(), Ordering::Release);
        let t0 = Instant::now();
        for id in ids {
            self.manager.disconnect(*id).expect("disconnect");
        }
        self.done.recv().expect("all disconnected");
        t0.elapsed().as_secs_f64()
    }
}

fn w1(runs: usize) {
    const N: usize = 10_000;
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let storm = Storm::new();
        let (secs, ids) = storm.connect_all(N);
        up.push(N as f64 / secs);
        down.push(N as f64 / storm.disconnect_all(&ids));
        storm.manager.stop();
        drop(storm.held);
    }
    report("w1_connect_rate", median(up), "conn/s");
    report("w1_disconnect_rate", median(down), "disconn/s");
}

fn w6(runs: usize) {
    const N: usize = 100_000;
    let mut per = Vec::new();
    for _ in 0..runs {
        let storm = Storm::new();
        let before = rss_bytes();
        let _ = storm.connect_all(N);
        let after = rss_bytes();
        per.push(after.saturating_sub(before) as f64 / N as f64);
        storm.manager.stop();
    }
    report("w6_rss_per_conn", median(per), "bytes");
}

fn w7(runs: usize) {
    const N: usize = 10_000;
    let (mut p50, mut p99) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (tx, rx) = bounded(1);
        let held = Arc::new(Mutex::new(Vec::new()));
        let h = Arc::clone(&held);
        let config = Config::builder()
            .dialer(pipe_dialer)
            .on_connection(move |_, _, conn| {
                h.lock().push(conn);
                let _ = tx.send(Instant::now());
            })
            .build();
        let manager = ConnManager::new(config).expect("valid config");
        manager.start().expect("start");
        let mut lat: Vec<f64> = (0..N as u64)
            .map(|n| {
                let t0 = Instant::now();
                manager.connect(ConnReq::new(addr(n))).expect("connect");
                let t1 = rx.recv().expect("connected");
                t1.duration_since(t0).as_secs_f64() * 1e6
            })
            .collect();
        lat.sort_by(|a, b| a.total_cmp(b));
        p50.push(lat[N / 2]);
        p99.push(lat[N * 99 / 100]);
        manager.stop();
    }
    report("w7_connect_p50", median(p50), "us");
    report("w7_connect_p99", median(p99), "us");
}

fn w2(runs: usize) {
    let (mut rate, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let next = Arc::new(AtomicU64::new(0));
        let config = Config::builder()
            .dialer(pipe_dialer)
            .target_outbound(8)
            .address_source(move || Some(addr(next.fetch_add(1, Ordering::Relaxed))))
            .on_connection(|handle, req, conn| {
                drop(conn);
                let _ = handle.disconnect(req.id().expect("submitted"));
            })
            .build();
        let (secs, n, cpu_s) = run_for(config, Duration::from_secs(5));
        rate.push(n as f64 / secs);
        cpu.push(cpu_s * 1e6 / n.max(1) as f64);
    }
    report("w2_churn_rate", median(rate), "conn/s");
    report("w2_cpu_per_conn", median(cpu), "us");
}

/// Runs a manager for `d`; returns (seconds, outbound connections made,
/// process CPU seconds).
fn run_for(config: Config, d: Duration) -> (f64, u64, f64) {
    let manager = ConnManager::new(config).expect("valid config");
    let (c0, t0) = (cpu_time(), Instant::now());
    manager.start().expect("start");
    thread::sleep(d);
    let n = manager.snapshot().stats.outbound_established;
    let (secs, cpu) = (t0.elapsed().as_secs_f64(), cpu_time() - c0);
    manager.stop();
    (secs, n, cpu.as_secs_f64())
}

fn w3(runs: usize) {
    let (mut dials, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let next = Arc::new(AtomicU64::new(0));
        let config = Config::builder()
            .dialer(
                |_: &Addr, _: &DialContext| -> Result<Box<dyn Stream>, DialError> {
                    Err(DialError::Refused)
                },
            )
            .target_outbound(8)
            .address_source(move || Some(addr(next.fetch_add(1, Ordering::Relaxed))))
            .build();
        let manager = ConnManager::new(config).expect("valid config");
        let c0 = cpu_time();
        manager.start().expect("start");
        thread::sleep(Duration::from_secs(10));
        dials.push(manager.snapshot().stats.dials as f64);
        cpu.push((cpu_time() - c0).as_secs_f64() * 1e3);
        manager.stop();
    }
    report("w3_dial_attempts", median(dials), "dials");
    report("w3_cpu_time", median(cpu), "ms");
}

fn w4(runs: usize) {
    let (mut churn, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let server = RawServer::start();
        raw.push(raw_rate(server.addr, Duration::from_secs(2)));
        let target = Addr::Ip(server.addr);
        let config = Config::builder()
            .dialer(TcpDialer::new())
            .target_outbound(64)
            .dialer_pool_size(64)
            .address_source(move || Some(target.clone()))
            .on_connection(|handle, req, conn| {
                conn.close();
                let _ = handle.disconnect(req.id().expect("submitted"));
            })
            .build();
        let (secs, n, _) = run_for(config, Duration::from_secs(5));
        churn.push(n as f64 / secs);
    }
    let (churn, raw) = (median(churn), median(raw));
    report("w4_churn_rate", churn, "conn/s");
    report("w4_raw_rate", raw, "conn/s");
    report("w4_ratio_to_raw", churn / raw, "ratio");
}

/// A loopback server that accepts and holds each connection until the
/// client closes it.
struct RawServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl RawServer {
    fn start() -> Self {
        let listener = bind_deep("127.0.0.1:0".parse().expect("addr"));
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || hold_loop(&listener, &flag));
        RawServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

/// Accepts and keeps each connection until a non-blocking read shows the
/// client closed it.
fn hold_loop(listener: &std::net::TcpListener, stop: &AtomicBool) {
    let mut held: Vec<TcpStream> = Vec::new();
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::Acquire) {
        if let Ok((s, _)) = listener.accept() {
            let _ = s.set_nonblocking(true);
            held.push(s);
        }
        held.retain_mut(|s| match s.read(&mut buf) {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) => e.kind() == ErrorKind::WouldBlock,
        });
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A std listener with a backlog of 1024: std's 128 overflows here and
/// stalls clients for a second on SYN retransmit.
fn bind_deep(addr: SocketAddr) -> std::net::TcpListener {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).expect("socket");
    socket.set_reuse_address(true).expect("reuse");
    socket.bind(&addr.into()).expect("bind");
    socket.listen(1024).expect("listen");
    socket.into()
}

/// Connect+close in a plain loop: the machine's own limit.
fn raw_rate(addr: SocketAddr, d: Duration) -> f64 {
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < d {
        if let Ok(s) = TcpStream::connect(addr) {
            drop(s);
            n += 1;
        }
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

fn w9(runs: usize) {
    const N: usize = 10_000;
    const CLIENTS: usize = 20;
    let (mut rate, mut peak) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let config = Config::builder()
            .dialer(TcpDialer::new())
            .listen("127.0.0.1:0".parse().expect("addr"))
            .max_inbound(125)
            .on_accept(|_, conn| drop(conn))
            .build();
        let manager = ConnManager::new(config).expect("valid config");
        manager.start().expect("start");
        let Addr::Ip(target) = manager.listen_addrs()[0].clone() else {
            unreachable!("a TCP listener has an IP address")
        };
        let t0 = Instant::now();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| thread::spawn(move || flood(target, N / CLIENTS)))
            .collect();
        for c in clients {
            c.join().expect("client thread");
        }
        rate.push(N as f64 / t0.elapsed().as_secs_f64());
        peak.push(manager.snapshot().stats.peak_inbound as f64);
        manager.stop();
    }
    report("w9_accept_rate", median(rate), "conn/s");
    report(
        "w9_max_live_inbound",
        peak.into_iter().fold(0.0, f64::max),
        "conns",
    );
}

/// Opens `n` connections one after another, holding each until the server
/// closes it.
fn flood(target: SocketAddr, n: usize) {
    let mut buf = [0u8; 16];
    for _ in 0..n {
        if let Ok(mut s) = TcpStream::connect(target) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            while matches!(s.read(&mut buf), Ok(k) if k > 0) {}
        }
    }
}

fn w5(_runs: usize) {
    println!(
        "RESULT name=w5_banscore value=nan unit=ns/op (not available yet: needs the ban score)"
    );
}

fn w8(_runs: usize) {
    println!("RESULT name=w8_trim_ms value=nan unit=ms (not available yet: needs trimming)");
}
