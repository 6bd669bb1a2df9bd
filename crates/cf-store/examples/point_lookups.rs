//! Point lookups on a cached table: the read path's speed, which the sweep (writes) does
//! not measure. Loads 100,000 keys with 100-byte values in transactions of 1,000, then each
//! of THREADS threads makes GETS (default 1,000,000) `get`s of random keys in one snapshot,
//! and prints the lookups per second as one JSON line. INDEX_BYTES sets
//! `DbBuilder::index_bytes` (0: lookups parse every node). ARCHITECTURE.md, "Pages are
//! checked once" and "Indexed nodes".
//!
//!     cargo run --release -p cf-store --example point_lookups -- [THREADS [INDEX_BYTES [GETS]]]

use std::time::Instant;

use cf_store::{u64_key, DEFAULT_INDEX_BYTES};
use common::KEYS;

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let threads: u64 = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 1,
    };
    let index_bytes: u64 = match std::env::args().nth(2) {
        Some(arg) => arg.parse()?,
        None => DEFAULT_INDEX_BYTES,
    };
    let gets: u64 = match std::env::args().nth(3) {
        Some(arg) => arg.parse()?,
        None => 1_000_000,
    };
    let dir = tempfile::tempdir()?;
    let (db, cf) = common::load_table(&dir.path().join("lookups.cf"), index_bytes)?;
    let start = Instant::now();
    std::thread::scope(|s| -> Result<(), cf_store::Error> {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let cf = cf.clone();
                s.spawn(move || -> Result<(), cf_store::Error> {
                    let read = cf.begin_read()?;
                    let table = read.open_table("t")?;
                    // xorshift64: a fixed sequence of keys per thread.
                    let mut x = 0x9E37_79B9_7F4A_7C15 ^ t;
                    for _ in 0..gets {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        assert!(table.get(&u64_key(x % KEYS))?.is_some());
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
    let index = db.stats()?.index;
    println!(
        "{{\"threads\": {threads}, \"index_bytes\": {index_bytes}, \"lookups_per_sec\": {:.0}, \"index_hits\": {}, \"index_built\": {}}}",
        (gets * threads) as f64 / secs,
        index.hits,
        index.built
    );
    Ok(())
}
