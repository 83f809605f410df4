mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use common::*;
use connmgr::*;

#[test]
fn target_fills_from_source_over_memory_network() {
    let net = MemoryNetwork::new();
    let mut listeners = Vec::new();
    for n in 0..20 {
        listeners.push(net.listen(mem_addr(n)).unwrap());
    }
    let next = Arc::new(AtomicU32::new(0));
    let held = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let h2 = held.clone();
    let config = Config::builder()
        .dialer(net.dialer())
        .target_outbound(5)
        .feeler_interval(None)
        .address_source(move || Some(mem_addr(next.fetch_add(1, Ordering::SeqCst) % 20)))
        .on_connection(move |_, _req, conn| h2.lock().push(conn))
        .build();
    let m = ConnManager::new(config).unwrap();
    m.start().unwrap();
    assert!(
        // Five full-relay and the default two block-relay-only slots.
        wait_until(|| {
            let c = m.handle().counts();
            (
                c.full_relay_outbound,
                c.block_relay_outbound,
                c.automatic_outbound,
            ) == (5, 2, 7)
        }),
        "{:?}",
        m.handle().snapshot()
    );
    // Counts are published before the callbacks run.
    assert!(wait_until(|| held.lock().len() == 7));
    m.stop();
    assert!(!m.handle().snapshot().running);
    assert!(held.lock().iter().all(|c| c.is_closed()));
}
