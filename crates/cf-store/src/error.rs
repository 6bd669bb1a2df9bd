//! `Error`: the store's one error type, wrapping the page-cache and flush errors below it.

use std::path::PathBuf;

/// Everything that can go wrong in cf-store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O or flush-planning failure (with the call and offset).
    #[error(transparent)]
    Flush(#[from] flush::FlushError),
    /// A page-cache failure (its I/O failures arrive as [`Error::Flush`]).
    #[error(transparent)]
    PageCache(pagecache::PageCacheError),
    /// Stored bytes that fail verification: a checksum mismatch, an impossible field.
    #[error("corrupt page {page}: {what}")]
    Corruption {
        /// The page (page number, not byte offset) that failed.
        page: u64,
        /// What was wrong.
        what: String,
    },
    /// A key longer than the limit for this page size.
    #[error("key of {len} bytes is over the {max}-byte limit")]
    KeyTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value longer than the limit.
    #[error("value of {len} bytes is over the {max}-byte limit")]
    ValueTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The file is not a cf-store file (bad magic), or too short to hold a superblock.
    #[error("{} is not a cf-store file: {what}", path.display())]
    NotADatabase {
        /// The path opened.
        path: PathBuf,
        /// What gave it away.
        what: String,
    },
    /// A cf-store file of a format version this build cannot read.
    #[error("{} has format version {found}; this build reads version {supported}", path.display())]
    UnsupportedVersion {
        /// The path opened.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A column-family name that is empty or too long (over 255 bytes, or over the key limit
    /// of the page size).
    #[error("column family name {name:?} ({len} bytes) must be 1 to {max} bytes")]
    InvalidCfName {
        /// The name (cut to 64 characters).
        name: String,
        /// Its length in bytes.
        len: usize,
        /// The limit at this page size.
        max: usize,
    },
    /// `create_cf` of a name that exists.
    #[error("column family {name:?} already exists")]
    CfExists {
        /// The name.
        name: String,
    },
    /// A column family that does not exist.
    #[error("no column family {name:?}")]
    CfNotFound {
        /// The name.
        name: String,
    },
    /// A handle to a column family that has been dropped.
    #[error("column family {name:?} was dropped")]
    CfDropped {
        /// The name.
        name: String,
    },
    /// `try_begin_write` while another write transaction on the column family is open.
    #[error("column family {name:?} already has a write transaction open")]
    WouldBlock {
        /// The name.
        name: String,
    },
    /// A table that does not exist in the snapshot read.
    #[error("no table {name:?}")]
    TableNotFound {
        /// The name.
        name: String,
    },
    /// `open_table` of a table already open in the same transaction.
    #[error("table {name:?} is already open in this transaction")]
    TableAlreadyOpen {
        /// The name.
        name: String,
    },
    /// A table name that is empty or over the key limit.
    #[error("table name of {len} bytes must be 1 to {max} bytes")]
    InvalidTableName {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A space needs more extents than its commit slot can name.
    #[error("space {owner} holds {extents} extents, more than a commit slot can name")]
    SpaceFull {
        /// 0 for the catalog, else the column family id.
        owner: u64,
        /// How many extents it holds.
        extents: usize,
    },
    /// A space asked for an extent reaching past byte 2^62 of the file, the most the store
    /// addresses (a file offset is at most `i64::MAX`): an initial extent too large
    /// ([`crate::CfOptions::with_initial_extent_pages`], [`crate::DbBuilder::
    /// initial_extent_pages`]), or a space that has grown that far. Nothing was taken.
    #[error(
        "an extent of {pages} pages past page {end} would reach past the last page the file can address"
    )]
    ExtentTooLarge {
        /// The pages asked for.
        pages: u64,
        /// The first page past every extent taken so far.
        end: u64,
    },
    /// [`crate::ReadPath::Mmap`] was asked of [`crate::DbBuilder::open_backend`]: the store
    /// maps only a file it opened itself ([`crate::DbBuilder::open`]), since a write or
    /// truncation through another handle could change or remove mapped pages.
    #[error("{}: the mmap read path needs a file the store opens itself (DbBuilder::open), not a backend the caller also holds", path.display())]
    MmapNeedsOwnedFile {
        /// The label the backend was opened with.
        path: PathBuf,
    },
    /// An `fdatasync` failed. The kernel may have dropped the dirty pages, so the database
    /// refuses every write until it is reopened (the sync is never retried).
    #[error("an fsync failed earlier; the database refuses writes until it is reopened")]
    SyncFailed,
    /// The directory of a file [`crate::DbBuilder::open`] had just created could not be
    /// synced, so the file's name might not survive a crash. The file itself is a complete
    /// database, and opening it again does not sync the directory (only a creation does).
    #[error("syncing directory {} after creating a database in it: {source}", dir.display())]
    DirectorySync {
        /// The directory.
        dir: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

impl From<pagecache::PageCacheError> for Error {
    /// I/O failures surface as [`Error::Flush`] whichever layer met them, so a caller checks
    /// one place for, say, a full disk.
    fn from(e: pagecache::PageCacheError) -> Self {
        match e {
            pagecache::PageCacheError::Flush(f) => Error::Flush(f),
            other => Error::PageCache(other),
        }
    }
}

impl Error {
    /// True when the file system is out of space (or over a quota or size limit): the
    /// commit failed, the column family keeps its previous state, and a later commit may
    /// succeed once space returns.
    pub fn is_out_of_space(&self) -> bool {
        matches!(self, Error::Flush(e) if e.is_out_of_space())
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
