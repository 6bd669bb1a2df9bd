//! MVCC: a snapshot keeps seeing its commit while writers rewrite everything, and the pages
//! it holds are reused only after it is dropped (and the freeing commit is durable).

use cf_store::{u64_key, CfOptions, Db, Durability};

fn fill(db: &Db, version: u8, durability: Durability) {
    let cf = db.cf("m").unwrap();
    let mut txn = cf.begin_write().unwrap();
    txn.set_durability(durability);
    {
        let mut t = txn.open_table("t").unwrap();
        for k in 0..300u64 {
            t.insert(&u64_key(k), &[version; 700]).unwrap();
        }
    }
    txn.commit().unwrap();
}

#[test]
fn old_snapshots_keep_their_pages_until_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::builder()
        .initial_extent_pages(8)
        .open(dir.path().join("mvcc.cf"))
        .unwrap();
    let cf = db.create_cf("m", CfOptions::default()).unwrap();
    fill(&db, 1, Durability::Immediate);
    let old = cf.begin_read().unwrap();
    for version in 2..40u8 {
        fill(&db, version, Durability::Immediate);
        // The old snapshot still reads version 1 everywhere.
        let t = old.open_table("t").unwrap();
        assert_eq!(t.len(), 300);
        for entry in t.iter() {
            let (_, v) = entry.unwrap();
            assert_eq!(v, vec![1u8; 700], "after version {version}");
        }
    }
    let held = cf.stats();
    assert!(
        held.pages_pending > 0,
        "freed pages wait for the snapshot: {held:?}"
    );
    let grown = held.pages_total;
    drop(old);
    fill(&db, 40, Durability::Immediate);
    fill(&db, 41, Durability::Immediate);
    let released = cf.stats();
    assert!(
        released.pages_pending < held.pages_pending,
        "{held:?} -> {released:?}"
    );
    // With the snapshot gone, rewriting reuses pages instead of growing.
    for version in 42..60u8 {
        fill(&db, version, Durability::Immediate);
    }
    assert_eq!(cf.stats().pages_total, grown, "no growth once pages are reusable");
    let now = cf.begin_read().unwrap();
    assert_eq!(
        now.open_table("t").unwrap().get(&u64_key(5)).unwrap(),
        Some(vec![59u8; 700])
    );
}

#[test]
fn non_durable_frees_wait_for_a_durable_commit() {
    let db = Db::builder()
        .open_backend(std::sync::Arc::new(flush::MemBackend::new()), "mem")
        .unwrap();
    let cf = db.create_cf("m", CfOptions::default()).unwrap();
    fill(&db, 1, Durability::Immediate);
    for version in 2..6u8 {
        fill(&db, version, Durability::None);
    }
    let before = cf.stats();
    assert!(
        before.pages_pending > 0,
        "frees of non-durable commits are kept: {before:?}"
    );
    cf.sync().unwrap();
    fill(&db, 7, Durability::None);
    let after = cf.stats();
    assert!(
        after.pages_pending < before.pages_pending,
        "{before:?} -> {after:?}"
    );
}
