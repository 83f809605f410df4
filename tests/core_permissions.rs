//! Peer permissions on the bare Core, as Bitcoin Core's whitelist flags:
//! `FORCE_INBOUND` gets in at full slots (by eviction, else within a
//! margin), `NOBAN` is never banned for misbehaviour and gets past bans,
//! `NO_EVICT` is never evicted or trimmed; hints show in the entry.

use std::time::Duration;

use connmgr::core::{Effect, Input, ReqSpec};
use connmgr::policy::PermissionTable;
use connmgr::{ConnId, Permissions, Subnet};

#[path = "common/inbound_node.rs"]
mod inbound_node;
use inbound_node::{addr, bare_policy, Node};

fn table(entries: &[(&str, Permissions)]) -> PermissionTable {
    PermissionTable::new(
        entries
            .iter()
            .map(|(s, p)| (s.parse::<Subnet>().unwrap(), *p))
            .collect(),
    )
}

#[test]
fn force_inbound_gets_in_at_full_slots_within_the_margin() {
    let mut n = Node::new(|c| {
        c.max_inbound = 5;
        c.force_inbound_margin = 2;
        c.permissions = table(&[("10.9.0.0/16", Permissions::FORCE_INBOUND)]);
    });
    let plain: Vec<ConnId> = (0..5)
        .filter_map(|i| n.accept(&format!("10.{i}.0.1:8333")))
        .collect();
    assert_eq!(plain.len(), 5);
    assert!(
        n.accept("10.50.0.1:8333").is_none(),
        "a plain newcomer is refused"
    );
    // Five slots are too few for Core's rules to evict anyone: the forced
    // peers go past the limit, by two at most.
    assert!(n.accept("10.9.0.1:8333").is_some());
    assert!(n.accept("10.9.0.2:8333").is_some());
    assert!(n.accept("10.9.0.3:8333").is_none(), "past the margin");
    assert_eq!(n.core.inbound_count(), 7);
    assert!(plain.iter().all(|id| n.live(*id)), "nobody was evicted");
    assert_eq!(n.core.stats().refusals.full, 2);
}

#[test]
fn force_inbound_evicts_by_the_normal_rules_when_it_can() {
    let bare = bare_policy();
    let mut n = Node::new(|c| {
        c.max_inbound = 5;
        c.eviction_policy = bare;
        c.permissions = table(&[("10.9.0.0/16", Permissions::FORCE_INBOUND)]);
    });
    let plain: Vec<ConnId> = (0..5)
        .map(|i| {
            n.now += Duration::from_secs(1);
            n.accept(&format!("10.{i}.0.1:8333")).unwrap()
        })
        .collect();
    // Eviction is off for everyone else...
    assert!(n.accept("10.50.0.1:8333").is_none());
    // ...but a forced peer evicts the youngest, staying within the limit.
    assert!(n.accept("10.9.0.1:8333").is_some());
    assert_eq!(n.core.inbound_count(), 5);
    assert!(!n.live(plain[4]));
    assert_eq!(n.core.stats().evicted, 1);
}

#[test]
fn force_inbound_is_not_held_back_by_per_source_limits() {
    let mut n = Node::new(|c| {
        c.max_inbound_per_ip = Some(1);
        c.permissions = table(&[("10.9.0.1", Permissions::FORCE_INBOUND)]);
    });
    assert!(n.accept("10.9.0.1:1").is_some());
    assert!(n.accept("10.9.0.1:2").is_some());
    assert!(n.accept("10.8.0.1:1").is_some());
    assert!(n.accept("10.8.0.1:2").is_none());
}

#[test]
fn noban_peers_pass_bans_and_are_never_banned_for_misbehaviour() {
    let mut n = Node::new(|c| {
        c.ban_threshold = 100;
        c.permissions = table(&[("10.9.0.0/16", Permissions::NOBAN)]);
    });
    let far = Duration::from_secs(3600);
    n.step(Input::Ban {
        subnet: "10.0.0.0/8".parse().unwrap(),
        duration: far,
        reason: "test".into(),
    });
    assert!(n.accept("10.1.0.1:8333").is_none(), "banned");
    let trusted = n.accept("10.9.0.1:8333").expect("noban passes the ban");
    // Misbehaviour past the threshold is logged, not punished.
    let out = n.step(Input::Misbehaving {
        id: trusted,
        persistent: 500,
        transient: 0,
        reason: "bad block".into(),
    });
    assert!(
        !out.iter().any(|e| matches!(e, Effect::Close { .. })),
        "{out:?}"
    );
    assert!(n.live(trusted));
    assert_eq!(n.core.bans(n.now).len(), 1, "no ban was added");

    // A plain peer is banned and closed for the same score.
    let plain = n.accept("192.0.2.1:8333").unwrap();
    n.step(Input::Misbehaving {
        id: plain,
        persistent: 500,
        transient: 0,
        reason: "bad block".into(),
    });
    assert!(!n.live(plain));
    assert_eq!(n.core.bans(n.now).len(), 2);

    // An explicit ban of its subnet closes even a noban peer, as in Core.
    n.step(Input::Ban {
        subnet: "10.9.0.0/16".parse().unwrap(),
        duration: far,
        reason: "operator".into(),
    });
    assert!(!n.live(trusted));
}

#[test]
fn a_noban_request_dials_a_banned_address() {
    let mut n = Node::new(|c| {
        c.target_outbound = 0;
        c.target_block_relay = 0;
    });
    n.step(Input::Ban {
        subnet: "192.0.2.0/24".parse().unwrap(),
        duration: Duration::from_secs(3600),
        reason: "test".into(),
    });
    let plain = ReqSpec::new(ConnId::caller(1), addr("192.0.2.1:8333"), false);
    assert!(n.connect(plain).is_none(), "a plain request is refused");
    let trusted = ReqSpec::new(ConnId::caller(2), addr("192.0.2.2:8333"), false)
        .with_permissions(Permissions::NOBAN);
    let id = n.connect(trusted).expect("the noban request connects");
    let info = n.core.conn_info(id).unwrap();
    assert_eq!(info.permissions, Permissions::NOBAN);
}

#[test]
fn no_evict_peers_are_never_trimmed_or_evicted() {
    let mut n = Node::new(|c| {
        c.watermarks = Some((2, 4));
        c.trim_grace = Duration::ZERO;
        c.trim_silence = Duration::ZERO;
        c.permissions = table(&[("10.9.0.0/16", Permissions::NO_EVICT)]);
    });
    let kept: Vec<ConnId> = (1..=3)
        .filter_map(|i| n.accept(&format!("10.9.0.{i}:8333")))
        .collect();
    let others: Vec<ConnId> = (1..=3)
        .filter_map(|i| n.accept(&format!("10.{i}.0.1:8333")))
        .collect();
    n.now += Duration::from_secs(1);
    n.step(Input::Trim);
    // As go-libp2p counts, kept connections are not candidates: the trim
    // closes candidates down to the low watermark of 2, so one of the
    // three others goes and no kept one.
    let live_others = others.iter().filter(|id| n.live(**id)).count();
    assert_eq!(live_others, 2);
    assert_eq!(n.core.stats().trimmed, 1);
    assert!(kept.iter().all(|id| n.live(*id)));

    // Eviction passes them over too, even with every protection rule off.
    let mut n = Node::new(|c| {
        c.max_inbound = 3;
        c.evict_inbound = true;
        c.eviction_policy = bare_policy();
        c.permissions = table(&[("10.9.0.0/16", Permissions::NO_EVICT)]);
    });
    for i in 1..=3 {
        assert!(n.accept(&format!("10.9.0.{i}:8333")).is_some());
    }
    assert!(n.accept("10.1.0.1:8333").is_none(), "nobody can be evicted");
    assert_eq!(n.core.stats().evicted, 0);
}

#[test]
fn the_entry_shows_every_matching_subnet_and_the_request() {
    let mut n = Node::new(|c| {
        c.target_outbound = 0;
        c.target_block_relay = 0;
        c.permissions = table(&[
            ("198.51.100.0/24", Permissions::RELAY),
            ("198.51.0.0/16", Permissions::MEMPOOL),
        ]);
    });
    let spec = ReqSpec::new(ConnId::caller(1), addr("198.51.100.7:8333"), true)
        .with_permissions(Permissions::NO_EVICT);
    let id = n.connect(spec).unwrap();
    assert_eq!(
        n.core.conn_info(id).unwrap().permissions,
        Permissions::RELAY | Permissions::MEMPOOL | Permissions::NO_EVICT
    );
    let inbound = n.accept("198.51.7.7:1").unwrap();
    assert_eq!(
        n.core.conn_info(inbound).unwrap().permissions,
        Permissions::MEMPOOL
    );
}
