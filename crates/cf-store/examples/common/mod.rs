//! The cached table the read examples (`point_lookups`, `range_scans`) read.

use std::path::Path;

use cf_store::{u64_key, CfOptions, ColumnFamily, Db, Durability};

/// Keys in the table: `u64_key(0..KEYS)`.
pub const KEYS: u64 = 100_000;

/// A database at `path` keeping `index_bytes` of indexed nodes, whose column family "cf"
/// holds table "t": [`KEYS`] keys with 100-byte values, loaded in transactions of 1,000
/// without durability.
pub fn load_table(path: &Path, index_bytes: u64) -> Result<(Db, ColumnFamily), cf_store::Error> {
    let db = Db::builder().index_bytes(index_bytes).open(path)?;
    let cf = db.create_cf("cf", CfOptions::default())?;
    let value = [7u8; 100];
    for first in (0..KEYS).step_by(1000) {
        let mut txn = cf.begin_write()?;
        txn.set_durability(Durability::None);
        {
            let mut table = txn.open_table("t")?;
            for k in first..first + 1000 {
                table.insert(&u64_key(k), &value)?;
            }
        }
        txn.commit()?;
    }
    Ok((db, cf))
}
