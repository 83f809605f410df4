//! addrv2 payloads decoded by rust-bitcoin and converted to addresses: no
//! panic, and every converted entry converts back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    connmgr::fuzzing::addr_v2(data);
});
