//! The upper bound of every size and duration setting.
//!
//! [`Config::validate`](crate::Config::validate) (and so
//! [`ConnManager::new`](crate::ConnManager::new) and the C API's manager
//! constructor) rejects a setting above its bound with
//! [`ConfigError::TooLarge`](crate::ConfigError::TooLarge) or
//! [`ConfigError::TooLong`](crate::ConfigError::TooLong), which name the
//! setting and the bound. The bounds are far above any sensible value;
//! they exist so that no setting can make the manager allocate without
//! limit, spawn threads until the system refuses, or overflow time.

use std::time::Duration;

/// Most automatic outbound connections of one type (`target_outbound`,
/// `target_block_relay`).
pub const MAX_TARGET_OUTBOUND: usize = 4_096;

/// Most live inbound connections (`max_inbound`).
pub const MAX_INBOUND: usize = 1_000_000;

/// Most dialer threads (`dialer_pool_size`).
pub const MAX_DIALER_POOL: usize = 512;

/// Most queued dial jobs (`dial_queue_size`); the queue is allocated up
/// front.
pub const MAX_DIAL_QUEUE: usize = 65_536;

/// Largest trimming watermark (`watermarks`).
pub const MAX_WATERMARK: usize = 1_000_000;

/// Most anchors saved at stop (`anchor_count`).
pub const MAX_ANCHORS: usize = 64;

/// Largest peer book (`max_peers`).
pub const MAX_PEERS: usize = 10_000_000;

/// Largest ban list (`max_bans`).
pub const MAX_BANS: usize = 10_000_000;

/// Most events waiting in the events receiver (`max_queued_events`).
pub const MAX_QUEUED_EVENTS: usize = 16_777_216;

/// Most subnet permission entries (`permissions`): each inbound
/// connection and dial looks through them.
pub const MAX_PERMISSION_ENTRIES: usize = 4_096;

/// Most registered decaying tags.
pub const MAX_DECAYING_TAGS: usize = 256;

/// Longest duration setting: retry waits, stable time, dial timeout, ban
/// duration, trim grace and silence, decay intervals (one year).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Most host-name lookups [`TcpDialer`](crate::TcpDialer) runs at once in
/// the process. Each runs on a helper thread, because the system resolver
/// cannot be interrupted; a dial stops waiting for its lookup at its
/// deadline or cancel, and the lookup finishes alone within the system
/// resolver's own timeout. Past the bound, dials to names fail at once
/// instead of piling up threads behind a silent DNS server.
pub const MAX_NAME_LOOKUPS: usize = 64;

/// Most calls left waiting for the handler thread. A caller that finds
/// this many queued (a loop tagging a million peers, say) waits until the
/// handler has caught up before its call is queued, so a flood of calls
/// costs time, not memory. The manager's own threads never wait here: the
/// handler thread cannot wait for itself, and callbacks and dialers may
/// call in at any time.
pub const MAX_QUEUED_REQUESTS: usize = 8_192;
