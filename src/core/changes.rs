//! What changed in the Core since the shell last asked: the shell
//! publishes exactly this, so published state is never decided twice.

use crate::core::info::{ConnInfo, Stats};
use crate::policy::banlist::BanEntry;
use crate::policy::tags::{PeerId, TagInfo};
use crate::types::{ConnId, ConnState};

/// The changes of one batch, filled by
/// [`Core::take_changes`](super::Core::take_changes). Reuse one value
/// across batches: taking changes clears it first and keeps its buffers.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Changes {
    /// Requests and connections whose published entry changed, as they
    /// are now.
    pub conns: Vec<ConnInfo>,
    /// Requests and connections the Core no longer tracks, with the final
    /// state and retry count of each.
    pub finished: Vec<Finished>,
    /// Peers whose tags, connections or protection changed.
    pub peers: Vec<PeerChange>,
    /// The bans in force, when the ban list changed.
    pub bans: Option<Vec<BanEntry>>,
    /// The registered decaying tags, when they changed.
    pub decaying: Option<Vec<String>>,
    /// Running totals.
    pub stats: Stats,
}

impl Changes {
    /// Whether nothing but the totals changed.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
            && self.finished.is_empty()
            && self.peers.is_empty()
            && self.bans.is_none()
            && self.decaying.is_none()
    }

    pub(crate) fn clear(&mut self) {
        self.conns.clear();
        self.finished.clear();
        self.peers.clear();
        self.bans = None;
        self.decaying = None;
    }
}

/// A request or connection that left the Core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finished {
    /// Its id.
    pub id: ConnId,
    /// Its final state.
    pub state: ConnState,
    /// Its retry count when it finished.
    pub retries: u32,
}

/// One peer's published data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerChange {
    /// The peer.
    pub peer: PeerId,
    /// Its tags and connections, or `None` when the tag store forgot it.
    pub info: Option<TagInfo>,
    /// The tags it is protected under (empty: not protected).
    pub protections: Vec<String>,
}
