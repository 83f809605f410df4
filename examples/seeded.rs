//! DNS seeding wired to a `ConnManager`'s address source.
//!
//! By default it runs offline: a made-up network ("demonet") whose two
//! seeds are answered by a tiny in-process [`Lookup`] with loopback
//! addresses, and a few local peers listening on those addresses. Seeding
//! runs on its own thread and fills a shared queue; the manager's address
//! source pops from that queue, so connections start as soon as the first
//! seed answers. One seeded address (127.0.0.6) has no peer behind it, as
//! happens with real seeds: if the manager gets to it, that dial is
//! refused and it takes the next address.
//!
//! ```text
//! cargo run --example seeded
//! cargo run --example seeded -- --mainnet
//! ```
//!
//! With `--mainnet` it only asks Bitcoin's mainnet DNS seeds through the
//! system resolver and prints what they return, without connecting. To
//! seed a real node, keep the wiring below and change two values:
//!
//! ```text
//! let net = NetParams::mainnet();          // instead of demo_network(..)
//! let lookup = Arc::new(SystemLookup);      // instead of DemoLookup
//! // or TorLookup::new("127.0.0.1:9050".parse()?) when the node uses Tor,
//! // or HickoryLookup::new(resolver_addr)? with the `hickory` feature.
//! ```

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use connmgr::seed::{
    seed_from_dns, Lookup, LookupError, LookupErrorKind, NetParams, SeedOptions, SeedResult,
    SystemLookup,
};
use connmgr::{Addr, Config, Conn, ConnManager, TcpDialer};

/// Service bits asked of the seeds: full node (1) + segwit (8), as a
/// Bitcoin node would; filtering seeds get the `x9.` subdomain.
const SERVICES: u64 = 9;
/// Loopback hosts of the local peers (127.0.0.N); 127.0.0.6 is seeded but
/// has no peer, so dialing it is refused.
const PEER_HOSTS: [u8; 4] = [2, 3, 4, 5];
/// How long the demo waits for the connections it expects.
const RUN_FOR: Duration = Duration::from_secs(10);

fn main() {
    let result = if std::env::args().any(|arg| arg == "--mainnet") {
        print_mainnet_seeds();
        Ok(())
    } else {
        run_demo()
    };
    if let Err(err) = result {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

/// Answers the demo seeds from a fixed table instead of DNS.
struct DemoLookup;

impl Lookup for DemoLookup {
    fn lookup(&self, host: &str, _timeout: Duration) -> Result<Vec<IpAddr>, LookupError> {
        let hosts: &[u8] = match host {
            // The filtering seed, asked for nodes with services 9.
            "x9.seed-a.demo" => &[2, 3],
            "seed-b.demo" => &[4, 5, 6],
            _ => {
                return Err(LookupError::new(
                    LookupErrorKind::NotFound,
                    host,
                    "unknown demo seed",
                ))
            }
        };
        Ok(hosts
            .iter()
            .map(|&h| IpAddr::V4(Ipv4Addr::new(127, 0, 0, h)))
            .collect())
    }
}

/// A network of our own: its peers use `port`, one seed filters by
/// service bits and one does not.
fn demo_network(port: u16) -> NetParams {
    NetParams::new("demonet", port)
        .seed("seed-a.demo", true)
        .seed("seed-b.demo", false)
}

fn run_demo() -> io::Result<()> {
    let peers = Peers::start()?;
    let net = demo_network(peers.port);
    let queue: Arc<Mutex<VecDeque<Addr>>> = Arc::default();
    let seeding = spawn_seeding(net, Arc::new(DemoLookup), Arc::clone(&queue))?;

    let connected = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connected);
    // Dropping a `Conn` closes it; a node would hand it to its peer logic.
    let open: Arc<Mutex<Vec<Conn>>> = Arc::default();
    let keep = Arc::clone(&open);
    let source = Arc::clone(&queue);
    let config = Config::builder()
        .dialer(TcpDialer::new())
        // The address source: whatever seeding has queued so far.
        .address_source(move || source.lock().unwrap().pop_front())
        .target_outbound(PEER_HOSTS.len())
        .retry_duration(Duration::from_millis(200))
        .on_connection(move |_handle, _req, conn| {
            println!("connected to {}", conn.remote_addr());
            keep.lock().unwrap().push(conn);
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .build();
    let manager = ConnManager::new(config).map_err(io::Error::other)?;
    manager.start().map_err(io::Error::other)?;

    let end = Instant::now() + RUN_FOR;
    while connected.load(Ordering::SeqCst) < PEER_HOSTS.len() && Instant::now() < end {
        thread::sleep(Duration::from_millis(50));
    }
    println!(
        "{} of {} peers connected",
        connected.load(Ordering::SeqCst),
        PEER_HOSTS.len()
    );
    manager.stop();
    open.lock().unwrap().clear();
    let _ = seeding.join();
    peers.stop();
    Ok(())
}

/// Seeds on a background thread, queueing every address for the manager.
fn spawn_seeding(
    net: NetParams,
    lookup: Arc<dyn Lookup>,
    queue: Arc<Mutex<VecDeque<Addr>>>,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("seeding".into())
        .spawn(move || {
            let options = SeedOptions::new()
                .allow_local(true)
                .services(SERVICES)
                .timeout(Duration::from_secs(5));
            seed_from_dns(&net, &*lookup, &options, |result| {
                report(&result);
                let mut queue = queue.lock().unwrap();
                queue.extend(result.addrs.into_iter().map(|seeded| seeded.addr));
            });
        })
}

fn report(result: &SeedResult) {
    match &result.error {
        None => println!(
            "seed {} (asked {}): {} addresses",
            result.seed,
            result.query,
            result.addrs.len()
        ),
        Some(err) => println!("seed {} failed: {err}", result.seed),
    }
}

/// `--mainnet`: ask the real seeds through the system resolver and print
/// the answers; nothing is dialed.
fn print_mainnet_seeds() {
    let options = SeedOptions::new()
        .allow_local(true)
        .services(SERVICES)
        .max_per_seed(4);
    seed_from_dns(&NetParams::mainnet(), &SystemLookup, &options, |result| {
        report(&result);
        for seeded in &result.addrs {
            println!("  {}", seeded.addr);
        }
    });
}

/// Local peers on 127.0.0.2-5, all on one port as a real network's peers
/// share its default port; they hold connections until stopped.
struct Peers {
    port: u16,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Peers {
    fn start() -> io::Result<Peers> {
        let first = TcpListener::bind((Ipv4Addr::new(127, 0, 0, PEER_HOSTS[0]), 0))?;
        let port = first.local_addr()?.port();
        let mut listeners = vec![first];
        for &host in &PEER_HOSTS[1..] {
            listeners.push(TcpListener::bind((Ipv4Addr::new(127, 0, 0, host), port))?);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for listener in listeners {
            listener.set_nonblocking(true)?;
            let stop = Arc::clone(&stop);
            threads.push(thread::spawn(move || serve(listener, &stop)));
        }
        Ok(Peers {
            port,
            stop,
            threads,
        })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Accepts and keeps connections open (reading and discarding) until
/// `stop`; polling keeps shutdown prompt without a wake-up connection.
fn serve(listener: TcpListener, stop: &AtomicBool) {
    let mut held = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        if let Ok((stream, peer)) = listener.accept() {
            let _ = stream.set_nonblocking(true);
            held.push((stream, peer));
        }
        held.retain_mut(|(stream, _): &mut (std::net::TcpStream, SocketAddr)| {
            let mut buf = [0u8; 256];
            match stream.read(&mut buf) {
                Ok(0) => false,
                Ok(_) => true,
                Err(err) => err.kind() == ErrorKind::WouldBlock,
            }
        });
        thread::sleep(Duration::from_millis(20));
    }
}
