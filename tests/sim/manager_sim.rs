//! The whole threaded manager on a `ManualClock` and the in-memory
//! network, driven by a seeded sequence of operations. After each one a
//! barrier makes the published state current, and the invariants are
//! checked on it; at the end every connection must have been reported
//! closed exactly once.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use connmgr::{
    pipe, Addr, Closer, Config, ConnId, ConnManager, ConnReq, ConnState, Event, Listener,
    ManualClock, MemoryListener, MemoryNetwork, PeerId, Stream, Subnet,
};
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::RngExt;

use crate::world::{rng, Behaviour, World};

/// Where the simulation pushes inbound connections; emptied on close.
type Feed = Arc<Mutex<Option<Sender<(Box<dyn Stream>, Addr)>>>>;

/// A manager, its events, its inbound feed, target and inbound limit.
type Built = (ConnManager, Receiver<Event>, Feed, usize, usize);

/// A listener the simulation feeds: each inbound connection comes with
/// the remote address the simulation chose.
struct FedListener {
    rx: Receiver<(Box<dyn Stream>, Addr)>,
    close_tx: Feed,
}

impl Listener for FedListener {
    fn accept(&mut self) -> std::io::Result<(Box<dyn Stream>, Addr)> {
        self.rx
            .recv()
            .map_err(|_| std::io::Error::other("listener closed"))
    }

    fn local_addr(&self) -> std::io::Result<Addr> {
        Ok("127.0.0.1:1".parse().unwrap())
    }

    fn closer(&self) -> std::io::Result<Closer> {
        let tx = Arc::clone(&self.close_tx);
        Ok(Closer::new(move || drop(tx.lock().take())))
    }
}

struct Run {
    rng: SmallRng,
    world: World,
    net: MemoryNetwork,
    clock: ManualClock,
    dir: PathBuf,
    target: usize,
    max_inbound: usize,
    manager: ConnManager,
    events: Receiver<Event>,
    inbound: Feed,
    /// Listeners of the peers that accept, kept open.
    _listeners: Vec<MemoryListener>,
    /// Connections held open, by id.
    held: HashMap<ConnId, connmgr::Conn>,
    /// Client ends of inbound connections.
    clients: Vec<connmgr::PipeStream>,
    bans: Vec<(Subnet, Instant)>,
    opened: BTreeMap<ConnId, i64>,
    /// Connections opened over the run.
    opens: u64,
    ops: u64,
}

fn build(
    rng: &mut SmallRng,
    net: &MemoryNetwork,
    clock: &ManualClock,
    world: &World,
    dir: &std::path::Path,
) -> Built {
    let (tx, rx) = crossbeam_channel::unbounded();
    let close_tx = Arc::new(Mutex::new(Some(tx)));
    let target = rng.random_range(0..=4);
    let max_inbound = rng.random_range(0..=6);
    let source_rng = Mutex::new(crate::world::rng(rng.random()));
    let addrs: Vec<Addr> = world.peers.iter().map(|(a, _)| a.clone()).collect();
    let mut b = Config::builder()
        .dialer(net.dialer())
        .clock(clock.clone())
        .rng_seed(rng.random())
        .target_outbound(target)
        .max_inbound(max_inbound)
        .retry_duration(Duration::from_secs(1))
        .ban_file(dir.join("bans"))
        .anchors_file(dir.join("anchors"))
        .address_source(move || {
            let i = source_rng.lock().random_range(0..addrs.len());
            Some(addrs[i].clone())
        })
        .listener(FedListener {
            rx,
            close_tx: Arc::clone(&close_tx),
        });
    if rng.random() {
        let low = rng.random_range(1..=4);
        b = b
            .watermarks(low, low + rng.random_range(1..=3))
            .trim_grace(Duration::from_secs(rng.random_range(0..=30)))
            .trim_silence(Duration::from_secs(1));
    }
    let manager = ConnManager::new(b.build()).expect("valid config");
    let events = manager.handle().events();
    manager.start().expect("start");
    (manager, events, close_tx, target, max_inbound)
}

impl Run {
    fn new(seed: u64) -> Run {
        let mut rng = rng(seed);
        let world = World::new(&mut rng);
        let net = MemoryNetwork::new();
        let clock = ManualClock::new();
        let mut listeners = Vec::new();
        for (addr, b) in &world.peers {
            if matches!(
                b,
                Behaviour::Accept | Behaviour::Misbehave | Behaviour::Drop | Behaviour::Stall
            ) {
                listeners.push(net.listen(addr.clone()).unwrap());
            }
        }
        let dir = std::env::temp_dir().join(format!("connmgr-sim-{}-{seed}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (manager, events, inbound, target, max_inbound) =
            build(&mut rng, &net, &clock, &world, &dir);
        Run {
            rng,
            world,
            net,
            clock,
            dir,
            target,
            max_inbound,
            manager,
            events,
            inbound,
            _listeners: listeners,
            held: HashMap::new(),
            clients: Vec::new(),
            bans: Vec::new(),
            opened: BTreeMap::new(),
            opens: 0,
            ops: 0,
        }
    }

    fn op(&mut self) -> Result<(), String> {
        let h = self.manager.handle().clone();
        let snap = h.snapshot();
        let pick = |rng: &mut SmallRng| -> Option<ConnId> {
            (!snap.conns.is_empty()).then(|| snap.conns[rng.random_range(0..snap.conns.len())].id)
        };
        match self.rng.random_range(0..100) {
            0..=14 => {
                let (addr, _) = self.world.pick(&mut self.rng).clone();
                let req = if self.rng.random() {
                    ConnReq::permanent(addr)
                } else {
                    ConnReq::new(addr)
                };
                h.connect(req).map(drop).map_err(|e| e.to_string())?;
            }
            15..=29 => {
                let remote = if self.rng.random_range(0..3) == 0 {
                    self.world.flooder.clone()
                } else {
                    self.world.pick(&mut self.rng).0.clone()
                };
                let (ours, theirs) = pipe();
                if let Some(tx) = &*self.inbound.lock() {
                    let _ = tx.send((Box::new(ours), remote));
                }
                // The client end stays open: dropping it would close the
                // connection at once.
                self.clients.push(theirs);
            }
            30..=39 => {
                if let Some(id) = pick(&mut self.rng) {
                    let _ = match self.rng.random_range(0..3) {
                        0 => h.disconnect(id),
                        1 => h.remove(id),
                        _ => h.reconnect(id),
                    };
                }
            }
            40..=47 => {
                // The user closes a connection it holds.
                if let Some(id) = self.held.keys().next().copied() {
                    self.held.remove(&id);
                }
            }
            48..=55 => {
                let peer = PeerId::from(format!("p{}", self.rng.random_range(0..4)));
                let _ = match self.rng.random_range(0..4) {
                    0 => h.tag(peer, "t", self.rng.random_range(-5..=5)),
                    1 => h.untag(peer, "t"),
                    2 => h.protect(peer, "keep"),
                    _ => h.unprotect(peer, "keep").map(drop),
                };
            }
            56..=60 => {
                let (addr, _) = self.world.pick(&mut self.rng).clone();
                if let Some(ip) = addr.ip() {
                    let d = Duration::from_secs(self.rng.random_range(1..=120));
                    h.ban(Subnet::host(ip), d, "sim")
                        .map_err(|e| e.to_string())?;
                    self.bans.push((Subnet::host(ip), self.clock_now() + d));
                }
            }
            61..=63 => {
                if let Some(id) = pick(&mut self.rng) {
                    let _ = h.misbehaving(id, 0, self.rng.random_range(0..=60), "sim");
                }
            }
            64..=66 => {
                let _ = h.trim();
            }
            67..=69 if self.rng.random_range(0..10) == 0 => self.restart()?,
            _ => self
                .clock
                .advance(Duration::from_millis(self.rng.random_range(0..=3_000))),
        }
        self.manager.handle().barrier().map_err(|e| e.to_string())?;
        self.take_events();
        self.check()
    }

    fn clock_now(&self) -> Instant {
        use connmgr::Clock;
        self.clock.now()
    }

    fn take_events(&mut self) {
        while let Ok(ev) = self.events.try_recv() {
            self.note(ev);
        }
    }

    fn note(&mut self, ev: Event) {
        match ev {
            Event::Connected { conn, .. } | Event::Accepted { conn } => {
                *self.opened.entry(conn.id()).or_default() += 1;
                self.opens += 1;
                // Drop peers close at once; the rest stay held.
                let drops = self.world.behaviour(conn.remote_addr()) == Behaviour::Drop;
                if !drops {
                    self.held.insert(conn.id(), conn);
                }
            }
            Event::Disconnected { req, .. } => {
                if let Some(id) = req.id() {
                    *self.opened.entry(id).or_default() -= 1;
                    self.held.remove(&id);
                }
            }
            Event::InboundClosed { id, .. } => {
                *self.opened.entry(id).or_default() -= 1;
                self.held.remove(&id);
            }
            _ => {}
        }
    }

    fn banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.bans
            .iter()
            .any(|(s, until)| s.contains(ip) && now < *until)
    }

    fn check(&self) -> Result<(), String> {
        let snap = self.manager.handle().snapshot();
        let c = snap.counts;
        // Two block-relay slots (the default) come on top of the target.
        if c.full_relay_outbound > self.target || c.block_relay_outbound > 2 || c.feelers > 1 {
            return Err(format!(
                "{} full-relay, {} block-relay, {} feelers; target {}",
                c.full_relay_outbound, c.block_relay_outbound, c.feelers, self.target
            ));
        }
        if c.inbound > self.max_inbound {
            return Err(format!("{} inbound, max {}", c.inbound, self.max_inbound));
        }
        let now = self.clock_now();
        for info in snap
            .conns
            .iter()
            .filter(|i| i.state == ConnState::Established)
        {
            if let Some(ip) = info.addr.as_ref().and_then(Addr::ip) {
                if self.banned(ip, now) {
                    return Err(format!("{} established with banned {ip}", info.id));
                }
            }
        }
        for (id, n) in &self.opened {
            if !(0..=1).contains(n) {
                return Err(format!("{id}: {n} opens without a close"));
            }
        }
        Ok(())
    }

    fn restart(&mut self) -> Result<(), String> {
        self.manager.stop();
        self.take_events();
        self.close_check()?;
        self.held.clear();
        let (manager, events, inbound, target, max_inbound) = build(
            &mut self.rng,
            &self.net,
            &self.clock,
            &self.world,
            &self.dir,
        );
        self.manager = manager;
        self.events = events;
        self.inbound = inbound;
        self.target = target;
        self.max_inbound = max_inbound;
        self.opened.clear();
        Ok(())
    }

    /// After a stop: every connection reported closed, nothing live.
    fn close_check(&self) -> Result<(), String> {
        if let Some((id, n)) = self.opened.iter().find(|(_, n)| **n != 0) {
            return Err(format!("{id}: {n} opens left after stop"));
        }
        let snap = self.manager.handle().snapshot();
        if !snap.conns.is_empty() {
            return Err(format!(
                "{} entries left after stop: {:?}",
                snap.conns.len(),
                snap.conns
            ));
        }
        Ok(())
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `ops` operations of `seed`; the connections opened, or what broke.
pub fn run(seed: u64, ops: u64) -> Result<u64, String> {
    let mut run = Run::new(seed);
    for _ in 0..ops {
        run.op()
            .map_err(|m| format!("after {} ops: {m}", run.ops))?;
        run.ops += 1;
    }
    run.manager.stop();
    run.take_events();
    run.close_check()?;
    Ok(run.opens)
}
