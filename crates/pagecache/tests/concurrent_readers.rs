//! Readers on four threads see exactly the committed pages while a writer flushes others.

use std::sync::{Arc, Barrier};

use flush::{FileBackend, FlushConfig, MemBackend, NoFreeSpace};
use pagecache::{CacheOptions, PageCache, ReadPath};

const PAGE: u64 = 4096;
const COMMITTED: u64 = 64;
const READERS: u64 = 4;
const READS: u64 = 4000;
const FLUSHES: u64 = 60;

fn fill(page: u64, version: u64) -> Vec<u8> {
    let seed = page.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ version.wrapping_mul(0xD1B5_4A32_D192_ED03);
    (0..PAGE)
        .map(|i| (seed.rotate_left((i % 64) as u32) >> 56) as u8 ^ i as u8)
        .collect()
}

fn run(cache: Arc<PageCache>) {
    let mut setup = cache.write_buffer();
    for p in 0..COMMITTED {
        setup.put(p * PAGE, fill(p, 1).into_boxed_slice()).unwrap();
    }
    setup
        .flush(&*FlushConfig::default().build(), &NoFreeSpace)
        .unwrap();
    let expected: Arc<Vec<Vec<u8>>> = Arc::new((0..COMMITTED).map(|p| fill(p, 1)).collect());
    let start = Barrier::new(READERS as usize + 1);

    std::thread::scope(|s| {
        for t in 0..READERS {
            let (cache, expected, start) = (&cache, &expected, &start);
            s.spawn(move || {
                start.wait();
                let mut held = Vec::new();
                for i in 0..READS {
                    let p = (i * 7919 + t * 13) % COMMITTED;
                    let page = cache.read_page(p * PAGE).unwrap();
                    assert_eq!(&page[..], &expected[p as usize][..], "reader {t} page {p}");
                    if i % 500 == 0 {
                        held.push((p, page));
                    }
                }
                // Pages held across the writer's flushes (and remaps) are unchanged.
                for (p, page) in held {
                    assert_eq!(&page[..], &expected[p as usize][..]);
                }
            });
        }
        let (cache, start) = (&cache, &start);
        s.spawn(move || {
            let policies = FlushConfig::all_defaults();
            let mut buffer = cache.write_buffer();
            start.wait();
            for k in 0..FLUSHES {
                // Rewrite the writer's own pages and grow the file by four more; none of them
                // is reachable by the readers.
                for p in COMMITTED..COMMITTED + 4 {
                    buffer.put(p * PAGE, fill(p, k + 2).into_boxed_slice()).unwrap();
                }
                for p in 0..4 {
                    let page = COMMITTED + 4 + k * 4 + p;
                    buffer.put_copy(page * PAGE, &fill(page, 1)).unwrap();
                }
                let policy = policies[(k % policies.len() as u64) as usize].build();
                buffer.flush(&*policy, &NoFreeSpace).unwrap();
            }
        });
    });

    // The writer's pages read back too.
    for p in COMMITTED..COMMITTED + 4 {
        assert_eq!(&cache.read_page(p * PAGE).unwrap()[..], &fill(p, FLUSHES + 1)[..]);
    }
    let last = COMMITTED + 4 + FLUSHES * 4 - 1;
    assert_eq!(&cache.read_page(last * PAGE).unwrap()[..], &fill(last, 1)[..]);
}

#[test]
fn readers_see_committed_pages_through_a_small_cache() {
    let options = CacheOptions::default().with_cache_bytes(32 * PAGE);
    run(PageCache::new(Arc::new(MemBackend::new()), options.clone()).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let file = Arc::new(FileBackend::open(dir.path().join("store")).unwrap());
    run(PageCache::new(file, options).unwrap());
}

#[test]
fn readers_see_committed_pages_through_mmap() {
    let dir = tempfile::tempdir().unwrap();
    let file = Arc::new(FileBackend::open(dir.path().join("store")).unwrap());
    let cache = PageCache::new(file, CacheOptions::default().with_read_path(ReadPath::Mmap)).unwrap();
    run(cache);
}
