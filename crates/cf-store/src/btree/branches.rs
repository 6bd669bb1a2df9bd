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
//!
//! One kind of leaf is remembered, by its last key only: a sealed leaf a commit wrote at the
//! right edge of its tree ([`SealedEdge`]). An append past it starts a new leaf and leaves it
//! unwritten, so the next commit of appends needs nothing of it but that key, and the key
//! spares reading, checking and decoding the whole leaf (up to sixteen pages) to learn it.
//! The same two guards keep these coherent, keyed by the leaf's first page: a pointer to
//! that page becomes reachable again only through a write there, which drops the entry. Such
//! a leaf is then not read, so not checked, until something else reads it, as a kept
//! branch is not.

use quick_cache::unsync::Cache;

use super::node::{BranchImage, Key, Node};
use super::store::{NodePtr, PageId};

/// A branch as a commit wrote it: decoded, and (usually) the bytes of its page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeptBranch {
    pub(crate) node: Node,
    /// The page `node` was written as, byte for byte, unless the commit that wrote it found it
    /// not worth keeping (a branch that takes many separators a commit).
    pub(crate) image: Option<BranchImage>,
}

/// A sealed leaf a commit wrote at the right edge of a tree: where it is and its last key
/// (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SealedEdge {
    pub(crate) ptr: NodePtr,
    pub(crate) last: Key,
}

/// Sealed edges kept at most: one a table being appended to, and few spaces append to more
/// tables than this at once. The oldest goes first.
const SEALED_EDGES: usize = 8;

/// Decoded branches of one space, by page; see the module doc.
pub(crate) struct BranchCache {
    /// Page -> (crc32c of its bytes, the branch kept).
    map: Cache<PageId, (u32, KeptBranch)>,
    capacity: usize,
    /// Branches taken out so far.
    taken: u64,
    /// Sealed leaves at right edges, oldest first.
    edges: Vec<SealedEdge>,
    /// Sealed edges taken out so far.
    edges_taken: u64,
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
            edges: Vec::new(),
            edges_taken: 0,
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

    /// Keeps `edge`, a sealed leaf a commit just wrote at the right edge of its tree.
    pub(crate) fn keep_sealed_edge(&mut self, edge: SealedEdge) {
        if self.capacity == 0 {
            return;
        }
        self.edges.retain(|kept| kept.ptr.page != edge.ptr.page);
        if self.edges.len() == SEALED_EDGES {
            self.edges.remove(0);
        }
        self.edges.push(edge);
    }

    /// The last key of the sealed leaf `ptr` points to, taken out, if it was kept under that
    /// very pointer.
    pub(crate) fn take_sealed_edge(&mut self, ptr: NodePtr) -> Option<Key> {
        let at = self.edges.iter().position(|kept| kept.ptr.page == ptr.page)?;
        let edge = self.edges.remove(at);
        (edge.ptr.crc == ptr.crc).then(|| {
            self.edges_taken += 1;
            edge.last
        })
    }

    /// Drops the entries of pages `first..first + count`, about to be rewritten.
    pub(crate) fn forget(&mut self, first: PageId, count: u64) {
        if !self.edges.is_empty() {
            let end = first.saturating_add(count);
            self.edges.retain(|kept| !(first..end).contains(&kept.ptr.page));
        }
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

    /// Sealed edges taken out so far (each one a leaf not read and decoded).
    pub(crate) fn edges_taken(&self) -> u64 {
        self.edges_taken
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

    fn edge(page: PageId, crc: u32, last: u8) -> SealedEdge {
        SealedEdge {
            ptr: NodePtr { page, crc },
            last: Key::from_slice(&[last]),
        }
    }

    #[test]
    fn a_sealed_edge_comes_back_once_and_only_for_its_pointer() {
        let mut cache = BranchCache::new(8);
        cache.keep_sealed_edge(edge(7, 70, 1));
        assert!(
            cache.take_sealed_edge(NodePtr { page: 7, crc: 71 }).is_none(),
            "other crc"
        );
        assert!(
            cache.take_sealed_edge(NodePtr { page: 7, crc: 70 }).is_none(),
            "a wrong take drops it"
        );
        cache.keep_sealed_edge(edge(7, 70, 1));
        cache.keep_sealed_edge(edge(7, 72, 2));
        assert_eq!(
            cache.take_sealed_edge(NodePtr { page: 7, crc: 72 }),
            Some(Key::from_slice(&[2])),
            "the newer one at a page replaces the older"
        );
        assert!(
            cache.take_sealed_edge(NodePtr { page: 7, crc: 72 }).is_none(),
            "taken out"
        );
        assert_eq!(cache.edges_taken(), 1, "only the hit counts");
    }

    #[test]
    fn forget_drops_sealed_edges_inside_the_run_and_few_are_kept() {
        let mut cache = BranchCache::new(8);
        for page in [3, 10, 20] {
            cache.keep_sealed_edge(edge(page, 0, 0));
        }
        cache.forget(8, 4);
        assert!(
            cache.take_sealed_edge(NodePtr { page: 10, crc: 0 }).is_none(),
            "10 in 8..12"
        );
        for page in [3, 20] {
            assert!(
                cache.take_sealed_edge(NodePtr { page, crc: 0 }).is_some(),
                "page {page}"
            );
        }
        for page in 0..100 {
            cache.keep_sealed_edge(edge(page, 0, 0));
        }
        assert_eq!(cache.edges.len(), SEALED_EDGES);
        assert!(
            cache.take_sealed_edge(NodePtr { page: 99, crc: 0 }).is_some(),
            "newest kept"
        );
        assert!(
            cache.take_sealed_edge(NodePtr { page: 0, crc: 0 }).is_none(),
            "oldest gone"
        );
        let mut none = BranchCache::new(0);
        none.keep_sealed_edge(edge(1, 0, 0));
        assert!(
            none.take_sealed_edge(NodePtr { page: 1, crc: 0 }).is_none(),
            "no capacity"
        );
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
