//! `WriteBuffer`: one writer's dirty pages, kept in insertion order and flushed through a
//! `FlushPolicy`; on success the pages move into the shared read cache without copying.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use flush::{DirtyPage, DirtyPages, FlushPolicy, FlushReport, GapOracle, PlanExecutor};
use indexmap::IndexMap;
use rustc_hash::{FxBuildHasher, FxHashSet};

use bytes::Bytes;

use crate::{HeldPages, PageCache, PageCacheError, Result};

/// The longest entry, in pages, whose buffer a flush keeps for reuse
/// ([`WriteBuffer::run_buffer`]): cf-store's longest node (a leaf of sixteen pages). Longer
/// entries (large values, which are never encoded into a recycled buffer) are freed, so
/// that spares of lengths nobody asks for do not hold the budget.
pub const SPARE_MAX_PAGES: usize = 16;

/// The dirty pages of one writer (one column-family transaction). Only its owner touches
/// it, so it needs no locking; it is not `Clone`, and two writers never share one, so one
/// writer's flush never writes another's bytes.
///
/// An entry is one page or several contiguous pages (a large value) at a page-aligned
/// offset; entries never overlap. Entries keep insertion order (a replaced entry keeps its
/// place), so an order-sensitive policy such as `per-page` sees the order the writer made.
///
/// # Coherence with the read cache
///
/// The store rewrites a page offset only when no reader can reach its previous content
/// (MVCC), so [`WriteBuffer::flush`] may overwrite the read cache's entries for the offsets
/// it writes: after a successful flush the cache holds the new bytes (or nothing), and after a
/// failed one it holds nothing for any offset of the buffer (the file may hold old bytes, new
/// bytes, or a mix).
pub struct WriteBuffer {
    cache: Arc<PageCache>,
    /// offset -> bytes, in insertion order.
    pages: IndexMap<u64, Box<[u8]>, FxBuildHasher>,
    /// offset -> end of each entry, by offset: the overlap check in `O(log n)`.
    ends: BTreeMap<u64, u64>,
    dirty_bytes: u64,
    executor: PlanExecutor,
    /// Buffers of one to [`SPARE_MAX_PAGES`] pages from earlier flushes, for
    /// [`WriteBuffer::run_buffer`].
    spare: Vec<Box<[u8]>>,
    /// Bytes of the cache's spare budget ([`crate::CacheOptions::spare_bytes`]) this buffer
    /// holds. Between flushes it covers `spare` and the recycled buffers now among its
    /// pages; each flush and [`WriteBuffer::clear`] trim it to what `spare` holds, so
    /// writers touch the shared counter once or twice a flush, not per page, and a buffer
    /// keeps no more budget than its last flush left it spares.
    spare_budget: u64,
    /// Offsets of entries put with [`WriteBuffer::put_cached`] since the last successful
    /// flush of this buffer's own entries, hold or clear (a failed flush and
    /// [`WriteBuffer::flush_oldest`] keep them): their pages enter the read cache when
    /// flushed.
    cached: FxHashSet<u64>,
    /// Entries of earlier commits held in memory, unwritten ([`WriteBuffer::hold`]).
    held: Arc<HeldPages>,
    /// Offsets of held entries, oldest first, for [`WriteBuffer::flush_oldest`]. Entries
    /// released or written since stay until they reach the front (or the queue is
    /// compacted) and are passed over then.
    held_order: VecDeque<u64>,
}

impl fmt::Debug for WriteBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBuffer")
            .field("entries", &self.pages.len())
            .field("dirty_bytes", &self.dirty_bytes)
            .field("held_bytes", &self.held.bytes())
            .field("page_size", &self.cache.page_size())
            .finish_non_exhaustive()
    }
}

impl Drop for WriteBuffer {
    fn drop(&mut self) {
        self.cache.release_spare(self.spare_budget);
    }
}

impl WriteBuffer {
    pub(crate) fn new(cache: Arc<PageCache>) -> Self {
        Self {
            cache,
            pages: IndexMap::default(),
            ends: BTreeMap::new(),
            dirty_bytes: 0,
            executor: PlanExecutor::new(),
            spare: Vec::new(),
            spare_budget: 0,
            cached: FxHashSet::default(),
            held: Arc::new(HeldPages::default()),
            held_order: VecDeque::new(),
        }
    }

    /// The entries this buffer holds for readers to find ([`WriteBuffer::hold`]); readers of
    /// the owner's pages look there before the read cache.
    pub fn held(&self) -> &Arc<HeldPages> {
        &self.held
    }

    /// Bytes of entries held unwritten.
    pub fn held_bytes(&self) -> u64 {
        self.held.bytes()
    }

    /// Moves every entry into the held pages instead of writing it: for a commit whose pages
    /// need not reach the file yet. Readers find them in [`WriteBuffer::held`]; the next
    /// [`WriteBuffer::flush`] writes them with its own entries, and
    /// [`WriteBuffer::release_held`] drops one unwritten. The owner must make the held entries
    /// visible to readers only after this returns.
    pub fn hold(&mut self) {
        self.ends.clear();
        self.dirty_bytes = 0;
        // Readers find held entries in the held pages, and a held entry's bytes are in
        // reach until it is written or released, so none needs the read cache.
        self.cached.clear();
        self.held_order.extend(self.pages.keys().copied());
        self.held
            .insert(self.pages.drain(..).map(|(o, d)| (o, Bytes::from(d))));
        if self.held_order.len() > 2 * self.held.len() + 64 {
            self.compact_held_order();
        }
    }

    /// Keeps in the queue only the offsets held now, each at its newest place (an offset
    /// freed and held again is queued again, and its age is that of its newest hold).
    fn compact_held_order(&mut self) {
        let live = self.held.offsets();
        let mut seen = FxHashSet::with_capacity_and_hasher(live.len(), FxBuildHasher);
        let mut kept = VecDeque::with_capacity(live.len());
        for &offset in self.held_order.iter().rev() {
            if live.contains(&offset) && seen.insert(offset) {
                kept.push_front(offset);
            }
        }
        self.held_order = kept;
    }

    /// Drops the held entries that start in any of the byte ranges `[start, end)` without
    /// writing them (their pages were freed and no reader can reach them); their buffers are
    /// kept for reuse when no reader still holds them. Returns the bytes dropped.
    pub fn release_held(&mut self, ranges: &[(u64, u64)]) -> u64 {
        let gone = self.held.remove_ranges(ranges);
        if gone.is_empty() {
            return 0;
        }
        let bytes = gone.iter().map(|(_, d)| d.len() as u64).sum();
        let most = SPARE_MAX_PAGES * self.cache.page_size() as usize;
        let returned: Vec<Box<[u8]>> = gone
            .into_iter()
            .filter_map(|(_, data)| unique_buffer(data))
            .filter(|buf| buf.len() <= most)
            .collect();
        self.keep_spares(returned);
        bytes
    }

    /// Takes the spare buffers of `pages` pages out, for a writer that encodes pages before
    /// it puts them here (cf-store's leaf images, filled during a transaction). The budget
    /// they held stays with this buffer until the next flush or [`WriteBuffer::clear`] trims
    /// it; [`WriteBuffer::give_spares`] takes back those not used.
    pub fn take_spares(&mut self, pages: usize) -> Vec<Box<[u8]>> {
        let len = pages.saturating_mul(self.cache.page_size() as usize);
        // In place: a partition into two new vectors allocated both at every transaction.
        self.spare.extract_if(.., |b| b.len() == len).collect()
    }

    /// Keeps `bufs` as spares, as the budget allows (the rest are freed): buffers taken with
    /// [`WriteBuffer::take_spares`] and not used.
    pub fn give_spares(&mut self, bufs: Vec<Box<[u8]>>) {
        self.keep_spares(bufs);
    }

    /// Keeps as many of `returned` as spares as the budget allows, reserving only what this
    /// buffer lacks; frees the rest.
    fn keep_spares(&mut self, returned: Vec<Box<[u8]>>) {
        if returned.is_empty() {
            return;
        }
        let mut kept = self.spare.iter().map(|b| b.len() as u64).sum::<u64>();
        let want = kept + returned.iter().map(|b| b.len() as u64).sum::<u64>();
        if want > self.spare_budget {
            self.spare_budget += self.cache.reserve_spare(want - self.spare_budget);
        }
        for buf in returned {
            if kept + buf.len() as u64 <= self.spare_budget {
                kept += buf.len() as u64;
                self.spare.push(buf);
            }
        }
    }

    /// A buffer of one page to encode a page into before [`WriteBuffer::put`]:
    /// [`WriteBuffer::run_buffer`] of one page.
    pub fn page_buffer(&mut self) -> Box<[u8]> {
        self.run_buffer(1)
    }

    /// A buffer of `pages` contiguous pages to encode into before [`WriteBuffer::put`]: a
    /// spare one of that length from an earlier flush when there is one (holding its old
    /// bytes: the caller overwrites all of it), else a new zeroed one. Reusing buffers spares
    /// the allocator an allocation, a zero fill and a free per entry written, and the page
    /// faults of a heap that shrinks after each flush and grows again in the next commit.
    /// Entries of up to [`SPARE_MAX_PAGES`] pages are kept for reuse.
    pub fn run_buffer(&mut self, pages: usize) -> Box<[u8]> {
        let len = pages.saturating_mul(self.cache.page_size() as usize);
        self.take_spare(len)
            .unwrap_or_else(|| vec![0; len].into_boxed_slice())
    }

    /// A spare buffer of `len` bytes, if one is kept.
    fn take_spare(&mut self, len: usize) -> Option<Box<[u8]>> {
        let i = self.spare.iter().rposition(|b| b.len() == len)?;
        Some(self.spare.swap_remove(i))
    }

    /// An empty vector with room for exactly `pages` contiguous pages, to fill to that
    /// length and then [`WriteBuffer::put`] as a boxed slice (which then needs no new
    /// allocation): the memory of a spare buffer of that length when there is one, as
    /// [`WriteBuffer::run_buffer`] takes, else a new allocation, neither of them zero-filled.
    pub fn run_vec(&mut self, pages: usize) -> Vec<u8> {
        let len = pages.saturating_mul(self.cache.page_size() as usize);
        match self.take_spare(len) {
            Some(spare) => {
                let mut buf = spare.into_vec();
                buf.clear();
                buf
            }
            None => Vec::with_capacity(len),
        }
    }

    /// The cache this buffer flushes into.
    pub fn cache(&self) -> &Arc<PageCache> {
        &self.cache
    }

    /// Buffers `data` (one page or several contiguous pages) for `offset`.
    ///
    /// `offset` must be page-aligned ([`PageCacheError::Misaligned`]) and the length a
    /// non-zero multiple of the page size ([`PageCacheError::BadPageLength`]). An entry
    /// already at `offset` is replaced in place (keeping its position in buffer order); an
    /// entry that would share a byte with another entry is
    /// [`PageCacheError::OverlapsDirtyPage`]. On error the buffer is unchanged.
    pub fn put(&mut self, offset: u64, data: Box<[u8]>) -> Result<()> {
        let len = data.len() as u64;
        let end = self.cache.check_entry(offset, len)?;
        // One search: the last entry that starts before `end` is the only one to check, as
        // if any entry overlaps the new one, that one does. If it starts inside the new one,
        // it overlaps. If it starts before, nothing else starts inside, and it overlaps when
        // it reaches past `offset`. If it starts at `offset`, it is replaced, and as entries
        // never overlap, none before it reaches past `offset`.
        if let Some((&other, &other_end)) = self.ends.range(..end).next_back() {
            if other != offset && other_end > offset {
                return Err(PageCacheError::OverlapsDirtyPage { offset, other });
            }
        }
        if let Some(old) = self.pages.insert(offset, data) {
            self.dirty_bytes -= old.len() as u64;
        }
        self.ends.insert(offset, end);
        self.dirty_bytes += len;
        Ok(())
    }

    /// [`WriteBuffer::put`] of an entry whose pages enter the read cache when a flush writes
    /// it, even where flushes do not feed the cache ([`crate::CacheOptions::cache_on_flush`]
    /// false): pages the owner's next transactions read again (cf-store's table directory,
    /// which every commit rewrites). With the mmap read path there is no read cache, and it
    /// is [`WriteBuffer::put`]. An entry held ([`WriteBuffer::hold`]) instead of written is
    /// found in the held pages and is not cached when written later. A later
    /// [`WriteBuffer::put`] at the same offset, before the flush, is cached too.
    pub fn put_cached(&mut self, offset: u64, data: Box<[u8]>) -> Result<()> {
        self.put(offset, data)?;
        self.cached.insert(offset);
        Ok(())
    }

    /// [`WriteBuffer::put`] of a copy of `data`.
    pub fn put_copy(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        // Check first, so bad input costs no allocation.
        self.cache.check_entry(offset, data.len() as u64)?;
        self.put(offset, data.into())
    }

    /// The entry that starts at `offset` (all of its pages).
    pub fn get(&self, offset: u64) -> Option<&[u8]> {
        self.pages.get(&offset).map(|d| &d[..])
    }

    /// The entry that starts at `offset`, to change in place.
    pub fn get_mut(&mut self, offset: u64) -> Option<&mut [u8]> {
        self.pages.get_mut(&offset).map(|d| &mut d[..])
    }

    /// The one page at `offset`, from whichever entry covers it (read-your-writes at page
    /// granularity). `None` when no entry covers it or `offset` is not page-aligned.
    pub fn page(&self, offset: u64) -> Option<&[u8]> {
        self.cache.check_aligned(offset).ok()?;
        let (&start, &end) = self.ends.range(..=offset).next_back()?;
        if offset >= end {
            return None;
        }
        let at = (offset - start) as usize;
        let data = self.pages.get(&start)?;
        data.get(at..at + self.cache.page_size() as usize)
    }

    /// Removes and returns the entry at `offset`, keeping the order of the rest.
    pub fn remove(&mut self, offset: u64) -> Option<Box<[u8]>> {
        let data = self.pages.shift_remove(&offset)?;
        self.ends.remove(&offset);
        self.cached.remove(&offset);
        self.dirty_bytes -= data.len() as u64;
        Some(data)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Total bytes buffered.
    pub fn dirty_bytes(&self) -> u64 {
        self.dirty_bytes
    }

    /// Drops every entry (a transaction abort). The cache is untouched: nothing was written.
    pub fn clear(&mut self) {
        self.pages.clear();
        self.cached.clear();
        self.ends.clear();
        self.dirty_bytes = 0;
        self.trim_spare_budget();
    }

    /// Gives back the budget that `spare` does not use.
    fn trim_spare_budget(&mut self) {
        let used = self.spare.iter().map(|b| b.len() as u64).sum::<u64>();
        if self.spare_budget > used {
            self.cache.release_spare(self.spare_budget - used);
            self.spare_budget = used;
        }
    }

    /// `(offset, bytes)` of every entry, in buffer order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (u64, &[u8])> + '_ {
        self.pages.iter().map(|(&o, d)| (o, &d[..]))
    }

    /// Writes every entry, held ones included, to the cache's backend: `policy` plans the
    /// writes (seeing the held entries in offset order, then the others in buffer order; it
    /// may fill gaps only where `gaps` says they are free) and this buffer's reused
    /// [`PlanExecutor`] carries the plan out. With nothing buffered or held it does no I/O.
    ///
    /// On success the entries move into the read cache without copying (with
    /// [`crate::ReadPath::Cache`] and `cache_on_flush`, or put with
    /// [`WriteBuffer::put_cached`]; otherwise their stale cached pages are dropped), the buffer and the held pages are emptied (held ones only once the read cache
    /// agrees with the file for their offsets), and the report says what was written. Cached
    /// pages in filled gaps are dropped either way.
    ///
    /// On failure every cached page of every buffered or held offset is dropped (the file may
    /// now hold any mix of old and new bytes there), the buffer keeps its contents and the
    /// held pages stay held, for a retry or a [`WriteBuffer::clear`], and the error is
    /// returned.
    pub fn flush(&mut self, policy: &dyn FlushPolicy, gaps: &dyn GapOracle) -> Result<FlushReport> {
        let held = if self.held.is_empty() {
            Vec::new()
        } else {
            self.held.snapshot()
        };
        let report = self.write(held, true, policy, gaps)?;
        self.held_order.clear();
        Ok(report)
    }

    /// Writes the oldest held entries, at least `bytes` of them (or all), and nothing else:
    /// room for a commit to hold its own pages within a budget, made a commit's worth at a
    /// time. As [`WriteBuffer::flush`] for the entries it writes; on failure they stay held
    /// and stay the oldest.
    pub fn flush_oldest(
        &mut self,
        bytes: u64,
        policy: &dyn FlushPolicy,
        gaps: &dyn GapOracle,
    ) -> Result<FlushReport> {
        let (mut picked, mut sum) = (Vec::new(), 0u64);
        // An offset held again after a release is in the queue twice: take it once.
        let mut seen = FxHashSet::default();
        while sum < bytes {
            let Some(offset) = self.held_order.pop_front() else {
                break;
            };
            if !seen.insert(offset) {
                continue;
            }
            if let Some(data) = self.held.get(offset) {
                sum += data.len() as u64;
                picked.push((offset, data));
            }
        }
        let offsets: Vec<u64> = picked.iter().map(|&(o, _)| o).collect();
        self.write(picked, false, policy, gaps).inspect_err(|_| {
            for &o in offsets.iter().rev() {
                self.held_order.push_front(o);
            }
        })
    }

    /// Writes `held` (entries of the held pages) and, with `own`, this buffer's entries;
    /// see [`WriteBuffer::flush`].
    fn write(
        &mut self,
        held: Vec<(u64, Bytes)>,
        own: bool,
        policy: &dyn FlushPolicy,
        gaps: &dyn GapOracle,
    ) -> Result<FlushReport> {
        let own_pages = if own { self.pages.len() } else { 0 };
        if own_pages == 0 && held.is_empty() {
            return Ok(FlushReport::default());
        }
        let outcome = {
            let entries = held.iter().map(|(o, d)| DirtyPage::new(*o, d)).chain(
                self.pages
                    .iter()
                    .take(own_pages)
                    .map(|(&o, d)| DirtyPage::new(o, d)),
            );
            let dirty = DirtyPages::new(entries.collect())?;
            let plan = policy.plan(&dirty, gaps);
            let outcome = self
                .executor
                .execute(&plan, &dirty, gaps, &**self.cache.backend());
            self.cache.invalidate_gaps(&plan, &dirty);
            outcome
        };
        match outcome {
            Ok(report) => {
                let most = SPARE_MAX_PAGES * self.cache.page_size() as usize;
                let mut returned: Vec<Box<[u8]>> = Vec::new();
                if own {
                    self.ends.clear();
                    self.dirty_bytes = 0;
                    returned.extend(
                        self.pages
                            .drain(..)
                            .filter_map(|(offset, data)| {
                                let wanted = self.cached.contains(&offset);
                                self.cache.admit_flushed(offset, data, wanted)
                            })
                            .filter(|buf| buf.len() <= most),
                    );
                    self.cached.clear();
                }
                if !held.is_empty() {
                    for (offset, data) in &held {
                        self.cache.admit_written(*offset, data);
                    }
                    // The read cache agrees with the file now: readers may stop finding them here.
                    drop(self.held.remove(held.iter().map(|&(o, _)| o)));
                    returned.extend(
                        held.into_iter()
                            .filter_map(|(_, data)| unique_buffer(data))
                            .filter(|buf| buf.len() <= most),
                    );
                }
                self.keep_spares(returned);
                self.trim_spare_budget();
                Ok(report)
            }
            Err(e) => {
                let spans = held
                    .iter()
                    .map(|(o, d)| (*o, d.len()))
                    .chain(self.pages.iter().take(own_pages).map(|(&o, d)| (o, d.len())));
                for (offset, len) in spans {
                    self.cache.invalidate_range(offset, offset + len as u64);
                }
                Err(e.into())
            }
        }
    }
}

/// The buffer behind `data` when nothing else shares it (no reader holds a slice), without
/// copying; `None` otherwise.
fn unique_buffer(data: Bytes) -> Option<Box<[u8]>> {
    data.is_unique().then(|| Vec::<u8>::from(data).into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CacheOptions;
    use flush::{Backend, MemBackend, NoFreeSpace, PerPage};

    fn buffer() -> WriteBuffer {
        PageCache::new(
            Arc::new(MemBackend::new()),
            CacheOptions::default().with_page_size(512),
        )
        .unwrap()
        .write_buffer()
    }

    /// Flushed buffers come back from `page_buffer` (still holding their old bytes), within
    /// one budget the whole cache shares; pages the read cache takes are not kept; dropping
    /// a buffer returns its budget.
    #[test]
    fn flushed_pages_are_recycled_within_the_cache_wide_budget() {
        let cache = PageCache::new(
            Arc::new(MemBackend::new()),
            CacheOptions::default()
                .with_page_size(512)
                .with_cache_on_flush(false)
                .with_spare_bytes(3 * 512),
        )
        .unwrap();
        let (mut a, mut b) = (cache.write_buffer(), cache.write_buffer());
        assert_eq!(&a.page_buffer()[..], &[0u8; 512][..], "nothing to recycle yet");
        for i in 0..5u8 {
            a.put_copy(u64::from(i) * 512, &[i + 1; 512]).unwrap();
        }
        a.put_copy(8192, &[9; 1024]).unwrap();
        a.flush(&PerPage, &NoFreeSpace).unwrap();
        assert_eq!(
            cache.spare_bytes_held(),
            3 * 512,
            "a keeps what the budget allows"
        );
        b.put_copy(4096, &[7; 512]).unwrap();
        b.flush(&PerPage, &NoFreeSpace).unwrap();
        assert_eq!(cache.spare_bytes_held(), 3 * 512, "b finds the budget spent");
        assert_eq!(&b.page_buffer()[..], &[0u8; 512][..]);
        let recycled: Vec<u8> = (0..3).map(|_| a.page_buffer()[0]).collect();
        assert!(recycled.iter().all(|&x| (1..=5).contains(&x)), "{recycled:?}");
        assert_eq!(&a.page_buffer()[..], &[0u8; 512][..], "three were kept");
        drop(a);
        assert_eq!(cache.spare_bytes_held(), 0);
        b.put_copy(4096, &[8; 512]).unwrap();
        b.flush(&PerPage, &NoFreeSpace).unwrap();
        assert_eq!(cache.spare_bytes_held(), 512, "the budget is free again");
        assert_eq!(&b.page_buffer()[..], &[8u8; 512][..]);
        // An aborted transaction's buffers (recycled ones among them) give their budget back.
        let spare = b.page_buffer();
        assert_eq!(&spare[..], &[0u8; 512][..], "b's one spare is in use");
        b.put(4096, spare).unwrap();
        b.clear();
        assert_eq!(cache.spare_bytes_held(), 0);
    }

    /// A read-through cache of 512-byte pages over `backend`, with the default spare budget.
    fn read_through_over(backend: Arc<MemBackend>) -> Arc<PageCache> {
        PageCache::new(
            backend,
            CacheOptions::default()
                .with_page_size(512)
                .with_cache_on_flush(false),
        )
        .unwrap()
    }

    /// A read-through cache of 512-byte pages with 64 KiB of spare buffers.
    fn read_through_cache() -> Arc<PageCache> {
        PageCache::new(
            Arc::new(MemBackend::new()),
            CacheOptions::default()
                .with_page_size(512)
                .with_cache_on_flush(false)
                .with_spare_bytes(64 << 10),
        )
        .unwrap()
    }

    /// In a read-through cache, a flush caches the entries put with `put_cached` (checked,
    /// as this process wrote them) and not the others, and a later plain flush of such an
    /// offset drops the cached bytes. The wish ends with the flush that caches the entry, and
    /// with a hold (the page freed unwritten and put again), a remove or a clear; a failed
    /// flush keeps it for the retry, and `flush_oldest` leaves it alone.
    #[test]
    fn put_cached_entries_enter_a_read_through_cache_when_flushed() {
        let faulty = Arc::new(flush::testing::FaultBackend::new(MemBackend::new()));
        let cache = PageCache::new(
            faulty.clone(),
            CacheOptions::default()
                .with_page_size(512)
                .with_cache_on_flush(false),
        )
        .unwrap();
        let resident = || cache.stats().resident_pages;
        let mut b = cache.write_buffer();
        b.put_cached(0, vec![1; 1024].into()).unwrap();
        b.put_copy(1024, &[2; 512]).unwrap();
        b.flush(&PerPage, &NoFreeSpace).unwrap();
        assert_eq!(resident(), 2, "both pages of the cached entry");
        let page = cache.read_page(512).unwrap();
        assert!(page.is_checked() && page.iter().all(|&x| x == 1));
        assert_eq!(cache.read_page(1024).unwrap()[0], 2);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (1, 1), "the plain entry was read");

        // A plain flush over a cached offset drops it; the file's bytes are read then.
        b.put_copy(0, &[3; 512]).unwrap();
        b.flush(&PerPage, &NoFreeSpace).unwrap();
        assert_eq!(resident(), 2, "page 0 dropped; 512 and 1024 stay");
        assert_eq!(cache.read_page(0).unwrap()[0], 3);
        assert_eq!(cache.stats().misses, 2, "page 0 came from the file");
        for offset in [0, 512, 1024] {
            cache.invalidate(offset);
        }

        // The wish ends with its flush.
        b.put_copy(0, &[4; 512]).unwrap();
        b.flush(&PerPage, &NoFreeSpace).unwrap();
        assert_eq!(resident(), 0, "the wish ended with its flush");

        // Held, released unwritten (freed), then put again plainly: not cached.
        b.put_cached(2048, vec![5; 512].into()).unwrap();
        b.hold();
        assert_eq!(b.release_held(&[(2048, 2560)]), 512);
        b.put_copy(2048, &[6; 512]).unwrap();
        b.flush(&PerPage, &NoFreeSpace).unwrap();
        assert_eq!(resident(), 0, "a hold ends the wish");

        // Removed, then put again plainly: not cached.
        b.put_cached(4096, vec![7; 512].into()).unwrap();
        b.remove(4096).unwrap();
        b.put_copy(4096, &[8; 512]).unwrap();
        b.flush(&PerPage, &NoFreeSpace).unwrap();
        assert_eq!(resident(), 0, "a remove ends the wish");

        // Cleared, then put again plainly: not cached.
        b.put_cached(8192, vec![9; 512].into()).unwrap();
        b.clear();
        b.put_copy(8192, &[10; 512]).unwrap();
        b.flush(&PerPage, &NoFreeSpace).unwrap();
        assert_eq!(resident(), 0, "a clear ends the wish");

        // A failed flush keeps the wish, and `flush_oldest` (held entries only) leaves it.
        b.put_copy(6144, &[11; 512]).unwrap();
        b.hold();
        b.put_cached(6656, vec![12; 512].into()).unwrap();
        faulty.fail_writes(libc::EIO);
        assert!(b.flush(&PerPage, &NoFreeSpace).is_err());
        faulty.heal_writes();
        b.flush_oldest(512, &PerPage, &NoFreeSpace).unwrap();
        assert_eq!(
            (b.held_bytes(), resident()),
            (0, 0),
            "only the held one was written"
        );
        b.flush(&PerPage, &NoFreeSpace).unwrap();
        assert_eq!(resident(), 1, "cached at the retry");
        assert!(cache.read_page(6656).unwrap().is_checked());
    }

    /// `run_vec` hands out a spare buffer's memory, emptied, with room for exactly its
    /// length, or a new vector of that room; filled, it goes back as a boxed slice without
    /// a new allocation.
    #[test]
    fn run_vec_reuses_spares_empty_and_exactly_sized() {
        let cache = read_through_cache();
        let mut b = cache.write_buffer();
        let fresh = b.run_vec(2);
        assert!(fresh.is_empty());
        assert_eq!(fresh.capacity(), 1024);
        b.put_copy(0, &[5; 1024]).unwrap();
        b.flush(&PerPage, &NoFreeSpace).unwrap();
        let spare_at = b.spare[0].as_ptr();
        assert!(
            b.run_vec(1).capacity() == 512 && b.spare.len() == 1,
            "no one-page spare"
        );
        let mut reused = b.run_vec(2);
        assert!(reused.is_empty() && b.spare.is_empty());
        assert_eq!((reused.as_ptr(), reused.capacity()), (spare_at, 1024));
        reused.resize(1024, 6);
        let boxed = reused.into_boxed_slice();
        assert_eq!(boxed.as_ptr(), spare_at, "no new allocation");
        b.put(512, boxed).unwrap();
        b.flush(&PerPage, &NoFreeSpace).unwrap();
        assert_eq!(&b.run_buffer(2)[..], &[6u8; 1024][..]);
    }

    /// Entries of up to `SPARE_MAX_PAGES` pages come back from `run_buffer` of their own
    /// length (budget permitting); longer ones are freed.
    #[test]
    fn multi_page_buffers_are_recycled_by_length() {
        let cache = read_through_cache();
        let mut b = cache.write_buffer();
        b.put_copy(0, &[1; 512]).unwrap();
        b.put_copy(512, &[2; 4 * 512]).unwrap();
        b.put_copy(8192, &vec![3; (SPARE_MAX_PAGES + 1) * 512]).unwrap();
        b.flush(&PerPage, &NoFreeSpace).unwrap();
        assert_eq!(
            cache.spare_bytes_held(),
            5 * 512,
            "the over-long entry is not kept"
        );
        assert_eq!(&b.run_buffer(4)[..], &[2u8; 4 * 512][..]);
        assert_eq!(&b.run_buffer(4)[..], &[0u8; 4 * 512][..], "one four-page spare");
        assert_eq!(&b.page_buffer()[..], &[1u8; 512][..]);
        assert_eq!(
            &b.run_buffer(SPARE_MAX_PAGES + 1)[..],
            &vec![0u8; (SPARE_MAX_PAGES + 1) * 512][..]
        );
    }

    /// Held entries: readable through `held()` and not written; one released unwritten; the
    /// next flush writes the rest with its own entries and empties the held pages, and the
    /// file and the cache then have their bytes.
    #[test]
    fn held_entries_are_read_written_later_or_dropped() {
        let backend = Arc::new(MemBackend::new());
        let cache = read_through_over(backend.clone());
        let mut b = cache.write_buffer();
        b.put_copy(0, &[1; 512]).unwrap();
        b.put_copy(1024, &[2; 1024]).unwrap();
        b.put_copy(4096, &[3; 512]).unwrap();
        b.hold();
        assert!(b.is_empty());
        assert_eq!(b.held_bytes(), 2048);
        assert_eq!(&b.held().read(1536, 512).unwrap()[..], &[2u8; 512][..]);
        assert_eq!(
            backend.stats().snapshot().bytes_written,
            0,
            "holding writes nothing"
        );
        assert_eq!(
            b.release_held(&[(1024, 2048)]),
            1024,
            "the entry starting in the range"
        );
        assert_eq!(b.release_held(&[(1024, 2048), (9000, 9512)]), 0);
        assert!(b.held().read(1024, 512).is_none());
        b.put_copy(8192, &[4; 512]).unwrap();
        b.flush(&PerPage, &NoFreeSpace).unwrap();
        assert_eq!(b.held_bytes(), 0);
        assert_eq!(backend.stats().snapshot().bytes_written, 3 * 512);
        let file = backend.contents();
        assert_eq!(&file[0..512], &[1u8; 512][..]);
        assert!(
            file[1024..2048].iter().all(|&x| x == 0),
            "the released entry was never written"
        );
        assert_eq!(&file[4096..4608], &[3u8; 512][..]);
        assert_eq!(&cache.read_page(4096).unwrap()[..], &[3u8; 512][..]);
    }

    /// A failed flush leaves the held entries held (and readable); a retry writes them.
    #[test]
    fn a_failed_flush_keeps_held_entries() {
        let faulty = Arc::new(flush::testing::FaultBackend::new(MemBackend::new()));
        let cache = PageCache::new(faulty.clone(), CacheOptions::default().with_page_size(512)).unwrap();
        let mut b = cache.write_buffer();
        b.put_copy(512, &[5; 512]).unwrap();
        b.hold();
        b.put_copy(2048, &[6; 512]).unwrap();
        faulty.fail_writes(libc::EIO);
        assert!(b.flush(&PerPage, &NoFreeSpace).is_err());
        assert_eq!(b.held_bytes(), 512);
        assert_eq!(b.dirty_bytes(), 512);
        assert_eq!(&b.held().read(512, 512).unwrap()[..], &[5u8; 512][..]);
        faulty.heal_writes();
        b.flush(&PerPage, &NoFreeSpace).unwrap();
        assert_eq!((b.held_bytes(), b.dirty_bytes()), (0, 0));
        assert_eq!(&faulty.inner().contents()[512..1024], &[5u8; 512][..]);
    }

    /// `flush_oldest` writes the entries held first, at least the bytes asked for, and
    /// nothing else; after a failure the same ones are still the oldest.
    #[test]
    fn flush_oldest_writes_the_oldest_held_entries() {
        let faulty = Arc::new(flush::testing::FaultBackend::new(MemBackend::new()));
        let cache = PageCache::new(faulty.clone(), CacheOptions::default().with_page_size(512)).unwrap();
        let mut b = cache.write_buffer();
        // Three commits, held in this order, at offsets that do not sort the same way; the
        // first released and held again, so it is in the queue twice.
        for (offset, fill) in [(4096u64, 1u8), (0, 2), (2048, 3)] {
            b.put_copy(offset, &[fill; 512]).unwrap();
            b.hold();
        }
        b.release_held(&[(4096, 4608)]);
        b.put_copy(4096, &[1; 512]).unwrap();
        b.hold();
        b.release_held(&[(0, 512)]);
        faulty.fail_writes(libc::EIO);
        assert!(b.flush_oldest(600, &PerPage, &NoFreeSpace).is_err());
        assert_eq!(b.held_bytes(), 1024, "a failure keeps them held");
        faulty.heal_writes();
        // 600 bytes: the oldest (4096) and, the released one passed over, the next (2048).
        let report = b.flush_oldest(600, &PerPage, &NoFreeSpace).unwrap();
        assert_eq!(report.page_bytes, 1024);
        assert_eq!(b.held_bytes(), 0);
        b.put_copy(8192, &[4; 512]).unwrap();
        b.hold();
        b.put_copy(9216, &[5; 512]).unwrap();
        b.hold();
        let report = b.flush_oldest(1, &PerPage, &NoFreeSpace).unwrap();
        assert_eq!(report.page_bytes, 512, "one entry covers one byte");
        assert!(b.held().read(8192, 512).is_none());
        assert_eq!(&b.held().read(9216, 512).unwrap()[..], &[5u8; 512][..]);
        let file = faulty.inner().contents();
        assert_eq!(&file[4096..4608], &[1u8; 512][..]);
        assert_eq!(&file[2048..2560], &[3u8; 512][..]);
        assert_eq!(&file[8192..8704], &[4u8; 512][..]);
        assert!(file.len() <= 9216 || file[9216..].iter().all(|&x| x == 0));
    }

    /// An offset freed and held again, commit after commit (the root of a tree), is queued
    /// each time; compaction keeps the queue within twice what is held, so a hold costs
    /// constant time however long the run.
    #[test]
    fn the_hold_queue_stays_bounded() {
        let cache = PageCache::new(
            Arc::new(MemBackend::new()),
            CacheOptions::default().with_page_size(512),
        )
        .unwrap();
        let mut b = cache.write_buffer();
        for round in 0..10_000u64 {
            b.put_copy(0, &[round as u8; 512]).unwrap();
            b.put_copy(512 * (1 + round % 50), &[1; 512]).unwrap();
            b.hold();
            b.release_held(&[(0, 512)]);
            assert!(b.held_order.len() <= 2 * b.held().len() + 64 + 2, "round {round}");
        }
        assert_eq!(b.held().len(), 50);
    }

    /// A released entry's buffer comes back from `page_buffer` unless a reader still holds
    /// a slice of it.
    #[test]
    fn released_buffers_are_reused_unless_read() {
        let cache = read_through_over(Arc::new(MemBackend::new()));
        let mut b = cache.write_buffer();
        b.put_copy(0, &[7; 512]).unwrap();
        b.put_copy(512, &[8; 512]).unwrap();
        b.hold();
        let reader = b.held().read(512, 512).unwrap();
        b.release_held(&[(0, 1024)]);
        assert_eq!(&reader[..], &[8u8; 512][..], "the reader keeps its bytes");
        assert_eq!(
            &b.page_buffer()[..],
            &[7u8; 512][..],
            "the unread buffer is reused"
        );
        assert_eq!(&b.page_buffer()[..], &[0u8; 512][..], "the read one is not");
    }

    #[test]
    fn put_replaces_in_place_and_keeps_order() {
        let mut b = buffer();
        b.put_copy(1024, &[1; 512]).unwrap();
        b.put_copy(0, &[2; 512]).unwrap();
        b.put_copy(1024, &[3; 1024]).unwrap();
        let order: Vec<(u64, usize)> = b.iter().map(|(o, d)| (o, d.len())).collect();
        assert_eq!(order, vec![(1024, 1024), (0, 512)]);
        assert_eq!(b.dirty_bytes(), 1536);
        assert_eq!(b.len(), 2);
        assert_eq!(b.page(1536), Some(&[3u8; 512][..]));
        assert_eq!(b.page(2048), None);
        assert_eq!(b.page(1), None);
    }

    #[test]
    fn overlaps_are_refused_in_both_directions() {
        let mut b = buffer();
        b.put_copy(1024, &[1; 1024]).unwrap();
        // A new entry that starts inside an existing one.
        assert!(matches!(
            b.put_copy(1536, &[0; 512]),
            Err(PageCacheError::OverlapsDirtyPage {
                offset: 1536,
                other: 1024
            })
        ));
        // A new multi-page entry that covers an existing entry's start.
        assert!(matches!(
            b.put_copy(512, &[0; 1024]),
            Err(PageCacheError::OverlapsDirtyPage {
                offset: 512,
                other: 1024
            })
        ));
        // Growing an entry in place into its neighbour.
        b.put_copy(2048, &[2; 512]).unwrap();
        assert!(matches!(
            b.put_copy(1024, &[0; 1536]),
            Err(PageCacheError::OverlapsDirtyPage {
                offset: 1024,
                other: 2048
            })
        ));
        // Touching is fine.
        b.put_copy(512, &[4; 512]).unwrap();
        assert_eq!(b.dirty_bytes(), 512 + 1024 + 512);
        assert_eq!(b.get(1024), Some(&[1u8; 1024][..]));
    }

    #[test]
    fn remove_get_mut_clear_and_empty_flush() {
        let mut b = buffer();
        b.put_copy(0, &[1; 512]).unwrap();
        b.put_copy(512, &[2; 512]).unwrap();
        b.put_copy(1024, &[3; 512]).unwrap();
        b.get_mut(512).unwrap()[0] = 9;
        assert_eq!(b.remove(0).as_deref(), Some(&[1u8; 512][..]));
        assert!(b.remove(0).is_none());
        assert_eq!(b.iter().map(|(o, _)| o).collect::<Vec<_>>(), vec![512, 1024]);
        assert_eq!(b.get(512).unwrap()[0], 9);
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.dirty_bytes(), 0);
        let report = b.flush(&PerPage, &NoFreeSpace).unwrap();
        assert_eq!(report, FlushReport::default());
        assert_eq!(b.cache().backend().stats().snapshot().flushes, 0);
    }
}
