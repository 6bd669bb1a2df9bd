//! A writer sees its own buffered pages before flushing; the shared cache does not.

use std::sync::Arc;

use flush::MemBackend;
use pagecache::{CacheOptions, PageCache, PageCacheError};

#[test]
fn buffered_pages_are_visible_to_their_writer_only() {
    let cache = PageCache::new(Arc::new(MemBackend::new()), CacheOptions::default()).unwrap();
    let mut buffer = cache.write_buffer();
    buffer.put(4096, vec![1u8; 4096].into_boxed_slice()).unwrap();
    buffer.put_copy(0, &[2u8; 4096]).unwrap();
    buffer.put_copy(16384, &[3u8; 8192]).unwrap();

    assert_eq!(buffer.get(4096), Some(&[1u8; 4096][..]));
    assert_eq!(buffer.get(0), Some(&[2u8; 4096][..]));
    assert_eq!(buffer.get(16384).map(<[u8]>::len), Some(8192));
    assert_eq!(buffer.page(20480), Some(&[3u8; 4096][..]));
    assert_eq!(buffer.get(8192), None);
    assert_eq!(buffer.dirty_bytes(), 4096 * 4);

    // Changes in place and replacements are read back.
    buffer.get_mut(4096).unwrap()[..4].copy_from_slice(b"abcd");
    assert_eq!(&buffer.get(4096).unwrap()[..5], b"abcd\x01");
    buffer.put_copy(0, &[9u8; 4096]).unwrap();
    assert_eq!(buffer.get(0), Some(&[9u8; 4096][..]));
    assert_eq!(buffer.len(), 3);

    // Nothing reached the file or the shared read cache.
    assert!(matches!(
        cache.read_page(0),
        Err(PageCacheError::PastEnd { file_len: 0, .. })
    ));
    assert_eq!(cache.backend().stats().snapshot().bytes_written, 0);
}
