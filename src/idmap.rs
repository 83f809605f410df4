//! Maps keyed by the ids and serials the manager hands out itself.
//!
//! std's default SipHash protects maps whose keys an attacker chooses;
//! these keys are counters we assign, so a multiply-and-fold hash is safe
//! and several times cheaper on the handler's hot path.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` for manager-assigned integer keys.
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Hashes integer keys by one multiplication with an odd constant and a
/// fold of the high bits, which spreads sequential ids over the buckets.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by integer keys; kept correct for any other key.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let m = (self.0 ^ n).wrapping_mul(K);
        self.0 = m ^ (m >> 32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_spread() {
        let mut seen = std::collections::HashSet::new();
        for n in 0..10_000u64 {
            let mut h = IdHasher::default();
            h.write_u64(n);
            seen.insert(h.finish() & 0xfff);
        }
        assert!(
            seen.len() > 3_000,
            "low bits cover {} of 4096 buckets",
            seen.len()
        );
    }
}
