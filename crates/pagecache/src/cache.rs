//! `PageCache`: the shared read side of one file: a sharded read cache bounded in bytes (or
//! the mmap read path instead), its options and counters, and the `PageRef` a read returns.
//!
//! # Coherence
//!
//! Cached pages are never updated in place: an entry is inserted whole, replaced whole or
//! removed. The store rewrites a page offset only when no reader can reach that offset's
//! previous content (MVCC: pages freed by a commit are reused only once no reader holds an
//! older snapshot). So a flush may overwrite (or drop) cached entries for the offsets it
//! writes without any reader noticing, and a reader filling the cache after a miss cannot
//! race with a writer on the same offset. Readers therefore never wait on writers; they only
//! take the shard lock of the page they look up.

use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flush::{Backend, DirtyPages, FlushError, Segment, WritePlan};
use quick_cache::sync::{Cache, EntryAction, EntryResult};
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, Weighter};

use crate::mmap::{MappedPage, MmapReader};
use crate::{PageCacheError, Result, WriteBuffer};

/// The smallest page size accepted.
pub const MIN_PAGE_SIZE: u32 = 512;
/// The largest page size accepted.
pub const MAX_PAGE_SIZE: u32 = 64 << 10;

/// Where [`PageCache::read_page`] gets committed pages from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ReadPath {
    /// `pread` into the shared read cache, which is bounded in bytes.
    #[default]
    Cache,
    /// A read-only memory map of the file (needs [`Backend::file`]); the read cache is not used.
    Mmap,
}

/// How a [`PageCache`] is set up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CacheOptions {
    /// Page size in bytes: a power of two in `512..=65536` (default 4096).
    pub page_size: u32,
    /// Most bytes the read cache holds (default 64 MiB). Shards are equal, so the usable total
    /// is this rounded down to a multiple of the shard count; a cache too small to hold a page
    /// caches nothing.
    pub cache_bytes: u64,
    /// Where committed pages are read from (default [`ReadPath::Cache`]).
    pub read_path: ReadPath,
    /// After a successful flush, move the flushed pages into the read cache (default `true`;
    /// only with [`ReadPath::Cache`]). When `false`, a flush drops cached entries for the
    /// offsets it wrote instead, except those of entries put with
    /// [`crate::WriteBuffer::put_cached`], which it caches.
    pub cache_on_flush: bool,
    /// Most bytes of flushed page buffers all write buffers together keep for their next
    /// commits to encode into, instead of returning them to the allocator (default 16 MiB;
    /// 0 keeps none). Pages moved into the read cache are not kept.
    pub spare_bytes: u64,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            page_size: 4096,
            cache_bytes: 64 << 20,
            read_path: ReadPath::Cache,
            cache_on_flush: true,
            spare_bytes: 16 << 20,
        }
    }
}

impl CacheOptions {
    /// Sets [`CacheOptions::page_size`].
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size;
        self
    }

    /// Sets [`CacheOptions::cache_bytes`].
    pub fn with_cache_bytes(mut self, cache_bytes: u64) -> Self {
        self.cache_bytes = cache_bytes;
        self
    }

    /// Sets [`CacheOptions::read_path`].
    pub fn with_read_path(mut self, read_path: ReadPath) -> Self {
        self.read_path = read_path;
        self
    }

    /// Sets [`CacheOptions::cache_on_flush`].
    pub fn with_cache_on_flush(mut self, cache_on_flush: bool) -> Self {
        self.cache_on_flush = cache_on_flush;
        self
    }

    /// Sets [`CacheOptions::spare_bytes`].
    pub fn with_spare_bytes(mut self, spare_bytes: u64) -> Self {
        self.spare_bytes = spare_bytes;
        self
    }

    /// Checks the page size ([`PageCacheError::InvalidPageSize`]).
    pub fn validate(&self) -> Result<()> {
        let page_size = self.page_size;
        if !page_size.is_power_of_two() || !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(PageCacheError::InvalidPageSize { page_size });
        }
        Ok(())
    }
}

/// Counters of a [`PageCache`]. Read cache counters are exact once the threads that read
/// have been joined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Reads answered from the read cache.
    pub hits: u64,
    /// Reads that went to the backend.
    pub misses: u64,
    /// Pages offered to the read cache (filled after misses, or moved in by flushes).
    pub inserted_pages: u64,
    /// Pages the read cache dropped to stay within its bound, or refused because a page does
    /// not fit in a shard. Explicit invalidations are not counted.
    pub evicted_pages: u64,
    /// Pages held by the read cache now.
    pub resident_pages: u64,
    /// Bytes of page data held by the read cache now (never above `capacity_bytes`).
    pub resident_bytes: u64,
    /// The read cache's real bound: `cache_bytes` rounded down to a multiple of the shard count.
    pub capacity_bytes: u64,
    /// Memory maps made by the mmap read path (the first one, and one each time the file
    /// outgrows the window mapped).
    pub maps: u64,
    /// Marks made so far on cached pages read from the file, after a reader checked them
    /// against their checksum ([`PageCache::mark_checked`]), so that later hits come back
    /// checked. A page evicted and read again is marked, and counted, again.
    pub checked_pages: u64,
}

/// A committed page: cheap to clone, derefs to the page's bytes.
///
/// On the cache path it shares the cached buffer (it stays valid after eviction); on the mmap
/// path it holds the mapping it was read from (it stays valid after a remap). A `PageRef` from
/// the mmap path must not outlive the reader's right to the page: the store rewrites a page
/// only when no reader can reach it, and a mapped page shows the file's current bytes.
///
/// [`PageRef::is_checked`] says whether its bytes are known good: written by this process,
/// or read from the file and checked by a reader since. Bytes just read from the file, mapped
/// bytes and bytes from anywhere else are not.
#[derive(Clone)]
pub struct PageRef {
    repr: Repr,
    checked: bool,
}

#[derive(Clone)]
enum Repr {
    Cached(Bytes),
    Mapped(MappedPage),
}

impl PageRef {
    /// Bytes this process made (a page it encoded and has not let go of): known good, so a
    /// reader need not check them against their checksum. Only this crate makes that claim.
    pub(crate) fn checked(bytes: Bytes) -> Self {
        PageRef {
            repr: Repr::Cached(bytes),
            checked: true,
        }
    }

    fn cached(page: CachedPage) -> Self {
        PageRef {
            repr: Repr::Cached(page.bytes),
            checked: page.checked,
        }
    }

    fn unchecked(repr: Repr) -> Self {
        PageRef { repr, checked: false }
    }

    /// True when the bytes come from the memory map rather than the read cache.
    pub fn is_mapped(&self) -> bool {
        matches!(self.repr, Repr::Mapped(_))
    }

    /// True when the bytes are known good: written by this process (a held page, or a page
    /// a flush moved into the read cache), or a cached page that a reader checked after
    /// reading it from the file ([`PageCache::mark_checked`]). Bytes read from the file since,
    /// mapped bytes, and `PageRef`s made `From` other bytes are not.
    pub fn is_checked(&self) -> bool {
        self.checked
    }

    /// The page's bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.repr {
            Repr::Cached(b) => b,
            Repr::Mapped(m) => m.as_slice(),
        }
    }

    /// The part of this page that `part` (a slice borrowed from [`PageRef::as_slice`]) is,
    /// sharing the page's memory: no copy. `None` if `part` does not lie inside the page.
    pub fn slice_ref(&self, part: &[u8]) -> Option<PageRef> {
        let whole = self.as_slice();
        let at = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
        let end = at.checked_add(part.len()).filter(|&end| end <= whole.len())?;
        let repr = match &self.repr {
            Repr::Cached(b) => Repr::Cached(b.slice(at..end)),
            Repr::Mapped(m) => Repr::Mapped(m.narrow(at, end - at)),
        };
        Some(PageRef {
            repr,
            checked: self.checked,
        })
    }
}

impl From<Bytes> for PageRef {
    /// A page held in owned memory (for in-memory page sources and tests), not known good.
    fn from(bytes: Bytes) -> Self {
        PageRef::unchecked(Repr::Cached(bytes))
    }
}

impl From<Vec<u8>> for PageRef {
    fn from(bytes: Vec<u8>) -> Self {
        PageRef::unchecked(Repr::Cached(Bytes::from(bytes)))
    }
}

impl Deref for PageRef {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for PageRef {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for PageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageRef")
            .field("len", &self.len())
            .field("mapped", &self.is_mapped())
            .field("checked", &self.checked)
            .finish()
    }
}

/// One page in the read cache.
#[derive(Clone)]
struct CachedPage {
    bytes: Bytes,
    /// Known good: moved in by a flush (this process wrote it), or checked by a reader since
    /// it was read from the file ([`PageCache::mark_checked`]).
    checked: bool,
}

impl CachedPage {
    fn written(bytes: Bytes) -> Self {
        CachedPage { bytes, checked: true }
    }

    fn read(bytes: Bytes) -> Self {
        CachedPage {
            bytes,
            checked: false,
        }
    }
}

/// Weighs a cached page by its length, so the cache's bound is in bytes.
#[derive(Debug, Clone, Copy, Default)]
struct ByteWeighter;

impl Weighter<u64, CachedPage> for ByteWeighter {
    fn weight(&self, _offset: &u64, page: &CachedPage) -> u64 {
        page.bytes.len() as u64
    }
}

/// Counts evictions (shared by all shards' copies of the lifecycle).
#[derive(Debug, Clone, Default)]
struct EvictionCounter(Arc<AtomicU64>);

impl Lifecycle<u64, CachedPage> for EvictionCounter {
    type RequestState = ();

    fn begin_request(&self) -> Self::RequestState {}

    fn on_evict(&self, _state: &mut (), _offset: u64, _page: CachedPage) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

type PageMap = Cache<u64, CachedPage, ByteWeighter, DefaultHashBuilder, EvictionCounter>;

/// Hit and miss counters are striped by page number, so readers of different pages do not
/// share one contended cache line.
const STRIPES: usize = 16;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe {
    hits: AtomicU64,
    misses: AtomicU64,
}

/// The shared read side of one file: a byte-bounded, sharded read cache (or the mmap read
/// path), shared by all readers and writers through an `Arc`. Writers get a [`WriteBuffer`]
/// each from [`PageCache::write_buffer`].
pub struct PageCache {
    backend: Arc<dyn Backend>,
    options: CacheOptions,
    page_shift: u32,
    pages: PageMap,
    evictions: Arc<AtomicU64>,
    stripes: [Stripe; STRIPES],
    inserted: AtomicU64,
    /// Pages [`PageCache::mark_checked`] marked known good.
    checked: AtomicU64,
    mmap: Option<MmapReader>,
    /// Bytes of spare page buffers held by write buffers now (at most `options.spare_bytes`).
    spare_held: AtomicU64,
}

impl fmt::Debug for PageCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageCache")
            .field("backend", &self.backend)
            .field("options", &self.options)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl PageCache {
    /// A page cache over `backend`. Checks the options ([`PageCacheError::InvalidPageSize`]);
    /// [`ReadPath::Mmap`] needs a backend with a file ([`PageCacheError::MmapUnsupported`]).
    pub fn new(backend: Arc<dyn Backend>, options: CacheOptions) -> Result<Arc<PageCache>> {
        options.validate()?;
        let mmap = match options.read_path {
            ReadPath::Cache => None,
            ReadPath::Mmap => Some(MmapReader::new(&*backend)?),
        };
        let evictions = Arc::new(AtomicU64::new(0));
        let pages = Self::build_map(&options, EvictionCounter(Arc::clone(&evictions)));
        Ok(Arc::new(PageCache {
            backend,
            page_shift: options.page_size.trailing_zeros(),
            options,
            pages,
            evictions,
            stripes: Default::default(),
            inserted: AtomicU64::new(0),
            checked: AtomicU64::new(0),
            mmap,
            spare_held: AtomicU64::new(0),
        }))
    }

    /// quick_cache splits the weight capacity evenly over its shards, rounding each share up,
    /// and may halve the shard count (never below 32 estimated items a shard). Giving it a
    /// power-of-two shard count and a capacity that is a multiple of it makes every share
    /// exact, so the sum of the shards' bounds (its real guarantee) is at most `cache_bytes`.
    fn build_map(options: &CacheOptions, lifecycle: EvictionCounter) -> PageMap {
        let shards = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .saturating_mul(4)
            .clamp(1, 1 << 12)
            .next_power_of_two();
        let capacity = options.cache_bytes - options.cache_bytes % shards as u64;
        let estimated_pages = usize::try_from(capacity / u64::from(options.page_size)).unwrap_or(usize::MAX);
        let map_options = OptionsBuilder::new()
            .shards(shards)
            .estimated_items_capacity(estimated_pages)
            .weight_capacity(capacity)
            .build()
            .expect("both required quick_cache options are set");
        Cache::with_options(
            map_options,
            ByteWeighter,
            DefaultHashBuilder::default(),
            lifecycle,
        )
    }

    /// The backend every read and flush goes to.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The page size in bytes.
    pub fn page_size(&self) -> u32 {
        self.options.page_size
    }

    /// The options the cache was built with.
    pub fn options(&self) -> &CacheOptions {
        &self.options
    }

    /// A new, empty write buffer for one writer, flushing to this cache's backend.
    pub fn write_buffer(self: &Arc<Self>) -> WriteBuffer {
        WriteBuffer::new(Arc::clone(self))
    }

    /// The committed page at `offset` (a multiple of the page size, else
    /// [`PageCacheError::Misaligned`]). A page not wholly inside the file is
    /// [`PageCacheError::PastEnd`].
    ///
    /// Cache path: a hit clones the cached buffer; a miss reads the page with one `read_at`
    /// and caches it (concurrent misses on one page share one read). Mmap path: a slice of the
    /// current mapping, remapping first if the file has grown past it.
    pub fn read_page(&self, offset: u64) -> Result<PageRef> {
        let len = u64::from(self.options.page_size);
        if let Some(mapped) = self.check_span(offset, len)? {
            return Ok(mapped);
        }
        let mut missed = false;
        let page = self.pages.get_or_insert_with(&offset, || {
            missed = true;
            self.load(offset, len).map(CachedPage::read)
        })?;
        let stripe = &self.stripes[(offset >> self.page_shift) as usize % STRIPES];
        if missed {
            stripe.misses.fetch_add(1, Ordering::Relaxed);
            self.inserted.fetch_add(1, Ordering::Relaxed);
        } else {
            stripe.hits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(PageRef::cached(page))
    }

    /// `pages` committed pages from `offset` as one buffer: a tree node that spans several
    /// pages. One page is [`PageCache::read_page`]. Cache path: when every page is cached,
    /// one copy of them into a new buffer; otherwise one `read_at` of the whole run, whose
    /// pages then enter the cache (each as a copy of its own, so the cache's byte bound
    /// stays exact). Mmap path: a slice of the mapping. Errors as for `read_page`.
    pub fn read_run(&self, offset: u64, pages: usize) -> Result<PageRef> {
        self.read_run_with(offset, pages, true)
    }

    /// [`PageCache::read_run`], caching the pages a miss reads only when `admit`.
    fn read_run_with(&self, offset: u64, pages: usize, admit: bool) -> Result<PageRef> {
        if pages <= 1 {
            return if admit {
                self.read_page(offset)
            } else {
                self.read_page_to_replace(offset)
            };
        }
        let page = u64::from(self.options.page_size);
        let len = page
            .checked_mul(pages as u64)
            .ok_or(FlushError::OffsetOverflow { offset, len: page })?;
        if let Some(mapped) = self.check_span(offset, len)? {
            return Ok(mapped);
        }
        let stripe = &self.stripes[(offset >> self.page_shift) as usize % STRIPES];
        let offsets = (0..pages as u64).map(|i| offset + i * page);
        let cached: Option<Vec<CachedPage>> = offsets.clone().map(|at| self.pages.get(&at)).collect();
        if let Some(parts) = cached {
            stripe.hits.fetch_add(pages as u64, Ordering::Relaxed);
            let mut all = Vec::with_capacity(len as usize);
            for part in &parts {
                all.extend_from_slice(&part.bytes);
            }
            return Ok(PageRef {
                repr: Repr::Cached(Bytes::from(all)),
                checked: parts.iter().all(|part| part.checked),
            });
        }
        let all = self.load(offset, len)?;
        stripe.misses.fetch_add(pages as u64, Ordering::Relaxed);
        if admit {
            for (i, at) in offsets.enumerate() {
                let start = i * page as usize;
                let copy = Bytes::copy_from_slice(&all[start..start + page as usize]);
                self.pages.insert(at, CachedPage::read(copy));
            }
            self.inserted.fetch_add(pages as u64, Ordering::Relaxed);
        }
        Ok(PageRef::unchecked(Repr::Cached(all)))
    }

    /// [`PageCache::read_page`] of a page its reader is about to copy and replace
    /// (copy-on-write), whose old bytes no later reader is likely to ask for: a hit clones the
    /// cached buffer, but a miss reads the page without caching it, so that it neither takes
    /// the cache's room from pages that will be read again nor costs a buffer the cache
    /// keeps. Errors as for `read_page`.
    pub fn read_page_to_replace(&self, offset: u64) -> Result<PageRef> {
        let len = u64::from(self.options.page_size);
        if let Some(mapped) = self.check_span(offset, len)? {
            return Ok(mapped);
        }
        let stripe = &self.stripes[(offset >> self.page_shift) as usize % STRIPES];
        if let Some(page) = self.pages.get(&offset) {
            stripe.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(PageRef::cached(page));
        }
        stripe.misses.fetch_add(1, Ordering::Relaxed);
        Ok(PageRef::unchecked(Repr::Cached(self.load(offset, len)?)))
    }

    /// [`PageCache::read_run`] of a node its reader is about to copy and replace: as
    /// [`PageCache::read_page_to_replace`], a miss reads the run without caching its pages.
    pub fn read_run_to_replace(&self, offset: u64, pages: usize) -> Result<PageRef> {
        self.read_run_with(offset, pages, false)
    }

    /// Checks a read of `len` bytes at `offset` (aligned, no overflow); on the mmap path
    /// returns the mapped bytes, remapping first if the file has grown past the mapping.
    fn check_span(&self, offset: u64, len: u64) -> Result<Option<PageRef>> {
        self.check_aligned(offset)?;
        let end = offset
            .checked_add(len)
            .ok_or(FlushError::OffsetOverflow { offset, len })?;
        let Some(mmap) = &self.mmap else {
            return Ok(None);
        };
        Ok(Some(PageRef::unchecked(Repr::Mapped(mmap.read(
            &*self.backend,
            offset,
            len,
            end,
        )?))))
    }

    fn load(&self, offset: u64, len: u64) -> Result<Bytes> {
        let mut buf = vec![0u8; len as usize].into_boxed_slice();
        match self.backend.read_at(&mut buf, offset) {
            Ok(()) => Ok(Bytes::from(buf)),
            Err(FlushError::UnexpectedEof { file_len, .. }) => Err(PageCacheError::PastEnd {
                offset,
                len,
                file_len,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Records that a reader checked `run`, the bytes a read returned for the pages from
    /// `offset` (one page or a node's run), against their checksum: each of those pages
    /// that the read cache holds with the same bytes is then known good, and later reads of
    /// it come back [`PageRef::is_checked`]. Pages not cached, cached with other bytes, or
    /// already known good are left as they are, and so is an unaligned `offset`. A reader
    /// calls it only after the check passed: a page that failed stays unchecked, so every
    /// later read of it is checked (and fails) again.
    ///
    /// The comparison and the mark are one step under the page's shard lock, so the mark
    /// always goes with the bytes that were compared, whatever other threads do to the
    /// entry. The mark counts as one more use of the page for the cache's eviction order.
    pub fn mark_checked(&self, offset: u64, run: &PageRef) {
        if !self.uses_read_cache() || run.is_checked() || self.check_aligned(offset).is_err() {
            return;
        }
        let page = self.options.page_size as usize;
        let mut at = offset;
        for part in run.chunks_exact(page) {
            // A look under the shard's read lock first: most pages a write transaction
            // checks were read to be replaced and never entered the cache.
            if self.pages.peek(&at).is_some_and(|cached| !cached.checked) {
                // Compared and marked in place under the shard's write lock. A page another
                // reader is loading right now (`Duration::ZERO`: no waiting for it) or that
                // left the cache meanwhile (dropping the guard leaves it out) stays unmarked.
                let marked = self.pages.entry(&at, Some(Duration::ZERO), |_, cached| {
                    let same = !cached.checked && cached.bytes[..] == *part;
                    cached.checked |= same;
                    EntryAction::Retain(same)
                });
                if matches!(marked, EntryResult::Retained(true)) {
                    self.checked.fetch_add(1, Ordering::Relaxed);
                }
            }
            match at.checked_add(page as u64) {
                Some(next) => at = next,
                None => break,
            }
        }
    }

    /// Drops the cached page at `offset`, if any (the next read goes to the file).
    pub fn invalidate(&self, offset: u64) {
        self.pages.remove(&offset);
    }

    /// Sets the file's length through the backend. On the mmap read path the file may not
    /// shrink below the length pages were read from ([`PageCacheError::ShrinkWhileMapped`]).
    /// Cached pages not wholly inside the new length are dropped.
    pub fn set_len(&self, len: u64) -> Result<()> {
        // Held across the check and the truncation, so no read can check against a longer
        // length in between.
        let _no_remap = self.mmap.as_ref().map(|m| m.lock());
        if let Some(mmap) = &self.mmap {
            let mapped_len = mmap.exposed_len();
            if len < mapped_len {
                return Err(PageCacheError::ShrinkWhileMapped { len, mapped_len });
            }
        }
        let old_len = self.backend.len()?;
        self.backend.set_len(len)?;
        if len < old_len && self.mmap.is_none() {
            let page = u64::from(self.options.page_size);
            self.pages
                .retain(|&offset, _| offset.checked_add(page).is_some_and(|end| end <= len));
        }
        Ok(())
    }

    /// The counters now. `resident_*` walk the shards (one read lock each).
    pub fn stats(&self) -> CacheStats {
        let (mut hits, mut misses) = (0, 0);
        for s in &self.stripes {
            hits += s.hits.load(Ordering::Relaxed);
            misses += s.misses.load(Ordering::Relaxed);
        }
        CacheStats {
            hits,
            misses,
            inserted_pages: self.inserted.load(Ordering::Relaxed),
            evicted_pages: self.evictions.load(Ordering::Relaxed),
            resident_pages: self.pages.len() as u64,
            resident_bytes: self.pages.weight(),
            capacity_bytes: self.pages.capacity(),
            checked_pages: self.checked.load(Ordering::Relaxed),
            maps: self.mmap.as_ref().map_or(0, MmapReader::remaps),
        }
    }

    /// [`PageCacheError::Misaligned`] unless `offset` is a multiple of the page size.
    pub(crate) fn check_aligned(&self, offset: u64) -> Result<()> {
        if offset & (u64::from(self.options.page_size) - 1) != 0 {
            return Err(PageCacheError::Misaligned {
                offset,
                page_size: self.options.page_size,
            });
        }
        Ok(())
    }

    /// Checks an entry of `len` bytes at `offset` (aligned, a non-zero multiple of the page
    /// size, inside the address space) and returns its end.
    pub(crate) fn check_entry(&self, offset: u64, len: u64) -> Result<u64> {
        self.check_aligned(offset)?;
        let page_size = self.options.page_size;
        if len == 0 || len & (u64::from(page_size) - 1) != 0 {
            return Err(PageCacheError::BadPageLength {
                offset,
                len,
                page_size,
            });
        }
        Ok(offset
            .checked_add(len)
            .ok_or(FlushError::OffsetOverflow { offset, len })?)
    }

    /// True when the read cache is in use (the cache read path).
    fn uses_read_cache(&self) -> bool {
        self.mmap.is_none()
    }

    /// Drops every cached page overlapping `[start, end)`.
    pub(crate) fn invalidate_range(&self, start: u64, end: u64) {
        if !self.uses_read_cache() {
            return;
        }
        let page = u64::from(self.options.page_size);
        let mut offset = start & !(page - 1);
        while offset < end {
            // Most offsets a flush writes are not cached (the cache is read-through by
            // default): look under the shard's read lock, write-lock only to remove.
            if self.pages.contains_key(&offset) {
                self.pages.remove(&offset);
            }
            match offset.checked_add(page) {
                Some(next) => offset = next,
                None => break,
            }
        }
    }

    /// Drops cached pages in the free gaps a plan fills with zeros, so the cache never holds
    /// bytes the file no longer has (the gaps are free, so no reader could reach them anyway).
    pub(crate) fn invalidate_gaps(&self, plan: &WritePlan, pages: &DirtyPages<'_>) {
        if !self.uses_read_cache() || plan.gap_bytes() == 0 {
            return;
        }
        for run in plan.runs() {
            let mut at = run.offset;
            for segment in run.segments {
                match *segment {
                    Segment::Page(i) => at += pages.get(i).map_or(0, |p| p.data.len() as u64),
                    Segment::Gap(n) => {
                        self.invalidate_range(at, at.saturating_add(n));
                        at = at.saturating_add(n);
                    }
                }
            }
        }
    }

    /// Takes a flushed entry into the read cache when flushes feed it, or when `wanted` (an
    /// entry put with [`crate::WriteBuffer::put_cached`]); otherwise drops its stale cached
    /// pages and hands the buffer back for reuse.
    pub(crate) fn admit_flushed(&self, offset: u64, data: Box<[u8]>, wanted: bool) -> Option<Box<[u8]>> {
        if !self.uses_read_cache() {
            return Some(data);
        }
        if !self.options.cache_on_flush && !wanted {
            self.invalidate_range(offset, offset + data.len() as u64);
            return Some(data);
        }
        let page = self.options.page_size as usize;
        let all = Bytes::from(data);
        let count = all.len() / page;
        if count == 1 {
            self.pages.insert(offset, CachedPage::written(all));
        } else {
            for i in 0..count {
                let part = all.slice(i * page..(i + 1) * page);
                self.pages
                    .insert(offset + (i * page) as u64, CachedPage::written(part));
            }
        }
        self.inserted.fetch_add(count as u64, Ordering::Relaxed);
        None
    }

    /// Brings the read cache up to date for an entry just written from shared bytes (a held
    /// entry): caches its pages when flushes feed the cache, else drops their stale copies.
    pub(crate) fn admit_written(&self, offset: u64, data: &Bytes) {
        if !self.uses_read_cache() {
            return;
        }
        if !self.options.cache_on_flush {
            self.invalidate_range(offset, offset + data.len() as u64);
            return;
        }
        let page = self.options.page_size as usize;
        let count = data.len() / page;
        for i in 0..count {
            let part = data.slice(i * page..(i + 1) * page);
            self.pages
                .insert(offset + (i * page) as u64, CachedPage::written(part));
        }
        self.inserted.fetch_add(count as u64, Ordering::Relaxed);
    }

    /// Takes up to `bytes` of the spare-buffer budget ([`CacheOptions::spare_bytes`]);
    /// returns how much it took.
    pub(crate) fn reserve_spare(&self, bytes: u64) -> u64 {
        let limit = self.options.spare_bytes;
        match self
            .spare_held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                (held < limit).then(|| held + bytes.min(limit - held))
            }) {
            Ok(before) => bytes.min(limit - before),
            Err(_) => 0,
        }
    }

    /// Gives back `bytes` of the spare-buffer budget.
    pub(crate) fn release_spare(&self, bytes: u64) {
        self.spare_held.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Bytes of spare-buffer budget write buffers hold now (their spare page buffers, and the
    /// recycled buffers of the commits they are building).
    pub fn spare_bytes_held(&self) -> u64 {
        self.spare_held.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flush::MemBackend;

    fn mem_cache(options: CacheOptions) -> Arc<PageCache> {
        PageCache::new(Arc::new(MemBackend::new()), options).unwrap()
    }

    #[test]
    fn defaults_match_the_design() {
        let o = CacheOptions::default();
        assert_eq!(o.page_size, 4096);
        assert_eq!(o.cache_bytes, 64 << 20);
        assert_eq!(o.read_path, ReadPath::Cache);
        assert!(o.cache_on_flush);
        let c = mem_cache(o);
        let s = c.stats();
        assert!(s.capacity_bytes <= 64 << 20 && s.capacity_bytes >= (64 << 20) - 4096 * 64);
    }

    #[test]
    fn page_sizes_are_powers_of_two_in_range() {
        for ok in [512u32, 1024, 4096, 65536] {
            assert!(CacheOptions::default().with_page_size(ok).validate().is_ok());
        }
        for bad in [0u32, 1, 256, 511, 513, 3000, 4095, 131072, u32::MAX] {
            assert!(matches!(
                CacheOptions::default().with_page_size(bad).validate(),
                Err(PageCacheError::InvalidPageSize { page_size }) if page_size == bad
            ));
        }
    }

    #[test]
    fn capacity_never_exceeds_cache_bytes() {
        for bytes in [0u64, 1, 4095, 4096, 65536 + 7, (1 << 20) + 1000, 64 << 20] {
            let c = mem_cache(CacheOptions::default().with_cache_bytes(bytes));
            assert!(c.stats().capacity_bytes <= bytes, "{bytes}");
        }
    }

    #[test]
    fn hits_misses_and_invalidation() {
        let backend = Arc::new(MemBackend::from_bytes(vec![3u8; 2048]));
        let c = PageCache::new(backend, CacheOptions::default().with_page_size(512)).unwrap();
        assert_eq!(&*c.read_page(512).unwrap(), &[3u8; 512][..]);
        assert_eq!(&*c.read_page(512).unwrap(), &[3u8; 512][..]);
        let s = c.stats();
        assert_eq!(
            (s.hits, s.misses, s.inserted_pages, s.resident_pages),
            (1, 1, 1, 1)
        );
        assert_eq!(s.resident_bytes, 512);
        c.invalidate(512);
        assert_eq!(c.stats().resident_pages, 0);
        assert!(!c.read_page(512).unwrap().is_mapped());
        assert_eq!(c.stats().misses, 2);
    }

    #[test]
    fn offsets_near_the_top_of_the_address_space_are_errors() {
        let c = mem_cache(CacheOptions::default());
        let top = u64::MAX - 4095;
        assert!(matches!(
            c.read_page(top),
            Err(PageCacheError::Flush(FlushError::OffsetOverflow { .. }))
        ));
        assert!(matches!(
            c.check_entry(top, 4096),
            Err(PageCacheError::Flush(FlushError::OffsetOverflow { .. }))
        ));
    }

    #[test]
    fn shrinking_drops_cached_pages_past_the_end() {
        let backend = Arc::new(MemBackend::from_bytes(vec![1u8; 4096 * 4]));
        let c = PageCache::new(backend, CacheOptions::default()).unwrap();
        for p in 0..4 {
            c.read_page(p * 4096).unwrap();
        }
        c.set_len(4096 * 2 + 10).unwrap();
        assert_eq!(c.stats().resident_pages, 2);
        assert!(matches!(
            c.read_page(8192),
            Err(PageCacheError::PastEnd {
                offset: 8192,
                file_len: 8202,
                ..
            })
        ));
    }

    #[test]
    fn shared_types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<PageCache>();
        check::<PageRef>();
        check::<crate::WriteBuffer>();
    }
}
