//! Where automatic outbound connections get their addresses.

use crate::addr::Addr;

/// Supplies addresses for automatic outbound connections (btcd's
/// `GetNewAddress`). Called on a dialer pool thread, never on the handler
/// thread, so it may block briefly (for example on an address manager's
/// lock); a panic counts as "no address".
///
/// Implemented for closures `Fn() -> Option<Addr>`.
pub trait AddressSource: Send + Sync + 'static {
    /// The next address to try, or `None` when the source has none right
    /// now (the manager asks again after the retry duration).
    fn next_address(&self) -> Option<Addr>;
}

impl<F> AddressSource for F
where
    F: Fn() -> Option<Addr> + Send + Sync + 'static,
{
    fn next_address(&self) -> Option<Addr> {
        self()
    }
}
