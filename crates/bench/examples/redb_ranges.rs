//! redb's short range scans, for comparison with cf-store's `range_scans` example: the same
//! table (100,000 keys, `u64` big-endian, 100-byte values, loaded in transactions of 1,000
//! without durability), then THREADS threads making SCANS scans each of LEN entries from the
//! same xorshift sequence of start keys in one read transaction. Prints one JSON line.
//!
//!     cargo run --release -p bench --features peers --example redb_ranges -- [THREADS [LEN [SCANS]]]

use std::time::Instant;

use anyhow::Result;
use common::{KEYS, TABLE};
use redb::ReadableDatabase;

mod common;

fn arg(n: usize, default: u64) -> Result<u64> {
    Ok(std::env::args().nth(n).map_or(Ok(default), |a| a.parse())?)
}

fn main() -> Result<()> {
    let threads = arg(1, 1)?;
    let len = arg(2, 10)?;
    let scans = arg(3, 200_000)?;
    let dir = tempfile::tempdir()?;
    let db = common::load_table(&dir.path().join("ranges.redb"))?;
    let start = Instant::now();
    let entries = std::thread::scope(|s| -> Result<u64> {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let db = &db;
                s.spawn(move || -> Result<u64> {
                    let read = db.begin_read()?;
                    let table = read.open_table(TABLE)?;
                    let mut entries = 0;
                    // xorshift64, as in cf-store's example.
                    let mut x = 0x9E37_79B9_7F4A_7C15 ^ t;
                    for _ in 0..scans {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let from = (x % KEYS).to_be_bytes();
                        for entry in table.range(&from[..]..)?.take(len as usize) {
                            let (_, value) = entry?;
                            // Copied out, as cf-store's range returns owned values.
                            entries += value.value().to_vec().len() as u64 / 100;
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
        "{{\"engine\": \"redb\", \"threads\": {threads}, \"len\": {len}, \"scans_per_sec\": {:.0}, \"entries\": {entries}}}",
        (scans * threads) as f64 / secs
    );
    Ok(())
}
