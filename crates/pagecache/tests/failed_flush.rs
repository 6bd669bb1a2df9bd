//! A failed flush keeps the buffer, leaves no stale cached pages, and can be retried.

use std::io::IoSlice;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flush::{Backend, FlushConfig, FlushError, IoOp, IoStats, MemBackend, NoFreeSpace, PerPage};
use pagecache::{CacheOptions, PageCache, PageCacheError};

/// A `MemBackend` whose writes start failing (ENOSPC) after a budget of successful write calls.
#[derive(Debug, Default)]
struct FailingBackend {
    inner: MemBackend,
    writes_left: AtomicU64,
}

impl FailingBackend {
    fn new() -> Self {
        Self {
            inner: MemBackend::new(),
            writes_left: AtomicU64::new(u64::MAX),
        }
    }

    /// Let `n` more write calls succeed, then fail every one.
    fn fail_after(&self, n: u64) {
        self.writes_left.store(n, Ordering::SeqCst);
    }

    fn check(&self, op: IoOp, offset: u64, len: u64) -> flush::Result<()> {
        let ok = self
            .writes_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if ok {
            Ok(())
        } else {
            Err(FlushError::Io {
                op,
                offset,
                len,
                source: std::io::Error::from_raw_os_error(28),
            })
        }
    }
}

impl Backend for FailingBackend {
    fn len(&self) -> flush::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> flush::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> flush::Result<()> {
        self.check(IoOp::Write, offset, buf.len() as u64)?;
        self.inner.write_at(buf, offset)
    }
    fn write_vectored_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> flush::Result<()> {
        let len = bufs.iter().map(|b| b.len() as u64).sum();
        self.check(IoOp::WriteVectored, offset, len)?;
        self.inner.write_vectored_at(bufs, offset)
    }
    fn set_len(&self, len: u64) -> flush::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> flush::Result<()> {
        self.inner.sync_data()
    }
    fn stats(&self) -> &IoStats {
        self.inner.stats()
    }
}

#[test]
fn a_failed_flush_keeps_the_buffer_and_drops_cached_pages() {
    for config in FlushConfig::all_defaults() {
        let backend = Arc::new(FailingBackend::new());
        let cache = PageCache::new(backend.clone(), CacheOptions::default()).unwrap();

        // Commit version 1 of pages 0..4 and 6, and cache them.
        let pages = [0u64, 1, 2, 3, 6];
        let mut buffer = cache.write_buffer();
        for p in pages {
            buffer.put_copy(p * 4096, &[1; 4096]).unwrap();
        }
        buffer.flush(&PerPage, &NoFreeSpace).unwrap();
        assert_eq!(cache.stats().resident_pages, 5);

        // Version 2: pages 3, 0, 1..3 (one entry of two pages) and 6. Every policy needs at
        // least two writes (page 5 is not free), and only the first one succeeds.
        buffer.put_copy(3 * 4096, &[2; 4096]).unwrap();
        buffer.put_copy(0, &[2; 4096]).unwrap();
        buffer.put(4096, vec![2; 8192].into_boxed_slice()).unwrap();
        buffer.put_copy(6 * 4096, &[2; 4096]).unwrap();
        backend.fail_after(1);
        let err = buffer.flush(&*config.build(), &NoFreeSpace).unwrap_err();
        assert!(
            matches!(&err, PageCacheError::Flush(e) if e.is_out_of_space()),
            "{config}: {err}"
        );

        // The buffer is unchanged, in order.
        let kept: Vec<(u64, usize)> = buffer.iter().map(|(o, d)| (o, d.len())).collect();
        assert_eq!(
            kept,
            vec![(12288, 4096), (0, 4096), (4096, 8192), (24576, 4096)],
            "{config}"
        );
        assert_eq!(buffer.dirty_bytes(), 20480);
        // No page of the buffer is cached; reads show what the file holds now (a mix).
        assert_eq!(cache.stats().resident_pages, 0, "{config}");
        let file = backend.inner.contents();
        assert!(
            file.contains(&1) && file.contains(&2),
            "{config}: one write of several landed"
        );
        for p in 0..7usize {
            let got = cache.read_page(p as u64 * 4096).unwrap();
            assert_eq!(&got[..], &file[p * 4096..(p + 1) * 4096], "{config}: page {p}");
        }

        // A retry succeeds and the new pages replace whatever was cached.
        backend.fail_after(u64::MAX);
        buffer.flush(&*config.build(), &NoFreeSpace).unwrap();
        assert!(buffer.is_empty());
        for p in pages {
            assert_eq!(
                &cache.read_page(p * 4096).unwrap()[..],
                &[2u8; 4096][..],
                "{config}"
            );
        }
        let mut want = vec![2u8; 7 * 4096];
        want[4 * 4096..6 * 4096].fill(0); // pages 4 and 5 were never written
        assert!(
            backend.inner.contents() == want,
            "{config}: file contents after the retry"
        );
    }
}

#[test]
fn a_failed_flush_can_be_abandoned() {
    let backend = Arc::new(FailingBackend::new());
    let cache = PageCache::new(backend.clone(), CacheOptions::default()).unwrap();
    let mut buffer = cache.write_buffer();
    buffer.put_copy(0, &[5; 4096]).unwrap();
    backend.fail_after(0);
    assert!(buffer.flush(&PerPage, &NoFreeSpace).is_err());
    assert_eq!(buffer.len(), 1);
    buffer.clear();
    assert!(buffer.is_empty());
    backend.fail_after(u64::MAX);
    assert_eq!(buffer.flush(&PerPage, &NoFreeSpace).unwrap().runs, 0);
    assert!(matches!(
        cache.read_page(0),
        Err(PageCacheError::PastEnd { file_len: 0, .. })
    ));
}
