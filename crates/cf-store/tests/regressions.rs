//! Regressions found in review: each test reproduces a defect that was fixed.

use std::sync::Arc;

use cf_store::{u64_key, CfOptions, Db, Durability, Error};
use flush::MemBackend;

fn mem_db(page_size: u32) -> (Arc<MemBackend>, Db) {
    let backend = Arc::new(MemBackend::new());
    let db = Db::builder()
        .page_size(page_size)
        .open_backend(backend.clone(), "mem")
        .unwrap();
    (backend, db)
}

/// A name longer than the catalog's key limit (128 bytes at 512-byte pages) once failed
/// after the new column family's slot pages were queued; a later catalog commit then wrote
/// them over the column family that reused the released extent.
#[test]
fn names_over_the_catalog_key_limit_are_refused_before_anything_is_taken() {
    let (backend, db) = mem_db(512);
    let a = db.create_cf("a", CfOptions::default()).unwrap();
    let before = db.stats().unwrap().free_extent_pages;
    let err = db
        .create_cf(
            &"x".repeat(129),
            CfOptions::default().with_initial_extent_pages(64),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidCfName {
                len: 129,
                max: 128,
                ..
            }
        ),
        "{err:?}"
    );
    db.create_cf(&"y".repeat(128), CfOptions::default()).unwrap();
    assert_eq!(
        db.stats().unwrap().free_extent_pages,
        before,
        "no extent was taken and left behind"
    );
    for t in 0..20u64 {
        let txn = a.begin_write().unwrap();
        txn.open_table("t")
            .unwrap()
            .insert(&u64_key(t), &[7u8; 100])
            .unwrap();
        txn.commit().unwrap();
    }
    db.create_cf("b", CfOptions::default()).unwrap();
    let read = a.begin_read().unwrap();
    assert_eq!(read.open_table("t").unwrap().iter().count(), 20);
    drop(read);
    db.close().unwrap();
    let db = Db::builder()
        .open_backend(Arc::new(MemBackend::from_bytes(backend.contents())), "again")
        .unwrap();
    assert!(db.recovery_notes().is_empty(), "{:?}", db.recovery_notes());
    assert_eq!(db.list_cfs().len(), 3);
}

/// Dropping the last `Db` handle on a thread that holds a write transaction used to wait
/// for that very transaction's lock forever.
#[test]
fn dropping_the_last_db_while_holding_a_write_txn_returns() {
    let (_backend, db) = mem_db(4096);
    let cf = db.create_cf("a", CfOptions::default()).unwrap();
    let txn = cf.begin_write().unwrap();
    drop(db);
    txn.open_table("t").unwrap().insert(b"k", b"v").unwrap();
    txn.commit().unwrap();
}

/// Pages freed by non-durable commits that no durable state reaches were kept until a
/// durable commit: 2,000 non-durable overwrites of one key grew the file to 16 MB.
#[test]
fn non_durable_overwrites_reuse_their_own_pages() {
    let (backend, db) = mem_db(4096);
    let cf = db.create_cf("a", CfOptions::default()).unwrap();
    for i in 0..2000u64 {
        let mut txn = cf.begin_write().unwrap();
        txn.set_durability(Durability::None);
        txn.open_table("t")
            .unwrap()
            .insert(b"k", &i.to_be_bytes())
            .unwrap();
        txn.commit().unwrap();
    }
    let s = cf.stats();
    assert!(s.pages_total <= 64, "{s:?}");
    assert!(s.pages_pending <= 8, "{s:?}");
    use flush::Backend;
    assert!(
        backend.len().unwrap() < 1 << 20,
        "file of {} bytes",
        backend.len().unwrap()
    );
}
