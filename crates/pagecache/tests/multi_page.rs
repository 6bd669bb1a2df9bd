//! An entry of several pages is flushed as one and read back page by page, on every path.

use std::sync::Arc;

use flush::{Backend, FileBackend, FlushConfig, MemBackend, NoFreeSpace};
use pagecache::{CacheOptions, PageCache, ReadPath};

fn entry(pages: usize) -> Vec<u8> {
    (0..pages * 4096)
        .map(|i| (i / 4096) as u8 * 16 + (i % 7) as u8)
        .collect()
}

fn check_pages(cache: &PageCache, base: u64, data: &[u8]) {
    for (i, want) in data.chunks(4096).enumerate() {
        let got = cache.read_page(base + i as u64 * 4096).unwrap();
        assert_eq!(&got[..], want, "page {i}");
    }
}

#[test]
fn multi_page_entries_read_back_page_by_page() {
    let data = entry(5);
    for config in FlushConfig::all_defaults() {
        // Cache path: the pages come from the cache, sliced from the flushed buffer.
        let mem = Arc::new(MemBackend::new());
        let cache = PageCache::new(mem.clone(), CacheOptions::default()).unwrap();
        let mut buffer = cache.write_buffer();
        buffer.put(8192, data.clone().into_boxed_slice()).unwrap();
        for i in 0..5u64 {
            assert_eq!(
                buffer.page(8192 + i * 4096),
                Some(&data[i as usize * 4096..][..4096])
            );
        }
        buffer.flush(&*config.build(), &NoFreeSpace).unwrap();
        check_pages(&cache, 8192, &data);
        let stats = cache.stats();
        assert_eq!(
            (stats.hits, stats.misses, stats.inserted_pages),
            (5, 0, 5),
            "{config}"
        );
        assert_eq!(mem.stats().snapshot().read_calls, 0);

        // After invalidating one page, it is read from the file alone.
        cache.invalidate(16384);
        check_pages(&cache, 8192, &data);
        assert_eq!(cache.stats().misses, 1);

        // Mmap path.
        let dir = tempfile::tempdir().unwrap();
        let file = Arc::new(FileBackend::open(dir.path().join("store")).unwrap());
        let mapped = PageCache::new(file, CacheOptions::default().with_read_path(ReadPath::Mmap)).unwrap();
        let mut buffer = mapped.write_buffer();
        buffer.put(8192, data.clone().into_boxed_slice()).unwrap();
        buffer.flush(&*config.build(), &NoFreeSpace).unwrap();
        check_pages(&mapped, 8192, &data);
        assert_eq!(&mapped.read_page(0).unwrap()[..], &[0u8; 4096][..]);
    }
}

/// `read_run` reads a run of pages as one buffer: a miss reads the whole run with one call
/// and caches its pages; when every page is cached it reads nothing; past the end of the
/// file it is `PastEnd`; on the mmap path it is a slice of the mapping.
#[test]
fn runs_read_as_one_buffer_with_one_call() {
    let data = entry(4);
    let mem = Arc::new(MemBackend::new());
    let cache = PageCache::new(mem.clone(), CacheOptions::default().with_cache_on_flush(false)).unwrap();
    let mut buffer = cache.write_buffer();
    buffer.put(4096, data.clone().into_boxed_slice()).unwrap();
    buffer
        .flush(&*FlushConfig::default().build(), &NoFreeSpace)
        .unwrap();
    let reads = || mem.stats().snapshot().read_calls;
    let before = reads();
    assert_eq!(&cache.read_run(4096, 4).unwrap()[..], &data[..]);
    assert_eq!(reads() - before, 1, "one read for the whole run");
    assert_eq!(&cache.read_run(4096, 4).unwrap()[..], &data[..]);
    assert_eq!(&cache.read_run(8192, 2).unwrap()[..], &data[4096..12288]);
    check_pages(&cache, 4096, &data);
    assert_eq!(reads() - before, 1, "the pages were cached");
    assert!(matches!(
        cache.read_run(8192, 4),
        Err(pagecache::PageCacheError::PastEnd { .. })
    ));

    let dir = tempfile::tempdir().unwrap();
    let file = Arc::new(FileBackend::open(dir.path().join("run")).unwrap());
    let cache = PageCache::new(
        file.clone(),
        CacheOptions::default().with_read_path(ReadPath::Mmap),
    )
    .unwrap();
    let mut buffer = cache.write_buffer();
    buffer.put(4096, data.clone().into_boxed_slice()).unwrap();
    buffer
        .flush(&*FlushConfig::default().build(), &NoFreeSpace)
        .unwrap();
    let run = cache.read_run(4096, 4).unwrap();
    assert!(run.is_mapped());
    assert_eq!(&run[..], &data[..]);
}
