//! Reads of pages about to be replaced (`read_page_to_replace`, `read_run_to_replace`): they
//! return the same bytes as plain reads, use what the cache holds, and never add to it.

use std::sync::Arc;

use flush::{Backend, MemBackend};
use pagecache::{CacheOptions, PageCache};

/// A file of 8 pages, page `i` filled with `i + 1`.
fn file() -> Arc<MemBackend> {
    let mem = Arc::new(MemBackend::new());
    for i in 0..8u8 {
        mem.write_at(&[i + 1; 4096], u64::from(i) * 4096).unwrap();
    }
    mem
}

#[test]
fn a_miss_reads_the_file_and_caches_nothing() {
    let mem = file();
    let cache = PageCache::new(mem.clone(), CacheOptions::default()).unwrap();
    let page = cache.read_page_to_replace(4096).unwrap();
    assert_eq!(&page[..], &[2u8; 4096][..]);
    let run = cache.read_run_to_replace(2 * 4096, 3).unwrap();
    assert_eq!(run.len(), 3 * 4096);
    for (i, part) in run.chunks(4096).enumerate() {
        assert!(part.iter().all(|&b| b == 3 + i as u8), "page {i} of the run");
    }
    let stats = cache.stats();
    assert_eq!(
        (
            stats.hits,
            stats.misses,
            stats.inserted_pages,
            stats.resident_pages
        ),
        (0, 4, 0, 0),
        "misses counted, nothing cached"
    );
    assert_eq!(mem.stats().snapshot().read_calls, 2, "one read each");
    // Read again: still from the file.
    cache.read_page_to_replace(4096).unwrap();
    assert_eq!(mem.stats().snapshot().read_calls, 3);
}

#[test]
fn a_hit_takes_the_cached_page() {
    let mem = file();
    let cache = PageCache::new(mem.clone(), CacheOptions::default()).unwrap();
    // Plain reads cache pages 0 to 3.
    cache.read_run(0, 4).unwrap();
    let reads = mem.stats().snapshot().read_calls;
    let page = cache.read_page_to_replace(4096).unwrap();
    assert_eq!(&page[..], &[2u8; 4096][..]);
    let run = cache.read_run_to_replace(0, 4).unwrap();
    assert_eq!(&run[4096..8192], &[2u8; 4096][..]);
    assert_eq!(mem.stats().snapshot().read_calls, reads, "no read of the file");
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.inserted_pages), (5, 4));
    // A run only partly cached is read whole from the file, and caches nothing more.
    cache.read_run_to_replace(2 * 4096, 4).unwrap();
    assert_eq!(mem.stats().snapshot().read_calls, reads + 1);
    assert_eq!(cache.stats().resident_pages, 4);
}

#[test]
fn errors_are_those_of_plain_reads() {
    let cache = PageCache::new(file(), CacheOptions::default()).unwrap();
    assert!(cache.read_page_to_replace(100).is_err(), "misaligned");
    assert!(cache.read_page_to_replace(8 * 4096).is_err(), "past the end");
    assert!(
        cache.read_run_to_replace(7 * 4096, 2).is_err(),
        "a run past the end"
    );
    assert_eq!(cache.stats().resident_pages, 0);
}
