//! The deterministic simulator: seeded random worlds driven through the
//! bare Core and through the whole threaded manager, with invariants
//! checked after every step. A failing seed reproduces its run exactly:
//!
//! ```text
//! CONNMGR_SIM_SEED=1234 cargo test --test sim -- --nocapture
//! CONNMGR_SIM_OPS=10000000 cargo test --release --test sim -- --nocapture
//! ```
//!
//! `CONNMGR_SIM_OPS` sets the total number of Core operations (default
//! 200,000, spread over many seeds); `CONNMGR_SIM_SEED` runs one seed.

mod core_sim;
mod manager_sim;
mod world;

use std::time::Instant;

/// Operations per seed in the Core simulation.
const OPS_PER_SEED: u64 = 2_000;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn run_seed(seed: u64, ops: u64, t0: Instant) -> u64 {
    run_seed_tally(seed, ops, t0).0
}

fn run_seed_tally(seed: u64, ops: u64, t0: Instant) -> (u64, [u64; 4]) {
    let mut sim = core_sim::Sim::new(seed, t0);
    if let Err(msg) = sim.run(ops) {
        panic!(
            "seed {seed} broke an invariant after {} ops: {msg}\n\
             reproduce: CONNMGR_SIM_SEED={seed} CONNMGR_SIM_OPS={ops} cargo test --test sim",
            sim.ops
        );
    }
    let (a, b, c, d) = sim.tally();
    (sim.digest(), [a, b, c, d])
}

#[test]
fn core_invariants_hold_over_random_worlds() {
    let start = Instant::now();
    let total = env_u64("CONNMGR_SIM_OPS").unwrap_or(200_000);
    let seeds: Vec<u64> = match env_u64("CONNMGR_SIM_SEED") {
        Some(seed) => vec![seed],
        None => (0..total.div_ceil(OPS_PER_SEED)).collect(),
    };
    let per_seed = total.div_ceil(seeds.len() as u64);
    let mut sum = [0u64; 4];
    for &seed in &seeds {
        let (_, t) = run_seed_tally(seed, per_seed, start);
        sum.iter_mut().zip(t).for_each(|(s, t)| *s += t);
    }
    println!(
        "core simulation: {} seeds x {per_seed} ops in {:?}; {} connections, {} trims, {} evictions (last incarnations), {} bans",
        seeds.len(),
        start.elapsed(),
        sum[0], sum[1], sum[2], sum[3]
    );
}

/// Two Cores fed the same inputs produce the same effects and change
/// sets, bit for bit.
#[test]
fn core_runs_are_deterministic() {
    let t0 = Instant::now();
    for seed in [3u64, 77, 1_000_003] {
        let a = run_seed(seed, 3_000, t0);
        let b = run_seed(seed, 3_000, t0);
        assert_eq!(a, b, "seed {seed} gave two different runs");
    }
    let (one, two) = (run_seed(1, 3_000, t0), run_seed(2, 3_000, t0));
    assert_ne!(one, two, "the digest sees nothing");
}

/// The threaded manager on a manual clock and the in-memory network: a
/// seeded sequence of calls, inbound floods, bans, trims and restarts
/// with the ban and anchors files, checked after each call.
#[test]
fn manager_invariants_hold_over_random_worlds() {
    let start = Instant::now();
    let ops = env_u64("CONNMGR_SIM_MANAGER_OPS").unwrap_or(8_000);
    let seeds = 8u64;
    let mut opened = 0;
    for seed in 0..seeds {
        match manager_sim::run(seed, ops / seeds) {
            Ok(n) => opened += n,
            Err(msg) => panic!("manager seed {seed}: {msg}"),
        }
    }
    assert!(opened > 0, "no connection was ever opened");
    println!(
        "manager simulation: {ops} operations, {opened} connections in {:?}",
        start.elapsed()
    );
}
