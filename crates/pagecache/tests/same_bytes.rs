//! `PageRef::same_bytes`: reads that return the very buffer an earlier read did are told
//! apart from reads of anything else, so a caller can keep what it derived from a page for
//! as long as the cache hands out that same buffer.

use std::sync::Arc;

use bytes::Bytes;
use flush::{FileBackend, MemBackend, NoFreeSpace, PerPage};
use pagecache::{CacheOptions, PageCache, PageRef, ReadPath};

const PAGE: usize = 512;

fn cache_over(pages: usize, options: CacheOptions) -> Arc<PageCache> {
    let bytes = (0..pages).flat_map(|i| vec![i as u8 + 1; PAGE]).collect::<Vec<u8>>();
    PageCache::new(Arc::new(MemBackend::from_bytes(bytes)), options.with_page_size(PAGE as u32)).unwrap()
}

#[test]
fn a_cache_hit_is_the_same_bytes_and_a_reload_is_not() {
    let cache = cache_over(2, CacheOptions::default());
    let first = cache.read_page(PAGE as u64).unwrap();
    let hit = cache.read_page(PAGE as u64).unwrap();
    assert!(first.same_bytes(&hit) && hit.same_bytes(&first));
    assert!(!first.same_bytes(&cache.read_page(0).unwrap()), "another page");

    // Marking the page checked changes no bytes: still the same buffer.
    cache.mark_checked(PAGE as u64, &first);
    assert!(first.same_bytes(&cache.read_page(PAGE as u64).unwrap()));

    // Dropped from the cache and read again: equal bytes, but another buffer.
    cache.invalidate(PAGE as u64);
    let reloaded = cache.read_page(PAGE as u64).unwrap();
    assert_eq!(&reloaded[..], &first[..]);
    assert!(!first.same_bytes(&reloaded));
}

#[test]
fn a_slice_is_the_same_bytes_only_where_it_starts_and_ends_alike() {
    let cache = cache_over(1, CacheOptions::default());
    let page = cache.read_page(0).unwrap();
    let part = page.slice_ref(&page[..100]).unwrap();
    assert!(!page.same_bytes(&part), "same start, shorter");
    assert!(part.same_bytes(&page.slice_ref(&page[..100]).unwrap()));
    assert!(!part.same_bytes(&page.slice_ref(&page[1..101]).unwrap()));
}

#[test]
fn equal_bytes_elsewhere_and_mapped_bytes_are_never_the_same() {
    let a = PageRef::from(Bytes::from(vec![1u8; PAGE]));
    let b = PageRef::from(Bytes::from(vec![1u8; PAGE]));
    assert!(a.same_bytes(&a.clone()));
    assert!(!a.same_bytes(&b), "equal contents in two buffers");

    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(FileBackend::open(dir.path().join("store")).unwrap());
    let cache = PageCache::new(backend, CacheOptions::default().with_read_path(ReadPath::Mmap)).unwrap();
    let mut buffer = cache.write_buffer();
    buffer.put_copy(0, &[5u8; 4096]).unwrap();
    buffer.flush(&PerPage, &NoFreeSpace).unwrap();
    let mapped = cache.read_page(0).unwrap();
    assert!(mapped.is_mapped());
    assert!(!mapped.same_bytes(&mapped.clone()), "a mapping shows the file as it is now");
}
