//! Adapters between the B+tree and the store: pages read through the cache, written through
//! a space's allocator and write buffer.

use std::cell::RefCell;
use std::sync::Arc;

use pagecache::{HeldPages, PageCache, PageRef, WriteBuffer};

use crate::alloc::SpaceAllocator;
use crate::btree::{
    BranchCache, IndexCache, KeptBranch, Key, NodePtr, PageId, PageSink, PageSource, SealedEdge,
};
use crate::format::Extent;
use crate::{Error, Result};

/// Reads committed pages: those a column family's commits hold unwritten first
/// ([`crate::DbBuilder::hold_bytes`]), then through the shared page cache.
#[derive(Debug, Clone)]
pub struct CacheSource {
    pub cache: Arc<PageCache>,
    /// Most pages a leaf grows to by appends ([`crate::DbBuilder::leaf_pages`]).
    pub leaf_pages: usize,
    /// The pages of the space this source reads that its commits hold unwritten (`None`
    /// where nothing is held: the catalog, recovery).
    pub held: Option<Arc<HeldPages>>,
    /// The database's indexed nodes, for lookups (`None`: [`crate::DbBuilder::index_bytes`]
    /// is 0, or the mmap read path).
    pub index: Option<Arc<IndexCache>>,
}

impl CacheSource {
    /// The held pages' bytes for `count` pages at `offset`, if held.
    fn held(&self, offset: u64, count: usize) -> Option<PageRef> {
        let len = u64::from(self.cache.page_size()).checked_mul(count as u64)?;
        self.held.as_ref()?.read(offset, len)
    }

    /// The byte offset of `page`; a page number past the address space is corruption.
    fn offset_of(&self, page: PageId) -> Result<u64> {
        page.checked_mul(self.cache.page_size() as u64)
            .ok_or_else(|| Error::Corruption {
                page,
                what: "page number beyond the address space".into(),
            })
    }
}

impl PageSource for CacheSource {
    fn page_size(&self) -> usize {
        self.cache.page_size() as usize
    }

    fn leaf_pages(&self) -> usize {
        self.leaf_pages
    }

    fn read(&self, page: PageId) -> Result<PageRef> {
        let offset = self.offset_of(page)?;
        if let Some(held) = self.held(offset, 1) {
            return Ok(held);
        }
        Ok(self.cache.read_page(offset)?)
    }

    fn read_run(&self, first: PageId, count: usize) -> Result<PageRef> {
        let offset = self.offset_of(first)?;
        if let Some(held) = self.held(offset, count.max(1)) {
            return Ok(held);
        }
        Ok(self.cache.read_run(offset, count)?)
    }

    /// The run without admitting it to the read cache on a miss: its pages are freed by the
    /// commit that replaces them, so caching them would only push out pages that are read
    /// again (ARCHITECTURE.md, "Nodes read to be replaced").
    fn read_run_to_replace(&self, first: PageId, count: usize) -> Result<PageRef> {
        let offset = self.offset_of(first)?;
        if let Some(held) = self.held(offset, count.max(1)) {
            return Ok(held);
        }
        Ok(self.cache.read_run_to_replace(offset, count)?)
    }

    fn mark_checked(&self, first: PageId, run: &PageRef) {
        if let Ok(offset) = self.offset_of(first) {
            self.cache.mark_checked(offset, run);
        }
    }

    fn index_cache(&self) -> Option<&IndexCache> {
        self.index.as_deref()
    }
}

/// A write transaction's view of its space's pages: committed pages through the cache,
/// and the branches the space's commits kept ([`BranchCache`]).
pub struct WriteSource<'a> {
    pub pages: &'a CacheSource,
    pub branches: &'a RefCell<BranchCache>,
}

impl PageSource for WriteSource<'_> {
    fn page_size(&self) -> usize {
        self.pages.page_size()
    }

    fn leaf_pages(&self) -> usize {
        self.pages.leaf_pages()
    }

    fn read(&self, page: PageId) -> Result<PageRef> {
        self.pages.read(page)
    }

    fn read_run(&self, first: PageId, count: usize) -> Result<PageRef> {
        self.pages.read_run(first, count)
    }

    fn read_run_to_replace(&self, first: PageId, count: usize) -> Result<PageRef> {
        self.pages.read_run_to_replace(first, count)
    }

    fn mark_checked(&self, first: PageId, run: &PageRef) {
        self.pages.mark_checked(first, run);
    }

    fn take_branch(&self, ptr: NodePtr) -> Option<KeptBranch> {
        self.branches.borrow_mut().take(ptr)
    }

    fn return_branch(&self, ptr: NodePtr, kept: KeptBranch) {
        self.branches.borrow_mut().keep(ptr, kept);
    }

    fn take_sealed_edge(&self, ptr: NodePtr) -> Option<Key> {
        self.branches.borrow_mut().take_sealed_edge(ptr)
    }
}

/// Allocates from one space and buffers the encoded pages in its write buffer.
pub struct CommitSink<'a> {
    pub alloc: &'a mut SpaceAllocator,
    pub buffer: &'a mut WriteBuffer,
    pub grow: &'a mut dyn FnMut(u64) -> Result<Extent>,
    /// Where the value buffers of encoded leaves go, for the space's next transaction.
    pub values: &'a mut ValuePool,
    /// The space's kept branches: every page written drops its entry, and written branches
    /// are kept. `None` for a space whose transactions keep none (the catalog).
    pub branches: Option<&'a RefCell<BranchCache>>,
    /// The database's indexed nodes: every page written drops its entry (`None` where there
    /// are none).
    pub index: Option<&'a IndexCache>,
    /// Whether the pages written now enter the read cache when flushed
    /// ([`WriteBuffer::put_cached`]): set for the table directory, which the space's next
    /// transaction reads and its commit rewrites (ARCHITECTURE.md, "The table directory's
    /// pages enter the read cache").
    pub cache_written: bool,
}

/// Value buffers of one space's committed transactions, for its next transaction's inserts
/// to copy their values into. A transaction copies every inserted value into a buffer of
/// its own and frees them all when its leaves are encoded at commit. In W1 at one writer
/// that freed megabyte sat at the top of the allocator's heap, and glibc gave it back to
/// the OS and faulted it in again at the next transaction (ARCHITECTURE.md, "Leaves longer
/// than a page"). Reusing the buffers avoids that. Values that go to overflow pages are
/// copied but their buffers are not kept.
///
/// It also lends the transaction the write buffer's spare buffers of a leaf's most pages,
/// for the images of the leaves it appends to ([`crate::btree::InsertBuffers::leaf_buffer`]):
/// [`ValuePool::lend_leaf_buffers`] when the transaction begins, and
/// [`ValuePool::return_leaf_buffers`] the ones not used when it commits. A transaction
/// dropped without committing frees them; the write buffer's spare budget is trimmed to
/// what it still holds at its next flush.
#[derive(Debug, Default)]
pub struct ValuePool {
    buffers: Vec<Vec<u8>>,
    /// Spare buffers lent by the space's write buffer, each as long as a leaf's most pages.
    leaf_buffers: Vec<Box<[u8]>>,
    /// Capacity of the kept buffers plus [`ValuePool::OVERHEAD`] each.
    bytes: usize,
}

impl crate::btree::InsertBuffers for ValuePool {
    fn copy_of(&mut self, value: &[u8]) -> Vec<u8> {
        ValuePool::copy_of(self, value)
    }

    fn leaf_buffer(&mut self, len: usize) -> Vec<u8> {
        match self.leaf_buffers.iter().rposition(|b| b.len() == len) {
            Some(i) => {
                let mut buf = self.leaf_buffers.swap_remove(i).into_vec();
                buf.clear();
                buf
            }
            None => Vec::with_capacity(len),
        }
    }
}

impl ValuePool {
    /// Takes buffers (spares of the write buffer) for leaf images.
    pub fn lend_leaf_buffers(&mut self, bufs: Vec<Box<[u8]>>) {
        self.leaf_buffers.extend(bufs);
    }

    /// The lent buffers not used, to give back to the write buffer.
    pub fn return_leaf_buffers(&mut self) -> Vec<Box<[u8]>> {
        std::mem::take(&mut self.leaf_buffers)
    }

    /// Most bytes a pool keeps, counting [`ValuePool::OVERHEAD`] per buffer.
    pub const MAX_BYTES: usize = 4 << 20;
    /// The shortest buffer a pool keeps: small allocations are cheap to make again, and a
    /// pool of tiny ones would cost more in bookkeeping than it saves.
    pub const MIN_BUFFER: usize = 256;
    /// The longest buffer a pool keeps, and the longest value copied into a kept one (an
    /// inline value is at most half a page, so longer ones go to overflow pages).
    pub const MAX_BUFFER: usize = 32 << 10;
    /// What a kept buffer costs beyond its capacity: its `Vec` and the allocator's header.
    pub const OVERHEAD: usize = 32;

    /// A copy of `value`, in a kept buffer when there is one and the value is not longer
    /// than [`ValuePool::MAX_BUFFER`].
    pub fn copy_of(&mut self, value: &[u8]) -> Vec<u8> {
        if value.len() > Self::MAX_BUFFER {
            return value.to_vec();
        }
        match self.buffers.pop() {
            Some(mut buf) => {
                self.bytes -= buf.capacity() + Self::OVERHEAD;
                buf.clear();
                buf.extend_from_slice(value);
                buf
            }
            None => value.to_vec(),
        }
    }

    /// Keeps `buf` for a later [`ValuePool::copy_of`] if its capacity is from
    /// [`ValuePool::MIN_BUFFER`] to [`ValuePool::MAX_BUFFER`] and the pool has room.
    pub fn keep(&mut self, buf: Vec<u8>) {
        let cost = buf.capacity() + Self::OVERHEAD;
        if (Self::MIN_BUFFER..=Self::MAX_BUFFER).contains(&buf.capacity())
            && self.bytes + cost <= Self::MAX_BYTES
        {
            self.bytes += cost;
            self.buffers.push(buf);
        }
    }
}

impl PageSink for CommitSink<'_> {
    fn alloc(&mut self, count: u64) -> Result<PageId> {
        self.alloc.alloc(count, self.grow)
    }

    fn write(&mut self, page: PageId, bytes: Box<[u8]>) -> Result<()> {
        let page_size = self.buffer.cache().page_size() as u64;
        let count = bytes.len() as u64 / page_size;
        if let Some(branches) = self.branches {
            branches.borrow_mut().forget(page, count);
        }
        if let Some(index) = self.index {
            index.forget(page, count);
        }
        if self.cache_written {
            Ok(self.buffer.put_cached(page * page_size, bytes)?)
        } else {
            Ok(self.buffer.put(page * page_size, bytes)?)
        }
    }

    fn keeps_branches(&self) -> bool {
        self.branches.is_some_and(|b| b.borrow().keeps())
    }

    fn keep_branch(&mut self, ptr: NodePtr, kept: KeptBranch) {
        if let Some(branches) = self.branches {
            branches.borrow_mut().keep(ptr, kept);
        }
    }

    fn keep_sealed_edge(&mut self, edge: SealedEdge) {
        if let Some(branches) = self.branches {
            branches.borrow_mut().keep_sealed_edge(edge);
        }
    }

    fn recycle_value(&mut self, value: Vec<u8>) {
        self.values.keep(value);
    }

    fn node_buffer(&mut self, len: usize) -> Vec<u8> {
        let page_size = self.buffer.cache().page_size() as usize;
        let buf = self.buffer.run_vec(len / page_size);
        debug_assert_eq!(buf.capacity(), len);
        buf
    }

    fn recycle_leaf_buffer(&mut self, mut buf: Vec<u8>) {
        // A spare is as long as its capacity; its next user overwrites the zeros.
        buf.resize(buf.capacity(), 0);
        self.buffer.give_spares(vec![buf.into_boxed_slice()]);
    }
}

#[cfg(test)]
mod tests {
    use super::ValuePool;

    /// Kept buffers come back for copies; tiny, huge and over-budget ones are not kept, and
    /// the pool's count of bytes never passes its bound.
    #[test]
    fn value_pool_keeps_bounded_buffers() {
        let mut pool = ValuePool::default();
        let buf = pool.copy_of(&[7; 1024]);
        let ptr = buf.as_ptr();
        pool.keep(buf);
        let again = pool.copy_of(&[9; 1000]);
        assert_eq!(again.as_ptr(), ptr, "the kept buffer is reused");
        assert_eq!(again, vec![9; 1000]);
        pool.keep(vec![0; 16]);
        pool.keep(vec![0; ValuePool::MAX_BUFFER + 1]);
        assert!(pool.buffers.is_empty(), "tiny and huge buffers are freed");
        assert_eq!(
            pool.copy_of(&[1; ValuePool::MAX_BUFFER + 1]).len(),
            ValuePool::MAX_BUFFER + 1
        );
        for _ in 0..10_000 {
            pool.keep(vec![0; 1024]);
        }
        assert!(pool.bytes <= ValuePool::MAX_BYTES);
        assert_eq!(
            pool.buffers.len(),
            ValuePool::MAX_BYTES / (1024 + ValuePool::OVERHEAD)
        );
    }
}
