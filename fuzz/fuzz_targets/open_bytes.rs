//! Fuzz target: open a database from arbitrary bytes, then read every column family and
//! table in both directions. Must never panic (typed errors are fine).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = torture::corrupt::open_and_read(data.to_vec());
});
