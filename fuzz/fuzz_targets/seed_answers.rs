//! DNS seed answers: what seeding keeps is dialable, distinct, canonical
//! and not local unless allowed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| connmgr::fuzzing::seed_answers(data));
