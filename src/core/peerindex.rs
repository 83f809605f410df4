//! Which live connections each peer has, so that a peer's first tag finds
//! its connections without a pass over every connection.
//!
//! The index exists only once the tag store has been used: a node that
//! never tags pays nothing for it, neither memory nor the peer id each
//! entry needs. It is built with one pass when first asked and kept up to
//! date from then on.

use std::collections::HashMap;

use crate::policy::tags::PeerId;
use crate::types::ConnId;

/// Live connections by peer id.
#[derive(Debug, Default)]
pub(super) struct LiveIndex {
    by_peer: HashMap<PeerId, Vec<ConnId>>,
}

impl LiveIndex {
    /// An empty index with room for `peers` peers, so the first build
    /// does not rehash as it grows.
    pub(super) fn with_capacity(peers: usize) -> Self {
        LiveIndex {
            by_peer: HashMap::with_capacity(peers),
        }
    }

    pub(super) fn opened(&mut self, peer: PeerId, id: ConnId) {
        let ids = self.by_peer.entry(peer).or_default();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }

    pub(super) fn closed(&mut self, peer: &PeerId, id: ConnId) {
        if let Some(ids) = self.by_peer.get_mut(peer) {
            ids.retain(|&other| other != id);
            if ids.is_empty() {
                self.by_peer.remove(peer);
            }
        }
    }

    /// The live connections of `peer`, in the order they opened.
    pub(super) fn of(&self, peer: &PeerId) -> &[ConnId] {
        self.by_peer.get(peer).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_connections_per_peer() {
        let mut index = LiveIndex::default();
        let (x, y) = (PeerId::from("x"), PeerId::from("y"));
        index.opened(x.clone(), ConnId(1));
        index.opened(x.clone(), ConnId(3));
        index.opened(x.clone(), ConnId(1));
        index.opened(y.clone(), ConnId(2));
        assert_eq!(index.of(&x), [ConnId(1), ConnId(3)]);
        index.closed(&x, ConnId(1));
        assert_eq!(index.of(&x), [ConnId(3)]);
        index.closed(&x, ConnId(3));
        assert!(index.of(&x).is_empty());
        assert!(!index.by_peer.contains_key(&x), "empty entries go");
        index.closed(&y, ConnId(9));
        assert_eq!(index.of(&y), [ConnId(2)]);
    }
}
