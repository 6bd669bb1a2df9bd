//! `BranchCache`: decoded branches a column family's commits wrote, kept for its next
//! transactions, so that the paths every commit rewrites are not read and decoded again.
//!
//! A write transaction copies every node on the path of a change into its arena (copy on
//! write), and the upper branches of a tree are on almost every path: with ten random
//! inserts a commit, reading and decoding those branches took a third of the run (`perf`,
//! ARCHITECTURE.md). The commit that writes a branch keeps its decoded form here, under its
//! page, and the next descent that reaches that page takes it back out instead of reading
//! and decoding it: the node moves into the arena, since the change frees its page anyway.
//!
//! Coherence has two guards, each enough alone: every page a commit of the space writes
//! drops that page's entry first ([`BranchCache::forget`]), so an entry always decodes the
//! bytes its page holds; and an entry is only taken for the pointer it was kept under (page
//! and crc32c), so a stale one would also need a checksum collision. Stale entries could
//! otherwise come from a failed commit (its pages go back to the allocator) or a deleted
//! table. The proptest `kept_branches_build_what_decoded_pages_build` fails with both
//! guards removed. Leaves are not kept: they are most of a tree's bytes and, at random,
//! rarely revisited.
//!
//! Each branch is kept with the page it was written as (its image), so that the next commit
//! that changes only its children's pointers writes it by patching a copy of that page
//! ([`super::node::patch_branch_image`]) instead of encoding every separator again.

use quick_cache::unsync::Cache;

use super::node::{BranchImage, Node};
use super::store::{NodePtr, PageId};

/// A branch as a commit wrote it: decoded, and (usually) the bytes of its page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeptBranch {
    pub(crate) node: Node,
    /// The page `node` was written as, byte for byte, unless the commit that wrote it found it
    /// not worth keeping (a branch that takes many separators a commit).
    pub(crate) image: Option<BranchImage>,
}

/// Decoded branches of one space, by page; see the module doc.
pub(crate) struct BranchCache {
    /// Page -> (crc32c of its bytes, the branch kept).
    map: Cache<PageId, (u32, KeptBranch)>,
    capacity: usize,
    /// Branches taken out so far.
    taken: u64,
}

impl std::fmt::Debug for BranchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BranchCache")
            .field("len", &self.map.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl BranchCache {
    /// A cache of at most `capacity` branches (0: it keeps none).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: Cache::new(capacity.max(1)),
            capacity,
            taken: 0,
        }
    }

    /// Takes the branch `ptr` points to out of the cache, if it was kept under that very
    /// pointer.
    pub(crate) fn take(&mut self, ptr: NodePtr) -> Option<KeptBranch> {
        let (_, (crc, kept)) = self.map.remove(&ptr.page)?;
        let kept = (crc == ptr.crc).then_some(kept)?;
        self.taken += 1;
        Some(kept)
    }

    /// Keeps `kept`, a branch just written at `ptr` (or taken from there and not changed).
    pub(crate) fn keep(&mut self, ptr: NodePtr, kept: KeptBranch) {
        debug_assert!(matches!(kept.node, Node::Branch { .. }), "only branches are kept");
        if self.capacity == 0 {
            return;
        }
        self.map.insert(ptr.page, (ptr.crc, kept));
    }

    /// Drops the entries of pages `first..first + count`, about to be rewritten.
    pub(crate) fn forget(&mut self, first: PageId, count: u64) {
        if self.map.is_empty() {
            return;
        }
        if count > self.capacity as u64 {
            // A long run (an overflow value): clearing is cheaper than a lookup per page.
            self.map.clear();
            return;
        }
        for page in first..first.saturating_add(count) {
            self.map.remove(&page);
        }
    }

    /// Whether it keeps any branch (its capacity is not 0).
    pub(crate) fn keeps(&self) -> bool {
        self.capacity > 0
    }

    /// Branches it holds now.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Branches taken out so far (each one a page not read and decoded).
    pub(crate) fn taken(&self) -> u64 {
        self.taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btree::node::{Child, Key};

    fn branch(tag: u8) -> KeptBranch {
        let node = Node::Branch {
            keys: vec![Key::from_slice(&[tag])],
            children: vec![
                Child::Clean(NodePtr { page: 100, crc: 1 }),
                Child::Clean(NodePtr { page: 101, crc: 2 }),
            ],
        };
        let image = Some(BranchImage {
            page: node.encode(512),
            used: node.encoded_len(),
        });
        KeptBranch { node, image }
    }

    #[test]
    fn a_branch_comes_back_only_for_the_pointer_it_was_kept_under() {
        let mut cache = BranchCache::new(8);
        cache.keep(NodePtr { page: 7, crc: 70 }, branch(1));
        assert!(cache.take(NodePtr { page: 7, crc: 71 }).is_none(), "other crc");
        assert!(
            cache.take(NodePtr { page: 7, crc: 70 }).is_none(),
            "a wrong take drops it"
        );
        cache.keep(NodePtr { page: 7, crc: 70 }, branch(1));
        assert_eq!(cache.take(NodePtr { page: 7, crc: 70 }), Some(branch(1)));
        assert!(cache.take(NodePtr { page: 7, crc: 70 }).is_none(), "taken out");
        assert_eq!(cache.taken(), 1, "only the hit counts");
    }

    #[test]
    fn forget_drops_every_page_of_a_run_and_long_runs_clear_it() {
        let mut cache = BranchCache::new(8);
        for page in 0..6 {
            cache.keep(NodePtr { page, crc: 0 }, branch(page as u8));
        }
        cache.forget(2, 3);
        assert_eq!(cache.len(), 3);
        for page in [0, 1, 5] {
            assert!(cache.take(NodePtr { page, crc: 0 }).is_some(), "page {page} kept");
        }
        cache.keep(NodePtr { page: 1000, crc: 0 }, branch(0));
        cache.forget(1, 9);
        assert_eq!(cache.len(), 0, "a run longer than the capacity clears it");
    }

    #[test]
    fn a_cache_of_no_capacity_keeps_nothing() {
        let mut cache = BranchCache::new(0);
        cache.keep(NodePtr { page: 1, crc: 0 }, branch(0));
        assert_eq!(cache.len(), 0);
        assert!(cache.take(NodePtr { page: 1, crc: 0 }).is_none());
    }

    #[test]
    fn capacity_bounds_it() {
        let mut cache = BranchCache::new(16);
        for page in 0..1000 {
            cache.keep(NodePtr { page, crc: 0 }, branch(0));
        }
        assert!(cache.len() <= 16 + 16 / 10 + 1, "{} kept", cache.len());
    }
}
