//! `ReadPath::Mmap`: the same churn as through the read cache leaves the same file and the
//! same contents, snapshots read while later commits grow the file keep their contents, a
//! reopened file reads back through the mapping, and a backend without a file is a typed
//! error.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use cf_store::{u64_key, CfOptions, Db, Durability, Error, ReadPath};
use flush::{Backend, FileBackend, MemBackend};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Random inserts and removes in commits of both durabilities, with a snapshot taken every
/// 50 commits and checked against the model of its time at the end (after the file grew
/// under it). Returns the file's bytes and the final contents.
fn churn(path: &Path, read_path: ReadPath) -> (Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>) {
    let db = Db::builder()
        .read_path(read_path)
        .initial_extent_pages(4)
        .open(path)
        .unwrap();
    let cf = db.create_cf("cf", CfOptions::default()).unwrap();
    let mut model = BTreeMap::new();
    let mut snapshots = Vec::new();
    let mut rng = SmallRng::seed_from_u64(3);
    for round in 0..400u64 {
        let mut txn = cf.begin_write().unwrap();
        txn.set_durability(if rng.gen_bool(0.1) {
            Durability::Immediate
        } else {
            Durability::None
        });
        {
            let mut t = txn.open_table("t").unwrap();
            for _ in 0..rng.gen_range(1..60) {
                let k = u64_key(rng.gen_range(0..3_000)).to_vec();
                if rng.gen_bool(0.2) {
                    t.remove(&k).unwrap();
                    model.remove(&k);
                } else {
                    let v = vec![round as u8; rng.gen_range(0..1_500)];
                    t.insert(&k, &v).unwrap();
                    model.insert(k, v);
                }
            }
        }
        txn.commit().unwrap();
        if round % 50 == 0 {
            snapshots.push((cf.begin_read().unwrap(), model.clone()));
        }
    }
    for (snapshot, then) in &snapshots {
        let t = snapshot.open_table("t").unwrap();
        let read: BTreeMap<Vec<u8>, Vec<u8>> = t.iter().map(|e| e.unwrap()).collect();
        assert!(&read == then, "a snapshot changed under later commits");
    }
    drop(snapshots);
    let t = cf.begin_read().unwrap();
    let now: BTreeMap<Vec<u8>, Vec<u8>> = t.open_table("t").unwrap().iter().map(|e| e.unwrap()).collect();
    assert!(now == model);
    drop(t);
    db.close().unwrap();
    (std::fs::read(path).unwrap(), model)
}

#[test]
fn mapped_reads_see_what_cached_reads_see() {
    let dir = tempfile::tempdir().unwrap();
    let (cached_file, cached) = churn(&dir.path().join("cached"), ReadPath::Cache);
    let mapped_path = dir.path().join("mapped");
    let (mapped_file, mapped) = churn(&mapped_path, ReadPath::Mmap);
    assert!(mapped == cached);
    assert!(mapped_file == cached_file, "the read path changed a written byte");

    // Reopened through the mapping: recovery and reads.
    let db = Db::builder()
        .read_path(ReadPath::Mmap)
        .open(&mapped_path)
        .unwrap();
    let cf = db.cf("cf").unwrap();
    let t = cf.begin_read().unwrap();
    let read: BTreeMap<Vec<u8>, Vec<u8>> = t.open_table("t").unwrap().iter().map(|e| e.unwrap()).collect();
    assert!(read == cached);
}

/// The store maps only a file it opened itself: a backend the caller also holds (a file
/// or not) is refused, and the same backend opens on the read cache.
#[test]
fn only_a_file_the_store_opened_is_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let file: Arc<dyn Backend> = Arc::new(FileBackend::open(dir.path().join("held")).unwrap());
    for backend in [file, Arc::new(MemBackend::new()) as Arc<dyn Backend>] {
        let err = Db::builder()
            .read_path(ReadPath::Mmap)
            .open_backend(backend.clone(), "held")
            .unwrap_err();
        assert!(matches!(err, Error::MmapNeedsOwnedFile { .. }), "{err:?}");
        assert!(err.to_string().contains("DbBuilder::open"), "{err}");
        Db::builder().open_backend(backend, "held").unwrap();
    }
}
