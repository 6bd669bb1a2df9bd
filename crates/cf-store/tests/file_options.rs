//! `DbBuilder::file_options` reaches the file: a cap on bytes per write call splits every
//! run, and the data reads back the same.

use cf_store::{u64_key, CfOptions, Db, Durability, FileOptions};

/// Commits 10 transactions of 100 appended 1 KiB values; returns the write calls made and
/// the bytes written, after checking every value reads back.
fn load(file: FileOptions) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::builder()
        .file_options(file)
        .open(dir.path().join("f.cf"))
        .unwrap();
    let cf = db.create_cf("c", CfOptions::default()).unwrap();
    let before = db.stats().unwrap().io;
    for t in 0..10u64 {
        let mut txn = cf.begin_write().unwrap();
        txn.set_durability(Durability::None);
        {
            let mut table = txn.open_table("t").unwrap();
            for i in 0..100 {
                let k = t * 100 + i;
                table.insert(&u64_key(k), &[k as u8; 1024]).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let io = db.stats().unwrap().io;
    drop(cf);
    db.close().unwrap();
    let db = Db::open(dir.path().join("f.cf")).unwrap();
    let cf = db.cf("c").unwrap();
    let read = cf.begin_read().unwrap();
    let table = read.open_table("t").unwrap();
    for k in 0..1000u64 {
        assert_eq!(
            table.get(&u64_key(k)).unwrap(),
            Some(vec![k as u8; 1024]),
            "key {k}"
        );
    }
    let calls = io.write_calls + io.vectored_calls - before.write_calls - before.vectored_calls;
    (calls, io.bytes_written - before.bytes_written)
}

#[test]
fn a_write_call_cap_splits_runs_and_loses_nothing() {
    let (calls, bytes) = load(FileOptions::default());
    assert!(
        calls * 4096 < bytes,
        "uncapped calls carry several pages: {calls} calls, {bytes} bytes"
    );
    let (capped_calls, capped_bytes) = load(FileOptions::default().with_max_bytes_per_call(4096));
    assert_eq!(capped_bytes, bytes, "the same bytes either way");
    assert!(
        capped_calls * 4096 >= capped_bytes,
        "{capped_calls} calls for {capped_bytes} bytes"
    );
    assert!(capped_calls > calls);
}
