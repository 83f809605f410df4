//! Everything a SOCKS5 or Tor proxy may answer to CONNECT, RESOLVE and
//! RESOLVE_PTR: no panic, bounded writes, clean host names only.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| connmgr::fuzzing::socks_replies(data));
