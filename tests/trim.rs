//! Trimming, tags and protection through the whole manager, over the
//! in-memory network with a manual clock.

mod common;

use std::thread;
use std::time::Duration;

use common::*;
use connmgr::*;
use connmgr::{BumpFn, DecayFn, PeerId};
use crossbeam_channel::Receiver;

const SEC: Duration = Duration::from_secs(1);

fn is_close(e: &Event) -> bool {
    matches!(e, Event::InboundClosed { .. } | Event::Disconnected { .. })
}

fn peer_of(conn: &Conn) -> PeerId {
    PeerId::from(conn.remote_addr().to_string())
}

/// A running manager with its own in-memory listener, and the events.
struct Node {
    net: MemoryNetwork,
    clock: ManualClock,
    at: Addr,
    m: ConnManager,
    rx: Receiver<Event>,
    /// Client ends of inbound connections, kept open.
    clients: Vec<PipeStream>,
    /// Listeners for outbound peers, kept open.
    peers: Vec<MemoryListener>,
}

impl Node {
    fn start(more: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Node {
        let net = MemoryNetwork::new();
        let clock = ManualClock::new();
        let at = mem_addr(1);
        let listener = net.listen(at.clone()).unwrap();
        let builder = Config::builder()
            .dialer(net.dialer())
            .clock(clock.clone())
            .listener(listener);
        let m = ConnManager::new(more(builder).build()).unwrap();
        let rx = m.handle().events();
        m.start().unwrap();
        Node {
            net,
            clock,
            at,
            m,
            rx,
            clients: Vec::new(),
            peers: Vec::new(),
        }
    }

    /// Opens one inbound connection and returns the manager's side of it.
    fn inbound(&mut self) -> Conn {
        self.clients.push(self.net.connect(&self.at).unwrap());
        match expect_event(&self.rx, |e| matches!(e, Event::Accepted { .. })) {
            Event::Accepted { conn } => conn,
            _ => unreachable!(),
        }
    }

    fn inbound_n(&mut self, n: usize) -> Vec<Conn> {
        (0..n).map(|_| self.inbound()).collect()
    }

    /// Dials a fresh peer at `addr` with `req` and returns the connection.
    fn outbound(&mut self, req: ConnReq) -> Conn {
        let addr = req.addr().unwrap().clone();
        self.peers.push(self.net.listen(addr).unwrap());
        let id = self.m.handle().connect(req).unwrap();
        match expect_event(&self.rx, |e| {
            matches!(e, Event::Connected { .. }) && e.id() == Some(id)
        }) {
            Event::Connected { conn, .. } => conn,
            _ => unreachable!(),
        }
    }

    fn stats(&self) -> Stats {
        self.m.handle().snapshot().stats
    }

    fn live(&self) -> usize {
        let c = self.m.handle().counts();
        c.inbound + c.outbound
    }
}

fn public(host: u8) -> Addr {
    format!("203.0.113.{host}:8333").parse().unwrap()
}

/// Above the high watermark the manager trims by itself, once, down to
/// the low watermark and no further.
#[test]
fn overflow_trims_down_to_the_low_watermark() {
    let mut n = Node::start(|b| {
        b.watermarks(3, 5)
            .trim_grace(Duration::ZERO)
            .trim_silence(10 * SEC)
    });
    let conns = n.inbound_n(5);
    sync(n.m.handle());
    assert_eq!(
        n.stats().trims,
        0,
        "at the high watermark nothing is trimmed"
    );
    let sixth = n.inbound();
    let closed = take_events(&n.rx, 3, |e| matches!(e, Event::InboundClosed { .. }));
    let stats = n.stats();
    assert_eq!((stats.trims, stats.trimmed), (1, 3), "{stats:?}");
    assert_eq!(n.m.handle().counts().inbound, 3);
    let all: Vec<&Conn> = conns.iter().chain([&sixth]).collect();
    let closed_ids: Vec<ConnId> = closed.iter().filter_map(Event::id).collect();
    for c in &all {
        assert_eq!(c.is_closed(), closed_ids.contains(&c.id()), "{c:?}");
    }
    sync(n.m.handle());
    assert_eq!(
        n.m.handle().counts().inbound,
        3,
        "trimmed below the low watermark"
    );
    assert_eq!(n.stats().trims, 1);
    n.m.stop();
}

/// Protected peers and connections still in their grace period survive a
/// trim and do not count towards the low watermark: the trim keeps `low`
/// connections it could have closed, on top of them.
#[test]
fn protected_and_young_connections_survive_a_trim() {
    let mut n = Node::start(|b| {
        b.watermarks(2, 5)
            .trim_grace(30 * SEC)
            .trim_silence(10 * SEC)
    });
    let old = n.inbound_n(4);
    n.m.handle().protect(peer_of(&old[0]), "friend").unwrap();
    sync(n.m.handle());
    n.clock.advance(31 * SEC);
    let young = n.inbound_n(2);
    // Six connections: one protected, two in grace, three trimmable. One
    // goes, leaving the low watermark of two trimmable ones.
    take_events(&n.rx, 1, |e| matches!(e, Event::InboundClosed { .. }));
    sync(n.m.handle());
    let stats = n.stats();
    assert_eq!((stats.trims, stats.trimmed), (1, 1), "{stats:?}");
    assert!(!old[0].is_closed(), "the protected peer was trimmed");
    assert_eq!(old[1..].iter().filter(|c| c.is_closed()).count(), 1);
    assert!(young.iter().all(|c| !c.is_closed()), "young ones trimmed");
    assert_eq!(n.m.handle().counts().inbound, 5);
    n.m.stop();
}

/// Low 2, high 4, grace 60 s: two connections up for two minutes, then
/// three newcomers. The trim closes none of the settled pair to make room
/// for newcomers in grace; once those settle, the next trim (on the
/// silence timer) takes the count back down, youngest first.
#[test]
fn newcomers_in_grace_never_push_out_settled_peers() {
    let mut n = Node::start(|b| {
        b.watermarks(2, 4)
            .trim_grace(60 * SEC)
            .trim_silence(10 * SEC)
    });
    let settled = n.inbound_n(2);
    sync(n.m.handle());
    n.clock.advance(120 * SEC);
    let newcomers = n.inbound_n(3);
    assert!(wait_until(|| n.stats().trims == 1), "{:?}", n.stats());
    assert_eq!(n.stats().trimmed, 0);
    assert!(settled.iter().chain(&newcomers).all(|c| !c.is_closed()));
    assert_eq!(n.m.handle().counts().inbound, 5);

    n.clock.advance(60 * SEC);
    take_events(&n.rx, 3, |e| matches!(e, Event::InboundClosed { .. }));
    assert!(wait_until(|| n.stats().trimmed == 3), "{:?}", n.stats());
    assert!(
        settled.iter().all(|c| !c.is_closed()),
        "a settled peer went"
    );
    assert!(newcomers.iter().all(Conn::is_closed));
    assert_eq!(n.m.handle().counts().inbound, 2);
    n.m.stop();
}

/// Permanent outbound requests count as protected; one-off outbound and
/// inbound connections do not.
#[test]
fn permanent_requests_are_never_trimmed() {
    let mut n = Node::start(|b| {
        b.watermarks(1, 3)
            .trim_grace(Duration::ZERO)
            .trim_silence(10 * SEC)
    });
    let p1 = n.outbound(ConnReq::permanent(public(1)));
    let p2 = n.outbound(ConnReq::permanent(public(2)));
    let one_off = n.outbound(ConnReq::new(public(3)));
    let inbound = n.inbound();
    // Four connections over a high watermark of three; the two permanent
    // ones neither go nor count, so one of the other two goes: the inbound
    // one, as it ranks below an outbound one of equal value.
    let closed = take_events(&n.rx, 1, is_close);
    let ids: Vec<ConnId> = closed.iter().filter_map(Event::id).collect();
    assert_eq!(ids, vec![inbound.id()]);
    sync(n.m.handle());
    assert!(!p1.is_closed() && !p2.is_closed() && !one_off.is_closed());
    let stats = n.stats();
    assert_eq!((stats.trims, stats.trimmed), (1, 1), "{stats:?}");
    assert_eq!(n.m.handle().counts().outbound, 3);
    assert_eq!(n.m.handle().counts().disconnected, 0);
    n.m.stop();
}

/// A trim closes the lowest-valued peers first, and at equal value an
/// inbound connection before an outbound one (even an older inbound one
/// with a higher id); tags follow a peer id set with `set_peer_id`.
#[test]
fn trim_order_follows_value_then_direction() {
    let mut n = Node::start(|b| {
        b.watermarks(3, 10)
            .trim_grace(Duration::ZERO)
            .trim_silence(10 * SEC)
    });
    let w = n.outbound(ConnReq::new(public(1)));
    let y = n.outbound(ConnReq::new(public(2)));
    let v = n.outbound(ConnReq::new(public(3)));
    let x = n.inbound();
    let z = n.inbound();
    n.m.handle().set_peer_id(z.id(), "node-z").unwrap();
    let values = [
        (peer_of(&w), 0),
        (peer_of(&x), 1),
        (peer_of(&y), 1),
        (PeerId::from("node-z"), 5),
        (peer_of(&v), 7),
    ];
    for (peer, value) in &values {
        n.m.handle().tag(peer.clone(), "score", *value).unwrap();
    }
    sync(n.m.handle());
    for (peer, value) in &values {
        assert!(
            n.m.handle()
                .tag_info(peer)
                .is_some_and(|i| i.value == *value && i.conns.len() == 1),
            "{peer}: {:?}",
            n.m.handle().tag_info(peer)
        );
    }
    n.m.handle().trim().unwrap();
    let closed = take_events(&n.rx, 2, is_close);
    let order: Vec<ConnId> = closed.iter().filter_map(Event::id).collect();
    assert_eq!(order, vec![w.id(), x.id()], "{closed:?}");
    assert!(w.is_closed() && x.is_closed());
    for keep in [&y, &z, &v] {
        assert!(!keep.is_closed(), "{keep:?}");
    }
    assert_eq!(n.live(), 3);
    n.m.stop();
}

/// Within the silence period a second overflow is left alone, even as it
/// grows; when the period ends, the timer trims it without waiting for some
/// unrelated change.
#[test]
fn silence_period_holds_off_a_second_trim() {
    let mut n = Node::start(|b| {
        b.watermarks(3, 5)
            .trim_grace(Duration::ZERO)
            .trim_silence(10 * SEC)
    });
    let _first = n.inbound_n(6);
    assert!(wait_until(|| n.stats().trims == 1));
    assert_eq!(n.m.handle().counts().inbound, 3);

    let _second = n.inbound_n(3);
    sync(n.m.handle());
    assert_eq!(n.m.handle().counts().inbound, 6);
    n.clock.advance(9 * SEC);
    let _third = n.inbound();
    sync(n.m.handle());
    assert_eq!(n.m.handle().counts().inbound, 7);
    assert_eq!(n.stats().trims, 1);

    // The silence ends: the pending overflow is trimmed by the timer.
    n.clock.advance(SEC);
    assert!(wait_until(|| n.stats().trims == 2), "{:?}", n.stats());
    assert_eq!(n.m.handle().counts().inbound, 3);
    assert_eq!(n.stats().trimmed, 3 + 4);
    n.m.stop();
}

/// Explicit trims called at once from several threads make one trim.
#[test]
fn concurrent_explicit_trims_trim_once() {
    let mut n = Node::start(|b| {
        b.watermarks(3, 10)
            .trim_grace(Duration::ZERO)
            .trim_silence(10 * SEC)
    });
    let _conns = n.inbound_n(6);
    sync(n.m.handle());
    assert_eq!(n.stats().trims, 0);
    let handle: Handle = n.m.handle().clone();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let h = handle.clone();
            thread::spawn(move || h.trim().unwrap())
        })
        .collect();
    let results: Vec<Trimmed> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    // Callers served by the trim that ran all see what it closed; later
    // ones found nothing above the low watermark.
    let ran: Vec<&Trimmed> = results.iter().filter(|r| !r.closed.is_empty()).collect();
    assert!(!ran.is_empty(), "{results:?}");
    assert!(ran
        .iter()
        .all(|r| r.closed == ran[0].closed && r.closed.len() == 3));
    let stats = n.stats();
    assert_eq!((stats.trims, stats.trimmed), (1, 3), "{stats:?}");
    assert_eq!(n.m.handle().counts().inbound, 3);

    // At the low watermark an explicit trim has nothing to do.
    n.clock.advance(10 * SEC);
    n.m.handle().trim().unwrap();
    sync(n.m.handle());
    assert_eq!(n.stats().trims, 1);
    n.m.stop();
}

/// `trim` waits for the trim and returns what it closed; the counts are
/// current when it returns, and an explicit trim ignores the silence
/// period (as libp2p's `TrimOpenConns` does).
#[test]
fn trim_returns_what_it_closed_and_ignores_the_silence() {
    let mut n = Node::start(|b| {
        b.watermarks(3, 10)
            .trim_grace(Duration::ZERO)
            .trim_silence(60 * SEC)
    });
    let conns = n.inbound_n(6);
    let first = n.m.handle().trim().unwrap();
    assert_eq!(first.closed.len(), 3, "{first:?}");
    assert_eq!(n.m.handle().counts().inbound, 3);
    for c in &conns {
        assert_eq!(c.is_closed(), first.closed.contains(&c.id()), "{c:?}");
    }
    let stats = n.stats();
    assert_eq!((stats.trims, stats.last_trim_closed), (1, 3));
    assert!(stats.last_trim.is_some());
    let info = n.m.handle().trim_info();
    let policy = info.policy.expect("watermarks set");
    assert_eq!(
        (policy.low_watermark, policy.high_watermark, policy.silence),
        (3, 10, 60 * SEC)
    );
    assert_eq!(
        (info.connections, info.trims, info.last_trim_closed),
        (3, 1, 3)
    );
    assert_eq!(info.last_trim, stats.last_trim);

    let _more = n.inbound_n(2);
    let second = n.m.handle().trim().unwrap();
    assert_eq!(
        second.closed.len(),
        2,
        "the silence period held off an explicit trim"
    );
    assert_eq!(n.m.handle().counts().inbound, 3);
    assert!(n.m.handle().trim().unwrap().closed.is_empty());
    n.m.stop();
}

/// `trim_within` gives up at its deadline when the handler is busy (here
/// in an inline dial that waits), and the trim still runs afterwards;
/// `request_trim` never waits.
#[test]
fn trim_within_times_out_and_request_trim_does_not_wait() {
    let (release_tx, release) = crossbeam_channel::bounded::<()>(0);
    let (entered_tx, entered) = crossbeam_channel::bounded::<()>(1);
    let dialer = move |_: &Addr, _: &DialContext| -> Result<Box<dyn Stream>, DialError> {
        let _ = entered_tx.send(());
        let _ = release.recv_timeout(DEADLINE);
        Err(DialError::Refused)
    };
    let m = ConnManager::new(
        Config::builder()
            .dialer(dialer)
            .inline_dial(true)
            .watermarks(1, 2)
            .build(),
    )
    .unwrap();
    m.start().unwrap();
    m.handle().connect(ConnReq::new(mem_addr(7))).unwrap();
    entered.recv_timeout(DEADLINE).unwrap();
    assert_eq!(
        m.handle().trim_within(Duration::from_millis(20)),
        Err(Error::TimedOut)
    );
    m.handle().request_trim().unwrap();
    release_tx.send(()).unwrap();
    assert!(m.handle().trim().unwrap().closed.is_empty());
    m.stop();
}

/// Tags set, removed and updated show up in `tag_info` once published.
#[test]
fn tag_untag_and_upsert_are_published() {
    let n = Node::start(|b| b);
    let peer = PeerId::from("node-t");
    assert_eq!(n.m.handle().tag_info(&peer), None);
    n.m.handle().tag(peer.clone(), "a", 3).unwrap();
    n.m.handle().tag(peer.clone(), "b", 4).unwrap();
    sync(n.m.handle());
    assert!(n.m.handle().tag_info(&peer).is_some_and(|i| i.value == 7));
    let info = n.m.handle().tag_info(&peer).unwrap();
    assert_eq!((info.tags["a"], info.tags["b"]), (3, 4));
    assert!(info.conns.is_empty());

    n.m.handle().untag(peer.clone(), "a").unwrap();
    sync(n.m.handle());
    assert!(n.m.handle().tag_info(&peer).is_some_and(|i| i.value == 4));
    assert!(!n.m.handle().tag_info(&peer).unwrap().tags.contains_key("a"));

    n.m.handle()
        .upsert_tag(peer.clone(), "b", |v| v * 10)
        .unwrap();
    n.m.handle()
        .upsert_tag(peer.clone(), "c", |v| v + 2)
        .unwrap();
    sync(n.m.handle());
    assert!(n.m.handle().tag_info(&peer).is_some_and(|i| i.value == 42));
    let info = n.m.handle().tag_info(&peer).unwrap();
    assert_eq!((info.tags["b"], info.tags["c"]), (40, 2));
    n.m.stop();
}

/// Protection is a set of tags, not a count: protecting twice under one
/// tag is undone by one unprotect; `unprotect` says whether another tag
/// still protects.
#[test]
fn protection_is_per_tag_not_counted() {
    let n = Node::start(|b| b);
    let peer = PeerId::from("node-p");
    assert!(!n.m.handle().unprotect(peer.clone(), "x").unwrap());
    n.m.handle().protect(peer.clone(), "x").unwrap();
    n.m.handle().protect(peer.clone(), "x").unwrap();
    assert!(n.m.handle().is_protected(&peer, Some("x")));
    assert!(!n.m.handle().unprotect(peer.clone(), "x").unwrap());
    assert!(!n.m.handle().is_protected(&peer, None));

    n.m.handle().protect(peer.clone(), "x").unwrap();
    n.m.handle().protect(peer.clone(), "y").unwrap();
    assert!(n.m.handle().unprotect(peer.clone(), "x").unwrap());
    assert!(!n.m.handle().is_protected(&peer, Some("x")));
    assert!(n.m.handle().is_protected(&peer, Some("y")));
    assert!(n.m.handle().is_protected(&peer, None));
    assert!(!n.m.handle().unprotect(peer.clone(), "y").unwrap());
    assert!(!n.m.handle().is_protected(&peer, None));
    n.m.stop();
}

/// A protected peer keeps its tags and protection after its connection
/// closes; reconnecting under the same id brings them back, and a trim
/// leaves it alone. An unprotected peer's tags go with its last connection.
#[test]
fn protection_outlives_disconnection() {
    let mut n = Node::start(|b| {
        b.watermarks(0, 10)
            .trim_grace(Duration::ZERO)
            .trim_silence(10 * SEC)
    });
    let node = PeerId::from("node-a");
    let first = n.inbound();
    let other = n.inbound();
    n.m.handle().set_peer_id(first.id(), node.clone()).unwrap();
    n.m.handle().tag(node.clone(), "relay", 5).unwrap();
    n.m.handle().protect(node.clone(), "keep").unwrap();
    n.m.handle().tag(peer_of(&other), "relay", 9).unwrap();
    sync(n.m.handle());
    assert!(n
        .m
        .handle()
        .tag_info(&node)
        .is_some_and(|i| i.value == 5 && i.conns.len() == 1));
    assert!(wait_until(|| n
        .m
        .handle()
        .tag_info(&peer_of(&other))
        .is_some_and(|i| i.value == 9)));

    first.close();
    other.close();
    take_events(&n.rx, 2, is_close);
    assert_eq!(n.m.handle().counts().inbound, 0);
    let info =
        n.m.handle()
            .tag_info(&node)
            .expect("a protected peer's tags were dropped");
    assert_eq!((info.value, info.conns.len()), (5, 0));
    assert!(n.m.handle().is_protected(&node, Some("keep")));
    assert_eq!(n.m.handle().tag_info(&peer_of(&other)), None);

    let again = n.inbound();
    let stranger = n.inbound();
    n.m.handle().set_peer_id(again.id(), node.clone()).unwrap();
    sync(n.m.handle());
    assert!(n
        .m
        .handle()
        .tag_info(&node)
        .is_some_and(|i| i.value == 5 && i.conns.len() == 1));
    n.m.handle().trim().unwrap();
    let closed = take_events(&n.rx, 1, is_close);
    assert_eq!(closed[0].id(), Some(stranger.id()));
    sync(n.m.handle());
    assert!(!again.is_closed(), "the protected peer was trimmed");
    assert_eq!(n.m.handle().counts().inbound, 1);
    n.m.stop();
}

/// A decaying tag registered in the config loses its decay amount every
/// interval of the manager's clock; unknown decaying tags are refused.
#[test]
fn decaying_tag_decays_with_the_clock() {
    let n = Node::start(|b| b.decaying_tag("relay", SEC, DecayFn::fixed(1), BumpFn::sum()));
    let peer = PeerId::from("node-d");
    n.m.handle()
        .bump_decaying(peer.clone(), "relay", 10)
        .unwrap();
    sync(n.m.handle());
    assert!(n.m.handle().tag_info(&peer).is_some_and(|i| i.value == 10));
    n.clock.advance(3 * SEC);
    assert!(
        wait_until(|| n.m.handle().tag_info(&peer).is_some_and(|i| i.value == 7)),
        "{:?}",
        n.m.handle().tag_info(&peer)
    );
    assert_eq!(n.m.handle().tag_info(&peer).unwrap().tags["relay"], 7);

    n.m.handle()
        .bump_decaying(peer.clone(), "relay", 5)
        .unwrap();
    sync(n.m.handle());
    assert!(n.m.handle().tag_info(&peer).is_some_and(|i| i.value == 12));
    assert_eq!(
        n.m.handle().bump_decaying(peer, "nope", 1),
        Err(Error::UnknownTag("nope".into()))
    );
    n.m.stop();
}

/// Decaying tags at run time, as go-libp2p's decayer: register (a
/// duplicate of a config tag is a typed error), bump, decay on the clock,
/// remove one peer's value (also through `untag` of the tag's name), close
/// (every peer loses it, and the name can be registered again).
#[test]
fn decaying_tags_register_bump_remove_and_close_at_run_time() {
    let n = Node::start(|b| b.decaying_tag("config", SEC, DecayFn::fixed(1), BumpFn::sum()));
    let h = n.m.handle();
    match h.register_decaying("config", SEC, DecayFn::fixed(1), BumpFn::sum()) {
        Err(Error::Tag(TagError::DuplicateDecayingTag(name))) => assert_eq!(name, "config"),
        other => panic!("expected a duplicate error, got {other:?}"),
    }
    assert!(matches!(
        h.register_decaying("zero", Duration::ZERO, DecayFn::fixed(1), BumpFn::sum()),
        Err(Error::Tag(TagError::ZeroInterval(_)))
    ));
    let relay = h
        .register_decaying("relay", 2 * SEC, DecayFn::fixed(3), BumpFn::sum())
        .unwrap();
    assert_eq!(relay.name(), "relay");
    let (a, b) = (PeerId::from("node-a"), PeerId::from("node-b"));
    relay.bump(a.clone(), 10).unwrap();
    relay.bump(b.clone(), 20).unwrap();
    h.tag(b.clone(), "plain", 1).unwrap();
    sync(h);
    assert_eq!(h.tag_info(&a).unwrap().tags["relay"], 10);

    // The decay runs on the handler's timer, not on a call: wait for it.
    n.clock.advance(2 * SEC);
    assert!(
        wait_until(|| h.tag_info(&a).is_some_and(|i| i.tags["relay"] == 7)),
        "not decayed once: {:?}",
        h.tag_info(&a)
    );

    // untag of a decaying name removes that peer's value.
    h.untag(a.clone(), "relay").unwrap();
    sync(h);
    assert_eq!(h.tag_info(&a), None);
    relay.bump(a.clone(), 5).unwrap();
    relay.remove(a.clone()).unwrap();
    sync(h);
    assert_eq!(h.tag_info(&a), None);

    // Closing drops the tag from every peer and frees the name.
    relay.clone().close().unwrap();
    let info = h.tag_info(&b).unwrap();
    assert!(!info.tags.contains_key("relay"), "{info:?}");
    assert_eq!(info.value, 1);
    assert!(matches!(
        relay.bump(b.clone(), 1),
        Err(Error::UnknownTag(_))
    ));
    let again = h
        .register_decaying("relay", SEC, DecayFn::fixed(1), BumpFn::sum())
        .unwrap();
    again.bump(b.clone(), 4).unwrap();
    sync(h);
    assert_eq!(h.tag_info(&b).unwrap().tags["relay"], 4);
    n.m.stop();
}
