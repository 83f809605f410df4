//! Where automatic outbound connections get their addresses.

use crate::addr::Addr;

/// Supplies addresses for automatic outbound connections (btcd's
/// `GetNewAddress`). Called on a dialer pool thread, not on the handler
/// thread (unless it says it [never blocks](Self::never_blocks)), so it
/// may block briefly (for example on an address manager's lock); a panic
/// counts as "no address".
///
/// Implemented for closures `Fn() -> Option<Addr>`, which may block.
pub trait AddressSource: Send + Sync + 'static {
    /// The next address to try, or `None` when the source has none right
    /// now (the manager asks again after the retry duration).
    fn next_address(&self) -> Option<Addr>;

    /// Whether [`next_address`](Self::next_address) always returns at once
    /// (an address book in memory behind no shared lock). Then the
    /// manager asks on its handler thread, without a pool round trip.
    /// Default `false`. Saying `true` for a source that can block stalls
    /// the whole manager while it does.
    fn never_blocks(&self) -> bool {
        false
    }
}

impl<F> AddressSource for F
where
    F: Fn() -> Option<Addr> + Send + Sync + 'static,
{
    fn next_address(&self) -> Option<Addr> {
        self()
    }
}
