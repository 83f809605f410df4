//! A bare Core for inbound-policy tests: accepts, evictions, reports and
//! requests with made-up time and `u32` tokens for connections.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use connmgr::core::{Core, CoreConfig, CoreEvent, Effect, Input, PeerReport, ReqSpec, Teardown};
use connmgr::policy::EvictionPolicy;
use connmgr::{Addr, ConnId};

pub fn addr(s: &str) -> Addr {
    s.parse().unwrap()
}

/// An eviction policy with every protection rule off: the victim is the
/// youngest connection of the largest netgroup.
pub fn bare_policy() -> EvictionPolicy {
    EvictionPolicy {
        protect_netgroup: 0,
        protect_min_ping: 0,
        protect_recent_tx: 0,
        protect_block_relay_only: 0,
        protect_recent_block: 0,
        protect_uptime_ratio: 0.0,
        ..EvictionPolicy::default()
    }
}

pub struct Node {
    pub core: Core,
    pub now: Instant,
    token: u32,
}

impl Node {
    /// A started Core with no feelers, configured by `f`.
    pub fn new(f: impl FnOnce(&mut CoreConfig)) -> Node {
        let mut cfg = CoreConfig::default();
        cfg.feeler_interval = None;
        f(&mut cfg);
        let mut n = Node {
            core: Core::new(cfg),
            now: Instant::now(),
            token: 0,
        };
        n.step(Input::Start);
        n
    }

    pub fn step(&mut self, input: Input<u32>) -> Vec<Effect<u32>> {
        self.core.handle(self.now, input)
    }

    /// Offers an inbound connection from `remote`; its id if accepted.
    pub fn accept(&mut self, remote: &str) -> Option<ConnId> {
        self.accept_evicting(remote).0
    }

    /// Offers an inbound connection from `remote`: its id if accepted, and
    /// the connection evicted for it, if any.
    pub fn accept_evicting(&mut self, remote: &str) -> (Option<ConnId>, Option<ConnId>) {
        self.token += 1;
        let out = self.step(Input::Accepted {
            conn: self.token,
            remote: addr(remote),
        });
        let id = out.iter().find_map(|e| match e {
            Effect::Established { id, .. } => Some(*id),
            _ => None,
        });
        let evicted = out.iter().find_map(|e| match e {
            Effect::Notify(CoreEvent::InboundClosed { id, .. }) => Some(*id),
            _ => None,
        });
        (id, evicted)
    }

    /// Connects request `spec` at once; its id if it was handed over.
    pub fn connect(&mut self, spec: ReqSpec) -> Option<ConnId> {
        let id = spec.id;
        let out = self.step(Input::Connect(spec));
        let attempt = out.iter().find_map(|e| match e {
            Effect::Dial { attempt, .. } => Some(*attempt),
            _ => None,
        })?;
        self.token += 1;
        let out = self.step(Input::DialSucceeded {
            id,
            attempt,
            conn: self.token,
            remote: None,
        });
        out.iter()
            .any(|e| matches!(e, Effect::Established { .. }))
            .then_some(id)
    }

    pub fn report(&mut self, id: ConnId, report: PeerReport) {
        self.step(Input::Report { id, report });
    }

    /// `n` inbound peers, one per /16, each a second younger than the last.
    pub fn fill(&mut self, n: u32) -> Vec<ConnId> {
        (0..n)
            .map(|i| {
                self.now += Duration::from_secs(1);
                self.accept(&format!("10.{i}.0.1:8333"))
                    .expect("a free slot")
            })
            .collect()
    }

    pub fn close(&mut self, id: ConnId) {
        assert!(self.live(id), "{id} is live");
        self.step(Input::Teardown {
            id,
            mode: Teardown::Disconnect,
        });
    }

    pub fn live(&self, id: ConnId) -> bool {
        self.core.conn_info(id).is_some()
    }
}
