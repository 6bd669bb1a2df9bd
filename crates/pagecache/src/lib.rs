//! The page layer of cf-store over one file: a shared [`PageCache`] (a sharded read cache
//! bounded in bytes, or a memory-mapped read path), and one [`WriteBuffer`] per writer that
//! flushes its dirty pages through a `flush` policy and hands them to the read cache without
//! copying.
//!
//! Committed pages are immutable (MVCC: a page offset is rewritten only once no reader can
//! reach its old content), so readers never wait on writers, and a flush may replace cached
//! entries for the offsets it writes.
//!
//! ```
//! use std::sync::Arc;
//!
//! use flush::{Backend, FlushConfig, MemBackend, NoFreeSpace};
//! use pagecache::{CacheOptions, PageCache, PageCacheError};
//!
//! let backend = Arc::new(MemBackend::new());
//! let cache = PageCache::new(backend.clone(), CacheOptions::default().with_page_size(4096))?;
//!
//! // One writer buffers pages (a two-page entry and a single page) and reads its own writes.
//! let mut buffer = cache.write_buffer();
//! buffer.put(8192, vec![2u8; 8192].into_boxed_slice())?;
//! buffer.put_copy(0, &[1u8; 4096])?;
//! assert_eq!(buffer.page(12288), Some(&[2u8; 4096][..]));
//!
//! // Flushing plans the writes with a policy: two runs, one call each.
//! let policy = "sorted-merge".parse::<FlushConfig>()?.build();
//! let report = buffer.flush(&*policy, &NoFreeSpace)?;
//! assert_eq!((report.runs, report.page_bytes), (2, 12288));
//! assert!(buffer.is_empty());
//!
//! // The flushed pages went into the read cache: reading them does no I/O.
//! assert_eq!(&cache.read_page(12288)?[..], &[2u8; 4096][..]);
//! assert_eq!(cache.stats().hits, 1);
//! assert_eq!(backend.stats().snapshot().read_calls, 0);
//!
//! // Bad input is a typed error.
//! assert!(matches!(cache.read_page(100), Err(PageCacheError::Misaligned { offset: 100, .. })));
//! assert!(matches!(cache.read_page(1 << 20), Err(PageCacheError::PastEnd { .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod buffer;
mod cache;
mod error;
mod held;
mod mmap;

pub use buffer::{WriteBuffer, SPARE_MAX_PAGES};
pub use cache::{CacheOptions, CacheStats, PageCache, PageRef, ReadPath, MAX_PAGE_SIZE, MIN_PAGE_SIZE};
pub use error::{PageCacheError, Result};
pub use held::HeldPages;
