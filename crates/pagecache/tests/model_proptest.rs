//! Random sequences of buffer operations and flushes, checked against a model of the file.

use std::collections::BTreeMap;
use std::sync::Arc;

use flush::{Backend, FileBackend, FlushConfig, FreeRanges, MemBackend};
use indexmap::IndexMap;
use pagecache::{CacheOptions, PageCache, PageCacheError, ReadPath};
use proptest::prelude::*;

const PAGE: u64 = 512;
const UNIVERSE: u64 = 24;

#[derive(Debug, Clone)]
enum Op {
    Put {
        page: u64,
        pages: u64,
        fill: u8,
        copy: bool,
    },
    Remove {
        page: u64,
    },
    Read {
        page: u64,
    },
    Flush {
        policy: usize,
        free_mask: u32,
    },
    Clear,
}

#[derive(Debug, Clone, Copy)]
enum Setup {
    MemCache,
    MemNoCacheOnFlush,
    FileCache,
    FileMmap,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..UNIVERSE, 1..=3u64, any::<u8>(), any::<bool>())
            .prop_map(|(page, pages, fill, copy)| Op::Put { page, pages, fill, copy }),
        2 => (0..UNIVERSE).prop_map(|page| Op::Remove { page }),
        2 => (0..UNIVERSE + 4).prop_map(|page| Op::Read { page }),
        3 => (0..5usize, any::<u32>(), any::<u32>())
            .prop_map(|(policy, a, b)| Op::Flush { policy, free_mask: a | b }),
        1 => Just(Op::Clear),
    ]
}

fn setup() -> impl Strategy<Value = Setup> {
    prop_oneof![
        Just(Setup::MemCache),
        Just(Setup::MemNoCacheOnFlush),
        Just(Setup::FileCache),
        Just(Setup::FileMmap),
    ]
}

fn data(fill: u8, len: u64) -> Vec<u8> {
    (0..len)
        .map(|i| fill.wrapping_add((i / PAGE) as u8 * 37) ^ (i % 251) as u8)
        .collect()
}

/// The file as the model knows it: written pages (others inside `len` are zeros).
#[derive(Debug, Default)]
struct FileModel {
    pages: BTreeMap<u64, Vec<u8>>,
    len: u64,
}

impl FileModel {
    fn page(&self, offset: u64) -> Option<Vec<u8>> {
        if offset + PAGE > self.len {
            return None;
        }
        Some(
            self.pages
                .get(&offset)
                .cloned()
                .unwrap_or_else(|| vec![0; PAGE as usize]),
        )
    }
}

fn check_read(cache: &PageCache, file: &FileModel, offset: u64) -> Result<(), TestCaseError> {
    match (cache.read_page(offset), file.page(offset)) {
        (Ok(got), Some(want)) => prop_assert_eq!(&got[..], &want[..], "page at {}", offset),
        (Err(PageCacheError::PastEnd { file_len, .. }), None) => prop_assert_eq!(file_len, file.len),
        (got, want) => prop_assert!(
            false,
            "page at {}: got {:?}, model {:?}",
            offset,
            got,
            want.is_some()
        ),
    }
    Ok(())
}

fn run(setup: Setup, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let options = CacheOptions::default()
        .with_page_size(PAGE as u32)
        .with_cache_bytes(6 * PAGE);
    let (backend, options): (Arc<dyn Backend>, _) = match setup {
        Setup::MemCache => (Arc::new(MemBackend::new()), options),
        Setup::MemNoCacheOnFlush => (Arc::new(MemBackend::new()), options.with_cache_on_flush(false)),
        Setup::FileCache => (
            Arc::new(FileBackend::open(dir.path().join("f")).unwrap()),
            options,
        ),
        Setup::FileMmap => (
            Arc::new(FileBackend::open(dir.path().join("f")).unwrap()),
            options.with_read_path(ReadPath::Mmap),
        ),
    };
    let cache = PageCache::new(backend, options).unwrap();
    let mut buffer = cache.write_buffer();
    let mut model_buffer: IndexMap<u64, Vec<u8>> = IndexMap::new();
    let mut file = FileModel::default();
    let policies = FlushConfig::all_defaults();

    for op in ops {
        match op {
            Op::Put {
                page,
                pages,
                fill,
                copy,
            } => {
                let (offset, len) = (page * PAGE, pages * PAGE);
                let bytes = data(fill, len);
                let overlap = model_buffer
                    .iter()
                    .filter(|(&o, _)| o != offset)
                    .find(|(&o, d)| o < offset + len && offset < o + d.len() as u64)
                    .map(|(&o, _)| o);
                let result = if copy {
                    buffer.put_copy(offset, &bytes)
                } else {
                    buffer.put(offset, bytes.clone().into_boxed_slice())
                };
                match (result, overlap) {
                    (Ok(()), None) => {
                        model_buffer.insert(offset, bytes);
                    }
                    (Err(PageCacheError::OverlapsDirtyPage { offset: o, .. }), Some(_)) => {
                        prop_assert_eq!(o, offset)
                    }
                    (got, want) => {
                        prop_assert!(false, "put at {}: {:?}, model overlap {:?}", offset, got, want)
                    }
                }
            }
            Op::Remove { page } => {
                let got = buffer.remove(page * PAGE);
                let want = model_buffer.shift_remove(&(page * PAGE));
                prop_assert_eq!(got.as_deref(), want.as_deref());
            }
            Op::Read { page } => check_read(&cache, &file, page * PAGE)?,
            Op::Clear => {
                buffer.clear();
                model_buffer.clear();
            }
            Op::Flush { policy, free_mask } => {
                // Free: chosen pages never written to the file and not in the buffer.
                let mut free = FreeRanges::new();
                for p in 0..UNIVERSE + 4 {
                    let offset = p * PAGE;
                    let in_buffer = model_buffer
                        .iter()
                        .any(|(&o, d)| o <= offset && offset < o + d.len() as u64);
                    if free_mask & (1 << (p % 32)) != 0 && !file.pages.contains_key(&offset) && !in_buffer {
                        free.insert(offset, offset + PAGE);
                    }
                }
                let config = policies[policy];
                let report = buffer.flush(&*config.build(), &free);
                prop_assert!(report.is_ok(), "{}: {:?}", config, report);
                let report = report.unwrap();
                prop_assert_eq!(
                    report.page_bytes,
                    model_buffer.values().map(|d| d.len() as u64).sum::<u64>()
                );
                prop_assert!(buffer.is_empty());
                for (offset, bytes) in model_buffer.drain(..) {
                    for (i, chunk) in bytes.chunks(PAGE as usize).enumerate() {
                        file.pages.insert(offset + i as u64 * PAGE, chunk.to_vec());
                    }
                    file.len = file.len.max(offset + bytes.len() as u64);
                }
                prop_assert_eq!(cache.backend().len().unwrap(), file.len);
                // Every page of the file, written or not, and the first one past its end.
                for offset in (0..=file.len).step_by(PAGE as usize) {
                    check_read(&cache, &file, offset)?;
                }
                prop_assert!(cache.stats().resident_bytes <= 6 * PAGE);
            }
        }
        // The buffer matches the model, in order.
        let got: Vec<(u64, &[u8])> = buffer.iter().collect();
        let want: Vec<(u64, &[u8])> = model_buffer.iter().map(|(&o, d)| (o, &d[..])).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(
            buffer.dirty_bytes(),
            model_buffer.values().map(|d| d.len() as u64).sum::<u64>()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn buffer_and_flushes_match_a_model_of_the_file(setup in setup(), ops in prop::collection::vec(op(), 1..60)) {
        run(setup, ops)?;
    }
}
