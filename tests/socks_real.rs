//! The SOCKS5 client against a real proxy: the `microsocks` binary on a
//! loopback port, started and killed by each test.

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::MutexGuard;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::DEADLINE;
use connmgr::*;
use crossbeam_channel::unbounded;

/// A running microsocks; killed and reaped on drop so no process
/// outlives the test.
struct Microsocks {
    child: Child,
    addr: SocketAddr,
    // `external::server_turn`, released after the kill (fields drop
    // after `drop` runs).
    _turn: MutexGuard<'static, ()>,
}

impl Drop for Microsocks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts microsocks with `extra` arguments, or returns `None` (after
/// saying why) when the binary is missing outside CI. In CI a missing
/// binary fails the test.
fn microsocks(extra: &[&str]) -> Option<Microsocks> {
    // A port picked this way can be taken before microsocks binds it;
    // then microsocks exits and another port is tried.
    for _ in 0..3 {
        match start_on_free_port(extra) {
            Ok(Some(proxy)) => return Some(proxy),
            Ok(None) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return missing_binary(),
            Err(e) => panic!("cannot start microsocks: {e}"),
        }
    }
    panic!("microsocks exited at start three times; is something wrong with it?");
}

fn missing_binary() -> Option<Microsocks> {
    let msg = "the microsocks binary is not installed; run `apt-get install microsocks`";
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg} (required when CI=true)");
    }
    eprintln!("skipping: {msg}");
    None
}

/// Starts microsocks on a free loopback port and waits until it answers
/// a SOCKS greeting. `Ok(None)`: it exited early (most likely the port
/// was taken meanwhile).
fn start_on_free_port(extra: &[&str]) -> io::Result<Option<Microsocks>> {
    let turn = external::server_turn();
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new("microsocks")
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut proxy = Microsocks {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        _turn: turn,
    };
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if proxy.child.try_wait()?.is_some() {
            return Ok(None);
        }
        if answers_socks_greeting(proxy.addr) {
            // A proxy that lost the port to another process exits after
            // failing to bind; if ours has exited, the answer was not its.
            return match proxy.child.try_wait()? {
                None => Ok(Some(proxy)),
                Some(_) => Ok(None),
            };
        }
        thread::sleep(Duration::from_millis(5));
    }
    panic!(
        "microsocks did not accept connections on {} in time",
        proxy.addr
    );
}

/// Whether a SOCKS5 server answers on `addr`: it replies to a greeting
/// offering no-auth and username/password with version 5 and a method.
fn answers_socks_greeting(addr: SocketAddr) -> bool {
    let probe = || -> io::Result<[u8; 2]> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        s.write_all(&[5, 2, 0, 2])?;
        let mut reply = [0u8; 2];
        s.read_exact(&mut reply)?;
        Ok(reply)
    };
    matches!(probe(), Ok([5, 0 | 2]))
}

/// Echoes one connection until the client closes it.
fn echo_peer() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut reader = s.try_clone().unwrap();
        let _ = io::copy(&mut reader, &mut s);
    });
    (addr, thread)
}

/// Writes `msg` and reads the same number of bytes back.
fn round_trip<S: Read + Write>(stream: &mut S, msg: &[u8]) -> Vec<u8> {
    stream.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    stream.read_exact(&mut back).unwrap();
    back
}

fn ctx() -> DialContext {
    DialContext::with_timeout(DEADLINE)
}

fn manager_reaches_an_echo_peer_through_microsocks() {
    let Some(proxy) = microsocks(&[]) else { return };
    let (peer, echo) = echo_peer();
    let (tx, rx) = unbounded();
    let dialer = Socks5Dialer::new(Socks5Proxy::new(proxy.addr)).proxy_all(true);
    let config = Config::builder()
        .dialer(dialer)
        .on_connection(move |_, _, conn| {
            let _ = tx.send(conn);
        })
        .build();
    let manager = ConnManager::new(config).unwrap();
    manager.start().unwrap();
    manager
        .handle()
        .connect(ConnReq::new(Addr::Ip(peer)))
        .unwrap();
    let mut conn = rx.recv_timeout(DEADLINE).expect("no connection");
    assert_eq!(
        round_trip(&mut conn, b"hello via microsocks"),
        b"hello via microsocks"
    );
    // A second message proves the stream stays usable, not just one reply.
    assert_eq!(round_trip(&mut conn, &[0xAB; 4096]), vec![0xAB; 4096]);
    conn.close();
    manager.stop();
    echo.join().unwrap();
}

fn isolation_falls_back_to_no_auth_on_a_proxy_without_auth() {
    let Some(proxy) = microsocks(&[]) else { return };
    let (peer, echo) = echo_peer();
    let socks = Socks5Proxy::builder(proxy.addr)
        .isolate(true)
        .build()
        .unwrap();
    let mut stream = socks.connect(&peer.into(), &ctx()).unwrap();
    assert_eq!(round_trip(&mut stream, b"isolated"), b"isolated");
    drop(stream);
    echo.join().unwrap();
}

fn correct_credentials_are_accepted_by_microsocks() {
    let Some(proxy) = microsocks(&["-u", "user", "-P", "pass"]) else {
        return;
    };
    let (peer, echo) = echo_peer();
    let socks = Socks5Proxy::builder(proxy.addr)
        .auth("user", "pass")
        .build()
        .unwrap();
    let mut stream = socks.connect(&peer.into(), &ctx()).unwrap();
    assert_eq!(round_trip(&mut stream, b"authenticated"), b"authenticated");
    drop(stream);
    echo.join().unwrap();
}

fn wrong_credentials_are_rejected_by_microsocks() {
    let Some(proxy) = microsocks(&["-u", "user", "-P", "pass"]) else {
        return;
    };
    let socks = Socks5Proxy::builder(proxy.addr)
        .auth("user", "wrong")
        .build()
        .unwrap();
    // The target is never reached: authentication fails first.
    let target = SocketAddr::from(([127, 0, 0, 1], 9)).into();
    let err = socks.connect(&target, &ctx()).unwrap_err();
    assert!(matches!(err, SocksError::AuthFailed(_)), "{err:?}");
}

fn missing_credentials_are_reported_as_auth_required_by_microsocks() {
    let Some(proxy) = microsocks(&["-u", "user", "-P", "pass"]) else {
        return;
    };
    let target = SocketAddr::from(([127, 0, 0, 1], 9)).into();
    let err = Socks5Proxy::new(proxy.addr)
        .connect(&target, &ctx())
        .unwrap_err();
    assert!(matches!(err, SocksError::AuthRequired), "{err:?}");
}

#[path = "common/external.rs"]
mod external;

fn main() {
    external::run(
        external::installed("microsocks", "run `apt-get install microsocks`"),
        &[
            (
                "manager_reaches_an_echo_peer_through_microsocks",
                manager_reaches_an_echo_peer_through_microsocks,
            ),
            (
                "isolation_falls_back_to_no_auth_on_a_proxy_without_auth",
                isolation_falls_back_to_no_auth_on_a_proxy_without_auth,
            ),
            (
                "correct_credentials_are_accepted_by_microsocks",
                correct_credentials_are_accepted_by_microsocks,
            ),
            (
                "wrong_credentials_are_rejected_by_microsocks",
                wrong_credentials_are_rejected_by_microsocks,
            ),
            (
                "missing_credentials_are_reported_as_auth_required_by_microsocks",
                missing_credentials_are_reported_as_auth_required_by_microsocks,
            ),
        ],
    )
}
