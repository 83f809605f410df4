//! The C API's string inputs: any bytes (cut at the first NUL) given to
//! every call that takes a string, on a manager that is never started (so
//! nothing is dialed). Each call succeeds or returns a status; none
//! panics or aborts, and state is undone so memory stays flat.
#![no_main]

use std::ffi::{c_char, CString};
use std::ptr;
use std::sync::OnceLock;

use connmgr::ffi::*;
use libfuzzer_sys::fuzz_target;

struct Manager(*mut ConnmgrManager);
// SAFETY: the C API's manager may be used from any thread.
unsafe impl Send for Manager {}
unsafe impl Sync for Manager {}

fn manager() -> *const ConnmgrManager {
    static M: OnceLock<Manager> = OnceLock::new();
    M.get_or_init(|| {
        let mut cfg = ptr::null_mut();
        let mut mgr = ptr::null_mut();
        // SAFETY: out-pointers to locals; the config is freed once used.
        unsafe {
            assert_eq!(connmgr_config_new(&mut cfg), ConnmgrStatus::Ok);
            assert_eq!(connmgr_manager_new(cfg, &mut mgr), ConnmgrStatus::Ok);
            connmgr_config_free(cfg);
        }
        Manager(mgr)
    })
    .0
}

fn c_string(data: &[u8]) -> CString {
    let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    CString::new(&data[..end]).expect("cut at the first NUL")
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let half = rest.len() / 2;
    let (a, b) = (c_string(&rest[..half]), c_string(&rest[half..]));
    let (a, b): (*const c_char, *const c_char) = (a.as_ptr(), b.as_ptr());
    let m = manager();
    // SAFETY: `m` is live, the strings outlive the calls, and every
    // out-pointer is a local.
    unsafe {
        match which % 7 {
            0 => {
                let mut id = 0;
                if connmgr_connect(m, a, which & 8 != 0, &mut id) == ConnmgrStatus::Ok {
                    connmgr_remove(m, id);
                }
            }
            1 => {
                if connmgr_ban(m, a, u64::from(which), b) == ConnmgrStatus::Ok {
                    connmgr_unban(m, a);
                }
            }
            2 => {
                connmgr_misbehaving(m, u64::from(which), 1, 1, a);
            }
            3 => {
                if connmgr_tag(m, a, b, 1) == ConnmgrStatus::Ok {
                    connmgr_untag(m, a, b);
                }
            }
            4 => {
                let mut still = false;
                if connmgr_protect(m, a, b) == ConnmgrStatus::Ok {
                    connmgr_unprotect(m, a, b, &mut still);
                }
            }
            _ => {
                let mut cfg = ptr::null_mut();
                assert_eq!(connmgr_config_new(&mut cfg), ConnmgrStatus::Ok);
                connmgr_config_set_socks5_proxy(cfg, a, true);
                connmgr_config_set_socks5_auth(cfg, a, b);
                connmgr_config_add_listen_addr(cfg, b);
                connmgr_config_free(cfg);
            }
        }
    }
});
