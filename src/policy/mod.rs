//! Peer policy: which addresses and connections to allow, keep and drop.

pub(crate) mod anchors;
pub(crate) mod diversity;
pub(crate) mod gate;
