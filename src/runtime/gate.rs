//! Gating hooks: user rules that veto a dial or an accepted connection.
//! They run on the dialer and accept threads, never on the handler.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use log::error;

use crate::addr::Addr;
use crate::guard::panic_message;

const LOG: &str = "connmgr";

/// A rule that allows an address (`Ok`) or refuses it with a reason.
pub(crate) type Gate = Arc<dyn Fn(&Addr) -> Result<(), String> + Send + Sync>;

/// Asks `gate` about `addr`. A panicking rule refuses: when a safety rule
/// breaks, letting the peer through is the wrong default.
pub(crate) fn check(gate: Option<&Gate>, addr: &Addr) -> Result<(), String> {
    let Some(gate) = gate else {
        return Ok(());
    };
    catch_unwind(AssertUnwindSafe(|| gate(addr))).unwrap_or_else(|panic| {
        let msg = panic_message(&*panic);
        error!(target: LOG, "gating rule panicked on {addr}: {msg}");
        Err(format!("gating rule panicked: {msg}"))
    })
}
