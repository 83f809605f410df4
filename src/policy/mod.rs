//! Peer policy algorithms: backoff, ban lists and scores, diversity,
//! eviction, permissions, tags and trimming.
//!
//! Each is a plain data structure driven with explicit time; the
//! [`Core`](crate::core::Core) applies them. They are public for users who
//! build their own policy on the same rules.

pub(crate) mod backoff;
pub(crate) mod banlist;
pub(crate) mod banscore;
pub(crate) mod diversity;
pub(crate) mod eviction;
pub(crate) mod networks;
pub(crate) mod peerconns;
pub(crate) mod permissions;
pub(crate) mod tags;
pub(crate) mod tagset;
pub(crate) mod trim;

pub use self::banlist::{BanList, BAN_FILE_HEADER, MAX_BAN_DURATION, MAX_BAN_FILE_BYTES};
pub use self::banscore::{DynamicBanScore, ScoreDisplay, HALF_LIFE_SECS, LIFETIME_SECS};
pub use self::eviction::{
    select_to_evict, CandidateNet, EvictionCandidate, EvictionKey, EvictionPolicy,
};
pub use self::networks::{Network, NetworkRules};
pub use self::permissions::{PermissionTable, Permissions};
pub use self::tags::PeerTags;
pub use self::trim::{
    select_victims, TrimCandidate, TrimPolicy, TrimPolicyError, DEFAULT_GRACE, DEFAULT_SILENCE,
};
