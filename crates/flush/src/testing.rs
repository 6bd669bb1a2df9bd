//! Test doubles that wrap any `Backend`: `RecordingBackend` logs every write it passes on.

use std::io::IoSlice;
use std::sync::Mutex;

use crate::{Backend, IoStats, Result};

/// One write that reached the inner backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteRecord {
    /// Where it started.
    pub offset: u64,
    /// How many bytes.
    pub len: u64,
    /// True for `write_vectored_at`.
    pub vectored: bool,
}

/// Passes every call to `inner` and logs each write's range, so a test can check exactly
/// which bytes a plan touched. Its [`IoStats`] are the inner backend's.
#[derive(Debug)]
pub struct RecordingBackend<B> {
    inner: B,
    log: Mutex<Vec<WriteRecord>>,
}

impl<B: Backend> RecordingBackend<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            log: Mutex::new(Vec::new()),
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Takes the log of writes so far, leaving it empty.
    pub fn take_log(&self) -> Vec<WriteRecord> {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn record(&self, offset: u64, len: u64, vectored: bool) {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(WriteRecord {
                offset,
                len,
                vectored,
            });
    }
}

impl<B: Backend> Backend for RecordingBackend<B> {
    fn len(&self) -> Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.inner.write_at(buf, offset)?;
        self.record(offset, buf.len() as u64, false);
        Ok(())
    }
    fn write_vectored_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> Result<()> {
        self.inner.write_vectored_at(bufs, offset)?;
        self.record(offset, crate::backend::total_len(bufs), true);
        Ok(())
    }
    fn set_len(&self, len: u64) -> Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> Result<()> {
        self.inner.sync_data()
    }
    fn stats(&self) -> &IoStats {
        self.inner.stats()
    }
}
