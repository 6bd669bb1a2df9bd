//! What the B+tree needs from the store: reading committed pages, allocating and writing new ones.

use super::branches::{KeptBranch, SealedEdge};
use super::node::Key;
use crate::Result;

/// A page number: byte offset / page size.
pub type PageId = u64;

/// A pointer to a committed tree node: its page and the crc32c of the page's bytes. Parents
/// hold their children's checksums (and commit slots hold the root's), so a torn, stale or
/// bit-flipped page is caught when it is read, whichever state reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodePtr {
    /// Where the node is (its first page).
    pub page: PageId,
    /// crc32c of all the node's bytes: its one page, or every page of a leaf that spans
    /// several.
    pub crc: u32,
}

/// The committed state of one tree: its root (none when empty) and entry count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TreeRoot {
    /// The root node, or `None` for an empty tree.
    pub root: Option<NodePtr>,
    /// Number of entries.
    pub len: u64,
}

impl TreeRoot {
    /// Encoded size of a `TreeRoot`.
    pub const ENCODED_LEN: usize = 24;

    /// Fixed little-endian encoding: page (u64; `u64::MAX` = empty), crc (u32), 4 zero
    /// bytes, len (u64).
    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        let (page, crc) = self.root.map_or((u64::MAX, 0), |r| (r.page, r.crc));
        out[0..8].copy_from_slice(&page.to_le_bytes());
        out[8..12].copy_from_slice(&crc.to_le_bytes());
        out[16..24].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    /// Decodes [`TreeRoot::encode`]'s output; `None` if `bytes` is not exactly that shape.
    pub fn decode(bytes: &[u8]) -> Option<TreeRoot> {
        if bytes.len() != Self::ENCODED_LEN || bytes[12..16] != [0; 4] {
            return None;
        }
        let page = u64::from_le_bytes(bytes[0..8].try_into().ok()?);
        let crc = u32::from_le_bytes(bytes[8..12].try_into().ok()?);
        let len = u64::from_le_bytes(bytes[16..24].try_into().ok()?);
        let root = (page != u64::MAX).then_some(NodePtr { page, crc });
        if root.is_none() && (crc != 0 || len != 0) {
            return None;
        }
        Some(TreeRoot { root, len })
    }
}

/// Reads committed pages. Implemented by the store over its page cache, and by an in-memory
/// map in tests. Implementations do not verify checksums: the tree does, against the
/// pointer it followed.
pub trait PageSource {
    /// The page size in bytes.
    fn page_size(&self) -> usize;

    /// Most pages a leaf may grow to by appends, from 1 to [`super::MAX_LEAF_PAGES`]
    /// (clamped to that, and to fewer at pages over 16 KiB); leaves of up to the most the
    /// page size allows are read whatever this says.
    fn leaf_pages(&self) -> usize {
        super::MAX_LEAF_PAGES
    }

    /// The bytes of one committed page. A page beyond the file is an error, never a panic.
    fn read(&self, page: PageId) -> Result<pagecache::PageRef>;

    /// The bytes of `count` committed pages from `first`, as one buffer (a node that spans
    /// pages). The default reads them one by one and joins them.
    fn read_run(&self, first: PageId, count: usize) -> Result<pagecache::PageRef> {
        let mut all = Vec::new();
        for i in 0..count as u64 {
            let page = first.checked_add(i).ok_or_else(|| crate::Error::Corruption {
                page: first,
                what: "node runs past the last page".into(),
            })?;
            all.extend_from_slice(&self.read(page)?);
        }
        Ok(all.into())
    }

    /// [`PageSource::read_run`] of a node a write transaction is about to copy into its arena
    /// and replace (copy-on-write): a source with a cache may leave such a node out of it,
    /// since its old pages are freed by the commit. The default is `read_run`.
    fn read_run_to_replace(&self, first: PageId, count: usize) -> Result<pagecache::PageRef> {
        self.read_run(first, count)
    }

    /// Tells the source that `run`, the bytes it returned for the node at `first`, matched the
    /// node's checksum, so that it can hand them out as known good from now on
    /// ([`pagecache::PageRef::is_checked`]). The default remembers nothing.
    fn mark_checked(&self, _first: PageId, _run: &pagecache::PageRef) {}

    /// Where lookups keep the nodes they indexed ([`super::IndexCache`]), shared by every
    /// reader of the file. The default keeps none: lookups parse every node they reach.
    fn index_cache(&self) -> Option<&super::IndexCache> {
        None
    }

    /// The decoded branch `ptr` points to, taken out of the writer's [`super::BranchCache`]
    /// when it is there (a write transaction's descent, about to copy the branch into its
    /// arena). The default keeps none.
    fn take_branch(&self, _ptr: NodePtr) -> Option<KeptBranch> {
        None
    }

    /// Gives back a branch [`PageSource::take_branch`] returned that was not changed after
    /// all. The default drops it.
    fn return_branch(&self, _ptr: NodePtr, _kept: KeptBranch) {}

    /// The last key of the sealed leaf `ptr` points to, taken out of the writer's
    /// [`super::BranchCache`] when a commit kept it there ([`super::SealedEdge`]): a write
    /// transaction's descent at the right edge, which then need not read the leaf. The
    /// default keeps none.
    fn take_sealed_edge(&self, _ptr: NodePtr) -> Option<Key> {
        None
    }
}

/// Where a committing tree puts its new pages. Implemented by the store over the column
/// family's allocator and write buffer, and by an in-memory map in tests.
pub trait PageSink {
    /// Allocates `count` (>= 1) contiguous pages for the commit being built; returns the first.
    /// Successive calls tend to return ascending, adjacent pages, so a commit's pages coalesce.
    fn alloc(&mut self, count: u64) -> Result<PageId>;

    /// Hands the encoded bytes of pages `page..page + bytes.len() / page_size` to the writer.
    /// `bytes.len()` is a non-zero multiple of the page size.
    fn write(&mut self, page: PageId, bytes: Box<[u8]>) -> Result<()>;

    /// Takes back the buffer of an inline value whose leaf has been encoded. The default
    /// frees it.
    fn recycle_value(&mut self, _value: Vec<u8>) {}

    /// An empty vector with room for exactly `len` bytes (whole pages) to encode a node
    /// into. The default allocates one.
    fn node_buffer(&mut self, len: usize) -> Vec<u8> {
        Vec::with_capacity(len)
    }

    /// Takes back the buffer of a leaf image that commit did not write (the leaf took fewer
    /// pages than the image had room for), for later node buffers. The default frees it.
    fn recycle_leaf_buffer(&mut self, _buf: Vec<u8>) {}

    /// Takes a branch just written at `ptr`, decoded and as its page, for later
    /// transactions' descents ([`super::BranchCache`]). The default drops it.
    fn keep_branch(&mut self, _ptr: NodePtr, _kept: KeptBranch) {}

    /// Takes the sealed leaf a commit just wrote at the right edge of its tree, for the next
    /// transaction's descent ([`PageSource::take_sealed_edge`]). The default drops it.
    fn keep_sealed_edge(&mut self, _edge: SealedEdge) {}

    /// Whether [`PageSink::keep_branch`] keeps anything: a commit copies each branch it
    /// encodes into an image only then. The default keeps nothing.
    fn keeps_branches(&self) -> bool {
        false
    }

    /// Told each time a commit writes a branch by patching its kept page instead of
    /// encoding it (what tests check happens). The default ignores it.
    fn branch_patched(&mut self) {}
}

/// Where a write transaction's inserts get their memory: the tree's copy of each value that
/// does not go into a leaf image, and the buffers of leaf images ([`super::image`]).
/// Implemented by the store over the space's value buffers and the write buffer's spares.
pub trait InsertBuffers {
    /// A copy of `value` in a vector of its own.
    fn copy_of(&mut self, value: &[u8]) -> Vec<u8>;

    /// An empty vector with room for exactly `len` bytes (whole pages), for a leaf's image.
    fn leaf_buffer(&mut self, len: usize) -> Vec<u8>;
}

/// [`InsertBuffers`] that allocate every buffer (the table directory, and tests).
#[derive(Debug, Default)]
pub struct FreshBuffers;

impl InsertBuffers for FreshBuffers {
    fn copy_of(&mut self, value: &[u8]) -> Vec<u8> {
        value.to_vec()
    }

    fn leaf_buffer(&mut self, len: usize) -> Vec<u8> {
        Vec::with_capacity(len)
    }
}
