//! A blocking SOCKS5 client: CONNECT (RFC 1928) to IP and domain-name
//! targets, username/password authentication (RFC 1929), and Tor's RESOLVE
//! (0xF0) and RESOLVE_PTR (0xF1) extensions.
//!
//! Every step is bounded: the connect to the proxy by the proxy's connect
//! timeout, and the whole handshake by its handshake timeout, both cut short
//! by the dial's deadline. A canceled [`DialContext`] shuts the socket down,
//! which wakes whatever step is blocked. Replies are read with `read_exact`
//! and every field is checked, so a broken or hostile proxy produces a
//! [`SocksError`] that says what was wrong instead of a confused stream.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use socket2::{Domain, Protocol, Socket, Type};

use crate::addr::Addr;
use crate::transport::dial::DialContext;
use crate::types::later;
use crate::types::DialError;

/// Protocol version byte of SOCKS5 messages.
const VERSION: u8 = 5;
/// Version byte of the RFC 1929 username/password sub-negotiation.
const AUTH_VERSION: u8 = 1;
/// Method: no authentication.
const METHOD_NONE: u8 = 0x00;
/// Method: username/password (RFC 1929).
const METHOD_USER_PASS: u8 = 0x02;
/// The proxy's answer when it accepts none of the offered methods.
const METHOD_NONE_ACCEPTABLE: u8 = 0xFF;
/// Command: open a TCP stream to the target.
pub(crate) const CMD_CONNECT: u8 = 0x01;
/// Tor extension: resolve a host name to an address.
pub(crate) const CMD_RESOLVE: u8 = 0xF0;
/// Tor extension: resolve an address to a host name.
pub(crate) const CMD_RESOLVE_PTR: u8 = 0xF1;
/// Address type: IPv4.
const ATYP_IPV4: u8 = 0x01;
/// Address type: domain name with a length byte.
const ATYP_DOMAIN: u8 = 0x03;
/// Address type: IPv6.
const ATYP_IPV6: u8 = 0x04;
/// Longest host name, username or password: each travels behind a length byte.
const MAX_FIELD: usize = 255;
/// Default bound on the TCP connect to the proxy.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on the SOCKS handshake after the connect. Tor may need
/// tens of seconds to build a circuit, but the dial deadline cuts it anyway.
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a SOCKS5 exchange failed.
///
/// Status codes 1–8 of a proxy's reply each have their own variant; see
/// [`status_code`](Self::status_code). The `Display` text says what went
/// wrong and what to check.
#[derive(Debug)]
#[non_exhaustive]
pub enum SocksError {
    /// Status 1: the proxy failed for a reason it did not give.
    GeneralFailure,
    /// Status 2: the proxy's rules forbid this connection.
    NotAllowed,
    /// Status 3: the proxy has no route to the target's network.
    NetworkUnreachable,
    /// Status 4: the proxy could not reach the target host.
    HostUnreachable,
    /// Status 5: the target refused the proxy's connection.
    ConnectionRefused,
    /// Status 6: the target did not answer in time (Tor uses this for
    /// stream timeouts).
    TtlExpired,
    /// Status 7: the proxy does not implement the command.
    CommandNotSupported,
    /// Status 8: the proxy does not accept this address type.
    AddressTypeNotSupported,
    /// A status code SOCKS5 does not define.
    UnknownStatus(u8),
    /// The proxy's reply broke the protocol; the text says how.
    Malformed(String),
    /// The proxy wants authentication, but no credentials were configured.
    AuthRequired,
    /// The proxy accepted none of the offered authentication methods.
    NoAcceptableMethod,
    /// The proxy rejected the username/password; the byte is its status.
    AuthFailed(u8),
    /// A username or password is empty or longer than 255 bytes.
    InvalidCredentials(String),
    /// A host name is longer than 255 bytes (the length it has).
    HostNameTooLong(usize),
    /// A host name is empty.
    EmptyHostName,
    /// The TCP connect to the proxy failed.
    ProxyUnreachable {
        /// The proxy's address.
        proxy: SocketAddr,
        /// What the connect failed with.
        error: io::Error,
    },
    /// Reading from or writing to the proxy failed mid-handshake.
    Io(io::Error),
    /// The connect or the handshake did not finish in time.
    TimedOut,
    /// The dial was canceled.
    Canceled,
    /// An onion address was to be dialed without a proxy; it is never
    /// looked up in DNS, so it cannot be reached at all.
    OnionWithoutProxy(String),
    /// The routing rules allow no way to reach this address; the text says
    /// why.
    NoRoute(String),
}

impl SocksError {
    /// The error for reply status `code` (1–8 have their own variants).
    pub fn from_status(code: u8) -> Self {
        match code {
            1 => SocksError::GeneralFailure,
            2 => SocksError::NotAllowed,
            3 => SocksError::NetworkUnreachable,
            4 => SocksError::HostUnreachable,
            5 => SocksError::ConnectionRefused,
            6 => SocksError::TtlExpired,
            7 => SocksError::CommandNotSupported,
            8 => SocksError::AddressTypeNotSupported,
            other => SocksError::UnknownStatus(other),
        }
    }

    /// The reply status code behind this error, if it came from one.
    pub fn status_code(&self) -> Option<u8> {
        Some(match self {
            SocksError::GeneralFailure => 1,
            SocksError::NotAllowed => 2,
            SocksError::NetworkUnreachable => 3,
            SocksError::HostUnreachable => 4,
            SocksError::ConnectionRefused => 5,
            SocksError::TtlExpired => 6,
            SocksError::CommandNotSupported => 7,
            SocksError::AddressTypeNotSupported => 8,
            SocksError::UnknownStatus(code) => *code,
            _ => return None,
        })
    }
}

impl fmt::Display for SocksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocksError::GeneralFailure => f.write_str(
                "the SOCKS5 proxy reported a general failure (status 1); check the proxy's log",
            ),
            SocksError::NotAllowed => f.write_str(
                "the SOCKS5 proxy's rules do not allow this connection (status 2); check the \
                 proxy's access rules (for Tor, the exit policies and SocksPolicy)",
            ),
            SocksError::NetworkUnreachable => f.write_str(
                "the SOCKS5 proxy cannot reach the target's network (status 3); the proxy may \
                 lack a route to it, for example no IPv6",
            ),
            SocksError::HostUnreachable => f.write_str(
                "the SOCKS5 proxy could not reach the target host (status 4); the host or onion \
                 service may be offline, so try again later",
            ),
            SocksError::ConnectionRefused => f.write_str(
                "the target refused the proxy's connection (status 5); check the target's port",
            ),
            SocksError::TtlExpired => f.write_str(
                "the target did not answer the proxy in time (status 6, TTL expired); try again \
                 later",
            ),
            SocksError::CommandNotSupported => f.write_str(
                "the SOCKS5 proxy does not support this command (status 7); RESOLVE and \
                 RESOLVE_PTR need Tor's SOCKS port",
            ),
            SocksError::AddressTypeNotSupported => f.write_str(
                "the SOCKS5 proxy does not support this address type (status 8); try an IPv4 \
                 address or a host name",
            ),
            other => other.fmt_other(f),
        }
    }
}

impl SocksError {
    /// Writes the variants that are not reply status codes 1-8.
    fn fmt_other(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocksError::UnknownStatus(code) => write!(
                f,
                "the SOCKS5 proxy failed with status {code}, which SOCKS5 does not define; \
                 check that the address really is a SOCKS5 proxy"
            ),
            SocksError::Malformed(what) => write!(
                f,
                "the SOCKS5 proxy sent a malformed reply: {what}; check that the address \
                 really is a SOCKS5 proxy"
            ),
            SocksError::AuthRequired => f.write_str(
                "the SOCKS5 proxy requires authentication; configure a username and password",
            ),
            SocksError::NoAcceptableMethod => f.write_str(
                "the SOCKS5 proxy accepted neither no authentication nor username/password; \
                 check the proxy's authentication settings",
            ),
            SocksError::AuthFailed(status) => write!(
                f,
                "the SOCKS5 proxy rejected the username/password (status {status}); check the \
                 credentials"
            ),
            SocksError::InvalidCredentials(why) => write!(f, "invalid SOCKS5 credentials: {why}"),
            SocksError::HostNameTooLong(len) => write!(
                f,
                "the host name is {len} bytes long, but SOCKS5 carries at most {MAX_FIELD}; use \
                 a shorter name or an IP address"
            ),
            SocksError::EmptyHostName => {
                f.write_str("the host name is empty; give a host name or an IP address")
            }
            SocksError::ProxyUnreachable { proxy, error } => write!(
                f,
                "cannot connect to the SOCKS5 proxy at {proxy}: {error}; check that the proxy \
                 (for example Tor) is running and listening there"
            ),
            SocksError::Io(error) => write!(
                f,
                "the connection to the SOCKS5 proxy failed during the handshake: {error}"
            ),
            SocksError::TimedOut => f.write_str(
                "the SOCKS5 proxy did not complete the connection in time; check that it is \
                 running and responsive, or allow a longer timeout",
            ),
            SocksError::Canceled => f.write_str("the SOCKS5 dial was canceled"),
            SocksError::OnionWithoutProxy(host) => write!(
                f,
                "{host} is an onion address, reachable only through a SOCKS5 proxy such as \
                 Tor, and never looked up in DNS; configure a proxy or an onion proxy"
            ),
            SocksError::NoRoute(why) => f.write_str(why),
            status => write!(
                f,
                "the SOCKS5 proxy failed with status {:?}",
                status.status_code()
            ),
        }
    }
}

impl std::error::Error for SocksError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SocksError::ProxyUnreachable { error, .. } | SocksError::Io(error) => Some(error),
            _ => None,
        }
    }
}

impl From<SocksError> for DialError {
    fn from(err: SocksError) -> Self {
        match err {
            SocksError::ConnectionRefused => DialError::Refused,
            SocksError::TimedOut | SocksError::TtlExpired => DialError::TimedOut,
            SocksError::Canceled => DialError::Canceled,
            SocksError::CommandNotSupported
            | SocksError::AddressTypeNotSupported
            | SocksError::OnionWithoutProxy(_)
            | SocksError::NoRoute(_) => DialError::Unsupported(err.to_string()),
            SocksError::Io(ref error) => DialError::Io {
                kind: error.kind(),
                message: err.to_string(),
            },
            other => DialError::Other(other.to_string()),
        }
    }
}

/// Where the proxy should connect: an IP socket address, or a host name
/// that the proxy resolves itself (so the name never reaches local DNS).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SocksTarget {
    /// An IPv4 or IPv6 socket address.
    Ip(SocketAddr),
    /// A host name (1–255 bytes) and port.
    Domain {
        /// The host name, sent as is.
        host: String,
        /// The port.
        port: u16,
    },
}

impl SocksTarget {
    /// A host-name target; fails if `host` is empty or over 255 bytes.
    pub fn domain(host: impl Into<String>, port: u16) -> Result<Self, SocksError> {
        let target = SocksTarget::Domain {
            host: host.into(),
            port,
        };
        target.validate()?;
        Ok(target)
    }

    /// The target for a peer address: IPs as IPs, DNS and onion names as
    /// host names for the proxy to resolve. Custom addresses have none.
    pub fn from_addr(addr: &Addr) -> Result<Self, SocksError> {
        match addr {
            Addr::Ip(sa) => Ok(SocksTarget::Ip(*sa)),
            Addr::Cjdns { ip, port } => Ok(SocksTarget::Ip(SocketAddr::new((*ip).into(), *port))),
            Addr::Dns { host, port } | Addr::Onion { host, port } | Addr::I2p { host, port } => {
                SocksTarget::domain(host.as_ref(), *port)
            }
            Addr::Custom(c) => Err(custom_unsupported(c.network())),
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            SocksTarget::Ip(sa) => sa.port(),
            SocksTarget::Domain { port, .. } => *port,
        }
    }

    /// Checks what the wire format can carry. The variant is public, so
    /// this runs again before every request, not only in [`domain`](Self::domain).
    fn validate(&self) -> Result<(), SocksError> {
        match self {
            SocksTarget::Domain { host, .. } if host.is_empty() => Err(SocksError::EmptyHostName),
            SocksTarget::Domain { host, .. } if host.len() > MAX_FIELD => {
                Err(SocksError::HostNameTooLong(host.len()))
            }
            _ => Ok(()),
        }
    }

    /// Appends address type, address and port, as in requests and replies.
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            SocksTarget::Ip(SocketAddr::V4(sa)) => {
                out.push(ATYP_IPV4);
                out.extend_from_slice(&sa.ip().octets());
            }
            SocksTarget::Ip(SocketAddr::V6(sa)) => {
                out.push(ATYP_IPV6);
                out.extend_from_slice(&sa.ip().octets());
            }
            SocksTarget::Domain { host, .. } => {
                out.push(ATYP_DOMAIN);
                // validate() has run: the length fits in a byte.
                out.push(host.len() as u8);
                out.extend_from_slice(host.as_bytes());
            }
        }
        out.extend_from_slice(&self.port().to_be_bytes());
    }
}

/// The error for a custom address, which no SOCKS5 proxy can reach.
pub(crate) fn custom_unsupported(network: &str) -> SocksError {
    SocksError::NoRoute(format!(
        "a SOCKS5 proxy cannot reach {network} addresses; give the manager a dialer for that \
         network"
    ))
}

impl From<SocketAddr> for SocksTarget {
    fn from(sa: SocketAddr) -> Self {
        SocksTarget::Ip(sa)
    }
}

impl fmt::Display for SocksTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocksTarget::Ip(sa) => write!(f, "{sa}"),
            SocksTarget::Domain { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// A SOCKS5 proxy: its address, optional credentials, whether to isolate
/// streams, and the timeouts of each connection through it.
///
/// With `isolate` on, every connection authenticates with a fresh random
/// username and password. Tor puts streams with different credentials on
/// different circuits (its `IsolateSOCKSAuth` default), so no two peers
/// share an exit or a path. The random credentials replace configured
/// ones.
#[derive(Clone)]
pub struct Socks5Proxy {
    addr: SocketAddr,
    auth: Option<(String, String)>,
    isolate: bool,
    connect_timeout: Duration,
    handshake_timeout: Duration,
}

impl fmt::Debug for Socks5Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password stays out of logs.
        f.debug_struct("Socks5Proxy")
            .field("addr", &self.addr)
            .field("username", &self.auth.as_ref().map(|(user, _)| user))
            .field("isolate", &self.isolate)
            .field("connect_timeout", &self.connect_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

impl Socks5Proxy {
    /// A proxy without authentication or isolation, with a 10 s connect
    /// timeout and a 30 s handshake timeout.
    pub fn new(addr: SocketAddr) -> Self {
        Socks5Proxy {
            addr,
            auth: None,
            isolate: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// A builder starting from [`new`](Self::new)'s settings.
    pub fn builder(addr: SocketAddr) -> Socks5ProxyBuilder {
        Socks5ProxyBuilder {
            proxy: Socks5Proxy::new(addr),
        }
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configured username and password, if any.
    pub fn auth(&self) -> Option<(&str, &str)> {
        self.auth.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// Whether each connection gets fresh random credentials.
    pub fn isolate(&self) -> bool {
        self.isolate
    }

    /// The bound on the TCP connect to the proxy.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The bound on the SOCKS handshake after the connect.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Opens a TCP stream to `target` through the proxy.
    ///
    /// Gives up at the earlier of the proxy's timeouts and `ctx`'s
    /// deadline, and with [`SocksError::Canceled`] when `ctx` is canceled.
    /// The stream comes back in blocking mode with no timeouts set.
    pub fn connect(
        &self,
        target: &SocksTarget,
        ctx: &DialContext,
    ) -> Result<TcpStream, SocksError> {
        self.exchange(CMD_CONNECT, target, ctx)
            .map(|(stream, _bound)| stream)
    }

    /// Runs one request: validates it, connects, negotiates, sends it and
    /// reads the reply. Returns the stream and the reply's address.
    fn exchange(
        &self,
        cmd: u8,
        target: &SocksTarget,
        ctx: &DialContext,
    ) -> Result<(TcpStream, SocksTarget), SocksError> {
        // Before any I/O: a bad target must not even reach the proxy.
        target.validate()?;
        let creds = self.credentials();
        let (stream, abort) = self.open(ctx)?;
        let deadline = later(Instant::now(), self.handshake_timeout).min(ctx.deadline());
        let mut io = Bounded {
            stream: &stream,
            deadline,
        };
        let result = client_exchange(&mut io, creds.as_ref(), cmd, target);
        // A cancel shuts the socket down, which surfaces as a read error.
        let bound = result.map_err(|e| {
            if ctx.is_canceled() {
                SocksError::Canceled
            } else {
                e
            }
        })?;
        drop(abort);
        stream.set_read_timeout(None).map_err(SocksError::Io)?;
        stream.set_write_timeout(None).map_err(SocksError::Io)?;
        Ok((stream, bound))
    }

    /// The credentials for one connection: fresh random ones when
    /// isolating, else the configured ones.
    fn credentials(&self) -> Option<(String, String)> {
        if self.isolate {
            let random = || format!("{:032x}", rand::random::<u128>());
            Some((random(), random()))
        } else {
            self.auth.clone()
        }
    }

    /// Connects to the proxy, bounded by the connect timeout and the
    /// deadline, and arms the cancel hook for the whole exchange.
    fn open(&self, ctx: &DialContext) -> Result<(TcpStream, AbortOnCancel), SocksError> {
        let timeout = self.connect_timeout.min(ctx.remaining());
        if ctx.is_canceled() {
            return Err(SocksError::Canceled);
        }
        if timeout.is_zero() {
            return Err(SocksError::TimedOut);
        }
        let unreachable = |error| SocksError::ProxyUnreachable {
            proxy: self.addr,
            error,
        };
        let socket = Socket::new(
            Domain::for_address(self.addr),
            Type::STREAM,
            Some(Protocol::TCP),
        )
        .map_err(unreachable)?;
        let abort = AbortOnCancel::arm(ctx, socket.try_clone().map_err(SocksError::Io)?);
        let connected = socket
            .connect_timeout(&self.addr.into(), timeout)
            // A connect woken by shutdown can report success without a peer.
            .and_then(|()| socket.peer_addr().map(drop));
        match connected {
            _ if ctx.is_canceled() => return Err(SocksError::Canceled),
            Err(e) if is_timeout(&e) => return Err(SocksError::TimedOut),
            Err(e) => return Err(unreachable(e)),
            Ok(()) => {}
        }
        // Handshake messages are tiny; don't let Nagle hold them back.
        socket.set_tcp_nodelay(true).map_err(SocksError::Io)?;
        Ok((socket.into(), abort))
    }
}

/// Builds a [`Socks5Proxy`], checking credential lengths.
#[derive(Debug, Clone)]
pub struct Socks5ProxyBuilder {
    proxy: Socks5Proxy,
}

impl Socks5ProxyBuilder {
    /// Authenticates with `username` and `password` (RFC 1929; each 1–255
    /// bytes, checked by [`build`](Self::build)).
    pub fn auth(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.proxy.auth = Some((username.into(), password.into()));
        self
    }

    /// Sends fresh random credentials on every connection (Tor stream
    /// isolation); they replace any set with [`auth`](Self::auth).
    pub fn isolate(mut self, isolate: bool) -> Self {
        self.proxy.isolate = isolate;
        self
    }

    /// Bounds the TCP connect to the proxy (a zero timeout is raised to 1 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.proxy.connect_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Bounds the SOCKS handshake (a zero timeout is raised to 1 ms).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.proxy.handshake_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The proxy, or [`SocksError::InvalidCredentials`] if the username or
    /// password is empty or longer than 255 bytes.
    pub fn build(self) -> Result<Socks5Proxy, SocksError> {
        if let Some((user, pass)) = &self.proxy.auth {
            check_credential("username", user)?;
            check_credential("password", pass)?;
        }
        Ok(self.proxy)
    }
}

/// RFC 1929 sends each credential behind a length byte, and a zero length
/// is not allowed.
fn check_credential(what: &str, value: &str) -> Result<(), SocksError> {
    match value.len() {
        0 => Err(SocksError::InvalidCredentials(format!(
            "the {what} is empty; SOCKS5 needs 1 to {MAX_FIELD} bytes"
        ))),
        n if n > MAX_FIELD => Err(SocksError::InvalidCredentials(format!(
            "the {what} is {n} bytes long; SOCKS5 allows at most {MAX_FIELD}"
        ))),
        _ => Ok(()),
    }
}

/// Asks the Tor proxy at `proxy` for an address of `host` (Tor's RESOLVE
/// command), within `timeout` overall.
///
/// Tor answers with one IPv4 or IPv6 address; it comes back as a
/// one-element vector. The name is resolved by the Tor network, never by
/// local DNS.
pub fn tor_resolve(
    proxy: SocketAddr,
    host: &str,
    timeout: Duration,
) -> Result<Vec<IpAddr>, SocksError> {
    tor_resolve_with(&plain_proxy(proxy, timeout), host, timeout)
}

/// [`tor_resolve`] through a configured proxy (credentials, isolation,
/// timeouts); `timeout` bounds the whole exchange on top of the proxy's
/// own timeouts.
pub fn tor_resolve_with(
    proxy: &Socks5Proxy,
    host: &str,
    timeout: Duration,
) -> Result<Vec<IpAddr>, SocksError> {
    let target = SocksTarget::domain(host, 0)?;
    let ctx = DialContext::with_timeout(timeout);
    match proxy.exchange(CMD_RESOLVE, &target, &ctx)? {
        (_, SocksTarget::Ip(sa)) => Ok(vec![sa.ip()]),
        (_, SocksTarget::Domain { .. }) => Err(SocksError::Malformed(
            "the answer to RESOLVE is a host name instead of an IP address".into(),
        )),
    }
}

/// Asks the Tor proxy at `proxy` for the host name of `ip` (Tor's
/// RESOLVE_PTR command), within `timeout` overall.
pub fn tor_resolve_ptr(
    proxy: SocketAddr,
    ip: IpAddr,
    timeout: Duration,
) -> Result<String, SocksError> {
    tor_resolve_ptr_with(&plain_proxy(proxy, timeout), ip, timeout)
}

/// [`tor_resolve_ptr`] through a configured proxy (credentials, isolation,
/// timeouts); `timeout` bounds the whole exchange on top of them.
pub fn tor_resolve_ptr_with(
    proxy: &Socks5Proxy,
    ip: IpAddr,
    timeout: Duration,
) -> Result<String, SocksError> {
    let target = SocksTarget::Ip(SocketAddr::new(ip, 0));
    let ctx = DialContext::with_timeout(timeout);
    match proxy.exchange(CMD_RESOLVE_PTR, &target, &ctx)? {
        (_, SocksTarget::Domain { host, .. }) => Ok(host),
        (_, SocksTarget::Ip(_)) => Err(SocksError::Malformed(
            "the answer to RESOLVE_PTR is an IP address instead of a host name".into(),
        )),
    }
}

/// A proxy whose own timeouts equal `timeout`, so only the caller's
/// timeout applies.
fn plain_proxy(addr: SocketAddr, timeout: Duration) -> Socks5Proxy {
    Socks5Proxy::builder(addr)
        .connect_timeout(timeout)
        .handshake_timeout(timeout)
        .proxy
}

/// Shuts the proxy socket down when the dial is canceled, until dropped.
/// Dropping it releases the socket handle, so a cancel after the dial has
/// returned cannot touch the stream it handed over.
struct AbortOnCancel(Arc<Mutex<Option<Socket>>>);

impl AbortOnCancel {
    fn arm(ctx: &DialContext, socket: Socket) -> Self {
        let slot = Arc::new(Mutex::new(Some(socket)));
        let hook_slot = Arc::clone(&slot);
        ctx.on_cancel(move || {
            if let Some(socket) = hook_slot.lock().take() {
                // Wakes a blocked connect, read or write at once.
                let _ = socket.shutdown(Shutdown::Both);
            }
        });
        AbortOnCancel(slot)
    }
}

impl Drop for AbortOnCancel {
    fn drop(&mut self) {
        self.0.lock().take();
    }
}

/// The proxy stream with every read and write bounded by what is left
/// until `deadline`, so `read_exact` over it is bounded as a whole even if
/// the proxy dribbles one byte at a time.
struct Bounded<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl Bounded<'_> {
    fn left(&self) -> io::Result<Duration> {
        match self.deadline.saturating_duration_since(Instant::now()) {
            left if left.is_zero() => Err(io::ErrorKind::TimedOut.into()),
            left => Ok(left),
        }
    }
}

impl Read for Bounded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        self.stream.read(buf)
    }
}

impl Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// Whether an I/O error means a timeout expired (sockets report
/// `WouldBlock` for an expired read timeout on Unix).
fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Turns an I/O error while handling `what` into a SOCKS error.
fn io_error(err: io::Error, what: &str) -> SocksError {
    match err.kind() {
        _ if is_timeout(&err) => SocksError::TimedOut,
        io::ErrorKind::UnexpectedEof => SocksError::Malformed(format!(
            "the proxy closed the connection before sending the whole {what}"
        )),
        _ => SocksError::Io(err),
    }
}

fn send(io: &mut impl Write, msg: &[u8], what: &str) -> Result<(), SocksError> {
    io.write_all(msg).map_err(|e| io_error(e, what))
}

fn recv(io: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), SocksError> {
    io.read_exact(buf).map_err(|e| io_error(e, what))
}

fn check_version(got: u8, want: u8, what: &str) -> Result<(), SocksError> {
    if got == want {
        Ok(())
    } else {
        Err(SocksError::Malformed(format!(
            "the {what} has version {got}, expected {want}"
        )))
    }
}

/// Method selection, then the username/password sub-negotiation if the
/// proxy chose it.
///
/// With credentials both methods are offered: Tor picks username/password
/// when offered (so isolation works), and a proxy without authentication
/// still works.
fn negotiate<S: Read + Write>(
    io: &mut S,
    creds: Option<&(String, String)>,
) -> Result<(), SocksError> {
    let offered: &[u8] = match creds {
        Some(_) => &[METHOD_NONE, METHOD_USER_PASS],
        None => &[METHOD_NONE],
    };
    let mut greeting = vec![VERSION, offered.len() as u8];
    greeting.extend_from_slice(offered);
    send(io, &greeting, "method selection")?;
    let mut reply = [0u8; 2];
    recv(io, &mut reply, "method selection reply")?;
    check_version(reply[0], VERSION, "method selection reply")?;
    match (reply[1], creds) {
        (METHOD_NONE, _) => Ok(()),
        (METHOD_USER_PASS, Some(creds)) => authenticate(io, creds),
        (METHOD_NONE_ACCEPTABLE, None) => Err(SocksError::AuthRequired),
        (METHOD_NONE_ACCEPTABLE, Some(_)) => Err(SocksError::NoAcceptableMethod),
        (method, _) => Err(SocksError::Malformed(format!(
            "the proxy chose authentication method 0x{method:02x}, which was not offered \
             (offered {offered:02x?})"
        ))),
    }
}

/// RFC 1929: version 1, then each credential behind its length.
fn authenticate<S: Read + Write>(
    io: &mut S,
    (user, pass): &(String, String),
) -> Result<(), SocksError> {
    check_credential("username", user)?;
    check_credential("password", pass)?;
    let mut msg = vec![AUTH_VERSION, user.len() as u8];
    msg.extend_from_slice(user.as_bytes());
    msg.push(pass.len() as u8);
    msg.extend_from_slice(pass.as_bytes());
    send(io, &msg, "username/password request")?;
    let mut reply = [0u8; 2];
    recv(io, &mut reply, "username/password reply")?;
    check_version(reply[0], AUTH_VERSION, "username/password reply")?;
    match reply[1] {
        0 => Ok(()),
        status => Err(SocksError::AuthFailed(status)),
    }
}

/// The client's side of one exchange over `io`: method negotiation (with
/// `creds` if given), then request `cmd` for `target`; the reply's
/// address.
pub(crate) fn client_exchange<S: Read + Write>(
    io: &mut S,
    creds: Option<&(String, String)>,
    cmd: u8,
    target: &SocksTarget,
) -> Result<SocksTarget, SocksError> {
    negotiate(io, creds).and_then(|()| request(io, cmd, target))
}

/// Sends a request and reads its reply, returning the reply's address.
fn request<S: Read + Write>(
    io: &mut S,
    cmd: u8,
    target: &SocksTarget,
) -> Result<SocksTarget, SocksError> {
    let mut msg = vec![VERSION, cmd, 0];
    target.encode(&mut msg);
    send(io, &msg, "request")?;
    let mut head = [0u8; 4];
    recv(io, &mut head, "reply")?;
    check_version(head[0], VERSION, "reply")?;
    if head[1] != 0 {
        return Err(SocksError::from_status(head[1]));
    }
    if head[2] != 0 {
        return Err(SocksError::Malformed(format!(
            "the reply's reserved byte is 0x{:02x}, expected 0",
            head[2]
        )));
    }
    read_address(io, head[3])
}

/// Reads the address and port that follow address type `atyp` in a reply.
fn read_address(io: &mut impl Read, atyp: u8) -> Result<SocksTarget, SocksError> {
    let what = "reply address";
    match atyp {
        ATYP_IPV4 => {
            let mut b = [0u8; 4 + 2];
            recv(io, &mut b, what)?;
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Ok(SocksTarget::Ip(SocketAddr::new(
                ip.into(),
                port_of(&b[4..]),
            )))
        }
        ATYP_IPV6 => {
            let (mut octets, mut port) = ([0u8; 16], [0u8; 2]);
            recv(io, &mut octets, what)?;
            recv(io, &mut port, what)?;
            let ip = Ipv6Addr::from(octets);
            Ok(SocksTarget::Ip(SocketAddr::new(ip.into(), port_of(&port))))
        }
        ATYP_DOMAIN => read_domain(io),
        other => Err(SocksError::Malformed(format!(
            "the reply has address type 0x{other:02x}, which is none of IPv4 (1), domain (3) \
             or IPv6 (4)"
        ))),
    }
}

/// Reads a length-prefixed host name and a port.
fn read_domain(io: &mut impl Read) -> Result<SocksTarget, SocksError> {
    let what = "reply address";
    let mut len = [0u8; 1];
    recv(io, &mut len, what)?;
    if len[0] == 0 {
        return Err(SocksError::Malformed(
            "the reply's host name is empty".into(),
        ));
    }
    let mut b = vec![0u8; usize::from(len[0]) + 2];
    recv(io, &mut b, what)?;
    let port = port_of(&b[b.len() - 2..]);
    b.truncate(b.len() - 2);
    check_reply_host(&b)?;
    // Checked above: ASCII only.
    let host = String::from_utf8_lossy(&b).into_owned();
    Ok(SocksTarget::Domain { host, port })
}

/// A host name from a proxy reaches logs and callers: it must look like
/// one (letters, digits, `-`, `_` and dots; labels of 1 to 63 bytes, an
/// optional final dot), so no control character or stray byte gets
/// through.
fn check_reply_host(b: &[u8]) -> Result<(), SocksError> {
    if let Some(bad) = b
        .iter()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')))
    {
        return Err(SocksError::Malformed(format!(
            "the reply's host name holds byte 0x{bad:02x}, which no host name has"
        )));
    }
    let name = b.strip_suffix(b".").unwrap_or(b);
    if name
        .split(|c| *c == b'.')
        .any(|l| l.is_empty() || l.len() > 63)
    {
        return Err(SocksError::Malformed(
            "the reply's host name has an empty label or one over 63 bytes".into(),
        ));
    }
    Ok(())
}

fn port_of(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
