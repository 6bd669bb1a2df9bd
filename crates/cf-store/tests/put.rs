//! `Table::put` sets a key as `Table::insert` does, without reading the value it replaces:
//! it says whether there was one, and a large old value's overflow pages are not read.

use cf_store::{u64_key, CfOptions, Db};

#[test]
fn put_sets_and_says_whether_the_key_had_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let db = Db::builder().open(&path).unwrap();
        let cf = db.create_cf("a", CfOptions::default()).unwrap();
        let w = cf.begin_write().unwrap();
        {
            let mut t = w.open_table("t").unwrap();
            assert!(!t.put(b"k", b"one").unwrap(), "a new key had no value");
            assert!(
                t.put(b"k", b"two").unwrap(),
                "the key had the value put just before"
            );
            assert_eq!(t.get(b"k").unwrap().as_deref(), Some(&b"two"[..]));
            assert_eq!(t.len(), 1);
        }
        w.commit().unwrap();
        let w = cf.begin_write().unwrap();
        {
            let mut t = w.open_table("t").unwrap();
            assert!(t.put(b"k", &[7; 9000]).unwrap(), "the committed value counts");
            assert_eq!(t.remove(b"k").unwrap(), Some(vec![7; 9000]));
            assert!(!t.put(b"k", b"three").unwrap(), "a removed key has no value");
        }
        w.commit().unwrap();
    }
    let db = Db::builder().open(&path).unwrap();
    let cf = db.cf("a").unwrap();
    let r = cf.begin_read().unwrap();
    assert_eq!(
        r.open_table("t").unwrap().get(b"k").unwrap().as_deref(),
        Some(&b"three"[..]),
        "the last put survived a reopen"
    );
}

/// A 200 KiB value lies on overflow pages that its commit wrote (written pages are not
/// cached), so reading it back is read calls against the file. `insert` returns it and
/// makes them; `put` replaces it without them.
#[test]
fn put_does_not_read_the_overflow_pages_it_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::builder().open(dir.path().join("db")).unwrap();
    let cf = db.create_cf("a", CfOptions::default()).unwrap();
    let big = vec![0x5a; 200 << 10];
    let reads = || db.stats().unwrap().io.read_calls;
    let bytes_read = || db.stats().unwrap().io.bytes_read;
    let commit_big = || {
        let w = cf.begin_write().unwrap();
        w.open_table("t").unwrap().insert(&u64_key(1), &big).unwrap();
        w.commit().unwrap();
    };
    // Each side starts from a freshly written value, whose pages no read has cached; the
    // first commit also warms what both sides read alike (the table directory).
    commit_big();
    commit_big();
    let (r0, b0) = (reads(), bytes_read());
    let w = cf.begin_write().unwrap();
    let old = w.open_table("t").unwrap().insert(&u64_key(1), b"small").unwrap();
    w.abort();
    let (insert_reads, insert_bytes) = (reads() - r0, bytes_read() - b0);
    assert_eq!(old.as_deref(), Some(&big[..]), "insert returned the old value");

    commit_big();
    let (r0, b0) = (reads(), bytes_read());
    let w = cf.begin_write().unwrap();
    assert!(w.open_table("t").unwrap().put(&u64_key(1), b"small").unwrap());
    w.commit().unwrap();
    let (put_reads, put_bytes) = (reads() - r0, bytes_read() - b0);

    assert!(
        insert_bytes >= put_bytes + big.len() as u64,
        "insert read the old value's pages ({insert_reads} calls, {insert_bytes} bytes), \
         put did not ({put_reads} calls, {put_bytes} bytes)"
    );
    let r = cf.begin_read().unwrap();
    assert_eq!(
        r.open_table("t").unwrap().get(&u64_key(1)).unwrap().as_deref(),
        Some(&b"small"[..])
    );
}
