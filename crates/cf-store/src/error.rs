//! `Error`: the store's one error type, wrapping the page-cache and flush errors below it.

use std::path::PathBuf;

/// Everything that can go wrong in cf-store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O or flush-planning failure (with the call and offset).
    #[error(transparent)]
    Flush(#[from] flush::FlushError),
    /// A page-cache failure.
    #[error(transparent)]
    PageCache(#[from] pagecache::PageCacheError),
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
    /// An `fdatasync` failed. The kernel may have dropped the dirty pages, so the database
    /// refuses every write until it is reopened (the sync is never retried).
    #[error("an fsync failed earlier; the database refuses writes until it is reopened")]
    SyncFailed,
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
