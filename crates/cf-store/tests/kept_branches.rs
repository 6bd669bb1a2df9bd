//! Kept branches (`DbBuilder::kept_branches`) change no byte of the file: the same churn of
//! inserts, removes, aborted transactions, deleted tables and both durabilities, run with
//! no kept branches, a cache small enough to evict all the time, and the default, leaves
//! identical files and identical contents.

use std::sync::Arc;

use cf_store::{u64_key, CfOptions, ColumnFamily, Db, Durability};
use flush::{Backend, MemBackend};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Every entry of one table.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// The file's bytes, every table's entries, and the branches taken from the cache, after
/// the churn.
fn churn(kept: usize) -> (Vec<u8>, Vec<Entries>, u64) {
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
    let contents = cfs
        .iter()
        .flat_map(|cf| {
            let txn = cf.begin_read().unwrap();
            ["a", "b"]
                .iter()
                .map(|name| match txn.open_table(name) {
                    Ok(t) => t.iter().map(|e| e.unwrap()).collect(),
                    Err(_) => Vec::new(),
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let taken = cfs.iter().map(|cf| cf.stats().kept_branches_taken).sum();
    for cf in &cfs {
        assert!(cf.stats().kept_branches_held <= kept.max(1) + kept / 10 + 1);
    }
    db.close().unwrap();
    let mut bytes = vec![0; backend.len().unwrap() as usize];
    backend.read_at(&mut bytes, 0).unwrap();
    (bytes, contents, taken)
}

#[test]
fn kept_branches_change_no_byte_of_the_file() {
    let none = churn(0);
    assert!(
        none.1.iter().map(Vec::len).sum::<usize>() > 1_000,
        "a tree worth caching"
    );
    assert_eq!(none.2, 0, "none kept, none taken");
    let few = churn(2);
    assert!(few.0 == none.0, "two kept branches wrote a different file");
    assert_eq!(few.1, none.1);
    let default = churn(cf_store::DEFAULT_KEPT_BRANCHES);
    assert!(default.0 == none.0, "the default cache wrote a different file");
    assert_eq!(default.1, none.1);
    assert!(default.2 > 100, "the churn took only {} kept branches", default.2);
}
