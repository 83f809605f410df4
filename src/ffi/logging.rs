//! The library's version, and its `log` output for C programs: a log
//! callback receives every record at or above a chosen level.

use std::ffi::{c_char, c_void};

use parking_lot::Mutex;

use super::error::{guard, ConnmgrStatus, Failure};
use super::events::{c_text, UserData};

/// The major version of the library this header belongs to.
pub const CONNMGR_VERSION_MAJOR: u32 = 0;
/// The minor version of the library this header belongs to.
pub const CONNMGR_VERSION_MINOR: u32 = 1;
/// The patch version of the library this header belongs to.
pub const CONNMGR_VERSION_PATCH: u32 = 0;

/// Log level for connmgr_set_log_callback: nothing.
pub const CONNMGR_LOG_OFF: u32 = 0;
/// Log level: errors only.
pub const CONNMGR_LOG_ERROR: u32 = 1;
/// Log level: warnings and errors.
pub const CONNMGR_LOG_WARN: u32 = 2;
/// Log level: information, warnings and errors.
pub const CONNMGR_LOG_INFO: u32 = 3;
/// Log level: debugging detail too.
pub const CONNMGR_LOG_DEBUG: u32 = 4;
/// Log level: everything.
pub const CONNMGR_LOG_TRACE: u32 = 5;

/// Receives one log record: its level (CONNMGR_LOG_ERROR to
/// CONNMGR_LOG_TRACE), its target (`"connmgr"` or a module of it) and its
/// message, both NUL-terminated and valid only during the call. It runs on
/// whichever thread logs (the caller's, the handler's, a dialer's), maybe
/// on several at once, so it must be thread-safe; it must not call
/// connmgr_set_log_callback.
pub type ConnmgrLogFn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        level: u32,
        target: *const c_char,
        message: *const c_char,
    ),
>;

/// The library's version as text, e.g. "0.1.0" (static; never free it).
/// Compare it with CONNMGR_VERSION_* to check the header and the library
/// match.
#[no_mangle]
pub extern "C" fn connmgr_version() -> *const c_char {
    static VERSION: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
    ) {
        Ok(v) => v,
        Err(_) => c"unknown",
    };
    VERSION.as_ptr()
}

/// A log callback that is set (not NULL).
type LogFn = unsafe extern "C" fn(*mut c_void, u32, *const c_char, *const c_char);

/// The callback in force and its user data.
static SINK: Mutex<Option<(LogFn, UserData)>> = Mutex::new(None);

/// The logger this module installs once; it forwards to [`SINK`].
struct CLogger;

impl log::Log for CLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        SINK.lock().is_some()
    }

    fn log(&self, record: &log::Record<'_>) {
        // Copied out, so the callback runs without the lock held.
        let Some((f, ud)) = SINK.lock().as_ref().map(|(f, ud)| (*f, ud.get())) else {
            return;
        };
        let level = match record.level() {
            log::Level::Error => CONNMGR_LOG_ERROR,
            log::Level::Warn => CONNMGR_LOG_WARN,
            log::Level::Info => CONNMGR_LOG_INFO,
            log::Level::Debug => CONNMGR_LOG_DEBUG,
            log::Level::Trace => CONNMGR_LOG_TRACE,
        };
        let target = c_text(record.target());
        let message = c_text(record.args());
        // SAFETY: the caller of connmgr_set_log_callback promised `f` is a
        // valid, thread-safe function; both strings live through the call.
        unsafe { f(ud, level, target.as_ptr(), message.as_ptr()) };
    }

    fn flush(&self) {}
}

static LOGGER: CLogger = CLogger;

/// Sends the library's log records at `max_level` (a CONNMGR_LOG_*
/// constant) and more severe to `callback`, with `user_data`. A NULL
/// callback or CONNMGR_LOG_OFF stops them. The first call installs the
/// library's logger for the whole process; if the program already
/// installed another Rust logger, that is CONNMGR_STATUS_CONFIG and the
/// records keep going there. A level above CONNMGR_LOG_TRACE is
/// CONNMGR_STATUS_INVALID_ARGUMENT. May be called again to change the
/// callback or the level, from any thread but never from the callback.
///
/// Undefined behaviour unless `callback` is NULL or a function that stays valid, and `user_data`
/// usable from any thread, until the callback is replaced or stopped.
#[no_mangle]
pub unsafe extern "C" fn connmgr_set_log_callback(
    callback: ConnmgrLogFn,
    user_data: *mut c_void,
    max_level: u32,
) -> ConnmgrStatus {
    guard("connmgr_set_log_callback", || {
        let filter = match max_level {
            CONNMGR_LOG_OFF => log::LevelFilter::Off,
            CONNMGR_LOG_ERROR => log::LevelFilter::Error,
            CONNMGR_LOG_WARN => log::LevelFilter::Warn,
            CONNMGR_LOG_INFO => log::LevelFilter::Info,
            CONNMGR_LOG_DEBUG => log::LevelFilter::Debug,
            CONNMGR_LOG_TRACE => log::LevelFilter::Trace,
            other => {
                return Err(Failure::invalid(format!(
                    "log level {other} is unknown: use CONNMGR_LOG_OFF to CONNMGR_LOG_TRACE"
                )))
            }
        };
        // Installing fails only when another logger came first; ours may
        // already be the one installed.
        if log::set_logger(&LOGGER).is_err() && !SINK_INSTALLED.load() {
            return Err(Failure::new(
                ConnmgrStatus::Config,
                "the program already installed a Rust logger; its records go there",
            ));
        }
        SINK_INSTALLED.store();
        *SINK.lock() = callback
            .filter(|_| filter != log::LevelFilter::Off)
            .map(|f| (f, UserData::new(user_data)));
        log::set_max_level(filter);
        Ok(())
    })
}

/// Whether this module's logger is the process's (set once, never unset).
struct Installed(std::sync::OnceLock<()>);

impl Installed {
    fn load(&self) -> bool {
        self.0.get().is_some()
    }

    fn store(&self) {
        let _ = self.0.set(());
    }
}

static SINK_INSTALLED: Installed = Installed(std::sync::OnceLock::new());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_constants_match_the_crate() {
        // SAFETY: connmgr_version returns a static NUL-terminated string.
        let text = unsafe { std::ffi::CStr::from_ptr(connmgr_version()) }
            .to_str()
            .unwrap();
        assert_eq!(text, env!("CARGO_PKG_VERSION"));
        let want =
            format!("{CONNMGR_VERSION_MAJOR}.{CONNMGR_VERSION_MINOR}.{CONNMGR_VERSION_PATCH}");
        assert_eq!(
            text, want,
            "update CONNMGR_VERSION_* with the crate version"
        );
    }
}
