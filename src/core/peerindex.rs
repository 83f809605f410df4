//! Which live connections each peer has, so that a peer's first tag finds
//! its connections without a pass over every connection.
//!
//! The index exists only once the tag store has been used: a node that
//! never tags pays nothing for it, neither memory nor the peer id each
//! entry needs. It is built with one pass when first asked and kept up to
//! date from then on.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::time::Instant;

use crate::policy::peerconns::PeerConns;
use crate::policy::tags::PeerId;
use crate::types::ConnId;

/// Live connections by peer id, with when each opened: a peer's first
/// tag finds everything it needs here, without a look at the records.
#[derive(Debug, Default)]
pub(super) struct LiveIndex {
    by_peer: HashMap<PeerId, PeerConns>,
}

impl LiveIndex {
    /// An empty index with room for `peers` peers, so the first build
    /// does not rehash as it grows.
    pub(super) fn with_capacity(peers: usize) -> Self {
        LiveIndex {
            by_peer: HashMap::with_capacity(peers),
        }
    }

    pub(super) fn opened(&mut self, peer: PeerId, id: ConnId, at: Instant) {
        self.by_peer.entry(peer).or_default().insert(id.0, at);
    }

    pub(super) fn closed(&mut self, peer: &PeerId, id: ConnId) {
        // One lookup, which also removes the entry of a peer's last one.
        if let Entry::Occupied(mut entry) = self.by_peer.entry(peer.clone()) {
            entry.get_mut().remove(id.0);
            if entry.get().is_empty() {
                entry.remove();
            }
        }
    }

    /// The live connections of `peer` (their keys) and when each opened.
    pub(super) fn of(&self, peer: &PeerId) -> impl Iterator<Item = (u64, Instant)> + '_ {
        self.by_peer.get(peer).into_iter().flat_map(PeerConns::iter)
    }

    /// Whether `peer` has a live connection.
    pub(super) fn has(&self, peer: &PeerId) -> bool {
        self.by_peer.contains_key(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_connections_per_peer() {
        let mut index = LiveIndex::default();
        let (x, y) = (PeerId::from("x"), PeerId::from("y"));
        let t = Instant::now();
        let keys = |index: &LiveIndex, p: &PeerId| {
            let mut k: Vec<u64> = index.of(p).map(|(k, _)| k).collect();
            k.sort_unstable();
            k
        };
        index.opened(x.clone(), ConnId(1), t);
        index.opened(x.clone(), ConnId(3), t);
        index.opened(x.clone(), ConnId(1), t);
        index.opened(y.clone(), ConnId(2), t);
        assert_eq!(keys(&index, &x), [1, 3]);
        index.closed(&x, ConnId(1));
        assert_eq!(keys(&index, &x), [3]);
        index.closed(&x, ConnId(3));
        assert!(keys(&index, &x).is_empty() && !index.has(&x));
        assert!(!index.by_peer.contains_key(&x), "empty entries go");
        index.closed(&y, ConnId(9));
        assert_eq!(keys(&index, &y), [2]);
        assert_eq!(index.of(&y).next(), Some((2, t)));
    }
}
