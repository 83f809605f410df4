//! Drives a bare Core against the seeded world with made-up time, every
//! input kind included, and checks the invariants after every step.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use connmgr::core::{
    default_peer_id, Changes, Core, CoreConfig, CoreEvent, DecayingSpec, Effect, Input, PeerReport,
    ReqSpec, TagChange, Teardown,
};
use connmgr::policy::{BanList, Network};
use connmgr::{
    Addr, BumpFn, CloseReason, ConnId, ConnType, DecayFn, DialError, Direction, PeerId,
    Permissions, Subnet,
};
use rand::rngs::SmallRng;
use rand::RngExt;

use crate::world::{random_config, rng, Behaviour, World};

const DECAYING: &str = "decaying";

/// One live connection as the simulation saw it established.
#[derive(Debug, Clone)]
struct Live {
    serial: u64,
    addr: Addr,
    direction: Direction,
    opened: Instant,
    permanent: bool,
    conn_type: ConnType,
    permissions: Permissions,
}

/// Which ids an input may close without a policy deciding it.
#[derive(Debug, Default)]
struct Explained {
    ids: BTreeSet<ConnId>,
    subnets: Vec<Subnet>,
    all: bool,
    /// Time passed: feelers and one-shot connections past their timeout
    /// may close.
    lifetimes: bool,
}

/// The one decaying tag every run registers.
fn decaying_spec() -> DecayingSpec {
    DecayingSpec {
        name: DECAYING.into(),
        interval: Duration::from_secs(10),
        decay: DecayFn::fixed(1),
        bump: BumpFn::sum(),
    }
}

pub struct Sim {
    rng: SmallRng,
    cfg: CoreConfig,
    core: Core,
    world: World,
    now: Instant,
    fetches: Vec<ConnId>,
    dials: Vec<(ConnId, u64, Addr)>,
    canceled: Vec<(ConnId, u64)>,
    /// The deadline the Core gave each dial in flight.
    deadlines: HashMap<(ConnId, u64), Instant>,
    live: BTreeMap<ConnId, Live>,
    /// Ids the Core has shown in this incarnation.
    ids: HashSet<ConnId>,
    serials: HashSet<u64>,
    bans: Vec<(Subnet, Instant)>,
    protected: BTreeMap<PeerId, BTreeSet<String>>,
    tags: BTreeMap<PeerId, BTreeSet<String>>,
    peer_names: BTreeMap<ConnId, PeerId>,
    anchors: Vec<Addr>,
    saved_bans: Option<BanList>,
    connected: u64,
    closed: u64,
    /// Connections closed by policy (trim or eviction) in this step, and
    /// how many of them were still in their trim grace period.
    policy_closed: usize,
    policy_closed_in_grace: usize,
    /// The last connection closed, its age and its timeout if it has one,
    /// for checking the close reason that follows.
    last_closed: Option<(Live, Duration, Option<Duration>)>,
    token: u32,
    changes: Changes,
    transcript: std::collections::hash_map::DefaultHasher,
    pub ops: u64,
}

impl Sim {
    /// A run of `seed` whose clock starts at `now`.
    pub fn new(seed: u64, now: Instant) -> Sim {
        let mut rng = rng(seed);
        let cfg = random_config(&mut rng);
        let world = World::new(&mut rng);
        let mut sim = Sim {
            core: Core::new(cfg.clone()),
            cfg,
            world,
            rng,
            now,
            fetches: Vec::new(),
            dials: Vec::new(),
            deadlines: HashMap::new(),
            canceled: Vec::new(),
            live: BTreeMap::new(),
            ids: HashSet::new(),
            serials: HashSet::new(),
            bans: Vec::new(),
            protected: BTreeMap::new(),
            tags: BTreeMap::new(),
            peer_names: BTreeMap::new(),
            anchors: Vec::new(),
            saved_bans: None,
            connected: 0,
            closed: 0,
            policy_closed: 0,
            policy_closed_in_grace: 0,
            last_closed: None,
            token: 0,
            changes: Changes::default(),
            transcript: Default::default(),
            ops: 0,
        };
        if let Err(msg) = sim.boot(None, Vec::new()) {
            panic!("seed {seed}: {msg}");
        }
        sim
    }

    /// A canonical digest of everything the Core did: equal digests mean
    /// equal effects and change sets, in the same order.
    pub fn digest(&self) -> u64 {
        self.transcript.finish()
    }

    /// Connections established and policy events seen, for the summary.
    pub fn tally(&self) -> (u64, u64, u64, u64) {
        let s = self.core.stats();
        (self.connected, s.trims, s.evicted, self.bans.len() as u64)
    }

    fn boot(&mut self, bans: Option<BanList>, anchors: Vec<Addr>) -> Result<(), String> {
        self.step(
            Input::RegisterDecaying(decaying_spec()),
            &Explained::default(),
        )?;
        self.core.take_registration();
        if let Some(list) = bans {
            self.step(Input::LoadBans(list), &Explained::default())?;
        }
        self.step(Input::Anchors(anchors), &Explained::default())?;
        self.step(Input::Start, &Explained::default())
    }

    /// Runs `n` random operations, then removes everything and checks the
    /// Core is empty.
    pub fn run(&mut self, n: u64) -> Result<(), String> {
        for _ in 0..n {
            self.random_op()?;
            self.ops += 1;
        }
        self.wind_down()
    }

    fn random_op(&mut self) -> Result<(), String> {
        let none = Explained::default();
        match self.rng.random_range(0..100) {
            0..=7 => {
                let (addr, _) = self.world.pick(&mut self.rng).clone();
                let permanent = self.rng.random_range(0..3) == 0;
                let mut req = self.core.request(addr.clone(), permanent);
                match self.rng.random_range(0..6) {
                    0 => req = ReqSpec::one_shot(req.id, addr),
                    1 => req = req.with_block_relay_only(),
                    _ => {}
                }
                self.step(Input::Connect(req), &none)
            }
            8..=9 => {
                let req = self.core.request_from_source();
                self.step(Input::Connect(req), &none)
            }
            10..=24 => self.answer_fetch(),
            25..=44 => self.complete_dial(),
            45..=46 => self.late_result(),
            47..=55 => self.accept(),
            56..=60 => self.user_close(),
            61..=66 => self.teardown(),
            67..=75 => self.advance(),
            76..=79 => self.tag(),
            80..=82 => self.protect(),
            83..=84 => self.set_peer(),
            85..=86 => self.step(Input::Trim, &none),
            87..=88 => self.ban(),
            89 => self.unban(),
            90..=93 => self.misbehave(),
            94..=95 => self.report(),
            96 if self.rng.random_range(0..20) == 0 => self.restart(),
            _ => self.advance(),
        }
    }

    fn answer_fetch(&mut self) -> Result<(), String> {
        if self.fetches.is_empty() {
            return Ok(());
        }
        let id = self
            .fetches
            .swap_remove(self.rng.random_range(0..self.fetches.len()));
        let addr =
            (self.rng.random_range(0..5) > 0).then(|| self.world.pick(&mut self.rng).0.clone());
        self.step(Input::AddressFound { id, addr }, &Explained::default())
    }

    fn complete_dial(&mut self) -> Result<(), String> {
        if self.dials.is_empty() {
            return Ok(());
        }
        let i = self.rng.random_range(0..self.dials.len());
        let (id, attempt, addr) = self.dials[i].clone();
        let behaviour = self.world.behaviour(&addr);
        let input = match behaviour {
            Behaviour::Refuse => Input::DialFailed {
                id,
                attempt,
                error: DialError::Refused,
            },
            // A stalled dial answers only with its timeout.
            Behaviour::Stall if self.rng.random_range(0..3) > 0 => return Ok(()),
            Behaviour::Stall => Input::DialFailed {
                id,
                attempt,
                error: DialError::TimedOut,
            },
            _ => Input::DialSucceeded {
                id,
                attempt,
                conn: self.next_token(),
                remote: None,
            },
        };
        self.dials.swap_remove(i);
        self.deadlines.remove(&(id, attempt));
        self.step(input, &Explained::default())
    }

    /// A canceled dial answering after all: the Core must discard it.
    fn late_result(&mut self) -> Result<(), String> {
        let Some((id, attempt)) = self.canceled.pop() else {
            return Ok(());
        };
        let conn = self.next_token();
        let effects = self.step_effects(
            Input::DialSucceeded {
                id,
                attempt,
                conn,
                remote: None,
            },
            &Explained::default(),
        )?;
        let discarded = effects
            .iter()
            .any(|e| matches!(e, Effect::Discard { conn: c } if *c == conn));
        if !discarded {
            return Err(format!(
                "late dial {id}/{attempt} was not discarded: {effects:?}"
            ));
        }
        Ok(())
    }

    fn accept(&mut self) -> Result<(), String> {
        let remote = match self.rng.random_range(0..4) {
            0 => self.world.flooder.clone(),
            1 => self.world.pick(&mut self.rng).0.clone(),
            // Strangers from all over, so eviction sees many netgroups.
            _ => {
                let [a, b, c] = [
                    self.rng.random_range(1..=223u8),
                    self.rng.random(),
                    self.rng.random(),
                ];
                format!("{a}.{b}.{c}.9:{}", self.rng.random_range(1024..=65535u16))
                    .parse()
                    .unwrap()
            }
        };
        let conn = self.next_token();
        self.step(Input::Accepted { conn, remote }, &Explained::default())
    }

    fn user_close(&mut self) -> Result<(), String> {
        let Some((id, serial)) = self.pick_live().map(|(id, l)| (id, l.serial)) else {
            return Ok(());
        };
        // Now and then a stale serial, which must change nothing.
        let serial = if self.rng.random_range(0..10) == 0 {
            serial + 1_000_000
        } else {
            serial
        };
        let why = Explained {
            ids: [id].into(),
            ..Explained::default()
        };
        self.step(Input::Closed { id, serial }, &why)
    }

    fn teardown(&mut self) -> Result<(), String> {
        let ids: Vec<ConnId> = self.core.ids().collect();
        let id = if ids.is_empty() || self.rng.random_range(0..10) == 0 {
            ConnId(self.rng.random_range(1..10_000))
        } else {
            let mut ids = ids;
            ids.sort_unstable();
            ids[self.rng.random_range(0..ids.len())]
        };
        let mode = match self.rng.random_range(0..3) {
            0 => Teardown::Disconnect,
            1 => Teardown::Reconnect,
            _ => Teardown::Remove,
        };
        let why = Explained {
            ids: [id].into(),
            ..Explained::default()
        };
        self.step(Input::Teardown { id, mode }, &why)
    }

    fn advance(&mut self) -> Result<(), String> {
        let by = match (self.rng.random_range(0..3), self.core.next_deadline()) {
            (0, Some(at)) => at.saturating_duration_since(self.now),
            _ => Duration::from_millis(self.rng.random_range(0..=20_000)),
        };
        self.now += by;
        let why = Explained {
            lifetimes: true,
            ..Explained::default()
        };
        self.step(Input::Tick, &why)?;
        // Every dial whose deadline passed was reported at that tick.
        for (id, attempt, _) in &self.dials {
            if self
                .deadlines
                .get(&(*id, *attempt))
                .is_some_and(|at| *at <= self.now)
            {
                return Err(format!(
                    "dial {id}/{attempt} past its deadline still in flight"
                ));
            }
        }
        Ok(())
    }

    /// A peer to tag or protect: one behind a live connection, or a
    /// stranger that never connects.
    fn pick_peer(&mut self) -> PeerId {
        if self.rng.random_range(0..3) > 0 {
            if let Some((id, l)) = self.pick_live() {
                let addr = l.addr.clone();
                return self.peer_of(id, &addr);
            }
        }
        PeerId::from(format!("stranger-{}", self.rng.random_range(0..8)))
    }

    fn tag(&mut self) -> Result<(), String> {
        if self.rng.random_range(0..40) == 0 {
            return self.cycle_decaying();
        }
        let peer = self.pick_peer();
        let name = format!("t{}", self.rng.random_range(0..3));
        let change = match self.rng.random_range(0..5) {
            0 | 1 => TagChange::Set(name.clone(), self.rng.random_range(-50..=50)),
            2 => TagChange::Remove(name.clone()),
            3 => TagChange::Update(
                name.clone(),
                Box::new(|v: i64| {
                    assert!(v != 31, "a user closure that panics");
                    v.saturating_add(7)
                }),
            ),
            _ => TagChange::Bump(DECAYING.into(), self.rng.random_range(1..=20)),
        };
        let entry = self.tags.entry(peer.clone()).or_default();
        match &change {
            TagChange::Remove(n) => {
                entry.remove(n);
            }
            TagChange::Bump(n, _) => {
                entry.insert(n.clone());
            }
            _ => {
                entry.insert(name);
            }
        }
        self.step(Input::Tag { peer, change }, &Explained::default())
    }

    /// Registering the decaying tag again is refused as a duplicate;
    /// closing it drops it from every peer; registering it after that
    /// works.
    fn cycle_decaying(&mut self) -> Result<(), String> {
        self.step(
            Input::RegisterDecaying(decaying_spec()),
            &Explained::default(),
        )?;
        if !matches!(self.core.take_registration(), Some(Err(_))) {
            return Err("a duplicate decaying tag was registered".into());
        }
        self.step(
            Input::UnregisterDecaying(DECAYING.into()),
            &Explained::default(),
        )?;
        for names in self.tags.values_mut() {
            names.remove(DECAYING);
        }
        if self.core.has_decaying(DECAYING) {
            return Err("a closed decaying tag is still registered".into());
        }
        self.step(
            Input::RegisterDecaying(decaying_spec()),
            &Explained::default(),
        )?;
        match self.core.take_registration() {
            Some(Ok(())) => Ok(()),
            other => Err(format!("registering a closed tag again: {other:?}")),
        }
    }

    fn protect(&mut self) -> Result<(), String> {
        let peer = self.pick_peer();
        let tag = format!("p{}", self.rng.random_range(0..2));
        let set = self.protected.entry(peer.clone()).or_default();
        let change = if self.rng.random() {
            set.insert(tag.clone());
            TagChange::Protect(tag)
        } else {
            set.remove(&tag);
            TagChange::Unprotect(tag)
        };
        if set.is_empty() {
            self.protected.remove(&peer);
        }
        self.step(
            Input::Tag {
                peer: peer.clone(),
                change,
            },
            &Explained::default(),
        )?;
        let expected = self.protected.contains_key(&peer);
        if self.core.is_protected(&peer, None) != expected {
            return Err(format!(
                "{peer} protected: Core says {}, calls say {expected}",
                !expected
            ));
        }
        Ok(())
    }

    fn set_peer(&mut self) -> Result<(), String> {
        let Some((id, _)) = self.pick_live() else {
            return Ok(());
        };
        let peer = PeerId::from(format!("node-{}", self.rng.random_range(0..6)));
        self.peer_names.insert(id, peer.clone());
        self.step(Input::SetPeer { id, peer }, &Explained::default())
    }

    fn ban(&mut self) -> Result<(), String> {
        let (addr, _) = self.world.pick(&mut self.rng).clone();
        let Some(ip) = addr.ip() else {
            return Ok(());
        };
        let subnet = match (ip, self.rng.random()) {
            (IpAddr::V4(_), true) => Subnet::new(ip, 24).unwrap(),
            _ => Subnet::host(ip),
        };
        // Huge durations too: time arithmetic must saturate.
        let duration = match self.rng.random_range(0..4) {
            0 => Duration::MAX,
            _ => Duration::from_secs(self.rng.random_range(1..=600)),
        };
        self.note_ban(subnet, duration);
        let why = Explained {
            subnets: vec![subnet],
            ..Explained::default()
        };
        let reason = "simulated".to_string();
        self.step(
            Input::Ban {
                subnet,
                duration,
                reason,
            },
            &why,
        )
    }

    fn note_ban(&mut self, subnet: Subnet, duration: Duration) {
        let until = self
            .now
            .checked_add(duration.min(connmgr::policy::MAX_BAN_DURATION));
        let until = until.unwrap_or(self.now + Duration::from_secs(3_600 * 24 * 365));
        self.bans.push((subnet, until));
    }

    fn unban(&mut self) -> Result<(), String> {
        if self.bans.is_empty() {
            return Ok(());
        }
        let (subnet, _) = self.bans[self.rng.random_range(0..self.bans.len())];
        self.bans.retain(|(s, _)| *s != subnet);
        self.step(Input::Unban(subnet), &Explained::default())
    }

    fn misbehave(&mut self) -> Result<(), String> {
        let Some((id, addr)) = self.pick_live().map(|(id, l)| (id, l.addr.clone())) else {
            return Ok(());
        };
        let persistent = self.rng.random_range(0..=60);
        let transient = self.rng.random_range(0..=60);
        let before = self.core.bans(self.now).len();
        let mut why = Explained {
            ids: [id].into(),
            ..Explained::default()
        };
        if let Some(ip) = addr.ip() {
            why.subnets.push(Subnet::host(ip));
        }
        let input = Input::Misbehaving {
            id,
            persistent,
            transient,
            reason: "sim".into(),
        };
        self.step(input, &why)?;
        if self.core.bans(self.now).len() > before {
            if let Some(ip) = addr.ip() {
                let d = self.cfg.ban_duration;
                self.note_ban(Subnet::host(ip), d);
            }
        }
        Ok(())
    }

    fn report(&mut self) -> Result<(), String> {
        let Some((id, _)) = self.pick_live() else {
            return Ok(());
        };
        if self.rng.random_range(0..4) == 0 {
            // A feeler closes; nothing else does.
            let why = Explained {
                ids: BTreeSet::from([id]),
                ..Explained::default()
            };
            let feeler = self
                .live
                .get(&id)
                .is_some_and(|l| l.conn_type == ConnType::Feeler);
            self.step(Input::HandshakeDone { id }, &why)?;
            let closed = !self.live.contains_key(&id);
            if feeler != closed {
                return Err(format!(
                    "handshake done on {id}: feeler {feeler}, closed {closed}"
                ));
            }
            return Ok(());
        }
        let report = match self.rng.random_range(0..3) {
            0 => PeerReport::Ping(Duration::from_millis(self.rng.random_range(1..500))),
            1 => PeerReport::NovelBlock,
            _ => PeerReport::NovelTx,
        };
        self.step(Input::Report { id, report }, &Explained::default())
    }

    /// A clean stop and a new Core fed the anchors and bans it saved.
    fn restart(&mut self) -> Result<(), String> {
        self.stop()?;
        let bans = self.saved_bans.take();
        let anchors = std::mem::take(&mut self.anchors);
        let mut cfg = self.cfg.clone();
        cfg.rng_seed = cfg.rng_seed.wrapping_add(1);
        self.core = Core::new(cfg);
        self.ids.clear();
        self.serials.clear();
        // Tags and protection live in memory only: a restart starts bare.
        self.peer_names.clear();
        self.protected.clear();
        self.tags.clear();
        self.canceled.clear();
        let expected: Vec<Addr> = anchors.clone();
        self.boot(bans, anchors)?;
        // The anchors are dialed before the source is asked, unless banned
        // or held back by the diversity rule.
        let filled = if self.cfg.has_address_source {
            self.cfg.target_outbound
        } else {
            0
        };
        for a in expected.iter().take(filled) {
            let dialed = self.dials.iter().any(|(_, _, d)| d == a);
            if !dialed && !self.is_banned(a) && !self.cfg.diversity {
                return Err(format!("anchor {a} not dialed after restart"));
            }
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<(), String> {
        let why = Explained {
            all: true,
            ..Explained::default()
        };
        self.step(
            Input::Stop {
                close_established: true,
            },
            &why,
        )?;
        self.fetches.clear();
        self.dials.clear();
        self.deadlines.clear();
        if !self.live.is_empty() {
            return Err(format!("{} connections live after Stop", self.live.len()));
        }
        if self.core.tracked() != 0 || self.core.queued_timers() != 0 {
            return Err(format!(
                "after Stop: {} tracked, {} timers",
                self.core.tracked(),
                self.core.queued_timers()
            ));
        }
        if self
            .core
            .next_deadline()
            .is_some_and(|_| self.core.tagged_peers() == 0)
        {
            return Err("a deadline after Stop with no tags".into());
        }
        Ok(())
    }

    /// Removes every tag and protection, stops, and checks that nothing is
    /// left anywhere and every connection was reported closed once.
    fn wind_down(&mut self) -> Result<(), String> {
        for (peer, names) in std::mem::take(&mut self.tags) {
            for name in names {
                let change = TagChange::Remove(name);
                self.step(
                    Input::Tag {
                        peer: peer.clone(),
                        change,
                    },
                    &Explained::default(),
                )?;
            }
        }
        // One protection at a time, the model kept in step with the Core
        // (a trim may run between two of them).
        let all: Vec<(PeerId, BTreeSet<String>)> = self
            .protected
            .iter()
            .map(|(p, t)| (p.clone(), t.clone()))
            .collect();
        for (peer, tags) in all {
            for tag in tags {
                if let Some(set) = self.protected.get_mut(&peer) {
                    set.remove(&tag);
                    if set.is_empty() {
                        self.protected.remove(&peer);
                    }
                }
                let change = TagChange::Unprotect(tag);
                self.step(
                    Input::Tag {
                        peer: peer.clone(),
                        change,
                    },
                    &Explained::default(),
                )?;
            }
        }
        self.stop()?;
        if self.core.tagged_peers() != 0 {
            return Err(format!(
                "{} peers left in the tag store",
                self.core.tagged_peers()
            ));
        }
        if self.connected != self.closed {
            return Err(format!(
                "{} connections established, {} reported closed",
                self.connected, self.closed
            ));
        }
        Ok(())
    }

    fn next_token(&mut self) -> u32 {
        self.token += 1;
        self.token
    }

    /// A feeler or one-shot close happens at its timeout or at the end of
    /// a feeler's handshake, and only to those types.
    fn check_close_reason(&self, reason: CloseReason) -> Result<(), String> {
        let Some((live, age, lifetime)) = &self.last_closed else {
            return Ok(());
        };
        match reason {
            CloseReason::Expired if lifetime.is_none_or(|limit| *age < limit) => Err(format!(
                "{:?} connection expired at {age:?}, timeout {lifetime:?}",
                live.conn_type
            )),
            CloseReason::FeelerDone if live.conn_type != ConnType::Feeler => Err(format!(
                "a {:?} connection closed as a finished feeler",
                live.conn_type
            )),
            _ => Ok(()),
        }
    }

    /// Whether the configured subnets give `addr` the noban permission
    /// (the simulation's requests carry none of their own).
    fn noban(&self, addr: &Addr) -> bool {
        addr.ip()
            .is_some_and(|ip| self.cfg.permissions.lookup(ip).contains(Permissions::NOBAN))
    }

    /// The permissions the Core shows for `id`.
    fn perms(&self, id: ConnId) -> Permissions {
        self.core
            .conn_info(id)
            .map_or(Permissions::NONE, |c| c.permissions)
    }

    fn pick_live(&mut self) -> Option<(ConnId, Live)> {
        if self.live.is_empty() {
            return None;
        }
        let n = self.rng.random_range(0..self.live.len());
        self.live.iter().nth(n).map(|(id, l)| (*id, l.clone()))
    }

    fn peer_of(&self, id: ConnId, addr: &Addr) -> PeerId {
        self.peer_names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| default_peer_id(addr))
    }

    fn is_banned(&self, addr: &Addr) -> bool {
        let Some(ip) = addr.ip() else {
            return false;
        };
        self.bans
            .iter()
            .any(|(s, until)| s.contains(ip) && self.now < *until)
    }

    fn step(&mut self, input: Input<u32>, why: &Explained) -> Result<(), String> {
        self.step_effects(input, why).map(drop)
    }

    /// Feeds one input, checks its effects and the state after it.
    fn step_effects(
        &mut self,
        input: Input<u32>,
        why: &Explained,
    ) -> Result<Vec<Effect<u32>>, String> {
        let trims = self.core.stats().trims;
        let label = format!("{input:?}");
        self.policy_closed = 0;
        self.policy_closed_in_grace = 0;
        let effects = self.core.handle(self.now, input);
        self.record(&label, &effects);
        for e in &effects {
            self.check_effect(e, why)
                .map_err(|m| format!("{m}\n  after {label}"))?;
        }
        self.check_state(trims)
            .map_err(|m| format!("{m}\n  after {label}"))?;
        Ok(effects)
    }

    fn record(&mut self, label: &str, effects: &[Effect<u32>]) {
        let mut text = label.to_string();
        for e in effects {
            let _ = match e {
                // The list's own maps have no fixed order; its entries do.
                Effect::SaveBans(list) => write!(text, "{:?}", list.bans(self.now)),
                other => write!(text, "{other:?}"),
            };
        }
        self.core.take_changes(&mut self.changes);
        let c = &self.changes;
        let _ = write!(text, "{:?}{:?}{:?}", c.conns, c.finished, c.bans);
        for p in &self.changes.peers {
            let mut tags: Vec<_> = p.info.iter().flat_map(|i| i.tags.iter()).collect();
            tags.sort();
            let conns = p.info.as_ref().map(|i| (&i.conns, i.value, i.first_seen));
            let _ = write!(text, "{:?}{tags:?}{conns:?}{:?}", p.peer, p.protections);
        }
        text.hash(&mut self.transcript);
    }

    fn check_effect(&mut self, e: &Effect<u32>, why: &Explained) -> Result<(), String> {
        match e {
            Effect::FetchAddress { id } => {
                self.ids.insert(*id);
                self.fetches.push(*id);
            }
            Effect::Dial {
                id,
                attempt,
                addr,
                deadline,
            } => {
                if self.is_banned(addr) && !self.noban(addr) {
                    return Err(format!("dialed banned {addr} for {id}"));
                }
                let want = self.cfg.dial_timeout.map(|t| self.now + t);
                if *deadline != want {
                    return Err(format!("dial {id} has deadline {deadline:?}, not {want:?}"));
                }
                if let Some(at) = deadline {
                    self.deadlines.insert((*id, *attempt), *at);
                }
                self.ids.insert(*id);
                self.dials.push((*id, *attempt, addr.clone()));
            }
            Effect::CancelDial { id, attempt } => {
                let before = self.dials.len();
                self.dials.retain(|(i, a, _)| !(i == id && a == attempt));
                if self.dials.len() == before {
                    return Err(format!(
                        "canceled dial {id}/{attempt} that was not in flight"
                    ));
                }
                self.deadlines.remove(&(*id, *attempt));
                self.canceled.push((*id, *attempt));
            }
            Effect::DialExpired { id, attempt } => {
                let Some(at) = self.deadlines.remove(&(*id, *attempt)) else {
                    return Err(format!("expired dial {id}/{attempt} that has no deadline"));
                };
                if at > self.now {
                    return Err(format!("dial {id}/{attempt} expired before its deadline"));
                }
                let before = self.dials.len();
                self.dials.retain(|(i, a, _)| !(i == id && a == attempt));
                if self.dials.len() == before {
                    return Err(format!(
                        "expired dial {id}/{attempt} that was not in flight"
                    ));
                }
                // Its dialer may still answer: that answer must be closed.
                self.canceled.push((*id, *attempt));
            }
            Effect::Established {
                req,
                id,
                serial,
                addr,
                direction,
                ..
            } => self.established(req.as_ref(), *id, *serial, addr, *direction)?,
            Effect::Close { serial } => self.close(*serial, why)?,
            Effect::Notify(CoreEvent::Disconnected { reason, .. }) => {
                self.closed += 1;
                self.check_close_reason(*reason)?;
            }
            Effect::Notify(CoreEvent::InboundClosed { reason, .. }) => {
                self.closed += 1;
                self.check_close_reason(*reason)?;
            }
            Effect::SaveAnchors(addrs) => {
                if addrs.len() > self.cfg.anchor_count {
                    return Err(format!(
                        "{} anchors saved, at most {}",
                        addrs.len(),
                        self.cfg.anchor_count
                    ));
                }
                self.anchors = addrs.clone();
            }
            Effect::SaveBans(list) => self.saved_bans = Some(list.clone()),
            // Comes after the closes it reports.
            Effect::TrimDone { closed } => {
                if let Some(id) = closed.iter().find(|id| self.live.contains_key(id)) {
                    return Err(format!("trim reported {id} closed, but it is live"));
                }
                if closed.len() != self.policy_closed {
                    return Err(format!(
                        "trim reported {} closed, {} were",
                        closed.len(),
                        self.policy_closed
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn established(
        &mut self,
        req: Option<&connmgr::core::ReqSpec>,
        id: ConnId,
        serial: u64,
        addr: &Addr,
        direction: Direction,
    ) -> Result<(), String> {
        if self.is_banned(addr) && !self.noban(addr) {
            return Err(format!("banned {addr} established as {id}"));
        }
        if !self.serials.insert(serial) || self.live.contains_key(&id) {
            return Err(format!("{id}: serial {serial} or id reused"));
        }
        if direction == Direction::Inbound && !self.ids.insert(id) {
            return Err(format!("inbound got an id already used: {id}"));
        }
        self.connected += 1;
        let live = Live {
            serial,
            addr: addr.clone(),
            direction,
            opened: self.now,
            permanent: req.is_some_and(|r| r.permanent),
            conn_type: req.map_or(ConnType::Inbound, |r| r.conn_type),
            permissions: self.perms(id),
        };
        self.live.insert(id, live);
        Ok(())
    }

    fn close(&mut self, serial: u64, why: &Explained) -> Result<(), String> {
        let Some((&id, live)) = self.live.iter().find(|(_, l)| l.serial == serial) else {
            return Err(format!("Close of serial {serial}, which is not live"));
        };
        let live = live.clone();
        self.live.remove(&id);
        // Feelers and one-shot connections close at their timeout, never
        // before; the close reason that follows is checked against this.
        let lifetime = match live.conn_type {
            ConnType::Feeler => Some(self.cfg.feeler_timeout),
            ConnType::OneShot => Some(self.cfg.one_shot_timeout),
            _ => None,
        };
        let age = self.now.saturating_duration_since(live.opened);
        self.last_closed = Some((live.clone(), age, lifetime));
        let in_subnet = live
            .addr
            .ip()
            .is_some_and(|ip| why.subnets.iter().any(|s| s.contains(ip)));
        if why.all || why.ids.contains(&id) || in_subnet {
            return Ok(());
        }
        if why.lifetimes && lifetime.is_some_and(|limit| age >= limit) {
            return Ok(());
        }
        // Closed by trimming or eviction: never a protected or permanent one.
        let peer = self.peer_of(id, &live.addr);
        let kept = live.permissions.contains(Permissions::NO_EVICT);
        if live.permanent || kept || self.protected.contains_key(&peer) {
            return Err(format!(
                "policy closed protected {id} ({peer}, permanent {})",
                live.permanent
            ));
        }
        self.policy_closed += 1;
        if self.now.saturating_duration_since(live.opened) < self.cfg.trim_grace {
            self.policy_closed_in_grace += 1;
        }
        Ok(())
    }

    fn check_state(&self, trims_before: u64) -> Result<(), String> {
        let of = |t: ConnType| self.live.values().filter(|l| l.conn_type == t).count();
        let (full, block, feelers) = (
            of(ConnType::FullRelay),
            of(ConnType::BlockRelay),
            of(ConnType::Feeler),
        );
        for net in Network::ALL {
            let on = self
                .live
                .values()
                .filter(|l| l.conn_type.is_automatic() && Network::of(&l.addr) == Some(net))
                .count();
            if self.cfg.networks.max(net).is_some_and(|max| on > max) {
                return Err(format!(
                    "{on} automatic connections on {net}, above its maximum"
                ));
            }
            if on > 0 && !self.cfg.networks.allows(Some(net)) {
                return Err(format!(
                    "{on} automatic connections on {net}, which is not allowed"
                ));
            }
        }
        let targets = self.cfg.target_outbound + self.cfg.target_block_relay;
        if full > self.cfg.target_outbound
            || block > self.cfg.target_block_relay
            || feelers > 1
            || self.core.automatic_slots() > targets
        {
            return Err(format!(
                "{full} full-relay, {block} block-relay, {feelers} feelers live, {} slots, \
                 targets {} and {}",
                self.core.automatic_slots(),
                self.cfg.target_outbound,
                self.cfg.target_block_relay
            ));
        }
        let inbound = self
            .live
            .values()
            .filter(|l| l.direction == Direction::Inbound)
            .count();
        // Force-inbound peers may go past the limit by the margin.
        let max = self.cfg.max_inbound + self.cfg.force_inbound_margin;
        if inbound > max || self.core.inbound_count() != inbound {
            return Err(format!(
                "{inbound} inbound live (Core {}), max {}",
                self.core.inbound_count(),
                self.cfg.max_inbound
            ));
        }
        if let Some(cap) = self.cfg.max_inbound_per_ip {
            let mut per_ip: HashMap<IpAddr, usize> = HashMap::new();
            // Force-inbound peers are not held back by the cap.
            let capped = |l: &&Live| {
                l.direction == Direction::Inbound
                    && !l.permissions.contains(Permissions::FORCE_INBOUND)
            };
            for l in self.live.values().filter(capped) {
                if let Some(ip) = l.addr.ip() {
                    *per_ip.entry(ip.to_canonical()).or_default() += 1;
                }
            }
            if let Some((ip, n)) = per_ip.into_iter().find(|(_, n)| *n > cap) {
                return Err(format!("{n} inbound live from {ip}, cap {cap}"));
            }
        }
        if self.core.connection_count() != self.live.len() {
            return Err(format!(
                "Core counts {} connections, {} live",
                self.core.connection_count(),
                self.live.len()
            ));
        }
        if self.core.stats().trims > trims_before {
            self.check_trim()?;
        }
        Ok(())
    }

    /// After a trim, at most `low` trimmable connections are left (the
    /// low watermark counts only connections that are neither protected,
    /// permanent nor in grace); the others are checked where they close.
    fn check_trim(&self) -> Result<(), String> {
        let Some((low, _)) = self.cfg.watermarks else {
            return Err("a trim ran without watermarks".into());
        };
        let trimmable = self
            .live
            .iter()
            .filter(|(id, l)| {
                let in_grace = self.now.saturating_duration_since(l.opened) < self.cfg.trim_grace;
                let protected = self.protected.contains_key(&self.peer_of(**id, &l.addr));
                let kept = l.permissions.contains(Permissions::NO_EVICT);
                !(in_grace || protected || l.permanent || kept)
            })
            .count();
        if trimmable > low {
            return Err(format!(
                "trim left {trimmable} trimmable of {} > low {low}",
                self.live.len()
            ));
        }
        // A trim that closed anything stops exactly at the low watermark of
        // trimmable connections, and never closes one still in grace.
        if self.policy_closed > 0 && trimmable != low {
            return Err(format!(
                "trim closed {} and left {trimmable} trimmable, not low {low}",
                self.policy_closed
            ));
        }
        if self.policy_closed_in_grace > 0 {
            return Err(format!(
                "trim closed {} connections still in grace",
                self.policy_closed_in_grace
            ));
        }
        Ok(())
    }
}
