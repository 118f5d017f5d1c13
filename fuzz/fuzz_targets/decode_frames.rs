//! libFuzzer target: arbitrary bytes as a stream of wire-protocol frames
//! (SPEC.md part 4). `cargo fuzz run decode_frames`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    skyscan_fuzz::decode_frames(data);
});
