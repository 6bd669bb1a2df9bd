//! Bad input gets its typed error, never a panic.

use std::sync::Arc;

use flush::{Backend, FileBackend, MemBackend, NoFreeSpace, PerPage};
use pagecache::{CacheOptions, PageCache, PageCacheError, ReadPath};

fn mem(options: CacheOptions) -> Arc<PageCache> {
    PageCache::new(Arc::new(MemBackend::new()), options).unwrap()
}

#[test]
fn misaligned_offsets() {
    let cache = mem(CacheOptions::default());
    let mut buffer = cache.write_buffer();
    for offset in [1u64, 100, 4095, 4097, 6000] {
        assert!(matches!(
            cache.read_page(offset),
            Err(PageCacheError::Misaligned { offset: o, page_size: 4096 }) if o == offset
        ));
        assert!(matches!(
            buffer.put_copy(offset, &[0; 4096]),
            Err(PageCacheError::Misaligned { offset: o, page_size: 4096 }) if o == offset
        ));
    }
    assert!(buffer.is_empty());
}

#[test]
fn bad_lengths() {
    let cache = mem(CacheOptions::default().with_page_size(512));
    let mut buffer = cache.write_buffer();
    for len in [0usize, 1, 511, 513, 1000] {
        assert!(matches!(
            buffer.put(512, vec![0; len].into_boxed_slice()),
            Err(PageCacheError::BadPageLength { offset: 512, len: l, page_size: 512 }) if l == len as u64
        ));
    }
    assert!(matches!(
        buffer.put_copy(u64::MAX - 511, &[0; 512]),
        Err(PageCacheError::Flush(flush::FlushError::OffsetOverflow { .. }))
    ));
    assert!(buffer.is_empty());
    assert_eq!(buffer.dirty_bytes(), 0);
}

#[test]
fn bad_page_sizes() {
    for page_size in [0u32, 7, 256, 500, 4000, 4097, 1 << 17, u32::MAX] {
        let err = PageCache::new(
            Arc::new(MemBackend::new()),
            CacheOptions::default().with_page_size(page_size),
        )
        .unwrap_err();
        assert!(
            matches!(err, PageCacheError::InvalidPageSize { page_size: p } if p == page_size),
            "{err}"
        );
        assert!(err.to_string().contains(&page_size.to_string()));
    }
}

#[test]
fn past_end_reads() {
    let backend = Arc::new(MemBackend::from_bytes(vec![1; 4096 + 100]));
    let cache = PageCache::new(backend, CacheOptions::default()).unwrap();
    assert!(cache.read_page(0).is_ok());
    // A partial last page is past the end too.
    assert!(matches!(
        cache.read_page(4096),
        Err(PageCacheError::PastEnd {
            offset: 4096,
            len: 4096,
            file_len: 4196
        })
    ));
    assert!(matches!(
        cache.read_page(1 << 30),
        Err(PageCacheError::PastEnd { file_len: 4196, .. })
    ));
    // An error is not cached.
    assert_eq!(cache.stats().resident_pages, 1);

    let dir = tempfile::tempdir().unwrap();
    let file = Arc::new(FileBackend::open(dir.path().join("f")).unwrap());
    file.write_at(&[1; 4196], 0).unwrap();
    let mapped = PageCache::new(file, CacheOptions::default().with_read_path(ReadPath::Mmap)).unwrap();
    assert!(mapped.read_page(0).unwrap().is_mapped());
    assert!(matches!(
        mapped.read_page(4096),
        Err(PageCacheError::PastEnd {
            offset: 4096,
            len: 4096,
            file_len: 4196
        })
    ));
}

#[test]
fn mmap_needs_a_file() {
    let err = PageCache::new(
        Arc::new(MemBackend::new()),
        CacheOptions::default().with_read_path(ReadPath::Mmap),
    )
    .unwrap_err();
    assert!(matches!(err, PageCacheError::MmapUnsupported), "{err}");
}

#[test]
fn shrink_while_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(FileBackend::open(dir.path().join("f")).unwrap());
    let cache = PageCache::new(
        backend.clone(),
        CacheOptions::default()
            .with_page_size(512)
            .with_read_path(ReadPath::Mmap),
    )
    .unwrap();
    // Nothing mapped yet: any length is fine.
    cache.set_len(2048).unwrap();
    cache.set_len(1024).unwrap();
    let page = cache.read_page(512).unwrap();
    assert!(matches!(
        cache.set_len(512),
        Err(PageCacheError::ShrinkWhileMapped {
            len: 512,
            mapped_len: 1024
        })
    ));
    assert_eq!(backend.len().unwrap(), 1024);
    // Growing and shrinking back down to the mapping are fine.
    cache.set_len(4096).unwrap();
    cache.set_len(1024).unwrap();
    assert_eq!(&*page, &[0u8; 512][..]);
}

#[test]
fn overlapping_entries() {
    let cache = mem(CacheOptions::default());
    let mut buffer = cache.write_buffer();
    buffer.put_copy(8192, &[1; 8192]).unwrap();
    assert!(matches!(
        buffer.put_copy(12288, &[0; 4096]),
        Err(PageCacheError::OverlapsDirtyPage {
            offset: 12288,
            other: 8192
        })
    ));
    assert!(matches!(
        buffer.put_copy(4096, &[0; 8192]),
        Err(PageCacheError::OverlapsDirtyPage {
            offset: 4096,
            other: 8192
        })
    ));
    assert_eq!(buffer.len(), 1);
    buffer.flush(&PerPage, &NoFreeSpace).unwrap();
}
