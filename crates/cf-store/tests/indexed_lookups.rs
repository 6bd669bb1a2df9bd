//! Point lookups and ranges through indexed nodes (`DbBuilder::index_bytes`) find what a model
//! says while commits free and reuse pages, a small read cache evicts and rereads them, and
//! snapshots taken earlier keep reading their own state; with the index off and on the mmap
//! path they find the same, and the mmap path keeps nothing indexed.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use cf_store::{u64_key, CfOptions, ColumnFamily, Db, DbBuilder, Durability, ReadPath};
use flush::{Backend, MemBackend};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Keys of three shapes: 8-byte integers, strings sharing a 12-byte prefix (the index compares
/// their first 8 bytes and must fall back to whole keys), and short ones that are prefixes of
/// others.
fn key(rng: &mut SmallRng) -> Vec<u8> {
    match rng.gen_range(0..3) {
        0 => u64_key(rng.gen_range(0..2_000)).to_vec(),
        1 => format!("shared/prefix/{:04}", rng.gen_range(0..800)).into_bytes(),
        _ => b"ab\0\xff".iter().take(rng.gen_range(0..5)).copied().collect(),
    }
}

/// Every model key and a few absent ones, looked up in `table` (a closure over `get`).
fn check(model: &Model, get: impl Fn(&[u8]) -> Option<Vec<u8>>, rng: &mut SmallRng) {
    for (k, v) in model {
        assert_eq!(get(k).as_ref(), Some(v), "key {k:?}");
    }
    for _ in 0..200 {
        let mut k = key(rng);
        if rng.gen_bool(0.5) {
            k.push(0);
        }
        assert_eq!(get(&k), model.get(&k).cloned(), "key {k:?}");
    }
}

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// The whole table both ways and ranges between random bounds both ways, each read by `scan` (a
/// closure over a table's `range`: bounds, and whether to scan from the back), against the
/// model.
fn check_ranges(
    model: &Model,
    scan: impl Fn(Bound<&[u8]>, Bound<&[u8]>, bool) -> Entries,
    rng: &mut SmallRng,
) {
    let bound = |rng: &mut SmallRng| -> Bound<Vec<u8>> {
        match rng.gen_range(0..3) {
            0 => Bound::Unbounded,
            1 => Bound::Included(key(rng)),
            _ => Bound::Excluded(key(rng)),
        }
    };
    let all = (Bound::Unbounded, Bound::Unbounded);
    let ranges = std::iter::once(all).chain((0..4).map(|_| (bound(rng), bound(rng))));
    for (start, end) in ranges {
        let (start, end) = (start.as_ref().map(Vec::as_slice), end.as_ref().map(Vec::as_slice));
        // `BTreeMap::range` panics on a start past the end; such a range is empty.
        let empty = match (start, end) {
            (Bound::Included(s), Bound::Included(e)) => s > e,
            (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => s >= e,
            _ => false,
        };
        let want: Entries = if empty {
            Vec::new()
        } else {
            let range = model.range::<[u8], _>((start, end));
            range.map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        assert_eq!(scan(start, end, false), want, "{start:?}..{end:?}");
        let back: Entries = want.into_iter().rev().collect();
        assert_eq!(scan(start, end, true), back, "{start:?}..{end:?} from the back");
    }
}

/// [`check_ranges`]' `scan` over one table's `range`.
macro_rules! scan {
    ($table:expr) => {
        |start: Bound<&[u8]>, end: Bound<&[u8]>, back: bool| -> Entries {
            let range = $table.range::<[u8], _>((start, end));
            if back {
                range.rev().map(Result::unwrap).collect()
            } else {
                range.map(Result::unwrap).collect()
            }
        }
    };
}

/// Random inserts, overwrites and removes in commits of both durabilities, every state
/// checked by lookups in a new snapshot and in the next write transaction; a snapshot taken
/// every 40 commits is checked again 20 commits later. Returns the database for its stats.
fn churn(builder: DbBuilder, seed: u64) -> Db {
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let db = builder.open_backend(backend, "mem").unwrap();
    let cf = db.create_cf("cf", CfOptions::default()).unwrap();
    let mut model = Model::new();
    let mut snapshots = Vec::new();
    let mut rng = SmallRng::seed_from_u64(seed);
    for round in 0..160u32 {
        let mut txn = cf.begin_write().unwrap();
        txn.set_durability(if rng.gen_bool(0.2) {
            Durability::Immediate
        } else {
            Durability::None
        });
        {
            let mut t = txn.open_table("t").unwrap();
            check(&model, |k| t.get(k).unwrap(), &mut rng);
            for _ in 0..rng.gen_range(1..80) {
                let k = key(&mut rng);
                if rng.gen_bool(0.25) {
                    assert_eq!(t.remove(&k).unwrap(), model.remove(&k));
                } else {
                    let v = vec![round as u8; rng.gen_range(0..700)];
                    assert_eq!(t.insert(&k, &v).unwrap(), model.insert(k, v));
                }
            }
            // The transaction's changed nodes beside committed ones.
            check_ranges(&model, scan!(t), &mut rng);
        }
        txn.commit().unwrap();
        let read = cf.begin_read().unwrap();
        check(
            &model,
            |k| read.open_table("t").unwrap().get(k).unwrap(),
            &mut rng,
        );
        let table = read.open_table("t").unwrap();
        check_ranges(&model, scan!(table), &mut rng);
        drop(table);
        if round % 40 == 0 {
            snapshots.push((read, model.clone()));
        } else if round % 40 == 20 {
            // Checked after 20 later commits, then let go, so that the pages it kept from
            // reuse are reused.
            for (snapshot, then) in snapshots.drain(..) {
                let t = snapshot.open_table("t").unwrap();
                check(&then, |k| t.get(k).unwrap(), &mut rng);
                check_ranges(&then, scan!(t), &mut rng);
            }
        }
    }
    db
}

#[test]
fn lookups_find_the_model_through_page_reuse_and_evictions() {
    for seed in 0..2 {
        // A read cache of 64 pages: most nodes are evicted and read again between visits.
        // Every commit is written (none held), so freed pages are rewritten in the file.
        let builder = Db::builder().page_size(512).cache_bytes(64 * 512).hold_bytes(0);
        let db = churn(builder, seed);
        let stats = db.stats().unwrap();
        assert!(stats.index.hits > 0 && stats.index.built > 0, "{:?}", stats.index);
        assert!(stats.index.bytes <= stats.index.capacity_bytes);
        assert!(
            stats.cache.evicted_pages > 0,
            "the cache evicted: {:?}",
            stats.cache
        );
        // Pages were reused: the file is far smaller than all the pages written.
        assert!(
            stats.io.bytes_written > 2 * stats.file_bytes,
            "{} bytes written, file {}",
            stats.io.bytes_written,
            stats.file_bytes
        );
    }
}

#[test]
fn lookups_find_the_model_in_held_pages() {
    // Commits without durability are held in memory (the default budget): lookups read
    // held pages, which later commits drop unwritten or write out.
    let db = churn(Db::builder().page_size(512), 5);
    let stats = db.stats().unwrap().index;
    assert!(stats.hits > 0 && stats.built > 0, "{stats:?}");
}

#[test]
fn a_small_index_evicts_and_stays_within_its_bound() {
    let db = churn(Db::builder().page_size(512).index_bytes(8 << 10), 7);
    let stats = db.stats().unwrap().index;
    assert!(stats.hits > 0 && stats.nodes > 0, "{stats:?}");
    assert!(stats.built > 10 * stats.nodes, "it evicted: {stats:?}");
    assert!(
        stats.bytes <= stats.capacity_bytes && stats.capacity_bytes <= 8 << 10,
        "{stats:?}"
    );
}

#[test]
fn lookups_find_the_model_with_64_kib_pages() {
    // Nodes up to 64 KiB a page (offsets past u16), written at once and held.
    for hold in [0, 64 << 20] {
        let db = churn(Db::builder().page_size(65536).hold_bytes(hold), 9);
        assert!(db.stats().unwrap().index.hits > 0);
    }
}

#[test]
fn with_the_index_off_lookups_find_the_same() {
    let db = churn(Db::builder().page_size(512).index_bytes(0), 1);
    assert_eq!(db.stats().unwrap().index, Default::default());
}

/// The mmap path makes no index; its lookups and ranges find the same.
#[test]
fn the_mmap_path_keeps_no_node_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::builder()
        .read_path(ReadPath::Mmap)
        .open(dir.path().join("mapped.cf"))
        .unwrap();
    let cf = db.create_cf("cf", CfOptions::default()).unwrap();
    let txn = cf.begin_write().unwrap();
    {
        let mut t = txn.open_table("t").unwrap();
        for k in 0..3_000u64 {
            t.insert(&u64_key(k), &k.to_le_bytes()).unwrap();
        }
    }
    txn.commit().unwrap();
    let read = cf.begin_read().unwrap();
    let t = read.open_table("t").unwrap();
    for k in 0..3_000u64 {
        assert_eq!(t.get(&u64_key(k)).unwrap(), Some(k.to_le_bytes().to_vec()));
    }
    let model: Model = (0..3_000u64)
        .map(|k| (u64_key(k).to_vec(), k.to_le_bytes().to_vec()))
        .collect();
    check_ranges(&model, scan!(t), &mut SmallRng::seed_from_u64(3));
    assert_eq!(
        db.stats().unwrap().index,
        Default::default(),
        "the mmap path has no index"
    );
}

/// Readers look up and scan every key of their snapshot while a writer rewrites all of them
/// in each commit, so pages are freed and rewritten as soon as the readers let go of them: every
/// snapshot must read one commit's values, never a mix, and never an older commit than the
/// snapshot before it.
#[test]
fn concurrent_readers_see_whole_commits_while_pages_are_reused() {
    const KEYS: u64 = 200;
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let db = Db::builder()
        .page_size(512)
        .hold_bytes(0)
        .cache_bytes(64 * 512)
        .open_backend(backend, "mem")
        .unwrap();
    let cf = db.create_cf("cf", CfOptions::default()).unwrap();
    let value = |commit: u64, k: u64| {
        let mut v = commit.to_be_bytes().to_vec();
        v.resize(8 + ((commit * 31 + k * 7) % 90) as usize, k as u8);
        v
    };
    let write = |commit: u64| {
        let txn = cf.begin_write().unwrap();
        {
            let mut t = txn.open_table("t").unwrap();
            for k in 0..KEYS {
                t.insert(&u64_key(k), &value(commit, k)).unwrap();
            }
        }
        txn.commit().unwrap();
    };
    write(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let (mut last, mut snapshots) = (0, 0u64);
                    while !done.load(std::sync::atomic::Ordering::Acquire) || snapshots == 0 {
                        let read = cf.begin_read().unwrap();
                        let t = read.open_table("t").unwrap();
                        let first = t.get(&u64_key(0)).unwrap().unwrap();
                        let commit = u64::from_be_bytes(first[..8].try_into().unwrap());
                        assert!(commit >= last, "went back from commit {last} to {commit}");
                        for k in 0..KEYS {
                            assert_eq!(t.get(&u64_key(k)).unwrap(), Some(value(commit, k)), "key {k}");
                        }
                        let scanned = t.iter().map(Result::unwrap);
                        let want = (0..KEYS).map(|k| (u64_key(k).to_vec(), value(commit, k)));
                        assert!(scanned.eq(want), "a scan of commit {commit}");
                        (last, snapshots) = (commit, snapshots + 1);
                    }
                    snapshots
                })
            })
            .collect();
        // At least 150 commits, and on until pages were rewritten several times over (a
        // reader descheduled while it holds an old snapshot keeps its pages from reuse).
        for commit in 1.. {
            write(commit);
            if commit >= 150 && commit % 50 == 0 {
                let stats = db.stats().unwrap();
                if stats.io.bytes_written > 4 * stats.file_bytes {
                    break;
                }
                assert!(commit < 20_000, "pages were never rewritten: {stats:?}");
            }
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        for reader in readers {
            assert!(reader.join().unwrap() > 0);
        }
    });
    let stats = db.stats().unwrap();
    assert!(stats.index.hits > 0, "{:?}", stats.index);
}

/// A database of 512-byte pages in memory whose column family holds table "t" of `keys` keys
/// (`u64_key(k)` -> `value(k)`), committed in one transaction. Leaves grow to four pages, so
/// that a few thousand keys make a tree of two levels of branches above the leaves.
fn one_table(keys: u64, value: impl Fn(u64) -> Vec<u8>) -> (Db, ColumnFamily) {
    let db = Db::builder()
        .page_size(512)
        .leaf_pages(4)
        .open_backend(Arc::new(MemBackend::new()), "mem")
        .unwrap();
    let cf = db.create_cf("cf", CfOptions::default()).unwrap();
    let txn = cf.begin_write().unwrap();
    {
        let mut t = txn.open_table("t").unwrap();
        for k in 0..keys {
            t.insert(&u64_key(k), &value(k)).unwrap();
        }
    }
    txn.commit().unwrap();
    (db, cf)
}

/// A table of a read transaction keeps the indexes of its tree's top two levels once lookups
/// needed them (the snapshot keeps them unchanged): its later lookups ask the shared index
/// for two nodes fewer.
#[test]
fn a_read_table_keeps_its_top_levels_for_its_lookups() {
    const KEYS: u64 = 3_000;
    let (db, cf) = one_table(KEYS, |_| vec![7; 20]);
    let read = cf.begin_read().unwrap();
    let hits = || db.stats().unwrap().index.hits;
    let each_fresh = || {
        for k in 0..KEYS {
            assert!(read.open_table("t").unwrap().get(&u64_key(k)).unwrap().is_some());
        }
    };
    each_fresh(); // indexes every node
    let before = hits();
    each_fresh();
    let fresh = hits() - before;
    // Opening a table looks its name up in the table directory.
    let before = hits();
    for _ in 0..KEYS {
        read.open_table("t").unwrap();
    }
    let directory = hits() - before;
    let levels = (fresh - directory) / KEYS;
    assert_eq!(fresh - directory, levels * KEYS, "every lookup hit every level");
    assert!(
        levels >= 3,
        "a tree of two levels of branches and leaves: {levels} levels"
    );

    let t = read.open_table("t").unwrap();
    let pass = || {
        let before = hits();
        for k in 0..KEYS {
            assert_eq!(t.get(&u64_key(k)).unwrap(), Some(vec![7; 20]));
        }
        hits() - before
    };
    let first = pass();
    // The table keeps the root and, from its second lookup, each child of the root it needed:
    // its lookups take only the levels below those from the shared index.
    assert_eq!(pass(), (levels - 2) * KEYS);
    let kept = first - (levels - 2) * KEYS;
    assert!(
        kept > 2 && kept < KEYS / 10,
        "{kept} top nodes taken from the shared index"
    );
}

/// A range reaches committed nodes through the index as lookups do: the first scan indexes
/// every node it passes, and later scans of the same snapshot, both ways, read nothing from
/// the page cache and find the same entries.
#[test]
fn ranges_search_indexed_nodes_without_reading_them() {
    const KEYS: u64 = 3_000;
    let (db, cf) = one_table(KEYS, |k| k.to_le_bytes().to_vec());
    let read = cf.begin_read().unwrap();
    let t = read.open_table("t").unwrap();
    let want: Entries = (0..KEYS)
        .map(|k| (u64_key(k).to_vec(), k.to_le_bytes().to_vec()))
        .collect();
    let all: Entries = t.iter().map(Result::unwrap).collect();
    assert_eq!(all, want);
    let first = db.stats().unwrap();
    assert!(first.index.built > KEYS / 100, "{:?}", first.index);

    let back: Entries = t.iter().rev().map(Result::unwrap).collect();
    assert!(back.into_iter().eq(want.iter().rev().cloned()));
    let from = u64_key(1_234);
    let part: Entries = t.range(&from[..]..).take(10).map(Result::unwrap).collect();
    assert_eq!(part, want[1_234..1_244]);
    let then = db.stats().unwrap();
    assert_eq!(then.index.built, first.index.built, "nothing indexed again");
    assert!(then.index.hits > first.index.hits + first.index.built);
    assert_eq!(
        (then.cache.hits, then.cache.misses),
        (first.cache.hits, first.cache.misses),
        "no page read"
    );
}
