//! Which reads come back known good (`PageRef::is_checked`): pages this process wrote, and
//! pages read from the file only once a reader has checked them (`PageCache::mark_checked`).
//! Everything else, the mmap path included, comes back unchecked, so its reader checks it.

use std::sync::Arc;

use flush::{FileBackend, MemBackend, NoFreeSpace, PerPage};
use pagecache::{CacheOptions, PageCache, PageRef, ReadPath};

const PAGE: usize = 512;

/// A cache of 512-byte pages over a file of `pages` pages, page `i` filled with `i + 1`.
fn cache_over(pages: usize) -> Arc<PageCache> {
    let bytes = (0..pages)
        .flat_map(|i| vec![i as u8 + 1; PAGE])
        .collect::<Vec<u8>>();
    let options = CacheOptions::default().with_page_size(PAGE as u32);
    PageCache::new(Arc::new(MemBackend::from_bytes(bytes)), options).unwrap()
}

#[test]
fn a_page_read_from_the_file_stays_unchecked_until_a_reader_marks_it() {
    let cache = cache_over(2);
    let first = cache.read_page(PAGE as u64).unwrap();
    assert!(!first.is_checked(), "just read from the file");
    assert!(
        !cache.read_page(PAGE as u64).unwrap().is_checked(),
        "a hit, never checked"
    );

    cache.mark_checked(PAGE as u64, &first);
    let again = cache.read_page(PAGE as u64).unwrap();
    assert!(again.is_checked());
    assert_eq!(&again[..], &[2u8; PAGE][..]);
    let s = cache.stats();
    assert_eq!((s.checked_pages, s.resident_pages), (1, 1));
    assert_eq!(s.evicted_pages, 0, "marking evicts nothing");

    // A slice of a checked page is checked; the other page was never marked.
    assert!(again.slice_ref(&again[10..20]).unwrap().is_checked());
    assert!(!cache.read_page(0).unwrap().is_checked());
}

#[test]
fn a_mark_with_other_bytes_leaves_the_page_unchecked() {
    let cache = cache_over(1);
    cache.read_page(0).unwrap();
    cache.mark_checked(0, &PageRef::from(vec![9u8; PAGE]));
    assert!(!cache.read_page(0).unwrap().is_checked());
    assert_eq!(cache.stats().checked_pages, 0);

    // Nor does a mark at an offset the cache does not hold, or an unaligned one.
    cache.mark_checked(PAGE as u64 * 7, &PageRef::from(vec![1u8; PAGE]));
    cache.mark_checked(3, &PageRef::from(vec![1u8; PAGE]));
    assert_eq!(cache.stats().checked_pages, 0);
}

#[test]
fn a_run_is_checked_only_when_every_page_of_it_is() {
    let cache = cache_over(3);
    let run = cache.read_run(0, 3).unwrap();
    assert!(!run.is_checked());
    cache.mark_checked(0, &cache.read_page(0).unwrap());
    assert!(
        !cache.read_run(0, 3).unwrap().is_checked(),
        "pages 1 and 2 are not"
    );

    cache.mark_checked(0, &run);
    assert_eq!(
        cache.stats().checked_pages,
        3,
        "page 0 was marked once, then 1 and 2"
    );
    let whole = cache.read_run(0, 3).unwrap();
    assert!(whole.is_checked());
    assert_eq!(&whole[PAGE..2 * PAGE], &[2u8; PAGE][..]);
    assert!(cache.read_page(2 * PAGE as u64).unwrap().is_checked());
}

#[test]
fn reads_to_replace_that_miss_are_unchecked_and_leave_nothing_to_mark() {
    let cache = cache_over(2);
    let page = cache.read_page_to_replace(0).unwrap();
    assert!(!page.is_checked());
    cache.mark_checked(0, &page);
    let s = cache.stats();
    assert_eq!((s.resident_pages, s.checked_pages), (0, 0));
    assert!(!cache.read_run_to_replace(0, 2).unwrap().is_checked());
}

#[test]
fn pages_a_flush_moved_into_the_cache_come_back_checked_and_held_pages_too() {
    let cache = cache_over(0);
    let mut buffer = cache.write_buffer();
    buffer.put_copy(0, &[7u8; PAGE]).unwrap();
    buffer
        .put(PAGE as u64, vec![8u8; 2 * PAGE].into_boxed_slice())
        .unwrap();
    buffer.flush(&PerPage, &NoFreeSpace).unwrap();
    assert!(cache.read_page(0).unwrap().is_checked());
    assert!(cache.read_run(PAGE as u64, 2).unwrap().is_checked());
    assert_eq!(cache.stats().checked_pages, 0, "nothing needed a reader's mark");

    buffer.put_copy(3 * PAGE as u64, &[9u8; PAGE]).unwrap();
    buffer.hold();
    let held = buffer.held().read(3 * PAGE as u64, PAGE as u64).unwrap();
    assert!(held.is_checked(), "held pages are this writer's own bytes");
    assert_eq!(&held[..], &[9u8; PAGE][..]);
}

#[test]
fn a_flush_with_the_cache_off_drops_a_checked_copy() {
    let options = CacheOptions::default()
        .with_page_size(PAGE as u32)
        .with_cache_on_flush(false);
    let cache = PageCache::new(Arc::new(MemBackend::new()), options).unwrap();
    let mut buffer = cache.write_buffer();
    buffer.put_copy(0, &[1u8; PAGE]).unwrap();
    buffer.flush(&PerPage, &NoFreeSpace).unwrap();
    let read = cache.read_page(0).unwrap();
    assert!(!read.is_checked());
    cache.mark_checked(0, &read);
    assert!(cache.read_page(0).unwrap().is_checked());

    buffer.put_copy(0, &[2u8; PAGE]).unwrap();
    buffer.flush(&PerPage, &NoFreeSpace).unwrap();
    let rewritten = cache.read_page(0).unwrap();
    assert_eq!(&rewritten[..], &[2u8; PAGE][..]);
    assert!(
        !rewritten.is_checked(),
        "the new bytes came from the file, unchecked"
    );
}

#[test]
fn mapped_pages_are_never_checked() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(FileBackend::open(dir.path().join("store")).unwrap());
    let options = CacheOptions::default().with_read_path(ReadPath::Mmap);
    let cache = PageCache::new(backend, options).unwrap();
    let mut buffer = cache.write_buffer();
    buffer.put_copy(0, &[5u8; 4096]).unwrap();
    buffer.flush(&PerPage, &NoFreeSpace).unwrap();
    let page = cache.read_page(0).unwrap();
    assert!(page.is_mapped() && !page.is_checked());
    cache.mark_checked(0, &page);
    assert!(!cache.read_page(0).unwrap().is_checked());
    assert_eq!(cache.stats().checked_pages, 0);
}
