//! Peer policy driven at Core level with made-up time: tags, protection,
//! peer ids, trimming, bans, ban scores, reports and eviction, loaded bans
//! and anchors. No threads, no sockets.

use std::time::{Duration, Instant};

use connmgr::core::{Changes, Core, CoreConfig, Effect, Input, PeerReport, TagChange};
use connmgr::policy::BanList;
use connmgr::{Addr, ConnId, ConnType, DialError, PeerId, Subnet};

const SEC: Duration = Duration::from_secs(1);

fn addr(s: &str) -> Addr {
    s.parse().unwrap()
}

/// A started Core, a clock, and payload tokens.
struct Node {
    core: Core,
    now: Instant,
    token: u32,
}

impl Node {
    fn new(f: impl FnOnce(&mut CoreConfig)) -> Node {
        let mut cfg = CoreConfig::default();
        f(&mut cfg);
        let mut n = Node {
            core: Core::new(cfg),
            now: Instant::now(),
            token: 0,
        };
        n.step(Input::Start);
        n
    }

    fn step(&mut self, input: Input<u32>) -> Vec<Effect<u32>> {
        self.core.handle(self.now, input)
    }

    /// Dials `a` and lets the dial succeed; the id and serial.
    fn outbound(&mut self, a: &str, permanent: bool) -> (ConnId, u64) {
        let req = self.core.request(addr(a), permanent);
        let id = req.id;
        let attempt = match self.step(Input::Connect(req)).as_slice() {
            [Effect::Dial { attempt, .. }] => *attempt,
            other => panic!("expected one dial: {other:?}"),
        };
        self.token += 1;
        let conn = self.token;
        let serial = established(&self.step(Input::DialSucceeded {
            id,
            attempt,
            conn,
            remote: None,
        }));
        (id, serial)
    }

    /// Accepts a connection from `a`; its id, or `None` if refused.
    fn inbound(&mut self, a: &str) -> Option<ConnId> {
        self.token += 1;
        let conn = self.token;
        let out = self.step(Input::Accepted {
            conn,
            remote: addr(a),
        });
        out.iter().find_map(|e| match e {
            Effect::Established { id, .. } => Some(*id),
            _ => None,
        })
    }

    fn tag(&mut self, peer: &str, change: TagChange) -> Vec<Effect<u32>> {
        self.step(Input::Tag {
            peer: PeerId::from(peer),
            change,
        })
    }
}

fn established(out: &[Effect<u32>]) -> u64 {
    out.iter()
        .find_map(|e| match e {
            Effect::Established { serial, .. } => Some(*serial),
            _ => None,
        })
        .unwrap_or_else(|| panic!("not established: {out:?}"))
}

fn closed(out: &[Effect<u32>]) -> Vec<u64> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Close { serial } => Some(*serial),
            _ => None,
        })
        .collect()
}

fn trim_config(low: usize, high: usize, grace: Duration) -> impl FnOnce(&mut CoreConfig) {
    move |c| {
        c.watermarks = Some((low, high));
        c.trim_grace = grace;
        c.trim_silence = SEC;
    }
}

/// The lowest-valued connection goes first; tags follow the peer id set
/// with `SetPeer`, not the address.
#[test]
fn trim_closes_lowest_value_first_by_peer_id() {
    let mut n = Node::new(trim_config(2, 3, Duration::ZERO));
    let (a, sa) = n.outbound("203.0.113.1:8333", false);
    let (_, sb) = n.outbound("203.0.113.2:8333", false);
    let (c, sc) = n.outbound("203.0.113.3:8333", false);
    n.step(Input::SetPeer {
        id: c,
        peer: "node-c".into(),
    });
    n.step(Input::SetPeer {
        id: a,
        peer: "node-a".into(),
    });
    n.tag("node-a", TagChange::Set("useful".into(), 50));
    n.tag("node-c", TagChange::Set("useful".into(), 10));
    n.now += 2 * SEC;
    let out = n.step(Input::Trim);
    assert_eq!(closed(&out), vec![sb], "the untagged peer goes first");
    let out = n.step(Input::Trim);
    assert!(closed(&out).is_empty(), "at the low watermark: {out:?}");
    let info = n.core.tag_info(&"node-c".into()).unwrap();
    assert_eq!(info.value, 10);
    assert_eq!(info.conns.len(), 1);
    let _ = (sa, sc);
}

/// A peer's first tag finds every live connection it has, whether they
/// opened before any tag (the first tag builds the index), after it, or
/// moved to the peer with `SetPeer`; closed connections drop out.
#[test]
fn first_tag_finds_the_peers_connections() {
    let mut n = Node::new(|_| {});
    let (a, sa) = n.outbound("203.0.113.1:8333", false);
    let (b, _) = n.outbound("203.0.113.2:8333", false);
    let (_c, _) = n.outbound("203.0.113.3:8333", false);
    for id in [a, b] {
        n.step(Input::SetPeer {
            id,
            peer: "node-x".into(),
        });
    }
    let conns = |n: &Node, peer: &str| -> Vec<u64> {
        let info = n.core.tag_info(&peer.into());
        info.map_or(Vec::new(), |i| i.conns.iter().map(|c| c.0).collect())
    };
    n.tag("node-x", TagChange::Set("t".into(), 1));
    assert_eq!(conns(&n, "node-x"), vec![a.0, b.0]);
    n.tag("203.0.113.3:8333", TagChange::Set("t".into(), 1));
    assert_eq!(conns(&n, "203.0.113.3:8333").len(), 1);
    // Opened after the index exists, first tagged later.
    let (d, _) = n.outbound("203.0.113.4:8333", false);
    n.tag("203.0.113.4:8333", TagChange::Set("t".into(), 1));
    assert_eq!(conns(&n, "203.0.113.4:8333"), vec![d.0]);
    // Moved to a peer nobody tagged yet, then tagged.
    n.step(Input::SetPeer {
        id: b,
        peer: "node-y".into(),
    });
    n.tag("node-y", TagChange::Set("t".into(), 1));
    assert_eq!(conns(&n, "node-y"), vec![b.0]);
    assert_eq!(conns(&n, "node-x"), vec![a.0]);
    // Closed: a later first tag of a peer finds nothing.
    n.step(Input::Closed { id: a, serial: sa });
    n.step(Input::SetPeer {
        id: d,
        peer: "node-z".into(),
    });
    n.tag("node-x", TagChange::Set("u".into(), 1));
    assert!(conns(&n, "node-x").is_empty());
    n.tag("node-z", TagChange::Set("u".into(), 1));
    assert_eq!(conns(&n, "node-z"), vec![d.0]);
    assert!(conns(&n, "203.0.113.4:8333").is_empty());
}

/// A protected peer is never trimmed, and protection outlives its
/// connection; `Unprotect` of a peer with no connection forgets it.
#[test]
fn protection_keeps_a_peer_through_trims_and_disconnects() {
    let mut n = Node::new(trim_config(0, 1, Duration::ZERO));
    n.tag("203.0.113.1:8333", TagChange::Protect("sync".into()));
    let (a, sa) = n.outbound("203.0.113.1:8333", false);
    let (_, sb) = n.outbound("203.0.113.2:8333", false);
    assert_eq!(
        closed(&n.step(Input::Trim)),
        Vec::<u64>::new(),
        "the automatic trim already closed the unprotected one"
    );
    n.now += 2 * SEC;
    let out = n.step(Input::Trim);
    assert!(
        !closed(&out).contains(&sa),
        "protected peer trimmed: {out:?}"
    );
    assert!(n.core.state(a).is_some());
    let _ = sb;
    let peer = PeerId::from("203.0.113.1:8333");
    n.tag("203.0.113.1:8333", TagChange::Set("t".into(), 1));
    n.step(Input::Closed { id: a, serial: sa });
    assert!(n.core.is_protected(&peer, None));
    assert!(n.core.tag_info(&peer).is_some(), "kept while protected");
    n.tag("203.0.113.1:8333", TagChange::Unprotect("sync".into()));
    assert!(
        n.core.tag_info(&peer).is_none(),
        "forgotten once unprotected"
    );
    assert_eq!(n.core.tagged_peers(), 0);
}

/// An explicit trim always answers with what it closed (nothing at or
/// below the low watermark), ignores the silence period, and records when
/// it ran and how many it closed.
#[test]
fn explicit_trim_reports_what_it_closed() {
    let mut n = Node::new(trim_config(1, 10, Duration::ZERO));
    let mut ids = Vec::new();
    for i in 1..=3 {
        ids.push(n.outbound(&format!("203.0.113.{i}:8333"), false).0);
    }
    let done = |out: &[Effect<u32>]| {
        out.iter()
            .find_map(|e| match e {
                Effect::TrimDone { closed } => Some(closed.clone()),
                _ => None,
            })
            .expect("an explicit trim answers")
    };
    let out = n.step(Input::Trim);
    let first = done(&out);
    assert_eq!(first.len(), 2);
    assert_eq!(closed(&out).len(), 2);
    assert!(first
        .iter()
        .all(|id| ids.contains(id) && n.core.state(*id) != Some(connmgr::ConnState::Established)));
    let stats = n.core.stats();
    assert_eq!(
        (stats.trims, stats.last_trim_closed, stats.last_trim),
        (1, 2, Some(n.now))
    );
    // Within the silence period, and at the low watermark: nothing.
    assert!(done(&n.step(Input::Trim)).is_empty());
    n.outbound("203.0.113.9:8333", false);
    assert_eq!(
        done(&n.step(Input::Trim)).len(),
        1,
        "the silence held off an explicit trim"
    );
}

/// A trim never closes established connections to make room for ones
/// still in their grace period.
#[test]
fn trim_spares_connections_in_grace() {
    let mut n = Node::new(trim_config(1, 2, 60 * SEC));
    let (_, s1) = n.outbound("203.0.113.1:8333", false);
    n.now += 120 * SEC;
    let (_, s2) = n.outbound("203.0.113.2:8333", false);
    let (_, s3) = n.outbound("203.0.113.3:8333", false);
    n.now += 2 * SEC;
    // Three connections, above the high watermark, but only one is out of
    // grace: closing it would hand its slot to the newcomers.
    let out = n.step(Input::Trim);
    assert!(closed(&out).is_empty(), "{out:?}");
    assert_eq!(n.core.connection_count(), 3);
    // Once the newcomers settle, the trim goes down to the low watermark.
    n.now += 60 * SEC;
    let out = n.step(Input::Trim);
    assert_eq!(closed(&out).len(), 2, "{out:?}");
    let _ = (s1, s2, s3);
}

/// A peer's first-seen time is the earliest of its first tag and its
/// first connection, whichever came first.
#[test]
fn first_seen_is_the_earliest_of_tag_and_connection() {
    let mut n = Node::new(|_| {});
    let t0 = n.now;
    n.outbound("203.0.113.1:8333", false);
    n.now += 30 * SEC;
    n.tag("203.0.113.1:8333", TagChange::Set("t".into(), 1));
    let info = n.core.tag_info(&"203.0.113.1:8333".into()).unwrap();
    assert_eq!(info.first_seen, t0, "connected before the first tag");

    n.tag("203.0.113.2:8333", TagChange::Set("t".into(), 1));
    n.now += 30 * SEC;
    n.outbound("203.0.113.2:8333", false);
    let info = n.core.tag_info(&"203.0.113.2:8333".into()).unwrap();
    assert_eq!(info.first_seen, t0 + 30 * SEC, "tagged before connecting");
}

/// A ban closes live connections in the subnet, fails dials to it and
/// refuses inbound from it; unban lifts all three.
#[test]
fn ban_closes_refuses_and_unban_lifts() {
    let mut n = Node::new(|_| {});
    let (_, s) = n.outbound("203.0.113.7:8333", false);
    let net: Subnet = "203.0.113.0/24".parse().unwrap();
    let out = n.step(Input::Ban {
        subnet: net,
        duration: 60 * SEC,
        reason: "test".into(),
    });
    assert_eq!(closed(&out), vec![s]);
    assert!(out.iter().any(|e| matches!(e, Effect::SaveBans(_))));
    let req = n.core.request(addr("203.0.113.9:8333"), false);
    let out = n.step(Input::Connect(req));
    assert!(
        out.iter().any(|e| matches!(
            e,
            Effect::Notify(connmgr::core::CoreEvent::DialFailed {
                error: DialError::Rejected(_),
                ..
            })
        )),
        "{out:?}"
    );
    assert_eq!(n.inbound("203.0.113.10:5000"), None);
    n.step(Input::Unban(net));
    assert!(n.inbound("203.0.113.10:5000").is_some());
    assert!(n.core.bans(n.now).is_empty());
}

/// A ban of any length, `Duration::MAX` included, saturates instead of
/// overflowing time.
#[test]
fn huge_ban_durations_saturate() {
    let mut n = Node::new(|_| {});
    let subnet = Subnet::host("198.51.100.1".parse().unwrap());
    n.step(Input::Ban {
        subnet,
        duration: Duration::MAX,
        reason: "forever".into(),
    });
    n.now += Duration::from_secs(10 * 365 * 24 * 3600);
    assert_eq!(n.core.bans(n.now).len(), 1);
}

/// Misbehaviour accumulates; at the threshold the peer's address is banned
/// and its connection closed.
#[test]
fn misbehaviour_bans_at_the_threshold() {
    let mut n = Node::new(|c| c.ban_threshold = 100);
    let id = n.inbound("192.0.2.5:4000").unwrap();
    let mis = |p| Input::Misbehaving {
        id,
        persistent: p,
        transient: 0,
        reason: "bad".into(),
    };
    assert!(closed(&n.step(mis(60))).is_empty());
    let out = n.step(mis(40));
    assert_eq!(closed(&out).len(), 1);
    let bans = n.core.bans(n.now);
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].subnet, Subnet::host("192.0.2.5".parse().unwrap()));
    assert_eq!(n.inbound("192.0.2.5:4001"), None);
}

/// With eviction on, a full house makes room by Bitcoin Core's rules:
/// reported-useful and protected peers stay.
#[test]
fn eviction_spares_useful_and_protected_peers() {
    let mut n = Node::new(|c| {
        c.max_inbound = 24;
        c.evict_inbound = true;
    });
    let mut ids = Vec::new();
    for i in 0..24 {
        ids.push(n.inbound(&format!("{}.{}.7.1:4000", 11 + i, i)).unwrap());
        n.now += SEC;
    }
    for id in &ids[..8] {
        n.step(Input::Report {
            id: *id,
            report: PeerReport::Ping(Duration::from_millis(5)),
        });
    }
    n.tag("34.23.7.1:4000", TagChange::Protect("keep".into()));
    let newcomer = n.inbound("99.1.2.3:4000");
    assert!(newcomer.is_some(), "eviction made no room");
    assert_eq!(n.core.inbound_count(), 24);
    assert_eq!(n.core.stats().evicted, 1);
    for id in &ids[..8] {
        assert!(n.core.state(*id).is_some(), "a fast-ping peer was evicted");
    }
    assert!(
        n.core.state(ids[23]).is_some(),
        "the protected peer was evicted"
    );
}

/// Bans loaded at start hold; anchors are dialed before the source is
/// asked, as block-relay-only connections (Bitcoin Core's anchors).
#[test]
fn loaded_bans_and_anchors_come_first() {
    let mut cfg = CoreConfig::default();
    cfg.has_address_source = true;
    cfg.target_outbound = 2;
    cfg.target_block_relay = 1;
    let mut core = Core::new(cfg);
    let now = Instant::now();
    let mut list = BanList::new();
    list.ban(
        Subnet::host("198.51.100.9".parse().unwrap()),
        now + 60 * SEC,
        "old".into(),
    );
    core.handle::<u32>(now, Input::LoadBans(list));
    core.handle::<u32>(now, Input::Anchors(vec![addr("203.0.113.1:8333")]));
    let out = core.handle::<u32>(now, Input::Start);
    let dials: Vec<(ConnId, &Addr)> = out
        .iter()
        .filter_map(|e| match e {
            Effect::Dial { id, addr, .. } => Some((*id, addr)),
            _ => None,
        })
        .collect();
    assert_eq!(dials.len(), 1, "{out:?}");
    assert_eq!(dials[0].1, &addr("203.0.113.1:8333"));
    let anchor = core.conn_info(dials[0].0).unwrap();
    assert_eq!(anchor.conn_type, ConnType::BlockRelay);
    assert!(anchor.block_relay_only);
    let fetches: Vec<ConnType> = out
        .iter()
        .filter_map(|e| match e {
            Effect::FetchAddress { id } => Some(core.conn_info(*id).unwrap().conn_type),
            _ => None,
        })
        .collect();
    assert_eq!(
        fetches,
        vec![ConnType::FullRelay; 2],
        "the full-relay slots ask the source"
    );
    assert_eq!(core.bans(now).len(), 1);
    let mut changes = Changes::default();
    core.take_changes(&mut changes);
    assert_eq!(
        changes.bans.map(|b| b.len()),
        Some(1),
        "loaded bans are published"
    );
}

/// A panicking tag function leaves the value as it was and the Core
/// running.
#[test]
fn panicking_tag_function_changes_nothing() {
    let mut n = Node::new(|_| {});
    n.tag("p", TagChange::Set("t".into(), 4));
    n.tag(
        "p",
        TagChange::Update("t".into(), Box::new(|_| panic!("user bug"))),
    );
    assert_eq!(n.core.tag_info(&"p".into()).unwrap().tags["t"], 4);
    n.tag("p", TagChange::Update("t".into(), Box::new(|v| v * 2)));
    assert_eq!(n.core.tag_info(&"p".into()).unwrap().tags["t"], 8);
}

/// The peer book is bounded: tags on new peers without a connection push
/// out the oldest such peer; protections beyond the bound are refused.
/// Connected peers always get their tags.
#[test]
fn peer_book_is_bounded() {
    let mut n = Node::new(|c| c.max_peers = 3);
    for i in 0..5 {
        n.tag(&format!("idle-{i}"), TagChange::Set("t".into(), 1));
        n.now += SEC;
    }
    assert_eq!(n.core.tagged_peers(), 3);
    assert!(n.core.tag_info(&"idle-0".into()).is_none(), "oldest kept");
    assert!(
        n.core.tag_info(&"idle-4".into()).is_some(),
        "newest dropped"
    );

    for i in 0..4 {
        n.tag(&format!("keep-{i}"), TagChange::Protect("p".into()));
    }
    assert!(n.core.is_protected(&"keep-2".into(), None));
    assert!(
        !n.core.is_protected(&"keep-3".into(), None),
        "over the bound"
    );
    assert_eq!(n.core.stats().peers_refused, 1);

    // A connected peer's first tag is never refused or pushed out.
    n.outbound("203.0.113.1:8333", false);
    n.tag("203.0.113.1:8333", TagChange::Set("t".into(), 5));
    assert_eq!(
        n.core.tag_info(&"203.0.113.1:8333".into()).unwrap().value,
        5
    );

    // Fifty thousand distinct idle peers leave the book at its bound.
    let mut big = Node::new(|_| {});
    for i in 0..50_000 {
        big.tag(&format!("p{i}"), TagChange::Set("t".into(), 1));
    }
    assert_eq!(big.core.tagged_peers(), CoreConfig::default().max_peers);
}

/// A peer tagged but never connected is forgotten by a timer after the
/// idle time; a connected or protected one is not.
#[test]
fn idle_tagged_peers_are_pruned_on_a_timer() {
    let mut n = Node::new(|c| c.idle_peer_ttl = 60 * SEC);
    let t0 = n.now;
    n.tag("idle", TagChange::Set("t".into(), 1));
    n.tag("guarded", TagChange::Set("t".into(), 1));
    n.tag("guarded", TagChange::Protect("p".into()));
    n.outbound("203.0.113.1:8333", false);
    n.tag("203.0.113.1:8333", TagChange::Set("t".into(), 1));
    assert_eq!(n.core.next_deadline(), Some(t0 + 60 * SEC));
    n.now = t0 + 59 * SEC;
    n.step(Input::Tick);
    assert!(n.core.tag_info(&"idle".into()).is_some(), "pruned early");
    n.now = t0 + 60 * SEC;
    n.step(Input::Tick);
    assert!(n.core.tag_info(&"idle".into()).is_none(), "never pruned");
    assert!(n.core.tag_info(&"guarded".into()).is_some());
    assert!(n.core.tag_info(&"203.0.113.1:8333".into()).is_some());
    let mut changes = Changes::default();
    n.core.take_changes(&mut changes);
    assert!(
        changes
            .peers
            .iter()
            .any(|p| p.peer.as_str() == "idle" && p.info.is_none()),
        "the prune was not published"
    );
}

fn banned(n: &Node) -> Vec<String> {
    n.core
        .bans(n.now)
        .iter()
        .map(|b| b.subnet.to_string())
        .collect()
}

/// The ban list is bounded: at `max_bans`, a new ban drops expired ones
/// first, then the one that ends soonest.
#[test]
fn ban_list_is_bounded() {
    let mut n = Node::new(|c| c.max_bans = 3);
    let ban = |n: &mut Node, host: u8, secs: u64| {
        n.step(Input::Ban {
            subnet: Subnet::host(std::net::IpAddr::from([198, 51, 100, host])),
            duration: Duration::from_secs(secs),
            reason: "test".into(),
        });
    };
    ban(&mut n, 1, 100);
    ban(&mut n, 2, 10);
    ban(&mut n, 3, 1000);
    ban(&mut n, 4, 500);
    let hosts = banned(&n);
    assert_eq!(hosts.len(), 3);
    assert!(
        !hosts.iter().any(|h| h.starts_with("198.51.100.2")),
        "{hosts:?}"
    );
    // Expired bans go before any in force.
    n.now += 200 * SEC;
    ban(&mut n, 5, 50);
    let hosts = banned(&n);
    assert_eq!(hosts.len(), 3, "{hosts:?}");
    assert!(hosts.iter().any(|h| h.starts_with("198.51.100.3")));
    assert!(hosts.iter().any(|h| h.starts_with("198.51.100.4")));
    assert!(hosts.iter().any(|h| h.starts_with("198.51.100.5")));
}

/// The Core owns dial deadlines: a dial still in flight at its deadline
/// is expired and reported as timed out (a permanent request then
/// retries), never earlier; a success that arrives afterwards is closed.
#[test]
fn dials_expire_at_their_deadline_and_late_results_are_closed() {
    let mut n = Node::new(|c| c.dial_timeout = Some(2 * SEC));
    let req = n.core.request(addr("10.0.0.1:8333"), true);
    let id = req.id;
    let (attempt, deadline) = match n.step(Input::Connect(req)).as_slice() {
        [Effect::Dial {
            attempt, deadline, ..
        }] => (*attempt, *deadline),
        other => panic!("expected one dial: {other:?}"),
    };
    assert_eq!(deadline, Some(n.now + 2 * SEC));
    assert_eq!(n.core.next_deadline(), deadline);

    n.now += 2 * SEC - Duration::from_millis(1);
    assert!(n.step(Input::Tick).is_empty(), "expired early");

    n.now += Duration::from_millis(1);
    let out = n.step(Input::Tick);
    assert!(
        matches!(out.first(), Some(Effect::DialExpired { id: i, attempt: a }) if *i == id && *a == attempt),
        "{out:?}"
    );
    assert!(out.iter().any(|e| matches!(
        e,
        Effect::Notify(connmgr::core::CoreEvent::DialFailed {
            error: DialError::TimedOut,
            retry_in: Some(_),
            ..
        })
    )));

    let late = n.step(Input::DialSucceeded {
        id,
        attempt,
        conn: 7,
        remote: None,
    });
    assert!(
        matches!(late.as_slice(), [Effect::Discard { conn: 7 }]),
        "{late:?}"
    );
    assert_eq!(n.core.connection_count(), 0);
    assert_eq!(n.core.state(id), Some(connmgr::ConnState::Failing));
}

/// Dials that end before their deadline leave no wake-up behind, however
/// many there were.
#[test]
fn ended_dials_leave_no_deadlines() {
    let mut n = Node::new(|c| c.dial_timeout = Some(10 * SEC));
    for i in 0..1_000u32 {
        let (id, _) = n.outbound(&format!("10.0.{}.{}:8333", i / 250, i % 250 + 1), false);
        n.step(Input::Teardown {
            id,
            mode: connmgr::core::Teardown::Remove,
        });
    }
    assert_eq!(n.core.next_deadline(), None);
    assert_eq!(n.core.queued_timers(), 0);
}

/// Decaying tags registered and closed at Core level: each registration's
/// outcome is reported once, and closing a tag removes every peer's value
/// (a peer left with nothing is forgotten).
#[test]
fn decaying_tags_register_and_close() {
    use connmgr::core::DecayingSpec;
    use connmgr::{BumpFn, DecayFn, TagError};
    let spec = |name: &str| DecayingSpec {
        name: name.into(),
        interval: SEC,
        decay: DecayFn::fixed(1),
        bump: BumpFn::sum(),
    };
    let mut n = Node::new(|_| {});
    assert_eq!(n.core.take_registration(), None);
    n.step(Input::RegisterDecaying(spec("d")));
    assert_eq!(n.core.take_registration(), Some(Ok(())));
    assert_eq!(n.core.take_registration(), None, "reported once");
    n.step(Input::RegisterDecaying(spec("d")));
    assert_eq!(
        n.core.take_registration(),
        Some(Err(TagError::DuplicateDecayingTag("d".into())))
    );
    n.tag("p1", TagChange::Bump("d".into(), 5));
    n.tag("p2", TagChange::Bump("d".into(), 6));
    n.tag("p2", TagChange::Set("plain".into(), 2));
    n.step(Input::UnregisterDecaying("d".into()));
    assert!(!n.core.has_decaying("d"));
    assert_eq!(
        n.core.tag_info(&"p1".into()),
        None,
        "nothing left: forgotten"
    );
    let p2 = n.core.tag_info(&"p2".into()).unwrap();
    assert_eq!((p2.value, p2.tags.len()), (2, 1));
    let mut changes = Changes::default();
    n.core.take_changes(&mut changes);
    assert!(
        changes
            .decaying
            .as_ref()
            .is_some_and(|names| names.is_empty()),
        "{:?}",
        changes.decaying
    );
}

/// Every close says why, in its event and in the per-reason counts.
#[test]
fn every_close_carries_its_reason() {
    use connmgr::core::{CoreEvent, Teardown};
    use connmgr::CloseReason;
    let reason = |out: &[Effect<u32>]| {
        out.iter()
            .find_map(|e| match e {
                Effect::Notify(CoreEvent::Disconnected { reason, .. })
                | Effect::Notify(CoreEvent::InboundClosed { reason, .. }) => Some(*reason),
                _ => None,
            })
            .expect("a close event")
    };
    let mut n = Node::new(trim_config(0, 10, Duration::ZERO));
    let teardown = |mode| move |id| Input::Teardown { id, mode };
    for (mode, want) in [
        (Teardown::Disconnect, CloseReason::Disconnect),
        (Teardown::Reconnect, CloseReason::Reconnect),
        (Teardown::Remove, CloseReason::Removed),
    ] {
        let (id, _) = n.outbound("203.0.113.1:8333", false);
        assert_eq!(reason(&n.step(teardown(mode)(id))), want);
        let _ = n.step(Input::Teardown {
            id,
            mode: Teardown::Remove,
        });
    }
    let (id, serial) = n.outbound("203.0.113.2:8333", false);
    assert_eq!(
        reason(&n.step(Input::Closed { id, serial })),
        CloseReason::Closed
    );
    n.outbound("203.0.113.3:8333", false);
    n.now += SEC;
    assert_eq!(reason(&n.step(Input::Trim)), CloseReason::Trimmed);
    n.outbound("203.0.113.4:8333", false);
    let ban = Input::Ban {
        subnet: "203.0.113.4/32".parse().unwrap(),
        duration: 60 * SEC,
        reason: "test".into(),
    };
    assert_eq!(reason(&n.step(ban)), CloseReason::Banned);
    let (id, _) = n.outbound("203.0.113.5:8333", false);
    let bad = Input::Misbehaving {
        id,
        persistent: 100,
        transient: 0,
        reason: "invalid block".into(),
    };
    assert_eq!(reason(&n.step(bad)), CloseReason::Misbehaving);
    n.inbound("198.51.100.1:1000");
    let stop = Input::Stop {
        close_established: true,
    };
    assert_eq!(reason(&n.step(stop)), CloseReason::Stopped);
    let c = n.core.stats().closes;
    assert_eq!(
        (c.disconnect, c.reconnect, c.removed, c.closed, c.trimmed),
        (1, 1, 1, 1, 1)
    );
    assert_eq!(
        (c.banned, c.misbehaving, c.stopped, c.evicted),
        (1, 1, 1, 0)
    );
    assert_eq!(n.core.stats().trimmed, 1);
}

/// An automatic request never dials a peer that already has a connection
/// or a dial in flight (by IP for routable addresses, by socket address on
/// loopback); explicit requests may.
#[test]
fn automatic_requests_skip_peers_already_in_use() {
    let mut n = Node::new(|c| {
        c.has_address_source = true;
        c.target_outbound = 2;
        c.target_block_relay = 0;
    });
    // Start asked the source for both automatic slots.
    let mut fetches: Vec<ConnId> = n.core.ids().collect();
    fetches.sort();
    let [a, b] = fetches[..] else {
        panic!("{fetches:?}")
    };
    let found = |n: &mut Node, id, s: &str| {
        n.step(Input::AddressFound {
            id,
            addr: Some(addr(s)),
        })
    };
    let dials = |out: &[Effect<u32>]| {
        out.iter()
            .filter(|e| matches!(e, Effect::Dial { .. }))
            .count()
    };
    assert_eq!(dials(&found(&mut n, a, "10.0.0.1:8333")), 1);
    // Same host, another port: skipped, the source is asked again.
    let out = found(&mut n, b, "10.0.0.1:9999");
    assert_eq!(dials(&out), 0);
    assert!(
        matches!(out.as_slice(), [Effect::FetchAddress { id }] if *id == b),
        "{out:?}"
    );
    // A peer connected inbound counts too.
    n.inbound("10.0.0.7:5000");
    assert_eq!(dials(&found(&mut n, b, "10.0.0.7:8333")), 0);
    // On loopback, another port is another node.
    assert_eq!(dials(&found(&mut n, b, "127.0.0.1:18444")), 1);
    // An explicit request may dial a peer in use.
    let req = n.core.request(addr("10.0.0.1:8333"), false);
    assert_eq!(dials(&n.step(Input::Connect(req))), 1);
}

/// An automatic connection the peer drops before it was stable is
/// replaced only after the retry duration (peers that accept and drop at
/// once cannot make the slot dial as fast as they answer); one that was
/// stable is replaced at once.
#[test]
fn unstable_automatic_closes_refill_after_the_retry_duration() {
    let mut n = Node::new(|c| {
        c.has_address_source = true;
        c.target_outbound = 1;
        c.retry_duration = 5 * SEC;
        c.min_stable_duration = 30 * SEC;
    });
    let fetched =
        |out: &[Effect<u32>]| out.iter().any(|e| matches!(e, Effect::FetchAddress { .. }));
    let connect = |n: &mut Node| -> (ConnId, u64) {
        let id = n.core.ids().next().expect("an automatic request");
        let out = n.step(Input::AddressFound {
            id,
            addr: Some(addr("203.0.113.9:8333")),
        });
        let attempt = match out.as_slice() {
            [Effect::Dial { attempt, .. }] => *attempt,
            other => panic!("{other:?}"),
        };
        n.token += 1;
        let serial = established(&n.step(Input::DialSucceeded {
            id,
            attempt,
            conn: n.token,
            remote: None,
        }));
        (id, serial)
    };
    let (id, serial) = connect(&mut n);
    let out = n.step(Input::Closed { id, serial });
    assert!(!fetched(&out), "refilled at once after a drop: {out:?}");
    n.now += 5 * SEC - Duration::from_millis(1);
    assert!(!fetched(&n.step(Input::Tick)));
    n.now += Duration::from_millis(1);
    assert!(fetched(&n.step(Input::Tick)), "never refilled");

    let (id, serial) = connect(&mut n);
    n.now += 30 * SEC;
    let out = n.step(Input::Closed { id, serial });
    assert!(fetched(&out), "a stable connection's slot waits: {out:?}");
}

/// A peer whose only value was a decaying one that decayed away is
/// forgotten at that tick, as after an untag (found by the simulator).
#[test]
fn a_peer_whose_decaying_value_decays_away_is_forgotten() {
    use connmgr::core::DecayingSpec;
    use connmgr::{BumpFn, DecayFn};
    let mut n = Node::new(|_| {});
    n.step(Input::RegisterDecaying(DecayingSpec {
        name: "d".into(),
        interval: SEC,
        decay: DecayFn::fixed(5),
        bump: BumpFn::sum(),
    }));
    n.tag("stranger", TagChange::Bump("d".into(), 5));
    assert_eq!(
        n.core.tag_info(&"stranger".into()).map(|t| t.value),
        Some(5)
    );
    n.now += SEC;
    n.step(Input::Tick);
    assert_eq!(n.core.tag_info(&"stranger".into()), None);
    assert_eq!(n.core.tagged_peers(), 0);
}
