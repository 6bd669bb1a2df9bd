//! Corrupt files: mutate a valid database file and check that opening and reading it either
//! works or fails with a typed error, never a panic.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use cf_store::{u64_key, CfOptions, Db, Durability};
use flush::MemBackend;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A small valid database: 3 column families, 2 tables each, some overflow values, a
/// dropped column family, closed cleanly. Page size 1024.
pub fn sample_file() -> Vec<u8> {
    let backend = Arc::new(MemBackend::new());
    let db = Db::builder()
        .page_size(1024)
        .initial_extent_pages(4)
        .open_backend(backend.clone(), "sample")
        .expect("create");
    for (i, name) in ["a", "b", "c", "gone"].iter().enumerate() {
        let cf = db.create_cf(name, CfOptions::default()).expect("create cf");
        for round in 0..3u64 {
            let mut txn = cf.begin_write().expect("write");
            txn.set_durability(if round == 1 {
                Durability::None
            } else {
                Durability::Immediate
            });
            for table in ["t1", "t2"] {
                let mut t = txn.open_table(table).expect("table");
                for k in 0..40u64 {
                    let len = if k % 13 == 0 {
                        3000
                    } else {
                        40 + (k as usize * 7) % 200
                    };
                    t.insert(&u64_key(k + round * 10), &vec![(i as u8) ^ (k as u8); len])
                        .expect("insert");
                }
            }
            txn.commit().expect("commit");
        }
    }
    db.drop_cf("gone").expect("drop");
    db.close().expect("close");
    drop(db);
    backend.contents()
}

/// Opens `bytes` and reads every column family, table and entry (both directions). Returns
/// `Ok(entries read)` or the typed error met; panics only if the store panics.
pub fn open_and_read(bytes: Vec<u8>) -> Result<u64, cf_store::Error> {
    let db = Db::builder().open_backend(Arc::new(MemBackend::from_bytes(bytes)), "mutant")?;
    let mut n = 0;
    for name in db.list_cfs() {
        let read = db.cf(&name)?.begin_read()?;
        for table in read.list_tables()? {
            let t = read.open_table(&table)?;
            let forward: Vec<_> = t.iter().collect::<Result<_, _>>()?;
            let backward: Vec<_> = t.iter().rev().collect::<Result<_, _>>()?;
            // A table that reads must read consistently.
            assert_eq!(
                forward.len() as u64,
                t.len(),
                "{name}/{table}: len disagrees with iteration"
            );
            assert!(
                forward.iter().eq(backward.iter().rev()),
                "{name}/{table}: directions disagree"
            );
            for (k, v) in forward.iter().step_by(7) {
                assert_eq!(
                    t.get(k)?.as_ref(),
                    Some(v),
                    "{name}/{table}: get disagrees with iteration"
                );
            }
            n += forward.len() as u64;
        }
    }
    Ok(n)
}

/// One mutation of `base`, chosen by `rng`.
pub fn mutate(base: &[u8], rng: &mut SmallRng, page: usize) -> (String, Vec<u8>) {
    let mut b = base.to_vec();
    let pages = b.len() / page;
    match rng.gen_range(0..6) {
        0 => {
            let at = rng.gen_range(0..b.len());
            let bit = rng.gen_range(0..8);
            b[at] ^= 1 << bit;
            (format!("flip bit {bit} of byte {at}"), b)
        }
        1 => {
            for _ in 0..rng.gen_range(2..20) {
                let at = rng.gen_range(0..b.len());
                b[at] = rng.gen();
            }
            ("random bytes".into(), b)
        }
        2 => {
            let len = rng.gen_range(0..b.len());
            b.truncate(len);
            (format!("truncate to {len}"), b)
        }
        3 => {
            let p = rng.gen_range(0..pages);
            b[p * page..(p + 1) * page].fill(0);
            (format!("zero page {p}"), b)
        }
        4 => {
            let p = rng.gen_range(0..pages);
            let q = rng.gen_range(0..pages);
            let src = base[q * page..(q + 1) * page].to_vec();
            b[p * page..(p + 1) * page].copy_from_slice(&src);
            (format!("page {p} replaced by page {q}"), b)
        }
        _ => {
            let p = rng.gen_range(0..pages);
            rng.fill(&mut b[p * page..(p + 1) * page]);
            (format!("garbage page {p}"), b)
        }
    }
}

/// Runs `count` mutations of the sample file from `seed`; returns (opened, typed errors), or
/// the first mutation that panicked.
pub fn mutation_sweep(seed: u64, count: u64) -> Result<(u64, u64), String> {
    let base = sample_file();
    let mut rng = SmallRng::seed_from_u64(seed);
    let (mut opened, mut refused) = (0, 0);
    for i in 0..count {
        let (what, bytes) = mutate(&base, &mut rng, 1024);
        match catch_unwind(AssertUnwindSafe(|| open_and_read(bytes))) {
            Ok(Ok(_)) => opened += 1,
            Ok(Err(_)) => refused += 1,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                return Err(format!("mutation {i} of seed {seed} ({what}) panicked: {msg}"));
            }
        }
    }
    Ok((opened, refused))
}
