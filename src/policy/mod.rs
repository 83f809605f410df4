//! Peer policy: which addresses and connections to allow, keep and drop.
//!
//! The algorithms here are plain data structures driven with explicit
//! time; the [`Core`](crate::Core) applies them.

pub(crate) mod anchors;
pub mod bans;
pub mod banscore;
pub(crate) mod diversity;
pub mod eviction;
pub(crate) mod gate;
pub mod tags;
pub mod trim;
