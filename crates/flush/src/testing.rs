//! Test doubles around a `Backend`: `RecordingBackend` logs writes and readying calls,
//! `FaultBackend` fails chosen calls, `CrashBackend` produces the images a power cut could
//! leave; and `strace_usable`, for tests that trace themselves.

use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::{Backend, FlushError, IoOp, IoStats, MemBackend, Result};

/// Whether `strace -f` can trace here, for a test (named `test`) that re-runs itself under
/// it. When it cannot (strace missing, or no ptrace in a sandbox) the test should return
/// without checking: this says so on stderr, or panics when `CF_REQUIRE_STRACE=1` (set by
/// `.ci/run`) makes not checking a failure.
pub fn strace_usable(test: &str) -> bool {
    let reason = match std::process::Command::new("strace")
        .args(["-f", "-o", "/dev/null", "true"])
        .output()
    {
        Ok(out) if out.status.success() => return true,
        Ok(out) => format!(
            "strace cannot trace here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("strace cannot be run ({e})"),
    };
    if std::env::var("CF_REQUIRE_STRACE").as_deref() == Ok("1") {
        panic!("{test}: strace is required here (CF_REQUIRE_STRACE=1) but {reason}");
    }
    eprintln!("{test}: not checked: {reason}");
    false
}

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

/// One `allocate` or `populate` call that reached the inner backend and succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyRecord {
    /// Where the range started.
    pub offset: u64,
    /// How many bytes.
    pub len: u64,
    /// True for `populate` (which also fills the page cache), false for `allocate`.
    pub fill: bool,
    /// Writes logged before it since the backend was made ([`RecordingBackend::writes_logged`]
    /// counts them), so a test can tell which writes a range was readied before.
    pub after_writes: u64,
}

/// Passes every call to `inner` and logs each write's range, so a test can check exactly
/// which bytes a plan touched, and each successful readying call. Its [`IoStats`] are the
/// inner backend's.
#[derive(Debug)]
pub struct RecordingBackend<B> {
    inner: B,
    log: Mutex<Vec<WriteRecord>>,
    ready_log: Mutex<Vec<ReadyRecord>>,
    writes_logged: AtomicU64,
}

impl<B: Backend> RecordingBackend<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            log: Mutex::new(Vec::new()),
            ready_log: Mutex::new(Vec::new()),
            writes_logged: AtomicU64::new(0),
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

    /// Takes the log of readying calls so far, leaving it empty.
    pub fn take_ready_log(&self) -> Vec<ReadyRecord> {
        std::mem::take(&mut *self.ready_log.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Writes logged since the backend was made (taking the log does not reset it).
    pub fn writes_logged(&self) -> u64 {
        self.writes_logged.load(Ordering::SeqCst)
    }

    fn record(&self, offset: u64, len: u64, vectored: bool) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.push(WriteRecord {
            offset,
            len,
            vectored,
        });
        self.writes_logged.fetch_add(1, Ordering::SeqCst);
    }

    fn record_ready(&self, offset: u64, len: u64, fill: bool) {
        // Under the write log's lock, so that `after_writes` counts exactly the writes before.
        let _writes = self.log.lock().unwrap_or_else(|e| e.into_inner());
        self.ready_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ReadyRecord {
                offset,
                len,
                fill,
                after_writes: self.writes_logged.load(Ordering::SeqCst),
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
    fn allocate(&self, offset: u64, len: u64) -> Result<()> {
        self.inner.allocate(offset, len)?;
        self.record_ready(offset, len, false);
        Ok(())
    }
    fn populate(&self, offset: u64, len: u64) -> Result<()> {
        self.inner.populate(offset, len)?;
        self.record_ready(offset, len, true);
        Ok(())
    }
    fn writes_contend(&self) -> bool {
        self.inner.writes_contend()
    }
    fn stats(&self) -> &IoStats {
        self.inner.stats()
    }
}

/// Passes every call to `inner`, failing the ones it is told to with an OS error: writes
/// (`write_at`, `write_vectored_at`, growing `set_len`) from now on or after a number of
/// further writes (`ENOSPC` for a full disk, `EIO`, ...), and syncs. Counts the write and
/// sync calls that reach it, failed or not. `allocate` and `populate` fail like a write once
/// writes fail (without using up one of the writes still allowed), or on their own when told
/// to; they are counted apart from writes ([`FaultBackend::ready_calls`]). `writes_contend`
/// can be made to report contention.
#[derive(Debug)]
pub struct FaultBackend<B> {
    inner: B,
    /// 0: writes succeed.
    write_errno: AtomicI32,
    /// Writes still allowed before `write_errno` applies; negative: none (fail at once).
    writes_before_fault: AtomicI64,
    /// 0: syncs succeed.
    sync_errno: AtomicI32,
    /// 0: `allocate` and `populate` succeed unless writes fail.
    populate_errno: AtomicI32,
    /// `writes_contend` reports true whatever the inner backend says.
    contend: AtomicBool,
    /// A faulted write first writes the first half of its bytes (a short write).
    partial: AtomicBool,
    write_calls: AtomicU64,
    sync_calls: AtomicU64,
    /// `allocate` calls that reached this backend (failed ones included).
    allocate_calls: AtomicU64,
    /// `populate` calls that reached this backend (failed ones included).
    populate_calls: AtomicU64,
}

impl<B: Backend> FaultBackend<B> {
    /// Wraps `inner`; nothing fails until told to.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            write_errno: AtomicI32::new(0),
            writes_before_fault: AtomicI64::new(-1),
            sync_errno: AtomicI32::new(0),
            populate_errno: AtomicI32::new(0),
            contend: AtomicBool::new(false),
            partial: AtomicBool::new(false),
            write_calls: AtomicU64::new(0),
            sync_calls: AtomicU64::new(0),
            allocate_calls: AtomicU64::new(0),
            populate_calls: AtomicU64::new(0),
        }
    }

    /// From now on a faulted write first writes the first half of its bytes, then fails
    /// (`true`), or writes nothing (`false`, the default).
    pub fn partial_writes(&self, partial: bool) {
        self.partial.store(partial, Ordering::SeqCst);
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Every later write fails with `errno`.
    pub fn fail_writes(&self, errno: i32) {
        self.fail_writes_after(0, errno);
    }

    /// The next `writes` writes succeed, every later one fails with `errno`.
    pub fn fail_writes_after(&self, writes: u64, errno: i32) {
        self.writes_before_fault
            .store(writes as i64 - 1, Ordering::SeqCst);
        self.write_errno.store(errno, Ordering::SeqCst);
    }

    /// Writes succeed again.
    pub fn heal_writes(&self) {
        self.write_errno.store(0, Ordering::SeqCst);
    }

    /// Every later sync fails with `errno`.
    pub fn fail_syncs(&self, errno: i32) {
        self.sync_errno.store(errno, Ordering::SeqCst);
    }

    /// Syncs succeed again.
    pub fn heal_syncs(&self) {
        self.sync_errno.store(0, Ordering::SeqCst);
    }

    /// From now on `writes_contend` reports true (`true`), or what the inner backend says.
    pub fn report_contention(&self, contend: bool) {
        self.contend.store(contend, Ordering::SeqCst);
    }

    /// From now on every `allocate` and `populate` fails with `errno` while writes go on
    /// succeeding (0: they succeed again).
    pub fn fail_populates(&self, errno: i32) {
        self.populate_errno.store(errno, Ordering::SeqCst);
    }

    /// `allocate` and `populate` calls that reached this backend (failed ones included),
    /// in that order.
    pub fn ready_calls(&self) -> (u64, u64) {
        (
            self.allocate_calls.load(Ordering::SeqCst),
            self.populate_calls.load(Ordering::SeqCst),
        )
    }

    /// Write calls that reached this backend (failed ones included).
    pub fn write_calls(&self) -> u64 {
        self.write_calls.load(Ordering::SeqCst)
    }

    /// Sync calls that reached this backend (failed ones included).
    pub fn sync_calls(&self) -> u64 {
        self.sync_calls.load(Ordering::SeqCst)
    }

    fn fault(op: IoOp, offset: u64, len: u64, errno: i32) -> FlushError {
        FlushError::Io {
            op,
            offset,
            len,
            source: io::Error::from_raw_os_error(errno),
        }
    }

    fn check_write(&self, op: IoOp, offset: u64, len: u64) -> Result<()> {
        self.write_calls.fetch_add(1, Ordering::SeqCst);
        let errno = self.write_errno.load(Ordering::SeqCst);
        if errno != 0 && self.writes_before_fault.fetch_sub(1, Ordering::SeqCst) < 0 {
            return Err(Self::fault(op, offset, len, errno));
        }
        Ok(())
    }

    /// Fails an `allocate` or `populate` of `[offset, offset + len)` once writes fail or when
    /// told to.
    fn check_ready(&self, offset: u64, len: u64) -> Result<()> {
        let errno = self.write_errno.load(Ordering::SeqCst);
        if errno != 0 && self.writes_before_fault.load(Ordering::SeqCst) < 0 {
            return Err(Self::fault(IoOp::Allocate, offset, len, errno));
        }
        let errno = self.populate_errno.load(Ordering::SeqCst);
        if errno != 0 {
            return Err(Self::fault(IoOp::Allocate, offset, len, errno));
        }
        Ok(())
    }
}

impl<B: Backend> Backend for FaultBackend<B> {
    fn len(&self) -> Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        if let Err(e) = self.check_write(IoOp::Write, offset, buf.len() as u64) {
            if self.partial.load(Ordering::SeqCst) {
                self.inner.write_at(&buf[..buf.len() / 2], offset)?;
            }
            return Err(e);
        }
        self.inner.write_at(buf, offset)
    }
    fn write_vectored_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> Result<()> {
        if let Err(e) = self.check_write(IoOp::WriteVectored, offset, crate::backend::total_len(bufs)) {
            if self.partial.load(Ordering::SeqCst) {
                let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
                self.inner.write_at(&all[..all.len() / 2], offset)?;
            }
            return Err(e);
        }
        self.inner.write_vectored_at(bufs, offset)
    }
    fn set_len(&self, len: u64) -> Result<()> {
        if len > self.inner.len()? {
            self.check_write(IoOp::SetLen, len, 0)?;
        }
        self.inner.set_len(len)
    }
    fn allocate(&self, offset: u64, len: u64) -> Result<()> {
        self.allocate_calls.fetch_add(1, Ordering::SeqCst);
        self.check_ready(offset, len)?;
        self.inner.allocate(offset, len)
    }
    fn populate(&self, offset: u64, len: u64) -> Result<()> {
        self.populate_calls.fetch_add(1, Ordering::SeqCst);
        self.check_ready(offset, len)?;
        self.inner.populate(offset, len)
    }
    fn writes_contend(&self) -> bool {
        self.contend.load(Ordering::SeqCst) || self.inner.writes_contend()
    }
    fn sync_data(&self) -> Result<()> {
        self.sync_calls.fetch_add(1, Ordering::SeqCst);
        let errno = self.sync_errno.load(Ordering::SeqCst);
        if errno != 0 {
            return Err(Self::fault(IoOp::Sync, 0, 0, errno));
        }
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
/// Reads see every write (as the page cache would). `allocate` and `populate` grow the file
/// by an unsynced write of zeros. Deterministic from a seed.
///
/// [`CrashBackend::crash_after`] picks a crash point: the k-th mutating call (write, vectored
/// write, sync, length change, allocation) and every later one fail with `EIO` and change
/// nothing, as if the machine had stopped there; [`CrashBackend::crash_image`] then gives
/// what the disk may hold.
#[derive(Debug)]
pub struct CrashBackend {
    /// What reads see; it also keeps the I/O counters.
    current: MemBackend,
    state: Mutex<CrashState>,
    /// Mutating calls so far.
    calls: AtomicU64,
    /// Calls allowed before the crash (`u64::MAX`: never).
    crash_at: AtomicU64,
}

impl Default for CrashBackend {
    fn default() -> Self {
        Self::from_bytes(Vec::new())
    }
}

#[derive(Debug, Default)]
struct CrashState {
    /// What the disk holds for sure.
    durable: Vec<u8>,
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
            current: MemBackend::from_bytes(bytes.clone()),
            state: Mutex::new(CrashState {
                durable: bytes,
                unsynced: Vec::new(),
            }),
            calls: AtomicU64::new(0),
            crash_at: AtomicU64::new(u64::MAX),
        }
    }

    /// Crashes at the `k`-th mutating call from now (0: the next one): it and every later
    /// one fail with `EIO` and change nothing.
    pub fn crash_after(&self, k: u64) {
        let now = self.calls.load(Ordering::SeqCst);
        self.crash_at.store(now.saturating_add(k), Ordering::SeqCst);
    }

    /// True once the crash point has been reached.
    pub fn crashed(&self) -> bool {
        self.calls.load(Ordering::SeqCst) > self.crash_at.load(Ordering::SeqCst)
    }

    /// Mutating calls made so far (those refused after the crash included).
    pub fn mutating_calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Counts a mutating call; `Err` once past the crash point.
    fn admit(&self, op: IoOp, offset: u64, len: u64) -> Result<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n >= self.crash_at.load(Ordering::SeqCst) {
            return Err(FlushError::Io {
                op,
                offset,
                len,
                source: io::Error::other("simulated crash: the machine stopped here"),
            });
        }
        Ok(())
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
        self.current.contents()
    }

    /// An image a power cut now could leave, chosen by `seed`: the durable bytes, then each
    /// unsynced write in a seeded order, kept whole, dropped, or kept only in some of its
    /// sectors. Seed 0 keeps nothing unsynced; `u64::MAX` keeps everything.
    pub fn crash_image(&self, seed: u64) -> Vec<u8> {
        let st = self.lock();
        if seed == u64::MAX {
            return self.current.contents();
        }
        let mut image = st.durable.clone();
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
                let piece_end = ((at / SECTOR + 1) * SECTOR).min(end);
                if keep == 1 || rng.next().is_multiple_of(2) {
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
        self.current.len()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.current.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        let mut st = self.lock();
        self.admit(IoOp::Write, offset, buf.len() as u64)?;
        self.current.write_at(buf, offset)?;
        st.unsynced.push((offset, buf.to_vec()));
        Ok(())
    }

    fn write_vectored_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> Result<()> {
        let mut st = self.lock();
        self.admit(IoOp::WriteVectored, offset, crate::backend::total_len(bufs))?;
        self.current.write_vectored_at(bufs, offset)?;
        st.unsynced
            .push((offset, bufs.iter().flat_map(|b| b.iter().copied()).collect()));
        Ok(())
    }

    fn allocate(&self, offset: u64, len: u64) -> Result<()> {
        // Like `fallocate` mode 0: no byte changes, the file grows to cover the range. The
        // growth is an unsynced write of zeros, so a crash may keep it, tear it or lose it.
        let mut st = self.lock();
        self.admit(IoOp::Allocate, offset, len)?;
        let old = self.current.len()?;
        let end = offset.saturating_add(len);
        if end > old {
            let grown = usize::try_from(end - old).map_err(|_| FlushError::OffsetOverflow { offset, len })?;
            self.current.set_len(end)?;
            st.unsynced.push((old, vec![0; grown]));
        }
        Ok(())
    }

    /// As `allocate`: an image has no page cache to fill.
    fn populate(&self, offset: u64, len: u64) -> Result<()> {
        self.allocate(offset, len)
    }

    fn set_len(&self, len: u64) -> Result<()> {
        // Length changes count as durable at once (the store grows files by writing and by
        // `allocate`; `set_len` only sizes a new file).
        let mut st = self.lock();
        self.admit(IoOp::SetLen, len, 0)?;
        self.current.set_len(len)?;
        st.durable.resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<()> {
        let mut st = self.lock();
        self.admit(IoOp::Sync, 0, 0)?;
        st.durable = self.current.contents();
        st.unsynced.clear();
        self.current.sync_data()
    }

    fn stats(&self) -> &IoStats {
        self.current.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_backend_fails_what_it_is_told_and_counts() {
        let b = FaultBackend::new(MemBackend::new());
        b.write_at(b"ok", 0).unwrap();
        b.fail_writes_after(2, libc::ENOSPC);
        b.write_at(b"a", 0).unwrap();
        b.write_vectored_at(&[IoSlice::new(b"b")], 1).unwrap();
        let err = b.write_at(b"c", 2).unwrap_err();
        assert!(err.is_out_of_space(), "{err}");
        assert!(b.set_len(100).is_err(), "growing is a write");
        b.heal_writes();
        b.write_at(b"c", 2).unwrap();
        b.fail_syncs(libc::EIO);
        assert_eq!(b.sync_data().unwrap_err().raw_os_error(), Some(libc::EIO));
        b.heal_syncs();
        b.sync_data().unwrap();
        assert_eq!((b.write_calls(), b.sync_calls()), (6, 2));
        assert_eq!(b.inner().contents(), b"abc");
        b.fail_writes(libc::EIO);
        assert!(b.write_at(b"x", 0).is_err());
        b.partial_writes(true);
        assert!(b.write_at(b"xyzw", 0).is_err());
        assert_eq!(b.inner().contents(), b"xyc", "half of the faulted write landed");
    }

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

    #[test]
    fn fault_backend_fails_readying_when_told_or_once_writes_fail() {
        let b = FaultBackend::new(MemBackend::new());
        b.allocate(0, 4096).unwrap();
        b.populate(0, 4096).unwrap();
        b.fail_populates(libc::ENOSPC);
        assert!(b.allocate(0, 4096).unwrap_err().is_out_of_space());
        assert!(b.populate(0, 4096).unwrap_err().is_out_of_space());
        b.write_at(b"w", 0).unwrap();
        b.fail_populates(0);
        b.fail_writes_after(1, libc::EIO);
        b.allocate(0, 4096).unwrap();
        b.write_at(b"x", 0).unwrap();
        assert!(b.allocate(0, 4096).is_err(), "writes fail now");
        assert_eq!(b.ready_calls(), (4, 2));
        assert_eq!(b.write_calls(), 2, "readying is not a write");
    }

    #[test]
    fn crash_allocation_grows_the_file_by_zeros_a_crash_may_lose() {
        let b = CrashBackend::new();
        b.write_at(&[1; 4096], 0).unwrap();
        b.sync_data().unwrap();
        b.allocate(0, 4096).unwrap();
        assert_eq!(b.unsynced_writes(), 0, "within the file: nothing changes");
        b.allocate(4096, 8192).unwrap();
        assert_eq!(b.len().unwrap(), 12288);
        b.write_at(&[2; 4096], 4096).unwrap();
        let mut want = vec![1; 4096];
        want.extend([2; 4096]);
        want.extend([0; 4096]);
        assert_eq!(b.contents(), want);
        assert_eq!(b.crash_image(0), vec![1; 4096], "the growth was never synced");
        let mut lengths = std::collections::BTreeSet::new();
        for seed in 1..200 {
            let img = b.crash_image(seed);
            assert_eq!(&img[..4096], &[1; 4096][..], "synced bytes stay");
            for sector in img[4096..].chunks(4096) {
                assert!(sector.iter().all(|&x| x == 0) || sector.iter().all(|&x| x == 2));
            }
            lengths.insert(img.len());
        }
        assert!(lengths.contains(&4096) && lengths.contains(&12288), "{lengths:?}");
        b.crash_after(0);
        assert!(b.allocate(12288, 4096).is_err(), "an allocation is a crash point");
        assert_eq!(b.len().unwrap(), 12288);
    }

    #[test]
    fn a_crash_point_stops_every_later_mutation() {
        let b = CrashBackend::new();
        b.write_at(&[1; 10], 0).unwrap();
        b.crash_after(2);
        b.write_at(&[2; 10], 0).unwrap();
        b.sync_data().unwrap();
        assert!(!b.crashed());
        assert!(b.write_at(&[3; 10], 0).is_err());
        assert!(b.sync_data().is_err());
        assert!(b.crashed());
        assert_eq!(b.contents(), vec![2; 10], "refused calls change nothing");
        assert_eq!(b.crash_image(0), vec![2; 10]);
        assert_eq!(b.mutating_calls(), 5);
    }
}
