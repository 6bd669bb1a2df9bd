//! Helpers the crash and extent tests share: commits of numbered keys, a column family's
//! table as a map, and a database reopened from a file image held in memory.

use std::collections::BTreeMap;
use std::sync::Arc;

use cf_store::{u64_key, Db, Durability, Error};
use flush::testing::CrashBackend;
use flush::MemBackend;

/// One table's contents.
pub type State = BTreeMap<Vec<u8>, Vec<u8>>;

/// Every entry of table `t` of column family `cf` (empty when the table does not exist).
pub fn read_all(db: &Db, cf: &str) -> State {
    let read = db.cf(cf).unwrap().begin_read().unwrap();
    match read.open_table("t") {
        Ok(t) => t.iter().map(|e| e.unwrap()).collect(),
        Err(Error::TableNotFound { .. }) => State::new(),
        Err(e) => panic!("{e}"),
    }
}

/// Closes `db` over `backend` and opens what the backend holds, asserting that recovery had
/// nothing to note.
pub fn close_and_reopen(db: Db, backend: &CrashBackend) -> Db {
    db.close().unwrap();
    drop(db);
    let reopened = reopen(backend.contents());
    assert!(
        reopened.recovery_notes().is_empty(),
        "{:?}",
        reopened.recovery_notes()
    );
    reopened
}

/// The database in `image`, opened from memory.
pub fn reopen(image: Vec<u8>) -> Db {
    Db::builder()
        .open_backend(Arc::new(MemBackend::from_bytes(image)), "image")
        .unwrap()
}

/// The value of key `k` at `version`, `len` bytes.
pub fn value(k: u64, version: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (k as usize * 7 + version as usize * 13 + i) as u8)
        .collect()
}

/// Commits `keys` (values of `version`, 1 KiB) into table `t` of `cf` with `durability`,
/// and into `state`.
pub fn commit(
    db: &Db,
    cf: &str,
    state: &mut State,
    keys: std::ops::Range<u64>,
    version: u64,
    durability: Durability,
) {
    let handle = db.cf(cf).unwrap();
    let mut txn = handle.begin_write().unwrap();
    txn.set_durability(durability);
    {
        let mut t = txn.open_table("t").unwrap();
        for k in keys {
            let v = value(k, version, 1024);
            t.insert(&u64_key(k), &v).unwrap();
            state.insert(u64_key(k).to_vec(), v);
        }
    }
    txn.commit().unwrap();
}
