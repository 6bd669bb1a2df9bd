//! A write transaction's descent reads the nodes it is about to copy and replace without
//! adding them to the read cache (their old pages are freed by its commit), while reads by
//! read transactions are cached as before.

use cf_store::{u64_key, CfOptions, Db};

#[test]
fn a_rewrite_reads_its_leaf_from_the_file_and_caches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::builder().open(dir.path().join("db")).unwrap();
    let cf = db.create_cf("a", CfOptions::default()).unwrap();
    let w = cf.begin_write().unwrap();
    {
        let mut t = w.open_table("t").unwrap();
        for k in 0..40u64 {
            t.insert(&u64_key(k), &[k as u8; 1000]).unwrap();
        }
    }
    w.commit().unwrap();
    let reads = || db.stats().unwrap().io.read_calls;

    // Written pages do not enter the read cache, so a rewrite of key 7 reads its leaf from
    // the file; aborted, it leaves the leaf committed as it was, and uncached: the next
    // rewrite reads it again.
    let rewrite = || {
        let w = cf.begin_write().unwrap();
        w.open_table("t")
            .unwrap()
            .insert(&u64_key(7), &[0xee; 1000])
            .unwrap();
        w.abort();
    };
    // The first write transaction also reads the column family's table directory, which
    // stays cached; the rewrites after it read only the table's nodes.
    rewrite();
    let r0 = reads();
    rewrite();
    let r1 = reads();
    assert!(r1 > r0, "the leaf came from the file");
    rewrite();
    let r2 = reads();
    assert_eq!(
        r2 - r1,
        r1 - r0,
        "and came from the file again: it was not cached"
    );

    // A read transaction's reads are cached: the second get reads nothing.
    let get = || {
        let r = cf.begin_read().unwrap();
        let value = r.open_table("t").unwrap().get(&u64_key(7)).unwrap();
        assert_eq!(value.as_deref(), Some(&[7u8; 1000][..]));
    };
    get();
    let r3 = reads();
    assert!(r3 > r2, "the first get read the file");
    get();
    assert_eq!(reads(), r3, "the second get found the pages cached");
    // Now cached, the leaf is a hit for a rewrite too.
    rewrite();
    assert_eq!(reads(), r3, "a rewrite takes a cached leaf");
}
