//! Pluggable host-name lookups for seeding: the system resolver, a
//! pure-Rust resolver aimed at a chosen name server (feature `hickory`),
//! and Tor's RESOLVE through a SOCKS proxy.

use std::error::Error;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;

use crate::transport::socks::SocksError;

/// Turns a host name into IP addresses within a time limit.
///
/// Implementations are called from several threads at once (one per
/// seed) and should return by `timeout`; seeding reports a lookup that
/// does not as timed out anyway, but waits for it before returning.
///
/// Closures `Fn(&str, Duration) -> Result<Vec<IpAddr>, LookupError>`
/// implement it, which suits tests and in-process name tables.
pub trait Lookup: Send + Sync {
    /// The addresses of `host` (IPv4 and IPv6), in any order.
    fn lookup(&self, host: &str, timeout: Duration) -> Result<Vec<IpAddr>, LookupError>;
}

impl<F> Lookup for F
where
    F: Fn(&str, Duration) -> Result<Vec<IpAddr>, LookupError> + Send + Sync,
{
    fn lookup(&self, host: &str, timeout: Duration) -> Result<Vec<IpAddr>, LookupError> {
        self(host, timeout)
    }
}

/// Why a lookup failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LookupErrorKind {
    /// No answer within the timeout.
    TimedOut,
    /// The name does not exist or has no A/AAAA records (or only
    /// addresses that cannot be dialed).
    NotFound,
    /// The host is not a valid DNS name.
    InvalidName,
    /// The resolver or name server failed: I/O error, refused or failed
    /// query, malformed answer, resolver could not be set up.
    Resolver,
    /// The SOCKS proxy (Tor) could not be reached or refused the request.
    Proxy,
    /// The lookup implementation panicked.
    Panicked,
}

impl fmt::Display for LookupErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LookupErrorKind::TimedOut => "timed out",
            LookupErrorKind::NotFound => "no addresses found",
            LookupErrorKind::InvalidName => "invalid host name",
            LookupErrorKind::Resolver => "resolver failure",
            LookupErrorKind::Proxy => "proxy failure",
            LookupErrorKind::Panicked => "lookup panicked",
        })
    }
}

/// A failed lookup: what went wrong, for which name, and the details.
#[derive(Clone, Debug)]
pub struct LookupError {
    kind: LookupErrorKind,
    host: String,
    message: String,
    source: Option<Arc<dyn Error + Send + Sync>>,
}

impl LookupError {
    /// An error of `kind` for `host`, with a human-readable `message`
    /// (may be empty).
    pub fn new(kind: LookupErrorKind, host: impl Into<String>, message: impl Into<String>) -> Self {
        LookupError {
            kind,
            host: host.into(),
            message: message.into(),
            source: None,
        }
    }

    /// The same error, remembering the underlying error as its source.
    pub fn with_source(mut self, source: impl Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// A timeout for `host` after `timeout`.
    pub fn timed_out(host: impl Into<String>, timeout: Duration) -> Self {
        LookupError::new(
            LookupErrorKind::TimedOut,
            host,
            format!("no answer within {timeout:?}"),
        )
    }

    /// What went wrong.
    pub fn kind(&self) -> LookupErrorKind {
        self.kind
    }

    /// The name that was looked up.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The details, without the kind and host.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lookup of {:?}: {}", self.host, self.kind)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl Error for LookupError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn Error + 'static))
    }
}

/// The operating system's resolver (`getaddrinfo` through
/// [`std::net::ToSocketAddrs`]), which honours `/etc/hosts`,
/// `/etc/resolv.conf` and the like. The default choice; no extra
/// dependency.
///
/// The system call cannot be cancelled, so it runs on a helper thread and
/// the lookup gives up on it at the timeout; the helper then finishes in
/// the background, bounded by the system resolver's own time limits.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemLookup;

impl SystemLookup {
    /// The system resolver.
    pub fn new() -> Self {
        SystemLookup
    }
}

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str, timeout: Duration) -> Result<Vec<IpAddr>, LookupError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let name = host.to_owned();
        thread::Builder::new()
            .name("connmgr-getaddrinfo".into())
            .spawn(move || {
                // The receiver may have given up by now; nothing to do then.
                let _ = tx.send(resolve_with_system(&name));
            })
            .map_err(|err| {
                LookupError::new(LookupErrorKind::Resolver, host, "cannot start thread")
                    .with_source(err)
            })?;
        match rx.recv_timeout(timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(LookupError::timed_out(host, timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(LookupError::new(
                LookupErrorKind::Panicked,
                host,
                "system resolver thread ended without an answer",
            )),
        }
    }
}

/// One blocking `getaddrinfo` call; the port is a placeholder.
fn resolve_with_system(host: &str) -> Result<Vec<IpAddr>, LookupError> {
    match (host, 0u16).to_socket_addrs() {
        Ok(addrs) => Ok(addrs.map(|addr| addr.ip()).collect()),
        Err(err) => {
            Err(LookupError::new(LookupErrorKind::Resolver, host, err.to_string()).with_source(err))
        }
    }
}

/// Tor's RESOLVE extension through a SOCKS5 proxy (Tor's `SocksPort`):
/// Tor resolves the name at an exit relay, so no DNS query leaves this
/// machine and the local network sees only the connection to Tor.
///
/// Tor answers with a single address per name, so expect fewer addresses
/// per seed than from a resolver, and no service-bit filtering beyond what
/// the queried name selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TorLookup {
    proxy: SocketAddr,
}

impl TorLookup {
    /// Resolves through the Tor SOCKS proxy at `proxy` (usually
    /// 127.0.0.1:9050).
    pub fn new(proxy: SocketAddr) -> Self {
        TorLookup { proxy }
    }

    /// The proxy's address.
    pub fn proxy(&self) -> SocketAddr {
        self.proxy
    }
}

impl Lookup for TorLookup {
    fn lookup(&self, host: &str, timeout: Duration) -> Result<Vec<IpAddr>, LookupError> {
        crate::transport::socks::tor_resolve(self.proxy, host, timeout).map_err(|err| {
            LookupError::new(socks_error_kind(&err), host, err.to_string()).with_source(err)
        })
    }
}

/// Sorts proxy errors into lookup kinds: the ones about time and the name
/// itself have their own kinds, the rest are the proxy's.
fn socks_error_kind(err: &SocksError) -> LookupErrorKind {
    match err {
        SocksError::TimedOut | SocksError::TtlExpired => LookupErrorKind::TimedOut,
        SocksError::HostUnreachable => LookupErrorKind::NotFound,
        SocksError::EmptyHostName | SocksError::HostNameTooLong(_) => LookupErrorKind::InvalidName,
        _ => LookupErrorKind::Proxy,
    }
}

#[cfg(feature = "hickory")]
pub use self::hickory::{DnsTransport, HickoryLookup};

#[cfg(feature = "hickory")]
mod hickory {
    use std::fmt;
    use std::net::{IpAddr, SocketAddr};
    use std::time::Duration;

    use hickory_resolver::config::{
        ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
        ResolverOpts,
    };
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    use hickory_resolver::net::NetError;
    use hickory_resolver::proto::rr::Name;
    use hickory_resolver::TokioResolver;
    use tokio::runtime::{Builder, Handle, Runtime};

    use super::{Lookup, LookupError, LookupErrorKind};

    /// Which transports [`HickoryLookup`] uses to reach its name server.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum DnsTransport {
        /// UDP only; truncated answers stay truncated.
        Udp,
        /// TCP only.
        Tcp,
        /// UDP first, TCP when an answer is truncated (the usual setup).
        UdpAndTcp,
    }

    /// A pure-Rust DNS resolver (hickory-resolver) that asks one given
    /// name server, over UDP and/or TCP, for both A and AAAA records.
    ///
    /// It ignores the system's resolver configuration and hosts file, so
    /// it suits a dedicated or trusted resolver, a local test server, or
    /// systems without a usable `getaddrinfo`. Its async runtime is a
    /// private single-threaded tokio runtime, created once with the
    /// object; every [`Lookup::lookup`] call blocks on it. Calling it from
    /// inside an async runtime returns an error instead of blocking.
    pub struct HickoryLookup {
        resolver: TokioResolver,
        // Declared after the resolver so the resolver (and its tasks) is
        // dropped while the runtime still exists.
        runtime: Runtime,
        server: SocketAddr,
        transport: DnsTransport,
    }

    impl fmt::Debug for HickoryLookup {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("HickoryLookup")
                .field("server", &self.server)
                .field("transport", &self.transport)
                .finish()
        }
    }

    impl HickoryLookup {
        /// A resolver asking the name server at `server` over UDP, falling
        /// back to TCP for truncated answers.
        pub fn new(server: SocketAddr) -> Result<Self, LookupError> {
            Self::with_transport(server, DnsTransport::UdpAndTcp)
        }

        /// A resolver asking the name server at `server` over `transport`.
        pub fn with_transport(
            server: SocketAddr,
            transport: DnsTransport,
        ) -> Result<Self, LookupError> {
            let setup_error = |message: String| {
                LookupError::new(LookupErrorKind::Resolver, server.to_string(), message)
            };
            let runtime = Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| setup_error(format!("cannot start runtime: {err}")))?;
            // The connection provider looks for the runtime it runs on.
            let resolver = {
                let _context = runtime.enter();
                TokioResolver::builder_with_config(
                    resolver_config(server, transport),
                    TokioRuntimeProvider::default(),
                )
                .with_options(resolver_options())
                .build()
                .map_err(|err| setup_error(format!("cannot build resolver: {err}")))?
            };
            Ok(HickoryLookup {
                resolver,
                runtime,
                server,
                transport,
            })
        }

        /// The name server asked.
        pub fn server(&self) -> SocketAddr {
            self.server
        }

        /// The transports used.
        pub fn transport(&self) -> DnsTransport {
            self.transport
        }
    }

    impl Lookup for HickoryLookup {
        fn lookup(&self, host: &str, timeout: Duration) -> Result<Vec<IpAddr>, LookupError> {
            if Handle::try_current().is_ok() {
                return Err(LookupError::new(
                    LookupErrorKind::Resolver,
                    host,
                    "blocking lookup called inside an async runtime",
                ));
            }
            let name = absolute_name(host)?;
            // Built inside the runtime: the timer needs its context.
            let query =
                async { tokio::time::timeout(timeout, self.resolver.lookup_ip(name)).await };
            match self.runtime.block_on(query) {
                Ok(Ok(answer)) => Ok(answer.iter().collect()),
                Ok(Err(err)) => Err(map_error(host, err)),
                Err(_elapsed) => Err(LookupError::timed_out(host, timeout)),
            }
        }
    }

    /// One name server at `server`, reached over `transport`.
    fn resolver_config(server: SocketAddr, transport: DnsTransport) -> ResolverConfig {
        let mut connections = match transport {
            DnsTransport::Udp => vec![ConnectionConfig::udp()],
            DnsTransport::Tcp => vec![ConnectionConfig::tcp()],
            DnsTransport::UdpAndTcp => vec![ConnectionConfig::udp(), ConnectionConfig::tcp()],
        };
        for connection in &mut connections {
            connection.port = server.port();
        }
        let name_server = NameServerConfig::new(server.ip(), true, connections);
        ResolverConfig::from_parts(None, Vec::new(), vec![name_server])
    }

    /// Both address families, answers from DNS only.
    fn resolver_options() -> ResolverOpts {
        let mut options = ResolverOpts::default();
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.use_hosts_file = ResolveHosts::Never;
        options
    }

    /// Seeds are absolute names: a trailing dot stops search-list guesses.
    fn absolute_name(host: &str) -> Result<Name, LookupError> {
        let mut name = Name::from_utf8(host)
            .map_err(|err| LookupError::new(LookupErrorKind::InvalidName, host, err.to_string()))?;
        name.set_fqdn(true);
        Ok(name)
    }

    /// Sorts hickory's errors into the kinds seeding reports.
    fn map_error(host: &str, err: NetError) -> LookupError {
        let kind = if err.is_no_records_found() || err.is_nx_domain() {
            LookupErrorKind::NotFound
        } else if matches!(err, NetError::Timeout) {
            LookupErrorKind::TimedOut
        } else {
            LookupErrorKind::Resolver
        };
        LookupError::new(kind, host, err.to_string()).with_source(err)
    }
}
