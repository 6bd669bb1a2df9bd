//! The redb table the read examples (`redb_lookups`, `redb_ranges`) read: the same as
//! cf-store's read examples load.

use std::path::Path;

use anyhow::Result;
use redb::{Database, Durability, TableDefinition};

/// The table.
pub const TABLE: TableDefinition<'static, &'static [u8], &'static [u8]> = TableDefinition::new("t");
/// Keys in the table: `0..KEYS`, `u64` big-endian.
pub const KEYS: u64 = 100_000;

/// A database at `path` holding [`TABLE`]: [`KEYS`] keys with 100-byte values, loaded in
/// transactions of 1,000 without durability.
pub fn load_table(path: &Path) -> Result<Database> {
    let db = Database::create(path)?;
    let value = [7u8; 100];
    for first in (0..KEYS).step_by(1000) {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::None)?;
        {
            let mut table = txn.open_table(TABLE)?;
            for k in first..first + 1000 {
                table.insert(&k.to_be_bytes()[..], &value[..])?;
            }
        }
        txn.commit()?;
    }
    Ok(db)
}
