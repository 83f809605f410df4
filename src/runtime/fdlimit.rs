//! The descriptor check: does the process's open-file limit leave room for
//! every connection the configuration allows? Bitcoin Core caps its
//! connections by the descriptors it can get; libp2p's resource manager
//! checks its limits against the same number. A node configured for more
//! connections than it can open would otherwise find out under load, as
//! accept and connect errors.

#[cfg(unix)]
use log::warn;

#[cfg(unix)]
const LOG: &str = "connmgr";

/// Descriptors kept for everything but peer connections: the ban and
/// anchors files, name lookups, the embedding program's own files.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// The process's open-descriptor limit after [`ensure_descriptors`] tried
/// to raise it, and what the configuration needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DescriptorCheck {
    /// What the configuration can use at once.
    pub needed: u64,
    /// The soft limit now in force (`None` where the platform has none
    /// that this crate reads).
    pub limit: Option<u64>,
}

impl DescriptorCheck {
    /// Whether the limit leaves room for what is needed.
    pub fn fits(&self) -> bool {
        self.limit.is_none_or(|l| l >= self.needed)
    }
}

/// Raises the soft open-descriptor limit towards `needed` (never above the
/// hard limit, never lowering it) and reports the result. Safe to call
/// from any thread; it changes only the process's soft limit.
pub fn ensure_descriptors(needed: u64) -> DescriptorCheck {
    DescriptorCheck {
        needed,
        limit: raise_soft_limit(needed),
    }
}

#[cfg(unix)]
// rlim_t is u64 on some platforms only.
#[allow(clippy::unnecessary_cast)]
fn raise_soft_limit(needed: u64) -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the rlimit we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    let (soft, hard) = (lim.rlim_cur as u64, lim.rlim_max as u64);
    if soft >= needed {
        return Some(soft);
    }
    let want = needed.min(hard);
    let raised = libc::rlimit {
        rlim_cur: want as libc::rlim_t,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit reads only the rlimit we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        Some(want)
    } else {
        warn!(target: LOG, "cannot raise the descriptor limit from {soft} to {want}");
        Some(soft)
    }
}

#[cfg(not(unix))]
fn raise_soft_limit(_needed: u64) -> Option<u64> {
    None
}
