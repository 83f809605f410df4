//! The `serde` feature: what a node's RPC (a `getpeerinfo`) would serve,
//! checked as JSON.
#![cfg(feature = "serde")]

mod common;

use std::time::SystemTime;

use common::{mem_addr, DEADLINE};
use connmgr::{Addr, Config, ConnManager, ConnReq, Event, MemoryNetwork, PeerId, Subnet};

#[test]
fn snapshots_serialize_with_wall_clock_times() {
    let net = MemoryNetwork::new();
    let _peer = net.listen(mem_addr(1)).unwrap();
    let m = ConnManager::new(Config::builder().dialer(net.dialer()).build()).unwrap();
    let events = m.handle().events();
    m.start().unwrap();
    let id = m.handle().connect(ConnReq::permanent(mem_addr(1))).unwrap();
    let connected = events.recv_timeout(DEADLINE).unwrap();
    let json = serde_json::to_value(&connected).unwrap();
    assert_eq!(json["kind"], "connected");
    assert_eq!(json["id"], id.0);
    assert_eq!(json["addr"], mem_addr(1).to_string());

    m.handle().tag("peer-x", "t", 3).unwrap();
    m.handle().barrier().unwrap();
    let snap = m.handle().snapshot();
    let info = snap.get(id).unwrap();
    let wall = info.since_wall.expect("a wall-clock time in snapshots");
    let age = SystemTime::now().duration_since(wall).unwrap_or_default();
    assert!(age < DEADLINE, "since_wall {wall:?} is not about now");

    let json = serde_json::to_value(&snap).unwrap();
    let entry = &json["conns"][0];
    assert_eq!(entry["id"], id.0);
    assert_eq!(entry["state"], "Established");
    assert_eq!(entry["direction"], "Outbound");
    assert_eq!(entry["permanent"], true);
    assert!(entry["since_wall"].is_object(), "{entry}");
    assert_eq!(json["counts"]["outbound"], 1);
    assert_eq!(json["running"], true);
    assert!(json["stats"]["closes"]["trimmed"].is_number());

    let info = m.handle().tag_info(&PeerId::from("peer-x")).unwrap();
    let first_seen = info.first_seen_wall.expect("a wall-clock time in tag info");
    let age = SystemTime::now()
        .duration_since(first_seen)
        .unwrap_or_default();
    assert!(
        age < DEADLINE,
        "first_seen_wall {first_seen:?} is not about now"
    );
    let tags = serde_json::to_value(&info).unwrap();
    assert_eq!(tags["value"], 3);
    assert!(tags["first_seen_wall"].is_object(), "{tags}");

    // A ban for an hour ends about an hour from now on the wall clock.
    let hour = std::time::Duration::from_secs(3600);
    m.handle()
        .ban("192.0.2.0/24".parse().unwrap(), hour, "test")
        .unwrap();
    m.handle().barrier().unwrap();
    let ban = m.handle().bans().pop().expect("the ban is listed");
    let ends = ban.until_wall.expect("a wall-clock end on listed bans");
    let left = ends.duration_since(SystemTime::now()).unwrap_or_default();
    assert!(left > hour - DEADLINE && left <= hour, "ends in {left:?}");
    let json = serde_json::to_value(&ban).unwrap();
    assert_eq!(json["subnet"], "192.0.2.0/24");
    assert!(json["until_wall"].is_object(), "{json}");
    m.stop();

    let closed: Vec<serde_json::Value> = events
        .try_iter()
        .map(|e: Event| serde_json::to_value(&e).unwrap())
        .collect();
    assert!(
        closed
            .iter()
            .any(|e| e["kind"] == "disconnected" && e["reason"] == "manager stopped"),
        "{closed:?}"
    );
}

#[test]
fn addresses_round_trip_through_text() {
    for text in [
        "10.0.0.1:8333",
        "[2001:db8::1]:8333",
        "seed.example.org:8333",
        "cjdns:[fc00::1]:8333",
    ] {
        let addr: Addr = text.parse().unwrap();
        let json = serde_json::to_string(&addr).unwrap();
        assert_eq!(json, format!("\"{addr}\""));
        assert_eq!(serde_json::from_str::<Addr>(&json).unwrap(), addr);
    }
    let subnet: Subnet = "10.0.0.0/8".parse().unwrap();
    let json = serde_json::to_string(&subnet).unwrap();
    assert_eq!(serde_json::from_str::<Subnet>(&json).unwrap(), subnet);
    assert!(serde_json::from_str::<Addr>("\"not an address\"").is_err());
}
