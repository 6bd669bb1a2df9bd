//! The read cache stays within `cache_bytes` however many pages pass through it.
//!
//! quick_cache's guarantee is per shard: a shard's resident weight never exceeds its share,
//! and an entry heavier than 97% of a share is not admitted. The shares are made exact (see
//! `PageCache::new`), so the total is bounded by `cache_bytes` itself, with no slack.

use std::sync::Arc;

use flush::{MemBackend, NoFreeSpace, Vectored};
use pagecache::{CacheOptions, PageCache};

fn check_bound(page_size: u32, cache_bytes: u64, pages: u64) {
    let file = vec![0xA5u8; (pages * u64::from(page_size)) as usize];
    let cache = PageCache::new(
        Arc::new(MemBackend::from_bytes(file)),
        CacheOptions::default()
            .with_page_size(page_size)
            .with_cache_bytes(cache_bytes),
    )
    .unwrap();
    for round in 0..2 {
        for p in 0..pages {
            let page = cache.read_page(p * u64::from(page_size)).unwrap();
            assert_eq!(page.len(), page_size as usize);
            assert!(page.iter().all(|&b| b == 0xA5));
            let stats = cache.stats();
            assert!(
                stats.resident_bytes <= cache_bytes,
                "round {round} page {p}: {} resident > {cache_bytes}",
                stats.resident_bytes
            );
            assert!(stats.capacity_bytes <= cache_bytes);
        }
    }
    let stats = cache.stats();
    assert_eq!(stats.hits + stats.misses, 2 * pages);
    assert_eq!(stats.inserted_pages, stats.misses);
    assert!(stats.evicted_pages > 0);
    assert!(
        stats.resident_pages > 0,
        "a cache of {cache_bytes} bytes should hold some pages"
    );
    assert_eq!(stats.resident_bytes, stats.resident_pages * u64::from(page_size));
}

#[test]
fn reads_of_many_more_pages_than_fit() {
    check_bound(4096, 64 << 10, 1024);
    check_bound(4096, (1 << 20) + 1000, 2048);
    check_bound(512, 100_000, 4096);
    check_bound(65536, 4 << 20, 256);
}

#[test]
fn flushes_of_many_more_pages_than_fit() {
    let cache_bytes = 256 << 10;
    let cache = PageCache::new(
        Arc::new(MemBackend::new()),
        CacheOptions::default().with_cache_bytes(cache_bytes),
    )
    .unwrap();
    let mut buffer = cache.write_buffer();
    for batch in 0..16u64 {
        for p in 0..64u64 {
            let offset = (batch * 64 + p) * 4096;
            if p % 8 == 0 {
                buffer
                    .put(offset, vec![p as u8; 4096].into_boxed_slice())
                    .unwrap();
            } else {
                buffer.put_copy(offset, &[p as u8; 4096]).unwrap();
            }
        }
        buffer.flush(&Vectored, &NoFreeSpace).unwrap();
        assert!(cache.stats().resident_bytes <= cache_bytes);
    }
    let stats = cache.stats();
    assert_eq!(stats.inserted_pages, 16 * 64);
    assert!(stats.evicted_pages > 0);
}

#[test]
fn a_zero_byte_cache_caches_nothing_but_still_reads() {
    let cache = PageCache::new(
        Arc::new(MemBackend::from_bytes(vec![7u8; 8192])),
        CacheOptions::default().with_cache_bytes(0),
    )
    .unwrap();
    for _ in 0..3 {
        assert_eq!(&cache.read_page(4096).unwrap()[..], &[7u8; 4096][..]);
    }
    let stats = cache.stats();
    assert_eq!((stats.resident_bytes, stats.misses, stats.hits), (0, 3, 0));
}
