//! Bad input: every bad file, name, key, table, handle, full disk or failed fsync gets its
//! typed error (never a panic), and loses nothing that was committed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::thread;

use cf_store::{u64_key, CfOptions, ColumnFamily, Db, Durability, Error};
use flush::testing::FaultBackend;
use flush::{Backend, MemBackend};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

type Model = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

// ---------------------------------------------------------------------------------------
// Helpers

fn contents(cf: &ColumnFamily) -> Model {
    let read = cf.begin_read().unwrap();
    let mut out = Model::new();
    for name in read.list_tables().unwrap() {
        let t = read.open_table(&name).unwrap();
        out.insert(name, t.iter().map(|e| e.unwrap()).collect());
    }
    out
}

/// Commits `n` keys starting at `from` into table "t" of `cf` and returns the new model.
fn put(cf: &ColumnFamily, model: &Model, from: u64, n: u64, durability: Durability) -> Model {
    let mut next = model.clone();
    let mut txn = cf.begin_write().unwrap();
    txn.set_durability(durability);
    {
        let mut t = txn.open_table("t").unwrap();
        let m = next.entry("t".into()).or_default();
        for k in from..from + n {
            let v = format!("value {k} {}", "x".repeat((k % 97) as usize)).into_bytes();
            t.insert(&u64_key(k), &v).unwrap();
            m.insert(u64_key(k).to_vec(), v);
        }
    }
    txn.commit().unwrap();
    next
}

fn open_err(path: &Path) -> Error {
    match Db::open(path) {
        Ok(db) => panic!("{} opened: {db:?}", path.display()),
        Err(e) => e,
    }
}

/// Opening `bytes` as a file fails with `NotADatabase` and leaves the file as it was.
fn assert_not_a_database(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let err = open_err(&path);
    assert!(
        matches!(err, Error::NotADatabase { .. }),
        "{name}: expected NotADatabase, got {err:?}"
    );
    assert!(err.to_string().contains(name), "the error names the file: {err}");
    assert!(
        std::fs::read(&path).unwrap() == bytes,
        "{name}: a failed open changed the file"
    );
}

/// A small real database: two column families with data in both superblock slots and some
/// commits of each durability.
fn sample_db(path: &Path) -> (Model, Model) {
    let db = Db::open(path).unwrap();
    let one = db.create_cf("one", CfOptions::default()).unwrap();
    let mut m1 = put(&one, &Model::new(), 0, 300, Durability::Immediate);
    let two = db.create_cf("two", CfOptions::default()).unwrap();
    let mut m2 = put(&two, &Model::new(), 1000, 50, Durability::Immediate);
    m1 = put(&one, &m1, 300, 100, Durability::None);
    m2 = put(&two, &m2, 2000, 10, Durability::Immediate);
    db.close().unwrap();
    (m1, m2)
}

/// A `MemBackend` that fails chosen writes and syncs (`flush::testing::FaultBackend`).
type FaultyMem = FaultBackend<MemBackend>;

/// A new database over the bytes the faulty backend holds now (as after a crash or restart).
fn reopen(backend: &FaultyMem) -> Db {
    let copy: Arc<dyn Backend> = Arc::new(MemBackend::from_bytes(backend.inner().contents()));
    Db::builder().open_backend(copy, "reopened").unwrap()
}

fn fault_db() -> (Arc<FaultyMem>, Db) {
    let backend = Arc::new(FaultBackend::new(MemBackend::new()));
    let dyn_backend: Arc<dyn Backend> = backend.clone();
    let db = Db::builder().open_backend(dyn_backend, "faulty").unwrap();
    (backend, db)
}

// ---------------------------------------------------------------------------------------
// Files that are not cf-store files

#[test]
fn foreign_files_are_not_databases_and_stay_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SmallRng::seed_from_u64(3);
    let random: Vec<u8> = (0..50_000).map(|_| rng.gen()).collect();
    assert_not_a_database(dir.path(), "random.bin", &random);
    assert_not_a_database(dir.path(), "short-random.bin", &random[..10]);
    let text = "# notes\nthis is a text file, not a database\n".repeat(300);
    assert_not_a_database(dir.path(), "notes.txt", text.as_bytes());
    assert_not_a_database(dir.path(), "one-line.txt", b"hello\n");
}

#[test]
fn an_empty_file_becomes_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.cf");
    std::fs::write(&path, b"").unwrap();
    let db = Db::open(&path).unwrap();
    let cf = db.create_cf("c", CfOptions::default()).unwrap();
    let model = put(&cf, &Model::new(), 0, 10, Durability::Immediate);
    drop((cf, db));
    let db = Db::open(&path).unwrap();
    assert!(db.recovery_notes().is_empty());
    assert_eq!(contents(&db.cf("c").unwrap()), model);
}

#[test]
fn zeroed_files_are_not_databases() {
    let dir = tempfile::tempdir().unwrap();
    assert_not_a_database(dir.path(), "zeros-100", &[0u8; 100]);
    // Two pages of zeros are a creation cut short, and open as a new database
    // (tests/creation.rs); three are not.
    assert_not_a_database(dir.path(), "zeros-12288", &[0u8; 12288]);
    assert_not_a_database(dir.path(), "zeros-1MiB", &vec![0u8; 1 << 20]);
}

#[test]
fn a_database_cut_below_two_pages_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("whole.cf");
    sample_db(&path);
    let whole = std::fs::read(&path).unwrap();
    assert!(whole.len() > 8192);
    for len in [1usize, 8, 15, 16, 17, 100, 511, 512, 4095, 4096, 4097, 8000, 8191] {
        assert_not_a_database(dir.path(), &format!("cut-{len}"), &whole[..len]);
    }
}

#[test]
fn a_database_cut_anywhere_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("whole.cf");
    let (m1, m2) = sample_db(&path);
    let whole = std::fs::read(&path).unwrap();
    let mut lens: Vec<usize> = (2..whole.len() / 4096).map(|p| p * 4096).collect();
    lens.extend([8193, 12_000, whole.len() - 1]);
    for len in lens {
        let backend: Arc<dyn Backend> = Arc::new(MemBackend::from_bytes(whole[..len].to_vec()));
        match Db::builder().open_backend(backend, "cut") {
            // A cut that keeps every page of the newest states loses nothing.
            Ok(db) => {
                for (name, model) in [("one", &m1), ("two", &m2)] {
                    if let Ok(cf) = db.cf(name) {
                        let _ = cf.begin_read().map(|r| {
                            for t in r.list_tables().unwrap_or_default() {
                                if let Ok(t) = r.open_table(&t) {
                                    let _ = t.iter().count();
                                }
                            }
                        });
                        if db.recovery_notes().is_empty() {
                            assert_eq!(contents(&cf), *model, "cut at {len}: {name}");
                        }
                    }
                }
            }
            Err(e) => assert!(
                matches!(
                    e,
                    Error::Corruption { .. } | Error::NotADatabase { .. } | Error::PageCache(_)
                ),
                "cut at {len}: {e:?}"
            ),
        }
    }
}

/// The version this build writes.
const CURRENT: u32 = 3;

/// Sets the format version of every written slot of the file at `path` (the superblock's
/// and the column families'), each checksum made good again.
fn relabel(path: &Path, version: u32) -> Vec<u8> {
    relabel_where(path, version, |_| true)
}

/// Sets the format version of the written slots of the file at `path` that `which` picks
/// (by their magic), each checksum made good again; returns the new bytes.
fn relabel_where(path: &Path, version: u32, which: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    const PS: usize = 4096;
    let mut relabelled = 0;
    for page in bytes.chunks_mut(PS) {
        let magic = &page[0..8];
        let slot = magic == b"CFSTORE\0" || magic == b"CFSLOT\0\0";
        if !slot || !which(magic) || crc32c::crc32c(&page[..PS - 4]).to_le_bytes() != page[PS - 4..] {
            continue;
        }
        assert_eq!(u32::from_le_bytes(page[8..12].try_into().unwrap()), CURRENT);
        page[8..12].copy_from_slice(&version.to_le_bytes());
        let crc = crc32c::crc32c(&page[..PS - 4]);
        page[PS - 4..].copy_from_slice(&crc.to_le_bytes());
        relabelled += 1;
    }
    assert!(relabelled >= 2, "the file has written slots");
    std::fs::write(path, &bytes).unwrap();
    bytes
}

/// Opening `path`, whose bytes are `bytes`, fails with `UnsupportedVersion` naming version
/// `found` and this build's, and leaves the file as it was.
fn assert_unsupported(path: &Path, bytes: &[u8], found: u32) {
    match open_err(path) {
        Error::UnsupportedVersion {
            found: got,
            supported,
            ..
        } => assert_eq!((got, supported), (found, CURRENT)),
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
    assert!(
        std::fs::read(path).unwrap() == bytes,
        "a failed open changed the file"
    );
}

#[test]
fn another_format_version_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.cf");
    sample_db(&path);
    let bytes = relabel(&path, CURRENT + 1);
    assert_unsupported(&path, &bytes, CURRENT + 1);
}

/// A column family's slot written by a newer build is refused, not passed over for its
/// older slot: falling back would lose that commit, and the next commit would overwrite the
/// slot. The file is left as it was.
#[test]
fn a_newer_column_family_slot_is_unsupported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cf-v4.cf");
    sample_db(&path);
    let bytes = relabel_where(&path, CURRENT + 1, |magic| magic == b"CFSLOT\0\0");
    assert_unsupported(&path, &bytes, CURRENT + 1);
}

/// Versions 1 (one-page leaves only) and 2 (leaves of up to four pages) are subsets of
/// version 3: such a file opens, reads and takes new commits.
#[test]
fn version_1_and_2_files_open() {
    for old in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("v{old}.cf"));
        let (m1, m2) = sample_db(&path);
        relabel(&path, old);
        let db = Db::open(&path).unwrap();
        assert_eq!(contents(&db.cf("one").unwrap()), m1);
        assert_eq!(contents(&db.cf("two").unwrap()), m2);
        let m1 = put(&db.cf("one").unwrap(), &m1, 5000, 10, Durability::Immediate);
        drop(db);
        assert_eq!(contents(&Db::open(&path).unwrap().cf("one").unwrap()), m1);
    }
}

#[test]
fn bit_flips_in_the_superblock_fall_back_or_fail_typed() {
    const PS: usize = 4096;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flips.cf");
    let (m1, m2) = sample_db(&path);
    let whole = std::fs::read(&path).unwrap();
    let txn_of = |slot: usize| u64::from_le_bytes(whole[slot * PS + 24..slot * PS + 32].try_into().unwrap());
    // The slot of the last catalog commit ("two" created) and the one before (only "one").
    let newest = if txn_of(0) > txn_of(1) { 0 } else { 1 };

    let mut rng = SmallRng::seed_from_u64(11);
    let mut bytes: Vec<usize> = (0..80).collect();
    bytes.extend(PS - 8..PS);
    bytes.extend((0..24).map(|_| rng.gen_range(80..PS - 8)));
    let open = |image: Vec<u8>| {
        let backend: Arc<dyn Backend> = Arc::new(MemBackend::from_bytes(image));
        Db::builder().open_backend(backend, "flipped")
    };

    for slot in 0..2 {
        for &at in &bytes {
            for bit in 0..8 {
                let mut image = whole.clone();
                image[slot * PS + at] ^= 1 << bit;
                // One slot is intact, so the database always opens.
                let db = open(image).unwrap_or_else(|e| panic!("slot {slot} byte {at} bit {bit}: {e:?}"));
                let what = format!("slot {slot} byte {at} bit {bit}: {:?}", db.recovery_notes());
                assert_eq!(contents(&db.cf("one").unwrap()), m1, "{what}");
                match db.cf("two") {
                    Ok(cf) => assert_eq!(contents(&cf), m2, "{what}"),
                    // Only losing the newest slot falls back to the catalog without "two"
                    // (noted unless the magic was hit: see the ignored test below).
                    Err(Error::CfNotFound { .. }) => assert_eq!(slot, newest, "{what}"),
                    Err(e) => panic!("{what}: {e:?}"),
                }
                if slot == newest && at >= 8 {
                    assert!(
                        !db.recovery_notes().is_empty(),
                        "a damaged newest slot is noted: {what}"
                    );
                }
            }
        }
    }
    // Both slots damaged: a typed error.
    for (a, b) in [(0usize, 0usize), (30, 30), (PS - 1, 9), (200, 3000)] {
        let mut image = whole.clone();
        image[a] ^= 0x10;
        image[PS + b] ^= 0x01;
        match open(image) {
            Err(Error::Corruption { .. } | Error::NotADatabase { .. }) => {}
            Err(e) => panic!("flips at {a} and {b}: unexpected error {e:?}"),
            Ok(db) => panic!("flips at {a} and {b} opened: {:?}", db.recovery_notes()),
        }
    }
}

#[test]
fn a_corrupt_magic_in_a_newest_slot_is_noted() {
    const PS: usize = 4096;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("magic.cf");
    let (m1, m2) = sample_db(&path);
    let whole = std::fs::read(&path).unwrap();
    let mut checked = 0;
    for p in 0..whole.len() / PS {
        let page = &whole[p * PS..(p + 1) * PS];
        let is_slot = (page[0..8] == *b"CFSTORE\0" || page[0..8] == *b"CFSLOT\0\0")
            && crc32c::crc32c(&page[..PS - 4]).to_le_bytes() == page[PS - 4..];
        if !is_slot {
            continue;
        }
        checked += 1;
        let mut image = whole.clone();
        image[p * PS + 2] ^= 0x01;
        let backend: Arc<dyn Backend> = Arc::new(MemBackend::from_bytes(image));
        let db = Db::builder().open_backend(backend, "magic").unwrap();
        let intact = db.cf("one").is_ok_and(|cf| contents(&cf) == m1)
            && db.cf("two").is_ok_and(|cf| contents(&cf) == m2);
        assert!(
            intact || !db.recovery_notes().is_empty(),
            "a flipped magic bit in the slot at page {p} lost committed data without a recovery note"
        );
    }
    assert!(
        checked >= 6,
        "two superblock slots and two slots per column family: {checked}"
    );
}

// ---------------------------------------------------------------------------------------
// Column-family names and handles

#[test]
fn column_family_names_must_be_1_to_255_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("names.cf");
    let db = Db::open(&path).unwrap();
    for (name, len) in [(String::new(), 0), ("a".repeat(256), 256), ("é".repeat(128), 256)] {
        match db.create_cf(&name, CfOptions::default()) {
            Err(Error::InvalidCfName { len: l, name: n, max }) => {
                assert_eq!(l, len);
                assert_eq!(max, 255);
                assert!(n.chars().count() <= 64);
            }
            other => panic!("{len}-byte name: expected InvalidCfName, got {other:?}"),
        }
        assert!(matches!(db.cf_or_create(&name), Err(Error::InvalidCfName { .. })));
    }
    assert!(db.list_cfs().is_empty());
    let longest = "z".repeat(255);
    let cf = db.create_cf(&longest, CfOptions::default()).unwrap();
    let model = put(&cf, &Model::new(), 0, 5, Durability::Immediate);
    let multibyte = "é".repeat(127); // 254 bytes
    db.create_cf(&multibyte, CfOptions::default()).unwrap();
    drop((cf, db));

    let db = Db::open(&path).unwrap();
    assert!(db.recovery_notes().is_empty());
    let mut names = vec![longest.clone(), multibyte];
    names.sort();
    assert_eq!(db.list_cfs(), names);
    assert_eq!(contents(&db.cf(&longest).unwrap()), model);
}

#[test]
fn creating_an_existing_cf_is_cf_exists_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dup.cf");
    let db = Db::open(&path).unwrap();
    let cf = db.create_cf("x", CfOptions::default()).unwrap();
    let model = put(&cf, &Model::new(), 0, 20, Durability::Immediate);
    match db.create_cf("x", CfOptions::default()) {
        Err(Error::CfExists { name }) => assert_eq!(name, "x"),
        other => panic!("expected CfExists, got {other:?}"),
    }
    assert_eq!(contents(&cf), model);
    assert_eq!(contents(&db.cf_or_create("x").unwrap()), model);
    drop((cf, db));
    let db = Db::open(&path).unwrap();
    assert!(matches!(
        db.create_cf("x", CfOptions::default()),
        Err(Error::CfExists { .. })
    ));
    assert_eq!(db.list_cfs(), ["x"]);
    assert_eq!(contents(&db.cf("x").unwrap()), model);
}

#[test]
fn an_unknown_cf_is_cf_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("unknown.cf")).unwrap();
    db.create_cf("known", CfOptions::default()).unwrap();
    match db.cf("unknown") {
        Err(Error::CfNotFound { name }) => assert_eq!(name, "unknown"),
        other => panic!("expected CfNotFound, got {other:?}"),
    }
    assert!(matches!(db.drop_cf("unknown"), Err(Error::CfNotFound { .. })));
    assert!(matches!(db.cf("Known"), Err(Error::CfNotFound { .. })));
    assert_eq!(db.list_cfs(), ["known"]);
}

#[test]
fn a_dropped_cf_fails_its_handles_and_old_snapshots_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drop.cf");
    let db = Db::builder().initial_extent_pages(4).open(&path).unwrap();
    let keep = db.create_cf("keep", CfOptions::default()).unwrap();
    let keep_model = put(&keep, &Model::new(), 0, 50, Durability::Immediate);
    let old = db.create_cf("old", CfOptions::default()).unwrap();
    let s1 = put(&old, &Model::new(), 0, 400, Durability::Immediate);
    let r1 = old.begin_read().unwrap();
    // Commit 2 removes half the keys and rewrites others, freeing pages r1 still reads.
    let mut s2 = s1.clone();
    {
        let txn = old.begin_write().unwrap();
        {
            let mut t = txn.open_table("t").unwrap();
            let m = s2.get_mut("t").unwrap();
            for k in (0..400u64).step_by(2) {
                t.remove(&u64_key(k)).unwrap();
                m.remove(&u64_key(k).to_vec());
            }
            for k in (1..400u64).step_by(4) {
                t.insert(&u64_key(k), b"rewritten").unwrap();
                m.insert(u64_key(k).to_vec(), b"rewritten".to_vec());
            }
        }
        txn.open_table("second").unwrap().insert(b"k", b"v").unwrap();
        s2.entry("second".into())
            .or_default()
            .insert(b"k".to_vec(), b"v".to_vec());
        txn.commit().unwrap();
    }
    let r2 = old.begin_read().unwrap();

    db.drop_cf("old").unwrap();
    for (what, result) in [
        ("begin_write", old.begin_write().map(drop)),
        ("try_begin_write", old.try_begin_write().map(drop)),
        ("begin_read", old.begin_read().map(drop)),
        ("sync", old.sync()),
    ] {
        match result {
            Err(Error::CfDropped { name }) => assert_eq!(name, "old", "{what}"),
            other => panic!("{what} on a dropped cf: expected CfDropped, got {other:?}"),
        }
    }
    assert!(matches!(db.cf("old"), Err(Error::CfNotFound { .. })));
    assert!(matches!(db.drop_cf("old"), Err(Error::CfNotFound { .. })));
    assert_eq!(db.list_cfs(), ["keep"]);

    // New column families take space (the dropped one's must wait for r1 and r2).
    let mut models = Vec::new();
    for n in 0..3u64 {
        let cf = db.create_cf(&format!("new{n}"), CfOptions::default()).unwrap();
        let mut m = Model::new();
        for round in 0..4 {
            m = put(&cf, &m, round * 200, 200, Durability::Immediate);
        }
        models.push((cf, m));
    }
    let read_all = |r: &cf_store::ReadTxn| {
        let mut out = Model::new();
        for name in r.list_tables().unwrap() {
            let t = r.open_table(&name).unwrap();
            out.insert(name, t.iter().map(|e| e.unwrap()).collect());
        }
        out
    };
    assert_eq!(
        read_all(&r1),
        s1,
        "the snapshot before the drop still reads its commit"
    );
    assert_eq!(
        read_all(&r2),
        s2,
        "the snapshot before the drop still reads its commit"
    );
    assert_eq!(
        r1.open_table("t").unwrap().get(&u64_key(0)).unwrap(),
        s1["t"].get(u64_key(0).as_slice()).cloned()
    );

    // With the snapshots gone the space is reused, and nothing of "old" leaks into it.
    drop((r1, r2));
    let reuse = db.create_cf("reuse", CfOptions::default()).unwrap();
    let reuse_model = put(&reuse, &Model::new(), 5000, 300, Durability::Immediate);
    // A re-created "old" starts empty.
    let again = db.create_cf("old", CfOptions::default()).unwrap();
    assert!(contents(&again).is_empty());
    drop(again);

    // A drop waits for an open writer of the column family; the writer's commit stands
    // until the drop completes.
    let doomed = db.create_cf("doomed", CfOptions::default()).unwrap();
    let txn = doomed.begin_write().unwrap();
    txn.open_table("t").unwrap().insert(b"a", b"b").unwrap();
    let (tx, rx) = mpsc::channel();
    let dropper = {
        let db = db.clone();
        thread::spawn(move || {
            tx.send(()).unwrap();
            db.drop_cf("doomed").unwrap();
        })
    };
    rx.recv().unwrap();
    txn.commit().unwrap();
    dropper.join().unwrap();
    assert!(matches!(doomed.begin_read(), Err(Error::CfDropped { .. })));

    db.close().unwrap();
    drop((keep, reuse, doomed, models, db));
    let db = Db::open(&path).unwrap();
    assert!(db.recovery_notes().is_empty(), "{:?}", db.recovery_notes());
    assert_eq!(db.list_cfs(), ["keep", "new0", "new1", "new2", "old", "reuse"]);
    assert_eq!(contents(&db.cf("keep").unwrap()), keep_model);
    assert_eq!(contents(&db.cf("reuse").unwrap()), reuse_model);
    assert!(contents(&db.cf("old").unwrap()).is_empty());
}

// ---------------------------------------------------------------------------------------
// Keys and tables

#[test]
fn an_oversized_key_is_key_too_large_and_the_txn_stays_usable() {
    for page_size in [512u32, 4096] {
        let max = page_size as usize / 4;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.cf");
        let db = Db::builder().page_size(page_size).open(&path).unwrap();
        let cf = db.create_cf("k", CfOptions::default()).unwrap();
        let txn = cf.begin_write().unwrap();
        {
            let mut t = txn.open_table("t").unwrap();
            t.insert(b"before", b"1").unwrap();
            match t.insert(&vec![7u8; max + 1], b"v") {
                Err(Error::KeyTooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
                other => panic!("page {page_size}: expected KeyTooLarge, got {other:?}"),
            }
            // Reads and removes of a key that cannot exist do not panic.
            assert!(matches!(
                t.get(&vec![7u8; max + 1]),
                Ok(None) | Err(Error::KeyTooLarge { .. })
            ));
            assert!(matches!(
                t.remove(&vec![7u8; max + 1]),
                Ok(None) | Err(Error::KeyTooLarge { .. })
            ));
            t.insert(&vec![8u8; max], b"longest key").unwrap();
            t.insert(b"after", b"2").unwrap();
        }
        txn.commit().unwrap();
        let expected: BTreeMap<Vec<u8>, Vec<u8>> = [
            (b"before".to_vec(), b"1".to_vec()),
            (vec![8u8; max], b"longest key".to_vec()),
            (b"after".to_vec(), b"2".to_vec()),
        ]
        .into_iter()
        .collect();
        assert_eq!(contents(&cf)["t"], expected);
        drop((cf, db));
        let db = Db::open(&path).unwrap();
        assert_eq!(contents(&db.cf("k").unwrap())["t"], expected);
    }
}

#[test]
fn table_names_must_be_1_to_a_quarter_page_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("tables.cf")).unwrap();
    let cf = db.create_cf("c", CfOptions::default()).unwrap();
    let too_long = "n".repeat(1025);
    let longest = "n".repeat(1024);
    let txn = cf.begin_write().unwrap();
    for name in ["", too_long.as_str()] {
        match txn.open_table(name) {
            Err(Error::InvalidTableName { len, max }) => assert_eq!((len, max), (name.len(), 1024)),
            other => panic!(
                "{}-byte table name: expected InvalidTableName, got {other:?}",
                name.len()
            ),
        }
        assert!(matches!(
            txn.delete_table(name),
            Err(Error::InvalidTableName { .. })
        ));
    }
    txn.open_table(&longest).unwrap().insert(b"k", b"v").unwrap();
    txn.commit().unwrap();
    let read = cf.begin_read().unwrap();
    for name in ["", too_long.as_str()] {
        assert!(matches!(
            read.open_table(name),
            Err(Error::InvalidTableName { .. })
        ));
    }
    assert_eq!(read.list_tables().unwrap(), std::slice::from_ref(&longest));
    assert_eq!(
        read.open_table(&longest).unwrap().get(b"k").unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn a_missing_table_in_a_snapshot_is_table_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("missing.cf")).unwrap();
    let cf = db.create_cf("c", CfOptions::default()).unwrap();
    match cf.begin_read().unwrap().open_table("t") {
        Err(Error::TableNotFound { name }) => assert_eq!(name, "t"),
        other => panic!("expected TableNotFound, got {other:?}"),
    }
    let txn = cf.begin_write().unwrap();
    txn.open_table("t").unwrap().insert(b"k", b"v").unwrap();
    txn.commit().unwrap();
    let before = cf.begin_read().unwrap();
    let txn = cf.begin_write().unwrap();
    assert!(txn.delete_table("t").unwrap());
    assert!(!txn.delete_table("t").unwrap());
    assert!(!txn.delete_table("never").unwrap());
    txn.commit().unwrap();
    assert!(matches!(
        cf.begin_read().unwrap().open_table("t"),
        Err(Error::TableNotFound { .. })
    ));
    assert_eq!(
        before.open_table("t").unwrap().get(b"k").unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn opening_a_table_twice_in_one_txn_is_table_already_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("twice.cf")).unwrap();
    let cf = db.create_cf("c", CfOptions::default()).unwrap();
    let txn = cf.begin_write().unwrap();
    {
        let mut t = txn.open_table("t").unwrap();
        t.insert(b"k", b"v").unwrap();
        match txn.open_table("t") {
            Err(Error::TableAlreadyOpen { name }) => assert_eq!(name, "t"),
            other => panic!("expected TableAlreadyOpen, got {other:?}"),
        }
        assert!(matches!(
            txn.delete_table("t"),
            Err(Error::TableAlreadyOpen { .. })
        ));
        // Another table opens beside it.
        txn.open_table("u").unwrap().insert(b"k", b"u").unwrap();
        t.insert(b"k2", b"v2").unwrap();
    }
    {
        // Closed, it opens again with its changes.
        let t = txn.open_table("t").unwrap();
        assert_eq!(t.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(t.len(), 2);
    }
    assert_eq!(txn.list_tables().unwrap(), ["t", "u"]);
    txn.commit().unwrap();
    let model = contents(&cf);
    assert_eq!(model["t"].len(), 2);
    assert_eq!(model["u"].len(), 1);
}

// ---------------------------------------------------------------------------------------
// A full disk and a failed fsync

#[test]
fn a_full_disk_is_error_flush_out_of_space() {
    let (backend, db) = fault_db();
    let cf = db.create_cf("c", CfOptions::default()).unwrap();
    backend.fail_writes(libc::ENOSPC);
    let txn = cf.begin_write().unwrap();
    txn.open_table("t").unwrap().insert(b"k", b"v").unwrap();
    let err = txn.commit().unwrap_err();
    assert!(err.is_out_of_space(), "{err:?}");
    let err = db.create_cf("d", CfOptions::default()).unwrap_err();
    assert!(err.is_out_of_space(), "{err:?}");
}

#[test]
fn a_full_disk_fails_the_commit_and_keeps_the_previous_state() {
    let (backend, db) = fault_db();
    let cf = db.create_cf("c", CfOptions::default()).unwrap();
    let s1 = put(&cf, &Model::new(), 0, 200, Durability::Immediate);

    // Full from the first write, and full after a few writes (a partly written commit: the
    // per-page policy makes one write per page, so the budget runs out mid-commit).
    for (budget, durability, policy) in [
        (-1, Durability::Immediate, "vectored"),
        (-1, Durability::None, "vectored"),
        (-1, Durability::Immediate, "gap-merge:64KiB"),
        (3, Durability::Immediate, "per-page"),
        (5, Durability::None, "per-page"),
        (1, Durability::Immediate, "sorted-merge"),
        (1, Durability::Immediate, "vectored"),
    ] {
        cf.set_flush(policy.parse().unwrap()).unwrap();
        if budget < 0 {
            backend.fail_writes(libc::ENOSPC);
        } else {
            backend.fail_writes_after(budget as u64, libc::ENOSPC);
        }
        let mut txn = cf.begin_write().unwrap();
        txn.set_durability(durability);
        {
            let mut t = txn.open_table("t").unwrap();
            for k in 0..300u64 {
                t.insert(&u64_key(k), &[9u8; 300]).unwrap();
            }
            t.remove(&u64_key(5)).unwrap();
        }
        txn.open_table("new").unwrap().insert(b"k", b"v").unwrap();
        let err = txn.commit().unwrap_err();
        assert!(
            err.is_out_of_space(),
            "budget {budget}, {durability:?}, {policy}: {err:?}"
        );
        assert_eq!(contents(&cf), s1, "the failed commit is not visible");
        // Nor does it reach the file: a crash now recovers the previous state.
        let image = reopen(&backend);
        assert_eq!(
            contents(&image.cf("c").unwrap()),
            s1,
            "budget {budget}, {policy}: {:?}",
            image.recovery_notes()
        );
        drop(image);
        // A failed write is not a failed sync: reads and new transactions still work.
        let txn = cf.begin_write().unwrap();
        assert_eq!(txn.open_table("t").unwrap().len(), 200);
        txn.abort();
        backend.heal_writes();
    }

    // A catalog commit (create_cf) on a full disk, from the first write or part way.
    for budget in [-1, 1, 2] {
        if budget < 0 {
            backend.fail_writes(libc::ENOSPC);
        } else {
            backend.fail_writes_after(budget as u64, libc::ENOSPC);
        }
        let err = db.create_cf("other", CfOptions::default()).unwrap_err();
        assert!(err.is_out_of_space(), "budget {budget}: {err:?}");
        assert_eq!(db.list_cfs(), ["c"]);
        assert!(matches!(db.cf("other"), Err(Error::CfNotFound { .. })));
        let image = reopen(&backend);
        assert_eq!(
            image.list_cfs(),
            ["c"],
            "budget {budget}: {:?}",
            image.recovery_notes()
        );
        assert_eq!(contents(&image.cf("c").unwrap()), s1);
        drop(image);
        backend.heal_writes();
    }

    let s2 = put(&cf, &s1, 1000, 300, Durability::Immediate);
    let other = db.create_cf("other", CfOptions::default()).unwrap();
    let o1 = put(&other, &Model::new(), 0, 10, Durability::Immediate);
    assert_eq!(contents(&cf), s2);

    let reopened = reopen(&backend);
    assert!(
        reopened.recovery_notes().is_empty(),
        "{:?}",
        reopened.recovery_notes()
    );
    assert_eq!(reopened.list_cfs(), ["c", "other"]);
    assert_eq!(contents(&reopened.cf("c").unwrap()), s2);
    assert_eq!(contents(&reopened.cf("other").unwrap()), o1);
}

#[test]
fn creating_a_database_on_a_full_disk_fails_typed() {
    let backend = Arc::new(FaultBackend::new(MemBackend::new()));
    backend.fail_writes(libc::ENOSPC);
    let dyn_backend: Arc<dyn Backend> = backend.clone();
    let err = Db::builder()
        .open_backend(dyn_backend.clone(), "full")
        .unwrap_err();
    assert!(err.is_out_of_space(), "{err:?}");
    backend.heal_writes();
    // Whatever the failed create left, opening again either creates or rejects it typed.
    match Db::builder().open_backend(dyn_backend, "full") {
        Ok(db) => {
            db.create_cf("c", CfOptions::default()).unwrap();
        }
        Err(e) => assert!(
            matches!(e, Error::NotADatabase { .. } | Error::Corruption { .. }),
            "{e:?}"
        ),
    }
}

#[test]
fn a_failed_fsync_refuses_every_later_write_but_reads_work() {
    let (backend, db) = fault_db();
    let a = db.create_cf("a", CfOptions::default()).unwrap();
    let b = db.create_cf("b", CfOptions::default()).unwrap();
    let a1 = put(&a, &Model::new(), 0, 100, Durability::Immediate);
    let b1 = put(&b, &Model::new(), 0, 100, Durability::Immediate);
    // b's newest commit is not durable, so close() would have to write.
    let b2 = put(&b, &b1, 100, 10, Durability::None);
    // A writer of b open before the failure.
    let b_txn = b.begin_write().unwrap();
    b_txn.open_table("t").unwrap().insert(b"late", b"x").unwrap();

    backend.fail_syncs(libc::EIO);
    let syncs_before = backend.sync_calls();
    let mut txn = a.begin_write().unwrap();
    txn.set_durability(Durability::Immediate);
    let mut a2 = a1.clone();
    {
        let mut t = txn.open_table("t").unwrap();
        for k in 100..150u64 {
            t.insert(&u64_key(k), b"a2").unwrap();
            a2.get_mut("t")
                .unwrap()
                .insert(u64_key(k).to_vec(), b"a2".to_vec());
        }
    }
    let err = txn.commit().unwrap_err();
    match &err {
        Error::Flush(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "{err:?}"),
        other => panic!("the failing commit reports the fsync's error, got {other:?}"),
    }
    assert_eq!(backend.sync_calls(), syncs_before + 1);
    // The disk would work again, but a failed fsync is never retried: the database refuses
    // every write until reopened.
    backend.heal_syncs();
    let writes_after_failure = backend.write_calls();

    let refused: Vec<(&str, Result<(), Error>)> = vec![
        ("a.begin_write", a.begin_write().map(drop)),
        ("a.try_begin_write", a.try_begin_write().map(drop)),
        ("commit of a txn of another cf opened before", b_txn.commit()),
        ("create_cf", db.create_cf("c", CfOptions::default()).map(drop)),
        ("drop_cf", db.drop_cf("a")),
        ("close", db.close()),
        ("b.sync", b.sync()),
    ];
    for (what, result) in refused {
        assert!(
            matches!(result, Err(Error::SyncFailed)),
            "{what}: expected SyncFailed, got {result:?}"
        );
    }
    assert!(matches!(b.begin_write(), Err(Error::SyncFailed)));
    assert_eq!(db.list_cfs(), ["a", "b"]);

    // Reads still work, and show the last successful commits.
    assert_eq!(contents(&a), a1, "the commit whose fsync failed is not visible");
    assert_eq!(contents(&b), b2);

    drop((a, b, db));
    assert_eq!(backend.sync_calls(), syncs_before + 1, "the fsync was retried");
    assert_eq!(
        backend.write_calls(),
        writes_after_failure,
        "a poisoned database wrote to the file"
    );

    // A new database over the same bytes recovers a committed state of each column family.
    let reopened = reopen(&backend);
    let got_a = contents(&reopened.cf("a").unwrap());
    assert!(
        got_a == a1 || got_a == a2,
        "a holds neither the state before nor the one being committed"
    );
    assert_eq!(
        contents(&reopened.cf("b").unwrap()),
        b1,
        "b's last durable commit"
    );
    let c = reopened.cf("a").unwrap();
    let txn = c.begin_write().unwrap();
    txn.open_table("t").unwrap().insert(b"after", b"reopen").unwrap();
    txn.commit().unwrap();
}
