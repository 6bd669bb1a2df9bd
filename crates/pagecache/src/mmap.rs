//! The mmap read path: one read-only shared mapping of the whole file, swapped for a longer
//! one (under a mutex, published with arc-swap) when a read reaches past it, and never
//! allowed to outlive the bytes it covers.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwapOption;
use flush::Backend;
use memmap2::{Mmap, MmapOptions};

use crate::{PageCacheError, Result};

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
}

/// The current mapping and the lock that serialises remapping against `set_len`.
///
/// Readers load the mapping without locking. A read that reaches past it takes `remap`,
/// checks again (another thread may have remapped meanwhile), and maps the whole file at its
/// current length. Mappings only ever grow, so the current one is the longest alive, and
/// [`MmapReader::mapped_len`] is the length the file must never shrink below.
#[derive(Debug)]
pub(crate) struct MmapReader {
    current: ArcSwapOption<Mmap>,
    remap: Mutex<()>,
    remaps: AtomicU64,
}

impl MmapReader {
    /// A reader for `backend`'s file; nothing is mapped until the first read (a zero-length
    /// file cannot be mapped). [`PageCacheError::MmapUnsupported`] when there is no file.
    pub(crate) fn new(backend: &dyn Backend) -> Result<Self> {
        if backend.file().is_none() {
            return Err(PageCacheError::MmapUnsupported);
        }
        Ok(Self {
            current: ArcSwapOption::empty(),
            remap: Mutex::new(()),
            remaps: AtomicU64::new(0),
        })
    }

    /// The `len` bytes at `offset` (`end == offset + len`, already checked not to overflow),
    /// remapping first if the current mapping is too short but the file is long enough.
    pub(crate) fn read(&self, backend: &dyn Backend, offset: u64, len: u64, end: u64) -> Result<MappedPage> {
        if let Some(page) = Self::page_in(self.current.load().as_ref(), offset, len, end) {
            return Ok(page);
        }
        let _remap = self.lock();
        if let Some(page) = Self::page_in(self.current.load().as_ref(), offset, len, end) {
            return Ok(page);
        }
        let file_len = backend.len()?;
        if end > file_len {
            return Err(PageCacheError::PastEnd {
                offset,
                len,
                file_len,
            });
        }
        let file = backend.file().ok_or(PageCacheError::MmapUnsupported)?;
        let map = Arc::new(map_file(file, file_len)?);
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

    /// Length of the current (longest) mapping; 0 before the first mapping.
    pub(crate) fn mapped_len(&self) -> u64 {
        self.current.load().as_ref().map_or(0, |m| m.len() as u64)
    }

    /// How many mappings were made.
    pub(crate) fn remaps(&self) -> u64 {
        self.remaps.load(Ordering::Relaxed)
    }

    /// Blocks remapping while held: `set_len` holds it so that the length it checks against
    /// cannot grow under it.
    pub(crate) fn lock(&self) -> MutexGuard<'_, ()> {
        // The mutex guards no data, so a panic while it was held left nothing to repair.
        self.remap.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Maps the first `len` bytes of `file` read-only. `len` is not zero and not beyond the
/// file's length at the time of the call.
fn map_file(file: &File, len: u64) -> Result<Mmap> {
    let map_len = usize::try_from(len).map_err(|_| PageCacheError::Mmap {
        len,
        source: io::Error::other("the file is longer than the address space"),
    })?;
    // SAFETY: `Mmap::map` is unsafe because the bytes behind the returned `&[u8]` could
    // change or vanish (SIGBUS) if the file were modified or truncated while mapped. This
    // crate upholds, with its caller (the store), these invariants:
    // - the store owns the file: no other process or handle writes or truncates it;
    // - the file never shrinks below a live mapping: `len` is at most the file's length
    //   right now; all shrinking goes through `PageCache::set_len`, which holds the remap
    //   lock and refuses to go below the current mapping, and mappings only grow, so the
    //   current one is the longest still alive;
    // - MVCC: a page a reader can reach (and so hold a `PageRef` into) is never rewritten;
    //   writers only write pages no reader can reach, so bytes behind a live slice are
    //   stable. Bytes written later to other offsets reach the mapping through the shared
    //   page cache (MAP_SHARED), which is what makes remapped reads see new pages.
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
        assert_eq!((reader.mapped_len(), reader.remaps()), (0, 0));
    }

    #[test]
    fn maps_once_per_growth_and_old_pages_stay_valid() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::open(dir.path().join("f")).unwrap();
        backend.write_at(&[7u8; 512], 0).unwrap();
        let reader = MmapReader::new(&backend).unwrap();
        let first = reader.read(&backend, 0, 512, 512).unwrap();
        let again = reader.read(&backend, 0, 512, 512).unwrap();
        assert_eq!(reader.remaps(), 1);
        backend.write_at(&[9u8; 512], 512).unwrap();
        let second = reader.read(&backend, 512, 512, 1024).unwrap();
        assert_eq!(reader.remaps(), 2);
        assert_eq!(reader.mapped_len(), 1024);
        assert!(first.as_slice().iter().all(|&b| b == 7));
        assert!(again.as_slice().iter().all(|&b| b == 7));
        assert!(second.as_slice().iter().all(|&b| b == 9));
    }
}
