//! The SOCKS5 client and `Socks5Dialer` against a scripted proxy: a
//! loopback listener whose thread checks every byte the client sends and
//! answers with scripted bytes.

mod common;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::DEADLINE;
use connmgr::Route;
use connmgr::*;
use crossbeam_channel::{bounded, unbounded};

/// A valid v3 onion address (DuckDuckGo's).
const ONION: &str = "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion";
/// Success reply with an all-zero IPv4 bound address.
const OK_V4: [u8; 10] = [5, 0, 0, 1, 0, 0, 0, 0, 0, 0];
/// Short enough to keep the timeout tests fast.
const SHORT: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------
// The scripted proxy
// ---------------------------------------------------------------------

/// A scripted proxy; `finish` joins its thread, re-raising the script's
/// assertion failures in the test.
struct Scripted {
    addr: SocketAddr,
    thread: JoinHandle<()>,
}

impl Scripted {
    fn finish(self) {
        if let Err(panic) = self.thread.join() {
            std::panic::resume_unwind(panic);
        }
    }

    fn proxy(&self) -> Socks5Proxy {
        Socks5Proxy::new(self.addr)
    }
}

/// A proxy that accepts `conns` connections one after another and runs
/// `script` on each (with the connection's index).
fn scripted_n(conns: usize, script: impl Fn(usize, &mut TcpStream) + Send + 'static) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = thread::spawn(move || {
        for n in 0..conns {
            let mut stream = accept_within_deadline(&listener);
            script(n, &mut stream);
        }
    });
    Scripted { addr, thread }
}

/// A proxy that serves one connection with `script`.
fn scripted(script: impl FnOnce(&mut TcpStream) + Send + 'static) -> Scripted {
    let script = parking_lot::Mutex::new(Some(script));
    scripted_n(1, move |_, s| (script.lock().take().unwrap())(s))
}

/// Accepts one connection, failing the script if none comes by the
/// deadline (so a broken client cannot hang the test).
fn accept_within_deadline(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let end = Instant::now() + DEADLINE;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(DEADLINE)).unwrap();
                return stream;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < end => {
                thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("the client never connected to the scripted proxy: {e}"),
        }
    }
}

/// Reads exactly `want.len()` bytes and checks them.
fn expect(s: &mut TcpStream, want: &[u8], what: &str) {
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got)
        .unwrap_or_else(|e| panic!("reading the {what}: {e}"));
    assert_eq!(got, want, "the client sent a wrong {what}");
}

fn send(s: &mut TcpStream, bytes: &[u8]) {
    s.write_all(bytes).unwrap();
}

/// Reads one length-prefixed field of the RFC 1929 request.
fn read_field(s: &mut TcpStream) -> String {
    let mut len = [0u8; 1];
    s.read_exact(&mut len).unwrap();
    let mut field = vec![0u8; usize::from(len[0])];
    s.read_exact(&mut field).unwrap();
    String::from_utf8(field).unwrap()
}

/// Greeting without credentials, answered with "no authentication".
fn no_auth(s: &mut TcpStream) {
    expect(s, &[5, 1, 0], "method selection");
    send(s, &[5, 0]);
}

/// Waits until the client closes its end (or the read deadline passes).
fn drain(s: &mut TcpStream) {
    let _ = io::copy(s, &mut io::sink());
}

/// The request bytes for `cmd` to `host:port` as a domain target.
fn domain_request(cmd: u8, host: &str, port: u16) -> Vec<u8> {
    let mut req = vec![5, cmd, 0, 3, host.len() as u8];
    req.extend_from_slice(host.as_bytes());
    req.extend_from_slice(&port.to_be_bytes());
    req
}

fn ctx() -> DialContext {
    DialContext::with_timeout(DEADLINE)
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// A listener that is never accepted from, to prove nobody connected.
fn idle_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Connects complete in the kernel before the client returns, so an
/// empty accept queue afterwards means the client never connected.
fn assert_never_connected(listener: &TcpListener) {
    match listener.accept() {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("{peer} connected, but no network I/O was expected"),
        Err(e) => panic!("accept failed: {e}"),
    }
}

/// Runs `script` as the proxy and connects to `target` through it,
/// returning the client's result.
fn connect_via(
    target: SocksTarget,
    script: impl FnOnce(&mut TcpStream) + Send + 'static,
) -> Result<TcpStream, SocksError> {
    let proxy = scripted(script);
    let result = proxy.proxy().connect(&target, &ctx());
    proxy.finish();
    result
}

/// The text of a malformed-reply error; panics on any other result.
fn malformed_text<T: std::fmt::Debug>(result: Result<T, SocksError>) -> String {
    match result {
        Err(err @ SocksError::Malformed(_)) => err.to_string(),
        other => panic!("expected a malformed-reply error, got {other:?}"),
    }
}

/// Asserts a malformed-reply error whose text mentions `needle`.
fn assert_malformed<T: std::fmt::Debug>(result: Result<T, SocksError>, needle: &str) {
    let text = malformed_text(result);
    assert!(text.contains(needle), "{text:?} should mention {needle:?}");
}

// ---------------------------------------------------------------------
// CONNECT request bytes
// ---------------------------------------------------------------------

#[test]
fn connect_ipv4_target_sends_exact_bytes_and_hands_over_a_clean_stream() {
    let mut stream = connect_via(loopback(8333).into(), |s| {
        no_auth(s);
        expect(
            s,
            &[5, 1, 0, 1, 127, 0, 0, 1, 0x20, 0x8d],
            "CONNECT request",
        );
        send(s, &OK_V4);
        send(s, b"after the reply");
    })
    .unwrap();
    // The handshake's timeouts must not leak into the caller's stream.
    assert_eq!(stream.read_timeout().unwrap(), None);
    assert_eq!(stream.write_timeout().unwrap(), None);
    let mut data = [0u8; 15];
    stream.read_exact(&mut data).unwrap();
    assert_eq!(&data, b"after the reply");
}

#[test]
fn connect_ipv6_target_sends_exact_bytes() {
    let target = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 443);
    connect_via(target.into(), |s| {
        no_auth(s);
        let mut req = vec![5, 1, 0, 4];
        req.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        req.extend_from_slice(&[0x01, 0xbb]);
        expect(s, &req, "CONNECT request");
        // Answer with an IPv6 bound address to parse that path too.
        let mut reply = vec![5, 0, 0, 4];
        reply.extend_from_slice(&[0u8; 18]);
        send(s, &reply);
    })
    .unwrap();
}

#[test]
fn connect_domain_target_sends_the_name_for_the_proxy_to_resolve() {
    let target = SocksTarget::domain("peer.example", 8333).unwrap();
    connect_via(target, |s| {
        no_auth(s);
        expect(
            s,
            &domain_request(1, "peer.example", 8333),
            "CONNECT request",
        );
        // A domain-name bound address is valid in a CONNECT reply.
        send(s, &[5, 0, 0, 3, 1, b'x', 0, 1]);
    })
    .unwrap();
}

#[test]
fn a_255_byte_host_name_is_sent_with_its_length() {
    let host = "h".repeat(255);
    let want = domain_request(1, &host, 80);
    connect_via(SocksTarget::domain(host, 80).unwrap(), move |s| {
        no_auth(s);
        expect(s, &want, "CONNECT request");
        send(s, &OK_V4);
    })
    .unwrap();
}

// ---------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------

#[test]
fn username_password_auth_sends_rfc1929_subnegotiation() {
    let proxy = scripted(|s| {
        expect(s, &[5, 2, 0, 2], "method selection");
        send(s, &[5, 2]);
        expect(s, b"\x01\x05alice\x06secret", "username/password request");
        send(s, &[1, 0]);
        expect(s, &[5, 1, 0, 1, 127, 0, 0, 1, 0, 80], "CONNECT request");
        send(s, &OK_V4);
    });
    let socks = Socks5Proxy::builder(proxy.addr)
        .auth("alice", "secret")
        .build()
        .unwrap();
    socks.connect(&loopback(80).into(), &ctx()).unwrap();
    proxy.finish();
}

#[test]
fn credentials_are_skipped_when_the_proxy_needs_none() {
    let proxy = scripted(|s| {
        expect(s, &[5, 2, 0, 2], "method selection");
        send(s, &[5, 0]);
        expect(s, &[5, 1, 0, 1, 127, 0, 0, 1, 0, 80], "CONNECT request");
        send(s, &OK_V4);
    });
    let socks = Socks5Proxy::builder(proxy.addr)
        .auth("alice", "secret")
        .build()
        .unwrap();
    socks.connect(&loopback(80).into(), &ctx()).unwrap();
    proxy.finish();
}

#[test]
fn wrong_credentials_give_auth_failed() {
    let proxy = scripted(|s| {
        expect(s, &[5, 2, 0, 2], "method selection");
        send(s, &[5, 2]);
        expect(s, b"\x01\x05alice\x05wrong", "username/password request");
        send(s, &[1, 2]);
    });
    let socks = Socks5Proxy::builder(proxy.addr)
        .auth("alice", "wrong")
        .build()
        .unwrap();
    let err = socks.connect(&loopback(80).into(), &ctx()).unwrap_err();
    proxy.finish();
    assert!(matches!(err, SocksError::AuthFailed(2)), "{err:?}");
    assert!(err.to_string().contains("check the credentials"), "{err}");
    assert!(matches!(DialError::from(err), DialError::Other(_)));
}

#[test]
fn proxy_demanding_auth_without_credentials_gives_auth_required() {
    let err = connect_via(loopback(80).into(), |s| {
        expect(s, &[5, 1, 0], "method selection");
        send(s, &[5, 0xff]);
    })
    .unwrap_err();
    assert!(matches!(err, SocksError::AuthRequired), "{err:?}");
    assert!(err.to_string().contains("username and password"), "{err}");
}

#[test]
fn proxy_rejecting_every_offered_method_gives_no_acceptable_method() {
    let proxy = scripted(|s| {
        expect(s, &[5, 2, 0, 2], "method selection");
        send(s, &[5, 0xff]);
    });
    let socks = Socks5Proxy::builder(proxy.addr)
        .auth("alice", "secret")
        .build()
        .unwrap();
    let err = socks.connect(&loopback(80).into(), &ctx()).unwrap_err();
    proxy.finish();
    assert!(matches!(err, SocksError::NoAcceptableMethod), "{err:?}");
}

#[test]
fn stream_isolation_sends_fresh_random_credentials_per_connection() {
    let (tx, rx) = unbounded();
    let proxy = scripted_n(2, move |_, s| {
        expect(s, &[5, 2, 0, 2], "method selection");
        send(s, &[5, 2]);
        expect(s, &[1], "username/password version");
        let user = read_field(s);
        let pass = read_field(s);
        send(s, &[1, 0]);
        expect(s, &[5, 1, 0, 1, 127, 0, 0, 1, 0, 80], "CONNECT request");
        send(s, &OK_V4);
        tx.send((user, pass)).unwrap();
    });
    let socks = Socks5Proxy::builder(proxy.addr)
        .isolate(true)
        .build()
        .unwrap();
    socks.connect(&loopback(80).into(), &ctx()).unwrap();
    socks.connect(&loopback(80).into(), &ctx()).unwrap();
    proxy.finish();
    let (user1, pass1) = rx.recv().unwrap();
    let (user2, pass2) = rx.recv().unwrap();
    for field in [&user1, &pass1, &user2, &pass2] {
        assert!((1..=255).contains(&field.len()), "{field:?}");
    }
    assert_ne!(user1, user2, "each connection needs its own username");
    assert_ne!(pass1, pass2, "each connection needs its own password");
}

#[test]
fn credentials_outside_1_to_255_bytes_are_rejected_by_the_builder() {
    let addr = loopback(9050);
    let cases = [
        ("", "pass", "username is empty"),
        ("user", "", "password is empty"),
        (&*"u".repeat(256), "pass", "256 bytes"),
        ("user", &*"p".repeat(300), "300 bytes"),
    ];
    for (user, pass, needle) in cases {
        let err = Socks5Proxy::builder(addr)
            .auth(user, pass)
            .build()
            .unwrap_err();
        assert!(matches!(err, SocksError::InvalidCredentials(_)), "{err:?}");
        assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
    }
    let max = "x".repeat(255);
    let ok = Socks5Proxy::builder(addr)
        .auth(max.clone(), "hunter2")
        .build()
        .unwrap();
    assert_eq!(ok.auth(), Some((max.as_str(), "hunter2")));
    assert!(
        !format!("{ok:?}").contains("hunter2"),
        "Debug must not show the password"
    );
}

// ---------------------------------------------------------------------
// Tor RESOLVE and RESOLVE_PTR
// ---------------------------------------------------------------------

/// A Tor-like proxy that expects RESOLVE of `host` and answers `reply`.
fn resolve_script(host: &'static str, reply: Vec<u8>) -> Scripted {
    scripted(move |s| {
        no_auth(s);
        expect(s, &domain_request(0xf0, host, 0), "RESOLVE request");
        send(s, &reply);
    })
}

#[test]
fn each_reply_status_code_has_its_own_error() {
    type Check = fn(&SocksError) -> bool;
    let table: [(u8, Check); 9] = [
        (1, |e| matches!(e, SocksError::GeneralFailure)),
        (2, |e| matches!(e, SocksError::NotAllowed)),
        (3, |e| matches!(e, SocksError::NetworkUnreachable)),
        (4, |e| matches!(e, SocksError::HostUnreachable)),
        (5, |e| matches!(e, SocksError::ConnectionRefused)),
        (6, |e| matches!(e, SocksError::TtlExpired)),
        (7, |e| matches!(e, SocksError::CommandNotSupported)),
        (8, |e| matches!(e, SocksError::AddressTypeNotSupported)),
        (9, |e| matches!(e, SocksError::UnknownStatus(9))),
    ];
    for (code, check) in table {
        let proxy = resolve_script("peer.example", vec![5, code, 0, 1, 0, 0, 0, 0, 0, 0]);
        let err = tor_resolve(proxy.addr, "peer.example", DEADLINE).unwrap_err();
        proxy.finish();
        assert!(check(&err), "status {code} gave {err:?}");
        assert_eq!(err.status_code(), Some(code));
        assert!(err.to_string().contains(&format!("status {code}")), "{err}");
    }
}

#[test]
fn resolve_returns_an_ipv4_answer() {
    let proxy = resolve_script("peer.example", vec![5, 0, 0, 1, 192, 0, 2, 7, 0, 0]);
    let ips = tor_resolve(proxy.addr, "peer.example", DEADLINE).unwrap();
    proxy.finish();
    assert_eq!(ips, vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))]);
}

#[test]
fn resolve_returns_an_ipv6_answer() {
    let ip: Ipv6Addr = "2001:db8::7".parse().unwrap();
    let mut reply = vec![5, 0, 0, 4];
    reply.extend_from_slice(&ip.octets());
    reply.extend_from_slice(&[0, 0]);
    let proxy = resolve_script("peer.example", reply);
    let ips = tor_resolve(proxy.addr, "peer.example", DEADLINE).unwrap();
    proxy.finish();
    assert_eq!(ips, vec![IpAddr::V6(ip)]);
}

/// The C API's RESOLVE and RESOLVE_PTR write the answers as text and turn
/// Tor's refusals into status codes with the reason.
#[cfg(feature = "ffi")]
#[test]
fn resolve_through_the_c_api() {
    use connmgr::ffi::{
        connmgr_last_error, connmgr_tor_resolve, connmgr_tor_resolve_ptr, ConnmgrStatus,
    };
    use std::ffi::{CStr, CString};
    let text = |buf: &[std::ffi::c_char]| {
        // SAFETY: the call wrote a NUL-terminated string into `buf`.
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    let proxy = resolve_script("peer.example", vec![5, 0, 0, 1, 192, 0, 2, 7, 0, 0]);
    let (at, host) = (
        CString::new(proxy.addr.to_string()).unwrap(),
        c"peer.example",
    );
    let mut buf = [0 as std::ffi::c_char; 64];
    // SAFETY: valid C strings and a writable buffer of its length.
    let st = unsafe {
        connmgr_tor_resolve(
            at.as_ptr(),
            host.as_ptr(),
            10_000,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    proxy.finish();
    assert_eq!(st, ConnmgrStatus::Ok);
    assert_eq!(text(&buf), "192.0.2.7");

    // Tor says the name does not exist: a status with the reason.
    let proxy = resolve_script("peer.example", vec![5, 4, 0, 1, 0, 0, 0, 0, 0, 0]);
    let at = CString::new(proxy.addr.to_string()).unwrap();
    // SAFETY: as above.
    let st = unsafe {
        connmgr_tor_resolve(
            at.as_ptr(),
            host.as_ptr(),
            10_000,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    proxy.finish();
    assert_eq!(st, ConnmgrStatus::InvalidArgument);
    // SAFETY: connmgr_last_error never returns NULL.
    let why = unsafe { CStr::from_ptr(connmgr_last_error()) }
        .to_string_lossy()
        .into_owned();
    assert!(why.contains("status 4"), "{why}");

    // RESOLVE_PTR, and a bad IP argument.
    let proxy = scripted(|s| {
        no_auth(s);
        expect(
            s,
            &[5, 0xf1, 0, 1, 192, 0, 2, 9, 0, 0],
            "RESOLVE_PTR request",
        );
        let name = b"node.example";
        let mut reply = vec![5, 0, 0, 3, name.len() as u8];
        reply.extend_from_slice(name);
        reply.extend_from_slice(&[0, 0]);
        send(s, &reply);
    });
    let at = CString::new(proxy.addr.to_string()).unwrap();
    // SAFETY: as above.
    let st = unsafe {
        connmgr_tor_resolve_ptr(
            at.as_ptr(),
            c"192.0.2.9".as_ptr(),
            10_000,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    proxy.finish();
    assert_eq!(st, ConnmgrStatus::Ok);
    assert_eq!(text(&buf), "node.example");
    // SAFETY: as above.
    let st = unsafe {
        connmgr_tor_resolve_ptr(
            at.as_ptr(),
            c"nope".as_ptr(),
            10_000,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    assert_eq!(st, ConnmgrStatus::InvalidArgument);
}

#[test]
fn resolve_with_credentials_authenticates_first() {
    let proxy = scripted(|s| {
        expect(s, &[5, 2, 0, 2], "method selection");
        send(s, &[5, 2]);
        expect(s, b"\x01\x03tor\x03pw!", "username/password request");
        send(s, &[1, 0]);
        expect(
            s,
            &domain_request(0xf0, "peer.example", 0),
            "RESOLVE request",
        );
        send(s, &[5, 0, 0, 1, 192, 0, 2, 8, 0, 0]);
    });
    let socks = Socks5Proxy::builder(proxy.addr)
        .auth("tor", "pw!")
        .build()
        .unwrap();
    let ips = tor_resolve_with(&socks, "peer.example", DEADLINE).unwrap();
    proxy.finish();
    assert_eq!(ips, vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8))]);
}

#[test]
fn resolve_answered_with_a_host_name_is_malformed() {
    let proxy = resolve_script("peer.example", vec![5, 0, 0, 3, 1, b'x', 0, 0]);
    let result = tor_resolve(proxy.addr, "peer.example", DEADLINE);
    proxy.finish();
    assert_malformed(result, "instead of an IP address");
}

#[test]
fn resolve_ptr_sends_the_address_and_returns_the_name() {
    let proxy = scripted(|s| {
        no_auth(s);
        expect(
            s,
            &[5, 0xf1, 0, 1, 192, 0, 2, 9, 0, 0],
            "RESOLVE_PTR request",
        );
        let mut reply = vec![5, 0, 0, 3, 12];
        reply.extend_from_slice(b"peer.example");
        reply.extend_from_slice(&[0, 0]);
        send(s, &reply);
    });
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
    let name = tor_resolve_ptr(proxy.addr, ip, DEADLINE).unwrap();
    proxy.finish();
    assert_eq!(name, "peer.example");
}

#[test]
fn resolve_ptr_of_ipv6_sends_address_type_4() {
    let ip: Ipv6Addr = "2001:db8::9".parse().unwrap();
    let proxy = scripted(move |s| {
        no_auth(s);
        let mut req = vec![5, 0xf1, 0, 4];
        req.extend_from_slice(&ip.octets());
        req.extend_from_slice(&[0, 0]);
        expect(s, &req, "RESOLVE_PTR request");
        send(s, &[5, 0, 0, 3, 3, b'a', b'.', b'b', 0, 0]);
    });
    let socks = proxy.proxy();
    let name = tor_resolve_ptr_with(&socks, IpAddr::V6(ip), DEADLINE).unwrap();
    proxy.finish();
    assert_eq!(name, "a.b");
}

#[test]
fn resolve_ptr_answered_with_an_address_is_malformed() {
    let proxy = scripted(|s| {
        no_auth(s);
        expect(
            s,
            &[5, 0xf1, 0, 1, 192, 0, 2, 9, 0, 0],
            "RESOLVE_PTR request",
        );
        send(s, &OK_V4);
    });
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
    let result = tor_resolve_ptr(proxy.addr, ip, DEADLINE);
    proxy.finish();
    assert_malformed(result, "instead of a host name");
}

/// A name from RESOLVE_PTR is checked before anyone sees it: control
/// characters, spaces and empty labels are malformed replies.
#[test]
fn resolve_ptr_names_that_are_not_host_names_are_malformed() {
    for (name, why) in [
        (&b"evil\x1b[2Jname"[..], "byte 0x1b"),
        (&b"two words"[..], "byte 0x20"),
        (&b"a..b"[..], "empty label"),
        (&b"caf\xc3\xa9"[..], "byte 0xc3"),
    ] {
        let name = name.to_vec();
        let proxy = scripted(move |s| {
            no_auth(s);
            expect(
                s,
                &[5, 0xf1, 0, 1, 192, 0, 2, 9, 0, 0],
                "RESOLVE_PTR request",
            );
            let mut reply = vec![5, 0, 0, 3, name.len() as u8];
            reply.extend_from_slice(&name);
            reply.extend_from_slice(&[0, 0]);
            send(s, &reply);
        });
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
        let result = tor_resolve_ptr(proxy.addr, ip, DEADLINE);
        proxy.finish();
        assert_malformed(result, why);
    }
}

// ---------------------------------------------------------------------
// Truncated and malformed replies
// ---------------------------------------------------------------------

/// Runs a CONNECT to 127.0.0.1:80 against a proxy that answers the
/// greeting with `method_reply`, then (if given) the request with
/// `reply`, then closes.
fn connect_with_replies(
    method_reply: &'static [u8],
    reply: Option<&'static [u8]>,
) -> Result<TcpStream, SocksError> {
    connect_via(loopback(80).into(), move |s| {
        expect(s, &[5, 1, 0], "method selection");
        send(s, method_reply);
        if let Some(reply) = reply {
            expect(s, &[5, 1, 0, 1, 127, 0, 0, 1, 0, 80], "CONNECT request");
            send(s, reply);
        }
    })
}

/// Method selection reply, CONNECT reply (if any), and the part of the
/// exchange the error must name.
type TruncatedCase = (&'static [u8], Option<&'static [u8]>, &'static str);

#[test]
fn truncated_replies_are_reported_as_such() {
    let cases: [TruncatedCase; 5] = [
        (&[5], None, "method selection reply"),
        (&[5, 0], Some(&[]), "whole reply"),
        (&[5, 0], Some(&[5, 0, 0]), "whole reply"),
        (
            &[5, 0],
            Some(&[5, 0, 0, 4, 0x20, 0x01, 0x0d]),
            "reply address",
        ),
        (
            &[5, 0],
            Some(&[5, 0, 0, 3, 10, b'a', b'b']),
            "reply address",
        ),
    ];
    for (method_reply, reply, needle) in cases {
        let text = malformed_text(connect_with_replies(method_reply, reply));
        assert!(text.contains("closed the connection"), "{text}");
        assert!(text.contains(needle), "{text:?} should mention {needle:?}");
    }
}

#[test]
fn truncated_auth_reply_is_reported() {
    let proxy = scripted(|s| {
        expect(s, &[5, 2, 0, 2], "method selection");
        send(s, &[5, 2]);
        expect(s, b"\x01\x01u\x01p", "username/password request");
        send(s, &[1]);
    });
    let socks = Socks5Proxy::builder(proxy.addr)
        .auth("u", "p")
        .build()
        .unwrap();
    let result = socks.connect(&loopback(80).into(), &ctx());
    proxy.finish();
    assert_malformed(result, "whole username/password reply");
}

#[test]
fn wrong_version_in_method_reply_is_malformed() {
    assert_malformed(connect_with_replies(&[4, 0], None), "version 4, expected 5");
}

#[test]
fn wrong_version_in_connect_reply_is_malformed() {
    let reply: &[u8] = &[4, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    assert_malformed(
        connect_with_replies(&[5, 0], Some(reply)),
        "version 4, expected 5",
    );
}

#[test]
fn nonzero_reserved_byte_is_malformed() {
    let reply: &[u8] = &[5, 0, 1, 1, 0, 0, 0, 0, 0, 0];
    assert_malformed(connect_with_replies(&[5, 0], Some(reply)), "reserved byte");
}

#[test]
fn unknown_address_type_is_malformed() {
    let reply: &[u8] = &[5, 0, 0, 7, 0, 0, 0, 0, 0, 0];
    assert_malformed(
        connect_with_replies(&[5, 0], Some(reply)),
        "address type 0x07",
    );
}

#[test]
fn empty_host_name_in_reply_is_malformed() {
    let reply: &[u8] = &[5, 0, 0, 3, 0, 0, 0];
    assert_malformed(
        connect_with_replies(&[5, 0], Some(reply)),
        "host name is empty",
    );
}

#[test]
fn method_that_was_not_offered_is_malformed() {
    // Only "no authentication" was offered; username/password was not.
    assert_malformed(connect_with_replies(&[5, 2], None), "not offered");
    assert_malformed(connect_with_replies(&[5, 1], None), "not offered");
}

#[test]
fn wrong_version_in_auth_reply_is_malformed() {
    let proxy = scripted(|s| {
        expect(s, &[5, 2, 0, 2], "method selection");
        send(s, &[5, 2]);
        expect(s, b"\x01\x01u\x01p", "username/password request");
        send(s, &[5, 0]);
    });
    let socks = Socks5Proxy::builder(proxy.addr)
        .auth("u", "p")
        .build()
        .unwrap();
    let result = socks.connect(&loopback(80).into(), &ctx());
    proxy.finish();
    assert_malformed(result, "username/password reply has version 5, expected 1");
}

// ---------------------------------------------------------------------
// Timeouts, cancellation, unreachable proxy
// ---------------------------------------------------------------------

/// A proxy that reads the greeting and then never answers.
fn silent_proxy() -> Scripted {
    scripted(|s| {
        expect(s, &[5, 1, 0], "method selection");
        drain(s);
    })
}

#[test]
fn silent_proxy_times_out_by_the_handshake_timeout() {
    let proxy = silent_proxy();
    let socks = Socks5Proxy::builder(proxy.addr)
        .handshake_timeout(SHORT)
        .build()
        .unwrap();
    let err = socks.connect(&loopback(80).into(), &ctx()).unwrap_err();
    proxy.finish();
    assert!(matches!(err, SocksError::TimedOut), "{err:?}");
    assert_eq!(DialError::from(err), DialError::TimedOut);
}

#[test]
fn silent_proxy_times_out_by_the_dial_deadline() {
    let proxy = silent_proxy();
    let err = proxy
        .proxy()
        .connect(&loopback(80).into(), &DialContext::with_timeout(SHORT))
        .unwrap_err();
    proxy.finish();
    assert!(matches!(err, SocksError::TimedOut), "{err:?}");
}

#[test]
fn silent_proxy_times_out_a_resolve() {
    let proxy = silent_proxy();
    let err = tor_resolve(proxy.addr, "peer.example", SHORT).unwrap_err();
    proxy.finish();
    assert!(matches!(err, SocksError::TimedOut), "{err:?}");
}

#[test]
fn cancel_during_the_handshake_aborts_the_dial() {
    let (greeted_tx, greeted_rx) = bounded(1);
    let proxy = scripted(move |s| {
        expect(s, &[5, 1, 0], "method selection");
        greeted_tx.send(()).unwrap();
        drain(s);
    });
    let token = CancelToken::new();
    let dial_ctx = DialContext::new(Instant::now() + DEADLINE, token.clone());
    let socks = proxy.proxy();
    let dial = thread::spawn(move || socks.connect(&loopback(80).into(), &dial_ctx));
    greeted_rx.recv_timeout(DEADLINE).unwrap();
    token.cancel();
    let err = dial.join().unwrap().unwrap_err();
    proxy.finish();
    assert!(matches!(err, SocksError::Canceled), "{err:?}");
    assert_eq!(DialError::from(err), DialError::Canceled);
}

#[test]
fn canceled_context_never_connects() {
    let (listener, addr) = idle_listener();
    let token = CancelToken::new();
    token.cancel();
    let dial_ctx = DialContext::new(Instant::now() + DEADLINE, token);
    let err = Socks5Proxy::new(addr)
        .connect(&loopback(80).into(), &dial_ctx)
        .unwrap_err();
    assert!(matches!(err, SocksError::Canceled), "{err:?}");
    assert_never_connected(&listener);
}

#[test]
fn unreachable_proxy_is_reported_with_its_address() {
    // Bound but not listening: connects are refused.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&loopback(0).into()).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let err = Socks5Proxy::new(addr)
        .connect(&loopback(80).into(), &ctx())
        .unwrap_err();
    assert!(
        matches!(err, SocksError::ProxyUnreachable { proxy, .. } if proxy == addr),
        "{err:?}"
    );
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    // The proxy being down is not the peer refusing.
    assert!(matches!(DialError::from(err), DialError::Other(_)));
}

// ---------------------------------------------------------------------
// Host name limits
// ---------------------------------------------------------------------

#[test]
fn overlong_host_name_is_rejected_before_any_network_io() {
    let (listener, addr) = idle_listener();
    let host = "a".repeat(256);
    let target = SocksTarget::Domain {
        host: host.clone(),
        port: 80,
    };
    let err = Socks5Proxy::new(addr).connect(&target, &ctx()).unwrap_err();
    assert!(matches!(err, SocksError::HostNameTooLong(256)), "{err:?}");
    assert!(err.to_string().contains("at most 255"), "{err}");
    let err = tor_resolve(addr, &host, DEADLINE).unwrap_err();
    assert!(matches!(err, SocksError::HostNameTooLong(256)), "{err:?}");
    assert!(matches!(
        SocksTarget::domain(host, 80),
        Err(SocksError::HostNameTooLong(256))
    ));
    assert_never_connected(&listener);
}

#[test]
fn empty_host_name_is_rejected_before_any_network_io() {
    let (listener, addr) = idle_listener();
    let err = tor_resolve(addr, "", DEADLINE).unwrap_err();
    assert!(matches!(err, SocksError::EmptyHostName), "{err:?}");
    assert!(matches!(
        SocksTarget::domain("", 80),
        Err(SocksError::EmptyHostName)
    ));
    assert_never_connected(&listener);
}

// ---------------------------------------------------------------------
// Socks5Dialer routing
// ---------------------------------------------------------------------

fn onion() -> Addr {
    Addr::onion(ONION, 8333).unwrap()
}

#[test]
fn onion_without_proxy_fails_clearly() {
    let dialer = Socks5Dialer::without_proxy();
    let err = dialer.route(&onion()).unwrap_err();
    assert!(
        matches!(&err, SocksError::OnionWithoutProxy(h) if h == ONION),
        "{err:?}"
    );
    match dialer.dial(&onion(), &ctx()) {
        Err(DialError::Unsupported(msg)) => {
            assert!(msg.contains(ONION), "{msg}");
            assert!(msg.contains("proxy"), "{msg}");
            assert!(msg.contains("never looked up in DNS"), "{msg}");
        }
        Err(other) => panic!("expected Unsupported, got {other:?}"),
        Ok(_) => panic!("an onion address was dialed without a proxy"),
    }
}

#[test]
fn onion_through_the_proxy_is_sent_as_a_domain_target() {
    let proxy = scripted(|s| {
        no_auth(s);
        expect(s, &domain_request(1, ONION, 8333), "CONNECT request");
        send(s, &OK_V4);
    });
    let dialer = Socks5Dialer::new(proxy.proxy());
    dialer.dial(&onion(), &ctx()).unwrap();
    proxy.finish();
}

#[test]
fn onion_proxy_takes_onion_addresses_from_the_general_proxy() {
    let (general, general_addr) = idle_listener();
    let onion_proxy = scripted(|s| {
        no_auth(s);
        expect(s, &domain_request(1, ONION, 8333), "CONNECT request");
        send(s, &OK_V4);
    });
    let dialer = Socks5Dialer::new(Socks5Proxy::new(general_addr)).onion_proxy(onion_proxy.proxy());
    dialer.dial(&onion(), &ctx()).unwrap();
    onion_proxy.finish();
    assert_never_connected(&general);
}

#[test]
fn host_names_go_through_the_proxy_unresolved() {
    // ".invalid" never resolves, so only the proxy route can succeed.
    let proxy = scripted(|s| {
        no_auth(s);
        expect(
            s,
            &domain_request(1, "peer.invalid", 8333),
            "CONNECT request",
        );
        send(s, &OK_V4);
    });
    let dialer = Socks5Dialer::new(proxy.proxy());
    dialer
        .dial(&Addr::dns("peer.invalid", 8333).unwrap(), &ctx())
        .unwrap();
    proxy.finish();
}

#[test]
fn routes_follow_the_configured_rules() {
    let proxy = Socks5Proxy::new(loopback(9050));
    let onion_proxy = Socks5Proxy::new(loopback(9150));
    let ip = Addr::Ip(loopback(8333));
    let dns = Addr::dns("peer.example", 8333).unwrap();
    let custom = Addr::custom("i2p", "peer.i2p").unwrap();
    let via = |route: Result<Route<'_>, SocksError>| match route {
        Ok(Route::Direct) => "direct".to_string(),
        Ok(Route::Proxy(p)) => p.addr().port().to_string(),
        Err(SocksError::OnionWithoutProxy(_)) => "no onion proxy".to_string(),
        Err(SocksError::NoRoute(_)) => "no route".to_string(),
        Err(e) => panic!("unexpected routing error {e:?}"),
        Ok(other) => panic!("unexpected route {other:?}"),
    };

    let d = Socks5Dialer::without_proxy();
    assert_eq!(via(d.route(&ip)), "direct");
    assert_eq!(via(d.route(&dns)), "direct");
    assert_eq!(via(d.route(&onion())), "no onion proxy");
    assert_eq!(via(d.route(&custom)), "no route");

    let d = Socks5Dialer::new(proxy.clone());
    assert_eq!(via(d.route(&ip)), "direct");
    assert_eq!(via(d.route(&dns)), "9050");
    assert_eq!(via(d.route(&onion())), "9050");

    let d = Socks5Dialer::new(proxy)
        .onion_proxy(onion_proxy.clone())
        .proxy_all(true);
    assert_eq!(via(d.route(&ip)), "9050");
    assert_eq!(via(d.route(&dns)), "9050");
    assert_eq!(via(d.route(&onion())), "9150");

    // Only an onion proxy: other traffic goes direct...
    let d = Socks5Dialer::without_proxy().onion_proxy(onion_proxy.clone());
    assert_eq!(via(d.route(&ip)), "direct");
    assert_eq!(via(d.route(&dns)), "direct");
    assert_eq!(via(d.route(&onion())), "9150");

    // ...unless everything must be proxied: then it has no way out.
    let d = Socks5Dialer::without_proxy()
        .onion_proxy(onion_proxy)
        .proxy_all(true);
    assert_eq!(via(d.route(&ip)), "no route");
    assert_eq!(via(d.route(&dns)), "no route");
    assert_eq!(via(d.route(&onion())), "9150");
    match d.dial(&ip, &ctx()) {
        Err(DialError::Unsupported(msg)) => assert!(msg.contains("in the clear"), "{msg}"),
        Err(other) => panic!("expected Unsupported, got {other:?}"),
        Ok(_) => panic!("proxy-everything mode dialed in the clear"),
    }
}

#[test]
fn ip_addresses_dial_directly_when_not_proxying_everything() {
    let (proxy_listener, proxy_addr) = idle_listener();
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let dialer = Socks5Dialer::new(Socks5Proxy::new(proxy_addr));
    let _stream = dialer
        .dial(&Addr::Ip(peer.local_addr().unwrap()), &ctx())
        .unwrap();
    peer.set_nonblocking(true).unwrap();
    peer.accept()
        .expect("the peer should have been dialed directly");
    assert_never_connected(&proxy_listener);
}

#[test]
fn socks_errors_map_to_dial_errors() {
    assert_eq!(
        DialError::from(SocksError::ConnectionRefused),
        DialError::Refused
    );
    assert_eq!(DialError::from(SocksError::TimedOut), DialError::TimedOut);
    assert_eq!(DialError::from(SocksError::TtlExpired), DialError::TimedOut);
    assert_eq!(DialError::from(SocksError::Canceled), DialError::Canceled);
    assert!(matches!(
        DialError::from(SocksError::CommandNotSupported),
        DialError::Unsupported(m) if m.contains("status 7")
    ));
    assert!(matches!(
        DialError::from(SocksError::HostUnreachable),
        DialError::Other(m) if m.contains("status 4")
    ));
    let io = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
    assert!(matches!(
        DialError::from(SocksError::Io(io)),
        DialError::Io { kind: io::ErrorKind::ConnectionReset, message } if message.contains("SOCKS5")
    ));
}

// ---------------------------------------------------------------------
// The whole manager through the scripted proxy
// ---------------------------------------------------------------------

/// Echoes one connection until the client closes it.
fn echo_peer() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = thread::spawn(move || {
        let mut s = accept_within_deadline(&listener);
        let mut reader = s.try_clone().unwrap();
        let _ = io::copy(&mut reader, &mut s);
    });
    (addr, thread)
}

/// After a successful CONNECT, the scripted proxy connects to `peer` and
/// relays both ways until both sides are done.
fn relay(client: &mut TcpStream, peer: SocketAddr) {
    let upstream = TcpStream::connect_timeout(&peer, DEADLINE).unwrap();
    upstream.set_read_timeout(Some(DEADLINE)).unwrap();
    let (mut up_r, mut up_w) = (upstream.try_clone().unwrap(), upstream);
    let (mut c_r, mut c_w) = (client.try_clone().unwrap(), client.try_clone().unwrap());
    let forward = thread::spawn(move || {
        let _ = io::copy(&mut c_r, &mut up_w);
        let _ = up_w.shutdown(Shutdown::Write);
    });
    let _ = io::copy(&mut up_r, &mut c_w);
    let _ = c_w.shutdown(Shutdown::Write);
    forward.join().unwrap();
}

#[test]
fn manager_reaches_an_echo_peer_through_the_proxy() {
    let (peer, echo) = echo_peer();
    let proxy = scripted(move |s| {
        no_auth(s);
        let mut req = vec![5, 1, 0, 1, 127, 0, 0, 1];
        req.extend_from_slice(&peer.port().to_be_bytes());
        expect(s, &req, "CONNECT request");
        send(s, &OK_V4);
        relay(s, peer);
    });
    let (tx, rx) = unbounded();
    let config = Config::builder()
        .dialer(Socks5Dialer::new(proxy.proxy()).proxy_all(true))
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
    assert_eq!(conn.remote_addr(), &Addr::Ip(peer));
    conn.write_all(b"ping through socks").unwrap();
    let mut back = [0u8; 18];
    conn.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping through socks");
    conn.close();
    manager.stop();
    proxy.finish();
    echo.join().unwrap();
}
