//! A failed flush keeps the buffer, leaves no stale cached pages, and can be retried.

use std::sync::Arc;

use flush::testing::FaultBackend;
use flush::{FlushConfig, MemBackend, NoFreeSpace, PerPage};
use pagecache::{CacheOptions, PageCache, PageCacheError};

#[test]
fn a_failed_flush_keeps_the_buffer_and_drops_cached_pages() {
    for config in FlushConfig::all_defaults() {
        let backend = Arc::new(FaultBackend::new(MemBackend::new()));
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
        backend.fail_writes_after(1, 28); // ENOSPC
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
        let file = backend.inner().contents();
        assert!(
            file.contains(&1) && file.contains(&2),
            "{config}: one write of several landed"
        );
        for p in 0..7usize {
            let got = cache.read_page(p as u64 * 4096).unwrap();
            assert_eq!(&got[..], &file[p * 4096..(p + 1) * 4096], "{config}: page {p}");
        }

        // A retry succeeds and the new pages replace whatever was cached.
        backend.heal_writes();
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
            backend.inner().contents() == want,
            "{config}: file contents after the retry"
        );
    }
}

#[test]
fn a_failed_flush_can_be_abandoned() {
    let backend = Arc::new(FaultBackend::new(MemBackend::new()));
    let cache = PageCache::new(backend.clone(), CacheOptions::default()).unwrap();
    let mut buffer = cache.write_buffer();
    buffer.put_copy(0, &[5; 4096]).unwrap();
    backend.fail_writes(28); // ENOSPC
    assert!(buffer.flush(&PerPage, &NoFreeSpace).is_err());
    assert_eq!(buffer.len(), 1);
    buffer.clear();
    assert!(buffer.is_empty());
    backend.heal_writes();
    assert_eq!(buffer.flush(&PerPage, &NoFreeSpace).unwrap().runs, 0);
    assert!(matches!(
        cache.read_page(0),
        Err(PageCacheError::PastEnd { file_len: 0, .. })
    ));
}
