//! A dialer that routes each address either directly over TCP or through
//! a SOCKS5 proxy, so that onion addresses and (when a proxy is set) host
//! names never reach local DNS.

use log::debug;

use crate::addr::Addr;
use crate::transport::dial::{Dial, DialContext};
use crate::transport::socks::{Socks5Proxy, SocksError, SocksTarget};
use crate::transport::stream::{Proxied, SharedTcp, Stream};
use crate::transport::tcp::TcpDialer;
use crate::types::DialError;

const LOG: &str = "connmgr::proxy";

/// How [`Socks5Dialer`] reaches one address.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Route<'a> {
    /// Directly over TCP, resolving host names locally.
    Direct,
    /// Through this proxy; host names are resolved by the proxy.
    Proxy(&'a Socks5Proxy),
}

/// Dials through SOCKS5 proxies according to simple routing rules.
///
/// - Onion addresses go through the onion proxy if one is set, else
///   through the general proxy; with neither they fail with
///   [`SocksError::OnionWithoutProxy`]. They never go to DNS.
/// - Host names go through the general proxy when one is set, as domain
///   targets, so the proxy resolves them and local DNS never sees them.
///   Without a general proxy they are resolved locally and dialed directly.
/// - I2P addresses go through the I2P proxy (an I2P router's SOCKS5
///   port) if one is set; with none they fail with [`SocksError::NoRoute`].
/// - IP addresses are dialed directly, unless "proxy everything" is on:
///   then they go through the general proxy, and with no general proxy
///   every non-onion dial fails rather than leave in the clear.
/// - CJDNS addresses are always dialed directly: they travel inside the
///   CJDNS overlay, which a clearnet proxy cannot reach.
/// - Custom addresses are not supported.
#[derive(Debug, Clone)]
pub struct Socks5Dialer {
    proxy: Option<Socks5Proxy>,
    onion_proxy: Option<Socks5Proxy>,
    i2p_proxy: Option<Socks5Proxy>,
    proxy_all: bool,
    direct: TcpDialer,
}

impl Default for Socks5Dialer {
    fn default() -> Self {
        Self::without_proxy()
    }
}

impl Socks5Dialer {
    /// Uses `proxy` for host names and onion addresses; IPs go direct.
    pub fn new(proxy: Socks5Proxy) -> Self {
        Socks5Dialer {
            proxy: Some(proxy),
            ..Self::without_proxy()
        }
    }

    /// No proxy yet: everything but onion addresses goes direct. Add an
    /// [`onion_proxy`](Self::onion_proxy) to reach onion services only
    /// through a proxy.
    pub fn without_proxy() -> Self {
        Socks5Dialer {
            proxy: None,
            onion_proxy: None,
            i2p_proxy: None,
            proxy_all: false,
            direct: TcpDialer::new(),
        }
    }

    /// Sends onion addresses through `proxy` instead of the general one
    /// (for example a Tor instance kept only for onion services).
    pub fn onion_proxy(mut self, proxy: Socks5Proxy) -> Self {
        self.onion_proxy = Some(proxy);
        self
    }

    /// Sends ".b32.i2p" addresses through `proxy`, an I2P router's SOCKS5
    /// port (i2pd and Java I2P both offer one). Without it I2P addresses
    /// cannot be dialed.
    pub fn i2p_proxy(mut self, proxy: Socks5Proxy) -> Self {
        self.i2p_proxy = Some(proxy);
        self
    }

    /// "Proxy everything": IP addresses go through the general proxy too,
    /// and without one, non-onion dials fail instead of going direct.
    pub fn proxy_all(mut self, on: bool) -> Self {
        self.proxy_all = on;
        self
    }

    /// The TCP dialer for direct connections (default `TcpDialer::new()`).
    pub fn direct_dialer(mut self, dialer: TcpDialer) -> Self {
        self.direct = dialer;
        self
    }

    /// How `addr` would be dialed, without dialing it.
    pub fn route(&self, addr: &Addr) -> Result<Route<'_>, SocksError> {
        match addr {
            Addr::Onion { host, .. } => self
                .onion_proxy
                .as_ref()
                .or(self.proxy.as_ref())
                .map(Route::Proxy)
                .ok_or_else(|| SocksError::OnionWithoutProxy(host.to_string())),
            Addr::I2p { host, .. } => self.i2p_proxy.as_ref().map(Route::Proxy).ok_or_else(|| {
                SocksError::NoRoute(format!(
                    "{host} is an I2P address, reachable only through an I2P router; set an \
                     I2P proxy (the router's SOCKS5 port)"
                ))
            }),
            Addr::Cjdns { .. } => Ok(Route::Direct),
            Addr::Custom(_) => SocksTarget::from_addr(addr).map(|_| Route::Direct),
            Addr::Dns { .. } | Addr::Ip(_) => self.clearnet_route(addr),
        }
    }

    /// Routes IP addresses and host names.
    fn clearnet_route(&self, addr: &Addr) -> Result<Route<'_>, SocksError> {
        let wants_proxy = self.proxy_all || matches!(addr, Addr::Dns { .. });
        match (&self.proxy, wants_proxy) {
            (Some(proxy), true) => Ok(Route::Proxy(proxy)),
            (None, true) if self.proxy_all => Err(SocksError::NoRoute(format!(
                "proxy-everything mode is on but no general SOCKS5 proxy is set, so {addr} \
                 would leave in the clear; set a proxy or turn proxy-everything off"
            ))),
            _ => Ok(Route::Direct),
        }
    }
}

impl Dial for Socks5Dialer {
    fn dial(&self, addr: &Addr, ctx: &DialContext) -> Result<Box<dyn Stream>, DialError> {
        match self.route(addr)? {
            Route::Direct => {
                debug!(target: LOG, "dialing {addr} directly");
                self.direct.dial(addr, ctx)
            }
            Route::Proxy(proxy) => {
                debug!(target: LOG, "dialing {addr} through {}", proxy.addr());
                let target = SocksTarget::from_addr(addr)?;
                Ok(Box::new(Proxied(SharedTcp::new(
                    proxy.connect(&target, ctx)?,
                ))))
            }
        }
    }
}
