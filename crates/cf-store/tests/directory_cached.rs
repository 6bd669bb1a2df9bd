//! The pages of a column family's table directory enter the read cache when a commit
//! writes them, while the read cache stays read-through for every other page: the next
//! write transaction finds its tables' roots, and rewrites the directory, without reading
//! the file.

use cf_store::{u64_key, CfOptions, Db};

#[test]
fn opening_tables_after_a_commit_reads_no_directory_page_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::builder().open(dir.path().join("db")).unwrap();
    // Two column families, so that pages one frees (old directory pages among them) are
    // reused by the other's write buffer too.
    let cfs = [
        db.create_cf("a", CfOptions::default()).unwrap(),
        db.create_cf("b", CfOptions::default()).unwrap(),
    ];
    let reads = || db.stats().unwrap().io.read_calls;
    // Enough tables, with long names, that the directory takes several pages (some 21 KiB
    // of names).
    let name = |i: u64| format!("table-{i:04}-{}", "x".repeat(200));
    for cf in &cfs {
        let w = cf.begin_write().unwrap();
        for i in 0..100 {
            w.open_table(&name(i))
                .unwrap()
                .insert(&u64_key(i), &[i as u8; 100])
                .unwrap();
        }
        w.commit().unwrap();
    }

    for round in 0..30u64 {
        for cf in &cfs {
            let w = cf.begin_write().unwrap();
            let before = reads();
            // Tables spread over the directory: each lookup starts at its root.
            for i in [round, 99 - round, (round * 37) % 100] {
                let t = w.open_table(&name(i)).unwrap();
                drop(t);
            }
            assert_eq!(
                reads(),
                before,
                "round {round}: the directory came from the cache"
            );
            // A change to one table rewrites the directory's path to its entry.
            w.open_table(&name((round * 7) % 100))
                .unwrap()
                .insert(&u64_key(1000 + round), &[round as u8; 300])
                .unwrap();
            w.commit().unwrap();
        }
    }

    // Every table reads back whole, in this process (through the read cache, whose pages
    // include freed directory pages since reused) and after a reopen (from the file).
    let check = |db: &Db| {
        for cf in ["a", "b"] {
            let r = db.cf(cf).unwrap().begin_read().unwrap();
            assert_eq!(r.list_tables().unwrap().len(), 100);
            for i in 0..100u64 {
                let t = r.open_table(&name(i)).unwrap();
                let mut want = vec![(u64_key(i).to_vec(), vec![i as u8; 100])];
                want.extend(
                    (0..30u64)
                        .filter(|round| (round * 7) % 100 == i)
                        .map(|round| (u64_key(1000 + round).to_vec(), vec![round as u8; 300])),
                );
                let got: Vec<(Vec<u8>, Vec<u8>)> = t.iter().map(|e| e.unwrap()).collect();
                assert_eq!(got, want, "table {i} of {cf}");
            }
        }
    };
    check(&db);
    drop(cfs);
    drop(db);
    check(&Db::builder().open(dir.path().join("db")).unwrap());
}

#[test]
fn a_table_written_by_the_same_commit_is_still_read_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::builder().open(dir.path().join("db")).unwrap();
    let cf = db.create_cf("a", CfOptions::default()).unwrap();
    let reads = || db.stats().unwrap().io.read_calls;
    let w = cf.begin_write().unwrap();
    w.open_table("t").unwrap().insert(&u64_key(1), &[1; 100]).unwrap();
    w.commit().unwrap();

    // The table's own leaf is not the directory's: the read cache stays read-through for it.
    let w = cf.begin_write().unwrap();
    let t = w.open_table("t").unwrap();
    let before = reads();
    assert_eq!(t.get(&u64_key(1)).unwrap().as_deref(), Some(&[1u8; 100][..]));
    assert_eq!(reads(), before + 1, "the table's leaf came from the file");
}
