//! cf-store: an embedded, single-file, copy-on-write B+tree store with column families.
//!
//! Each column family is an independent keyspace with its own writer, its own pages and
//! commit slots, so threads writing different column families commit in parallel; any
//! number of snapshot readers run beside them without waiting.
//!
//! Limits: a key is at most [`max_key_len`]`(page_size)` bytes (`page_size / 4`: 1,024 at
//! the default 4 KiB pages), a value at most [`MAX_VALUE_LEN`] (1 GiB), a column-family name
//! 1 to [`MAX_CF_NAME_LEN`] (255) bytes. Going over one is a typed error, and the transaction
//! stays usable.
//!
//! ```
//! use cf_store::{CfOptions, Db, Durability};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let db = Db::open(dir.path().join("store.cf")).unwrap();
//! let users = db.create_cf("users", CfOptions::default()).unwrap();
//! let mut txn = users.begin_write().unwrap();
//! txn.set_durability(Durability::Immediate);
//! {
//!     let mut names = txn.open_table("names").unwrap();
//!     names.insert(&cf_store::u64_key(1), b"ada").unwrap();
//! }
//! txn.commit().unwrap();
//! let read = users.begin_read().unwrap();
//! let names = read.open_table("names").unwrap();
//! assert_eq!(names.get(&cf_store::u64_key(1)).unwrap().as_deref(), Some(&b"ada"[..]));
//! ```

mod alloc;
mod btree;
mod cf;
mod checksum;
mod db;
mod epoch;
mod error;
mod format;
mod hold;
mod keys;
mod source;
mod space;
mod sync;
mod txn;

pub use btree::IndexStats;
pub use cf::{CfOptions, CfStats, ColumnFamily};
pub use db::{
    Db, DbBuilder, DbStats, Populate, DEFAULT_HOLD_BYTES, DEFAULT_INDEX_BYTES, DEFAULT_INITIAL_EXTENT_PAGES,
    DEFAULT_KEPT_BRANCHES, DEFAULT_PAGE_SIZE, MAX_CF_NAME_LEN, MAX_LEAF_PAGES,
};
pub use error::{Error, Result};
pub use flush::{FileOptions, FlushConfig};
pub use keys::{i64_key, key_i64, key_u64, u64_key};
pub use pagecache::{CacheStats, ReadPath};
pub use txn::{Durability, Range, ReadTable, ReadTxn, Table, WriteTxn};

/// Longest key, in bytes, at `page_size`: a quarter of a page.
pub fn max_key_len(page_size: u32) -> usize {
    btree::max_key_len(page_size as usize)
}

/// Longest value, in bytes (1 GiB).
pub const MAX_VALUE_LEN: usize = btree::MAX_VALUE_LEN;
