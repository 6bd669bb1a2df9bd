//! Short range scans on a cached table: the read path's scans, which the sweep (writes) does
//! not measure. Loads the table of `point_lookups` (100,000 keys, 100-byte values, in
//! transactions of 1,000), then each of THREADS threads makes SCANS (default 200,000) scans
//! of LEN (default 10) entries from random keys in one snapshot, and prints the scans per
//! second as one JSON line. INDEX_BYTES sets `DbBuilder::index_bytes`. Compare with
//! `bench`'s `redb_ranges` example, which runs the same loop on redb.
//!
//!     cargo run --release -p cf-store --example range_scans -- [THREADS [LEN [INDEX_BYTES [SCANS]]]]

use std::time::Instant;

use cf_store::{u64_key, DEFAULT_INDEX_BYTES};
use common::KEYS;

mod common;

fn arg(n: usize, default: u64) -> Result<u64, std::num::ParseIntError> {
    std::env::args().nth(n).map_or(Ok(default), |a| a.parse())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let threads = arg(1, 1)?;
    let len = arg(2, 10)?;
    let index_bytes = arg(3, DEFAULT_INDEX_BYTES)?;
    let scans = arg(4, 200_000)?;
    let dir = tempfile::tempdir()?;
    let (_db, cf) = common::load_table(&dir.path().join("ranges.cf"), index_bytes)?;
    let start = Instant::now();
    let entries = std::thread::scope(|s| -> Result<u64, cf_store::Error> {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let cf = cf.clone();
                s.spawn(move || -> Result<u64, cf_store::Error> {
                    let read = cf.begin_read()?;
                    let table = read.open_table("t")?;
                    let mut entries = 0;
                    // xorshift64: a fixed sequence of start keys per thread.
                    let mut x = 0x9E37_79B9_7F4A_7C15 ^ t;
                    for _ in 0..scans {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        for entry in table.range(u64_key(x % KEYS).as_slice()..).take(len as usize) {
                            let (_, value) = entry?;
                            entries += value.len() as u64 / 100;
                        }
                    }
                    Ok(entries)
                })
            })
            .collect();
        let mut entries = 0;
        for worker in workers {
            entries += worker.join().expect("a scan thread panicked")?;
        }
        Ok(entries)
    })?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"threads\": {threads}, \"len\": {len}, \"index_bytes\": {index_bytes}, \"scans_per_sec\": {:.0}, \"entries\": {entries}}}",
        (scans * threads) as f64 / secs,
    );
    Ok(())
}
