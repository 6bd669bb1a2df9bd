//! Pages are checked once: a page read from the file is checked against its checksum, and
//! the read cache remembers that it passed, so later reads take it without checking again.
//! (That a page that fails is refused at every read is a unit test beside the B+tree's
//! tests, `the_read_cache_checks_a_good_page_once_and_a_bad_one_every_time`: at open,
//! recovery reads every page, so a page corrupted on disk never gets that far here.)

use std::sync::Arc;

use cf_store::{u64_key, CfOptions, Db, Durability, Error};
use flush::{Backend, MemBackend};

const KEYS: u64 = 400;

fn value(k: u64) -> Vec<u8> {
    format!("value {k:05} {}", "v".repeat(200)).into_bytes()
}

/// The bytes of a closed database with `KEYS` keys in table "t" of column family "cf".
fn database() -> Vec<u8> {
    let backend = Arc::new(MemBackend::new());
    let db = Db::builder()
        .open_backend(backend.clone() as Arc<dyn Backend>, "mem")
        .unwrap();
    let cf = db.create_cf("cf", CfOptions::default()).unwrap();
    let mut txn = cf.begin_write().unwrap();
    txn.set_durability(Durability::Immediate);
    {
        let mut t = txn.open_table("t").unwrap();
        for k in 0..KEYS {
            t.insert(&u64_key(k), &value(k)).unwrap();
        }
    }
    txn.commit().unwrap();
    db.close().unwrap();
    backend.contents()
}

/// Opened with no indexed nodes, so that every lookup reads its pages through the read cache
/// (an indexed node is searched without a read: `tests/indexed_lookups.rs`).
fn open(bytes: Vec<u8>) -> Db {
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::from_bytes(bytes));
    Db::builder()
        .index_bytes(0)
        .open_backend(backend, "reopened")
        .unwrap()
}

fn get(db: &Db, k: u64) -> Result<Option<Vec<u8>>, Error> {
    let cf = db.cf("cf")?;
    let read = cf.begin_read()?;
    let table = read.open_table("t")?;
    table.get(&u64_key(k))
}

#[test]
fn a_good_page_is_checked_once_then_read_as_known_good() {
    let db = open(database());
    for k in 0..KEYS {
        assert_eq!(get(&db, k).unwrap(), Some(value(k)));
    }
    let first = db.stats().unwrap().cache;
    assert!(
        first.misses > 0,
        "opening read the file (recovery reads every page)"
    );
    assert!(
        first.checked_pages > 0 && first.checked_pages <= first.inserted_pages,
        "{first:?}"
    );

    for k in 0..KEYS {
        assert_eq!(get(&db, k).unwrap(), Some(value(k)));
    }
    let second = db.stats().unwrap().cache;
    assert_eq!(second.misses, first.misses, "every page is cached by now");
    assert!(second.hits > first.hits);
    assert_eq!(
        second.checked_pages, first.checked_pages,
        "nothing read a second time needed checking"
    );
}
