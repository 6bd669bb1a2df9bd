//! `PageRef::slice_ref` narrows a read page to a part of it without copying, on both read
//! paths, and refuses a slice from anywhere else.

use std::sync::Arc;

use flush::{FileBackend, NoFreeSpace, SortedMerge};
use pagecache::{CacheOptions, PageCache, PageRef, ReadPath};

fn check_slices(page: PageRef) {
    let bytes = page.as_slice();
    let part = &bytes[100..160];
    let narrowed = page.slice_ref(part).expect("a part of the page");
    assert_eq!(narrowed.as_slice(), part);
    assert_eq!(narrowed.as_slice().as_ptr(), part.as_ptr(), "no copy");
    assert_eq!(narrowed.is_mapped(), page.is_mapped());
    // Narrowing again works from the narrowed reference; the whole and the empty ends too.
    let inner = narrowed.slice_ref(&narrowed.as_slice()[10..20]).unwrap();
    assert_eq!(inner.as_slice(), &bytes[110..120]);
    assert_eq!(page.slice_ref(bytes).unwrap().as_slice(), bytes);
    assert!(page
        .slice_ref(&bytes[bytes.len()..])
        .unwrap()
        .as_slice()
        .is_empty());
    // Not inside the page: refused.
    let elsewhere = vec![0u8; 16];
    assert!(page.slice_ref(&elsewhere).is_none());
    assert!(
        narrowed.slice_ref(&bytes[90..110]).is_none(),
        "starts before the part"
    );
    assert!(
        narrowed.slice_ref(&bytes[150..170]).is_none(),
        "ends after the part"
    );
    // The narrowed references keep the bytes after the page itself is dropped.
    let copy = part.to_vec();
    drop(page);
    assert_eq!(narrowed.as_slice(), &copy[..]);
    assert_eq!(inner.as_slice(), &copy[10..20]);
}

#[test]
fn slices_of_cached_and_mapped_pages() {
    for read_path in [ReadPath::Cache, ReadPath::Mmap] {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(FileBackend::open(dir.path().join("store")).unwrap());
        let cache = PageCache::new(backend, CacheOptions::default().with_read_path(read_path)).unwrap();
        let mut buffer = cache.write_buffer();
        let page: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        buffer.put_copy(0, &page).unwrap();
        buffer.flush(&SortedMerge::default(), &NoFreeSpace).unwrap();
        let read = cache.read_page(0).unwrap();
        assert_eq!(read.is_mapped(), read_path == ReadPath::Mmap);
        check_slices(read);
    }
    check_slices(PageRef::from((0..512u32).map(|i| i as u8).collect::<Vec<u8>>()));
}
