//! Anchors file contents: any bytes, no panic, at most MAX_ANCHORS kept.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| connmgr::fuzzing::anchors_file(data));
