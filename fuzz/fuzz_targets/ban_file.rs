//! Ban file contents: any bytes, no panic; what loads saves and loads
//! again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| connmgr::fuzzing::ban_file(data));
