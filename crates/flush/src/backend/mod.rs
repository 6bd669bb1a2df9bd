//! The `Backend` trait: positional I/O on one file, as the store and the plan executor need it.

mod file;
mod mem;

pub use file::{FileBackend, FileOptions};
pub use mem::MemBackend;

use std::fs::File;
use std::io::IoSlice;

use crate::{IoStats, Result};

/// Positional I/O on one file. Object safe, shared between threads (`Arc<dyn Backend>`).
///
/// Calls at disjoint offsets may run concurrently. Every backend keeps an [`IoStats`] and
/// counts each call it makes on the file (for `FileBackend`, each system call).
// `len` is a file length read with a system call; an `is_empty` beside it would add nothing.
#[allow(clippy::len_without_is_empty)]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// The file's length in bytes.
    fn len(&self) -> Result<u64>;

    /// Fills `buf` from `offset`. A file too short to fill it is
    /// [`crate::FlushError::UnexpectedEof`].
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()>;

    /// Writes all of `buf` at `offset`, growing the file if needed.
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()>;

    /// Writes the concatenation of `bufs` at `offset`, growing the file if needed.
    fn write_vectored_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> Result<()>;

    /// Makes each call of `calls` in order, as [`Backend::write_at`] (one slice) or
    /// [`Backend::write_vectored_at`] (several) would, and stops at the first error: calls
    /// before it are written and the rest are not. A backend whose writers take turns at the
    /// file (`FileBackend`) takes one turn for the whole batch, so a flush of several runs
    /// queues once. Default: the calls one by one.
    fn write_batch(&self, calls: &[WriteCall<'_>]) -> Result<()> {
        for call in calls {
            match call.bufs {
                [one] => self.write_at(one, call.offset)?,
                bufs => self.write_vectored_at(bufs, call.offset)?,
            }
        }
        Ok(())
    }

    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> Result<()>;

    /// Makes every completed write durable (`fdatasync`).
    fn sync_data(&self) -> Result<()>;

    /// Allocates the file's blocks for `[offset, offset + len)` ahead of the writes about to
    /// come, so that they find their blocks reserved and skip the file system's delayed
    /// allocation of each block. It must never change a byte already in the file; it is
    /// meant for ranges never written. Where the backend can, the file grows to cover the
    /// range (with zeros). A backend may make the allocation later, as long as it comes
    /// before the next write call the same thread makes through it (`FileBackend` leaves it
    /// to its next write turn, the caller's or an earlier one). Default: nothing, for
    /// backends without blocks to allocate.
    ///
    /// It is cheap (one `fallocate` per range for a `FileBackend`), and it shortens the
    /// write calls into the range, which matter most where writes to one file are serial:
    /// `cf_store::Populate::Allocate` measured it.
    fn allocate(&self, offset: u64, len: u64) -> Result<()> {
        let _ = (offset, len);
        Ok(())
    }

    /// [`Backend::allocate`], then fills the OS page cache with the range's zero pages, so
    /// that the writes about to come only copy. The same rules hold: it must never change a
    /// byte already in the file (on written ranges it only costs reads). Default: nothing,
    /// for backends without a page cache.
    ///
    /// The fill can pay only when writers queue for the file (see
    /// [`Backend::writes_contend`]): the work it moves out of the write calls is work they
    /// would have done anyway, plus a zero fill. Whether it pays even then depends on how
    /// slow the write calls are (see `cf_store::Populate`).
    fn populate(&self, offset: u64, len: u64) -> Result<()> {
        let _ = (offset, len);
        Ok(())
    }

    /// True when recent write calls had to wait for another writer's call on this file, so
    /// that work moved out of write calls ([`Backend::populate`]) shortens everyone's wait.
    /// A `FileBackend` makes `fallocate` in a write turn too (ext4 serializes it with
    /// writes): `populate` takes a turn of its own, and `allocate` is made at the start of
    /// the next turn, so its time counts in that turn's hold.
    /// Default: `false`. `FileBackend` can tell only while its writes are serialized
    /// (`FileOptions::serialize_writes`, the default); without that it reports `false`.
    fn writes_contend(&self) -> bool {
        false
    }

    /// The counters of this backend's I/O.
    fn stats(&self) -> &IoStats;

    /// The open file behind this backend, when there is exactly one and reading it through a
    /// memory map sees every write made through this backend. `None` for in-memory backends
    /// and for wrappers that change what the file holds (crash or fault simulators).
    fn file(&self) -> Option<&File> {
        None
    }
}

/// One write of a [`Backend::write_batch`]: the concatenation of `bufs` at `offset`.
#[derive(Debug, Clone, Copy)]
pub struct WriteCall<'a> {
    /// Where the first byte goes.
    pub offset: u64,
    /// The bytes, in order.
    pub bufs: &'a [IoSlice<'a>],
}

/// Total length of a list of slices.
pub(crate) fn total_len(bufs: &[IoSlice<'_>]) -> u64 {
    bufs.iter().map(|b| b.len() as u64).sum()
}

/// `offset + len`, or the typed overflow error.
pub(crate) fn checked_end(offset: u64, len: u64) -> Result<u64> {
    offset
        .checked_add(len)
        .ok_or(crate::FlushError::OffsetOverflow { offset, len })
}
