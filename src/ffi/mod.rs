//! The C API (cargo feature `ffi`), declared in `include/connmgr.h`.
//!
//! A thin layer over the Rust API: an opaque manager handle built from a
//! config object, function pointers with a `void *user_data` for events
//! and the address source, connection handles for the C side to read,
//! write and close, and snapshots copied into caller-provided structs. All
//! behaviour lives in the Rust API; this module only converts arguments
//! and results.
//!
//! Every exported function returns a [`ConnmgrStatus`] and catches panics
//! (returning `CONNMGR_STATUS_PANIC`), so nothing unwinds into C. On
//! failure, `connmgr_last_error()` gives a thread-local message. See
//! `docs/ffi.md` for ownership and threading rules.
//!
//! The header is generated from this module with cbindgen and checked
//! in; `tests/ffi.rs` fails when it drifts and says how to regenerate it.
#![warn(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
// Each function's safety contract is an "Undefined behaviour unless ..."
// sentence rather than a "# Safety" heading: the header's comments are
// read by C programmers, and the sentence reads the same in both.
#![allow(clippy::missing_safety_doc)]

mod advanced;
mod config;
mod conn;
mod decaying;
mod error;
mod events;
mod hooks;
mod logging;
mod manager;
mod memory;
mod peers;
mod queue;
mod seeding;
mod settings;
mod stats;
mod tor;
mod transport;

pub use advanced::*;
pub use config::*;
pub use conn::*;
pub use decaying::*;
pub use error::{
    connmgr_last_error, connmgr_last_error_length, connmgr_status_name, ConnmgrStatus,
};
pub use events::{
    ConnmgrAcceptedFn, ConnmgrAddressSourceFn, ConnmgrCallbacks, ConnmgrConnectedFn,
    ConnmgrDialFailedFn, ConnmgrDisconnectedFn, ConnmgrInboundClosedFn,
};
pub use hooks::*;
pub use logging::*;
pub use manager::*;
pub use memory::*;
pub use peers::*;
pub use queue::*;
pub use seeding::*;
pub use settings::*;
pub use stats::*;
pub use tor::*;
pub use transport::*;

/// Size of the address buffers this API fills (snapshot entries, the
/// address source's buffer): enough for any IP, DNS or onion address with
/// its port and the terminating NUL.
pub const CONNMGR_ADDR_MAX: usize = 256;
