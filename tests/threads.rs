//! Stopping a manager, or dropping it without stop, leaves no manager
//! thread behind and closes its listening socket.
//!
//! This binary holds a single test, so that no other manager in the
//! process starts threads while the thread list is read.

mod common;

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;

use common::*;
use connmgr::*;
use crossbeam_channel::unbounded;
use parking_lot::Mutex;
use socket2::{Domain, Protocol, Socket, Type};

const POOL: usize = 3;
const OUTBOUND: usize = 3;
const INBOUND: usize = 3;

fn loopback4(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// Names of this process's threads that start with "connmgr-" (the kernel
/// keeps at most 15 bytes of a name).
#[cfg(target_os = "linux")]
fn manager_threads() -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").unwrap() {
        let comm = entry.unwrap().path().join("comm");
        // A thread may exit between listing and reading.
        if let Ok(name) = std::fs::read_to_string(comm) {
            let name = name.trim_end().to_string();
            if name.starts_with("connmgr-") {
                names.push(name);
            }
        }
    }
    names.sort();
    names
}

/// What a running manager under test holds on to.
struct Running {
    manager: ConnManager,
    listen: SocketAddr,
    /// Connections handed to the callbacks.
    held: Arc<Mutex<Vec<Conn>>>,
    /// The test's ends of every connection.
    peers: Vec<TcpStream>,
    _refused: Socket,
    _server: std::net::TcpListener,
}

/// Starts a manager with a listener, a TCP dialer and callbacks; opens
/// connections both ways and a permanent request to a refused port, and
/// waits until all of it has happened.
fn start_busy_manager() -> Running {
    // Dial targets: a std listener whose backlog takes the connections.
    let server = std::net::TcpListener::bind(loopback4(0)).unwrap();
    let server_addr = server.local_addr().unwrap();
    // A bound, non-listening socket: connects to it are refused.
    let refused = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    refused.bind(&loopback4(0).into()).unwrap();
    let refused_addr = refused.local_addr().unwrap().as_socket().unwrap();

    let held = Arc::new(Mutex::new(Vec::new()));
    let (h_out, h_in) = (Arc::clone(&held), Arc::clone(&held));
    let (fail_tx, fail_rx) = unbounded();
    let config = Config::builder()
        .dialer(TcpDialer::new())
        .dialer_pool_size(POOL)
        .listen(loopback4(0))
        .on_connection(move |_, _, conn| h_out.lock().push(conn))
        .on_accept(move |_, conn| h_in.lock().push(conn))
        .on_event(move |_, ev| {
            if let Event::DialFailed { req, error, .. } = ev {
                let _ = fail_tx.send((req.id(), error));
            }
        })
        .build();
    let manager = ConnManager::new(config).unwrap();
    manager.start().unwrap();
    let listen = manager.handle().listen_addrs()[0].socket_addr().unwrap();

    for _ in 0..OUTBOUND {
        manager
            .handle()
            .connect(ConnReq::new(Addr::Ip(server_addr)))
            .unwrap();
    }
    let refused_id = manager
        .handle()
        .connect(ConnReq::permanent(Addr::Ip(refused_addr)))
        .unwrap();
    let mut peers = Vec::new();
    for _ in 0..INBOUND {
        peers.push(TcpStream::connect(listen).unwrap());
    }
    for _ in 0..OUTBOUND {
        peers.push(server.accept().unwrap().0);
    }

    let (id, error) = fail_rx.recv_timeout(DEADLINE).expect("no dial failure");
    assert_eq!(id, Some(refused_id));
    assert_eq!(error, DialError::Refused);
    assert!(
        wait_until(|| held.lock().len() == OUTBOUND + INBOUND),
        "{:?}",
        manager.handle().snapshot()
    );
    // The snapshot is published after the hand-overs, so wait for it.
    assert!(
        wait_until(|| {
            let c = manager.handle().counts();
            (c.outbound, c.inbound, c.permanent) == (OUTBOUND, INBOUND, 1)
        }),
        "{:?}",
        manager.handle().counts()
    );

    #[cfg(target_os = "linux")]
    {
        // A thread names itself once it first runs, which under load can
        // come after the dials it was not needed for: wait for the names.
        let dialers = |names: &[String]| {
            names
                .iter()
                .filter(|n| n.starts_with("connmgr-dial-"))
                .count()
        };
        assert!(
            wait_until(|| dialers(&manager_threads()) == POOL),
            "{:?}",
            manager_threads()
        );
        let names = manager_threads();
        for name in ["connmgr-handler", "connmgr-notify", "connmgr-accept"] {
            assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
        }
    }

    Running {
        manager,
        listen,
        held,
        peers,
        _refused: refused,
        _server: server,
    }
}

/// Checks what a stopped (or dropped) manager must leave behind: no
/// thread, a closed listening port, closed connections.
fn assert_all_gone(listen: SocketAddr, held: &Mutex<Vec<Conn>>, peers: &mut [TcpStream]) {
    #[cfg(target_os = "linux")]
    {
        // A joined thread can linger in the task list for a moment.
        let gone = wait_until(|| manager_threads().is_empty());
        assert!(gone, "threads left behind: {:?}", manager_threads());
    }
    match TcpStream::connect(listen) {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}"),
        Ok(_) => panic!("the listening port {listen} still accepts"),
    }
    assert!(held.lock().iter().all(|c| c.is_closed()));
    // Every peer sees its connection closed.
    for peer in peers {
        // A peer left open fails the test instead of hanging it.
        peer.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut buf = [0u8; 1];
        match peer.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("peer still connected: {other:?}"),
        }
    }
}

#[test]
fn stop_and_drop_leave_no_threads_and_close_the_listener() {
    #[cfg(target_os = "linux")]
    assert!(manager_threads().is_empty(), "{:?}", manager_threads());

    // First: an explicit stop.
    let mut run = start_busy_manager();
    run.manager.stop();
    assert!(!run.manager.handle().is_running());
    assert!(!run.manager.handle().snapshot().running);
    assert_all_gone(run.listen, &run.held, &mut run.peers);
    drop(run);

    // Second: a manager dropped while running, without stop.
    let Running {
        manager,
        listen,
        held,
        mut peers,
        _refused,
        _server,
    } = start_busy_manager();
    let handle: Handle = manager.handle().clone();
    drop(manager);
    assert!(!handle.is_running());
    assert_eq!(
        handle.connect(ConnReq::new(Addr::Ip(listen))),
        Err(Error::Stopped)
    );
    assert_all_gone(listen, &held, &mut peers);
}
