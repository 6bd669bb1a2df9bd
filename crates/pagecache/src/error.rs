//! The crate's one error type: bad offsets, lengths and options, reads past the end, mmap
//! failures, and the wrapped `flush` errors of the I/O underneath.

use std::io;

use flush::FlushError;

/// Everything that can go wrong in this crate. Bad input always comes back as one of these,
/// never as a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PageCacheError {
    /// The backend, a dirty-page set or a write plan failed (see [`FlushError`]).
    #[error(transparent)]
    Flush(#[from] FlushError),
    /// An offset that is not a multiple of the page size.
    #[error("offset {offset} is not a multiple of the page size {page_size}")]
    Misaligned {
        /// The offset given.
        offset: u64,
        /// The cache's page size.
        page_size: u32,
    },
    /// Page data whose length is zero or not a multiple of the page size.
    #[error(
        "data of {len} bytes at offset {offset} is not a non-zero multiple of the page size {page_size}"
    )]
    BadPageLength {
        /// Where the data was to go.
        offset: u64,
        /// Its length in bytes.
        len: u64,
        /// The cache's page size.
        page_size: u32,
    },
    /// A page size that is not a power of two in `512..=65536`.
    #[error("page size {page_size} is not a power of two in 512..=65536")]
    InvalidPageSize {
        /// The page size asked for.
        page_size: u32,
    },
    /// A read of a page that does not lie wholly inside the file.
    #[error("read of {len} bytes at offset {offset} runs past the end of the file ({file_len} bytes)")]
    PastEnd {
        /// The page's offset.
        offset: u64,
        /// The bytes asked for (one page).
        len: u64,
        /// The file's length when the read was tried.
        file_len: u64,
    },
    /// [`crate::ReadPath::Mmap`] was asked for on a backend without a file to map.
    #[error("the mmap read path needs a backend with an open file to map, and this backend has none (Backend::file() is None)")]
    MmapUnsupported,
    /// The operating system refused to map the file.
    #[error("mapping {len} bytes of the file failed: {source}")]
    Mmap {
        /// The length the mapping was to have.
        len: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A `set_len` that would cut off bytes a live memory map covers.
    #[error("cannot shrink the file to {len} bytes: pages below {mapped_len} bytes have been read through a memory map, and the file never shrinks below them")]
    ShrinkWhileMapped {
        /// The length asked for.
        len: u64,
        /// The longest length the mapped file had when a read was checked against it:
        /// pages below it may be in use.
        mapped_len: u64,
    },
    /// A write-buffer entry that would share bytes with another entry of the same buffer.
    #[error("dirty data at offset {offset} overlaps the dirty entry at offset {other}")]
    OverlapsDirtyPage {
        /// Where the new entry starts.
        offset: u64,
        /// Where an entry it overlaps starts (the last by offset, when it overlaps several).
        other: u64,
    },
}

/// Shorthand for this crate's results.
pub type Result<T, E = PageCacheError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_values() {
        let cases: Vec<(PageCacheError, &[&str])> = vec![
            (
                PageCacheError::Misaligned {
                    offset: 100,
                    page_size: 4096,
                },
                &["100", "4096"],
            ),
            (
                PageCacheError::BadPageLength {
                    offset: 8192,
                    len: 10,
                    page_size: 4096,
                },
                &["8192", "10", "4096"],
            ),
            (
                PageCacheError::InvalidPageSize { page_size: 1000 },
                &["1000", "512..=65536"],
            ),
            (
                PageCacheError::PastEnd {
                    offset: 4096,
                    len: 4096,
                    file_len: 12,
                },
                &["4096", "12"],
            ),
            (
                PageCacheError::ShrinkWhileMapped {
                    len: 1,
                    mapped_len: 8192,
                },
                &["1 bytes", "8192"],
            ),
            (
                PageCacheError::OverlapsDirtyPage {
                    offset: 4096,
                    other: 0,
                },
                &["4096", "offset 0"],
            ),
            (
                PageCacheError::Mmap {
                    len: 77,
                    source: io::Error::other("nope"),
                },
                &["77", "nope"],
            ),
            (PageCacheError::MmapUnsupported, &["file()"]),
        ];
        for (err, parts) in cases {
            let msg = err.to_string();
            for part in parts {
                assert!(msg.contains(part), "{msg:?} lacks {part:?}");
            }
        }
    }

    #[test]
    fn flush_errors_convert_and_keep_their_message() {
        let inner = FlushError::EmptyPage { offset: 42 };
        let text = inner.to_string();
        let err: PageCacheError = inner.into();
        assert!(matches!(
            err,
            PageCacheError::Flush(FlushError::EmptyPage { offset: 42 })
        ));
        assert_eq!(err.to_string(), text);
    }
}
