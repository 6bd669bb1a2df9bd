//! Isolation: one column family's flushes, however aggressively they merge free gaps, never
//! change another column family's contents or write a byte of another column family's pages.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;

use cf_store::{u64_key, CfOptions, ColumnFamily, Db, DbBuilder, Durability, Error, FlushConfig, ReadTxn};
use flush::testing::RecordingBackend;
use flush::{Backend, FileBackend, MemBackend};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const PAGE: usize = 4096;
const TABLES: [&str; 2] = ["t0", "t1"];

type Model = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

fn config(s: &str) -> FlushConfig {
    s.parse().unwrap()
}

fn builder() -> DbBuilder {
    Db::builder().page_size(PAGE as u32).initial_extent_pages(4)
}

fn options(flush: &str) -> CfOptions {
    CfOptions::default()
        .with_flush(config(flush))
        .with_initial_extent_pages(4)
}

/// A value that names its key and version, of a length from a few bytes to past the inline
/// limit (so some values take overflow runs of several pages).
fn random_value(rng: &mut SmallRng, key: u64, version: u64) -> Vec<u8> {
    let len = if rng.gen_bool(0.08) {
        rng.gen_range(2_500..9_000)
    } else {
        rng.gen_range(0..700)
    };
    let mut v = format!("{key}/{version}/").into_bytes();
    v.extend((0..len).map(|i| (i as u64 ^ key ^ version) as u8));
    v
}

/// One small random commit (or abort) on `cf`, applied to `model` when it commits.
fn random_commit(cf: &ColumnFamily, model: &mut Model, rng: &mut SmallRng, version: u64, keys: u64) {
    let mut txn = cf.begin_write().unwrap();
    txn.set_durability(if rng.gen_bool(0.35) {
        Durability::Immediate
    } else {
        Durability::None
    });
    let mut next = model.clone();
    for _ in 0..rng.gen_range(1..12) {
        let table = TABLES[rng.gen_range(0..TABLES.len())];
        let mut t = txn.open_table(table).unwrap();
        let m = next.entry(table.to_owned()).or_default();
        let key = rng.gen_range(0..keys);
        if rng.gen_bool(0.4) {
            assert_eq!(t.remove(&u64_key(key)).unwrap(), m.remove(&u64_key(key).to_vec()));
        } else {
            let v = random_value(rng, key, version);
            assert_eq!(
                t.insert(&u64_key(key), &v).unwrap(),
                m.insert(u64_key(key).to_vec(), v)
            );
        }
    }
    if rng.gen_bool(0.05) {
        txn.abort();
    } else {
        txn.commit().unwrap();
        *model = next;
    }
}

fn snapshot_contents(read: &ReadTxn) -> Model {
    let mut out = Model::new();
    for name in read.list_tables().unwrap() {
        let t = read.open_table(&name).unwrap();
        let entries: BTreeMap<_, _> = t.iter().map(|e| e.unwrap()).collect();
        assert_eq!(t.len(), entries.len() as u64);
        out.insert(name, entries);
    }
    out
}

fn contents(cf: &ColumnFamily) -> Model {
    snapshot_contents(&cf.begin_read().unwrap())
}

/// The model as the store shows it: a table created by a commit exists even when empty.
fn assert_same(cf: &ColumnFamily, model: &Model, when: &str) {
    let got = contents(cf);
    assert!(
        got == *model,
        "column family {} differs from its model {when}",
        cf.name()
    );
}

#[test]
fn concurrent_gap_merging_cfs_keep_exactly_their_own_contents() {
    const COMMITS: u64 = 150;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iso.cf");
    let db = builder().open(&path).unwrap();
    let a = db.create_cf("alpha", options("gap-merge:64KiB")).unwrap();
    let b = db.create_cf("bravo", options("vectored-gap:64KiB")).unwrap();

    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .enumerate()
        .map(|(n, cf)| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(100 + n as u64);
                let mut model = Model::new();
                let mut held: Vec<(ReadTxn, Model)> = Vec::new();
                for version in 1..=COMMITS {
                    // Lock step: both column families commit (and grow) in turn, so their
                    // extents interleave in the file.
                    barrier.wait();
                    random_commit(&cf, &mut model, &mut rng, version, 300);
                    if rng.gen_bool(0.1) {
                        held.push((cf.begin_read().unwrap(), model.clone()));
                    }
                    if held.len() > 2 || (rng.gen_bool(0.2) && !held.is_empty()) {
                        let (old, m) = held.remove(0);
                        assert!(
                            snapshot_contents(&old) == m,
                            "a held snapshot of {} changed",
                            cf.name()
                        );
                    }
                    if version % 25 == 0 {
                        assert_same(&cf, &model, "during the run");
                    }
                }
                for (old, m) in held {
                    assert!(
                        snapshot_contents(&old) == m,
                        "a held snapshot of {} changed",
                        cf.name()
                    );
                }
                model
            })
        })
        .collect();
    let models: Vec<Model> = threads.into_iter().map(|t| t.join().unwrap()).collect();

    assert_same(&a, &models[0], "after join");
    assert_same(&b, &models[1], "after join");
    for cf in [&a, &b] {
        let s = cf.stats();
        assert!(
            s.extents >= 3,
            "{} grew only to {} extents: the test needs interleaving",
            cf.name(),
            s.extents
        );
    }
    db.close().unwrap();
    drop((a, b, db));

    let db = builder().open(&path).unwrap();
    assert!(db.recovery_notes().is_empty(), "{:?}", db.recovery_notes());
    assert_same(&db.cf("alpha").unwrap(), &models[0], "after reopen");
    assert_same(&db.cf("bravo").unwrap(), &models[1], "after reopen");
}

/// Opens `image` in memory and says whether column family "alpha" is damaged: missing,
/// unreadable, different from `model`, or named in a recovery note.
fn alpha_damaged(image: Vec<u8>, model: &Model) -> bool {
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::from_bytes(image));
    match builder().open_backend(backend, "probe") {
        Err(e) => e.to_string().contains("\"alpha\""),
        Ok(db) => {
            if db.recovery_notes().iter().any(|n| n.contains("\"alpha\"")) {
                return true;
            }
            let Ok(cf) = db.cf("alpha") else { return true };
            let Ok(read) = cf.begin_read() else { return true };
            let Ok(names) = read.list_tables() else {
                return true;
            };
            let mut got = Model::new();
            for name in names {
                let Ok(t) = read.open_table(&name) else {
                    return true;
                };
                let entries: Result<BTreeMap<_, _>, Error> = t.iter().collect();
                let Ok(entries) = entries else { return true };
                got.insert(name, entries);
            }
            got != *model
        }
    }
}

/// The pages of `image` that column family "alpha" needs: every page whose loss damages it
/// (found by zeroing each page in turn), plus both of its commit slots (pages with the
/// column-family slot magic and alpha's owner id, per the slot layout in `format.rs`).
fn alpha_pages(image: &[u8], model: &Model) -> BTreeSet<u64> {
    let pages = (image.len() / PAGE) as u64;
    let mut needed = BTreeSet::new();
    for p in 2..pages {
        let mut copy = image.to_vec();
        copy[p as usize * PAGE..(p as usize + 1) * PAGE].fill(0);
        if alpha_damaged(copy, model) {
            needed.insert(p);
        }
    }
    let page = |p: u64| &image[p as usize * PAGE..(p as usize + 1) * PAGE];
    let is_slot = |p: u64| {
        let bytes = page(p);
        bytes[0..8] == *b"CFSLOT\0\0" && crc32c::crc32c(&bytes[..PAGE - 4]).to_le_bytes() == bytes[PAGE - 4..]
    };
    let owner = |p: u64| u64::from_le_bytes(page(p)[16..24].try_into().unwrap());
    let owners: BTreeSet<u64> = needed
        .iter()
        .copied()
        .filter(|&p| is_slot(p))
        .map(owner)
        .collect();
    assert_eq!(
        owners.len(),
        1,
        "alpha's newest slot should be among the pages it needs"
    );
    let alpha = *owners.first().unwrap();
    let slots: Vec<u64> = (2..pages).filter(|&p| is_slot(p) && owner(p) == alpha).collect();
    assert_eq!(slots.len(), 2, "alpha has two written commit slots: {slots:?}");
    needed.extend(slots);
    needed
}

fn read_file(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn heavy_gap_merging_on_one_cf_never_writes_another_cfs_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bytes.cf");
    let mut rng = SmallRng::seed_from_u64(7);

    // Phase 1: both column families written in turn, so their extents interleave.
    let (alpha_model, mut bravo_model) = {
        let db = builder().flush(config("gap-merge:64KiB")).open(&path).unwrap();
        let a = db.create_cf("alpha", options("gap-merge:64KiB")).unwrap();
        let b = db.create_cf("bravo", options("vectored-gap:64KiB")).unwrap();
        let (mut ma, mut mb) = (Model::new(), Model::new());
        for version in 1..=80 {
            random_commit(&a, &mut ma, &mut rng, version, 200);
            random_commit(&b, &mut mb, &mut rng, version, 200);
        }
        // alpha's last commit is not durable, so its two slots hold different states and
        // losing the newest one is visible.
        let mut txn = a.begin_write().unwrap();
        txn.set_durability(Durability::None);
        txn.open_table("t0").unwrap().insert(b"last", b"commit").unwrap();
        txn.commit().unwrap();
        ma.entry("t0".into())
            .or_default()
            .insert(b"last".to_vec(), b"commit".to_vec());
        assert!(a.stats().extents >= 3 && b.stats().extents >= 3);
        db.close().unwrap();
        (ma, mb)
    };

    let before = read_file(&path);
    let alpha = alpha_pages(&before, &alpha_model);
    assert!(alpha.len() >= 6, "alpha needs only pages {alpha:?}");
    let (lo, hi) = (*alpha.first().unwrap(), *alpha.last().unwrap());

    // Phase 2: many commits on bravo only, with the most aggressive gap policies, through a
    // backend that logs every write.
    let recording = Arc::new(RecordingBackend::new(FileBackend::open(&path).unwrap()));
    let backend: Arc<dyn Backend> = recording.clone();
    {
        let db = builder()
            .flush(config("gap-merge:16MiB"))
            .open_backend(backend, &path)
            .unwrap();
        assert!(db.recovery_notes().is_empty(), "{:?}", db.recovery_notes());
        let a = db.cf("alpha").unwrap();
        let b = db.cf("bravo").unwrap();
        assert_same(&a, &alpha_model, "after the first reopen");
        let alpha_snapshot = a.begin_read().unwrap();
        let policies = [
            "gap-merge:16MiB",
            "vectored-gap:16MiB",
            "gap-merge:64KiB",
            "vectored-gap:64KiB",
        ];
        let mut held: Vec<ReadTxn> = Vec::new();
        for version in 1000..1300 {
            if version % 25 == 0 {
                b.set_flush(config(policies[(version as usize / 25) % policies.len()]))
                    .unwrap();
            }
            random_commit(&b, &mut bravo_model, &mut rng, version, 400);
            if rng.gen_bool(0.1) {
                held.push(b.begin_read().unwrap());
            }
            if held.len() > 3 {
                held.remove(0);
            }
        }
        drop(held);
        assert!(snapshot_contents(&alpha_snapshot) == alpha_model);
        assert_same(&a, &alpha_model, "after bravo's commits");
        assert_same(&b, &bravo_model, "after bravo's commits");
        assert_eq!(a.stats().commits, 0);
        db.close().unwrap();
    }

    let log = recording.take_log();
    assert!(!log.is_empty());
    let ps = PAGE as u64;
    for w in &log {
        let (first, end) = (w.offset / ps, (w.offset + w.len).div_ceil(ps));
        if let Some(p) = alpha.range(first..end).next() {
            panic!("a write of bravo's ({w:?}) covers page {p} of alpha");
        }
    }
    // The check means something only if bravo wrote among alpha's pages.
    assert!(
        log.iter().any(|w| w.offset / ps > lo && w.offset / ps < hi),
        "no write of bravo landed between alpha's pages {lo}..={hi}"
    );

    let after = read_file(&path);
    for &p in &alpha {
        let r = p as usize * PAGE..(p as usize + 1) * PAGE;
        assert!(before[r.clone()] == after[r], "page {p} of alpha changed");
    }

    let db = builder().open(&path).unwrap();
    assert!(db.recovery_notes().is_empty(), "{:?}", db.recovery_notes());
    assert_same(&db.cf("alpha").unwrap(), &alpha_model, "after the final reopen");
    assert_same(&db.cf("bravo").unwrap(), &bravo_model, "after the final reopen");
}
