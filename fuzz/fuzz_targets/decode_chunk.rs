//! libFuzzer target: arbitrary bytes as a chunk file.
//! `cargo fuzz run decode_chunk` (seed the corpus with format/tests/golden/).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    skyscan_fuzz::decode_chunk(data);
});
