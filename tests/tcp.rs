//! TCP dialing and listening over real loopback sockets.

mod common;

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::*;
use connmgr::*;
use crossbeam_channel::{unbounded, Receiver};
use parking_lot::Mutex;
use socket2::{Domain, Protocol, Socket, Type};

fn loopback4(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// A loopback address with a socket bound to it but not listening:
/// connects to it are refused, and no other socket can take the port while
/// the returned socket lives.
fn refused_addr() -> (Socket, SocketAddr) {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket.bind(&loopback4(0).into()).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    (socket, addr)
}

/// A loopback listener that never accepts and whose accept queue is full,
/// so that new connects to it hang until their timeout.
struct Blackhole {
    addr: SocketAddr,
    _listener: Socket,
    _fillers: Vec<TcpStream>,
}

fn blackhole() -> Blackhole {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    listener.bind(&loopback4(0).into()).unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    let mut timeouts_in_a_row = 0;
    for _ in 0..64 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => {
                fillers.push(s);
                timeouts_in_a_row = 0;
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                timeouts_in_a_row += 1;
                // Two in a row: the queue is full, not just a lost packet.
                if timeouts_in_a_row == 2 {
                    return Blackhole {
                        addr,
                        _listener: listener,
                        _fillers: fillers,
                    };
                }
            }
            Err(e) => panic!("filling the blackhole's backlog failed: {e}"),
        }
    }
    panic!(
        "the blackhole's backlog never filled after {} connects",
        fillers.len()
    );
}

/// A manager with `dialer` that hands every outbound connection to the
/// returned receiver.
fn outbound_manager(dialer: impl Dial) -> (ConnManager, Receiver<(ConnReq, Conn)>) {
    let (tx, rx) = unbounded();
    let config = Config::builder()
        .dialer(dialer)
        .on_connection(move |_, req, conn| {
            let _ = tx.send((req, conn));
        })
        .build();
    let m = ConnManager::new(config).unwrap();
    m.start().unwrap();
    (m, rx)
}

/// Dials `listener` through the manager and exchanges data
/// both ways over the resulting `Conn`.
fn round_trip_through_manager(listener: std::net::TcpListener) {
    let server_addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        s.write_all(b"world").unwrap();
        // Wait for the client to close.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        (peer, rest)
    });

    let (m, rx) = outbound_manager(TcpDialer::new());
    let target = Addr::Ip(server_addr);
    let id = m.handle().connect(ConnReq::new(target.clone())).unwrap();
    let (req, mut conn) = rx.recv_timeout(DEADLINE).expect("no connection");
    assert_eq!(req.id(), Some(id));
    assert_eq!(conn.id(), id);
    assert_eq!(conn.direction(), Direction::Outbound);
    assert_eq!(conn.remote_addr(), &target);
    // The snapshot is published after the hand-over, so wait for it.
    assert!(wait_until(|| m
        .handle()
        .conn_info(id)
        .is_some_and(|c| c.state == ConnState::Established)));

    conn.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"world");
    conn.write_all(b"bye").unwrap();
    conn.close();

    let (peer, rest) = server.join().unwrap();
    assert_eq!(peer.ip(), server_addr.ip());
    assert_eq!(rest, b"bye");
    m.stop();
}

#[test]
fn tcp_dialer_round_trip_ipv4() {
    let listener = std::net::TcpListener::bind(loopback4(0)).unwrap();
    round_trip_through_manager(listener);
}

#[test]
fn tcp_dialer_round_trip_ipv6() {
    let bind = std::net::TcpListener::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0));
    let listener = match bind {
        Ok(l) => l,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "cannot bind [::1] on CI: {e}"
            );
            eprintln!("skipping the IPv6 round trip: cannot bind [::1]: {e}");
            return;
        }
    };
    round_trip_through_manager(listener);
}

/// "localhost:<port>" is a DNS name, resolved by the system resolver.
#[test]
fn tcp_dialer_resolves_dns_names() {
    let listener = std::net::TcpListener::bind(loopback4(0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
    });
    let addr: Addr = format!("localhost:{port}").parse().unwrap();
    assert_eq!(addr.kind(), AddrKind::Dns);
    let ctx = DialContext::with_timeout(DEADLINE);
    let mut stream = TcpDialer::new().dial(&addr, &ctx).expect("dial localhost");
    stream.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    server.join().unwrap();
}

#[test]
fn tcp_dialer_refuses_onion_addresses_naming_socks5() {
    let addr: Addr = "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion:443"
        .parse()
        .unwrap();
    assert!(addr.is_onion());
    let ctx = DialContext::with_timeout(DEADLINE);
    match TcpDialer::new().dial(&addr, &ctx) {
        Err(DialError::Unsupported(msg)) => assert!(msg.contains("SOCKS5"), "{msg}"),
        Err(e) => panic!("expected Unsupported, got {e:?}"),
        Ok(_) => panic!("an onion address was dialed over plain TCP"),
    }
}

#[test]
fn tcp_dialer_closed_port_is_refused() {
    let (_guard, addr) = refused_addr();
    let ctx = DialContext::with_timeout(DEADLINE);
    match TcpDialer::new().dial(&Addr::Ip(addr), &ctx) {
        Err(e) => assert_eq!(e, DialError::Refused),
        Ok(_) => panic!("connected to a port nobody listens on"),
    }
}

#[test]
fn tcp_dialer_times_out_on_blackhole() {
    let hole = blackhole();
    let ctx = DialContext::with_timeout(DEADLINE);
    let dialer = TcpDialer::new().timeout(Duration::from_millis(300));
    match dialer.dial(&Addr::Ip(hole.addr), &ctx) {
        Err(e) => assert_eq!(e, DialError::TimedOut),
        Ok(_) => panic!("connected to a full backlog"),
    }
}

#[test]
fn manager_reports_timeout_dialing_blackhole() {
    let hole = blackhole();
    let (m, _rx) = outbound_manager(TcpDialer::new().timeout(Duration::from_millis(300)));
    let events = m.handle().events();
    let req = ConnReq::new(Addr::Ip(hole.addr));
    let id = m.handle().connect(req.clone()).unwrap();
    let ev = expect_event(&events, |ev| matches!(ev, Event::DialFailed { .. }));
    match ev {
        Event::DialFailed {
            req: failed,
            error,
            retry_in,
        } => {
            assert_eq!(failed.id(), Some(id));
            assert_eq!(error, DialError::TimedOut);
            assert_eq!(retry_in, None);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(wait_until(|| req.state() == ConnState::Failing));
    assert!(wait_until(|| m.handle().snapshot().stats.dial_failures == 1));
    m.stop();
}

/// Removing a permanent request whose dial hangs on a blackhole cancels
/// the connect; only the cancel can end it, as the timeout is 60 s.
#[test]
fn remove_cancels_dial_in_flight() {
    let hole = blackhole();
    let (started_tx, started_rx) = unbounded();
    let (ended_tx, ended_rx) = unbounded();
    let tcp = TcpDialer::new().timeout(Duration::from_secs(60));
    let dialer = move |addr: &Addr, ctx: &DialContext| {
        let _ = started_tx.send(());
        let result = tcp.dial(addr, ctx);
        let _ = ended_tx.send(result.as_ref().err().cloned());
        result
    };
    let config = Config::builder()
        .dialer(dialer)
        .dial_timeout(Duration::from_secs(60))
        .build();
    let m = ConnManager::new(config).unwrap();
    let events = m.handle().events();
    m.start().unwrap();

    let req = ConnReq::permanent(Addr::Ip(hole.addr));
    let id = m.handle().connect(req.clone()).unwrap();
    started_rx
        .recv_timeout(DEADLINE)
        .expect("dial never started");
    // Give the dialer a moment to enter connect (the test holds either way).
    thread::sleep(Duration::from_millis(50));
    m.handle().remove(id).unwrap();

    let ended = ended_rx
        .recv_timeout(DEADLINE)
        .expect("remove did not end the dial");
    assert_eq!(ended, Some(DialError::Canceled));
    assert!(wait_until(|| req.state() == ConnState::Canceled));
    assert!(wait_until(|| m.handle().conn_info(id).is_none()));
    // A canceled request is not reported as a failure.
    assert!(
        events.try_iter().all(|ev| ev.id() != Some(id)),
        "unexpected event"
    );

    let (done_tx, done_rx) = unbounded();
    let stopper = thread::spawn(move || {
        m.stop();
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(DEADLINE)
        .expect("stop() did not return: a dial is still hanging");
    stopper.join().unwrap();
}

#[test]
fn listener_accepts_and_reports_inbound_close() {
    let (acc_tx, acc_rx) = unbounded();
    let config = Config::builder()
        .dialer(TcpDialer::new())
        .listen(loopback4(0))
        .on_accept(move |_, mut conn| {
            let _ = acc_tx.send((conn.id(), conn.remote_addr().clone()));
            // The user reads the stream: echo until EOF, then drop the Conn.
            thread::spawn(move || {
                let mut buf = [0u8; 64];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        })
        .build();
    let m = ConnManager::new(config).unwrap();
    let events = m.handle().events();
    m.start().unwrap();

    let listen = m.handle().listen_addrs().to_vec();
    assert_eq!(listen.len(), 1);
    let server = listen[0].socket_addr().unwrap();
    assert_eq!(server.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_ne!(server.port(), 0);

    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(TcpStream::connect(server).unwrap());
    }
    let mut accepted = Vec::new();
    for _ in 0..clients.len() {
        accepted.push(acc_rx.recv_timeout(DEADLINE).expect("no Accepted"));
    }
    let locals: HashSet<Addr> = clients
        .iter()
        .map(|c| Addr::Ip(c.local_addr().unwrap()))
        .collect();
    let remotes: HashSet<Addr> = accepted.iter().map(|(_, a)| a.clone()).collect();
    assert_eq!(locals, remotes);
    assert!(wait_until(|| m.handle().counts().inbound == 3));
    for (id, _) in &accepted {
        assert_eq!(
            m.handle().conn_info(*id).unwrap().direction,
            Direction::Inbound
        );
    }

    for c in &mut clients {
        c.write_all(b"echo").unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"echo");
    }

    // Closing one client makes its server-side reader drop the Conn.
    let first = clients.remove(0);
    let first_addr = Addr::Ip(first.local_addr().unwrap());
    drop(first);
    let (first_id, _) = accepted
        .iter()
        .find(|(_, a)| *a == first_addr)
        .cloned()
        .unwrap();
    let ev = expect_event(&events, |ev| matches!(ev, Event::InboundClosed { .. }));
    match ev {
        Event::InboundClosed { id, addr, .. } => {
            assert_eq!(id, first_id);
            assert_eq!(addr, first_addr);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(wait_until(|| m.handle().counts().inbound == 2));
    assert!(m.handle().conn_info(first_id).is_none());
    assert_eq!(m.handle().snapshot().stats.inbound_accepted, 3);

    for c in &clients {
        c.shutdown(Shutdown::Both).unwrap();
    }
    assert!(wait_until(|| m.handle().counts().inbound == 0));
    m.stop();
}

/// 100 clients race for 10 inbound slots: exactly 10 are kept, the rest
/// are closed, and the limit is never exceeded.
#[test]
fn concurrent_accepts_respect_max_inbound() {
    const CLIENTS: usize = 100;
    const MAX: usize = 10;
    let held = Arc::new(Mutex::new(Vec::<Conn>::new()));
    let h2 = Arc::clone(&held);
    let config = Config::builder()
        .dialer(TcpDialer::new())
        .listen(loopback4(0))
        .max_inbound(MAX)
        .on_accept(move |_, conn| h2.lock().push(conn))
        .build();
    let m = ConnManager::new(config).unwrap();
    m.start().unwrap();
    let server = m.handle().listen_addrs()[0].socket_addr().unwrap();

    let barrier = Arc::new(Barrier::new(CLIENTS));
    let (report_tx, report_rx) = unbounded::<(SocketAddr, io::Result<usize>)>();
    let (close_tx, close_rx) = unbounded::<()>();
    let mut threads = Vec::new();
    for _ in 0..CLIENTS {
        let barrier = Arc::clone(&barrier);
        let report_tx = report_tx.clone();
        let close_rx = close_rx.clone();
        threads.push(thread::spawn(move || {
            barrier.wait();
            let mut s = TcpStream::connect(server).expect("connect");
            let local = s.local_addr().unwrap();
            let mut buf = [0u8; 1];
            // Refused: EOF or reset at once. Kept: blocks until the test
            // closes the server side.
            let r = s.read(&mut buf);
            let _ = report_tx.send((local, r));
            let _ = close_rx.recv();
            drop(s);
        }));
    }
    drop(report_tx);

    let settled = wait_until(|| {
        let st = m.handle().snapshot().stats;
        assert!(st.peak_inbound <= MAX, "{st:?}");
        st.inbound_accepted + st.inbound_refused == CLIENTS as u64
    });
    assert!(settled, "{:?}", m.handle().snapshot().stats);
    let stats = m.handle().snapshot().stats;
    assert_eq!(stats.inbound_accepted, MAX as u64);
    assert_eq!(stats.inbound_refused, (CLIENTS - MAX) as u64);
    assert!(stats.peak_inbound <= MAX);
    assert!(wait_until(|| held.lock().len() == MAX));
    assert_eq!(m.handle().counts().inbound, MAX);

    let kept: HashSet<SocketAddr> = held
        .lock()
        .iter()
        .map(|c| c.remote_addr().socket_addr().unwrap())
        .collect();
    assert_eq!(kept.len(), MAX);
    let mut refused = HashSet::new();
    for _ in 0..CLIENTS - MAX {
        let (local, r) = report_rx
            .recv_timeout(DEADLINE)
            .expect("a refused client never saw its connection close");
        assert!(!kept.contains(&local), "a kept connection was closed");
        match r {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("refused client read {other:?}"),
        }
        refused.insert(local);
    }
    assert_eq!(refused.len(), CLIENTS - MAX);

    // Now close the kept ones; their clients see EOF.
    for c in held.lock().drain(..) {
        c.close();
    }
    for _ in 0..MAX {
        let (local, r) = report_rx.recv_timeout(DEADLINE).expect("kept client");
        assert!(kept.contains(&local));
        assert!(matches!(r, Ok(0)) || r.is_err(), "{r:?}");
    }
    drop(close_tx);
    for t in threads {
        t.join().unwrap();
    }
    assert!(wait_until(|| m.handle().counts().inbound == 0));
    assert!(m.handle().snapshot().stats.peak_inbound <= MAX);
    m.stop();
}

/// The closer from the `Listener` trait wakes an `accept` blocked on
/// another thread, and accept fails from then on.
#[test]
fn tcp_listener_closer_wakes_blocked_accept() {
    let mut listener = TcpListener::bind(loopback4(0)).unwrap();
    let local = listener.local_socket_addr().unwrap();
    assert_eq!(Listener::local_addr(&listener).unwrap(), Addr::Ip(local));
    let closer = Listener::closer(&listener).unwrap();
    let (tx, rx) = unbounded();
    let acceptor = thread::spawn(move || {
        let first = listener.accept().map(|(_, a)| a);
        let second = listener.accept().map(|(_, a)| a);
        let _ = tx.send((first.is_err(), second.is_err()));
    });
    // Let the thread block in accept (the test holds if it has not yet).
    thread::sleep(Duration::from_millis(50));
    closer.close();
    let (first_failed, second_failed) = rx
        .recv_timeout(DEADLINE)
        .expect("accept was not woken by the closer");
    assert!(first_failed, "accept returned a connection after close");
    assert!(second_failed, "accept succeeded after close");
    acceptor.join().unwrap();
}

/// A started manager with `TcpDialer` and a loopback listener: it, its
/// events, and the listener's address.
fn tcp_manager() -> (ConnManager, Receiver<Event>, SocketAddr) {
    let m = ConnManager::new(
        Config::builder()
            .dialer(TcpDialer::new())
            .listen(loopback4(0))
            .build(),
    )
    .unwrap();
    let events = m.handle().events();
    m.start().unwrap();
    let listen = m.handle().listen_addrs()[0].socket_addr().unwrap();
    (m, events, listen)
}

/// Socket control on connections the manager hands out, both directions:
/// read timeouts (a blocking node times out an idle peer), nodelay,
/// keepalive, both addresses, the descriptor for a poll loop.
#[test]
fn connections_expose_socket_controls() {
    let server = std::net::TcpListener::bind(loopback4(0)).unwrap();
    let server_addr = server.local_addr().unwrap();
    let (m, events, listen) = tcp_manager();
    m.handle()
        .connect(ConnReq::new(Addr::Ip(server_addr)))
        .unwrap();
    let _outbound_peer = server.accept().unwrap();
    let _inbound_peer = TcpStream::connect(listen).unwrap();
    let mut conns = Vec::new();
    while conns.len() < 2 {
        match events.recv_timeout(DEADLINE).expect("no connection") {
            Event::Connected { conn, .. } | Event::Accepted { conn } => conns.push(conn),
            _ => {}
        }
    }
    for mut conn in conns {
        conn.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let err = conn.read(&mut [0u8; 8]).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "{err:?}"
        );
        conn.set_write_timeout(Some(DEADLINE)).unwrap();
        conn.set_nodelay(true).unwrap();
        assert!(conn.tcp_stream().unwrap().nodelay().unwrap());
        conn.set_keepalive(Some(Duration::from_secs(30))).unwrap();
        conn.set_keepalive(None).unwrap();
        let (local, peer) = (
            conn.local_socket_addr().unwrap(),
            conn.peer_socket_addr().unwrap(),
        );
        match conn.direction() {
            Direction::Outbound => assert_eq!(peer, server_addr),
            Direction::Inbound => assert_eq!(local, listen),
        }
        assert!(conn.raw_fd().is_some_and(|fd| fd >= 0));
    }
    m.stop();
}

/// `into_tcp` hands the socket over as a plain `TcpStream`; the manager
/// counts the connection open until the hold goes, and `stop` still
/// closes the socket under the stream.
#[test]
fn into_tcp_hands_over_the_socket_and_keeps_the_manager_informed() {
    let (m, events, listen) = tcp_manager();
    let mut peers: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(listen).unwrap())
        .collect();
    let mut taken = Vec::new();
    while taken.len() < 2 {
        if let Event::Accepted { conn } = events.recv_timeout(DEADLINE).expect("no accept") {
            taken.push(conn.into_tcp().expect("a TCP connection has a socket"));
        }
    }
    let (mut tcp, hold) = taken.remove(0);
    tcp.write_all(b"hi").unwrap();
    let mut buf = [0u8; 2];
    let peer = peers
        .iter_mut()
        .find(|p| p.local_addr().unwrap() == tcp.peer_addr().unwrap())
        .unwrap();
    peer.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi");
    assert_eq!(m.handle().counts().inbound, 2);
    drop(tcp);
    drop(hold);
    assert!(wait_until(|| m.handle().counts().inbound == 1));

    // The other one: stop closes the socket under the taken stream.
    let (mut tcp, _hold) = taken.remove(0);
    m.stop();
    assert_eq!(tcp.read(&mut buf).unwrap(), 0, "stop left the socket open");
}

/// In-memory connections honour read timeouts too, and say plainly that
/// they have no socket.
#[test]
fn pipe_connections_honour_timeouts_and_have_no_socket() {
    let net = MemoryNetwork::new();
    let at = mem_addr(3);
    let listener = net.listen(at.clone()).unwrap();
    let m = ConnManager::new(
        Config::builder()
            .dialer(net.dialer())
            .listener(listener)
            .build(),
    )
    .unwrap();
    let events = m.handle().events();
    m.start().unwrap();
    let _client = net.connect(&at).unwrap();
    let mut conn = loop {
        if let Event::Accepted { conn } = events.recv_timeout(DEADLINE).expect("no accept") {
            break conn;
        }
    };
    conn.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    assert_eq!(
        conn.read(&mut [0u8; 1]).unwrap_err().kind(),
        io::ErrorKind::TimedOut
    );
    assert!(conn.raw_fd().is_none() && conn.tcp_stream().is_none());
    assert_eq!(
        conn.set_keepalive(None).unwrap_err().kind(),
        io::ErrorKind::Unsupported
    );
    let conn = conn
        .into_tcp()
        .expect_err("a pipe has no socket to hand over");
    assert!(!conn.is_closed());
    m.stop();
}

/// Connects to `server` from the loopback address `from`.
fn connect_from(from: Ipv4Addr, server: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket
        .bind(&SocketAddr::new(IpAddr::V4(from), 0).into())
        .unwrap();
    socket.connect(&server.into()).unwrap();
    socket.into()
}

/// With `max_inbound_per_ip(3)`, twenty connections from one address get
/// three slots; another address still gets in; refusals are counted by
/// reason.
#[test]
fn the_per_ip_cap_holds_over_loopback() {
    let held = Arc::new(Mutex::new(Vec::<Conn>::new()));
    let h2 = Arc::clone(&held);
    let config = Config::builder()
        .dialer(TcpDialer::new())
        .listen(loopback4(0))
        .max_inbound_per_ip(3)
        .on_accept(move |_, conn| h2.lock().push(conn))
        .build();
    let m = ConnManager::new(config).unwrap();
    m.start().unwrap();
    let server = m.handle().listen_addrs()[0].socket_addr().unwrap();
    let flood: Vec<TcpStream> = (0..20)
        .map(|_| connect_from(Ipv4Addr::new(127, 0, 0, 1), server))
        .collect();
    assert!(wait_until(|| {
        let s = m.handle().snapshot().stats;
        s.inbound_accepted + s.inbound_refused == 20
    }));
    let other = connect_from(Ipv4Addr::new(127, 0, 0, 2), server);
    assert!(wait_until(
        || m.handle().snapshot().stats.inbound_accepted == 4
    ));
    let s = m.handle().snapshot().stats;
    assert_eq!((s.inbound_accepted, s.refusals.per_ip), (4, 17), "{s:?}");
    assert_eq!(s.refusals.full, 0);
    assert_eq!(m.handle().counts().inbound, 4);
    drop((flood, other));
    m.stop();
}

/// A force-inbound peer (by subnet) gets in when every inbound slot is
/// taken; others are refused; the snapshot shows its permissions.
#[test]
fn a_force_inbound_peer_gets_in_at_full_slots_over_loopback() {
    let held = Arc::new(Mutex::new(Vec::<Conn>::new()));
    let h2 = Arc::clone(&held);
    let config = Config::builder()
        .dialer(TcpDialer::new())
        .listen(loopback4(0))
        .max_inbound(2)
        .permissions("127.0.0.3", Permissions::FORCE_INBOUND | Permissions::RELAY)
        .on_accept(move |_, conn| h2.lock().push(conn))
        .build();
    let m = ConnManager::new(config).unwrap();
    m.start().unwrap();
    let server = m.handle().listen_addrs()[0].socket_addr().unwrap();
    let mut clients: Vec<TcpStream> = (0..3)
        .map(|_| connect_from(Ipv4Addr::new(127, 0, 0, 1), server))
        .collect();
    assert!(wait_until(|| {
        let s = m.handle().snapshot().stats;
        s.inbound_accepted == 2 && s.refusals.full == 1
    }));
    clients.push(connect_from(Ipv4Addr::new(127, 0, 0, 3), server));
    assert!(wait_until(|| m.handle().counts().inbound == 3));
    let snap = m.handle().snapshot();
    let forced = snap
        .conns
        .iter()
        .find(|c| {
            c.addr.as_ref().and_then(Addr::ip) == Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)))
        })
        .expect("the forced peer is in");
    assert_eq!(
        forced.permissions,
        Permissions::FORCE_INBOUND | Permissions::RELAY
    );
    assert!(snap
        .conns
        .iter()
        .filter(|c| c.id != forced.id)
        .all(|c| c.permissions.is_empty()));
    drop(clients);
    m.stop();
}
