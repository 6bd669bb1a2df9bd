//! The mmap read path: one read-only shared mapping of a window larger than the file, so
//! that the file grows into it without a new mapping, swapped for a larger one (under a
//! mutex, published with arc-swap) only when the file outgrows it; no page past the end of
//! the file is ever handed out, and the file never shrinks below a page that was.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwapOption;
use flush::Backend;
use memmap2::{Mmap, MmapOptions};

use crate::{PageCacheError, Result};

/// The smallest window mapped: 1 GiB of address space (not memory: only pages read are
/// mapped in). A mapping that ended at the end of the file had to be replaced whenever a
/// commit wrote past it, which was at nearly every commit of a growing file (2,930 mappings
/// in 3,000 small transactions), each time faulting every page in again.
pub(crate) const MIN_WINDOW: u64 = 1 << 30;

/// One page inside a mapping. Holding it keeps the mapping alive, so a page read before a
/// remap stays readable after it.
#[derive(Debug, Clone)]
pub(crate) struct MappedPage {
    map: Arc<Mmap>,
    start: usize,
    len: usize,
}

impl MappedPage {
    pub(crate) fn as_slice(&self) -> &[u8] {
        // `MmapReader::read` only builds pages that lie inside their mapping.
        &self.map[self.start..self.start + self.len]
    }

    /// `len` bytes of this page from `at` (inside it: the caller checked).
    pub(crate) fn narrow(&self, at: usize, len: usize) -> MappedPage {
        debug_assert!(at + len <= self.len);
        MappedPage {
            map: Arc::clone(&self.map),
            start: self.start + at,
            len,
        }
    }
}

/// The current mapping, the file length reads are checked against, and the lock that
/// serialises remapping against `set_len`.
///
/// Readers load the mapping and the length without locking. A read that reaches past
/// either takes `remap`, asks the file for its length (it may have grown), and, if the
/// file now holds the read but the mapping does not, maps a new window of at least twice
/// the file's length. Windows only ever grow, and `exposed` (the longest file length a
/// read was checked against) only grows, so [`MmapReader::exposed_len`] is the length the
/// file must never shrink below.
#[derive(Debug)]
pub(crate) struct MmapReader {
    current: ArcSwapOption<Mmap>,
    /// The file's length when last asked: pages below it may be handed out.
    exposed: AtomicU64,
    remap: Mutex<()>,
    remaps: AtomicU64,
    min_window: u64,
}

impl MmapReader {
    /// A reader for `backend`'s file; nothing is mapped until the first read (a zero-length
    /// file cannot be mapped). [`PageCacheError::MmapUnsupported`] when there is no file.
    pub(crate) fn new(backend: &dyn Backend) -> Result<Self> {
        Self::with_min_window(backend, MIN_WINDOW)
    }

    fn with_min_window(backend: &dyn Backend, min_window: u64) -> Result<Self> {
        if backend.file().is_none() {
            return Err(PageCacheError::MmapUnsupported);
        }
        Ok(Self {
            current: ArcSwapOption::empty(),
            exposed: AtomicU64::new(0),
            remap: Mutex::new(()),
            remaps: AtomicU64::new(0),
            min_window,
        })
    }

    /// The `len` bytes at `offset` (`end == offset + len`, already checked not to overflow);
    /// [`PageCacheError::PastEnd`] if the file does not hold them.
    pub(crate) fn read(&self, backend: &dyn Backend, offset: u64, len: u64, end: u64) -> Result<MappedPage> {
        if end <= self.exposed.load(Ordering::Acquire) {
            if let Some(page) = Self::page_in(self.current.load().as_ref(), offset, len, end) {
                return Ok(page);
            }
        }
        let _remap = self.lock();
        let file_len = backend.len()?;
        self.exposed.fetch_max(file_len, Ordering::AcqRel);
        if end > file_len {
            return Err(PageCacheError::PastEnd {
                offset,
                len,
                file_len,
            });
        }
        if let Some(page) = Self::page_in(self.current.load().as_ref(), offset, len, end) {
            return Ok(page);
        }
        let window = file_len.saturating_mul(2).max(self.min_window);
        let file = backend.file().ok_or(PageCacheError::MmapUnsupported)?;
        let map = Arc::new(map_file(file, window)?);
        self.current.store(Some(Arc::clone(&map)));
        self.remaps.fetch_add(1, Ordering::Relaxed);
        Self::page_in(Some(&map), offset, len, end).ok_or(PageCacheError::PastEnd {
            offset,
            len,
            file_len,
        })
    }

    fn page_in(map: Option<&Arc<Mmap>>, offset: u64, len: u64, end: u64) -> Option<MappedPage> {
        let map = map?;
        if end > map.len() as u64 {
            return None;
        }
        // Both fit in usize: they are at most the mapping's length.
        Some(MappedPage {
            map: Arc::clone(map),
            start: offset as usize,
            len: len as usize,
        })
    }

    /// The longest file length a read was checked against (0 before the first read): every
    /// page handed out lies below it, so the file must not shrink below it.
    pub(crate) fn exposed_len(&self) -> u64 {
        self.exposed.load(Ordering::Acquire)
    }

    /// How many mappings were made.
    pub(crate) fn remaps(&self) -> u64 {
        self.remaps.load(Ordering::Relaxed)
    }

    /// Blocks remapping and the growth of [`MmapReader::exposed_len`] while held: `set_len`
    /// holds it so that the length it checks against cannot grow under it.
    pub(crate) fn lock(&self) -> MutexGuard<'_, ()> {
        // The mutex guards no data, so a panic while it was held left nothing to repair.
        self.remap.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Maps `len` bytes of `file` from its start, read-only: the file and the address space
/// past its end, into which it may grow.
fn map_file(file: &File, len: u64) -> Result<Mmap> {
    let map_len = usize::try_from(len).map_err(|_| PageCacheError::Mmap {
        len,
        source: io::Error::other("the window is larger than the address space"),
    })?;
    // SAFETY: `Mmap::map` is unsafe because the bytes behind the returned `&[u8]` could
    // change or vanish (SIGBUS) if the file were modified or truncated while mapped, and a
    // page of the mapping past the end of the file raises SIGBUS when touched. This crate
    // upholds, with its caller (the store), these invariants:
    // - the store owns the file: no other process or handle writes or truncates it;
    // - no byte past the end of the file is handed out: `MmapReader::read` returns a page
    //   only below `exposed`, a length the file had when asked, and the file never shrinks
    //   below `exposed`: all shrinking goes through `PageCache::set_len`, which holds the
    //   remap lock and refuses to go below it;
    // - MVCC: a page a reader can reach (and so hold a `PageRef` into) is never rewritten;
    //   writers only write pages no reader can reach, so bytes behind a live slice are
    //   stable. Bytes written later to other offsets, and the file's growth into the
    //   window, reach the mapping through the shared page cache (MAP_SHARED).
    let map = unsafe { MmapOptions::new().len(map_len).map(file) };
    map.map_err(|source| PageCacheError::Mmap { len, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flush::{FileBackend, MemBackend};

    #[test]
    fn needs_a_file_and_maps_nothing_for_an_empty_one() {
        assert!(matches!(
            MmapReader::new(&MemBackend::new()),
            Err(PageCacheError::MmapUnsupported)
        ));
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::open(dir.path().join("f")).unwrap();
        let reader = MmapReader::new(&backend).unwrap();
        assert!(matches!(
            reader.read(&backend, 0, 512, 512),
            Err(PageCacheError::PastEnd {
                offset: 0,
                len: 512,
                file_len: 0
            })
        ));
        assert_eq!((reader.exposed_len(), reader.remaps()), (0, 0));
    }

    #[test]
    fn the_file_grows_into_its_window_and_old_pages_stay_valid() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::open(dir.path().join("f")).unwrap();
        backend.write_at(&[7u8; 512], 0).unwrap();
        let reader = MmapReader::with_min_window(&backend, 4096).unwrap();
        let first = reader.read(&backend, 0, 512, 512).unwrap();
        let again = reader.read(&backend, 0, 512, 512).unwrap();
        assert_eq!((reader.remaps(), reader.exposed_len()), (1, 512));
        // Inside the window but past the end of the file: an error, never a page.
        assert!(matches!(
            reader.read(&backend, 512, 512, 1024),
            Err(PageCacheError::PastEnd { file_len: 512, .. })
        ));
        backend.write_at(&[9u8; 512], 512).unwrap();
        let second = reader.read(&backend, 512, 512, 1024).unwrap();
        assert_eq!(
            (reader.remaps(), reader.exposed_len()),
            (1, 1024),
            "grown into the window"
        );
        // Past the window (4 KiB): a new one, twice the file.
        backend.write_at(&[5u8; 4096], 4096).unwrap();
        let third = reader.read(&backend, 4096, 512, 4608).unwrap();
        assert_eq!((reader.remaps(), reader.exposed_len()), (2, 8192));
        assert!(first.as_slice().iter().all(|&b| b == 7));
        assert!(again.as_slice().iter().all(|&b| b == 7));
        assert!(second.as_slice().iter().all(|&b| b == 9));
        assert!(third.as_slice().iter().all(|&b| b == 5));
    }
}
