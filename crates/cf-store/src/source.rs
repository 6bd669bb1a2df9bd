//! Adapters between the B+tree and the store: pages read through the cache, written through
//! a space's allocator and write buffer.

use std::sync::Arc;

use pagecache::{PageCache, PageRef, WriteBuffer};

use crate::alloc::SpaceAllocator;
use crate::btree::{PageId, PageSink, PageSource};
use crate::format::Extent;
use crate::{Error, Result};

/// Reads committed pages through the shared page cache.
#[derive(Debug, Clone)]
pub struct CacheSource {
    pub cache: Arc<PageCache>,
}

impl PageSource for CacheSource {
    fn page_size(&self) -> usize {
        self.cache.page_size() as usize
    }

    fn read(&self, page: PageId) -> Result<PageRef> {
        let offset = page
            .checked_mul(self.cache.page_size() as u64)
            .ok_or_else(|| Error::Corruption {
                page,
                what: "page number beyond the address space".into(),
            })?;
        Ok(self.cache.read_page(offset)?)
    }
}

/// Allocates from one space and buffers the encoded pages in its write buffer.
pub struct CommitSink<'a> {
    pub alloc: &'a mut SpaceAllocator,
    pub buffer: &'a mut WriteBuffer,
    pub grow: &'a mut dyn FnMut(u64) -> Result<Extent>,
    /// Where the value buffers of encoded leaves go, for the space's next transaction.
    pub values: &'a mut ValuePool,
}

/// Value buffers of one space's committed transactions, for its next transaction's inserts
/// to copy their values into. A transaction copies every inserted value into a buffer of
/// its own and frees them all when its leaves are encoded at commit; with several writers
/// that freed megabyte sits at the top of the allocator's heap, and glibc gives it back to
/// the OS and faults it in again at the next transaction. Reusing the buffers avoids that
/// (W1 at one writer: see ARCHITECTURE.md, "Leaves longer than a page").
#[derive(Debug, Default)]
pub struct ValuePool {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

impl ValuePool {
    /// Most bytes of buffers a pool keeps.
    pub const MAX_BYTES: usize = 4 << 20;
    /// The longest buffer a pool keeps (an inline value is at most half a page).
    pub const MAX_BUFFER: usize = 32 << 10;

    /// A copy of `value`, in a kept buffer when there is one.
    pub fn copy_of(&mut self, value: &[u8]) -> Vec<u8> {
        match self.buffers.pop() {
            Some(mut buf) => {
                self.bytes -= buf.capacity();
                buf.clear();
                buf.extend_from_slice(value);
                buf
            }
            None => value.to_vec(),
        }
    }

    /// Keeps `buf` for a later [`ValuePool::copy_of`], within the bounds.
    pub fn keep(&mut self, buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap > 0 && cap <= Self::MAX_BUFFER && self.bytes + cap <= Self::MAX_BYTES {
            self.bytes += cap;
            self.buffers.push(buf);
        }
    }
}

impl PageSink for CommitSink<'_> {
    fn alloc(&mut self, count: u64) -> Result<PageId> {
        self.alloc.alloc(count, self.grow)
    }

    fn write(&mut self, page: PageId, bytes: Box<[u8]>) -> Result<()> {
        let offset = page * self.buffer.cache().page_size() as u64;
        Ok(self.buffer.put(offset, bytes)?)
    }

    fn recycle_value(&mut self, value: Vec<u8>) {
        self.values.keep(value);
    }

    fn node_buffer(&mut self, len: usize) -> Box<[u8]> {
        let page_size = self.buffer.cache().page_size() as usize;
        let buf = self.buffer.run_buffer(len / page_size);
        debug_assert_eq!(buf.len(), len);
        buf
    }
}
