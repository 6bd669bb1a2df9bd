//! Readying new extents' pages before writing them (`Populate`): on a real file `Allocate`
//! (the default) issues `fallocate` ahead of the writes, `Always` also `readahead`, and
//! neither changes a committed byte; `Never` issues nothing, and `WhenContended` only
//! allocates until the file reports contention, then fills the cache too; and when readying
//! fails, commits go on without it and lose nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use cf_store::{u64_key, CfOptions, ColumnFamily, Db, Populate};
use flush::testing::FaultBackend;
use flush::{Backend, FileBackend};

type State = BTreeMap<Vec<u8>, Vec<u8>>;

/// Commits `txns` transactions of 200 values (1 KiB, 3 KiB every 7th) in table "t"; returns
/// what the table must hold.
fn fill(cf: &ColumnFamily, txns: u64) -> State {
    fill_from(cf, 0, txns)
}

/// The same for transactions `from..to`.
fn fill_from(cf: &ColumnFamily, from: u64, to: u64) -> State {
    let mut want = State::new();
    for txn in from..to {
        let w = cf.begin_write().unwrap();
        {
            let mut t = w.open_table("t").unwrap();
            for i in 0..200 {
                let k = txn * 200 + i;
                let v = vec![(k % 251) as u8 + 1; if k % 7 == 0 { 3072 } else { 1024 }];
                t.insert(&u64_key(k), &v).unwrap();
                want.insert(u64_key(k).to_vec(), v);
            }
        }
        w.commit().unwrap();
    }
    want
}

fn contents(db: &Db) -> State {
    let cf = db.cf("a").unwrap();
    let r = cf.begin_read().unwrap();
    let t = r.open_table("t").unwrap();
    t.iter().map(|e| e.unwrap()).collect()
}

fn open(path: &std::path::Path, populate: Populate) -> Db {
    Db::builder().populate(populate).open(path).unwrap()
}

/// A database at `path` over a `FaultBackend` wrapping the real file, and that backend.
fn over_fault_backend(path: &std::path::Path, populate: Populate) -> (Arc<FaultBackend<FileBackend>>, Db) {
    let backend = Arc::new(FaultBackend::new(FileBackend::open(path).unwrap()));
    let dyn_backend: Arc<dyn Backend> = backend.clone();
    let db = Db::builder()
        .populate(populate)
        .open_backend(dyn_backend, path)
        .unwrap();
    (backend, db)
}

#[test]
fn allocate_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::builder().open(dir.path().join("db")).unwrap();
    let cf = db.create_cf("a", CfOptions::default()).unwrap();
    fill(&cf, 30);
    let io = db.stats().unwrap().io;
    assert!(io.populate_calls >= 2 && io.populated_bytes > 0, "{io:?}");
}

/// `populate` readies ahead with `(allocate, populate)` calls of the kinds `kinds` says, keeps
/// every byte, and the readied space is written over after a reopen.
fn readies_ahead_and_keeps_every_byte(populate: Populate, kinds: (bool, bool)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (backend, db) = over_fault_backend(&path, populate);
    let cf = db.create_cf("a", CfOptions::default()).unwrap();
    let want = fill(&cf, 30);
    let stats = db.stats().unwrap();
    assert!(
        stats.io.populate_calls >= 2 && stats.io.populated_bytes > 0,
        "{populate:?}: fresh extents were readied: {:?}",
        stats.io
    );
    let (allocates, populates) = backend.ready_calls();
    assert_eq!((allocates > 0, populates > 0), kinds, "{populate:?}");
    assert_eq!(cf.stats().populate_failures, 0);
    assert_eq!(contents(&db), want);
    // Readying reaches past the pages written: the file is longer than the same commits
    // make it without.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = open(&plain_dir.path().join("db"), Populate::Never);
    fill(&plain.create_cf("a", CfOptions::default()).unwrap(), 30);
    let plain_bytes = plain.stats().unwrap().file_bytes;
    assert!(
        stats.file_bytes > plain_bytes,
        "{populate:?}: readied {} bytes, plain {plain_bytes}",
        stats.file_bytes
    );
    drop(cf);
    db.close().unwrap();
    drop(db);
    drop(backend);

    let db = open(&path, Populate::Never);
    assert_eq!(contents(&db), want, "what was committed survives a reopen");
    let cf = db.cf("a").unwrap();
    let mut more = want.clone();
    more.extend(fill(&cf, 5));
    assert_eq!(
        contents(&db),
        more,
        "the readied space is written over after a reopen"
    );
}

#[test]
fn allocate_allocates_ahead_and_keeps_every_byte() {
    readies_ahead_and_keeps_every_byte(Populate::Allocate, (true, false));
}

#[test]
fn always_fills_the_cache_ahead_and_keeps_every_byte() {
    readies_ahead_and_keeps_every_byte(Populate::Always, (false, true));
}

#[test]
fn never_readies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, db) = over_fault_backend(&dir.path().join("db"), Populate::Never);
    let cf = db.create_cf("a", CfOptions::default()).unwrap();
    let want = fill(&cf, 30);
    let io = db.stats().unwrap().io;
    assert_eq!((io.populate_calls, io.populated_bytes), (0, 0));
    assert_eq!(backend.ready_calls(), (0, 0));
    assert_eq!(contents(&db), want);
}

#[test]
fn when_contended_allocates_alone_and_fills_the_cache_once_the_file_reports_contention() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, db) = over_fault_backend(&dir.path().join("db"), Populate::WhenContended);
    let cf = db.create_cf("a", CfOptions::default()).unwrap();
    let mut want = fill(&cf, 10);
    let (allocates, populates) = backend.ready_calls();
    assert!(allocates > 0, "a lone writer allocates ahead");
    assert_eq!(populates, 0, "no contention yet: no cache fill");
    backend.report_contention(true);
    want.extend(fill_from(&cf, 10, 30));
    let (_, populates) = backend.ready_calls();
    assert!(populates >= 1, "{:?}", backend.ready_calls());
    assert_eq!(contents(&db), want);
}

/// With every readying call failing, commits go on under `populate` and lose nothing.
fn failing_readying_is_skipped_and_loses_nothing(populate: Populate) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (backend, db) = over_fault_backend(&path, populate);
    backend.fail_populates(libc::ENOSPC);
    let cf = db.create_cf("a", CfOptions::default()).unwrap();
    let want = fill(&cf, 30);
    assert!(
        cf.stats().populate_failures >= 2,
        "{populate:?}: {:?}",
        cf.stats()
    );
    assert_eq!(
        db.stats().unwrap().io.populate_calls,
        0,
        "{populate:?}: no call reached the file"
    );
    assert_eq!(contents(&db), want);
    drop(cf);
    db.close().unwrap();
    drop(db);
    drop(backend);
    assert_eq!(contents(&open(&path, Populate::Never)), want);
}

#[test]
fn a_failing_allocate_is_skipped_and_loses_nothing() {
    failing_readying_is_skipped_and_loses_nothing(Populate::Allocate);
}

#[test]
fn a_failing_populate_is_skipped_and_loses_nothing() {
    failing_readying_is_skipped_and_loses_nothing(Populate::Always);
}
