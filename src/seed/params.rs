//! Network parameters for seeding: the default peer port and the DNS seeds
//! of a network, built in for Bitcoin's public networks and buildable for
//! any other.

/// The service bit of a full node that serves the whole chain
/// (`NODE_NETWORK`). Asking for exactly this needs no seed filtering, so
/// plain seed names are queried.
pub const SF_NODE_NETWORK: u64 = 1;

/// One DNS seed: a host name whose A/AAAA records list peers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DnsSeed {
    host: String,
    has_filtering: bool,
}

impl DnsSeed {
    /// A seed at `host`. `has_filtering` says whether it answers the
    /// `x<hex services>.<host>` names that select peers by service bits.
    /// A trailing dot on `host` is dropped.
    pub fn new(host: impl Into<String>, has_filtering: bool) -> Self {
        let mut host = host.into();
        // Written with or without the root dot, the name is the same; keep
        // one form so the "x…" prefix composes and results compare equal.
        if host.ends_with('.') {
            host.pop();
        }
        DnsSeed {
            host,
            has_filtering,
        }
    }

    /// The seed's host name, without a trailing dot.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether the seed supports service-bit filtering subdomains.
    pub fn has_filtering(&self) -> bool {
        self.has_filtering
    }

    /// The name to query for peers offering `services`: the filtering
    /// subdomain `x<services in hex>.<host>` when this seed filters and
    /// more than a plain full node is wanted, otherwise the host itself.
    pub fn query_name(&self, services: u64) -> String {
        if self.has_filtering && services != SF_NODE_NETWORK {
            format!("x{services:x}.{}", self.host)
        } else {
            self.host.clone()
        }
    }
}

/// What seeding needs to know about a network: its name, the port its
/// peers listen on by default, and its DNS seeds.
///
/// Built-in networks come from the constructors named after them; other
/// networks are described with [`NetParams::new`] and [`NetParams::seed`]:
///
/// ```
/// use connmgr::seed::NetParams;
///
/// let net = NetParams::new("examplenet", 19333)
///     .seed("seed.example.org", true)
///     .seed("dnsseed.example.net", false);
/// assert_eq!(net.default_port(), 19333);
/// assert_eq!(net.seeds().len(), 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetParams {
    name: String,
    default_port: u16,
    seeds: Vec<DnsSeed>,
}

impl NetParams {
    /// A network with no seeds yet; add them with [`NetParams::seed`] or
    /// [`NetParams::with_seeds`].
    pub fn new(name: impl Into<String>, default_port: u16) -> Self {
        NetParams {
            name: name.into(),
            default_port,
            seeds: Vec::new(),
        }
    }

    /// Adds a DNS seed (see [`DnsSeed::new`]).
    pub fn seed(mut self, host: impl Into<String>, has_filtering: bool) -> Self {
        self.seeds.push(DnsSeed::new(host, has_filtering));
        self
    }

    /// Adds several DNS seeds at once.
    pub fn with_seeds(mut self, seeds: impl IntoIterator<Item = DnsSeed>) -> Self {
        self.seeds.extend(seeds);
        self
    }

    /// The network's name, such as "mainnet".
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The port given to every seeded address.
    pub fn default_port(&self) -> u16 {
        self.default_port
    }

    /// The DNS seeds, in the order they were added.
    pub fn seeds(&self) -> &[DnsSeed] {
        &self.seeds
    }

    /// Bitcoin's main network: port 8333 and Bitcoin Core's DNS seeds.
    pub fn mainnet() -> Self {
        NetParams::new("mainnet", 8333)
            .seed("seed.bitcoin.sipa.be", true)
            .seed("dnsseed.bluematt.me", true)
            .seed("seed.bitcoin.jonasschnelli.ch", true)
            .seed("seed.btc.petertodd.net", true)
            .seed("seed.bitcoin.sprovoost.nl", true)
            .seed("dnsseed.emzy.de", true)
            .seed("seed.bitcoin.wiz.biz", true)
            .seed("seed.mainnet.achownodes.xyz", true)
    }

    /// Bitcoin's test network version 3: port 18333.
    pub fn testnet3() -> Self {
        NetParams::new("testnet3", 18333)
            .seed("testnet-seed.bitcoin.jonasschnelli.ch", true)
            .seed("seed.tbtc.petertodd.net", true)
            .seed("seed.testnet.bitcoin.sprovoost.nl", true)
            // A static list that answers only one filter: query it plainly.
            .seed("testnet-seed.bluematt.me", false)
            .seed("seed.testnet.achownodes.xyz", true)
    }

    /// Bitcoin's test network version 4: port 48333.
    pub fn testnet4() -> Self {
        NetParams::new("testnet4", 48333)
            .seed("seed.testnet4.bitcoin.sprovoost.nl", true)
            .seed("seed.testnet4.wiz.biz", true)
    }

    /// Bitcoin's default signet: port 38333.
    pub fn signet() -> Self {
        NetParams::new("signet", 38333)
            .seed("seed.signet.bitcoin.sprovoost.nl", false)
            .seed("seed.signet.achownodes.xyz", true)
    }

    /// Bitcoin's local regression-test network: port 18444 and no seeds,
    /// since its peers are whatever the tester starts.
    pub fn regtest() -> Self {
        NetParams::new("regtest", 18444)
    }
}
