//! Page allocation: free page runs, a space's extents and deferred frees, the file's extents.
//!
//! A space (a column family, or the catalog) owns extents of the file and allocates pages
//! only inside them, first fit from the lowest address, each allocation of a commit
//! continuing right after the previous one while it can, so a commit's pages stay adjacent. Pages a commit frees are *pending* until both no snapshot older than that
//! commit is alive (its epoch guard is dead) and a durable commit at or after it exists (so
//! recovery never needs them): only then may they be rewritten. The gap oracle of a flush
//! says free only for pages in the free runs: never a pending page, never another space's.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Weak;

use crate::btree::PageId;
use crate::epoch::Epoch;
use crate::format::Extent;
use crate::Result;

/// Largest extent a space grows by while it doubles: 2^18 pages (1 GiB at 4 KiB pages).
/// Once a space holds more than eight times this, it grows by an eighth of its size
/// ([`SpaceAllocator::next_extent_pages`]).
pub const MAX_EXTENT_PAGES: u64 = 1 << 18;

/// Extents a space keeps in hand, of those its commit slot can name, for growing by its
/// whole size: once no more than this many are left, each new extent doubles the space.
const LAST_EXTENTS: usize = 8;

/// Disjoint runs of pages, merged, keyed by start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRuns {
    runs: BTreeMap<PageId, PageId>,
    pages: u64,
}

impl PageRuns {
    /// Adds `[start, end)`, merging with neighbours. The range must not already be present.
    /// A run that ends at `start` grows in place, so that adding a run costs two lookups of
    /// the map and at most one insert (the allocator adds and removes a commit's worth of
    /// runs at every commit).
    pub fn insert(&mut self, start: PageId, end: PageId) {
        if start >= end {
            return;
        }
        debug_assert!(!self.overlaps(start, end), "double free of pages {start}..{end}");
        self.pages += end - start;
        let end = self.runs.remove(&end).unwrap_or(end);
        if let Some((_, e)) = self.runs.range_mut(..start).next_back() {
            if *e == start {
                *e = end;
                return;
            }
        }
        self.runs.insert(start, end);
    }

    /// True when some page of `[start, end)` is in a run.
    pub fn overlaps(&self, start: PageId, end: PageId) -> bool {
        self.runs
            .range(..end)
            .next_back()
            .is_some_and(|(_, &e)| e > start)
    }

    /// Takes `n` contiguous pages from the lowest run long enough.
    pub fn take_first_fit(&mut self, n: u64) -> Option<PageId> {
        let (&s, &e) = self.runs.iter().find(|(&s, &e)| e - s >= n)?;
        self.runs.remove(&s);
        if s + n < e {
            self.runs.insert(s + n, e);
        }
        self.pages -= n;
        Some(s)
    }

    /// True when every page of `[start, end)` is in a run.
    pub fn contains(&self, start: PageId, end: PageId) -> bool {
        start < end
            && self
                .runs
                .range(..=start)
                .next_back()
                .is_some_and(|(_, &e)| e >= end)
    }

    /// Removes `[start, end)`, which must be wholly present; false (and no change) if not.
    /// The run holding it shrinks in place: one lookup, and an insert only for a tail.
    pub fn remove(&mut self, start: PageId, end: PageId) -> bool {
        if start >= end {
            return false;
        }
        let Some((&s, e)) = self.runs.range_mut(..=start).next_back() else {
            return false;
        };
        let run_end = *e;
        if run_end < end {
            return false;
        }
        if s < start {
            *e = start;
        } else {
            self.runs.remove(&s);
        }
        if end < run_end {
            self.runs.insert(end, run_end);
        }
        self.pages -= end - start;
        true
    }

    /// Pages in all runs.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// The runs, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (PageId, PageId)> + '_ {
        self.runs.iter().map(|(&s, &e)| (s, e))
    }
}

/// Pages freed by one commit, reusable once `guard` is dead and the commit is durable.
#[derive(Debug)]
struct PendingFree {
    freed_by: u64,
    guard: Weak<Epoch>,
    runs: Vec<(PageId, u64)>,
}

/// One space's pages: its extents, what is free now, what is freed but still needed.
#[derive(Debug)]
pub struct SpaceAllocator {
    extents: Vec<Extent>,
    free: PageRuns,
    pending: VecDeque<PendingFree>,
    /// Allocated by the commit being built (returned to `free` on rollback).
    in_flight: Vec<(PageId, u64)>,
    /// Allocated by commits after the newest durable one: no durable state reaches them, so
    /// freeing them waits only for older snapshots, never for a durable commit.
    undurable: PageRuns,
    /// Pages of the space's first extent. (Extents taken by the commit being built are kept
    /// on rollback: they are ours now.)
    initial_extent_pages: u64,
    /// Pages of the last extent this space took (not of the entry it merged into): the next
    /// one doubles it, up to [`MAX_EXTENT_PAGES`].
    grown: u64,
    /// Most extents a commit slot of this space can name ([`crate::format::max_extents`]).
    max_extents: usize,
    /// Where the commit being built takes its next pages if they are free: just past its
    /// previous allocation, so its pages stay contiguous (see [`SpaceAllocator::alloc`]).
    cursor: Option<PageId>,
}

impl SpaceAllocator {
    /// A space holding `extents`, of which every page not in `used` is free, whose commit
    /// slot names at most `max_extents` extents.
    pub fn new(extents: Vec<Extent>, used: &PageRuns, initial_extent_pages: u64, max_extents: usize) -> Self {
        let mut free = PageRuns::default();
        for e in &extents {
            // Free = the extent minus the used runs inside it.
            let mut at = e.start;
            for (s, end) in used.iter() {
                if end <= e.start || s >= e.end() {
                    continue;
                }
                free.insert(at, s.max(e.start));
                at = end.min(e.end());
            }
            free.insert(at, e.end());
        }
        // A reopened space doubles from its last entry, which may be several extents merged:
        // it grows a little sooner than it would have, never past the cap.
        let grown = extents.last().map_or(0, |e| e.pages.min(MAX_EXTENT_PAGES));
        Self {
            extents,
            free,
            pending: VecDeque::new(),
            in_flight: Vec::new(),
            undurable: PageRuns::default(),
            initial_extent_pages: initial_extent_pages.max(4),
            grown,
            max_extents,
            cursor: None,
        }
    }

    /// The extents, in the order taken.
    pub fn extents(&self) -> &[Extent] {
        &self.extents
    }

    /// Pages free now.
    pub fn free_pages(&self) -> u64 {
        self.free.pages()
    }

    /// Pages freed but not yet reusable.
    pub fn pending_pages(&self) -> u64 {
        self.pending.iter().flat_map(|p| p.runs.iter()).map(|r| r.1).sum()
    }

    /// Pages in all extents.
    pub fn total_pages(&self) -> u64 {
        self.extents.iter().map(|e| e.pages).sum()
    }

    /// Allocates `n` contiguous pages for the commit being built: right after its previous
    /// allocation when those pages are free (so an overflow run that skipped a short hole
    /// does not send the next node back into it), else first fit from the lowest address;
    /// when no free run is long enough, takes a new extent through `grow`, of
    /// [`SpaceAllocator::next_extent_pages`]. An extent that starts where the space's last
    /// one ends joins it, so a space that grows alone adds no entry.
    pub fn alloc(&mut self, n: u64, grow: &mut dyn FnMut(u64) -> Result<Extent>) -> Result<PageId> {
        let next = self.cursor.filter(|&c| self.free.contains(c, c + n));
        let start = match next {
            Some(c) => {
                self.free.remove(c, c + n);
                c
            }
            None => match self.free.take_first_fit(n) {
                Some(s) => s,
                None => {
                    let e = grow(self.next_extent_pages(n))?;
                    self.grown = e.pages;
                    match self.extents.last_mut() {
                        Some(last) if last.end() == e.start => last.pages += e.pages,
                        _ => self.extents.push(e),
                    }
                    self.free.insert(e.start, e.end());
                    self.free
                        .take_first_fit(n)
                        .expect("a new extent of at least n pages")
                }
            },
        };
        self.cursor = Some(start + n);
        self.in_flight.push((start, n));
        Ok(start)
    }

    /// Pages of the next extent, for a run of `n` pages that no free run holds. Extents
    /// double from the initial one up to [`MAX_EXTENT_PAGES`]; once the space holds more
    /// than eight times that, it grows by an eighth of its size, so that its extents stay
    /// few (43 for a space of 100 GiB at 4 KiB pages); and once no more than
    /// [`LAST_EXTENTS`] entries are left of those its slot can name, by its whole size.
    /// An extent is only address space until its pages are written (readying allocates at
    /// most 64 MiB ahead), so a large one costs a sparse stretch of the file, not disk.
    /// Adjacent extents take one entry (`alloc`), so only spaces that grow in turn with
    /// others use up entries; even then a slot of 512-byte pages (27 entries) lasts to
    /// about 192 GiB (1.75 GiB when extents stopped at the cap; past it a durable commit
    /// fails with `SpaceFull`), and one of 4 KiB pages (251) outlasts the 2^62 bytes the
    /// store addresses. At least `n`.
    pub fn next_extent_pages(&self, n: u64) -> u64 {
        if self.extents.is_empty() {
            return self.initial_extent_pages.max(n);
        }
        let doubled = self.grown.saturating_mul(2).min(MAX_EXTENT_PAGES);
        let total = self.total_pages();
        let left = self.max_extents.saturating_sub(self.extents.len());
        let share = if left > LAST_EXTENTS { total / 8 } else { total };
        doubled.max(share).max(n)
    }

    /// Gap oracle: every page of `[start, end)` is free now.
    pub fn is_free(&self, start: PageId, end: PageId) -> bool {
        self.free.contains(start, end)
    }

    /// The commit being built failed: its allocations are free again.
    pub fn rollback(&mut self) {
        self.cursor = None;
        for (s, n) in self.in_flight.drain(..) {
            self.free.insert(s, s + n);
        }
    }

    /// The commit `txn` succeeded and no longer references `freed`, which older snapshots
    /// (those that keep `guard` alive) may still read.
    ///
    /// With `durable`, the commit made every page allocated so far part of a durable state;
    /// that is recorded last, after this commit's own pages joined the set.
    pub fn committed(&mut self, txn: u64, durable: bool, guard: Weak<Epoch>, freed: Vec<(PageId, u64)>) {
        self.cursor = None;
        for (s, n) in self.in_flight.drain(..) {
            self.undurable.insert(s, s + n);
        }
        // Runs no durable state reaches need only the snapshot guard (`freed_by` 0); they
        // stay in `freed`'s own memory.
        let mut only_guard = freed;
        let mut needs_durable = Vec::new();
        only_guard.retain(|&(s, n)| {
            let undurable = self.undurable.remove(s, s + n);
            if !undurable {
                needs_durable.push((s, n));
            }
            undurable
        });
        for (freed_by, runs) in [(0, only_guard), (txn, needs_durable)] {
            if !runs.is_empty() {
                self.pending.push_back(PendingFree {
                    freed_by,
                    guard: guard.clone(),
                    runs,
                });
            }
        }
        if durable {
            self.undurable = PageRuns::default();
        }
    }

    /// Makes reusable every pending free whose snapshots are gone and whose commit is at or
    /// before `durable_txn`. Pending frees are in commit order and guards die oldest first, so
    /// the scan stops at the first one still held by a snapshot. Calls `freed` with each run
    /// made reusable (adjacent runs merged, so one run may cover several nodes).
    pub fn reclaim(&mut self, durable_txn: u64, freed: &mut dyn FnMut(PageId, u64)) {
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            if p.guard.strong_count() > 0 {
                break;
            }
            if p.freed_by > durable_txn {
                i += 1;
                continue;
            }
            let p = self.pending.remove(i).expect("index in range");
            for (s, n) in p.runs {
                freed(s, n);
                self.free.insert(s, s + n);
            }
        }
    }
}

/// The file's extents: which are free for a space to take. Lives under the database mutex.
#[derive(Debug, Default)]
pub struct ExtentAllocator {
    free: PageRuns,
    /// First page past every extent ever handed out or found in use.
    end: PageId,
}

impl ExtentAllocator {
    /// The file with `used` extents taken; pages below `reserved` (the superblock) are never
    /// handed out.
    pub fn new(reserved: PageId, used: &[Extent]) -> Self {
        let mut taken = PageRuns::default();
        for e in used {
            taken.insert(e.start, e.end());
        }
        let mut free = PageRuns::default();
        let mut at = reserved;
        for (s, e) in taken.iter() {
            free.insert(at, s.max(at));
            at = at.max(e);
        }
        Self { free, end: at }
    }

    /// Takes an extent of `pages` pages: first fit among freed extents, else at the end.
    /// `None`, taking nothing, when the extent would reach past page `limit` (the pages the
    /// store addresses at this page size).
    pub fn take(&mut self, pages: u64, limit: PageId) -> Option<Extent> {
        let start = match self.free.take_first_fit(pages) {
            Some(s) => s,
            None => {
                let s = self.end;
                self.end = s.checked_add(pages).filter(|&end| end <= limit)?;
                s
            }
        };
        Some(Extent { start, pages })
    }

    /// First page past every extent handed out so far: an extent taken at or past it was
    /// never part of the file's known space.
    pub fn end(&self) -> PageId {
        self.end
    }

    /// Returns an extent (of a dropped space) for reuse.
    pub fn release(&mut self, e: Extent) {
        self.free.insert(e.start, e.end());
    }

    /// Pages free between extents.
    pub fn free_pages(&self) -> u64 {
        self.free.pages()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn page_runs_merge_take_and_remove() {
        let mut r = PageRuns::default();
        r.insert(10, 20);
        r.insert(30, 40);
        r.insert(20, 30);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![(10, 40)]);
        assert_eq!(r.take_first_fit(5), Some(10));
        assert!(r.contains(15, 40) && !r.contains(14, 16));
        assert!(r.overlaps(5, 16) && !r.overlaps(5, 15) && !r.overlaps(40, 50));
        assert!(r.remove(20, 25) && !r.remove(20, 25));
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![(15, 20), (25, 40)]);
        r.insert(20, 25);
        assert_eq!(r.take_first_fit(20), Some(15));
        assert_eq!(r.pages(), 5);
        assert_eq!(r.take_first_fit(6), None);
    }

    proptest::proptest! {
        /// Runs against a set of pages: inserts of absent ranges, removes of any range (only
        /// wholly present ones succeed), first-fit takes; the runs stay merged and disjoint.
        #[test]
        fn page_runs_match_a_set_of_pages(
            ops in proptest::collection::vec((0u8..3, 0u64..64, 1u64..9), 1..200),
        ) {
            let mut runs = PageRuns::default();
            let mut model = std::collections::BTreeSet::new();
            for (op, start, len) in ops {
                let end = start + len;
                match op {
                    0 => {
                        if (start..end).all(|p| !model.contains(&p)) {
                            runs.insert(start, end);
                            model.extend(start..end);
                        }
                    }
                    1 => {
                        let present = (start..end).all(|p| model.contains(&p));
                        proptest::prop_assert_eq!(runs.remove(start, end), present);
                        if present {
                            for p in start..end {
                                model.remove(&p);
                            }
                        }
                    }
                    _ => {
                        let fit = runs.take_first_fit(len);
                        if let Some(s) = fit {
                            for p in s..s + len {
                                proptest::prop_assert!(model.remove(&p), "took an absent page {}", p);
                            }
                        }
                    }
                }
                proptest::prop_assert_eq!(runs.pages(), model.len() as u64);
                let listed: Vec<(u64, u64)> = runs.iter().collect();
                for pair in listed.windows(2) {
                    proptest::prop_assert!(pair[0].1 < pair[1].0, "runs not merged: {:?}", listed);
                }
                let pages: Vec<u64> = listed.iter().flat_map(|&(s, e)| s..e).collect();
                proptest::prop_assert_eq!(pages, model.iter().copied().collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn space_allocates_adjacent_pages_grows_and_defers_frees() {
        let mut extents_taken = ExtentAllocator::new(2, &[]);
        let mut grow = |n: u64| Ok(extents_taken.take(n, NO_LIMIT).expect("room"));
        let mut a = SpaceAllocator::new(Vec::new(), &PageRuns::default(), 4, 251);
        let pages: Vec<_> = (0..4).map(|_| a.alloc(1, &mut grow).unwrap()).collect();
        assert_eq!(pages, vec![2, 3, 4, 5], "adjacent, in the first extent");
        // Full: the next extent doubles, and as it starts where the first ends, it joins it.
        assert_eq!(a.alloc(1, &mut grow).unwrap(), 6);
        assert_eq!(a.extents(), &[Extent { start: 2, pages: 12 }]);
        assert_eq!(
            a.next_extent_pages(1),
            16,
            "doubling the last extent taken, not the entry"
        );
        // A run longer than any free run takes a new extent of at least that size; the new
        // extent is adjacent to the last one, so the run starts in the old extent's free tail.
        assert_eq!(a.alloc(20, &mut grow).unwrap(), 7);
        assert_eq!(a.extents(), &[Extent { start: 2, pages: 32 }]);
        a.rollback();
        assert_eq!(
            a.free_pages(),
            4 + 8 + 20,
            "rolled back: all free again, extents kept"
        );
        assert!(a.is_free(2, 34));

        let first = Arc::new(Epoch::default());
        let p = a.alloc(2, &mut grow).unwrap();
        a.committed(1, true, Arc::downgrade(&first), vec![]); // durable: `p` is in a durable state
        a.committed(2, false, Arc::downgrade(&first), vec![(p, 2)]);
        assert!(!a.is_free(p, p + 2));
        a.reclaim(5, &mut |_, _| {});
        assert!(!a.is_free(p, p + 2), "a snapshot still holds the epoch");
        drop(first);
        a.reclaim(1, &mut |_, _| {});
        assert!(!a.is_free(p, p + 2), "the freeing commit is not durable yet");
        a.reclaim(2, &mut |_, _| {});
        assert!(a.is_free(p, p + 2));
        assert_eq!(a.pending_pages(), 0);
    }

    #[test]
    fn pages_born_after_the_last_durable_commit_need_only_the_guard() {
        let mut x = ExtentAllocator::new(2, &[]);
        let mut grow = |n: u64| Ok(x.take(n, NO_LIMIT).expect("room"));
        let mut a = SpaceAllocator::new(Vec::new(), &PageRuns::default(), 16, 251);
        let dead = Weak::new();
        let old = a.alloc(1, &mut grow).unwrap();
        a.committed(1, true, dead.clone(), vec![]); // durable: `old` is in a durable state
        let young = a.alloc(1, &mut grow).unwrap();
        a.committed(2, false, dead.clone(), vec![]);
        a.committed(3, false, dead.clone(), vec![(old, 1), (young, 1)]);
        a.reclaim(1, &mut |_, _| {});
        assert!(a.is_free(young, young + 1), "no durable state reaches it");
        assert!(!a.is_free(old, old + 1), "the durable state 1 still needs it");
        a.reclaim(3, &mut |_, _| {});
        assert!(a.is_free(old, old + 1));
    }

    #[test]
    fn extents_reuse_released_space_first() {
        let mut x = ExtentAllocator::new(
            2,
            &[Extent { start: 2, pages: 16 }, Extent { start: 40, pages: 8 }],
        );
        assert_eq!(x.free_pages(), 22, "the hole 18..40");
        assert_eq!(x.take(16, NO_LIMIT), Some(Extent { start: 18, pages: 16 }));
        assert_eq!(x.take(16, NO_LIMIT), Some(Extent { start: 48, pages: 16 }));
        x.release(Extent { start: 2, pages: 16 });
        assert_eq!(x.take(8, NO_LIMIT), Some(Extent { start: 2, pages: 8 }));
        // Past the limit, or past the largest page number: nothing is taken.
        assert_eq!(x.take(40, 100), None);
        assert_eq!(x.take(u64::MAX, NO_LIMIT), None);
        assert_eq!(x.end(), 64, "a refused extent leaves the end where it was");
        assert_eq!(x.take(36, 100), Some(Extent { start: 64, pages: 36 }));
    }

    const NO_LIMIT: PageId = u64::MAX;

    /// Grows `spaces` in turn (so their extents never touch), each time filling one's free
    /// pages and then asking for one more, until the first cannot grow: its slot names no
    /// more extents, or the file no more pages. Returns the first space's bytes and slot
    /// entries at `page_size`, and whether the last page the store addresses stopped it.
    /// Gives up after 1,000 extents each (a growth rule that stalls fails the caller's
    /// asserts instead of running for ever).
    fn grow_in_turn(spaces: usize, page_size: u64) -> (u64, usize, bool) {
        let limit = (1 << 62) / page_size;
        let max = crate::format::max_extents(page_size as usize);
        let mut file = ExtentAllocator::new(2, &[]);
        let mut all: Vec<SpaceAllocator> = (0..spaces)
            .map(|_| SpaceAllocator::new(Vec::new(), &PageRuns::default(), 16, max))
            .collect();
        for _ in 0..1_000 {
            for (i, a) in all.iter_mut().enumerate() {
                if i == 0 && a.extents().len() == max {
                    return (a.total_pages() * page_size, max, false);
                }
                let free = a.free_pages();
                if free > 0 {
                    a.alloc(free, &mut |_| unreachable!("the free pages are one run"))
                        .expect("free pages");
                }
                let grew = a.alloc(1, &mut |n| {
                    file.take(n, limit)
                        .ok_or(crate::Error::ExtentTooLarge { pages: n, end: 0 })
                });
                if i == 0 && grew.is_err() {
                    return (a.total_pages() * page_size, a.extents().len(), true);
                }
            }
        }
        let first = &all[0];
        (first.total_pages() * page_size, first.extents().len(), false)
    }

    #[test]
    fn spaces_growing_in_turn_stay_within_their_slots() {
        // Alone, a space's extents all join its first entry.
        let (_, entries, at_limit) = grow_in_turn(1, 4096);
        assert_eq!(entries, 1);
        assert!(
            at_limit,
            "a lone space grows to the last page the store addresses"
        );
        // In turn with another, every extent takes an entry. 512-byte slots name 27: the last
        // eight double the space, so it reaches about 192 GiB (1.75 GiB without that).
        let (bytes, entries, at_limit) = grow_in_turn(2, 512);
        assert_eq!(entries, 27, "every entry used");
        assert!(!at_limit);
        assert!(bytes > 191 << 30, "{bytes} bytes");
        // 4 KiB slots name 251, and the space reaches the last page the store addresses
        // (2^62 bytes) first.
        let (bytes, entries, at_limit) = grow_in_turn(2, 4096);
        assert!(at_limit && entries < 251, "{entries} entries");
        assert!(bytes > 1 << 60, "{bytes} bytes");
    }

    #[test]
    fn extents_double_to_the_cap_then_grow_by_an_eighth() {
        let mut file = ExtentAllocator::new(2, &[]);
        let mut other = SpaceAllocator::new(Vec::new(), &PageRuns::default(), 16, 251);
        let mut a = SpaceAllocator::new(Vec::new(), &PageRuns::default(), 16, 251);
        let mut sizes = Vec::new();
        while a.total_pages() < 20 * MAX_EXTENT_PAGES {
            let free = a.free_pages();
            if free > 0 {
                a.alloc(free, &mut |_| unreachable!()).unwrap();
            }
            a.alloc(1, &mut |n| Ok(file.take(n, NO_LIMIT).expect("room")))
                .unwrap();
            sizes.push(a.extents().last().unwrap().pages);
            // Another space takes an extent between each two of this one's.
            other
                .alloc(other.free_pages() + 1, &mut |n| {
                    Ok(file.take(n, NO_LIMIT).unwrap())
                })
                .unwrap();
        }
        let doubling: Vec<u64> = (4..=18).map(|b| 1 << b).collect();
        assert_eq!(sizes[..15], doubling[..], "16 pages doubling to the cap");
        // Then the cap while the space is under eight of them, an eighth of it after.
        let total_before = |i: usize| sizes[..i].iter().sum::<u64>();
        for (i, &pages) in sizes.iter().enumerate().skip(15) {
            assert_eq!(pages, MAX_EXTENT_PAGES.max(total_before(i) / 8), "extent {i}");
        }
        assert!(sizes.len() < 30, "{} extents for 20 caps", sizes.len());
    }
}
