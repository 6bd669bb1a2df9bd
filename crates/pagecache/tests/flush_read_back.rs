//! Flushed pages read back exactly, through the read cache and through mmap, for every policy.

use std::sync::Arc;

use flush::{FileBackend, FlushConfig, FreeRanges, MemBackend};
use pagecache::{CacheOptions, PageCache, ReadPath};

const PAGE: u64 = 4096;

/// Distinct bytes for every (offset, version).
fn fill(offset: u64, version: u8, len: u64) -> Vec<u8> {
    (offset..offset + len)
        .map(|at| ((at.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8) ^ version.wrapping_mul(0x5b))
        .collect()
}

/// Expected file contents, page by page (unwritten pages inside the file read as zeros).
fn expected(written: &[(u64, u8, u64)], file_pages: u64) -> Vec<Vec<u8>> {
    let mut pages = vec![vec![0u8; PAGE as usize]; file_pages as usize];
    for &(offset, version, len) in written {
        let bytes = fill(offset, version, len);
        for (i, chunk) in bytes.chunks(PAGE as usize).enumerate() {
            pages[(offset / PAGE) as usize + i] = chunk.to_vec();
        }
    }
    pages
}

/// Two flushes through `cache`: scattered entries in unsorted buffer order (one multi-page,
/// runs that touch, a free gap and a gap that is not free), then rewrites of some pages,
/// including one inside the earlier multi-page entry. After each flush every page is read
/// back through `cache`, and from the backend directly.
fn round_trip(cache: &Arc<PageCache>, config: FlushConfig) {
    let policy = config.build();
    let mut free = FreeRanges::new();
    free.insert(2 * PAGE, 4 * PAGE); // pages 2..4 are never written
    let first: Vec<(u64, u8, u64)> = vec![
        (10 * PAGE, 1, PAGE),
        (0, 1, PAGE),
        (4 * PAGE, 1, 3 * PAGE),
        (PAGE, 1, PAGE),
        (9 * PAGE, 1, PAGE),
    ];
    let second: Vec<(u64, u8, u64)> = vec![(5 * PAGE, 2, PAGE), (0, 2, PAGE), (10 * PAGE, 2, PAGE)];

    let mut buffer = cache.write_buffer();
    let mut written = Vec::new();
    for round in [first, second] {
        for &(offset, version, len) in &round {
            if len == PAGE {
                buffer.put_copy(offset, &fill(offset, version, len)).unwrap();
            } else {
                buffer
                    .put(offset, fill(offset, version, len).into_boxed_slice())
                    .unwrap();
            }
        }
        let dirty = buffer.dirty_bytes();
        let report = buffer
            .flush(&*policy, &free)
            .unwrap_or_else(|e| panic!("{config}: {e}"));
        assert_eq!(report.page_bytes, dirty, "{config}");
        assert!(buffer.is_empty());
        written.extend(round);

        let pages = expected(&written, 11);
        assert_eq!(cache.backend().len().unwrap(), 11 * PAGE, "{config}");
        for (i, want) in pages.iter().enumerate() {
            let offset = i as u64 * PAGE;
            let got = cache
                .read_page(offset)
                .unwrap_or_else(|e| panic!("{config} page {i}: {e}"));
            assert_eq!(&got[..], &want[..], "{config}: page {i} via cache");
            assert_eq!(got.is_mapped(), cache.options().read_path == ReadPath::Mmap);
            let mut direct = vec![0u8; PAGE as usize];
            cache.backend().read_at(&mut direct, offset).unwrap();
            assert_eq!(&direct, want, "{config}: page {i} in the file");
        }
    }
}

#[test]
fn cache_path_on_memory_for_every_policy() {
    for config in FlushConfig::all_defaults() {
        for cache_on_flush in [true, false] {
            let cache = PageCache::new(
                Arc::new(MemBackend::new()),
                CacheOptions::default().with_cache_on_flush(cache_on_flush),
            )
            .unwrap();
            round_trip(&cache, config);
            let stats = cache.stats();
            if cache_on_flush {
                // Written pages came from the cache; only never-written pages were read.
                assert!(stats.hits > 0, "{config}");
            }
        }
    }
}

#[test]
fn cache_path_on_a_file_for_every_policy() {
    for config in FlushConfig::all_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(FileBackend::open(dir.path().join("store")).unwrap());
        let cache = PageCache::new(backend, CacheOptions::default()).unwrap();
        round_trip(&cache, config);
    }
}

#[test]
fn mmap_path_on_a_file_for_every_policy() {
    for config in FlushConfig::all_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(FileBackend::open(dir.path().join("store")).unwrap());
        let cache = PageCache::new(backend, CacheOptions::default().with_read_path(ReadPath::Mmap)).unwrap();
        round_trip(&cache, config);
        let stats = cache.stats();
        assert_eq!(
            (stats.hits, stats.misses, stats.resident_bytes),
            (0, 0, 0),
            "{config}"
        );
        assert!(stats.maps >= 1);
    }
}

#[test]
fn a_cold_cache_reads_what_was_flushed() {
    for config in FlushConfig::all_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let cache = PageCache::new(
            Arc::new(FileBackend::open(&path).unwrap()),
            CacheOptions::default(),
        )
        .unwrap();
        round_trip(&cache, config);
        drop(cache);
        let reopened = PageCache::new(
            Arc::new(FileBackend::open(&path).unwrap()),
            CacheOptions::default(),
        )
        .unwrap();
        assert_eq!(
            &reopened.read_page(5 * PAGE).unwrap()[..],
            &fill(5 * PAGE, 2, PAGE)[..]
        );
        assert_eq!(
            &reopened.read_page(6 * PAGE).unwrap()[..],
            &fill(6 * PAGE, 1, PAGE)[..]
        );
        assert_eq!(reopened.stats().misses, 2);
    }
}
