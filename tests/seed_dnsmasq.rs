//! DNS seeding through the hickory resolver against a real name server:
//! Debian's `dnsmasq`, started on a free loopback port and serving made-up
//! seed names. Without `dnsmasq` the tests say so and pass, except under
//! CI, where its absence is an error.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::MutexGuard;
use std::time::{Duration, Instant, SystemTime};

use connmgr::seed::{
    seed_from_dns, DnsTransport, HickoryLookup, Lookup, LookupError, LookupErrorKind, NetParams,
    SeedOptions, SeedResult,
};
use connmgr::Addr;

/// Only a broken setup makes a test wait this long.
const DEADLINE: Duration = Duration::from_secs(20);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Names served, with their A and AAAA records. Every address is loopback
/// (or IPv4-mapped loopback): they are only data here, never dialed.
const RECORDS: &[(&str, &[&str])] = &[
    ("ready.seed.test", &["127.0.0.1"]),
    ("plain.seed.test", &["127.0.0.11", "::1"]),
    ("filter.seed.test", &["127.0.0.21", "::ffff:127.0.0.21"]),
    (
        "x9.filter.seed.test",
        &["127.0.0.31", "127.0.0.32", "::ffff:127.0.0.33"],
    ),
    (
        "many.seed.test",
        &[
            "127.0.0.41",
            "127.0.0.42",
            "127.0.0.43",
            "127.0.0.44",
            "127.0.0.45",
            "127.0.0.46",
        ],
    ),
    ("v6only.seed.test", &["::ffff:127.0.0.51"]),
];

/// The served addresses of `name`, as the DNS answers carry them.
fn served(name: &str) -> HashSet<IpAddr> {
    let (_, addrs) = RECORDS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a served name");
    addrs.iter().map(|a| a.parse().unwrap()).collect()
}

/// The addresses seeding gives for `name`: seeding reports a v4-mapped
/// AAAA answer as the IPv4 address it names, and one address once.
fn seeded(name: &str) -> HashSet<IpAddr> {
    served(name)
        .into_iter()
        .map(|ip| ip.to_canonical())
        .collect()
}

/// A running dnsmasq; killed and reaped on drop.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
    // `external::server_turn`, released after the kill (fields drop
    // after `drop` runs).
    _turn: MutexGuard<'static, ()>,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dnsmasq {
    /// Starts dnsmasq on a free loopback port and waits until it answers.
    /// `None` when the binary is missing outside CI.
    fn start() -> Option<Dnsmasq> {
        let binary = find_dnsmasq()?;
        let mut last_failure = String::new();
        // A port found free may be taken by the time dnsmasq binds it (or
        // be free for UDP only): try a few.
        for _ in 0..5 {
            match Self::start_on(&binary, free_udp_port()) {
                Ok(server) => return Some(server),
                Err(failure) => last_failure = failure,
            }
        }
        panic!("dnsmasq did not start: {last_failure}");
    }

    fn start_on(binary: &Path, port: u16) -> Result<Dnsmasq, String> {
        let turn = external::server_turn();
        let child = Command::new(binary)
            .args(dnsmasq_args(port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| format!("cannot run {}: {err}", binary.display()))?;
        let mut server = Dnsmasq {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _turn: turn,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Asks for a known name until dnsmasq answers, it exits, or the
    /// deadline passes.
    fn wait_ready(&mut self) -> Result<(), String> {
        let probe = HickoryLookup::with_transport(self.addr, DnsTransport::Udp)
            .map_err(|err| err.to_string())?;
        let end = Instant::now() + DEADLINE;
        while Instant::now() < end {
            if let Some(status) = self.child.try_wait().map_err(|err| err.to_string())? {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                return Err(format!("dnsmasq exited ({status}): {stderr}"));
            }
            if probe
                .lookup("ready.seed.test", Duration::from_millis(250))
                .is_ok()
            {
                // A server that lost the port to another process exits
                // after failing to bind; if ours has exited, the answer
                // was not its.
                return match self.child.try_wait().map_err(|err| err.to_string())? {
                    None => Ok(()),
                    Some(status) => Err(format!("dnsmasq exited ({status})")),
                };
            }
        }
        Err("dnsmasq did not answer in time".into())
    }
}

/// dnsmasq as a foreground, config-free, loopback-only authority for
/// `seed.test`: names outside the records get NXDOMAIN, nothing is
/// forwarded anywhere.
fn dnsmasq_args(port: u16) -> Vec<String> {
    let mut args: Vec<String> = [
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--pid-file=",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--local=/seed.test/",
        "--log-facility=-",
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    args.push(format!("--port={port}"));
    if running_as_root() {
        // Otherwise dnsmasq switches to an unprivileged user that may not
        // exist here; as anyone else it simply stays who it is.
        args.push("--user=root".into());
    }
    for (name, addrs) in RECORDS {
        for addr in *addrs {
            args.push(format!("--host-record={name},{addr}"));
        }
    }
    args
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// The dnsmasq binary, on PATH or in /usr/sbin (often off a user's PATH).
/// Missing: a failure under CI, a note and `None` elsewhere.
fn find_dnsmasq() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join("dnsmasq"))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        let note = "dnsmasq not found; install it with `apt-get install dnsmasq-base`";
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("{note}");
        }
        eprintln!("skipping: {note}");
    }
    found
}

/// A UDP port that was free a moment ago on 127.0.0.1.
fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a loopback UDP socket");
    socket.local_addr().unwrap().port()
}

fn fixed_now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

/// Seeds `net` through `lookup`, returning results by seed host.
fn run(net: &NetParams, lookup: &dyn Lookup, options: &SeedOptions) -> HashMap<String, SeedResult> {
    let mut results = HashMap::new();
    seed_from_dns(net, lookup, options, |result| {
        results.insert(result.seed.clone(), result);
    });
    assert_eq!(results.len(), net.seeds().len(), "one result per seed");
    results
}

/// Checks port, age and services of every address, and returns the IPs.
fn checked_ips(result: &SeedResult, port: u16, services: u64) -> HashSet<IpAddr> {
    assert!(
        result.error.is_none(),
        "{}: {:?}",
        result.seed,
        result.error
    );
    let mut ips = HashSet::new();
    for seeded in &result.addrs {
        let Addr::Ip(socket) = &seeded.addr else {
            panic!("not an IP address: {:?}", seeded.addr)
        };
        assert_eq!(socket.port(), port);
        assert_eq!(seeded.services, services);
        let age = fixed_now()
            .duration_since(seeded.last_seen)
            .expect("seen in the past");
        assert!(age >= 3 * DAY && age <= 7 * DAY, "age {age:?}");
        assert!(ips.insert(socket.ip()), "duplicate {socket}");
    }
    ips
}

/// With services 9 wanted, the filtering seed is asked for its x9
/// subdomain and the plain seed for its own name; each gives exactly the
/// served A and AAAA addresses with the network's port, ages 3-7 days.
fn hickory_seeding_returns_served_addresses() {
    let Some(dns) = Dnsmasq::start() else { return };
    let lookup = HickoryLookup::new(dns.addr).unwrap();
    let net = NetParams::new("dnsmasq", 18555)
        .seed("plain.seed.test", false)
        .seed("filter.seed.test", true);
    let options = SeedOptions::new()
        .allow_local(true)
        .services(9)
        .now(fixed_now())
        .timeout(DEADLINE);
    let results = run(&net, &lookup, &options);

    let plain = &results["plain.seed.test"];
    assert_eq!(plain.query, "plain.seed.test");
    assert_eq!(checked_ips(plain, 18555, 9), seeded("plain.seed.test"));

    let filtered = &results["filter.seed.test"];
    assert_eq!(filtered.query, "x9.filter.seed.test");
    assert_eq!(
        checked_ips(filtered, 18555, 9),
        seeded("x9.filter.seed.test")
    );
}

/// Asking for plain full nodes queries the filtering seed's own name.
fn hickory_default_services_use_plain_name() {
    let Some(dns) = Dnsmasq::start() else { return };
    let lookup = HickoryLookup::new(dns.addr).unwrap();
    let net = NetParams::new("dnsmasq", 18556).seed("filter.seed.test", true);
    let results = run(
        &net,
        &lookup,
        &SeedOptions::new()
            .allow_local(true)
            .now(fixed_now())
            .timeout(DEADLINE),
    );
    let result = &results["filter.seed.test"];
    assert_eq!(result.query, "filter.seed.test");
    assert_eq!(checked_ips(result, 18556, 1), seeded("filter.seed.test"));
}

/// A seed with more records than the cap gives that many of them.
fn hickory_cap_picks_subset() {
    let Some(dns) = Dnsmasq::start() else { return };
    let lookup = HickoryLookup::new(dns.addr).unwrap();
    let net = NetParams::new("dnsmasq", 18557).seed("many.seed.test", false);
    let options = SeedOptions::new()
        .allow_local(true)
        .max_per_seed(4)
        .now(fixed_now())
        .timeout(DEADLINE);
    let results = run(&net, &lookup, &options);
    let ips = checked_ips(&results["many.seed.test"], 18557, 1);
    assert_eq!(ips.len(), 4);
    assert!(ips.is_subset(&served("many.seed.test")));
}

/// A name the server does not know is reported as not found, while the
/// other seed is still delivered.
fn hickory_unknown_seed_not_found() {
    let Some(dns) = Dnsmasq::start() else { return };
    let lookup = HickoryLookup::new(dns.addr).unwrap();
    let net = NetParams::new("dnsmasq", 18558)
        .seed("absent.seed.test", false)
        .seed("plain.seed.test", false);
    let results = run(
        &net,
        &lookup,
        &SeedOptions::new()
            .allow_local(true)
            .now(fixed_now())
            .timeout(DEADLINE),
    );
    let absent = &results["absent.seed.test"];
    assert!(absent.addrs.is_empty());
    let kind = absent.error.as_ref().map(LookupError::kind);
    assert_eq!(kind, Some(LookupErrorKind::NotFound), "{:?}", absent.error);
    assert_eq!(
        checked_ips(&results["plain.seed.test"], 18558, 1),
        served("plain.seed.test")
    );
}

/// Over TCP alone the same answers arrive, AAAA-only names included.
fn hickory_over_tcp() {
    let Some(dns) = Dnsmasq::start() else { return };
    let lookup = HickoryLookup::with_transport(dns.addr, DnsTransport::Tcp).unwrap();
    assert_eq!(lookup.transport(), DnsTransport::Tcp);
    for name in ["plain.seed.test", "x9.filter.seed.test", "v6only.seed.test"] {
        let ips: HashSet<IpAddr> = lookup.lookup(name, DEADLINE).unwrap().into_iter().collect();
        assert_eq!(ips, served(name), "{name}");
    }
}

#[path = "common/external.rs"]
mod external;

fn main() {
    external::run(
        external::installed("dnsmasq", "install it with `apt-get install dnsmasq-base`"),
        &[
            (
                "hickory_seeding_returns_served_addresses",
                hickory_seeding_returns_served_addresses,
            ),
            (
                "hickory_default_services_use_plain_name",
                hickory_default_services_use_plain_name,
            ),
            ("hickory_cap_picks_subset", hickory_cap_picks_subset),
            (
                "hickory_unknown_seed_not_found",
                hickory_unknown_seed_not_found,
            ),
            ("hickory_over_tcp", hickory_over_tcp),
        ],
    )
}
