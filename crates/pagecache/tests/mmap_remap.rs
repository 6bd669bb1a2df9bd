//! The mmap read path maps lazily, lets the file grow into its window without a new
//! mapping, never hands out a page past the end of the file, and keeps old pages valid.

use std::sync::Arc;

use flush::{FileBackend, NoFreeSpace, SortedMerge};
use pagecache::{CacheOptions, PageCache, PageCacheError, ReadPath};

#[test]
fn the_file_grows_through_a_flush_into_the_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(FileBackend::open(dir.path().join("store")).unwrap());
    let cache = PageCache::new(backend, CacheOptions::default().with_read_path(ReadPath::Mmap)).unwrap();

    // Empty file: nothing can be mapped, reads are past the end.
    assert!(matches!(
        cache.read_page(0),
        Err(PageCacheError::PastEnd { file_len: 0, .. })
    ));
    assert_eq!(cache.stats().maps, 0);

    let mut buffer = cache.write_buffer();
    buffer.put_copy(0, &[1u8; 4096]).unwrap();
    buffer.flush(&SortedMerge::default(), &NoFreeSpace).unwrap();
    let first = cache.read_page(0).unwrap();
    assert!(first.is_mapped());
    assert_eq!(&first[..], &[1u8; 4096][..]);
    assert_eq!(cache.stats().maps, 1);

    // The page after the end of the file is inside the mapping, but no page.
    assert!(matches!(
        cache.read_page(4096),
        Err(PageCacheError::PastEnd {
            offset: 4096,
            file_len: 4096,
            ..
        })
    ));

    // Grow the file by three pages: they are read through the same mapping.
    buffer.put_copy(4096, &[2u8; 4096]).unwrap();
    buffer.put(8192, vec![3u8; 8192].into_boxed_slice()).unwrap();
    buffer.flush(&SortedMerge::default(), &NoFreeSpace).unwrap();
    assert_eq!(&cache.read_page(12288).unwrap()[..], &[3u8; 4096][..]);
    assert_eq!(&cache.read_page(4096).unwrap()[..], &[2u8; 4096][..]);
    assert_eq!(&cache.read_page(8192).unwrap()[..], &[3u8; 4096][..]);
    assert_eq!(cache.stats().maps, 1);

    // The page read through the first mapping is still readable.
    assert_eq!(&first[..], &[1u8; 4096][..]);
    assert_eq!(&cache.read_page(0).unwrap()[..], &[1u8; 4096][..]);
    // And the file cannot shrink below the pages read.
    assert!(matches!(
        cache.set_len(4096),
        Err(PageCacheError::ShrinkWhileMapped {
            len: 4096,
            mapped_len: 16384
        })
    ));
}
