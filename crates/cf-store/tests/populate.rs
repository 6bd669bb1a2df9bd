//! Readying new extents' pages before writing them (`Populate`): on a real file `Allocate`
//! (the default) issues `fallocate` ahead of the writes, `Always` also `readahead`, and
//! neither changes a committed byte; `Never` issues nothing, and `WhenContended` only
//! allocates until the file reports contention, then fills the cache too; and when readying
//! fails, commits go on without it and lose nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use cf_store::{u64_key, CfOptions, ColumnFamily, Db, Populate};
use flush::testing::{FaultBackend, ReadyRecord, RecordingBackend, WriteRecord};
use flush::{Backend, FileBackend, MemBackend};

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

/// Whether the file system under `dir` allocates ranges (`fallocate`); without it a
/// `FileBackend` readies nothing, and the checks of what was readied are skipped.
fn allocation_works(dir: &std::path::Path) -> bool {
    let probe = FileBackend::open(dir.join("probe")).unwrap();
    probe.allocate(0, 4096).unwrap();
    // A `FileBackend` makes the allocation at the start of its next write turn.
    probe.write_batch(&[]).unwrap();
    probe.len().unwrap() == 4096
}

#[test]
fn allocate_is_the_default() {
    assert_eq!(Populate::default(), Populate::Allocate);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let backend = Arc::new(FaultBackend::new(FileBackend::open(&path).unwrap()));
    let dyn_backend: Arc<dyn Backend> = backend.clone();
    let db = Db::builder().open_backend(dyn_backend, &path).unwrap();
    let cf = db.create_cf("a", CfOptions::default()).unwrap();
    fill(&cf, 30);
    let (allocates, populates) = backend.ready_calls();
    assert!(allocates >= 2 && populates == 0, "{:?}", backend.ready_calls());
    if allocation_works(dir.path()) {
        let io = db.stats().unwrap().io;
        assert!(io.populate_calls >= 2 && io.populated_bytes > 0, "{io:?}");
    }
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
    let (allocates, populates) = backend.ready_calls();
    assert_eq!((allocates > 0, populates > 0), kinds, "{populate:?}");
    assert_eq!(cf.stats().populate_failures, 0);
    assert_eq!(contents(&db), want);
    if allocation_works(dir.path()) {
        assert!(
            stats.io.populate_calls >= 2 && stats.io.populated_bytes > 0,
            "{populate:?}: fresh extents were readied: {:?}",
            stats.io
        );
        // Readying reaches past the pages written: the file is longer than the same
        // commits make it without.
        let plain_dir = tempfile::tempdir().unwrap();
        let plain = open(&plain_dir.path().join("db"), Populate::Never);
        fill(&plain.create_cf("a", CfOptions::default()).unwrap(), 30);
        let plain_bytes = plain.stats().unwrap().file_bytes;
        assert!(
            stats.file_bytes > plain_bytes,
            "{populate:?}: readied {} bytes, plain {plain_bytes}",
            stats.file_bytes
        );
    }
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
    // The column family's failed calls were of the kind its mode makes (the catalog's
    // too, so there are at least as many).
    let (allocates, populates) = backend.ready_calls();
    let (made, other) = if populate == Populate::Always {
        (populates, allocates)
    } else {
        (allocates, populates)
    };
    assert!(
        made >= cf.stats().populate_failures && other == 0,
        "{populate:?}: {:?}",
        backend.ready_calls()
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

/// Checks a run of one column family's commits, whose writes start at `writes[first]`
/// (the writes before are the database's and the catalog's, which is small and never
/// readied): every byte they write from the lowest readied one on was readied by a call
/// logged before the write (below it lie the column family's two slots, which the
/// catalog's commit made); no readying call covers a byte written before it; and no two
/// calls of one kind cover the same byte (a fill may cover an allocation: it allocates too).
fn check_readied_before_written(writes: &[WriteRecord], first: usize, readied: &[ReadyRecord]) {
    let floor = readied
        .iter()
        .map(|r| r.offset)
        .min()
        .expect("something was readied");
    for kind in [false, true] {
        let mut sorted: Vec<ReadyRecord> = readied.iter().copied().filter(|r| r.fill == kind).collect();
        sorted.sort_by_key(|r| r.offset);
        for pair in sorted.windows(2) {
            assert!(
                pair[0].offset + pair[0].len <= pair[1].offset,
                "readied twice: {pair:?}"
            );
        }
    }
    for r in readied {
        assert!(
            written_before(writes, r).is_none(),
            "readied after a write into it: {r:?}, {:?}",
            written_before(writes, r)
        );
    }
    for (i, w) in writes.iter().enumerate().skip(first) {
        let mut at = w.offset.max(floor);
        while at < w.offset + w.len {
            let r = readied
                .iter()
                .filter(|r| r.after_writes <= i as u64)
                .find(|r| r.offset <= at && at < r.offset + r.len)
                .unwrap_or_else(|| {
                    panic!("byte {at} of write {i} {w:?} was not readied before it: {readied:?}")
                });
            at = r.offset + r.len;
        }
    }
}

/// A write logged before `r` into its range, if any.
fn written_before<'a>(writes: &'a [WriteRecord], r: &ReadyRecord) -> Option<&'a WriteRecord> {
    writes[..r.after_writes as usize]
        .iter()
        .find(|w| w.offset < r.offset + r.len && r.offset < w.offset + w.len)
}

/// A fresh database over a recording in-memory file: every byte written past the
/// superblock is readied first, once, by calls of the kind `populate` makes.
fn readies_every_fresh_write_first_and_once(populate: Populate, fills: bool) {
    let backend = Arc::new(RecordingBackend::new(MemBackend::new()));
    let dyn_backend: Arc<dyn Backend> = backend.clone();
    let db = Db::builder()
        .populate(populate)
        .open_backend(dyn_backend, "readied")
        .unwrap();
    let cf = db.create_cf("a", CfOptions::default()).unwrap();
    let first = backend.writes_logged() as usize;
    let want = fill(&cf, 30);
    let writes = backend.take_log();
    let readied = backend.take_ready_log();
    assert!(readied.len() >= 2, "{populate:?}: {readied:?}");
    assert!(
        readied.iter().all(|r| r.fill == fills),
        "{populate:?}: {readied:?}"
    );
    check_readied_before_written(&writes, first, &readied);
    assert_eq!(contents(&db), want);
}

#[test]
fn allocate_readies_every_fresh_write_first_and_once() {
    readies_every_fresh_write_first_and_once(Populate::Allocate, false);
}

#[test]
fn always_readies_every_fresh_write_first_and_once() {
    readies_every_fresh_write_first_and_once(Populate::Always, true);
}

/// Contention that starts inside an extent already allocated ahead: the next flush fills the
/// page cache from the pages written so far, not only from the extent's end.
#[test]
fn when_contended_fills_from_the_pages_written_inside_an_allocated_extent() {
    let backend = Arc::new(RecordingBackend::new(FaultBackend::new(MemBackend::new())));
    let dyn_backend: Arc<dyn Backend> = backend.clone();
    // 32 MiB extents: the first flush allocates all of the column family's first one.
    let db = Db::builder()
        .populate(Populate::WhenContended)
        .initial_extent_pages(8192)
        .open_backend(dyn_backend, "contended")
        .unwrap();
    let cf = db.create_cf("a", CfOptions::default()).unwrap();
    let first = backend.writes_logged() as usize;
    let mut want = fill(&cf, 10);
    let quiet = backend.take_ready_log();
    assert!(!quiet.is_empty() && quiet.iter().all(|r| !r.fill), "{quiet:?}");
    let quiet_writes = backend.writes_logged();
    backend.inner().report_contention(true);
    want.extend(fill_from(&cf, 10, 30));
    let contended = backend.take_ready_log();
    let fills: Vec<ReadyRecord> = contended.iter().copied().filter(|r| r.fill).collect();
    assert!(
        !fills.is_empty() && fills.iter().all(|r| r.after_writes >= quiet_writes),
        "once writes contend, a flush fills: {contended:?}"
    );
    let writes = backend.take_log();
    let all: Vec<ReadyRecord> = quiet.iter().chain(&contended).copied().collect();
    check_readied_before_written(&writes, first, &all);
    assert_eq!(contents(&db), want);
}
