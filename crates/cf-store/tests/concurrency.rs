//! Concurrency: writers on different column families of one file commit in parallel while
//! snapshot readers only ever see whole commits; one writer per column family at a time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use cf_store::{u64_key, CfOptions, ColumnFamily, Db, Durability, Error, ReadTxn};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const WRITERS: usize = 8;
const READERS: usize = 4;
const COMMITS: u64 = 60;
/// Each reader takes at least this many snapshots, and keeps taking them while a writer is
/// still running (up to `MAX_SNAPSHOTS_PER_READER`), so reads overlap every writer's commits.
const SNAPSHOTS_PER_READER: usize = 300;
const MAX_SNAPSHOTS_PER_READER: usize = 20_000;
/// Keys each commit adds: the first half go to table "a", the rest to table "b".
const KEYS_PER_COMMIT: u64 = 20;
const COUNTER_KEY: &[u8] = b"\xffcounter";

type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

fn cf_name(w: usize) -> String {
    format!("writer-{w}")
}

/// The value of key `k * 100 + i`: encodes (writer, k, i) and has a length that varies with
/// them, so pages split and merge as commits come and go.
fn value(w: usize, k: u64, i: u64) -> Vec<u8> {
    let mut v = format!("w{w}:k{k}:i{i}:").into_bytes();
    let pad = ((k * 37 + i * 11 + w as u64 * 5) % 300) as usize;
    v.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, pad));
    v
}

/// Exactly what tables "a" and "b" of writer `w` hold once commit `c` is the newest; `None`
/// for a table that does not exist yet (before commit 1).
fn expected(w: usize, c: u64) -> (Option<Entries>, Option<Entries>) {
    if c == 0 {
        return (None, None);
    }
    let mut a = Entries::new();
    let mut b = Entries::new();
    a.insert(COUNTER_KEY.to_vec(), c.to_be_bytes().to_vec());
    for k in c.saturating_sub(1).max(1)..=c {
        for i in 0..KEYS_PER_COMMIT {
            let key = u64_key(k * 100 + i).to_vec();
            if i < KEYS_PER_COMMIT / 2 {
                a.insert(key, value(w, k, i));
            } else {
                b.insert(key, value(w, k, i));
            }
        }
    }
    // Table "b" also names the commit, so the two tables must agree on it.
    b.insert(COUNTER_KEY.to_vec(), c.to_be_bytes().to_vec());
    (Some(a), Some(b))
}

/// Commit `k` of writer `w`: the counter, 20 new keys over two tables, and the keys of
/// commit `k - 2` removed.
fn write_commit(cf: &ColumnFamily, w: usize, k: u64, durability: Durability) {
    let mut txn = cf.begin_write().unwrap();
    txn.set_durability(durability);
    {
        let mut a = txn.open_table("a").unwrap();
        let mut b = txn.open_table("b").unwrap();
        for i in 0..KEYS_PER_COMMIT {
            let key = u64_key(k * 100 + i);
            let t = if i < KEYS_PER_COMMIT / 2 { &mut a } else { &mut b };
            assert_eq!(t.insert(&key, &value(w, k, i)).unwrap(), None);
        }
        if k > 2 {
            for i in 0..KEYS_PER_COMMIT {
                let key = u64_key((k - 2) * 100 + i);
                let t = if i < KEYS_PER_COMMIT / 2 { &mut a } else { &mut b };
                assert_eq!(t.remove(&key).unwrap(), Some(value(w, k - 2, i)));
            }
        }
        a.insert(COUNTER_KEY, &k.to_be_bytes()).unwrap();
        b.insert(COUNTER_KEY, &k.to_be_bytes()).unwrap();
        // The transaction sees its own writes.
        assert_eq!(a.get(COUNTER_KEY).unwrap(), Some(k.to_be_bytes().to_vec()));
    }
    txn.commit().unwrap();
}

fn read_table(txn: &ReadTxn, name: &str) -> Option<Entries> {
    match txn.open_table(name) {
        Ok(t) => {
            let entries: Entries = t.iter().map(|e| e.unwrap()).collect();
            assert_eq!(
                t.len(),
                entries.len() as u64,
                "len of table {name} disagrees with iter"
            );
            // Point reads and a reverse scan agree with the forward scan.
            let mut rev: Vec<_> = t.iter().rev().map(|e| e.unwrap()).collect();
            rev.reverse();
            assert!(
                rev.into_iter().eq(entries.clone()),
                "reverse scan of {name} disagrees"
            );
            for (k, v) in &entries {
                assert_eq!(t.get(k).unwrap().as_ref(), Some(v));
            }
            Some(entries)
        }
        Err(Error::TableNotFound { .. }) => None,
        Err(e) => panic!("open_table({name}): {e}"),
    }
}

/// Checks a snapshot of writer `w`'s column family is exactly one commit's state and returns
/// that commit's counter.
fn check_snapshot(txn: &ReadTxn, w: usize) -> u64 {
    let a = read_table(txn, "a");
    let b = read_table(txn, "b");
    let counter = a
        .as_ref()
        .map(|a| u64::from_be_bytes(a[COUNTER_KEY].as_slice().try_into().unwrap()))
        .unwrap_or(0);
    let (ea, eb) = expected(w, counter);
    assert!(
        a == ea,
        "writer {w}: table a is not the state of commit {counter}"
    );
    assert!(
        b == eb,
        "writer {w}: table b is not the state of commit {counter}"
    );
    let tables = txn.list_tables().unwrap();
    if counter == 0 {
        assert!(tables.is_empty(), "{tables:?}");
    } else {
        assert_eq!(tables, ["a", "b"]);
    }
    counter
}

#[test]
fn writers_on_separate_cfs_and_readers_see_only_whole_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("concurrent.cf");
    let db = Db::builder()
        .page_size(4096)
        .initial_extent_pages(8)
        .open(&path)
        .unwrap();
    let cfs: Vec<ColumnFamily> = (0..WRITERS)
        .map(|w| db.create_cf(&cf_name(w), CfOptions::default()).unwrap())
        .collect();

    let writers_done = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = cfs
        .iter()
        .cloned()
        .enumerate()
        .map(|(w, cf)| {
            let writers_done = writers_done.clone();
            thread::spawn(move || {
                for k in 1..=COMMITS {
                    let durability = if (k + w as u64).is_multiple_of(3) {
                        Durability::Immediate
                    } else {
                        Durability::None
                    };
                    write_commit(&cf, w, k, durability);
                    // The writer's own next snapshot is its commit.
                    assert_eq!(check_snapshot(&cf.begin_read().unwrap(), w), k);
                }
                writers_done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();

    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let cfs = cfs.clone();
            let writers_done = writers_done.clone();
            thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(r as u64 + 1);
                let mut last_seen = [0u64; WRITERS];
                // Snapshots held across later commits, re-checked when released: a held
                // snapshot must keep showing its commit while writers free and reuse pages.
                let mut held: Vec<(usize, u64, ReadTxn)> = Vec::new();
                for n in 0..MAX_SNAPSHOTS_PER_READER {
                    if n >= SNAPSHOTS_PER_READER && writers_done.load(Ordering::SeqCst) == WRITERS {
                        break;
                    }
                    let w = rng.gen_range(0..WRITERS);
                    let txn = cfs[w].begin_read().unwrap();
                    let c = check_snapshot(&txn, w);
                    assert!(
                        c >= last_seen[w],
                        "writer {w}: counter went back from {} to {c}",
                        last_seen[w]
                    );
                    last_seen[w] = c;
                    if rng.gen_bool(0.2) {
                        held.push((w, c, txn));
                    }
                    if held.len() > 4 {
                        let (hw, hc, old) = held.remove(rng.gen_range(0..held.len()));
                        assert_eq!(check_snapshot(&old, hw), hc, "a held snapshot changed");
                    }
                }
                for (hw, hc, old) in held {
                    assert_eq!(check_snapshot(&old, hw), hc, "a held snapshot changed");
                }
            })
        })
        .collect();

    for t in writers.into_iter().chain(readers) {
        t.join().unwrap();
    }

    for (w, cf) in cfs.iter().enumerate() {
        assert_eq!(check_snapshot(&cf.begin_read().unwrap(), w), COMMITS);
        assert_eq!(cf.stats().commits, COMMITS, "writer {w}");
    }
    db.close().unwrap();
    drop(cfs);
    drop(db);

    let db = Db::open(&path).unwrap();
    assert!(db.recovery_notes().is_empty(), "{:?}", db.recovery_notes());
    let mut names: Vec<String> = (0..WRITERS).map(cf_name).collect();
    names.sort();
    assert_eq!(db.list_cfs(), names);
    for w in 0..WRITERS {
        let cf = db.cf(&cf_name(w)).unwrap();
        assert_eq!(
            check_snapshot(&cf.begin_read().unwrap(), w),
            COMMITS,
            "writer {w} after reopen"
        );
    }
}

#[test]
fn try_begin_write_would_block_only_on_the_same_cf() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("try.cf")).unwrap();
    let a = db.create_cf("a", CfOptions::default()).unwrap();
    let b = db.create_cf("b", CfOptions::default()).unwrap();

    let txn = a.begin_write().unwrap();
    match a.try_begin_write() {
        Err(Error::WouldBlock { name }) => assert_eq!(name, "a"),
        other => panic!("expected WouldBlock, got {other:?}"),
    }
    // Another handle to the same column family is blocked too.
    assert!(matches!(
        db.cf("a").unwrap().try_begin_write(),
        Err(Error::WouldBlock { .. })
    ));

    // A different column family commits while `a`'s transaction is open, from another thread.
    let b2 = b.clone();
    thread::spawn(move || {
        let txn = b2.try_begin_write().unwrap();
        txn.open_table("t").unwrap().insert(b"k", b"from b").unwrap();
        txn.commit().unwrap();
    })
    .join()
    .unwrap();
    let read = b.begin_read().unwrap();
    assert_eq!(
        read.open_table("t").unwrap().get(b"k").unwrap().as_deref(),
        Some(&b"from b"[..])
    );

    // Still blocked; an abort (or a drop) releases it.
    assert!(matches!(a.try_begin_write(), Err(Error::WouldBlock { .. })));
    txn.abort();
    let again = a.try_begin_write().unwrap();
    assert!(matches!(a.try_begin_write(), Err(Error::WouldBlock { .. })));
    drop(again);
    let third = a.try_begin_write().unwrap();
    third.commit().unwrap();
    a.try_begin_write().unwrap().commit().unwrap();
}

#[test]
fn begin_write_waits_for_the_open_writer_of_its_cf() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("wait.cf")).unwrap();
    let cf = db.create_cf("a", CfOptions::default()).unwrap();

    let mut first = cf.begin_write().unwrap();
    first.set_durability(Durability::None);
    first.open_table("t").unwrap().insert(b"who", b"first").unwrap();

    let first_ended = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<&'static str>();
    let second = {
        let (cf, first_ended) = (cf.clone(), first_ended.clone());
        thread::spawn(move || {
            tx.send("calling begin_write").unwrap();
            let txn = cf.begin_write().unwrap();
            // It got the lock only after the first transaction committed, and it sees that
            // commit as its base.
            let ended = first_ended.load(Ordering::SeqCst);
            tx.send("acquired").unwrap();
            assert!(
                ended,
                "begin_write returned while the first writer was still open"
            );
            {
                let mut t = txn.open_table("t").unwrap();
                assert_eq!(t.get(b"who").unwrap().as_deref(), Some(&b"first"[..]));
                t.insert(b"who", b"second").unwrap();
            }
            txn.commit().unwrap();
        })
    };

    assert_eq!(rx.recv().unwrap(), "calling begin_write");
    // Whatever the scheduling, the second writer cannot get in while the first is open; a
    // short wait gives it every chance to (wrongly) do so. This can only fail on a real bug.
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(50)),
        Err(mpsc::RecvTimeoutError::Timeout)
    );
    // Other column families and readers are not blocked by either writer.
    let other = db.create_cf("b", CfOptions::default()).unwrap();
    other.try_begin_write().unwrap().commit().unwrap();
    assert!(matches!(
        cf.begin_read().unwrap().open_table("t"),
        Err(Error::TableNotFound { .. })
    ));

    first_ended.store(true, Ordering::SeqCst);
    first.commit().unwrap();
    assert_eq!(rx.recv().unwrap(), "acquired");
    second.join().unwrap();

    let read = cf.begin_read().unwrap();
    assert_eq!(
        read.open_table("t").unwrap().get(b"who").unwrap().as_deref(),
        Some(&b"second"[..])
    );
}
