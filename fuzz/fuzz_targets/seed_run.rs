//! All of seed_from_dns on a fuzzed answer: what it gives is kept and
//! capped.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| connmgr::fuzzing::seed_run(data));
