//! `Space`: one owner's pages and commit slots, and the one commit path that makes its new
//! root visible and (optionally) durable. Column families and the catalog both use it.

use std::cell::RefCell;
use std::sync::Weak;

use flush::{FlushPolicy, FlushReport};
use pagecache::WriteBuffer;

use crate::alloc::SpaceAllocator;
use crate::btree::{BranchCache, PageId, TreeRoot};
use crate::db::{DbCore, Populate};
use crate::epoch::Epoch;
use crate::format::{Extent, Slot};
use crate::hold::HoldGate;
use crate::source::ValuePool;
use crate::{Error, Result};

/// How far past the highest page a flush writes into a fresh extent the pages are readied
/// (clipped to the extent). Measured on W1 at 4 writers in one file (interleaved, 5 rounds):
/// filling the page cache too (`Populate::WhenContended`), 4 MiB made 3.5x the calls and ran
/// at 0.83x of 64 MiB (1.39M against 1.67M ops/s); allocating only (`Populate::Allocate`),
/// 8 MiB made 2.1x the calls and ran at 3.40M against 3.45M. The cost of going far ahead is
/// page cache and allocated blocks the extent owns anyway.
pub const POPULATE_AHEAD_BYTES: u64 = 64 << 20;

/// One readying call: [`flush::Backend::allocate`] or [`flush::Backend::populate`].
type ReadyCall = fn(&dyn flush::Backend, u64, u64) -> flush::Result<()>;

/// How far a space has readied the pages of its newest fresh extent, which ends at `end`.
/// "Fresh" means taken past every extent the file knew of, so after a crash it may hold
/// bytes of commits that never became durable; readying changes no byte, so that costs
/// reads at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreshTail {
    /// Pages from here on are neither allocated ahead nor written by this space.
    pub allocated: PageId,
    /// Pages from here on are neither filled into the page cache ahead nor written by this
    /// space (only `Populate::WhenContended` lets it fall behind `allocated`).
    pub filled: PageId,
    /// The extent's end.
    pub end: PageId,
}

/// One space's writer-side state. Only the holder of the space's writer lock touches it.
pub struct Space {
    /// 0 for the catalog, the column family's id otherwise.
    pub owner: u64,
    /// Slot magic for this kind of space.
    pub magic: [u8; 8],
    /// The two commit-slot pages.
    pub slot_pages: [PageId; 2],
    /// Pages of this space.
    pub alloc: SpaceAllocator,
    /// Dirty pages of the commit being built.
    pub buffer: WriteBuffer,
    /// How the buffer reaches the file.
    pub policy: Box<dyn FlushPolicy>,
    /// Whether a commit without durability holds its pages unwritten, and the budget
    /// ([`crate::DbBuilder::hold_bytes`]; 0 for the catalog).
    pub hold: HoldGate,
    /// Value buffers for the next transaction's inserts.
    pub values: ValuePool,
    /// Branches this space's commits wrote, for its next transactions' descents.
    pub branches: RefCell<BranchCache>,
    /// The byte ranges [`Space::reclaim`] made reusable, kept empty between calls for its
    /// memory.
    pub reclaimed: Vec<(u64, u64)>,
    /// Root of the newest commit.
    pub root: TreeRoot,
    /// Slot field `aux`: next column-family id (catalog) or the catalog txn that created the
    /// column family.
    pub aux: u64,
    /// Txn of the newest commit (durable or not).
    pub last_txn: u64,
    /// Txn of the newest durable commit, and which slot holds it.
    pub durable_txn: u64,
    pub durable_slot: usize,
    /// How far this space has readied its newest fresh extent (`DbBuilder::populate`).
    pub fresh_tail: Option<FreshTail>,
    /// Readying calls (`allocate` or `populate`) that failed (and were ignored).
    pub populate_failures: u64,
    /// Counters for `stats()`.
    pub commits: u64,
    pub durable_commits: u64,
    pub flushed_runs: u64,
    pub flushed_page_bytes: u64,
    pub flushed_gap_bytes: u64,
    pub held_dropped_bytes: u64,
}

impl std::fmt::Debug for Space {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Space")
            .field("owner", &self.owner)
            .field("last_txn", &self.last_txn)
            .field("durable_txn", &self.durable_txn)
            .finish_non_exhaustive()
    }
}

impl Space {
    /// A grow callback that takes extents from the file, leaving in `fresh` the last one
    /// taken past the end of the file's known space.
    pub fn grower<'a>(
        core: &'a DbCore,
        fresh: &'a mut Option<Extent>,
    ) -> impl FnMut(u64) -> Result<Extent> + 'a {
        move |pages| {
            let (e, is_fresh) = core.take_extent(pages)?;
            if is_fresh {
                *fresh = Some(e);
            }
            Ok(e)
        }
    }

    /// Notes `e`, an extent taken past the file's known space, as the one whose pages
    /// [`Space::commit`] readies ahead of its writes (see [`Populate`]).
    pub fn fresh_extent(&mut self, e: Extent) {
        self.fresh_tail = Some(FreshTail {
            allocated: e.start,
            filled: e.start,
            end: e.end(),
        });
    }

    /// Readies the fresh pages this flush is about to write, and up to
    /// [`POPULATE_AHEAD_BYTES`] past them, as `core.populate` says: allocates them, or also
    /// fills the page cache with them (which allocates too), each at most once, and moves
    /// the tail's marks past every page readied or written. Under `Populate::Never` it does
    /// nothing: the tail is never read.
    ///
    /// `WhenContended` allocates ahead while the file is quiet, and moves the fill mark only
    /// past the pages written, so that once writes contend the next flush fills from there,
    /// over pages allocated before.
    fn populate_ahead(&mut self, core: &DbCore) {
        // Under `Never` the tail is never read: skip the walk of the buffer.
        let Some(tail) = self.fresh_tail.filter(|_| core.populate != Populate::Never) else {
            return;
        };
        let FreshTail {
            allocated,
            filled,
            end,
        } = tail;
        let ps = core.page_size as u64;
        let low = allocated.min(filled);
        // Held pages go out with this flush too; the highest of them stands for all (pages
        // below it are readied with it, which changes no byte).
        let held_end = self.buffer.held().end().div_ceil(ps);
        let held = (held_end > low).then_some((held_end.saturating_sub(1), held_end));
        let Some(hi) = self
            .buffer
            .iter()
            .map(|(offset, bytes)| {
                (
                    offset / ps,
                    offset.saturating_add(bytes.len() as u64).div_ceil(ps),
                )
            })
            .chain(held)
            .filter(|&(first, past)| past > low && first < end)
            .map(|(_, past)| past.min(end))
            .max()
        else {
            return;
        };
        let fill = match core.populate {
            Populate::Never | Populate::Allocate => false,
            Populate::WhenContended => core.backend.writes_contend(),
            Populate::Always => true,
        };
        let upto = end.min(hi.saturating_add(POPULATE_AHEAD_BYTES / ps));
        // Advice: when it fails (a disk too full for the whole reach ahead, say) the writes
        // allocate their own blocks as they would without it and report a disk that is
        // really full themselves; that stretch is not readied again. Offsets past u64 (a
        // corrupt extent) ready nothing.
        let mut ready = |from: PageId, call: ReadyCall| {
            let range = from.checked_mul(ps).zip((upto - from).checked_mul(ps));
            if range.is_none_or(|(at, len)| call(&*core.backend, at, len).is_err()) {
                self.populate_failures += 1;
            }
        };
        let mut next = tail;
        if fill && hi > filled {
            // The fill allocates as well (again, harmlessly, where `allocate` did).
            ready(filled, |b, at, len| b.populate(at, len));
            next.filled = upto;
            next.allocated = allocated.max(upto);
        } else {
            if hi > allocated {
                ready(allocated, |b, at, len| b.allocate(at, len));
                next.allocated = upto;
            }
            // Pages written are never filled: the fill resumes past them.
            next.filled = filled.max(hi);
        }
        self.fresh_tail = (next.allocated.min(next.filled) < end).then_some(next);
    }

    /// Commits `new_root` (whose pages are already in the buffer), freeing `freed` once
    /// `guard` dies and the commit is durable. With `durable`, also writes the slot and waits
    /// for a group sync. On error nothing of this commit is visible: its allocations are
    /// returned and the buffer is emptied (a failed sync also poisons the database).
    pub fn commit(
        &mut self,
        core: &DbCore,
        new_root: TreeRoot,
        freed: Vec<(PageId, u64)>,
        durable: bool,
        guard: Weak<Epoch>,
    ) -> Result<u64> {
        let page_size = u64::from(core.page_size);
        let entries = self
            .buffer
            .iter()
            .map(|(offset, bytes)| (offset / page_size, bytes.len() as u64 / page_size));
        let hold = self.hold.commit(&freed, entries);
        let result = self.write_out(core, new_root, durable, hold);
        let txn = match result {
            Ok(txn) => txn,
            Err(e) => {
                self.alloc.rollback();
                self.buffer.clear();
                return Err(e);
            }
        };
        self.last_txn = txn;
        self.root = new_root;
        self.commits += 1;
        self.alloc.committed(txn, durable, guard, freed);
        self.reclaim();
        Ok(txn)
    }

    /// Makes reusable the freed pages no snapshot and no durable state needs any more, and
    /// drops those of them still held unwritten: nothing will ever read them.
    pub fn reclaim(&mut self) {
        let page_size = u64::from(self.buffer.cache().page_size());
        let holding = self.buffer.held_bytes() != 0;
        // A run made reusable may cover several nodes (adjacent frees merge).
        let mut runs = std::mem::take(&mut self.reclaimed);
        self.alloc
            .reclaim(self.durable_txn, &mut |page: PageId, pages: u64| {
                if holding {
                    runs.push((page * page_size, (page + pages) * page_size));
                }
            });
        if !runs.is_empty() {
            let dropped = self.buffer.release_held(&runs);
            self.held_dropped_bytes += dropped;
            self.hold.dropped(dropped);
        }
        runs.clear();
        self.reclaimed = runs;
    }

    /// Writes the pages this space's commits hold (no slot, no sync).
    pub fn flush_held(&mut self, core: &DbCore) -> Result<()> {
        core.check_writable()?;
        self.reclaim();
        self.flush_buffer(u64::from(core.page_size))
    }

    fn write_out(&mut self, core: &DbCore, new_root: TreeRoot, durable: bool, hold: bool) -> Result<u64> {
        core.check_writable()?;
        let txn = self.last_txn + 1;
        let page_size = core.page_size as u64;
        let next_slot = 1 - self.durable_slot;
        // A commit without a slot may keep its pages in memory, within the budget: a later
        // commit may free some of them before they are written. When the budget is full, the
        // oldest held pages (the least likely to be freed soon) are written to make room, a
        // commit's worth at a time, so no commit waits for the whole budget.
        let commit_bytes = self.buffer.dirty_bytes();
        if hold && !durable && commit_bytes <= self.hold.budget() {
            let budget = self.hold.budget();
            if self.buffer.held_bytes() + commit_bytes > budget {
                // Pages no reader needs any more go first, unwritten.
                self.reclaim();
            }
            let over = (self.buffer.held_bytes() + commit_bytes).saturating_sub(budget);
            if over > 0 {
                let alloc = &self.alloc;
                let oracle = |start: u64, end: u64| alloc.is_free(start / page_size, end / page_size);
                let report = self.buffer.flush_oldest(over, &*self.policy, &oracle)?;
                self.count(&report);
            }
            self.hold.held(commit_bytes);
            self.buffer.hold();
            return Ok(txn);
        }
        // The pages first (held ones too, less those no reader needs any more): if any write
        // fails, no slot naming them exists anywhere.
        self.reclaim();
        self.populate_ahead(core);
        self.flush_buffer(page_size)?;
        if durable {
            let slot = Slot {
                magic: self.magic,
                owner: self.owner,
                txn,
                root: new_root,
                aux: self.aux,
                extents: self.alloc.extents().to_vec(),
            };
            let bytes = slot.encode(page_size as usize).ok_or(Error::SpaceFull {
                owner: self.owner,
                extents: self.alloc.extents().len(),
            })?;
            // A flush of its own: the slot usually lies apart from the pages (it is never a
            // free gap), so this rarely costs a call; when a page happens to sit next to the
            // slot it costs one.
            self.buffer.put(self.slot_pages[next_slot] * page_size, bytes)?;
            self.flush_buffer(page_size)?;
            core.sync()?;
            self.durable_slot = next_slot;
            self.durable_txn = txn;
            self.durable_commits += 1;
        }
        Ok(txn)
    }

    fn flush_buffer(&mut self, page_size: u64) -> Result<()> {
        if self.buffer.is_empty() && self.buffer.held_bytes() == 0 {
            return Ok(());
        }
        let alloc = &self.alloc;
        let oracle = |start: u64, end: u64| alloc.is_free(start / page_size, end / page_size);
        let had_held = self.buffer.held_bytes() != 0;
        let report = self.buffer.flush(&*self.policy, &oracle)?;
        if had_held {
            self.hold.written();
        }
        self.count(&report);
        Ok(())
    }

    /// Adds what a flush wrote to the space's counters.
    fn count(&mut self, report: &FlushReport) {
        self.flushed_runs += report.runs;
        self.flushed_page_bytes += report.page_bytes;
        self.flushed_gap_bytes += report.gap_bytes;
    }
}
