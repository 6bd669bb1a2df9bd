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
fn non_durable_frees_wait_for_a_durable_commit_only_when_a_durable_state_needs_them() {
    // Every commit written at once, so that `flushed_page_bytes` counts version 4's pages.
    let db = Db::builder()
        .hold_bytes(0)
        .open_backend(std::sync::Arc::new(flush::MemBackend::new()), "mem")
        .unwrap();
    let cf = db.create_cf("m", CfOptions::default()).unwrap();
    fill(&db, 1, Durability::Immediate);
    // Version 2 frees the pages of the durable version 1: a crash would need them.
    fill(&db, 2, Durability::None);
    let after_one = cf.stats().pages_pending;
    assert!(after_one > 0, "frees of durable pages wait for a durable commit");
    // Versions 3..=5 free pages born after the last durable commit: nothing needs them,
    // so they are reused as soon as no snapshot holds them, and pending pages do not pile
    // up: what is pending is version 1's pages plus the newest commit's frees (version 4's
    // pages, reclaimed at the next write), not four commits' worth. (Version 1 appended
    // its keys into leaves of several pages; the rewrites split those, so later versions
    // take more pages than version 1.)
    let mut written = 0;
    for version in 3..6u8 {
        let before = cf.stats().flushed_page_bytes;
        fill(&db, version, Durability::None);
        if version == 4 {
            written = (cf.stats().flushed_page_bytes - before) / 4096;
        }
    }
    let after_four = cf.stats();
    assert!(
        after_four.pages_pending <= after_one + written,
        "{after_one} + {written} -> {after_four:?}"
    );
    cf.sync().unwrap();
    fill(&db, 7, Durability::None);
    let after_sync = cf.stats();
    assert!(
        after_sync.pages_pending <= after_four.pages_pending,
        "{after_four:?} -> {after_sync:?}"
    );
    assert!(
        after_sync.pages_total <= after_four.pages_total + 8,
        "no growth: {after_four:?} -> {after_sync:?}"
    );
}
