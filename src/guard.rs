//! Running user code without letting its panics escape.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

const LOG: &str = "connmgr";

/// Runs user code `f`, turning a panic into `None` and an error log that
/// names `what`.
pub(crate) fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(panic) => {
            log::error!(target: LOG, "{what} panicked: {}", panic_message(&*panic));
            None
        }
    }
}

/// The text of a panic payload, when it has one.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
