//! The descriptor check at `start`, in a process of its own (it changes
//! the process's descriptor limit): the soft limit is raised as far as the
//! hard limit allows; past that, `start` refuses with a typed error unless
//! told to only warn.
#![cfg(unix)]
// rlim_t is u64 on some platforms only.
#![allow(clippy::unnecessary_cast)]

use connmgr::{ensure_descriptors, Config, ConnManager, Error, MemoryNetwork};

fn limits() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the rlimit we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    (lim.rlim_cur as u64, lim.rlim_max as u64)
}

fn set_limits(soft: u64, hard: u64) {
    let lim = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit reads only the rlimit we own.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}

fn manager(max_inbound: usize, check: bool) -> ConnManager {
    let net = MemoryNetwork::new();
    let config = Config::builder()
        .dialer(net.dialer())
        .max_inbound(max_inbound)
        .check_descriptors(check)
        .build();
    ConnManager::new(config).unwrap()
}

#[test]
fn start_raises_the_soft_limit_and_refuses_past_the_hard_one() {
    let (_, hard) = limits();
    // Room to raise: the soft limit goes up to what the config needs.
    set_limits(100, hard.min(4096));
    let m = manager(500, true);
    m.start().unwrap();
    // The in-memory dialer never blocks, so it runs on the handler thread
    // and no dialer sockets are counted.
    // 8 full-relay and 2 block-relay slots and a feeler by default.
    let needed = 500 + 8 + 2 + 1 + connmgr::RESERVED_DESCRIPTORS;
    assert!(
        limits().0 >= needed,
        "soft limit {:?}, needed {needed}",
        limits()
    );
    m.stop();

    // No room: the hard limit is below what is needed.
    set_limits(200, 200);
    let m = manager(500, true);
    match m.start() {
        Err(Error::DescriptorLimit { needed: n, limit }) => {
            assert_eq!((n, limit), (needed, 200));
        }
        other => panic!("expected a descriptor error, got {other:?}"),
    }
    assert!(!m.handle().is_running());
    let check = ensure_descriptors(needed);
    assert!(!check.fits());
    m.stop();

    // Told to only warn, it starts anyway.
    let m = manager(500, false);
    m.start().unwrap();
    assert!(m.handle().is_running());
    m.stop();
}
