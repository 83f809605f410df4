//! A live demo node on loopback: a `ConnManager` with real TCP sockets.
//!
//! It starts a few tiny local peers on distinct loopback addresses
//! (127.0.0.2, 127.0.0.3, ...): healthy ones that hold connections, ones
//! that drop every connection right after accepting, and ones whose port
//! is closed so dials are refused. The manager fills its automatic
//! outbound target from an address source cycling through them, keeps two
//! permanent peers (one healthy, one that drops, so its retry backoff grows
//! from 1 s towards 8 s), and listens for inbound connections from local
//! clients, more of them than it admits, so some are refused.
//!
//! The policy shows too: the first inbound peers are tagged (one of them
//! protected), watermarks trim the connection count back down when the
//! inbound clients push it over, and a few seconds in, the node reports an
//! outbound peer as misbehaving, which bans its address.
//!
//! Once a second it prints counts by state and direction, running totals,
//! the permanent peers with their retry state, the policy state (bans,
//! trims, tagged and protected peers, closes by reason) and the last few
//! events; then it stops everything and joins every thread it started. See
//! `cargo run --release --example node -- --help` for the flags.

use std::collections::VecDeque;
use std::io::ErrorKind::{TimedOut, WouldBlock};
use std::io::{self, IsTerminal, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use connmgr::{
    Addr, Config, ConnId, ConnManager, ConnReq, ConnType, Event, Snapshot, Stats, TcpDialer,
};

const USAGE: &str = "\
usage: node [flags]

  --connect ADDR     permanent peer HOST:PORT (repeatable; replaces the two built-in ones)
  --listen ADDR      inbound listen address (default 127.0.0.1:0, a free port)
  --target N         full-relay outbound connections to keep (default 8;
                     2 block-relay-only ones come on top)
  --max-inbound N    inbound connections admitted at once (default 8)
  --seconds N        how long to run (default 20)
  --json             at the end, print the snapshot as JSON, as an RPC's getpeerinfo
                     would serve it (needs `--features serde`)
  --help             show this text";

/// Ring size for recent events: enough to see a pattern, short enough to fit a screen.
const RECENT: usize = 8;
/// Separates frames when stdout is not a terminal.
const RULE: &str = "------------------------------------------------------------------------\n";
/// How often idle loops look at the stop flag, so shutdown is prompt.
const POLL: Duration = Duration::from_millis(50);
/// Inbound peers tagged as useful (the first of them also protected).
const TAGGED: usize = 3;
/// When the node reports an outbound peer as misbehaving.
const MISBEHAVE_AT: u64 = 6;

/// Settings from the command line.
struct Opts {
    connect: Vec<Addr>,
    listen: SocketAddr,
    target: usize,
    max_inbound: usize,
    seconds: u64,
    json: bool,
}

fn main() {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(Some(opts)) => opts,
        Ok(None) => return println!("{USAGE}"),
        Err(msg) => fail(&msg),
    };
    if let Err(e) = run(opts) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Bad input is the caller's to fix: say what and exit 2, never panic.
fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}\nrun with --help to see the flags");
    std::process::exit(2);
}

/// Parses flags; `Ok(None)` means `--help` was asked for.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Opts>, String> {
    let mut opts = Opts {
        connect: Vec::new(),
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        target: 8,
        max_inbound: 8,
        seconds: 20,
        json: false,
    };
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Ok(None);
        }
        if flag == "--json" {
            if !cfg!(feature = "serde") {
                return Err("--json needs the serde feature: cargo run --release --example node --features serde -- --json".into());
            }
            opts.json = true;
            continue;
        }
        if !FLAGS.split(' ').any(|f| f == flag) {
            return Err(format!("unknown argument '{flag}'; known: {FLAGS} --help"));
        }
        let example = match flag.as_str() {
            "--connect" => "127.0.0.1:8333",
            "--listen" => "127.0.0.1:0",
            _ => "8",
        };
        let v = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value after it, e.g. {flag} {example}"))?;
        match flag.as_str() {
            "--connect" => opts.connect.push(v.parse().map_err(|e| {
                format!("--connect expects HOST:PORT such as 127.0.0.1:8333: {e}")
            })?),
            "--listen" => {
                opts.listen = v.parse().map_err(|_| {
                    format!("--listen expects IP:PORT such as 127.0.0.1:0 (port 0 picks a free port), got '{v}'")
                })?
            }
            "--target" => opts.target = parse_num(&flag, &v, 0, 1000)? as usize,
            "--max-inbound" => opts.max_inbound = parse_num(&flag, &v, 0, 1000)? as usize,
            _ => opts.seconds = parse_num(&flag, &v, 1, 3600)?,
        }
    }
    Ok(Some(opts))
}

/// The flags that take a value.
const FLAGS: &str = "--connect --listen --target --max-inbound --seconds --json";

fn parse_num(flag: &str, text: &str, min: u64, max: u64) -> Result<u64, String> {
    let n = text.parse::<u64>().ok().filter(|n| (min..=max).contains(n));
    n.ok_or_else(|| format!("{flag} expects a number from {min} to {max}, got '{text}'"))
}

/// What a local peer does with the connections it gets.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Healthy,
    Dropper,
    Refusing,
}

/// Local peers and clients share one stop flag and are joined at the end.
#[derive(Default)]
struct Local {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Local {
    /// Starts a peer on `127.0.0.{host}` (or 127.0.0.1 where only that
    /// works) and returns its address.
    fn peer(&mut self, host: u8, kind: Kind) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind((Ipv4Addr::new(127, 0, 0, host), 0))
            .or_else(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))?;
        let addr = listener.local_addr()?;
        if kind == Kind::Refusing {
            // The port was ours a moment ago, so nothing else answers on it.
            return Ok(addr);
        }
        listener.set_nonblocking(true)?;
        let serve = move |stop: &AtomicBool| serve_peer(listener, kind, stop);
        self.spawn(format!("peer-{addr}"), serve)?;
        Ok(addr)
    }

    /// Runs `f` on a thread that gets the shared stop flag.
    fn spawn(
        &mut self,
        name: String,
        f: impl FnOnce(&AtomicBool) + Send + 'static,
    ) -> io::Result<()> {
        let stop = Arc::clone(&self.stop);
        self.threads
            .push(thread::Builder::new().name(name).spawn(move || f(&stop))?);
        Ok(())
    }

    fn shutdown(self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Polls accept so the stop flag is seen without a wake-up connection;
/// the scope joins the echo threads before returning.
fn serve_peer(listener: TcpListener, kind: Kind, stop: &AtomicBool) {
    thread::scope(|scope| {
        while !stop.load(Ordering::Acquire) {
            match listener.accept() {
                Ok((s, _)) if kind == Kind::Healthy => {
                    let _ = s.set_nonblocking(false);
                    let _ = thread::Builder::new().spawn_scoped(scope, move || hold(s, None, stop));
                }
                Ok((s, _)) => drop(s),
                Err(_) => thread::sleep(POLL),
            }
        }
    });
}

/// Reads until EOF, stop, or `until`, echoing when no deadline is set
/// (a peer); the read timeout lets it notice stop.
fn hold(mut s: TcpStream, until: Option<Instant>, stop: &AtomicBool) {
    let _ = s.set_read_timeout(Some(POLL));
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Acquire) && until.is_none_or(|t| Instant::now() < t) {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) if until.is_none() && s.write_all(&buf[..n]).is_err() => return,
            Err(e) if !matches!(e.kind(), WouldBlock | TimedOut) => return,
            _ => {}
        }
    }
}

/// Connects, holds until the manager closes us (refused) or `hold_for`
/// passes, then comes back: keeps accepts and refusals going.
fn run_client(target: SocketAddr, hold_for: Duration, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        if let Ok(s) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
            hold(s, Some(Instant::now() + hold_for), stop);
        }
        // Wait a second before coming back, but notice stop at once.
        (0..20)
            .take_while(|_| !stop.load(Ordering::Acquire))
            .for_each(|_| thread::sleep(POLL));
    }
}

/// What the callbacks share with the status printer.
struct Activity {
    start: Instant,
    recent: Mutex<VecDeque<String>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Peers tagged on accept, first one protected.
    tagged: Mutex<Vec<connmgr::PeerId>>,
}

impl Activity {
    fn log(&self, what: String) {
        let t = self.start.elapsed().as_secs_f64();
        let mut recent = self.recent.lock().unwrap();
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(format!("{t:6.1}s  {what}"));
    }

    /// Reads each connection on its own thread until EOF, then drops it,
    /// which tells the manager the connection closed.
    fn serve(&self, mut conn: connmgr::Conn) {
        let work = move || {
            let _ = conn.write_all(b"hello\n");
            let mut buf = [0u8; 512];
            while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
        };
        let mut workers = self.workers.lock().unwrap();
        // Forget finished threads so churn does not grow the list.
        workers.retain(|t| !t.is_finished());
        if let Ok(t) = thread::Builder::new().name("conn".into()).spawn(work) {
            workers.push(t);
        }
    }

    /// Tags the first inbound peers as useful, protecting the first: a
    /// trim then closes other connections before them.
    fn tag_if_early(&self, handle: &connmgr::Handle, conn: &connmgr::Conn) {
        let mut tagged = self.tagged.lock().unwrap();
        if tagged.len() >= TAGGED {
            return;
        }
        let peer = connmgr::PeerId::from(conn.remote_addr().to_string());
        let _ = handle.tag(peer.clone(), "useful", 10 * (TAGGED - tagged.len()) as i64);
        if tagged.is_empty() {
            let _ = handle.protect(peer.clone(), "demo");
        }
        self.log(format!("tagged         {peer}"));
        tagged.push(peer);
    }

    fn on_event(&self, ev: Event) {
        match ev {
            Event::InboundClosed { id, addr, reason } => {
                self.log(format!("inbound closed {id} ({addr}, {reason})"))
            }
            Event::DialFailed {
                req,
                error,
                retry_in,
            } => {
                let retry = retry_in.map_or(String::new(), |d| {
                    format!(", retry in {:.1}s", d.as_secs_f64())
                });
                self.log(format!("dial failed    {req}: {error}{retry}"));
            }
            // Connected, Disconnected and Accepted have their own callbacks.
            _ => {}
        }
    }
}

fn tag(req: &ConnReq) -> &'static str {
    if req.is_permanent() {
        return " [permanent]";
    }
    match req.conn_type() {
        ConnType::FullRelay => " [full-relay]",
        ConnType::BlockRelay => " [block-relay]",
        ConnType::Feeler => " [feeler]",
        ConnType::OneShot => " [one-shot]",
        _ => "",
    }
}

/// Builds the manager with callbacks that log and serve connections. A
/// bad --listen is the user's to fix; exiting also ends the peer threads.
fn build_manager(opts: &Opts, sources: Vec<Addr>, act: &Arc<Activity>) -> ConnManager {
    let next = AtomicUsize::new(0);
    let (a1, a2, a3, a4) = (act.clone(), act.clone(), act.clone(), act.clone());
    // Full-relay, 2 block-relay-only, 2 permanent peers and a feeler.
    let outbound = opts.target + 2 + 2 + 1;
    let config = Config::builder()
        .dialer(TcpDialer::new().timeout(Duration::from_secs(2)))
        .dial_timeout(Duration::from_secs(2))
        .address_source(move || {
            let i = next.fetch_add(1, Ordering::Relaxed);
            sources.get(i % sources.len().max(1)).cloned()
        })
        .target_outbound(opts.target)
        .max_inbound(opts.max_inbound)
        .listen(opts.listen)
        // Short waits so backoff growth shows within a 20 s run.
        .retry_duration(Duration::from_secs(1))
        .max_retry_duration(Duration::from_secs(8))
        // Feelers often enough to see in a short run; each ends as soon as
        // it connects, standing in for a finished protocol handshake.
        .feeler_interval(Some(Duration::from_secs(4)))
        .on_connection(move |handle, req, conn| {
            a1.log(format!("connected      {req}{}", tag(&req)));
            if req.conn_type() == ConnType::Feeler {
                let _ = handle.handshake_done(conn.id());
            }
            a1.serve(conn);
        })
        .on_disconnection(move |_, req, why| {
            a2.log(format!("disconnected   {req}{} ({why})", tag(&req)))
        })
        .on_accept(move |handle, conn| {
            let what = format!("accepted       {} ({})", conn.id(), conn.remote_addr());
            a3.log(what);
            a3.tag_if_early(handle, &conn);
            a3.serve(conn);
        })
        // Trim when the inbound clients push the count over the high
        // watermark; permanent and protected peers are kept.
        .watermarks(
            outbound + opts.max_inbound / 4,
            outbound + opts.max_inbound / 2,
        )
        .trim_grace(Duration::from_secs(2))
        .trim_silence(Duration::from_secs(3))
        .on_event(move |_, ev| a4.on_event(ev))
        .build();
    ConnManager::new(config).unwrap_or_else(|e| fail(&e.to_string()))
}

/// Starts the local peers; returns the address source's list, the
/// permanent peers (`connect`, or two built-in ones), and a legend.
fn start_peers(local: &mut Local, connect: &[Addr]) -> io::Result<(Vec<Addr>, Vec<Addr>, String)> {
    use Kind::*;
    // More healthy peers than the full-relay and block-relay targets (one
    // gets banned, feelers test others): automatic connections never
    // share a peer, so missing healthy ones would leave slots cycling over
    // the droppers and refusers.
    let plan = [
        Healthy, Healthy, Healthy, Healthy, Healthy, Healthy, Healthy, Healthy, Healthy, Healthy,
        Healthy, Healthy, Healthy, Dropper, Dropper, Refusing, Refusing,
    ];
    let mut sources = Vec::new();
    let mut legend = [String::new(), String::new(), String::new()];
    for (host, kind) in (2..).zip(plan) {
        let addr = local.peer(host, kind)?;
        sources.push(Addr::from(addr));
        legend[kind as usize].push_str(&format!(" {addr}"));
    }
    let mut permanent = connect.to_vec();
    if connect.is_empty() {
        permanent.push(Addr::from(local.peer(20, Kind::Healthy)?));
        permanent.push(Addr::from(local.peer(21, Kind::Dropper)?));
    }
    let legend = format!(
        "local peers  healthy:{}\n             drop:{}\n             refuse:{}",
        legend[0], legend[1], legend[2]
    );
    Ok((sources, permanent, legend))
}

fn run(opts: Opts) -> io::Result<()> {
    let act = Arc::new(Activity {
        start: Instant::now(),
        recent: Mutex::new(VecDeque::new()),
        workers: Mutex::new(Vec::new()),
        tagged: Mutex::new(Vec::new()),
    });
    let mut local = Local::default();
    let (sources, permanent, legend) = start_peers(&mut local, &opts.connect)?;
    let manager = build_manager(&opts, sources, &act);
    manager.start().map_err(io::Error::other)?;
    let ids: Vec<ConnId> = permanent
        .into_iter()
        .filter_map(|a| manager.handle().connect(ConnReq::permanent(a)).ok())
        .collect();
    let listen = manager
        .handle()
        .listen_addrs()
        .first()
        .and_then(Addr::socket_addr);
    if let Some(mut target) = listen {
        // Clients reach a wildcard listener through loopback.
        if target.ip().is_unspecified() {
            target.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        // More clients than slots, so some are refused.
        for n in 0..opts.max_inbound.min(28) + 4 {
            // Different hold times so slots free up at different moments.
            let hold = Duration::from_millis(2500 + 700 * (n as u64 % 7));
            let client = move |stop: &AtomicBool| run_client(target, hold, stop);
            local.spawn(format!("client-{n}"), client)?;
        }
    }
    let listen = listen.map_or("-".to_string(), |a| a.to_string());
    let header = format!(
        "listening on {listen}   target outbound {}   max inbound {}\n{legend}",
        opts.target, opts.max_inbound
    );
    show_frames(&manager, &act, &header, &ids, opts.seconds);
    if opts.json {
        print_json(&manager.handle().snapshot());
    }
    finish(manager, local, &act);
    Ok(())
}

/// Prints one frame a second, on the second, for `seconds` seconds.
fn show_frames(manager: &ConnManager, act: &Activity, header: &str, ids: &[ConnId], seconds: u64) {
    let tty = io::stdout().is_terminal();
    for s in 1..=seconds {
        let due = act.start + Duration::from_secs(s);
        thread::sleep(due.saturating_duration_since(Instant::now()));
        if s == MISBEHAVE_AT {
            misbehave(manager.handle(), act);
        }
        let mut body = frame(&manager.handle().snapshot(), act, header, ids, seconds);
        body.insert_str(
            body.find("\nrecent events").unwrap_or(body.len()),
            &policy(manager.handle(), act),
        );
        // Clear the screen on a terminal; elsewhere keep every frame.
        let sep = if tty { "\x1b[2J\x1b[H" } else { RULE };
        let mut out = io::stdout().lock();
        let _ = write!(out, "{sep}{body}");
        let _ = out.flush();
    }
}

fn frame(snap: &Snapshot, act: &Activity, header: &str, ids: &[ConnId], total: u64) -> String {
    let c = snap.counts;
    let elapsed = act.start.elapsed().as_secs_f64();
    let mut f = format!("connmgr demo node   t={elapsed:.1}s of {total}s\n{header}\n\n");
    f += &format!(
        "requests     pending {}   failing {}   disconnected (waiting to retry) {}\n\
         established  outbound {} (full-relay {}, block-relay {}, feeler {})   inbound {}\n",
        c.pending,
        c.failing,
        c.disconnected,
        c.outbound,
        c.full_relay_outbound,
        c.block_relay_outbound,
        c.feelers,
        c.inbound
    );
    f += &format!("totals       {}\n\n", totals(&snap.stats));
    f += "permanent peers\n";
    for id in ids {
        f += &permanent_line(snap, *id);
    }
    f += "\nrecent events\n";
    for line in act.recent.lock().unwrap().iter() {
        f += &format!("  {line}\n");
    }
    f
}

/// Reports the first automatic outbound peer as misbehaving past the ban
/// threshold: the manager disconnects it and bans its address, and the
/// address source's later offers of it are skipped.
fn misbehave(handle: &connmgr::Handle, act: &Activity) {
    let snap = handle.snapshot();
    let victim = snap
        .conns
        .iter()
        .find(|c| c.is_automatic() && c.state == connmgr::ConnState::Established);
    if let Some(c) = victim {
        let addr = c.addr.as_ref().map_or("-".into(), Addr::to_string);
        let _ = handle.misbehaving(c.id, 100, 0, "demo: sent an invalid block");
        act.log(format!("misbehaving    {} ({addr}): banned", c.id));
    }
}

/// Bans, trims, tagged and protected peers, and closes by reason.
fn policy(handle: &connmgr::Handle, act: &Activity) -> String {
    let mut f = String::from("\npolicy\n");
    let now = Instant::now();
    for ban in handle.bans() {
        let left = ban.until.saturating_duration_since(now).as_secs() / 3600;
        f += &format!(
            "  banned     {} for {left} h more: {}\n",
            ban.subnet, ban.reason
        );
    }
    let trims = handle.trim_info();
    if let Some(p) = trims.policy {
        f += &format!(
            "  trimming   watermarks {}..{}   connections {}   trims {} (last closed {})\n",
            p.low_watermark,
            p.high_watermark,
            trims.connections,
            trims.trims,
            trims.last_trim_closed
        );
    }
    for peer in act.tagged.lock().unwrap().iter() {
        let protected = if handle.is_protected(peer, None) {
            ", protected"
        } else {
            ""
        };
        f += &match handle.tag_info(peer) {
            Some(info) => format!("  tagged     {peer:<22} value {}{protected}\n", info.value),
            // An unprotected peer's tags go with its last connection.
            None => format!("  tagged     {peer:<22} left; its tags went with it\n"),
        };
    }
    let c = handle.snapshot().stats.closes;
    f += &format!(
        "  closes     by node {}  disconnect {}  trimmed {}  evicted {}  banned {}  misbehaving {}  \
         feelers done {}\n",
        c.closed, c.disconnect, c.trimmed, c.evicted, c.banned, c.misbehaving, c.feeler_done
    );
    f
}

fn permanent_line(snap: &Snapshot, conn_id: ConnId) -> String {
    // ConnId's Display ignores width, so pad its text.
    let id = conn_id.to_string();
    let Some(info) = snap.get(conn_id) else {
        return format!("  {id:<4} (finished)\n");
    };
    let addr = info.addr.as_ref().map_or("-".into(), |a| a.to_string());
    let next = info.next_attempt.map_or(String::new(), |at| {
        let wait = at.saturating_duration_since(Instant::now());
        format!("   next attempt in {:.1}s", wait.as_secs_f64())
    });
    format!(
        "  {id:<4} {addr:<22} {:<13} retries {}{next}\n",
        info.state.as_str(),
        info.retries
    )
}

/// Stops in dependency order: the manager first (it closes its
/// connections, ending the per-connection threads), then peers and
/// clients, then joins the per-connection threads.
fn finish(manager: ConnManager, local: Local, act: &Activity) {
    manager.stop();
    local.shutdown();
    let workers = std::mem::take(&mut *act.workers.lock().unwrap());
    for t in workers {
        let _ = t.join();
    }
    let elapsed = act.start.elapsed().as_secs_f64();
    let totals = totals(&manager.handle().snapshot().stats);
    println!("stopped cleanly after {elapsed:.1}s, all threads joined: {totals}");
}

/// The snapshot as JSON: what a node's `getpeerinfo` would serve.
#[cfg(feature = "serde")]
fn print_json(snap: &Snapshot) {
    match serde_json::to_string_pretty(snap) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("cannot serialize the snapshot: {e}"),
    }
}

#[cfg(not(feature = "serde"))]
fn print_json(_snap: &Snapshot) {}

fn totals(st: &Stats) -> String {
    format!(
        "dials {}   failures {}   outbound connects {}   accepted {}   refused {}   closed {}",
        st.dials,
        st.dial_failures,
        st.outbound_established,
        st.inbound_accepted,
        st.inbound_refused,
        st.closed
    )
}
