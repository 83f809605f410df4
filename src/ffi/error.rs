//! Status codes, the thread-local error message, and the guard every
//! exported function runs its body in.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

use crate::{ConfigError, Error};

/// What a call did. Every function of the C API returns one, except
/// connmgr_last_error, connmgr_last_error_length and connmgr_status_name.
/// On anything but CONNMGR_STATUS_OK, connmgr_last_error describes the
/// failure.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnmgrStatus {
    /// The call succeeded.
    Ok = 0,
    /// A pointer argument that must not be NULL was NULL.
    NullArgument = 1,
    /// A string argument is not valid UTF-8.
    InvalidUtf8 = 2,
    /// An argument has a value the call cannot use (an address or subnet
    /// that does not parse, an unknown backoff kind, an index out of
    /// range, ...).
    InvalidArgument = 3,
    /// No live request or connection has this id.
    UnknownId = 4,
    /// The manager has been stopped; create a new one.
    Stopped = 5,
    /// The configuration cannot work; the message names the setting.
    Config = 6,
    /// An I/O operation failed (reading or writing a connection, starting
    /// a thread).
    Io = 7,
    /// A caller-provided buffer or array is too small; the call says how
    /// to learn the size needed.
    BufferTooSmall = 8,
    /// The library hit an internal error (a Rust panic) and caught it at
    /// the boundary. The message says where.
    Panic = 9,
    /// A waiting call's deadline passed; what it asked for still happens.
    TimedOut = 10,
}

impl ConnmgrStatus {
    /// The status's name as it appears in the header, without the prefix.
    fn name(self) -> &'static CStr {
        match self {
            ConnmgrStatus::Ok => c"OK",
            ConnmgrStatus::NullArgument => c"NULL_ARGUMENT",
            ConnmgrStatus::InvalidUtf8 => c"INVALID_UTF8",
            ConnmgrStatus::InvalidArgument => c"INVALID_ARGUMENT",
            ConnmgrStatus::UnknownId => c"UNKNOWN_ID",
            ConnmgrStatus::Stopped => c"STOPPED",
            ConnmgrStatus::Config => c"CONFIG",
            ConnmgrStatus::Io => c"IO",
            ConnmgrStatus::BufferTooSmall => c"BUFFER_TOO_SMALL",
            ConnmgrStatus::Panic => c"PANIC",
            ConnmgrStatus::TimedOut => c"TIMED_OUT",
        }
    }

    const ALL: [ConnmgrStatus; 11] = [
        ConnmgrStatus::Ok,
        ConnmgrStatus::NullArgument,
        ConnmgrStatus::InvalidUtf8,
        ConnmgrStatus::InvalidArgument,
        ConnmgrStatus::UnknownId,
        ConnmgrStatus::Stopped,
        ConnmgrStatus::Config,
        ConnmgrStatus::Io,
        ConnmgrStatus::BufferTooSmall,
        ConnmgrStatus::Panic,
        ConnmgrStatus::TimedOut,
    ];
}

/// A failed call: its status and what to tell the caller.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: ConnmgrStatus,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: ConnmgrStatus, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn null(what: &str) -> Self {
        Failure::new(ConnmgrStatus::NullArgument, format!("`{what}` is NULL"))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Failure::new(ConnmgrStatus::InvalidArgument, message)
    }

    /// An I/O failure; a timeout or a would-block on a non-blocking
    /// socket is CONNMGR_STATUS_TIMED_OUT, so callers can tell "no data
    /// yet" from a broken connection.
    pub(crate) fn io(err: &std::io::Error) -> Self {
        let status = match err.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                ConnmgrStatus::TimedOut
            }
            _ => ConnmgrStatus::Io,
        };
        Failure::new(status, err.to_string())
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        let status = match &err {
            Error::Stopped => ConnmgrStatus::Stopped,
            Error::UnknownId(_) => ConnmgrStatus::UnknownId,
            Error::NoAddressSource => ConnmgrStatus::Config,
            Error::AlreadySubmitted(_) | Error::NotOutbound(_) | Error::UnknownTag(_) => {
                ConnmgrStatus::InvalidArgument
            }
            Error::Spawn(_) => ConnmgrStatus::Io,
            Error::OnHandlerThread => ConnmgrStatus::InvalidArgument,
            Error::PeerBookFull => ConnmgrStatus::Io,
            Error::Crashed(_) => ConnmgrStatus::Stopped,
            Error::TimedOut => ConnmgrStatus::TimedOut,
            Error::Tag(_) => ConnmgrStatus::InvalidArgument,
            Error::DescriptorLimit { .. } => ConnmgrStatus::Config,
        };
        Failure::new(status, err.to_string())
    }
}

impl From<ConfigError> for Failure {
    fn from(err: ConfigError) -> Self {
        Failure::new(ConnmgrStatus::Config, err.to_string())
    }
}

/// What a guarded body returns.
pub(crate) type FfiResult<T = ()> = Result<T, Failure>;

thread_local! {
    /// The message of the last failed call on this thread; empty after a
    /// call that succeeded.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: String) {
    // A NUL inside the text would cut it short; show it instead.
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = text);
}

fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|e| {
        let mut e = e.borrow_mut();
        if !e.as_bytes().is_empty() {
            *e = CString::default();
        }
    });
}

/// Runs the body of exported function `name`: clears the thread's last
/// error, catches panics, and turns the outcome into a status (recording
/// the message on failure).
pub(crate) fn guard(name: &str, body: impl FnOnce() -> FfiResult) -> ConnmgrStatus {
    clear_last_error();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => ConnmgrStatus::Ok,
        Ok(Err(failure)) => {
            set_last_error(format!("{name}: {}", failure.message));
            failure.status
        }
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".to_owned());
            set_last_error(format!("{name}: internal error (caught panic): {why}"));
            ConnmgrStatus::Panic
        }
    }
}

/// Borrows the C string `p` (argument `what`) as UTF-8.
///
/// Undefined behaviour unless `p` is NULL or points to a NUL-terminated string that stays valid and
/// unchanged for `'a`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: not NULL, and the caller promises a NUL-terminated string
    // valid for 'a.
    let text = unsafe { CStr::from_ptr(p) };
    text.to_str().map_err(|e| {
        Failure::new(
            ConnmgrStatus::InvalidUtf8,
            format!(
                "`{what}` is not valid UTF-8 (bad byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// Borrows the object behind `p` (argument `what`).
///
/// Undefined behaviour unless `p` is NULL or points to a live `T` that stays valid for `'a` and that
/// nothing mutates meanwhile.
pub(crate) unsafe fn obj_arg<'a, T>(p: *const T, what: &str) -> FfiResult<&'a T> {
    // SAFETY: the caller promises `p` is NULL or valid for 'a.
    unsafe { p.as_ref() }.ok_or_else(|| Failure::null(what))
}

/// Checks that out-pointer `p` (argument `what`) is not NULL.
pub(crate) fn out_arg<T>(p: *mut T, what: &str) -> FfiResult<NonNull<T>> {
    NonNull::new(p).ok_or_else(|| Failure::null(what))
}

/// Writes `text` and a NUL into `buf` (argument `what`) of `cap` bytes.
///
/// Undefined behaviour unless `buf` is NULL or points to `cap` writable bytes.
pub(crate) unsafe fn write_text(buf: *mut c_char, cap: usize, text: &str, what: &str) -> FfiResult {
    let needed = text.len() + 1;
    if cap < needed {
        return Err(Failure::new(
            ConnmgrStatus::BufferTooSmall,
            format!("`{what}` has room for {cap} bytes but {needed} are needed (with the NUL)"),
        ));
    }
    let buf = out_arg(buf, what)?;
    // SAFETY: `buf` has `cap >= text.len() + 1` writable bytes (caller's
    // promise) and cannot overlap `text`, which Rust owns.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.as_ptr().cast::<u8>(), text.len());
        buf.as_ptr().add(text.len()).write(0);
    }
    Ok(())
}

/// The message of the last call on this thread that failed, or "" if the
/// last call succeeded. Never NULL.
///
/// The pointer stays valid until the next call into this library on the
/// same thread (any call except connmgr_last_error_length and
/// connmgr_status_name); copy the text to keep it. Messages are per
/// thread: a failure on one thread never shows on another.
#[no_mangle]
pub extern "C" fn connmgr_last_error() -> *const c_char {
    catch_unwind(|| {
        LAST_ERROR
            .try_with(|e| e.borrow().as_ptr())
            .unwrap_or(c"".as_ptr())
    })
    .unwrap_or(c"".as_ptr())
}

/// The length in bytes (without the NUL) of the message connmgr_last_error
/// returns; 0 if the last call on this thread succeeded.
#[no_mangle]
pub extern "C" fn connmgr_last_error_length() -> usize {
    catch_unwind(|| {
        LAST_ERROR
            .try_with(|e| e.borrow().as_bytes().len())
            .unwrap_or(0)
    })
    .unwrap_or(0)
}

/// The name of a status ("OK", "NULL_ARGUMENT", ...), or "UNKNOWN" for a
/// value that is no status. A static string: never freed, never NULL.
#[no_mangle]
pub extern "C" fn connmgr_status_name(status: c_int) -> *const c_char {
    ConnmgrStatus::ALL
        .iter()
        .find(|s| **s as c_int == status)
        .map_or(c"UNKNOWN".as_ptr(), |s| s.name().as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last() -> String {
        // SAFETY: connmgr_last_error never returns NULL, and the text is
        // read before any other call on this thread.
        unsafe { CStr::from_ptr(connmgr_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    /// A panic in a body becomes PANIC with a message, not an unwind.
    #[test]
    fn guard_turns_panics_into_a_status() {
        let status = guard("connmgr_test", || panic!("boom"));
        assert_eq!(status, ConnmgrStatus::Panic);
        assert!(last().contains("connmgr_test") && last().contains("boom"));
        assert_eq!(connmgr_last_error_length(), last().len());
    }

    /// A successful call clears the previous message.
    #[test]
    fn success_clears_the_message() {
        let status = guard("connmgr_test", || Err(Failure::invalid("bad")));
        assert_eq!(status, ConnmgrStatus::InvalidArgument);
        assert_eq!(last(), "connmgr_test: bad");
        assert_eq!(guard("connmgr_test", || Ok(())), ConnmgrStatus::Ok);
        assert_eq!(last(), "");
        assert_eq!(connmgr_last_error_length(), 0);
    }

    /// Embedded NULs in a message are shown, not truncating it.
    #[test]
    fn messages_keep_text_after_a_nul() {
        guard("f", || Err(Failure::invalid("a\0b")));
        assert_eq!(last(), "f: a\\0b");
    }

    /// Every status has a name, and unknown values say so.
    #[test]
    fn status_names() {
        for s in ConnmgrStatus::ALL {
            // SAFETY: connmgr_status_name returns static NUL-terminated text.
            let name = unsafe { CStr::from_ptr(connmgr_status_name(s as c_int)) };
            assert_ne!(name.to_bytes(), b"UNKNOWN");
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(connmgr_status_name(1000)) };
        assert_eq!(unknown.to_bytes(), b"UNKNOWN");
    }
}
