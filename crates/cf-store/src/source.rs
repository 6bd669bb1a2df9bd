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
}

impl PageSink for CommitSink<'_> {
    fn alloc(&mut self, count: u64) -> Result<PageId> {
        self.alloc.alloc(count, self.grow)
    }

    fn write(&mut self, page: PageId, bytes: Box<[u8]>) -> Result<()> {
        let offset = page * self.buffer.cache().page_size() as u64;
        Ok(self.buffer.put(offset, bytes)?)
    }

    fn page_buffer(&mut self, page_size: usize) -> Box<[u8]> {
        let buf = self.buffer.page_buffer();
        debug_assert_eq!(buf.len(), page_size);
        buf
    }
}
