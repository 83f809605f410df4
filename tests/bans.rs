//! Ban scores, bans and inbound eviction through the whole manager: the
//! in-memory network for outbound peers and eviction, loopback TCP where an
//! inbound peer needs a real IP, and a manual clock for everything timed.

mod common;

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use connmgr::*;
use connmgr::{BanEntry, Subnet};
use crossbeam_channel::Receiver;
use parking_lot::Mutex;

const HOUR: Duration = Duration::from_secs(3600);
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn addr(text: &str) -> Addr {
    text.parse().unwrap()
}

fn subnet(text: &str) -> Subnet {
    text.parse().unwrap()
}

fn connected(rx: &Receiver<Event>, id: ConnId) -> Conn {
    match expect_event(rx, |e| {
        matches!(e, Event::Connected { .. }) && e.id() == Some(id)
    }) {
        Event::Connected { conn, .. } => conn,
        _ => unreachable!(),
    }
}

/// Waits for `id`'s disconnect; why it closed.
fn disconnected(rx: &Receiver<Event>, id: ConnId) -> CloseReason {
    match expect_event(rx, |e| {
        matches!(e, Event::Disconnected { .. }) && e.id() == Some(id)
    }) {
        Event::Disconnected { reason, .. } => reason,
        _ => unreachable!(),
    }
}

fn dial_failed(rx: &Receiver<Event>, id: ConnId) -> (DialError, Option<Duration>) {
    match expect_event(rx, |e| {
        matches!(e, Event::DialFailed { .. }) && e.id() == Some(id)
    }) {
        Event::DialFailed {
            error, retry_in, ..
        } => (error, retry_in),
        _ => unreachable!(),
    }
}

fn accepted(rx: &Receiver<Event>) -> Conn {
    match expect_event(rx, |e| matches!(e, Event::Accepted { .. })) {
        Event::Accepted { conn } => conn,
        _ => unreachable!(),
    }
}

/// Asserts a dial was refused because of a ban whose reason holds `reason`.
fn assert_ban_rejection(err: &DialError, reason: &str) {
    match err {
        DialError::Rejected(why) => assert!(
            why.contains("banned") && why.contains(reason),
            "rejection does not name the ban: {why}"
        ),
        other => panic!("expected a ban rejection, got {other:?}"),
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

/// A started manager on `net` with `clock`, configured further by `more`,
/// and its event receiver.
fn start_manager(
    net: &MemoryNetwork,
    clock: &ManualClock,
    more: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> (ConnManager, Receiver<Event>) {
    let builder = Config::builder().dialer(net.dialer()).clock(clock.clone());
    let m = ConnManager::new(more(builder).build()).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();
    (m, rx)
}

/// Scores below the threshold change nothing; reaching it disconnects the
/// peer, bans its IP with the reason, and later dials to it are rejected.
#[test]
fn reaching_the_ban_threshold_disconnects_and_bans_the_ip() {
    let clock = ManualClock::new();
    let net = MemoryNetwork::new();
    let peer = addr("203.0.113.7:8333");
    let _listener = net.listen(peer.clone()).unwrap();
    let (m, rx) = start_manager(&net, &clock, |b| b);

    let id = m.handle().connect(ConnReq::new(peer.clone())).unwrap();
    let conn = connected(&rx, id);
    m.handle().misbehaving(id, 50, 0, "odd message").unwrap();
    m.handle().misbehaving(id, 49, 0, "odd message").unwrap();
    sync(m.handle());
    assert!(m.handle().bans().is_empty(), "{:?}", m.handle().bans());
    assert!(!conn.is_closed());
    assert_eq!(
        m.handle().conn_info(id).map(|c| c.state),
        Some(ConnState::Established)
    );

    m.handle().misbehaving(id, 1, 0, "invalid block").unwrap();
    let why = disconnected(&rx, id);
    assert_eq!(why, CloseReason::Misbehaving);
    assert!(conn.is_closed());
    assert!(
        m.handle().conn_info(id).is_none(),
        "a one-off request finishes"
    );
    let bans = m.handle().bans();
    assert_eq!(bans.len(), 1, "{bans:?}");
    assert_eq!(bans[0].subnet, Subnet::host(peer.ip().unwrap()));
    assert!(bans[0].reason.contains("invalid block"), "{bans:?}");
    // The default ban lasts a day.
    assert_eq!(bans[0].until, clock.now() + 24 * HOUR);
    let stats = m.handle().snapshot().stats;
    assert_eq!(stats.closes.misbehaving, 1, "{stats:?}");
    assert_eq!(stats.trimmed, 0, "a ban is not a trim");

    let again = m.handle().connect(ConnReq::new(peer)).unwrap();
    let (err, retry_in) = dial_failed(&rx, again);
    assert_ban_rejection(&err, "invalid block");
    assert_eq!(retry_in, None);
    m.stop();
}

/// A banned permanent peer keeps retrying with backoff, each attempt
/// rejected, until the ban expires on the clock; then it connects again.
#[test]
fn permanent_request_is_rejected_until_the_ban_expires() {
    let clock = ManualClock::new();
    let net = MemoryNetwork::new();
    let peer = addr("203.0.113.8:8333");
    let _listener = net.listen(peer.clone()).unwrap();
    let (m, rx) = start_manager(&net, &clock, |b| b.ban_duration(Duration::from_secs(60)));

    let id = m.handle().connect(ConnReq::permanent(peer)).unwrap();
    let first = connected(&rx, id);
    m.handle().misbehaving(id, 100, 0, "flooding").unwrap();
    disconnected(&rx, id);
    assert!(first.is_closed());
    let until = m.handle().bans()[0].until;
    assert_eq!(until, clock.now() + Duration::from_secs(60));

    let mut rejected = 0;
    let _second = loop {
        let info = wait_info(m.handle(), id, |c| {
            c.state != ConnState::Pending && c.next_attempt.is_some()
        });
        let at = info.next_attempt.unwrap();
        let now = clock.now();
        if at > now {
            clock.advance(at - now);
        }
        let ev = take_events(&rx, 1, |e| {
            e.id() == Some(id) && matches!(e, Event::Connected { .. } | Event::DialFailed { .. })
        })
        .remove(0);
        match ev {
            Event::DialFailed {
                error, retry_in, ..
            } => {
                assert!(clock.now() < until, "rejected after the ban expired");
                assert_ban_rejection(&error, "flooding");
                assert!(retry_in.is_some(), "a permanent request keeps retrying");
                rejected += 1;
            }
            Event::Connected { conn, .. } => {
                assert!(clock.now() >= until, "connected while banned");
                break conn;
            }
            _ => unreachable!(),
        }
        assert!(rejected < 20, "never got past the ban");
    };
    assert!(rejected >= 1, "the ban never rejected a retry");
    assert!(m.handle().bans().is_empty(), "{:?}", m.handle().bans());
    assert_eq!(
        m.handle().conn_info(id).map(|c| c.state),
        Some(ConnState::Established)
    );
    m.stop();
}

/// The transient part halves every minute: 60 now and 60 a minute later
/// stay below 100 (about 90), while the same two reports at one instant
/// ban at once.
#[test]
fn transient_score_decays_with_the_clock() {
    let clock = ManualClock::new();
    let net = MemoryNetwork::new();
    let (a, b) = (addr("203.0.113.10:8333"), addr("203.0.113.11:8333"));
    let _la = net.listen(a.clone()).unwrap();
    let _lb = net.listen(b.clone()).unwrap();
    let (m, rx) = start_manager(&net, &clock, |b| b);
    let id_a = m.handle().connect(ConnReq::new(a.clone())).unwrap();
    let conn_a = connected(&rx, id_a);
    let id_b = m.handle().connect(ConnReq::new(b.clone())).unwrap();
    let conn_b = connected(&rx, id_b);

    m.handle().misbehaving(id_a, 0, 60, "slow").unwrap();
    sync(m.handle());
    clock.advance(Duration::from_secs(60));
    m.handle().misbehaving(id_a, 0, 60, "slow").unwrap();
    sync(m.handle());
    assert!(m.handle().bans().is_empty(), "{:?}", m.handle().bans());
    assert!(!conn_a.is_closed());

    // Without the minute between them, the same reports reach 120.
    m.handle().misbehaving(id_b, 0, 60, "slow").unwrap();
    m.handle().misbehaving(id_b, 0, 60, "slow").unwrap();
    disconnected(&rx, id_b);
    assert!(conn_b.is_closed());
    assert!(!conn_a.is_closed());
    let banned: Vec<Subnet> = m.handle().bans().iter().map(|e| e.subnet).collect();
    assert_eq!(banned, vec![Subnet::host(b.ip().unwrap())]);

    // About 90 plus 15 crosses the threshold.
    m.handle().misbehaving(id_a, 0, 15, "slow").unwrap();
    disconnected(&rx, id_a);
    assert!(conn_a.is_closed());
    assert_eq!(m.handle().bans().len(), 2, "{:?}", m.handle().bans());
    m.stop();
}

/// The ban threshold comes from the config.
#[test]
fn ban_threshold_is_configurable() {
    let clock = ManualClock::new();
    let net = MemoryNetwork::new();
    let peer = addr("203.0.113.12:8333");
    let _listener = net.listen(peer.clone()).unwrap();
    let (m, rx) = start_manager(&net, &clock, |b| b.ban_threshold(30).warn_threshold(10));
    let id = m.handle().connect(ConnReq::new(peer)).unwrap();
    let conn = connected(&rx, id);
    m.handle().misbehaving(id, 29, 0, "minor").unwrap();
    sync(m.handle());
    assert!(!conn.is_closed() && m.handle().bans().is_empty());
    m.handle().misbehaving(id, 1, 0, "minor").unwrap();
    disconnected(&rx, id);
    assert_eq!(m.handle().bans().len(), 1);
    m.stop();
}

/// A dial already under way when its address is banned must not leave a
/// connection to the banned peer: it is rejected, or closed at once.
#[test]
fn dial_in_flight_when_banned_does_not_stay_connected() {
    let clock = ManualClock::new();
    let net = MemoryNetwork::new();
    let peer = addr("203.0.113.20:8333");
    let _listener = net.listen(peer.clone()).unwrap();
    let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(1);
    let (started_tx, started_rx) = crossbeam_channel::bounded::<()>(1);
    let inner = net.dialer();
    let dialer = move |a: &Addr, ctx: &DialContext| -> Result<Box<dyn Stream>, DialError> {
        let _ = started_tx.try_send(());
        let _ = go_rx.recv_timeout(DEADLINE);
        inner.dial(a, ctx)
    };
    let config = Config::builder().dialer(dialer).clock(clock).build();
    let m = ConnManager::new(config).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();

    let id = m.handle().connect(ConnReq::new(peer.clone())).unwrap();
    started_rx.recv_timeout(DEADLINE).unwrap();
    m.handle()
        .ban(Subnet::host(peer.ip().unwrap()), HOUR, "banned mid-dial")
        .unwrap();
    assert!(wait_until(|| m.handle().bans().len() == 1));
    go_tx.send(()).unwrap();

    let ev = take_events(&rx, 1, |e| {
        e.id() == Some(id) && matches!(e, Event::Connected { .. } | Event::DialFailed { .. })
    })
    .remove(0);
    match ev {
        Event::DialFailed { error, .. } => assert_ban_rejection(&error, "banned mid-dial"),
        Event::Connected { conn, .. } => {
            disconnected(&rx, id);
            assert!(conn.is_closed());
        }
        _ => unreachable!(),
    }
    assert_eq!(m.handle().counts().outbound, 0);
    m.stop();
}

/// A peer without an IP (here an in-memory client) that reaches the
/// threshold is dropped, and nothing is banned.
#[test]
fn misbehaving_peer_without_an_ip_is_dropped_without_a_ban() {
    let clock = ManualClock::new();
    let net = MemoryNetwork::new();
    let at = mem_addr(1);
    let listener = net.listen(at.clone()).unwrap();
    let (m, rx) = start_manager(&net, &clock, |b| b.listener(listener));
    let _client = net.connect(&at).unwrap();
    let conn = accepted(&rx);
    m.handle()
        .misbehaving(conn.id(), 100, 0, "garbage")
        .unwrap();
    expect_event(&rx, |e| {
        matches!(e, Event::InboundClosed { .. }) && e.id() == Some(conn.id())
    });
    assert!(conn.is_closed());
    assert!(m.handle().bans().is_empty(), "{:?}", m.handle().bans());
    assert_eq!(m.handle().counts().inbound, 0);
    m.stop();
}

/// Banning a CIDR range closes the live connections inside it, keeps the
/// others, and rejects new dials into it until it is lifted.
#[test]
fn subnet_ban_closes_connections_inside_and_unban_lifts_it() {
    let clock = ManualClock::new();
    let net = MemoryNetwork::new();
    let inside = [addr("203.0.113.1:8333"), addr("203.0.113.2:8333")];
    let later = addr("203.0.113.3:8333");
    let outside = addr("198.51.100.1:8333");
    let _listeners: Vec<MemoryListener> = inside
        .iter()
        .chain([&later, &outside])
        .map(|a| net.listen(a.clone()).unwrap())
        .collect();
    let (m, rx) = start_manager(&net, &clock, |b| b);
    let mut conns = Vec::new();
    for a in inside.iter().chain([&outside]) {
        let id = m.handle().connect(ConnReq::new(a.clone())).unwrap();
        conns.push((id, connected(&rx, id)));
    }

    let range = subnet("203.0.113.0/24");
    m.handle().ban(range, HOUR, "spam range").unwrap();
    let gone = take_events(&rx, 2, |e| matches!(e, Event::Disconnected { .. }));
    let mut gone: Vec<ConnId> = gone.iter().filter_map(Event::id).collect();
    gone.sort();
    assert_eq!(gone, vec![conns[0].0, conns[1].0]);
    assert!(conns[0].1.is_closed() && conns[1].1.is_closed());
    assert!(!conns[2].1.is_closed());
    assert_eq!(m.handle().counts().outbound, 1);
    let bans = m.handle().bans();
    assert_eq!(bans.len(), 1);
    assert_eq!(
        (bans[0].subnet, bans[0].reason.as_str()),
        (range, "spam range")
    );

    let id = m.handle().connect(ConnReq::new(later.clone())).unwrap();
    assert_ban_rejection(&dial_failed(&rx, id).0, "spam range");

    // Lifting a different subnet changes nothing; lifting this one works.
    m.handle().unban(subnet("203.0.113.0/25")).unwrap();
    sync(m.handle());
    assert_eq!(m.handle().bans().len(), 1);
    m.handle().unban(range).unwrap();
    assert!(wait_until(|| m.handle().bans().is_empty()));
    let id = m.handle().connect(ConnReq::new(later)).unwrap();
    let _back = connected(&rx, id);
    assert_eq!(m.handle().counts().outbound, 2);
    m.stop();
}

/// A manager listening on loopback TCP whose `on_accept` callback records
/// every connection it is given.
fn tcp_manager(clock: &ManualClock) -> (ConnManager, Arc<Mutex<Vec<Conn>>>, Receiver<Event>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&seen);
    let config = Config::builder()
        .dialer(TcpDialer::new())
        .clock(clock.clone())
        .listen("127.0.0.1:0".parse().unwrap())
        .on_accept(move |_, conn| keep.lock().push(conn))
        .build();
    let m = ConnManager::new(config).unwrap();
    let rx = m.handle().events();
    m.start().unwrap();
    (m, seen, rx)
}

/// Connects to the manager's listener over loopback TCP.
fn tcp_client(m: &Handle) -> TcpStream {
    let at = m.listen_addrs()[0].socket_addr().unwrap();
    let client = TcpStream::connect(at).unwrap();
    client.set_read_timeout(Some(DEADLINE)).unwrap();
    client
}

/// Asserts the other side closed `client`: a read sees end of file or a
/// reset, not a timeout.
fn assert_closed_by_peer(client: &mut TcpStream) {
    let mut buf = [0u8; 16];
    match client.read(&mut buf) {
        Ok(0) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ) => {}
        other => panic!("connection still open: {other:?}"),
    }
}

/// An inbound TCP client from a banned address is closed before any
/// `on_accept` runs, and counted as refused; once unbanned it is accepted.
#[test]
fn banned_inbound_address_is_refused_before_on_accept() {
    let clock = ManualClock::new();
    let (m, seen, _rx) = tcp_manager(&clock);
    m.handle()
        .ban(Subnet::host(LOOPBACK), HOUR, "local test ban")
        .unwrap();
    assert!(wait_until(|| m.handle().bans().len() == 1));

    let mut client = tcp_client(m.handle());
    assert!(
        wait_until(|| m.handle().snapshot().stats.inbound_refused == 1),
        "{:?}",
        m.handle().snapshot().stats
    );
    assert_closed_by_peer(&mut client);
    assert!(seen.lock().is_empty(), "on_accept ran for a banned peer");
    let stats = m.handle().snapshot().stats;
    assert_eq!(stats.inbound_accepted, 0);
    assert_eq!(m.handle().counts().inbound, 0);

    m.handle().unban(Subnet::host(LOOPBACK)).unwrap();
    assert!(wait_until(|| m.handle().bans().is_empty()));
    let _client = tcp_client(m.handle());
    assert!(wait_until(|| seen.lock().len() == 1));
    assert_eq!(m.handle().snapshot().stats.inbound_refused, 1);
    m.stop();
}

/// An inbound TCP peer that reaches the threshold is closed, its IP
/// banned, and its next connection refused.
#[test]
fn misbehaving_inbound_peer_is_banned_and_refused_when_it_returns() {
    let clock = ManualClock::new();
    let (m, seen, rx) = tcp_manager(&clock);
    let mut first = tcp_client(m.handle());
    assert!(wait_until(|| seen.lock().len() == 1));
    let id = seen.lock()[0].id();
    m.handle().misbehaving(id, 100, 0, "bad handshake").unwrap();
    expect_event(&rx, |e| {
        matches!(e, Event::InboundClosed { .. }) && e.id() == Some(id)
    });
    assert_closed_by_peer(&mut first);
    let bans = m.handle().bans();
    assert_eq!(bans.len(), 1, "{bans:?}");
    assert_eq!(bans[0].subnet, Subnet::host(LOOPBACK));
    assert!(bans[0].reason.contains("bad handshake"));

    let mut second = tcp_client(m.handle());
    assert!(wait_until(
        || m.handle().snapshot().stats.inbound_refused == 1
    ));
    assert_closed_by_peer(&mut second);
    assert_eq!(seen.lock().len(), 1);
    m.stop();
}

/// A ban lasts exactly its duration on the manager's clock.
#[test]
fn ban_expires_with_the_clock() {
    let clock = ManualClock::new();
    let net = MemoryNetwork::new();
    let peer = addr("203.0.113.9:8333");
    let _listener = net.listen(peer.clone()).unwrap();
    let (m, rx) = start_manager(&net, &clock, |b| b);
    let banned_at = clock.now();
    m.handle()
        .ban(
            Subnet::host(peer.ip().unwrap()),
            Duration::from_secs(10),
            "short",
        )
        .unwrap();
    assert!(wait_until(|| m.handle().bans().len() == 1));
    assert_eq!(
        m.handle().bans()[0].until,
        banned_at + Duration::from_secs(10)
    );

    let id = m.handle().connect(ConnReq::new(peer.clone())).unwrap();
    assert_ban_rejection(&dial_failed(&rx, id).0, "short");
    clock.advance(Duration::from_secs(9));
    let id = m.handle().connect(ConnReq::new(peer.clone())).unwrap();
    assert_ban_rejection(&dial_failed(&rx, id).0, "short");

    clock.advance(Duration::from_secs(2));
    assert!(m.handle().bans().is_empty(), "{:?}", m.handle().bans());
    let id = m.handle().connect(ConnReq::new(peer)).unwrap();
    let _conn = connected(&rx, id);
    assert!(m.handle().bans().is_empty());
    m.stop();
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("connmgr-bans-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Bans written to the ban file come back in a new manager (same subnets
/// and reasons, expiry within a second) and are enforced there.
#[test]
fn bans_survive_a_restart_through_the_ban_file() {
    let dir = TempDir::new("restart");
    let file = dir.path().join("bans.txt");
    let clock = ManualClock::new();
    let net = MemoryNetwork::new();
    let in_range = addr("203.0.113.50:8333");
    let host = addr("198.51.100.7:8333");
    let neighbour = addr("198.51.100.8:8333");
    let _listeners: Vec<MemoryListener> = [&in_range, &host, &neighbour]
        .into_iter()
        .map(|a| net.listen(a.clone()).unwrap())
        .collect();

    let before: Vec<BanEntry> = {
        let (m, _rx) = start_manager(&net, &clock, |b| b.ban_file(&file));
        m.handle()
            .ban(subnet("203.0.113.0/24"), HOUR, "range")
            .unwrap();
        m.handle()
            .ban(
                Subnet::host(host.ip().unwrap()),
                2 * HOUR,
                "odd reason: 100% wrong",
            )
            .unwrap();
        assert!(wait_until(|| m.handle().bans().len() == 2));
        let bans = m.handle().bans();
        m.stop();
        bans
    };
    assert!(file.exists());

    let (m, rx) = start_manager(&net, &clock, |b| b.ban_file(&file));
    assert!(
        wait_until(|| m.handle().bans().len() == 2),
        "{:?}",
        m.handle().bans()
    );
    let after = m.handle().bans();
    for (old, new) in before.iter().zip(&after) {
        assert_eq!((old.subnet, &old.reason), (new.subnet, &new.reason));
        assert!(
            new.until >= old.until && new.until - old.until <= Duration::from_secs(1),
            "expiry moved: {old:?} -> {new:?}"
        );
    }
    for (peer, reason) in [(&in_range, "range"), (&host, "100% wrong")] {
        let id = m.handle().connect(ConnReq::new(peer.clone())).unwrap();
        assert_ban_rejection(&dial_failed(&rx, id).0, reason);
    }
    let id = m.handle().connect(ConnReq::new(neighbour.clone())).unwrap();
    let _conn = connected(&rx, id);
    m.stop();
}

/// The ban file follows the list: a lifted ban is not restored, and
/// neither is one that expired before the restart.
#[test]
fn lifted_and_expired_bans_are_not_restored() {
    let dir = TempDir::new("lifted");
    let file = dir.path().join("bans.txt");
    let clock = ManualClock::new();
    let net = MemoryNetwork::new();
    {
        let (m, _rx) = start_manager(&net, &clock, |b| b.ban_file(&file));
        m.handle()
            .ban(subnet("203.0.113.0/24"), HOUR, "lifted")
            .unwrap();
        m.handle()
            .ban(
                subnet("198.51.100.0/24"),
                10 * Duration::from_secs(60),
                "expires",
            )
            .unwrap();
        m.handle()
            .ban(subnet("192.0.2.1"), 2 * HOUR, "stays")
            .unwrap();
        assert!(wait_until(|| m.handle().bans().len() == 3));
        m.handle().unban(subnet("203.0.113.0/24")).unwrap();
        assert!(wait_until(|| m.handle().bans().len() == 2));
        m.stop();
    }
    clock.advance(Duration::from_secs(11 * 60));
    let (m, _rx) = start_manager(&net, &clock, |b| b.ban_file(&file));
    sync(m.handle());
    let bans = m.handle().bans();
    assert_eq!(bans.len(), 1, "{bans:?}");
    assert_eq!(
        (bans[0].subnet, bans[0].reason.as_str()),
        (subnet("192.0.2.1"), "stays")
    );
    m.stop();
}

/// A corrupt ban file fails `ConnManager::new` with an error naming the
/// line, and the failed load leaves the file exactly as it was.
#[test]
fn corrupt_ban_file_is_a_config_error_naming_the_line() {
    let dir = TempDir::new("corrupt");
    let file = dir.path().join("bans.txt");
    let text = "# connmgr ban list v1\n\
                203.0.113.0/24 99999999999 fine\n\
                this line is garbage\n\
                more garbage\n";
    std::fs::write(&file, text).unwrap();

    let net = MemoryNetwork::new();
    let config = Config::builder()
        .dialer(net.dialer())
        .ban_file(&file)
        .build();
    let err = ConnManager::new(config).expect_err("a corrupt ban file was accepted");
    match &err {
        ConfigError::BanFile(why) => assert!(why.contains("line 3"), "{why}"),
        other => panic!("expected a ban file error, got {other:?}"),
    }
    assert!(err.to_string().contains("ban file"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("bans.txt")]);
}

/// Inbound slots that eviction can work with: Bitcoin Core's rules protect
/// up to 20 peers by netgroup, ping, transactions and blocks and half of
/// the rest by uptime, so a few must be left over.
const EVICTION_SLOTS: usize = 24;

/// A manager with `slots` inbound slots and eviction on, its listener
/// address, and `slots` accepted connections with their client ends.
struct Full {
    m: ConnManager,
    rx: Receiver<Event>,
    at: Addr,
    conns: Vec<Conn>,
    clients: Vec<PipeStream>,
}

fn fill_inbound(net: &MemoryNetwork, clock: &ManualClock, slots: usize) -> Full {
    let at = mem_addr(7);
    let listener = net.listen(at.clone()).unwrap();
    let (m, rx) = start_manager(net, clock, |b| {
        b.listener(listener).max_inbound(slots).evict_inbound(true)
    });
    let mut full = Full {
        m,
        rx,
        at,
        conns: Vec::new(),
        clients: Vec::new(),
    };
    for _ in 0..slots {
        full.clients.push(net.connect(&full.at).unwrap());
        full.conns.push(accepted(&full.rx));
    }
    assert_eq!(full.m.handle().counts().inbound, slots);
    full
}

/// Waits for a newcomer's admission and the eviction that made room for
/// it (reported first); returns the newcomer and the evicted id.
fn admit_with_eviction(rx: &Receiver<Event>) -> (Conn, ConnId) {
    let evs = take_events(rx, 2, |e| {
        matches!(e, Event::Accepted { .. } | Event::InboundClosed { .. })
    });
    let mut evs = evs.into_iter();
    match (evs.next(), evs.next()) {
        (
            Some(Event::InboundClosed {
                id,
                reason: CloseReason::Evicted,
                ..
            }),
            Some(Event::Accepted { conn }),
        ) => (conn, id),
        other => panic!("expected an eviction, then the newcomer: {other:?}"),
    }
}

/// With every slot taken, each newcomer evicts one inbound peer; the peer
/// protected by its id, the one with the best ping and the one that
/// delivered a novel block are never chosen, and the count never exceeds
/// the limit.
#[test]
fn full_inbound_slots_evict_for_newcomers_but_never_protected_peers() {
    let clock = ManualClock::new();
    let net = MemoryNetwork::new();
    let mut full = fill_inbound(&net, &clock, EVICTION_SLOTS);
    let m = &full.m;
    let protected = &full.conns[EVICTION_SLOTS - 1];
    let pinged = &full.conns[EVICTION_SLOTS - 2];
    let useful = &full.conns[EVICTION_SLOTS - 3];
    m.handle()
        .protect(protected.remote_addr().to_string(), "friend")
        .unwrap();
    m.handle()
        .report_ping(pinged.id(), Duration::from_millis(5))
        .unwrap();
    m.handle().report_novel_block(useful.id()).unwrap();
    sync(m.handle());

    let (mut evicted, mut newcomers) = (Vec::new(), Vec::new());
    for round in 1..=4 {
        full.clients.push(net.connect(&full.at).unwrap());
        let (conn, gone) = admit_with_eviction(&full.rx);
        evicted.push(gone);
        newcomers.push(conn);
        let snap = m.handle().snapshot();
        assert_eq!(snap.stats.evicted, round, "{:?}", snap.stats);
        assert_eq!(snap.counts.inbound, EVICTION_SLOTS);
    }
    for keep in [protected, pinged, useful] {
        assert!(!evicted.contains(&keep.id()), "{keep:?} was evicted");
        assert!(!keep.is_closed(), "{keep:?} was closed");
    }
    for conn in full.conns.iter().chain(&newcomers) {
        assert_eq!(conn.is_closed(), evicted.contains(&conn.id()), "{conn:?}");
    }
    let stats = m.handle().snapshot().stats;
    assert_eq!(stats.peak_inbound, EVICTION_SLOTS);
    assert_eq!(stats.inbound_refused, 0);
    assert_eq!(stats.inbound_accepted, EVICTION_SLOTS as u64 + 4);
    full.m.stop();
}

/// An eviction is counted as one, not as a trim, and its close event says
/// so.
#[test]
fn evictions_count_as_policy_closes() {
    let clock = ManualClock::new();
    let net = MemoryNetwork::new();
    let mut full = fill_inbound(&net, &clock, EVICTION_SLOTS);
    full.clients.push(net.connect(&full.at).unwrap());
    let (newcomer, _) = admit_with_eviction(&full.rx);
    full.conns.push(newcomer);
    let stats = full.m.handle().snapshot().stats;
    // admit_with_eviction checked the close event's reason.
    assert_eq!(
        (stats.evicted, stats.closes.evicted, stats.trimmed),
        (1, 1, 0),
        "{stats:?}"
    );
    full.m.stop();
}

/// With only four slots Bitcoin Core's rules protect every peer (four by
/// netgroup alone), so eviction finds no victim and the newcomer is
/// refused instead.
#[test]
fn too_few_slots_for_eviction_refuse_the_newcomer() {
    let clock = ManualClock::new();
    let net = MemoryNetwork::new();
    let mut full = fill_inbound(&net, &clock, 4);
    let late = net.connect(&full.at).unwrap();
    assert!(wait_until(|| full
        .m
        .handle()
        .snapshot()
        .stats
        .inbound_refused
        == 1));
    assert!(
        wait_until(|| late.is_closed()),
        "the refused pipe stays open"
    );
    let stats = full.m.handle().snapshot().stats;
    assert_eq!(stats.evicted, 0);
    assert_eq!(full.m.handle().counts().inbound, 4);
    assert!(full.conns.iter().all(|c| !c.is_closed()));
    full.clients.clear();
    full.m.stop();
}
