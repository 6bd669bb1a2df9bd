//! Kept branches (`DbBuilder::kept_branches`) change no byte of the file: the same churn of
//! inserts, removes, aborted transactions, deleted tables and both durabilities, run with
//! no kept branches, a cache small enough to evict all the time, and the default, leaves
//! identical files and identical contents. So do the sealed right edges kept with them:
//! commits of appends in key order, with inserts, overwrites and removes among them.

use std::sync::Arc;

use cf_store::{u64_key, CfOptions, ColumnFamily, Db, Durability};
use flush::{Backend, MemBackend};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Every entry of one table.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// What a run leaves: the file's bytes, every table's entries, and how many nodes it took
/// from what was kept (branches or sealed edges, by run).
type Outcome = (Vec<u8>, Vec<Entries>, u64);

/// A database in memory at 512-byte pages keeping `kept` branches, with two column families.
fn open(kept: usize) -> (Arc<dyn Backend>, Db, Vec<ColumnFamily>) {
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let db = Db::builder()
        .page_size(512)
        .kept_branches(kept)
        .initial_extent_pages(8)
        .open_backend(backend.clone(), "kept")
        .unwrap();
    let cfs: Vec<ColumnFamily> = (0..2)
        .map(|i| db.create_cf(&format!("cf{i}"), CfOptions::default()).unwrap())
        .collect();
    (backend, db, cfs)
}

/// Closes the database and returns what it left.
fn outcome(backend: Arc<dyn Backend>, db: Db, cfs: &[ColumnFamily], tables: &[&str], taken: u64) -> Outcome {
    let contents = cfs
        .iter()
        .flat_map(|cf| {
            let txn = cf.begin_read().unwrap();
            tables
                .iter()
                .map(|name| match txn.open_table(name) {
                    Ok(t) => t.iter().map(|e| e.unwrap()).collect(),
                    Err(_) => Vec::new(),
                })
                .collect::<Vec<_>>()
        })
        .collect();
    db.close().unwrap();
    let mut bytes = vec![0; backend.len().unwrap() as usize];
    backend.read_at(&mut bytes, 0).unwrap();
    (bytes, contents, taken)
}

/// `run` with none kept, two and the default: the same file and contents, at least
/// `entries` entries, and with the default more than `taken` taken.
fn same_file_whatever_is_kept(run: fn(usize) -> Outcome, entries: usize, taken: u64) {
    let none = run(0);
    assert!(
        none.1.iter().map(Vec::len).sum::<usize>() > entries,
        "a tree worth keeping nodes of"
    );
    assert_eq!(none.2, 0, "none kept, none taken");
    let few = run(2);
    assert!(few.0 == none.0, "two kept branches wrote a different file");
    assert_eq!(few.1, none.1);
    let default = run(cf_store::DEFAULT_KEPT_BRANCHES);
    assert!(default.0 == none.0, "the default cache wrote a different file");
    assert_eq!(default.1, none.1);
    assert!(default.2 > taken, "only {} taken", default.2);
}

/// The churn: what it leaves, with the branches taken from the cache.
fn churn(kept: usize) -> Outcome {
    let (backend, db, cfs) = open(kept);
    let mut rng = SmallRng::seed_from_u64(11);
    for round in 0..300u64 {
        let cf = &cfs[rng.gen_range(0..cfs.len())];
        let mut txn = cf.begin_write().unwrap();
        txn.set_durability(if rng.gen_bool(0.2) {
            Durability::Immediate
        } else {
            Durability::None
        });
        if rng.gen_bool(0.03) {
            assert!(txn.delete_table("b").is_ok());
        }
        for table in ["a", "b"] {
            let mut t = txn.open_table(table).unwrap();
            for _ in 0..rng.gen_range(1..40) {
                // 40-byte keys: nine children a branch, so trees of three and four levels.
                let mut k = vec![b'k'; 32];
                k.extend(u64_key(rng.gen_range(0..2_000)));
                if rng.gen_bool(0.3) {
                    t.remove(&k).unwrap();
                } else {
                    let len = if rng.gen_bool(0.05) {
                        900
                    } else {
                        rng.gen_range(0..60)
                    };
                    t.insert(&k, &vec![round as u8; len]).unwrap();
                }
            }
        }
        if rng.gen_bool(0.05) {
            drop(txn);
        } else {
            txn.commit().unwrap();
        }
    }
    let taken = cfs.iter().map(|cf| cf.stats().kept_branches_taken).sum();
    for cf in &cfs {
        assert!(cf.stats().kept_branches_held <= kept.max(1) + kept / 10 + 1);
    }
    outcome(backend, db, &cfs, &["a", "b"], taken)
}

#[test]
fn kept_branches_change_no_byte_of_the_file() {
    same_file_whatever_is_kept(churn, 1_000, 100);
}

/// Commits of appends in key order (leaves that grow to sixteen pages and seal) into three
/// tables of two column families, with inserts behind the edge, overwrites of the last key,
/// removes at the end, overflow values, aborted transactions, deleted tables and both
/// durabilities: what they leave, with the sealed edges appended past unread.
fn appends(kept: usize) -> Outcome {
    let (backend, db, cfs) = open(kept);
    let tables = ["a", "b", "c"];
    let mut next = [[0u64; 3]; 2];
    let mut rng = SmallRng::seed_from_u64(12);
    for round in 0..400u64 {
        let c = rng.gen_range(0..cfs.len());
        let mut txn = cfs[c].begin_write().unwrap();
        txn.set_durability(if rng.gen_bool(0.1) {
            Durability::Immediate
        } else {
            Durability::None
        });
        if rng.gen_bool(0.01) {
            assert!(txn.delete_table("c").is_ok());
            next[c][2] = 0;
        }
        for (t, name) in tables.iter().enumerate() {
            if rng.gen_bool(0.3) {
                continue;
            }
            let mut table = txn.open_table(name).unwrap();
            for _ in 0..rng.gen_range(1..30) {
                let roll = rng.gen_range(0..100);
                let key = match roll {
                    // Behind the edge: into a sealed leaf, which is then cut and rewritten.
                    0..=2 if next[c][t] > 0 => u64_key(rng.gen_range(0..next[c][t])),
                    // The last key again: an overwrite at the edge.
                    3..=4 if next[c][t] > 0 => u64_key(next[c][t] - 1),
                    5..=6 if next[c][t] > 0 => {
                        next[c][t] -= 1;
                        table.remove(&u64_key(next[c][t])).unwrap();
                        continue;
                    }
                    _ => {
                        next[c][t] += 1;
                        u64_key(next[c][t] - 1)
                    }
                };
                // Now and then a value too long for a leaf: an overflow at the edge.
                let len = if rng.gen_bool(0.03) {
                    900
                } else {
                    rng.gen_range(20..140)
                };
                table.insert(&key, &vec![round as u8; len]).unwrap();
            }
        }
        if rng.gen_bool(0.05) {
            drop(txn);
            next[c] = [0; 3];
            // An aborted transaction's appends are gone: find each table's end again.
            let read = cfs[c].begin_read().unwrap();
            for (t, name) in tables.iter().enumerate() {
                if let Ok(table) = read.open_table(name) {
                    if let Some(entry) = table.iter().last() {
                        let key = entry.unwrap().0;
                        next[c][t] = u64::from_be_bytes(key[..8].try_into().unwrap()) + 1;
                    }
                }
            }
        } else {
            txn.commit().unwrap();
        }
    }
    let taken = cfs.iter().map(|cf| cf.stats().sealed_edges_taken).sum();
    outcome(backend, db, &cfs, &tables, taken)
}

#[test]
fn sealed_edges_change_no_byte_of_the_file() {
    same_file_whatever_is_kept(appends, 2_000, 50);
}
