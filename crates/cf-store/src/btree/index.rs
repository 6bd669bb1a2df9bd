//! `NodeIndex` and `IndexCache`: where a verified committed node's keys are, kept so that
//! point lookups binary-search the node in its bytes instead of parsing it from the start.
//!
//! The page format has no offset array: entries are variable-length and follow each other,
//! so finding a key means walking the node from its header. A lookup did that at every
//! level (parse, and compare each key against the one sought and against the one before),
//! and copied a leaf of several pages together first. Now the first lookup to reach a node
//! parses it whole once (verifying it), records where each key begins, and keeps that with
//! the node's bytes; later lookups compare about log2(n) keys.
//!
//! A lookup that finds a node indexed reads nothing: the entry holds the node's verified
//! bytes. Coherence has two guards, as the writers' [`super::BranchCache`] has:
//! - every page a commit of any space writes drops the entry of that page first
//!   ([`IndexCache::forget`], from the one place tree pages are written,
//!   `CommitSink::write`), so an entry always describes the bytes its page holds. A reader
//!   cannot index a page after the commit that rewrites it has dropped it: the reader reached
//!   the old node through its snapshot, and a page is reused only once no snapshot reaches
//!   it, so the reader's insert happens before the reuse;
//! - an entry is only used for the pointer it was built for (page and crc32c), so a stale
//!   one would also need a checksum collision.
//!
//! Nodes read through the mmap path are not kept: their bytes are the mapping's, which a
//! reader may use only while it holds its snapshot.

use std::cmp::Ordering;
use std::sync::atomic::{self, AtomicBool, AtomicU64};
use std::sync::Arc;

use pagecache::PageRef;
use quick_cache::sync::Cache;
use quick_cache::Weighter;

use super::node::{child_at, key_at, key_offsets, value_at, Value, HEADER_LEN};
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
        self.crc == ptr.crc && self.page == ptr.page
    }

    fn key(&self, i: usize) -> Result<&[u8]> {
        key_at(self.page, &self.bytes, self.leaf, self.keys[i] as usize)
    }

    /// The child to descend to for `key` (a branch), or `key`'s value (a leaf).
    pub(crate) fn step(&self, key: &[u8]) -> Result<Step> {
        // The first index whose key is greater than `key` (a branch: child `i` holds the keys
        // from separator `i - 1` up to separator `i`), or not less (a leaf).
        let want = prefix(key);
        let (mut lo, mut hi) = (0, self.keys.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let order = match self.prefixes[mid].cmp(&want) {
                Ordering::Equal => self.key(mid)?.cmp(key),
                order => order,
            };
            if order == Ordering::Less || (!self.leaf && order == Ordering::Equal) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if !self.leaf {
            let at = match lo.checked_sub(1) {
                None => HEADER_LEN,
                Some(sep) => self.keys[sep] as usize + self.key(sep)?.len(),
            };
            return Ok(Step::Child(child_at(self.page, &self.bytes, at)?));
        }
        if lo == self.keys.len() || self.key(lo)? != key {
            return Ok(Step::Found(None));
        }
        let value = value_at(self.page, &self.bytes, self.keys[lo] as usize, key.len())?;
        Ok(Step::Found(Some(value.into())))
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
    /// Lookups that found a node's index kept and searched it in place.
    pub hits: u64,
    /// Nodes parsed whole and indexed (each a miss).
    pub built: u64,
    /// Indexed nodes kept now.
    pub nodes: u64,
    /// Bytes they keep from being freed (node bytes and offsets).
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
                usize::try_from(bytes / u64::from(page_size)).unwrap_or(usize::MAX).max(1),
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

    /// Keeps `index`, just built, unless its bytes are the mapping's.
    pub(crate) fn keep(&self, index: Arc<NodeIndex>) {
        self.built.fetch_add(1, atomic::Ordering::Relaxed);
        if !index.bytes.is_mapped() {
            // Set before the insert: a commit that misses the flag cannot have missed the entry.
            self.used.store(true, atomic::Ordering::SeqCst);
            self.map.insert(index.page, index);
        }
    }

    /// Drops the entries of pages `first..first + count`, about to be rewritten.
    pub(crate) fn forget(&self, first: PageId, count: u64) {
        if !self.used.load(atomic::Ordering::SeqCst) {
            return;
        }
        for page in first..first.saturating_add(count) {
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
