//! Peer policy through the whole manager: outbound diversity, gating
//! hooks, anchors.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use common::*;
use connmgr::*;
use parking_lot::Mutex;

/// A public-looking address in /16 group `g`, host `h`.
fn public(g: u8, h: u8) -> Addr {
    format!("203.{g}.0.{h}:8333").parse().unwrap()
}

/// Listens on every address in `addrs`; the listeners must stay alive.
fn listen_all(net: &MemoryNetwork, addrs: &[Addr]) -> Vec<MemoryListener> {
    addrs
        .iter()
        .map(|a| net.listen(a.clone()).unwrap())
        .collect()
}

fn holding_config(net: &MemoryNetwork, held: &Arc<Mutex<Vec<Conn>>>) -> ConfigBuilder {
    let held = Arc::clone(held);
    Config::builder()
        .dialer(net.dialer())
        .on_connection(move |_, _, conn| held.lock().push(conn))
}

/// The source offers 5 hosts in each of 3 /16 groups; with target 8 the
/// manager holds exactly one automatic connection per group, never two.
#[test]
fn automatic_outbound_holds_one_connection_per_netgroup() {
    let net = MemoryNetwork::new();
    let addrs: Vec<Addr> = (0..3)
        .flat_map(|g| (1..=5).map(move |h| public(g, h)))
        .collect();
    let _listeners = listen_all(&net, &addrs);
    let held = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicU32::new(0));
    let pool = addrs.clone();
    let config = holding_config(&net, &held)
        .target_outbound(8)
        .address_source(move || {
            Some(pool[next.fetch_add(1, Ordering::SeqCst) as usize % 15].clone())
        })
        .build();
    let m = ConnManager::new(config).unwrap();
    m.start().unwrap();
    assert!(
        wait_until(|| m.handle().counts().automatic_outbound == 3),
        "{:?}",
        m.handle().counts()
    );
    // The other five slots keep drawing addresses in held groups until
    // they give up for a retry duration; then nothing is pending.
    assert!(
        wait_until(|| m.handle().counts().pending == 0),
        "{:?}",
        m.handle().counts()
    );
    let snap = m.handle().snapshot();
    let mut per_group: HashMap<NetGroup, usize> = HashMap::new();
    for c in snap
        .conns
        .iter()
        .filter(|c| c.is_automatic() && c.addr.is_some())
    {
        *per_group
            .entry(c.addr.as_ref().unwrap().netgroup())
            .or_default() += 1;
    }
    assert!(per_group.values().all(|&n| n == 1), "{per_group:?}");
    assert_eq!(m.handle().counts().automatic_outbound, 3);
    m.stop();
}

/// Runs a manager with target 8 over `addrs` (one listener each) and
/// waits until all 8 automatic connections are up; false if they never are.
fn fills_target_of_eight(addrs: Vec<Addr>, diversity: bool) -> bool {
    let net = MemoryNetwork::new();
    let _listeners = listen_all(&net, &addrs);
    let held = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicU32::new(0));
    let config = holding_config(&net, &held)
        .target_outbound(8)
        .outbound_diversity(diversity)
        .address_source(move || {
            let n = next.fetch_add(1, Ordering::SeqCst) as usize;
            Some(addrs[n % addrs.len()].clone())
        })
        .build();
    let m = ConnManager::new(config).unwrap();
    m.start().unwrap();
    let filled = wait_until(|| m.handle().counts().automatic_outbound == 8);
    m.stop();
    filled
}

/// Loopback and private addresses are exempt: a local test network fills
/// the whole target from one /16.
#[test]
fn local_addresses_are_exempt_from_diversity() {
    assert!(fills_target_of_eight((0..8).map(mem_addr).collect(), true));
}

/// With diversity off, one public group may fill the target.
#[test]
fn diversity_can_be_turned_off() {
    assert!(fills_target_of_eight(
        (1..=8).map(|h| public(7, h)).collect(),
        false
    ));
}

/// The dial gate vetoes addresses before any connection is made; the
/// refusal reaches the user as `DialError::Rejected` with the reason.
#[test]
fn dial_gate_vetoes_addresses() {
    let net = MemoryNetwork::new();
    let ok = mem_addr(1);
    let bad = mem_addr(2);
    let _listeners = listen_all(&net, &[ok.clone(), bad.clone()]);
    let veto = bad.clone();
    let config = Config::builder()
        .dialer(net.dialer())
        .dial_gate(move |a| {
            if *a == veto {
                Err("on the deny list".into())
            } else {
                Ok(())
            }
        })
        .build();
    let m = ConnManager::new(config).unwrap();
    let events = m.handle().events();
    m.start().unwrap();
    let bad_id = m.handle().connect(ConnReq::new(bad)).unwrap();
    let ev = expect_event(&events, |e| matches!(e, Event::DialFailed { .. }));
    match ev {
        Event::DialFailed { req, error, .. } => {
            assert_eq!(req.id(), Some(bad_id));
            assert_eq!(error, DialError::Rejected("on the deny list".into()));
        }
        other => panic!("{other:?}"),
    }
    let ok_id = m.handle().connect(ConnReq::new(ok)).unwrap();
    let ev = expect_event(&events, |e| matches!(e, Event::Connected { .. }));
    assert_eq!(ev.id(), Some(ok_id));
    m.stop();
}

/// The accept gate closes refused inbound connections before the manager
/// counts them or the user sees them; a panicking gate refuses.
#[test]
fn accept_gate_refuses_before_anyone_sees() {
    let net = MemoryNetwork::new();
    let listen = mem_addr(9);
    let listener = net.listen(listen.clone()).unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicU32::new(0));
    let (h, c) = (Arc::clone(&held), Arc::clone(&calls));
    let config = Config::builder()
        .dialer(net.dialer())
        .listener(listener)
        .accept_gate(move |_| match c.fetch_add(1, Ordering::SeqCst) {
            0 => Err("first one refused".into()),
            1 => panic!("broken rule"),
            _ => Ok(()),
        })
        .on_accept(move |_, conn| h.lock().push(conn))
        .build();
    let m = ConnManager::new(config).unwrap();
    m.start().unwrap();
    let mut refused1 = net.connect(&listen).unwrap();
    let mut refused2 = net.connect(&listen).unwrap();
    let _kept = net.connect(&listen).unwrap();
    assert!(wait_until(|| held.lock().len() == 1));
    let mut buf = [0u8; 1];
    use std::io::Read;
    assert_eq!(refused1.read(&mut buf).unwrap(), 0, "refused by the rule");
    assert_eq!(
        refused2.read(&mut buf).unwrap(),
        0,
        "refused by the panicking rule"
    );
    assert_eq!(m.handle().snapshot().stats.inbound_accepted, 1);
    m.stop();
}

/// A clean stop writes the addresses of the block-relay-only connections
/// (Bitcoin Core's anchors); the next manager dials them first, as
/// block-relay-only connections, before asking its address source.
#[test]
fn anchors_survive_a_restart() {
    let path = std::env::temp_dir().join(format!("connmgr-test-anchors-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let net = MemoryNetwork::new();
    let addrs: Vec<Addr> = (0..4).map(|g| public(g, 1)).collect();
    let _listeners = listen_all(&net, &addrs);
    let held = Arc::new(Mutex::new(Vec::new()));
    let settled = |m: &ConnManager| {
        let c = m.handle().counts();
        c.full_relay_outbound == 1 && c.block_relay_outbound == 2
    };

    let first = addrs.clone();
    let next = Arc::new(AtomicU32::new(0));
    let config = holding_config(&net, &held)
        .target_outbound(1)
        .target_block_relay(2)
        .feeler_interval(None)
        .anchors_file(&path)
        .address_source(move || {
            first
                .get(next.fetch_add(1, Ordering::SeqCst) as usize)
                .cloned()
        })
        .build();
    let m = ConnManager::new(config).unwrap();
    m.start().unwrap();
    assert!(wait_until(|| settled(&m)), "{:?}", m.handle().snapshot());
    let block_relay: Vec<Addr> = m
        .handle()
        .snapshot()
        .conns
        .iter()
        .filter(|c| c.conn_type == ConnType::BlockRelay)
        .filter_map(|c| c.addr.clone())
        .collect();
    m.stop();
    let saved = std::fs::read_to_string(&path).unwrap();
    let anchors: Vec<Addr> = saved
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(anchors.len(), 2, "{saved}");
    for a in &anchors {
        assert!(
            block_relay.contains(a),
            "anchor {a} was not block-relay: {block_relay:?}"
        );
    }

    // The second source offers only the fourth address.
    let fourth = addrs[3].clone();
    let config = holding_config(&net, &held)
        .target_outbound(1)
        .target_block_relay(2)
        .feeler_interval(None)
        .anchors_file(&path)
        .address_source(move || Some(fourth.clone()))
        .build();
    let m = ConnManager::new(config).unwrap();
    m.start().unwrap();
    assert!(wait_until(|| settled(&m)), "{:?}", m.handle().snapshot());
    let snap = m.handle().snapshot();
    for a in &anchors {
        assert!(
            snap.conns
                .iter()
                .any(|c| c.addr.as_ref() == Some(a) && c.conn_type == ConnType::BlockRelay),
            "anchor {a} not redialed as block-relay: {:?}",
            snap.conns
        );
    }
    assert!(!path.exists(), "anchors are consumed at start");
    m.stop();
    let _ = std::fs::remove_file(&path);
}

/// With `inline_dial`, the handler dials itself: connections, failures and
/// a panicking dialer behave exactly as with the pool.
#[test]
fn inline_dialing_behaves_like_the_pool() {
    let net = MemoryNetwork::new();
    let up = mem_addr(1);
    let _listener = net.listen(up.clone()).unwrap();
    let inner = net.dialer();
    let config = Config::builder()
        .inline_dial(true)
        .dialer(
            move |a: &Addr, ctx: &DialContext| -> Result<Box<dyn Stream>, DialError> {
                if *a == mem_addr(3) {
                    panic!("broken dialer");
                }
                inner.dial(a, ctx)
            },
        )
        .build();
    let m = ConnManager::new(config).unwrap();
    let events = m.handle().events();
    m.start().unwrap();
    let ok = m.handle().connect(ConnReq::new(up)).unwrap();
    assert_eq!(
        expect_event(&events, |e| matches!(e, Event::Connected { .. })).id(),
        Some(ok)
    );
    let refused = m.handle().connect(ConnReq::new(mem_addr(2))).unwrap();
    match expect_event(&events, |e| matches!(e, Event::DialFailed { .. })) {
        Event::DialFailed { req, error, .. } => {
            assert_eq!(req.id(), Some(refused));
            assert_eq!(error, DialError::Refused);
        }
        other => panic!("{other:?}"),
    }
    let panicked = m.handle().connect(ConnReq::new(mem_addr(3))).unwrap();
    match expect_event(&events, |e| matches!(e, Event::DialFailed { .. })) {
        Event::DialFailed { req, error, .. } => {
            assert_eq!(req.id(), Some(panicked));
            assert!(matches!(error, DialError::Panicked(_)), "{error:?}");
        }
        other => panic!("{other:?}"),
    }
    m.stop();
}

/// Records which thread each dial and address request ran on.
struct ThreadRecorder<T> {
    inner: T,
    never_blocks: bool,
    threads: Arc<Mutex<Vec<String>>>,
}

impl<T> ThreadRecorder<T> {
    fn note(&self) {
        let name = std::thread::current().name().unwrap_or("").to_string();
        self.threads.lock().push(name);
    }
}

impl Dial for ThreadRecorder<MemoryDialer> {
    fn dial(&self, addr: &Addr, ctx: &DialContext) -> Result<Box<dyn Stream>, DialError> {
        self.note();
        self.inner.dial(addr, ctx)
    }

    fn never_blocks(&self) -> bool {
        self.never_blocks
    }
}

impl AddressSource for ThreadRecorder<Addr> {
    fn next_address(&self) -> Option<Addr> {
        self.note();
        Some(self.inner.clone())
    }

    fn never_blocks(&self) -> bool {
        self.never_blocks
    }
}

/// A dialer or address source that says it never blocks runs on the
/// handler thread with no flag set; one that does not (closures) runs on
/// the pool; each is decided on its own.
#[test]
fn never_blocking_dialers_and_sources_run_on_the_handler() {
    for (dialer_inline, source_inline) in [(true, true), (true, false), (false, true)] {
        let net = MemoryNetwork::new();
        let _listener = net.listen(mem_addr(1)).unwrap();
        let dials = Arc::new(Mutex::new(Vec::new()));
        let fetches = Arc::new(Mutex::new(Vec::new()));
        let config = Config::builder()
            .target_outbound(1)
            .dialer(ThreadRecorder {
                inner: net.dialer(),
                never_blocks: dialer_inline,
                threads: Arc::clone(&dials),
            })
            .address_source(ThreadRecorder {
                inner: mem_addr(1),
                never_blocks: source_inline,
                threads: Arc::clone(&fetches),
            })
            .build();
        let m = ConnManager::new(config).unwrap();
        let events = m.handle().events();
        m.start().unwrap();
        expect_event(&events, |e| matches!(e, Event::Connected { .. }));
        m.stop();
        let on = |inline: bool| {
            if inline {
                "connmgr-handler"
            } else {
                "connmgr-dial-"
            }
        };
        for (threads, inline) in [(&dials, dialer_inline), (&fetches, source_inline)] {
            let threads = threads.lock();
            assert!(!threads.is_empty());
            assert!(
                threads.iter().all(|t| t.starts_with(on(inline))),
                "inline {inline}: {threads:?}"
            );
        }
    }
    // The in-memory dialer says so itself.
    assert!(MemoryNetwork::new().dialer().never_blocks());
    let closure = |_: &Addr, _: &DialContext| -> Result<Box<dyn Stream>, DialError> {
        Err(DialError::Refused)
    };
    assert!(!closure.never_blocks());
}
