//! redb's point lookups, for comparison with cf-store's `point_lookups` example: the same
//! table (100,000 keys, `u64` big-endian, 100-byte values, loaded in transactions of 1,000
//! without durability), then THREADS threads making 1,000,000 `get`s each of the same
//! xorshift sequence of keys in one read transaction. Prints one JSON line.
//!
//!     cargo run --release -p bench --features peers --example redb_lookups -- [THREADS]

use std::time::Instant;

use anyhow::{ensure, Result};
use common::{KEYS, TABLE};
use redb::ReadableDatabase;

mod common;

const GETS: u64 = 1_000_000;

fn main() -> Result<()> {
    let threads: u64 = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 1,
    };
    let dir = tempfile::tempdir()?;
    let db = common::load_table(&dir.path().join("lookups.redb"))?;
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let db = &db;
                s.spawn(move || -> Result<()> {
                    let read = db.begin_read()?;
                    let table = read.open_table(TABLE)?;
                    // xorshift64, as in cf-store's example.
                    let mut x = 0x9E37_79B9_7F4A_7C15 ^ t;
                    for _ in 0..GETS {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        ensure!(
                            table.get(&(x % KEYS).to_be_bytes()[..])?.is_some(),
                            "a key is missing"
                        );
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("a lookup thread panicked")?;
        }
        Ok(())
    })?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"engine\": \"redb\", \"threads\": {threads}, \"lookups_per_sec\": {:.0}}}",
        (GETS * threads) as f64 / secs
    );
    Ok(())
}
