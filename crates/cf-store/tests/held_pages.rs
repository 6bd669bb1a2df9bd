//! Held pages (`DbBuilder::hold_bytes`): commits without durability keep their pages in
//! memory; readers find them there; pages freed before they were written are never written;
//! the budget, durable commits, `flush` and `close` write the rest; a failed write keeps them
//! held and readable; and what a durable commit leaves in the file is complete without them.

use std::collections::BTreeMap;
use std::sync::Arc;

use cf_store::{u64_key, CfOptions, ColumnFamily, Db, Durability, ReadPath};
use flush::testing::{FaultBackend, RecordingBackend};
use flush::{Backend, MemBackend};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn open(backend: Arc<dyn Backend>, hold_bytes: u64) -> Db {
    Db::builder()
        .page_size(1024)
        .initial_extent_pages(4)
        .hold_bytes(hold_bytes)
        .open_backend(backend, "held")
        .unwrap()
}

/// One commit of `keys` (each set to `fill` repeated over 300 bytes).
fn put(
    cf: &ColumnFamily,
    keys: impl IntoIterator<Item = u64>,
    fill: u8,
    durability: Durability,
    model: &mut Model,
) {
    let mut txn = cf.begin_write().unwrap();
    txn.set_durability(durability);
    {
        let mut t = txn.open_table("t").unwrap();
        for k in keys {
            let (k, v) = (u64_key(k).to_vec(), vec![fill; 300]);
            t.insert(&k, &v).unwrap();
            model.insert(k, v);
        }
    }
    txn.commit().unwrap();
}

fn contents(cf: &ColumnFamily) -> Model {
    let read = cf.begin_read().unwrap();
    let t = read.open_table("t").unwrap();
    t.iter().map(|e| e.unwrap()).collect()
}

fn written(db: &Db) -> u64 {
    db.stats().unwrap().io.bytes_written
}

/// Overwriting the same keys commit after commit: with a budget nothing passes, the commits
/// write nothing, readers (old snapshots among them) read the held pages, and close writes
/// only the pages the last commit reaches, far fewer bytes than writing every commit.
#[test]
fn pages_freed_before_they_are_written_are_never_written() {
    let churn = |hold_bytes: u64| {
        let backend = Arc::new(MemBackend::new());
        let db = open(backend.clone(), hold_bytes);
        let cf = db.create_cf("cf", CfOptions::default()).unwrap();
        let mut model = Model::new();
        put(&cf, 0..200, 0, Durability::Immediate, &mut model);
        let before = written(&db);
        let mut snapshots = Vec::new();
        for round in 1..=40u8 {
            put(&cf, (0..200).step_by(3), round, Durability::None, &mut model);
            if round % 10 == 0 {
                snapshots.push((cf.begin_read().unwrap(), model.clone()));
            }
            assert_eq!(contents(&cf), model);
        }
        let during = written(&db) - before;
        for (snapshot, then) in &snapshots {
            let t = snapshot.open_table("t").unwrap();
            let read: Model = t.iter().map(|e| e.unwrap()).collect();
            assert!(&read == then, "a snapshot changed while its pages were held");
        }
        let held = cf.stats().held_bytes;
        drop(snapshots);
        db.close().unwrap();
        let total = written(&db) - before;
        drop((cf, db));
        let db = open(backend, hold_bytes);
        assert_eq!(db.recovery_notes(), &[] as &[String]);
        assert_eq!(contents(&db.cf("cf").unwrap()), model);
        (during, held, total)
    };
    let (during, held, total) = churn(1 << 30);
    assert_eq!(during, 0, "no commit passed the budget, so none wrote");
    assert!(held > 0);
    let (during_plain, held_plain, total_plain) = churn(0);
    assert_eq!(held_plain, 0);
    assert!(during_plain > 0);
    assert!(
        total * 4 < total_plain,
        "held: {total} bytes written in all, writing every commit: {total_plain}"
    );
}

/// An append load frees next to nothing of what it writes, so it holds nothing however large
/// the budget: each commit is written at once, as without one.
#[test]
fn an_append_load_holds_nothing() {
    let backend = Arc::new(MemBackend::new());
    let db = Db::builder()
        .hold_bytes(1 << 30)
        .open_backend(backend, "appends")
        .unwrap();
    let cf = db.create_cf("cf", CfOptions::default()).unwrap();
    let mut model = Model::new();
    for round in 0..30u64 {
        let before = written(&db);
        put(
            &cf,
            round * 500..round * 500 + 500,
            round as u8,
            Durability::None,
            &mut model,
        );
        assert_eq!(cf.stats().held_bytes, 0, "commit {round} held its pages");
        assert!(written(&db) > before, "commit {round} wrote nothing");
    }
    assert_eq!(contents(&cf), model);
}

/// A snapshot kept open pins every page the later commits free, so held pages cannot be
/// dropped: after a window that dropped nothing the column family stops holding for a
/// while, and once the snapshot is gone holding pays again.
#[test]
fn a_long_snapshot_pauses_holding() {
    let backend = Arc::new(MemBackend::new());
    let db = open(backend, 64 << 10);
    let cf = db.create_cf("cf", CfOptions::default()).unwrap();
    let mut model = Model::new();
    put(&cf, 0..50, 0, Durability::Immediate, &mut model);
    let snapshot = cf.begin_read().unwrap();
    let pinned = model.clone();
    let mut held_after: Vec<bool> = Vec::new();
    for round in 1..=80u8 {
        put(&cf, 0..50, round, Durability::None, &mut model);
        held_after.push(cf.stats().held_bytes > 0);
    }
    assert_eq!(
        cf.stats().held_dropped_bytes,
        0,
        "the snapshot pins every freed page"
    );
    let first = held_after
        .iter()
        .position(|&h| h)
        .expect("the rewrites make it hold");
    let longest_pause = held_after[first..]
        .split(|&h| h)
        .map(<[bool]>::len)
        .max()
        .unwrap_or(0);
    assert!(longest_pause >= 16, "held after each commit: {held_after:?}");
    {
        let t = snapshot.open_table("t").unwrap();
        assert_eq!(t.iter().map(|e| e.unwrap()).collect::<Model>(), pinned);
    }
    drop(snapshot);
    for round in 81..=250u8 {
        put(&cf, 0..50, round, Durability::None, &mut model);
    }
    assert!(cf.stats().held_dropped_bytes > 0, "{:?}", cf.stats());
    assert_eq!(contents(&cf), model);
}

/// A durable commit writes every held page before its slot: the file as it stands right after
/// it (a crash image with nothing more written) opens to exactly that commit.
#[test]
fn a_durable_commit_writes_the_held_pages_before_its_slot() {
    let backend = Arc::new(MemBackend::new());
    let db = open(backend.clone(), 1 << 30);
    let cf = db.create_cf("cf", CfOptions::default()).unwrap();
    let mut model = Model::new();
    for round in 0..30u8 {
        let start = u64::from(round) * 7;
        put(&cf, start..start + 20, round, Durability::None, &mut model);
    }
    assert!(cf.stats().held_bytes > 0);
    put(&cf, 500..510, 99, Durability::Immediate, &mut model);
    assert_eq!(cf.stats().held_bytes, 0, "the durable commit wrote them");
    let image = backend.contents();
    // More commits that stay held, then the image as a crash would leave it.
    let mut later = model.clone();
    put(&cf, 600..650, 7, Durability::None, &mut later);
    let reopened = open(Arc::new(MemBackend::from_bytes(image)), 0);
    assert_eq!(contents(&reopened.cf("cf").unwrap()), model);
    assert_eq!(contents(&cf), later);
}

/// `sync` with nothing but held pages to write (the commit being made durable wrote nothing
/// itself) writes them all first, and the slot afterwards in a call of its own, so a failed
/// page write can never leave a slot naming pages the file lacks.
#[test]
fn sync_writes_held_pages_before_the_slot_in_calls_of_their_own() {
    let backend = Arc::new(RecordingBackend::new(MemBackend::new()));
    let db = open(backend.clone(), 1 << 30);
    let cf = db.create_cf("cf", CfOptions::default()).unwrap();
    let mut model = Model::new();
    for round in 0..10u8 {
        put(
            &cf,
            (0..40).map(|k| k * 10 + u64::from(round)),
            round,
            Durability::None,
            &mut model,
        );
    }
    let held = cf.stats().held_bytes;
    assert!(held > 0);
    backend.take_log();
    cf.sync().unwrap();
    let log = backend.take_log();
    let (slot, pages) = log.split_last().expect("sync wrote");
    assert_eq!(slot.len, 1024, "the last call writes the slot alone: {log:?}");
    // Pages freed by the last commits may be dropped unwritten first, never more than held.
    let before_slot = pages.iter().map(|w| w.len).sum::<u64>();
    assert!(
        before_slot > 0 && before_slot <= held,
        "{before_slot} of {held} held bytes before the slot"
    );
    assert!(pages
        .iter()
        .all(|w| w.offset + w.len <= slot.offset || w.offset >= slot.offset + 1024));
    assert_eq!(cf.stats().held_bytes, 0);
    drop((cf, db));
    let image = MemBackend::from_bytes(backend.inner().contents());
    assert_eq!(contents(&open(Arc::new(image), 0).cf("cf").unwrap()), model);
}

/// Once the budget is full, each commit writes only the oldest held pages, about its own
/// size, so no commit waits for a whole budget of writes; what is held stays at the budget.
#[test]
fn a_full_budget_writes_the_oldest_pages_a_commit_at_a_time() {
    let budget = 256 << 10;
    let backend = Arc::new(MemBackend::new());
    let db = open(backend.clone(), budget);
    let cf = db.create_cf("cf", CfOptions::default()).unwrap();
    let mut model = Model::new();
    put(&cf, 0..3000, 0, Durability::Immediate, &mut model);
    let mut rng = 7u64;
    let mut largest = 0;
    for round in 1..=120u8 {
        // Scattered rewrites: each commit dirties many leaves, some rewritten soon after.
        let keys: Vec<u64> = (0..40)
            .map(|_| {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (rng >> 33) % 600
            })
            .collect();
        let before = written(&db);
        put(&cf, keys, round, Durability::None, &mut model);
        let held = cf.stats().held_bytes;
        assert!(held <= budget, "{held} held with a budget of {budget}");
        if round > 60 {
            largest = largest.max(written(&db) - before);
        }
    }
    assert!(cf.stats().held_dropped_bytes > 0, "{:?}", cf.stats());
    assert!(largest > 0, "the budget filled");
    assert!(
        largest < budget / 2,
        "a commit wrote {largest} bytes with a budget of {budget}"
    );
    assert_eq!(contents(&cf), model);
    db.close().unwrap();
    drop((cf, db));
    assert_eq!(contents(&open(backend, 0).cf("cf").unwrap()), model);
}

/// A budget of a few commits: whenever holding one more commit would pass it, that commit
/// writes everything held, so the held bytes stay within the budget plus one commit and the
/// file is written every few commits. Each commit rewrites the second half of the one
/// before, so that holding pays (a commit frees what the one before wrote).
#[test]
fn the_budget_bounds_what_is_held() {
    let budget = 64 << 10;
    let backend = Arc::new(MemBackend::new());
    let db = open(backend.clone(), budget);
    let cf = db.create_cf("cf", CfOptions::default()).unwrap();
    let mut model = Model::new();
    let (mut writes, mut last) = (0, written(&db));
    for round in 0..60u64 {
        put(
            &cf,
            round * 15..round * 15 + 30,
            round as u8,
            Durability::None,
            &mut model,
        );
        let held = cf.stats().held_bytes;
        assert!(held <= budget, "{held} bytes held with a budget of {budget}");
        let now = written(&db);
        if now > last {
            writes += 1;
            last = now;
        }
    }
    assert!((3..60).contains(&writes), "{writes} of 60 commits wrote");
    cf.flush().unwrap();
    assert_eq!(cf.stats().held_bytes, 0);
    assert_eq!(contents(&cf), model);
    db.close().unwrap();
    drop((cf, db));
    assert_eq!(contents(&open(backend, 0).cf("cf").unwrap()), model);
}

/// A write that fails while held pages go out fails that commit only: the held pages stay
/// held and readable, and once the disk is back the next commit writes them all.
#[test]
fn a_failed_write_keeps_the_held_pages() {
    let faulty = Arc::new(FaultBackend::new(MemBackend::new()));
    let db = open(faulty.clone(), 16 << 10);
    let cf = db.create_cf("cf", CfOptions::default()).unwrap();
    let mut model = Model::new();
    // Rewriting the same keys: the gate sees every commit free the last one's pages.
    for round in 1..=5 {
        put(&cf, 0..10, round, Durability::None, &mut model);
    }
    assert!(cf.stats().held_bytes > 0);
    faulty.fail_writes(libc::EIO);
    // Past the budget: this commit must write, and fails.
    let mut txn = cf.begin_write().unwrap();
    txn.set_durability(Durability::None);
    {
        let mut t = txn.open_table("t").unwrap();
        for k in 100..200u64 {
            t.insert(&u64_key(k), &[5; 300]).unwrap();
        }
    }
    assert!(txn.commit().is_err());
    assert!(cf.stats().held_bytes > 0, "still held");
    assert_eq!(contents(&cf), model, "readers still find the held pages");
    faulty.heal_writes();
    put(&cf, 200..260, 2, Durability::None, &mut model);
    put(&cf, 300..310, 3, Durability::Immediate, &mut model);
    assert_eq!(cf.stats().held_bytes, 0);
    db.close().unwrap();
    drop((cf, db));
    let image = MemBackend::from_bytes(faulty.inner().contents());
    assert_eq!(contents(&open(Arc::new(image), 0).cf("cf").unwrap()), model);
}

/// Snapshots of a dropped column family keep reading its held pages, and nothing of it is
/// written after the drop (its extents may go to others).
#[test]
fn a_dropped_column_familys_held_pages_stay_readable_and_unwritten() {
    let backend = Arc::new(MemBackend::new());
    let db = open(backend.clone(), 1 << 30);
    let cf = db.create_cf("gone", CfOptions::default()).unwrap();
    let mut model = Model::new();
    put(&cf, 0..100, 4, Durability::None, &mut model);
    let snapshot = cf.begin_read().unwrap();
    db.drop_cf("gone").unwrap();
    let after_drop = written(&db);
    let t = snapshot.open_table("t").unwrap();
    assert_eq!(t.iter().map(|e| e.unwrap()).collect::<Model>(), model);
    assert!(cf.flush().is_err(), "a dropped column family is not flushed");
    db.close().unwrap();
    assert_eq!(written(&db), after_drop, "nothing of it was written");
}

/// On the mmap read path, held pages past the end of the file are read from memory (the
/// mapping would refuse them), and close writes them where the mapping finds them after a
/// reopen. Each commit rewrites the second half of the one before, so that it is held.
#[test]
fn held_pages_past_the_end_are_read_on_the_mmap_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("held.cf");
    let mut model = Model::new();
    {
        let db = Db::builder()
            .read_path(ReadPath::Mmap)
            .hold_bytes(1 << 30)
            .open(&path)
            .unwrap();
        let cf = db.create_cf("cf", CfOptions::default()).unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        for round in 0..20u64 {
            put(
                &cf,
                round * 25..round * 25 + 50,
                round as u8,
                Durability::None,
                &mut model,
            );
        }
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            len,
            "nothing written yet"
        );
        assert_eq!(contents(&cf), model);
        db.close().unwrap();
    }
    let db = Db::builder().read_path(ReadPath::Mmap).open(&path).unwrap();
    assert_eq!(contents(&db.cf("cf").unwrap()), model);
}
