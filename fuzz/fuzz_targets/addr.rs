//! Address and subnet parsing: any text, no panic, printed forms parse
//! back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        connmgr::fuzzing::addr_and_subnet(text);
    }
});
