//! The open connections of one tagged peer, with when each opened.
//!
//! Nearly every peer has one connection, and a trim walks every peer's
//! set, so the first connection is kept inline: no allocation, and no
//! pointer to follow into cold memory, for the common peer. Further
//! connections (a peer that several requests or inbound connections name)
//! go to a list, searched linearly; a peer's connections are bounded by
//! the manager's own connection limits.

use std::time::Instant;

/// A set of connection keys, each with its open time.
#[derive(Debug, Default, Clone)]
pub(crate) struct PeerConns {
    /// Set whenever the set is not empty.
    first: Option<(u64, Instant)>,
    rest: Vec<(u64, Instant)>,
}

impl PeerConns {
    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// Adds `key` opened at `at`; a key already there keeps its time.
    pub(crate) fn insert(&mut self, key: u64, at: Instant) {
        if self.iter().any(|(k, _)| k == key) {
            return;
        }
        match self.first {
            None => self.first = Some((key, at)),
            Some(_) => self.rest.push((key, at)),
        }
    }

    /// Removes `key`; whether it was there.
    pub(crate) fn remove(&mut self, key: u64) -> bool {
        if self.first.is_some_and(|(k, _)| k == key) {
            self.first = self.rest.pop();
            return true;
        }
        match self.rest.iter().position(|(k, _)| *k == key) {
            Some(i) => {
                self.rest.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// The keys and open times, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, Instant)> + '_ {
        self.first.iter().chain(&self.rest).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn keys(c: &PeerConns) -> Vec<u64> {
        let mut k: Vec<u64> = c.iter().map(|(k, _)| k).collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn behaves_as_a_set_keeping_the_first_time() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let mut c = PeerConns::default();
        assert!(c.is_empty());
        c.insert(7, t0);
        c.insert(7, t1);
        c.insert(3, t1);
        c.insert(9, t1);
        assert_eq!(keys(&c), [3, 7, 9]);
        assert_eq!(c.iter().find(|(k, _)| *k == 7), Some((7, t0)));
        assert!(c.remove(7), "removing the inline one moves another in");
        assert!(!c.remove(7));
        assert_eq!(keys(&c), [3, 9]);
        assert!(c.remove(9) && c.remove(3));
        assert!(c.is_empty() && !c.remove(3));
        c.insert(5, t1);
        assert_eq!(keys(&c), [5]);
    }

    #[test]
    fn holds_no_allocation_for_one_connection() {
        let mut c = PeerConns::default();
        c.insert(1, Instant::now());
        assert_eq!(c.rest.capacity(), 0);
    }
}
