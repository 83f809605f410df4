//! DNS seeding with scripted lookups: no external process, no real DNS.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Mutex, Once};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use connmgr::seed::{
    seed_from_dns, DnsSeed, Lookup, LookupError, LookupErrorKind, NetParams, SeedOptions,
    SeedResult, SystemLookup, TorLookup, SF_NODE_NETWORK,
};
use connmgr::Addr;
use crossbeam_channel::Receiver;

/// Only a broken implementation makes a test wait this long.
const SAFETY: Duration = Duration::from_secs(20);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// What the fake resolver does for one name.
enum Answer {
    Ips(Vec<IpAddr>),
    Fail(LookupErrorKind),
    Panic,
    /// Ignores the timeout and waits for the channel (or `SAFETY`), then
    /// answers 127.0.0.99 — which a correct seeding never reports.
    Block(Receiver<()>),
}

/// A scripted resolver that records every name it is asked for.
#[derive(Default)]
struct FakeLookup {
    answers: HashMap<String, Answer>,
    queried: Mutex<Vec<String>>,
}

impl FakeLookup {
    fn answer(mut self, name: &str, answer: Answer) -> Self {
        self.answers.insert(name.to_owned(), answer);
        self
    }

    fn ips(self, name: &str, ips: Vec<IpAddr>) -> Self {
        self.answer(name, Answer::Ips(ips))
    }

    /// The names asked for, sorted (lookups run in parallel).
    fn queried(&self) -> Vec<String> {
        let mut names = self.queried.lock().unwrap().clone();
        names.sort();
        names
    }
}

impl Lookup for FakeLookup {
    fn lookup(&self, host: &str, _timeout: Duration) -> Result<Vec<IpAddr>, LookupError> {
        self.queried.lock().unwrap().push(host.to_owned());
        match self.answers.get(host) {
            None => Err(LookupError::new(
                LookupErrorKind::NotFound,
                host,
                "not scripted",
            )),
            Some(Answer::Ips(ips)) => Ok(ips.clone()),
            Some(Answer::Fail(kind)) => Err(LookupError::new(*kind, host, "scripted failure")),
            Some(Answer::Panic) => panic!("scripted panic in lookup of {host}"),
            Some(Answer::Block(release)) => {
                let _ = release.recv_timeout(SAFETY);
                Ok(vec![v4(127, 0, 0, 99)])
            }
        }
    }
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// `count` distinct loopback addresses 127.0.<first>.x.
fn loopbacks(first: u8, count: u8) -> Vec<IpAddr> {
    (1..=count).map(|d| v4(127, 0, first, d)).collect()
}

/// A fixed "now" for checking ages exactly.
fn fixed_now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// Runs seeding and returns the results by seed host, checking that each
/// seed was reported exactly once.
fn run(net: &NetParams, lookup: &dyn Lookup, options: &SeedOptions) -> HashMap<String, SeedResult> {
    let mut results = HashMap::new();
    seed_from_dns(net, lookup, options, |result| {
        let seed = result.seed.clone();
        assert!(
            results.insert(seed.clone(), result).is_none(),
            "{seed} reported twice"
        );
    });
    results
}

fn ips_of(result: &SeedResult) -> HashSet<IpAddr> {
    result
        .addrs
        .iter()
        .map(|seeded| ip_of(&seeded.addr))
        .collect()
}

fn ip_of(addr: &Addr) -> IpAddr {
    match addr {
        Addr::Ip(socket) => socket.ip(),
        other => panic!("seeded address is not an IP address: {other:?}"),
    }
}

/// Every seeded address carries the network's default port.
#[test]
fn default_port_applied() {
    let net = NetParams::new("portnet", 12345)
        .seed("a.test", false)
        .seed("b.test", true);
    let lookup = FakeLookup::default()
        .ips(
            "a.test",
            vec![v4(127, 0, 0, 1), IpAddr::V6(Ipv6Addr::LOCALHOST)],
        )
        .ips("b.test", loopbacks(2, 3));
    let results = run(&net, &lookup, &SeedOptions::new().allow_local(true));
    assert_eq!(results.len(), 2);
    let mut count = 0;
    for result in results.values() {
        assert!(result.error.is_none(), "{result:?}");
        for seeded in &result.addrs {
            let Addr::Ip(socket) = &seeded.addr else {
                panic!("not an IP address")
            };
            assert_eq!(socket.port(), 12345);
            count += 1;
        }
    }
    assert_eq!(count, 5);
    assert_eq!(
        ips_of(&results["a.test"]),
        HashSet::from([v4(127, 0, 0, 1), IpAddr::V6(Ipv6Addr::LOCALHOST)])
    );
}

/// By default a seed's answer loses loopback, private, shared,
/// link-local and unique local addresses, and an IPv4 address sent again
/// as IPv4-mapped IPv6 counts once.
#[test]
fn local_and_mapped_duplicates_are_dropped_by_default() {
    let net = NetParams::new("pubnet", 8333).seed("a.test", false);
    let mapped: IpAddr = "::ffff:203.0.113.5".parse().unwrap();
    let answer = vec![
        v4(203, 0, 113, 5),
        mapped,
        v4(127, 0, 0, 1),
        v4(10, 1, 2, 3),
        v4(192, 168, 1, 1),
        v4(172, 16, 0, 1),
        v4(100, 64, 0, 1),
        v4(169, 254, 1, 1),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        "fe80::1".parse().unwrap(),
        "fd00::1".parse().unwrap(),
        "2001:db8::7".parse().unwrap(),
    ];
    let lookup = FakeLookup::default().ips("a.test", answer.clone());
    let results = run(&net, &lookup, &SeedOptions::new());
    assert_eq!(
        ips_of(&results["a.test"]),
        HashSet::from([v4(203, 0, 113, 5), "2001:db8::7".parse().unwrap()])
    );
    assert_eq!(results["a.test"].addrs.len(), 2);
    // Allowed explicitly, the local ones stay (still once each).
    let lookup = FakeLookup::default().ips("a.test", answer);
    let all = run(&net, &lookup, &SeedOptions::new().allow_local(true));
    assert_eq!(all["a.test"].addrs.len(), 11);
}

/// A seed answering more than the cap gives a subset of its answer of
/// exactly the cap's size; the default cap is 32.
#[test]
fn at_most_max_per_seed() {
    let net = NetParams::new("capnet", 8333)
        .seed("many.test", false)
        .seed("few.test", false);
    let many = loopbacks(3, 50);
    let lookup = FakeLookup::default()
        .ips("many.test", many.clone())
        .ips("few.test", loopbacks(4, 3));
    let capped = run(
        &net,
        &lookup,
        &SeedOptions::new().allow_local(true).max_per_seed(5),
    );
    let chosen = ips_of(&capped["many.test"]);
    assert_eq!(capped["many.test"].addrs.len(), 5);
    assert_eq!(chosen.len(), 5, "chosen addresses are distinct");
    assert!(chosen.iter().all(|ip| many.contains(ip)));
    assert_eq!(capped["few.test"].addrs.len(), 3, "under the cap: all kept");

    let default = run(&net, &lookup, &SeedOptions::new().allow_local(true));
    assert_eq!(default["many.test"].addrs.len(), 32);
    assert_eq!(ips_of(&default["many.test"]).len(), 32);
}

/// Duplicates are dropped, and so are addresses no peer can have
/// (unspecified, multicast, broadcast); an answer with nothing usable is
/// reported as not found.
#[test]
fn unusable_and_duplicate_answers_filtered() {
    let net = NetParams::new("filternet", 8333)
        .seed("mixed.test", false)
        .seed("bogus.test", false);
    let lookup = FakeLookup::default()
        .ips(
            "mixed.test",
            vec![
                v4(127, 0, 0, 5),
                v4(127, 0, 0, 5),
                v4(0, 0, 0, 0),
                v4(127, 0, 0, 6),
            ],
        )
        .ips(
            "bogus.test",
            vec![
                v4(0, 0, 0, 0),
                v4(224, 0, 0, 1),
                v4(255, 255, 255, 255),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                "::ffff:0.0.0.0".parse().unwrap(),
            ],
        );
    let results = run(&net, &lookup, &SeedOptions::new().allow_local(true));
    assert_eq!(results["mixed.test"].addrs.len(), 2);
    assert_eq!(
        ips_of(&results["mixed.test"]),
        HashSet::from([v4(127, 0, 0, 5), v4(127, 0, 0, 6)])
    );
    let bogus = &results["bogus.test"];
    assert!(bogus.addrs.is_empty());
    assert_eq!(
        bogus.error.as_ref().map(LookupError::kind),
        Some(LookupErrorKind::NotFound)
    );
}

/// Last-seen times lie 3 to 7 days before the injected now, vary, and
/// repeat exactly for the same rng seed.
#[test]
fn ages_within_three_to_seven_days() {
    let net = NetParams::new("agenet", 8333)
        .seed("a.test", false)
        .seed("b.test", true);
    let lookup = FakeLookup::default()
        .ips("a.test", loopbacks(5, 40))
        .ips("b.test", loopbacks(6, 40));
    let options = SeedOptions::new()
        .allow_local(true)
        .now(fixed_now())
        .rng_seed(7)
        .max_per_seed(40);
    let first = run(&net, &lookup, &options);
    let mut ages = HashSet::new();
    for seeded in first.values().flat_map(|result| &result.addrs) {
        let age = fixed_now()
            .duration_since(seeded.last_seen)
            .expect("last seen is in the past");
        assert!(age >= 3 * DAY && age <= 7 * DAY, "age {age:?} out of range");
        ages.insert(age);
    }
    assert_eq!(first.values().map(|r| r.addrs.len()).sum::<usize>(), 80);
    assert!(ages.len() > 1, "ages are random, not one fixed value");

    let second = run(&net, &lookup, &options);
    for (seed, result) in &first {
        assert_eq!(
            result.addrs, second[seed].addrs,
            "same rng seed, same result for {seed}"
        );
    }
}

/// The `x<hex services>.` subdomain is asked only of filtering seeds and
/// only when more than a plain full node is wanted; services are copied
/// to every address.
#[test]
fn subdomain_only_for_filtering_seeds() {
    let net = NetParams::new("filter", 8333)
        .seed("filtering.test", true)
        .seed("plain.test", false);
    let scripted = || {
        FakeLookup::default()
            .ips("filtering.test", vec![v4(127, 0, 0, 1)])
            .ips("x9.filtering.test", vec![v4(127, 0, 0, 9)])
            .ips("x409.filtering.test", vec![v4(127, 0, 4, 9)])
            .ips("plain.test", vec![v4(127, 0, 0, 2)])
    };

    let lookup = scripted();
    let results = run(&net, &lookup, &SeedOptions::new().allow_local(true));
    assert_eq!(lookup.queried(), ["filtering.test", "plain.test"]);
    assert_eq!(results["filtering.test"].query, "filtering.test");
    assert!(results["filtering.test"]
        .addrs
        .iter()
        .all(|a| a.services == SF_NODE_NETWORK));

    let lookup = scripted();
    let results = run(
        &net,
        &lookup,
        &SeedOptions::new().allow_local(true).services(9),
    );
    assert_eq!(lookup.queried(), ["plain.test", "x9.filtering.test"]);
    let filtered = &results["filtering.test"];
    assert_eq!(filtered.query, "x9.filtering.test");
    assert_eq!(ips_of(filtered), HashSet::from([v4(127, 0, 0, 9)]));
    assert!(filtered.addrs.iter().all(|a| a.services == 9));
    assert_eq!(results["plain.test"].query, "plain.test");

    let lookup = scripted();
    run(
        &net,
        &lookup,
        &SeedOptions::new().allow_local(true).services(0x409),
    );
    assert_eq!(lookup.queried(), ["plain.test", "x409.filtering.test"]);
}

/// The callback runs exactly once per seed, whatever each seed does.
#[test]
fn callback_once_per_seed() {
    let mut net = NetParams::new("many", 8333);
    let mut lookup = FakeLookup::default();
    for i in 0..12u8 {
        let host = format!("s{i}.test");
        net = net.seed(host.clone(), i % 2 == 0);
        lookup = match i % 3 {
            0 => lookup.ips(&host, vec![v4(127, 1, i, 1)]),
            1 => lookup.answer(&host, Answer::Fail(LookupErrorKind::Resolver)),
            _ => lookup, // unscripted: not found
        };
    }
    let mut calls = Vec::new();
    seed_from_dns(
        &net,
        &lookup,
        &SeedOptions::new().allow_local(true),
        |result| calls.push(result.seed),
    );
    calls.sort();
    let mut expected: Vec<String> = (0..12).map(|i| format!("s{i}.test")).collect();
    expected.sort();
    assert_eq!(calls, expected);
}

/// Failing and panicking seeds are reported with their error; the other
/// seeds are still delivered.
#[test]
fn errors_reported_per_seed() {
    let net = NetParams::new("errs", 8333)
        .seed("good.test", false)
        .seed("broken.test", false)
        .seed("panics.test", false)
        .seed("missing.test", false);
    let lookup = FakeLookup::default()
        .ips("good.test", vec![v4(127, 0, 0, 7)])
        .answer("broken.test", Answer::Fail(LookupErrorKind::Resolver))
        .answer("panics.test", Answer::Panic);
    let results = run(&net, &lookup, &SeedOptions::new().allow_local(true));
    assert_eq!(results.len(), 4);
    let kind = |seed: &str| results[seed].error.as_ref().map(LookupError::kind);
    assert_eq!(kind("good.test"), None);
    assert_eq!(
        ips_of(&results["good.test"]),
        HashSet::from([v4(127, 0, 0, 7)])
    );
    assert_eq!(kind("broken.test"), Some(LookupErrorKind::Resolver));
    assert_eq!(kind("panics.test"), Some(LookupErrorKind::Panicked));
    assert_eq!(kind("missing.test"), Some(LookupErrorKind::NotFound));
    for seed in ["broken.test", "panics.test", "missing.test"] {
        assert!(results[seed].addrs.is_empty());
        assert_eq!(results[seed].error.as_ref().unwrap().host(), seed);
    }
}

/// A lookup that ignores its timeout is reported as timed out, and the
/// other seeds' results are not held back by it. The blocked lookup is
/// released once its timeout has been reported, so seeding can return.
#[test]
fn blocked_seed_times_out_without_holding_back_others() {
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(1);
    let net = NetParams::new("slow", 8333)
        .seed("fast-a.test", false)
        .seed("stuck.test", false)
        .seed("fast-b.test", false);
    let lookup = FakeLookup::default()
        .ips("fast-a.test", vec![v4(127, 0, 0, 1)])
        .ips("fast-b.test", vec![v4(127, 0, 0, 2)])
        .answer("stuck.test", Answer::Block(release_rx));
    let mut release = Some(release_tx);
    let mut order = Vec::new();
    let mut results = HashMap::new();
    let options = SeedOptions::new()
        .allow_local(true)
        .timeout(Duration::from_secs(1));
    seed_from_dns(&net, &lookup, &options, |result| {
        if result.seed == "stuck.test" {
            // Dropping the sender wakes the blocked lookup.
            release.take();
        }
        order.push(result.seed.clone());
        results.insert(result.seed.clone(), result);
    });
    let stuck = &results["stuck.test"];
    assert_eq!(
        stuck.error.as_ref().map(LookupError::kind),
        Some(LookupErrorKind::TimedOut)
    );
    assert!(stuck.addrs.is_empty(), "the late answer is never delivered");
    assert_eq!(
        order.last().map(String::as_str),
        Some("stuck.test"),
        "order: {order:?}"
    );
    assert_eq!(
        ips_of(&results["fast-a.test"]),
        HashSet::from([v4(127, 0, 0, 1)])
    );
    assert_eq!(
        ips_of(&results["fast-b.test"]),
        HashSet::from([v4(127, 0, 0, 2)])
    );
}

/// A network defined by the user seeds like a built-in one, and a trailing
/// dot on a seed name makes no difference.
#[test]
fn user_defined_network() {
    let net = NetParams::new("mycoin", 29333)
        .seed("seed.mycoin.test.", true)
        .with_seeds([DnsSeed::new("dnsseed.mycoin.test", false)]);
    assert_eq!(net.name(), "mycoin");
    assert_eq!(net.seeds()[0].host(), "seed.mycoin.test");
    assert_eq!(net.seeds()[0].query_name(5), "x5.seed.mycoin.test");
    assert_eq!(net.seeds()[1].query_name(5), "dnsseed.mycoin.test");
    let lookup = FakeLookup::default()
        .ips("x5.seed.mycoin.test", vec![v4(127, 0, 0, 31)])
        .ips("dnsseed.mycoin.test", vec![v4(127, 0, 0, 32)]);
    let results = run(
        &net,
        &lookup,
        &SeedOptions::new()
            .allow_local(true)
            .services(5)
            .now(fixed_now()),
    );
    let addrs: HashSet<Addr> = results
        .values()
        .flat_map(|result| result.addrs.iter().map(|seeded| seeded.addr.clone()))
        .collect();
    let expected: HashSet<Addr> = ["127.0.0.31:29333", "127.0.0.32:29333"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(addrs, expected);
}

/// Built-in networks: Bitcoin's ports, seeds where Bitcoin has them, none
/// for regtest, clean distinct host names.
#[test]
fn builtin_params_sanity() {
    let nets = [
        (NetParams::mainnet(), "mainnet", 8333),
        (NetParams::testnet3(), "testnet3", 18333),
        (NetParams::testnet4(), "testnet4", 48333),
        (NetParams::signet(), "signet", 38333),
        (NetParams::regtest(), "regtest", 18444),
    ];
    for (net, name, port) in &nets {
        assert_eq!(net.name(), *name);
        assert_eq!(net.default_port(), *port, "{name}");
        let hosts: HashSet<&str> = net.seeds().iter().map(DnsSeed::host).collect();
        assert_eq!(hosts.len(), net.seeds().len(), "{name}: duplicate seeds");
        for host in hosts {
            assert!(
                !host.ends_with('.') && host.contains('.') && host.is_ascii(),
                "{host}"
            );
        }
    }
    assert!(NetParams::regtest().seeds().is_empty());
    for net in [
        NetParams::mainnet(),
        NetParams::testnet3(),
        NetParams::testnet4(),
        NetParams::signet(),
    ] {
        assert!(!net.seeds().is_empty(), "{} has seeds", net.name());
    }
    let mainnet = NetParams::mainnet();
    assert!(mainnet.seeds().len() >= 5);
    assert!(mainnet
        .seeds()
        .contains(&DnsSeed::new("seed.bitcoin.sipa.be", true)));
}

/// A network without seeds returns at once and never calls back or looks
/// anything up.
#[test]
fn no_seeds_no_callbacks() {
    let lookup = FakeLookup::default();
    let mut calls = 0;
    seed_from_dns(
        &NetParams::regtest(),
        &lookup,
        &SeedOptions::new().allow_local(true),
        |_| calls += 1,
    );
    assert_eq!(calls, 0);
    assert!(lookup.queried().is_empty());
}

/// Closures work as lookups, and get the configured timeout.
#[test]
fn closure_lookup_gets_timeout() {
    let net = NetParams::new("closure", 8333).seed("c.test", false);
    let seen = Mutex::new(Vec::new());
    let lookup = |host: &str, timeout: Duration| -> Result<Vec<IpAddr>, LookupError> {
        seen.lock().unwrap().push((host.to_owned(), timeout));
        Ok(vec![v4(127, 0, 0, 3)])
    };
    let results = run(
        &net,
        &lookup,
        &SeedOptions::new()
            .allow_local(true)
            .timeout(Duration::from_secs(3)),
    );
    assert_eq!(
        ips_of(&results["c.test"]),
        HashSet::from([v4(127, 0, 0, 3)])
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [("c.test".to_owned(), Duration::from_secs(3))]
    );
}

/// The system resolver finds `localhost` (from the hosts file) as loopback
/// addresses.
#[test]
fn system_lookup_resolves_localhost() {
    let ips = SystemLookup::new()
        .lookup("localhost", SAFETY)
        .expect("localhost resolves");
    assert!(!ips.is_empty());
    assert!(ips.iter().all(IpAddr::is_loopback), "{ips:?}");
}

/// The system resolver reports a name it cannot even pass on (an interior
/// NUL, rejected before any query is sent) as an error, not a panic.
#[test]
fn system_lookup_reports_bad_name() {
    let err = SystemLookup::new()
        .lookup("bad\0name", SAFETY)
        .expect_err("a name with a NUL does not resolve");
    assert_eq!(err.kind(), LookupErrorKind::Resolver);
    assert_eq!(err.host(), "bad\0name");
    assert!(!err.to_string().is_empty());
}

/// What the fake Tor proxy answers for a name: an address, or a SOCKS5
/// failure status.
type TorAnswers = HashMap<String, Result<Ipv4Addr, u8>>;

/// A fake Tor SOCKS5 proxy on loopback that serves `connections` RESOLVE
/// requests from `answers`, then returns the (command, name) pairs it got.
/// It gives up at `SAFETY` so the test never hangs.
fn fake_tor(
    answers: TorAnswers,
    connections: usize,
) -> (SocketAddr, JoinHandle<Vec<(u8, String)>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let server = thread::spawn(move || {
        let end = Instant::now() + SAFETY;
        let mut seen = Vec::new();
        while seen.len() < connections && Instant::now() < end {
            match listener.accept() {
                Ok((stream, _)) => seen.push(serve_resolve(stream, &answers)),
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
        seen
    });
    (addr, server)
}

/// One SOCKS5 exchange: no-auth greeting, then a domain-name request,
/// answered with an IPv4 address or a failure status.
fn serve_resolve(mut stream: TcpStream, answers: &TorAnswers) -> (u8, String) {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(SAFETY)).unwrap();
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).unwrap();
    let mut methods = vec![0u8; head[1] as usize];
    stream.read_exact(&mut methods).unwrap();
    assert!(methods.contains(&0), "offers no-auth");
    stream.write_all(&[5, 0]).unwrap();
    let mut request = [0u8; 5];
    stream.read_exact(&mut request).unwrap();
    assert_eq!(
        (request[0], request[3]),
        (5, 3),
        "SOCKS5 request for a domain name"
    );
    let mut name = vec![0u8; request[4] as usize + 2];
    stream.read_exact(&mut name).unwrap();
    name.truncate(name.len() - 2);
    let name = String::from_utf8(name).unwrap();
    let reply = match answers.get(&name).copied().unwrap_or(Err(4)) {
        Ok(ip) => [&[5, 0, 0, 1][..], &ip.octets(), &[0, 0]].concat(),
        Err(status) => vec![5, status, 0, 1, 0, 0, 0, 0, 0, 0],
    };
    stream.write_all(&reply).unwrap();
    (request[1], name)
}

/// Seeding through Tor sends each seed name (with its filtering subdomain)
/// to the proxy as a RESOLVE request and uses the proxy's answers; a name
/// the proxy cannot resolve is reported for its seed alone.
#[test]
fn tor_lookup_resolves_through_proxy() {
    let answers = TorAnswers::from([
        (
            "x9.filtering.test".to_owned(),
            Ok(Ipv4Addr::new(127, 0, 0, 61)),
        ),
        ("plain.test".to_owned(), Ok(Ipv4Addr::new(127, 0, 0, 62))),
    ]);
    let (proxy, server) = fake_tor(answers, 3);
    let net = NetParams::new("tor", 8333)
        .seed("filtering.test", true)
        .seed("plain.test", false)
        .seed("gone.test", false);
    let lookup = TorLookup::new(proxy);
    let results = run(
        &net,
        &lookup,
        &SeedOptions::new()
            .allow_local(true)
            .services(9)
            .timeout(SAFETY),
    );
    let mut requests = server.join().unwrap();
    requests.sort();
    let names = ["gone.test", "plain.test", "x9.filtering.test"];
    assert_eq!(requests, names.map(|name| (0xF0, name.to_owned())));
    assert_eq!(
        ips_of(&results["filtering.test"]),
        HashSet::from([v4(127, 0, 0, 61)])
    );
    assert_eq!(
        ips_of(&results["plain.test"]),
        HashSet::from([v4(127, 0, 0, 62)])
    );
    let gone = results["gone.test"]
        .error
        .as_ref()
        .expect("unresolvable through Tor");
    assert_eq!(gone.kind(), LookupErrorKind::NotFound, "{gone}");
}

/// Without a proxy listening, the Tor lookup fails as a proxy error.
#[test]
fn tor_lookup_without_proxy_is_proxy_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let lookup = TorLookup::new(SocketAddr::from(([127, 0, 0, 1], port)));
    let err = lookup.lookup("seed.test", SAFETY).unwrap_err();
    assert_eq!(err.kind(), LookupErrorKind::Proxy, "{err}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "keeps the SOCKS error"
    );
}

/// Seed failures are logged as warnings under the "connmgr" target.
#[test]
fn errors_logged_under_connmgr_target() {
    install_logger();
    let net = NetParams::new("logs", 8333).seed("logged-failure.test", false);
    let lookup = FakeLookup::default().answer(
        "logged-failure.test",
        Answer::Fail(LookupErrorKind::Resolver),
    );
    run(&net, &lookup, &SeedOptions::new().allow_local(true));
    let records = LOGGER.records.lock().unwrap();
    assert!(
        records
            .iter()
            .any(|(level, target, text)| *level == log::Level::Warn
                && target == "connmgr"
                && text.contains("logged-failure.test")),
        "{records:?}"
    );
}

/// Keeps log records so a test can look for one.
struct CaptureLogger {
    records: Mutex<Vec<(log::Level, String, String)>>,
}

static LOGGER: CaptureLogger = CaptureLogger {
    records: Mutex::new(Vec::new()),
};

impl log::Log for CaptureLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let entry = (
            record.level(),
            record.target().to_owned(),
            record.args().to_string(),
        );
        self.records.lock().unwrap().push(entry);
    }

    fn flush(&self) {}
}

fn install_logger() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&LOGGER).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// A name server that never answers makes the hickory lookup give up at
/// the timeout it was given, as a timeout.
#[cfg(feature = "hickory")]
#[test]
fn hickory_lookup_times_out_on_silent_server() {
    use connmgr::seed::{DnsTransport, HickoryLookup};
    // Bound but never read: queries sit in its buffer unanswered.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap();
    let lookup = HickoryLookup::with_transport(server, DnsTransport::Udp).unwrap();
    assert_eq!(lookup.server(), server);
    let err = lookup
        .lookup("seed.test", Duration::from_millis(300))
        .unwrap_err();
    assert_eq!(err.kind(), LookupErrorKind::TimedOut, "{err}");
}
