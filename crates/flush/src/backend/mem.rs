//! `MemBackend`: a growable in-memory file for tests and benchmarks that must not touch a disk.

use std::io::IoSlice;
use std::sync::RwLock;

use super::{checked_end, total_len, Backend};
use crate::{FlushError, IoStats, Result};

/// A file held in memory. Each `write_at` or `write_vectored_at` counts as one call.
#[derive(Debug, Default)]
pub struct MemBackend {
    data: RwLock<Vec<u8>>,
    stats: IoStats,
}

impl MemBackend {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// A file holding `bytes`.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self {
            data: RwLock::new(bytes),
            stats: IoStats::new(),
        }
    }

    /// A copy of the whole file.
    pub fn contents(&self) -> Vec<u8> {
        self.read_lock().clone()
    }

    fn read_lock(&self) -> std::sync::RwLockReadGuard<'_, Vec<u8>> {
        // A panic while holding the lock cannot leave the Vec half-updated in a way that
        // matters to a byte-array file, so a poisoned lock is still usable.
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_lock(&self) -> std::sync::RwLockWriteGuard<'_, Vec<u8>> {
        self.data.write().unwrap_or_else(|e| e.into_inner())
    }

    fn place(&self, offset: u64, len: u64) -> Result<(std::sync::RwLockWriteGuard<'_, Vec<u8>>, usize)> {
        let end = checked_end(offset, len)?;
        let end = usize::try_from(end).map_err(|_| FlushError::OffsetOverflow { offset, len })?;
        let mut data = self.write_lock();
        if data.len() < end {
            data.resize(end, 0);
        }
        Ok((data, offset as usize))
    }
}

impl Backend for MemBackend {
    fn len(&self) -> Result<u64> {
        Ok(self.read_lock().len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let len = buf.len() as u64;
        let data = self.read_lock();
        let file_len = data.len() as u64;
        let end = checked_end(offset, len)?;
        if end > file_len {
            return Err(FlushError::UnexpectedEof {
                offset,
                len,
                file_len,
            });
        }
        buf.copy_from_slice(&data[offset as usize..end as usize]);
        self.stats.record_read(len);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        let (mut data, at) = self.place(offset, buf.len() as u64)?;
        data[at..at + buf.len()].copy_from_slice(buf);
        self.stats.record_write(buf.len() as u64);
        Ok(())
    }

    fn write_vectored_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> Result<()> {
        let len = total_len(bufs);
        let (mut data, mut at) = self.place(offset, len)?;
        for b in bufs {
            data[at..at + b.len()].copy_from_slice(b);
            at += b.len();
        }
        self.stats.record_vectored_write(len);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<()> {
        let new_len = usize::try_from(len).map_err(|_| FlushError::OffsetOverflow { offset: 0, len })?;
        self.write_lock().resize(new_len, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<()> {
        self.stats.record_sync();
        Ok(())
    }

    fn stats(&self) -> &IoStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_grow_reads_check_bounds() {
        let m = MemBackend::new();
        m.write_at(b"abc", 2).unwrap();
        assert_eq!(m.contents(), b"\0\0abc");
        m.write_vectored_at(&[IoSlice::new(b"xy"), IoSlice::new(b"z")], 4)
            .unwrap();
        assert_eq!(m.contents(), b"\0\0abxyz");
        let mut buf = [0u8; 3];
        m.read_at(&mut buf, 4).unwrap();
        assert_eq!(&buf, b"xyz");
        let err = m.read_at(&mut buf, 5).unwrap_err();
        assert!(matches!(
            err,
            FlushError::UnexpectedEof {
                offset: 5,
                len: 3,
                file_len: 7
            }
        ));
        assert!(matches!(
            m.write_at(b"a", u64::MAX),
            Err(FlushError::OffsetOverflow { .. })
        ));
        m.set_len(1).unwrap();
        assert_eq!(m.len().unwrap(), 1);
        let s = m.stats().snapshot();
        assert_eq!((s.write_calls, s.vectored_calls, s.read_calls), (1, 1, 1));
        assert_eq!(s.bytes_written, 6);
    }
}
