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

/// Sector size at which [`CrashBackend`] tears unsynced writes.
pub const SECTOR: u64 = 4096;

/// A file in memory that remembers every write since the last completed `sync_data`, and
/// can produce the images a power cut could leave: every synced byte, plus any subset of the
/// unsynced writes, each possibly torn at [`SECTOR`] granularity, applied in any order.
/// Reads see every write (as the page cache would). Deterministic from a seed.
#[derive(Debug, Default)]
pub struct CrashBackend {
    state: Mutex<CrashState>,
    stats: IoStats,
}

#[derive(Debug, Default)]
struct CrashState {
    /// What the disk holds for sure.
    durable: Vec<u8>,
    /// What reads see.
    current: Vec<u8>,
    /// Writes since the last sync, in order.
    unsynced: Vec<(u64, Vec<u8>)>,
}

impl CrashBackend {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// A file whose durable and current contents are `bytes`.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self {
            state: Mutex::new(CrashState {
                durable: bytes.clone(),
                current: bytes,
                ..CrashState::default()
            }),
            stats: IoStats::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CrashState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes made since the last completed sync.
    pub fn unsynced_writes(&self) -> usize {
        self.lock().unsynced.len()
    }

    /// The current contents (what reads see).
    pub fn contents(&self) -> Vec<u8> {
        self.lock().current.clone()
    }

    /// An image a power cut now could leave, chosen by `seed`: the durable bytes, then each
    /// unsynced write in a seeded order, kept whole, dropped, or kept only in some of its
    /// sectors. Seed 0 keeps nothing unsynced; `u64::MAX` keeps everything.
    pub fn crash_image(&self, seed: u64) -> Vec<u8> {
        let st = self.lock();
        let mut image = st.durable.clone();
        if seed == u64::MAX {
            return st.current.clone();
        }
        if seed == 0 {
            return image;
        }
        let mut rng = SplitMix(seed);
        let mut order: Vec<usize> = (0..st.unsynced.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        for i in order {
            let (offset, bytes) = &st.unsynced[i];
            let keep = rng.next() % 4; // 0: drop, 1: whole, 2-3: sector by sector
            if keep == 0 {
                continue;
            }
            let end = offset + bytes.len() as u64;
            let mut at = *offset;
            while at < end {
                let sector_end = ((at / SECTOR) + 1) * SECTOR;
                let piece_end = sector_end.min(end);
                if keep == 1 || rng.next() % 2 == 0 {
                    if image.len() < piece_end as usize {
                        image.resize(piece_end as usize, 0);
                    }
                    let src = &bytes[(at - offset) as usize..(piece_end - offset) as usize];
                    image[at as usize..piece_end as usize].copy_from_slice(src);
                }
                at = piece_end;
            }
        }
        image
    }

    fn record(&self, offset: u64, bytes: Vec<u8>) -> Result<()> {
        let end = crate::backend::checked_end(offset, bytes.len() as u64)?;
        let mut st = self.lock();
        if st.current.len() < end as usize {
            st.current.resize(end as usize, 0);
        }
        st.current[offset as usize..end as usize].copy_from_slice(&bytes);
        st.unsynced.push((offset, bytes));
        Ok(())
    }
}

/// A small deterministic generator (SplitMix64), so crash images replay from a seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Backend for CrashBackend {
    fn len(&self) -> Result<u64> {
        Ok(self.lock().current.len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let st = self.lock();
        let len = buf.len() as u64;
        let end = crate::backend::checked_end(offset, len)?;
        if end > st.current.len() as u64 {
            return Err(crate::FlushError::UnexpectedEof {
                offset,
                len,
                file_len: st.current.len() as u64,
            });
        }
        buf.copy_from_slice(&st.current[offset as usize..end as usize]);
        self.stats.record_read(len);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.record(offset, buf.to_vec())?;
        self.stats.record_write(buf.len() as u64);
        Ok(())
    }

    fn write_vectored_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> Result<()> {
        let bytes: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
        let len = bytes.len() as u64;
        self.record(offset, bytes)?;
        self.stats.record_vectored_write(len);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<()> {
        let mut st = self.lock();
        // Length changes are treated as durable at once (the store only grows files by writing).
        st.current.resize(len as usize, 0);
        st.durable.resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<()> {
        let mut st = self.lock();
        st.durable = st.current.clone();
        st.unsynced.clear();
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
    fn crash_images_keep_synced_bytes_and_subsets_of_the_rest() {
        let b = CrashBackend::new();
        b.write_at(&[1; 8192], 0).unwrap();
        b.sync_data().unwrap();
        b.write_at(&[2; 8192], 0).unwrap();
        b.write_at(&[3; 100], 8192).unwrap();
        assert_eq!(b.unsynced_writes(), 2);
        assert_eq!(b.crash_image(0), vec![1; 8192]);
        assert_eq!(b.crash_image(u64::MAX), b.contents());
        let mut torn = 0;
        for seed in 1..200 {
            let img = b.crash_image(seed);
            assert_eq!(img, b.crash_image(seed), "deterministic");
            for sector in img[..8192].chunks(4096) {
                assert!(
                    sector.iter().all(|&x| x == 1) || sector.iter().all(|&x| x == 2),
                    "sectors are whole"
                );
            }
            if img[..4096] != img[4096..8192] {
                torn += 1;
            }
        }
        assert!(torn > 0, "some images tear the 8 KiB write");
    }
}
