//! `NodeIndex` and `IndexCache`: where a verified committed node's keys are, kept so that
//! lookups and ranges binary-search the node in its bytes and take its entries there, instead
//! of parsing or decoding it from the start.
//!
//! The page format has no offset array: entries are variable-length and follow each other,
//! so finding a key means walking the node from its header. Without the index a lookup does
//! that at every level (`parse`, comparing each key against the one sought and against the
//! one before), after copying a leaf of several pages together. With it, the first lookup to
//! reach a node parses it whole once (verifying it), records where each key begins and its
//! first 8 bytes, and keeps that with the node's bytes; later lookups compare about log2(n)
//! prefixes and touch the node's bytes for one key.
//!
//! A lookup (or a range) that finds a node indexed reads nothing: the entry holds the node's bytes,
//! verified when it was built (or known good then: `PageRef::is_checked`). What makes that
//! right is the rule every cache of committed pages here rests on: a page is rewritten only
//! once no snapshot can reach the node it held (MVCC), and a lookup or range reaches a node
//! only through a snapshot. Two guards keep an entry from being taken for another node, as the
//! writers' [`super::BranchCache`] has:
//! - every tree page a commit of any space writes drops the entry kept under that page first
//!   ([`IndexCache::forget`], from `CommitSink::write`, where every tree node and overflow
//!   page is written). A reader cannot keep an entry for a page after a commit rewrote it:
//!   the reader reached the old node through its snapshot, so the page was not reused before
//!   the reader let go of the snapshot, after its insert. (Pages written elsewhere are slots,
//!   which are never nodes, and zeros a flush fills into free gaps, which no snapshot
//!   reaches: a page becomes a node again only through `CommitSink::write`. An entry kept
//!   under the first page of a node of several pages is not dropped when another commit
//!   rewrites one of its later pages; by then no snapshot reaches the node, and the entry
//!   holds bytes of its own.)
//! - an entry is only taken for the pointer it was built for (page and crc32c), so a stale
//!   one would also need a node with the same checksum at the same page.
//!
//! The mmap path keeps no index (the database makes none): its bytes are the mapping's,
//! which a reader may use only while it holds its snapshot.

use std::cmp::Ordering;
use std::sync::atomic::{self, AtomicBool, AtomicU64};
use std::sync::Arc;

use pagecache::PageRef;
use quick_cache::sync::Cache;
use quick_cache::Weighter;

use super::node::{child_at, corrupt, key_at, key_offsets, value_at, Value, ValueRef, HEADER_LEN};
use super::store::{NodePtr, PageId};
use crate::Result;

/// A verified node and where its keys begin.
pub(crate) struct NodeIndex {
    /// crc32c of the node, from the pointer that led to it.
    crc: u32,
    /// All the node's bytes.
    bytes: PageRef,
    page: PageId,
    leaf: bool,
    /// Offset in `bytes` of each key, in key order.
    keys: Box<[u32]>,
    /// Each key's first 8 bytes ([`prefix`]), so that a search compares most keys without
    /// touching the node's bytes: each probe into a node that is not in the CPU's caches is a
    /// cache miss, and the key's length and bytes were two.
    prefixes: Box<[u64]>,
}

/// A key's first 8 bytes as a big-endian number, zero-padded: where two prefixes differ, the
/// keys compare the same way (a shorter key padded with zeros is still below a longer one
/// with a nonzero byte there); where they are equal the keys must be compared whole.
fn prefix(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = key.len().min(8);
    bytes[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(bytes)
}

impl std::fmt::Debug for NodeIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIndex")
            .field("page", &self.page)
            .field("leaf", &self.leaf)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// Where a lookup goes from a node.
pub(crate) enum Step {
    /// Down to this child (the node is a branch).
    Child(NodePtr),
    /// The leaf's value for the key, if it holds the key.
    Found(Option<Value>),
}

impl NodeIndex {
    /// Parses the node in `bytes` whole (verifying its format) and records where its keys
    /// begin. `bytes` must already have passed its checksum (or be known good).
    pub(crate) fn build(ptr: NodePtr, bytes: PageRef, page_size: usize) -> Result<NodeIndex> {
        let (leaf, keys) = key_offsets(ptr.page, &bytes, page_size)?;
        let mut index = NodeIndex {
            crc: ptr.crc,
            bytes,
            page: ptr.page,
            leaf,
            keys: keys.into_boxed_slice(),
            prefixes: Box::new([]),
        };
        index.prefixes = (0..index.keys.len())
            .map(|i| index.key(i).map(prefix))
            .collect::<Result<_>>()?;
        Ok(index)
    }

    /// Whether this entry was built for the node `ptr` points to.
    fn holds(&self, ptr: NodePtr) -> bool {
        #[cfg(test)]
        if tests::PAGE_ONLY.with(std::cell::Cell::get) {
            return self.page == ptr.page;
        }
        self.crc == ptr.crc && self.page == ptr.page
    }

    /// The child to descend to for `key` (a branch), or `key`'s value (a leaf).
    pub(crate) fn step(&self, key: &[u8]) -> Result<Step> {
        if !self.leaf {
            // Child `i` holds the keys from separator `i - 1` up to separator `i`.
            return Ok(Step::Child(self.child(self.rank_by::<true>(key)?)?));
        }
        let at = self.rank_by::<false>(key)?;
        let Some(&offset) = self.keys.get(at) else {
            return Ok(Step::Found(None));
        };
        if key_at(self.page, &self.bytes, true, offset as usize)? != key {
            return Ok(Step::Found(None));
        }
        let value = value_at(self.page, &self.bytes, offset as usize, key.len())?;
        Ok(Step::Found(Some(value.into())))
    }

    /// Whether the node is a leaf.
    pub(crate) fn is_leaf(&self) -> bool {
        self.leaf
    }

    /// The node's keys: a leaf's entries, or a branch's separators (one fewer than its
    /// children).
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// How many of the node's keys are below `key` (`or_equal`: not above it): for a leaf,
    /// where a cursor for `key` starts; for a branch with `or_equal`, the child that may hold
    /// `key`. A binary search over the prefixes that compares whole keys only where they tie.
    pub(crate) fn rank(&self, key: &[u8], or_equal: bool) -> Result<usize> {
        if or_equal {
            self.rank_by::<true>(key)
        } else {
            self.rank_by::<false>(key)
        }
    }

    /// [`NodeIndex::rank`], its rule fixed at compile time: this is the loop of every level of
    /// every lookup, and with the rule a runtime flag a lookup took 2,459 instructions
    /// against 2,236 (callgrind, `examples/point_lookups.rs`).
    #[inline(always)]
    fn rank_by<const OR_EQUAL: bool>(&self, key: &[u8]) -> Result<usize> {
        let want = prefix(key);
        let (mut lo, mut hi) = (0, self.keys.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let order = match self.prefixes[mid].cmp(&want) {
                Ordering::Equal => self.key(mid)?.cmp(key),
                order => order,
            };
            if order == Ordering::Less || (OR_EQUAL && order == Ordering::Equal) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Key `i`: a leaf's entry key or a branch's separator.
    #[inline]
    pub(crate) fn key(&self, i: usize) -> Result<&[u8]> {
        let at = self.offset(i)?;
        key_at(self.page, &self.bytes, self.leaf, at)
    }

    /// A leaf's entry `i`, key and value, in the node's bytes.
    pub(crate) fn entry(&self, i: usize) -> Result<(&[u8], ValueRef<'_>)> {
        let at = self.offset(i)?;
        let key = key_at(self.page, &self.bytes, self.leaf, at)?;
        Ok((key, value_at(self.page, &self.bytes, at, key.len())?))
    }

    /// Child `i` of a branch (`0..=len()`).
    pub(crate) fn child(&self, i: usize) -> Result<NodePtr> {
        let at = match i.checked_sub(1) {
            None => HEADER_LEN,
            Some(sep) => self.offset(sep)? + self.key(sep)?.len(),
        };
        child_at(self.page, &self.bytes, at)
    }

    /// Where key `i` begins in the node's bytes. Past the last key is corruption of the page
    /// (a caller that trusted a count from elsewhere), not a panic.
    #[inline]
    fn offset(&self, i: usize) -> Result<usize> {
        self.keys
            .get(i)
            .map(|&at| at as usize)
            .ok_or_else(|| corrupt(self.page, format!("no key {i} in a node of {}", self.keys.len())))
    }

    /// Bytes this entry keeps from being freed: the node, its offsets and prefixes.
    fn weight(&self) -> u64 {
        (self.bytes.len() + self.keys.len() * 12 + std::mem::size_of::<Self>()) as u64
    }
}

/// Weighs an entry by the bytes it keeps ([`NodeIndex::weight`]).
#[derive(Debug, Clone, Copy, Default)]
struct IndexWeighter;

impl Weighter<PageId, Arc<NodeIndex>> for IndexWeighter {
    fn weight(&self, _page: &PageId, index: &Arc<NodeIndex>) -> u64 {
        index.weight()
    }
}

/// Runs longer than this many pages (and than the entries kept) are forgotten by one pass
/// over the entries.
const LONG_RUN: u64 = 64;

/// The indexed nodes of one database, shared by all its readers and writers, bounded in
/// bytes ([`crate::DbBuilder::index_bytes`]).
pub(crate) struct IndexCache {
    map: Cache<PageId, Arc<NodeIndex>, IndexWeighter>,
    hits: AtomicU64,
    built: AtomicU64,
    /// Whether any node was ever kept: until then a commit's writes need not look for entries
    /// to drop (the cache's own emptiness check takes every shard's lock).
    used: AtomicBool,
}

impl std::fmt::Debug for IndexCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexCache")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Counters of the node index cache ([`crate::DbStats::index`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexStats {
    /// Lookups and range steps that found a node's index kept and searched it in place.
    pub hits: u64,
    /// Nodes parsed whole and indexed (each a miss).
    pub built: u64,
    /// Indexed nodes kept now.
    pub nodes: u64,
    /// Bytes they keep from being freed (node bytes, key offsets and prefixes).
    pub bytes: u64,
    /// The bound on those bytes.
    pub capacity_bytes: u64,
}

impl IndexCache {
    /// A cache keeping at most about `bytes` bytes of indexed nodes; `None` for 0 (lookups
    /// then parse every node they reach).
    pub(crate) fn new(bytes: u64, page_size: u32) -> Option<IndexCache> {
        (bytes > 0).then(|| IndexCache {
            map: Cache::with_weighter(
                usize::try_from(bytes / u64::from(page_size))
                    .unwrap_or(usize::MAX)
                    .max(1),
                bytes,
                IndexWeighter,
            ),
            hits: AtomicU64::new(0),
            built: AtomicU64::new(0),
            used: AtomicBool::new(false),
        })
    }

    /// The index of the node `ptr` points to, if kept for that very pointer.
    pub(crate) fn get(&self, ptr: NodePtr) -> Option<Arc<NodeIndex>> {
        let index = self.map.get(&ptr.page).filter(|index| index.holds(ptr))?;
        self.hits.fetch_add(1, atomic::Ordering::Relaxed);
        Some(index)
    }

    /// Keeps `index`, just built (never from the mapping: with the mmap read path the
    /// database makes no `IndexCache`).
    pub(crate) fn keep(&self, index: Arc<NodeIndex>) {
        self.built.fetch_add(1, atomic::Ordering::Relaxed);
        // Set before the insert: a commit that misses the flag cannot have missed the entry.
        self.used.store(true, atomic::Ordering::SeqCst);
        self.map.insert(index.page, index);
    }

    /// Drops the entries of pages `first..first + count`, about to be rewritten.
    pub(crate) fn forget(&self, first: PageId, count: u64) {
        if !self.used.load(atomic::Ordering::SeqCst) {
            return;
        }
        let end = first.saturating_add(count);
        if count > LONG_RUN && count > self.map.len() as u64 {
            // A long run (an overflow value) over fewer entries: one pass over the entries
            // instead of a removal per page.
            self.map.retain(|&page, _| !(first..end).contains(&page));
            return;
        }
        for page in first..end {
            self.map.remove(&page);
        }
    }

    pub(crate) fn stats(&self) -> IndexStats {
        IndexStats {
            hits: self.hits.load(atomic::Ordering::Relaxed),
            built: self.built.load(atomic::Ordering::Relaxed),
            nodes: self.map.len() as u64,
            bytes: self.map.weight(),
            capacity_bytes: self.map.capacity(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use flush::{Backend, MemBackend};
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::{u64_key, CfOptions, ColumnFamily, Db, Durability};

    thread_local! {
        /// Entries are taken for their page alone, the checksum ignored: only the first guard
        /// (commits dropping the entries of the pages they write) keeps lookups right.
        pub(super) static PAGE_ONLY: Cell<bool> = const { Cell::new(false) };
    }

    /// A one-page leaf holding `key` -> `value`, indexed as if read from `page`.
    fn leaf(page: PageId, key: &[u8], value: &[u8]) -> (NodePtr, Arc<NodeIndex>) {
        use super::super::node::{Entry, Node, ValueRef};
        let node = Node::Leaf(vec![Entry {
            key: key.into(),
            value: ValueRef::Inline(value).into(),
        }]);
        let bytes = node.encode(512);
        let ptr = NodePtr {
            page,
            crc: crate::checksum::crc32c(&bytes),
        };
        let index = NodeIndex::build(ptr, PageRef::from(bytes.into_vec()), 512).unwrap();
        (ptr, Arc::new(index))
    }

    #[test]
    fn an_entry_is_taken_only_for_its_pointer_and_until_its_page_is_written() {
        let cache = IndexCache::new(1 << 20, 512).unwrap();
        let (a, index) = leaf(10, b"a", b"1");
        cache.forget(10, 1);
        cache.keep(index);
        assert!(cache.get(a).is_some());
        assert!(
            cache.get(NodePtr { crc: a.crc ^ 1, ..a }).is_none(),
            "another checksum"
        );
        assert!(cache.get(NodePtr { page: 11, ..a }).is_none(), "another page");
        cache.forget(8, 2);
        cache.forget(11, 3);
        assert!(cache.get(a).is_some(), "writes beside its page keep it");
        cache.forget(9, 2);
        assert!(cache.get(a).is_none(), "a write of its page drops it");

        // A long run (an overflow value) drops every entry inside it, and only those.
        let (b, index) = leaf(100, b"b", b"2");
        cache.keep(index);
        let (c, index) = leaf(100 + LONG_RUN + 1, b"c", b"3");
        cache.keep(index);
        cache.forget(50, LONG_RUN + 1);
        assert!(cache.get(b).is_none() && cache.get(c).is_some());
        let stats = cache.stats();
        assert_eq!((stats.built, stats.nodes), (3, 1));
        assert!(stats.hits >= 3);
    }

    /// A database of 512-byte pages whose commits are all written (none held), so that freed
    /// pages are rewritten.
    fn rewriting_db() -> Db {
        let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
        Db::builder()
            .page_size(512)
            .hold_bytes(0)
            .initial_extent_pages(64)
            .open_backend(backend, "mem")
            .unwrap()
    }

    /// One commit of up to `changes` random inserts and removes of keys below `keys` (values
    /// of `fill` bytes), then every key looked up in a new snapshot against `model`.
    fn commit_and_look_up(
        cf: &ColumnFamily,
        model: &mut BTreeMap<Vec<u8>, Vec<u8>>,
        rng: &mut SmallRng,
        (keys, changes, fill): (u64, usize, u8),
    ) {
        let mut txn = cf.begin_write().unwrap();
        txn.set_durability(Durability::None);
        {
            let mut t = txn.open_table("t").unwrap();
            for _ in 0..rng.gen_range(1..=changes) {
                let k = u64_key(rng.gen_range(0..keys)).to_vec();
                if rng.gen_bool(0.3) {
                    assert_eq!(t.remove(&k).unwrap(), model.remove(&k));
                } else {
                    let v = vec![fill; rng.gen_range(0..300)];
                    assert_eq!(t.insert(&k, &v).unwrap(), model.insert(k, v));
                }
            }
        }
        txn.commit().unwrap();
        let read = cf.begin_read().unwrap();
        let t = read.open_table("t").unwrap();
        for k in 0..keys {
            let k = u64_key(k);
            assert_eq!(t.get(&k).unwrap().as_ref(), model.get(&k[..]), "key {k:?}");
        }
    }

    /// Random commits that free and rewrite pages, every state looked up against a model,
    /// with entries taken for their page alone: a commit that wrote a page without dropping
    /// its entry would leave the old node to be found there.
    #[test]
    fn commits_drop_the_entries_of_the_pages_they_write() {
        PAGE_ONLY.with(|p| p.set(true));
        let db = rewriting_db();
        let cf = db.create_cf("cf", CfOptions::default()).unwrap();
        let (mut model, mut rng) = (BTreeMap::new(), SmallRng::seed_from_u64(11));
        for round in 0..120u32 {
            commit_and_look_up(&cf, &mut model, &mut rng, (400, 40, round as u8));
        }
        let stats = db.stats().unwrap();
        assert!(stats.index.hits > 0);
        assert!(
            stats.io.bytes_written > 2 * stats.file_bytes,
            "pages were rewritten"
        );
        PAGE_ONLY.with(|p| p.set(false));
    }

    /// The same across column families: the pages of a dropped one are taken over by the
    /// next one created, whose commits and lookups must not meet the dropped one's entries.
    #[test]
    fn a_dropped_column_familys_pages_reused_by_another_drop_their_entries() {
        PAGE_ONLY.with(|p| p.set(true));
        let db = rewriting_db();
        let mut rng = SmallRng::seed_from_u64(5);
        for generation in 0..6u8 {
            let name = format!("cf{generation}");
            let cf = db.create_cf(&name, CfOptions::default()).unwrap();
            let mut model = BTreeMap::new();
            for _ in 0..8 {
                commit_and_look_up(&cf, &mut model, &mut rng, (200, 30, generation));
            }
            drop(cf);
            db.drop_cf(&name).unwrap();
        }
        let stats = db.stats().unwrap();
        assert!(stats.index.hits > 0);
        let (written, file) = (stats.io.bytes_written, stats.file_bytes);
        assert!(
            written > 3 * file,
            "the dropped column families' pages were reused: {written} bytes written, file {file}"
        );
        PAGE_ONLY.with(|p| p.set(false));
    }
}
