//! `FileBackend`: positional I/O on a real file with `pwrite`, `pwritev` and `fdatasync`.

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use super::{total_len, Backend, WriteCall};
use crate::{Bystanders, FlushError, IoOp, IoStats, Result, WriteLockWait};

/// Linux refuses to move more than this many bytes in one read or write call
/// (`MAX_RW_COUNT`); larger requests come back short.
const LINUX_MAX_RW: usize = 0x7fff_f000;

/// How a [`FileBackend`] opens its file and shapes its calls.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FileOptions {
    /// Create the file when it does not exist (default `true`).
    pub create: bool,
    /// The most bytes one write call may carry. Default: Linux's own per-call limit
    /// (`0x7fff_f000`). A smaller value splits larger writes into several calls, exactly as
    /// a short write from the kernel would be continued.
    pub max_bytes_per_call: usize,
    /// Let one write call at a time into the kernel, queueing the others on a user-space
    /// lock (default `true`). Buffered writes to one file are serialized by the kernel
    /// anyway (ext4 holds the inode's `i_rwsem` exclusively while it copies), but the kernel
    /// makes waiters spin on that lock while its holder runs, and in a virtual machine it
    /// cannot always tell that the holder's vCPU was preempted: with more writer threads
    /// than cores, whole cores went to `rwsem_spin_on_owner` (26% of the samples at 8
    /// threads on 2 cores) and some runs collapsed to a quarter of their speed. A waiter
    /// here sleeps on a futex instead, leaving the core to threads with other work.
    pub serialize_writes: bool,
    /// How long a writer that finds the write lock taken keeps yielding its core
    /// (`sched_yield`) and retrying before it sleeps on the lock (default 2 ms; zero sleeps
    /// at once), while [`FileOptions::bystanders`] counts some or is not given. It yields
    /// only while at least [`FileOptions::yield_min_queued`] writers wait, itself included.
    /// While the bystanders count none, [`FileOptions::lone_yield_wait`] is the window, and
    /// this bounds how long the turn under way may have lasted. A yielding waiter hands its
    /// core to any runnable thread and takes the lock the moment it is free, with no futex
    /// wake-up and no idle vCPU; but a yield also sends it behind every other runnable
    /// thread on its core. Measured in ARCHITECTURE.md.
    pub yield_wait: Duration,
    /// How many writers must be waiting for the write lock, the newcomer included, before
    /// it yields rather than sleeps (default: twice the machine's cores, from
    /// `available_parallelism`). With fewer waiters, the cores a yield frees go to other
    /// work (readers, say) and the writer waits behind it: a soak of 4 writers and 2 readers
    /// on 2 cores lost a quarter of its commits when every waiter yielded. While
    /// [`FileOptions::bystanders`] counts none, 1 is used instead.
    pub yield_min_queued: u32,
    /// The window of a waiter while [`FileOptions::bystanders`] counts none (default
    /// 20 ms), in place of [`FileOptions::yield_wait`], which then bounds only the turn
    /// under way: the waiter sleeps once that turn has lasted `yield_wait`. A yield then
    /// can only hand the core to another writer. With more writers than cores a waiter
    /// waits out many short turns (W1 at 8 threads: about 3.7 ms behind turns of 0.3 ms),
    /// and once one sleeps, the lock's hand-over goes through futex wake-ups of sleepers
    /// that must then find a core; behind one long turn (a flush of many held pages) a
    /// sleeper costs one wake-up, and a yielder only spins. The window still ends, so a
    /// writer never spins through yields for long. Measured in ARCHITECTURE.md.
    pub lone_yield_wait: Duration,
    /// A count the file's owner keeps of its threads that want cores beside the writers
    /// (cf-store: its open read transactions). While it counts none, the threshold
    /// [`FileOptions::yield_min_queued`] is 1: every waiter yields, since the cores it gives
    /// up can only go to other writers, or to threads the owner does not know of. While it
    /// counts some, a yield could send the waiter behind those threads, and the threshold
    /// holds. Default `None`: the threshold always holds.
    pub bystanders: Option<Arc<Bystanders>>,
}

impl Default for FileOptions {
    fn default() -> Self {
        Self {
            create: true,
            max_bytes_per_call: LINUX_MAX_RW,
            serialize_writes: true,
            yield_wait: Duration::from_millis(2),
            lone_yield_wait: Duration::from_millis(20),
            yield_min_queued: 2 * std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            bystanders: None,
        }
    }
}

impl FileOptions {
    /// Sets [`FileOptions::create`].
    pub fn with_create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Sets [`FileOptions::max_bytes_per_call`] (clamped to 1..=Linux's limit).
    pub fn with_max_bytes_per_call(mut self, bytes: usize) -> Self {
        self.max_bytes_per_call = bytes;
        self
    }

    /// Sets [`FileOptions::serialize_writes`].
    pub fn with_serialize_writes(mut self, serialize: bool) -> Self {
        self.serialize_writes = serialize;
        self
    }

    /// Sets [`FileOptions::yield_wait`].
    pub fn with_yield_wait(mut self, wait: Duration) -> Self {
        self.yield_wait = wait;
        self
    }

    /// Sets [`FileOptions::lone_yield_wait`].
    pub fn with_lone_yield_wait(mut self, wait: Duration) -> Self {
        self.lone_yield_wait = wait;
        self
    }

    /// Sets [`FileOptions::yield_min_queued`] (at least 1).
    pub fn with_yield_min_queued(mut self, writers: u32) -> Self {
        self.yield_min_queued = writers;
        self
    }

    /// Sets [`FileOptions::bystanders`].
    pub fn with_bystanders(mut self, count: Arc<Bystanders>) -> Self {
        self.bystanders = Some(count);
        self
    }
}

/// A real file. Writes go straight to the kernel (no user-space buffering): `pwrite` for a
/// single buffer, `pwritev` for a list (split at `IOV_MAX` slices a call), `fdatasync` for
/// durability. Every call loops on short transfers and `EINTR`, and every failure carries
/// the call, its offset and the OS error. Each system call, failed or not, is counted in
/// [`IoStats`].
#[derive(Debug)]
pub struct FileBackend {
    file: File,
    path: PathBuf,
    iov_max: usize,
    max_bytes_per_call: usize,
    stats: IoStats,
    /// Held across each write call when [`FileOptions::serialize_writes`] is set.
    write_lock: Option<Mutex<()>>,
    /// [`FileOptions::yield_wait`].
    yield_wait: Duration,
    /// [`FileOptions::lone_yield_wait`].
    lone_yield_wait: Duration,
    /// When the backend was made: the zero of `turn_began`.
    epoch: Instant,
    /// When the turn under way began, in nanoseconds after `epoch` plus one; 0 while no
    /// turn is under way.
    turn_began: AtomicU64,
    /// [`FileOptions::yield_min_queued`].
    yield_min_queued: u32,
    /// [`FileOptions::bystanders`].
    bystanders: Option<Arc<Bystanders>>,
    /// Writers waiting for the write lock now.
    queued_now: AtomicU32,
    /// Writers that have stopped yielding and sleep on the write lock now: what tests wait
    /// for instead of a guessed sleep.
    #[cfg(test)]
    asleep_now: AtomicU32,
    /// Turns taken at the write lock so far, and the number of the last turn that had to
    /// queue behind another writer (0: none yet): [`Backend::writes_contend`].
    turns: AtomicU64,
    last_queued_turn: AtomicU64,
    /// Ranges [`Backend::allocate`] was asked for: the next write turn allocates them before
    /// its own calls, so that an allocation never queues for a turn of its own.
    deferred: Mutex<Vec<(u64, u64)>>,
    /// Whether `deferred` holds a range; changed only under its lock, read without it so
    /// that a turn with nothing deferred costs one load.
    has_deferred: AtomicBool,
}

/// [`Backend::writes_contend`] is true while one of this many latest write-lock turns had
/// to queue.
const CONTENTION_WINDOW: u64 = 64;

impl FileBackend {
    /// Opens (creating it if missing) `path` for reading and writing.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, FileOptions::default())
    }

    /// Opens `path` with `options`.
    pub fn open_with(path: impl AsRef<Path>, options: FileOptions) -> Result<Self> {
        let path = path.as_ref();
        let file = File::options()
            .read(true)
            .write(true)
            .create(options.create)
            .truncate(false)
            .open(path)
            .map_err(|source| FlushError::Open {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self::from_file(file, path.to_owned(), options))
    }

    /// Wraps an already open file (it must be open for reading and writing).
    pub fn from_file(file: File, path: PathBuf, options: FileOptions) -> Self {
        Self {
            file,
            path,
            iov_max: iov_max(),
            max_bytes_per_call: options.max_bytes_per_call.clamp(1, LINUX_MAX_RW),
            stats: IoStats::new(),
            write_lock: options.serialize_writes.then(|| Mutex::new(())),
            yield_wait: options.yield_wait,
            lone_yield_wait: options.lone_yield_wait,
            epoch: Instant::now(),
            turn_began: AtomicU64::new(0),
            queued_now: AtomicU32::new(0),
            #[cfg(test)]
            asleep_now: AtomicU32::new(0),
            yield_min_queued: options.yield_min_queued.max(1),
            bystanders: options.bystanders,
            turns: AtomicU64::new(0),
            last_queued_turn: AtomicU64::new(0),
            deferred: Mutex::new(Vec::new()),
            has_deferred: AtomicBool::new(false),
        }
    }

    /// The path the file was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a waiter that asked for the lock at `asked`, with `queued` writers waiting
    /// then (itself included), should stop yielding and sleep. While the owner's
    /// bystanders are none: once it has waited [`FileOptions::lone_yield_wait`], or the
    /// turn under way has lasted [`FileOptions::yield_wait`]. Else: at once when fewer
    /// than [`FileOptions::yield_min_queued`] wait, or once it has waited `yield_wait`.
    fn should_sleep(&self, asked: Instant, queued: u32) -> bool {
        match &self.bystanders {
            Some(count) if !count.any() => {
                asked.elapsed() >= self.lone_yield_wait || self.turn_age() >= self.yield_wait
            }
            _ => queued < self.yield_min_queued || asked.elapsed() >= self.yield_wait,
        }
    }

    /// How long the turn under way has lasted (zero when none is).
    fn turn_age(&self) -> Duration {
        match self.turn_began.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            began => self
                .epoch
                .elapsed()
                .saturating_sub(Duration::from_nanos(began - 1)),
        }
    }

    /// The most slices one `pwritev` call carries.
    pub fn iov_max(&self) -> usize {
        self.iov_max
    }

    /// Waits for the write lock, when writes are serialized: a writer that finds it taken
    /// yields its core and retries until [`FileBackend::should_sleep`] says otherwise, then
    /// sleeps on it. The rule is read again after each yield, so a read transaction opened
    /// meanwhile ends the lone window. The
    /// turn ends when the returned guard drops, and the wait and the hold are added to
    /// [`IoStats`]. The lock guards no data, so a poisoned one is as good as a clean one.
    fn write_turn(&self) -> Option<WriteTurn<'_>> {
        self.write_lock.as_ref().map(|lock| {
            let asked = Instant::now();
            let turn = self.turns.fetch_add(1, Ordering::Relaxed) + 1;
            let (guard, wait) = match lock.try_lock() {
                Ok(guard) => (guard, WriteLockWait::Free),
                Err(TryLockError::Poisoned(p)) => (p.into_inner(), WriteLockWait::Free),
                Err(TryLockError::WouldBlock) => {
                    self.last_queued_turn.fetch_max(turn, Ordering::Relaxed);
                    let queued = self.queued_now.fetch_add(1, Ordering::Relaxed) + 1;
                    let got = loop {
                        if self.should_sleep(asked, queued) {
                            #[cfg(test)]
                            self.asleep_now.fetch_add(1, Ordering::Relaxed);
                            let guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
                            #[cfg(test)]
                            self.asleep_now.fetch_sub(1, Ordering::Relaxed);
                            break (guard, WriteLockWait::Parked);
                        }
                        std::thread::yield_now();
                        match lock.try_lock() {
                            Ok(guard) => break (guard, WriteLockWait::Yielded),
                            Err(TryLockError::Poisoned(p)) => break (p.into_inner(), WriteLockWait::Yielded),
                            Err(TryLockError::WouldBlock) => {}
                        }
                    };
                    self.queued_now.fetch_sub(1, Ordering::Relaxed);
                    got
                }
            };
            self.begin_turn(guard, wait, asked)
        })
    }

    /// Starts the turn of the writer that holds `guard`: marks when it began and first
    /// allocates the ranges deferred to it.
    fn begin_turn<'a>(
        &'a self,
        guard: MutexGuard<'a, ()>,
        wait: WriteLockWait,
        asked: Instant,
    ) -> WriteTurn<'a> {
        let got = Instant::now();
        let began = got.saturating_duration_since(self.epoch).as_nanos();
        self.turn_began.store(
            u64::try_from(began).unwrap_or(u64::MAX - 1) + 1,
            Ordering::Relaxed,
        );
        let turn = WriteTurn {
            _guard: guard,
            began: &self.turn_began,
            stats: &self.stats,
            wait,
            asked,
            got,
        };
        self.allocate_deferred();
        turn
    }

    /// Allocates the ranges deferred to this turn (the caller holds it). A failure is
    /// counted ([`IoStats`]: a call without bytes) and otherwise ignored, as the allocation
    /// was advice: the writes into the range allocate their own blocks.
    fn allocate_deferred(&self) {
        if !self.has_deferred.load(Ordering::Relaxed) {
            return;
        }
        let ranges = {
            let mut deferred = self.deferred.lock().unwrap_or_else(PoisonError::into_inner);
            self.has_deferred.store(false, Ordering::Relaxed);
            std::mem::take(&mut *deferred)
        };
        for (offset, len) in ranges {
            let _ = self.fallocate_in_turn(offset, len);
        }
    }

    /// Queues `[offset, offset + len)` for the next write turn (see `deferred`).
    fn allocate_in_next_turn(&self, offset: u64, len: u64) {
        let mut deferred = self.deferred.lock().unwrap_or_else(PoisonError::into_inner);
        deferred.push((offset, len));
        self.has_deferred.store(true, Ordering::Relaxed);
    }

    /// One mode-0 `fallocate` of `[offset, offset + len)` in a write turn (ext4 serializes it
    /// with writes on the inode's lock; it queues like one), retried on `EINTR`. `Ok(true)`
    /// when the range is allocated; `Ok(false)` for an empty range or a file system without
    /// `fallocate`.
    fn fallocate(&self, offset: u64, len: u64) -> Result<bool> {
        if len == 0 {
            return Ok(false);
        }
        check_file_range(offset, len)?;
        let _turn = self.write_turn();
        self.fallocate_in_turn(offset, len)
    }

    /// [`FileBackend::fallocate`]'s call, for a checked, non-empty range, by a caller that
    /// holds the write turn (or whose writes are not serialized).
    fn fallocate_in_turn(&self, offset: u64, len: u64) -> Result<bool> {
        // In range: the caller checked offset + len against i64::MAX.
        let (pos, count) = (offset as libc::off_t, len as libc::off_t);
        loop {
            // SAFETY: fallocate takes no pointers; the descriptor is owned by `self.file`
            // and open.
            let rc = unsafe { libc::fallocate(self.file.as_raw_fd(), 0, pos, count) };
            if rc == 0 {
                self.stats.record_populate(1, len);
                return Ok(true);
            }
            self.stats.record_populate(1, 0);
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => return Ok(false),
                _ => return Err(Self::io_error(IoOp::Allocate, offset, len, err)),
            }
        }
    }

    fn io_error(op: IoOp, offset: u64, len: u64, source: io::Error) -> FlushError {
        FlushError::Io {
            op,
            offset,
            len,
            source,
        }
    }

    /// All of `buf` at `offset` by `pwrite`, continuing short writes; the caller holds the
    /// write turn.
    fn pwrite_all(&self, buf: &[u8], offset: u64) -> Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let end = buf.len().min(done + self.max_bytes_per_call);
            // One pwrite64 per iteration (std's FileExt::write_at is a direct system call).
            match self.file.write_at(&buf[done..end], at) {
                Ok(0) => {
                    self.stats.record_write(0);
                    let len = (buf.len() - done) as u64;
                    return Err(Self::io_error(
                        IoOp::Write,
                        at,
                        len,
                        io::ErrorKind::WriteZero.into(),
                    ));
                }
                Ok(n) => {
                    self.stats.record_write(n as u64);
                    done += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.stats.record_write(0),
                Err(e) => {
                    self.stats.record_write(0);
                    return Err(Self::io_error(IoOp::Write, at, (buf.len() - done) as u64, e));
                }
            }
        }
        Ok(())
    }

    /// All of `bufs` at `offset` by `pwritev`, `IOV_MAX` slices and at most
    /// `max_bytes_per_call` bytes a call; the caller holds the write turn.
    fn pwritev_all(&self, bufs: &[IoSlice<'_>], offset: u64) -> Result<()> {
        let mut offset = offset;
        for window in bufs.chunks(self.iov_max) {
            let want = total_len(window);
            if want == 0 {
                continue;
            }
            // Fast path: the whole window in one call, straight from the caller's slices.
            let taken = if want <= self.max_bytes_per_call as u64 {
                let n = self.pwritev_once(window, offset)?;
                offset += n;
                n
            } else {
                0
            };
            if taken < want {
                self.pwritev_from(window, taken, &mut offset)?;
            }
        }
        Ok(())
    }

    /// One `pwritev` call, repeated on `EINTR`. Returns the bytes the kernel took.
    fn pwritev_once(&self, iov: &[IoSlice<'_>], offset: u64) -> Result<u64> {
        let want = total_len(iov);
        let pos =
            libc::off_t::try_from(offset).map_err(|_| FlushError::OffsetOverflow { offset, len: want })?;
        let count = libc::c_int::try_from(iov.len()).expect("a window never exceeds IOV_MAX slices");
        loop {
            // SAFETY: std guarantees `IoSlice` is ABI-compatible with `struct iovec` on Unix;
            // `iov` points to `count` initialised slices, each readable for its length for the
            // duration of the call; the descriptor is owned by `self.file` and open.
            let n = unsafe {
                libc::pwritev(
                    self.file.as_raw_fd(),
                    iov.as_ptr().cast::<libc::iovec>(),
                    count,
                    pos,
                )
            };
            if n < 0 {
                self.stats.record_vectored_write(0);
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Self::io_error(IoOp::WriteVectored, offset, want, err));
            }
            let n = n as u64;
            self.stats.record_vectored_write(n);
            if n == 0 && want > 0 {
                return Err(Self::io_error(
                    IoOp::WriteVectored,
                    offset,
                    want,
                    io::ErrorKind::WriteZero.into(),
                ));
            }
            return Ok(n);
        }
    }

    /// Writes `window` from byte `skip` on, after a short or capped call: each call takes at
    /// most `max_bytes_per_call` bytes, and the cursor moves past what the kernel took.
    fn pwritev_from(&self, window: &[IoSlice<'_>], mut skip: u64, offset: &mut u64) -> Result<()> {
        let mut first = 0usize;
        let mut call: Vec<IoSlice<'_>> = Vec::with_capacity(window.len());
        loop {
            while first < window.len() && skip >= window[first].len() as u64 {
                skip -= window[first].len() as u64;
                first += 1;
            }
            if first == window.len() {
                return Ok(());
            }
            call.clear();
            let mut budget = self.max_bytes_per_call;
            let head = &window[first][skip as usize..];
            for s in std::iter::once(head).chain(window[first + 1..].iter().map(|s| &**s)) {
                if budget == 0 {
                    break;
                }
                let take = s.len().min(budget);
                call.push(IoSlice::new(&s[..take]));
                budget -= take;
            }
            let n = self.pwritev_once(&call, *offset)?;
            *offset += n;
            skip += n;
        }
    }
}

/// One writer's turn at a file's write lock.
struct WriteTurn<'a> {
    _guard: MutexGuard<'a, ()>,
    /// [`FileBackend`]'s `turn_began`, cleared as the turn ends (before the lock is free).
    began: &'a AtomicU64,
    stats: &'a IoStats,
    wait: WriteLockWait,
    asked: Instant,
    got: Instant,
}

impl Drop for WriteTurn<'_> {
    fn drop(&mut self) {
        self.began.store(0, Ordering::Relaxed);
        let ns = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.stats
            .record_write_lock(self.wait, ns(self.got - self.asked), ns(self.got.elapsed()));
    }
}

/// Checks that `[offset, offset + len)` lies within `off_t`'s range, as the kernel requires.
fn check_file_range(offset: u64, len: u64) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= i64::MAX as u64 => Ok(()),
        _ => Err(FlushError::OffsetOverflow { offset, len }),
    }
}

/// The system's per-call slice limit, from `sysconf(_SC_IOV_MAX)`; Linux's 1024 if unknown.
fn iov_max() -> usize {
    // SAFETY: sysconf has no preconditions; it only reads a system limit.
    let v = unsafe { libc::sysconf(libc::_SC_IOV_MAX) };
    if v > 0 {
        v as usize
    } else {
        libc::UIO_MAXIOV as usize
    }
}

impl Backend for FileBackend {
    fn len(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| Self::io_error(IoOp::Len, 0, 0, e))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let len = buf.len() as u64;
        check_file_range(offset, len)?;
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            // One pread64 per iteration (std's FileExt::read_at is a direct system call).
            match self.file.read_at(&mut buf[done..], at) {
                Ok(0) => {
                    self.stats.record_read(0);
                    let file_len = self.len()?;
                    return Err(FlushError::UnexpectedEof {
                        offset,
                        len,
                        file_len,
                    });
                }
                Ok(n) => {
                    self.stats.record_read(n as u64);
                    done += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.stats.record_read(0),
                Err(e) => {
                    self.stats.record_read(0);
                    return Err(Self::io_error(IoOp::Read, at, (buf.len() - done) as u64, e));
                }
            }
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        check_file_range(offset, buf.len() as u64)?;
        let _turn = self.write_turn();
        self.pwrite_all(buf, offset)
    }

    fn write_vectored_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> Result<()> {
        check_file_range(offset, total_len(bufs))?;
        let _turn = self.write_turn();
        self.pwritev_all(bufs, offset)
    }

    fn write_batch(&self, calls: &[WriteCall<'_>]) -> Result<()> {
        for call in calls {
            check_file_range(call.offset, total_len(call.bufs))?;
        }
        let _turn = self.write_turn();
        for call in calls {
            match call.bufs {
                [one] => self.pwrite_all(one, call.offset)?,
                bufs => self.pwritev_all(bufs, call.offset)?,
            }
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<()> {
        self.file
            .set_len(len)
            .map_err(|e| Self::io_error(IoOp::SetLen, len, 0, e))
    }

    /// `fallocate` (mode 0: allocates the blocks and grows the file, never touching a
    /// written byte). A file system without `fallocate` allocates nothing: the writes
    /// allocate as usual.
    ///
    /// While writes are serialized (the default) it takes no turn of its own: the range is
    /// left to the next write turn, which allocates it before its own calls (the caller's
    /// flush that follows, or another writer's before it). Where writers queue, a turn
    /// costs a hand-over between them, and the allocation still comes before the writes
    /// into the range. Until that turn the file is as it was. A deferred allocation that
    /// fails is counted in [`IoStats`] and ignored (`Ok` was returned already), and one
    /// still pending when the backend is dropped is never made: either only leaves the
    /// writes to allocate their blocks.
    fn allocate(&self, offset: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        check_file_range(offset, len)?;
        if self.write_lock.is_none() {
            return self.fallocate_in_turn(offset, len).map(drop);
        }
        self.allocate_in_next_turn(offset, len);
        Ok(())
    }

    /// [`Backend::allocate`], then `readahead`, which fills the page cache with the range's
    /// zero pages outside every lock a write takes. `readahead` is advice, and its failure
    /// only leaves the pages to the writes. Where nothing was allocated (an empty range, a
    /// file system without `fallocate`) there is nothing to fill: no `readahead`.
    fn populate(&self, offset: u64, len: u64) -> Result<()> {
        if !self.fallocate(offset, len)? {
            return Ok(());
        }
        // In range: fallocate checked offset + len.
        let pos = offset as libc::off_t;
        // SAFETY: readahead takes no pointers; the descriptor is owned by `self.file` and
        // open. Its result is advice only, so it is not checked.
        let _ = unsafe {
            libc::readahead(
                self.file.as_raw_fd(),
                pos,
                usize::try_from(len).unwrap_or(usize::MAX),
            )
        };
        self.stats.record_populate(1, 0);
        Ok(())
    }

    fn writes_contend(&self) -> bool {
        // Relaxed loads may see `last` ahead of `turns`: saturate, that is contention too.
        let last = self.last_queued_turn.load(Ordering::Relaxed);
        last != 0 && self.turns.load(Ordering::Relaxed).saturating_sub(last) < CONTENTION_WINDOW
    }

    fn sync_data(&self) -> Result<()> {
        self.stats.record_sync();
        // std's File::sync_data is one fdatasync(2) on Linux. A failure is returned, never
        // retried: after a failed fdatasync the kernel may have dropped the dirty pages.
        self.file
            .sync_data()
            .map_err(|e| Self::io_error(IoOp::Sync, 0, 0, e))
    }

    fn stats(&self) -> &IoStats {
        &self.stats
    }

    fn file(&self) -> Option<&File> {
        Some(&self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IoStatsSnapshot;

    fn backend() -> (tempfile::TempDir, FileBackend) {
        let dir = tempfile::tempdir().unwrap();
        let b = FileBackend::open(dir.path().join("f")).unwrap();
        (dir, b)
    }

    /// Whether the file system under `dir` supports `fallocate` (ext4 and xfs do; some FUSE
    /// and older ZFS do not).
    fn fallocate_works(dir: &std::path::Path) -> bool {
        let f = File::create(dir.join("probe")).unwrap();
        // SAFETY: fallocate takes no pointers; `f` is open for writing.
        unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, 4096) == 0 }
    }

    #[test]
    fn writes_contend_after_a_queued_turn_and_not_after_a_quiet_window() {
        let (_dir, b) = backend();
        assert!(b.write_lock.is_some(), "writes are serialized by default");
        b.write_at(&[1; 4096], 0).unwrap();
        assert!(!b.writes_contend(), "one writer never queues");
        std::thread::scope(|s| {
            let held = b.write_turn();
            let writer = s.spawn(|| b.write_at(&[2; 4096], 4096).unwrap());
            // The writer records its queued turn before it blocks on the lock.
            while b.last_queued_turn.load(Ordering::Relaxed) == 0 {
                std::thread::yield_now();
            }
            drop(held);
            writer.join().unwrap();
        });
        assert!(b.writes_contend());
        for i in 0..CONTENTION_WINDOW {
            assert!(b.writes_contend(), "still within the window at turn {i}");
            b.write_at(&[3; 16], 0).unwrap();
        }
        assert!(!b.writes_contend(), "a window of quiet turns clears it");
    }

    /// `ready` (allocate or populate) over never-written bytes grows the file, keeps every
    /// written byte and makes `calls` system calls; an empty range makes none and a range
    /// past `off_t` is refused.
    fn readies_a_range(ready: fn(&FileBackend, u64, u64) -> Result<()>, calls: u64) {
        let (dir, b) = backend();
        b.write_at(&[7; 8192], 0).unwrap();
        if !fallocate_works(dir.path()) {
            // Such a file system allocates nothing: the call succeeds and changes nothing, and
            // with nothing allocated there is nothing to fill (one refused `fallocate`).
            ready(&b, 4096, 1 << 20).unwrap();
            assert_eq!(b.len().unwrap(), 8192);
            let s = b.stats().snapshot();
            assert_eq!((s.populate_calls, s.populated_bytes), (1, 0));
            return;
        }
        ready(&b, 4096, 1 << 20).unwrap();
        assert_eq!(b.len().unwrap(), 4096 + (1 << 20));
        let mut buf = vec![0u8; 8192];
        b.read_at(&mut buf, 0).unwrap();
        assert!(buf.iter().all(|&x| x == 7), "written bytes kept");
        b.read_at(&mut buf, 8192).unwrap();
        assert!(buf.iter().all(|&x| x == 0), "readied bytes read as zeros");
        let s = b.stats().snapshot();
        assert_eq!((s.populate_calls, s.populated_bytes), (calls, 1 << 20));
        assert_eq!(s.write_syscalls(), 1, "readying is not a write call");

        ready(&b, 0, 0).unwrap();
        assert_eq!(
            b.stats().snapshot().populate_calls,
            calls,
            "an empty range makes no call"
        );
        assert!(matches!(
            ready(&b, u64::MAX - 10, 100),
            Err(FlushError::OffsetOverflow { .. })
        ));
    }

    #[test]
    fn allocate_grows_the_file_and_changes_no_written_byte() {
        // One fallocate, made by the next turn (here an empty batch).
        readies_a_range(
            |b, at, len| {
                b.allocate(at, len)?;
                b.write_batch(&[])
            },
            1,
        );
    }

    #[test]
    fn an_allocation_takes_no_turn_and_the_next_turn_makes_it_before_its_writes() {
        let (dir, b) = backend();
        if !fallocate_works(dir.path()) {
            return;
        }
        b.write_at(&[7; 4096], 0).unwrap();
        let turns = |b: &FileBackend| b.stats().snapshot().write_lock_turns;
        let before = turns(&b);
        b.allocate(8192, 1 << 20).unwrap();
        assert_eq!(b.len().unwrap(), 4096, "nothing allocated yet");
        assert_eq!(b.stats().snapshot().populate_calls, 0);
        assert_eq!(turns(&b), before, "no turn taken");
        {
            // Another writer's turn makes it first, whatever that writer came for.
            let _held = b.write_turn();
            assert_eq!(b.len().unwrap(), 8192 + (1 << 20));
            // An allocation asked for during a turn returns at once all the same.
            b.allocate(8192 + (1 << 20), 4096).unwrap();
            assert_eq!(b.len().unwrap(), 8192 + (1 << 20), "left to the next turn");
        }
        // The next turn makes it before its own calls: the file covers the range, the
        // write lands, and no byte outside it changed.
        b.write_batch(&[WriteCall {
            offset: 4096,
            bufs: &[IoSlice::new(&[9; 4096])],
        }])
        .unwrap();
        assert_eq!(turns(&b), before + 2);
        assert_eq!(b.len().unwrap(), (1 << 20) + 3 * 4096);
        let s = b.stats().snapshot();
        assert_eq!((s.populate_calls, s.populated_bytes), (2, (1 << 20) + 4096));
        let mut buf = vec![0u8; 3 * 4096];
        b.read_at(&mut buf, 0).unwrap();
        assert!(buf[..4096].iter().all(|&x| x == 7));
        assert!(buf[4096..8192].iter().all(|&x| x == 9));
        assert!(
            buf[8192..].iter().all(|&x| x == 0),
            "allocated bytes read as zeros"
        );
        // Allocated once: a later turn has nothing left to make.
        b.write_at(&[1; 16], 0).unwrap();
        assert_eq!(b.stats().snapshot().populate_calls, 2);
    }

    #[test]
    fn without_serialized_writes_an_allocation_is_made_at_once() {
        let dir = tempfile::tempdir().unwrap();
        if !fallocate_works(dir.path()) {
            return;
        }
        let b = FileBackend::open_with(
            dir.path().join("f"),
            FileOptions::default().with_serialize_writes(false),
        )
        .unwrap();
        b.allocate(0, 1 << 20).unwrap();
        assert_eq!(b.len().unwrap(), 1 << 20);
        assert_eq!(b.stats().snapshot().populate_calls, 1);
    }

    #[test]
    fn populate_grows_the_file_and_changes_no_written_byte() {
        // fallocate, then readahead.
        readies_a_range(|b, at, len| b.populate(at, len), 2);
    }

    /// Returns once a writer sleeps on `b`'s write lock; fails the test after a minute.
    fn wait_until_asleep(b: &FileBackend) {
        let since = Instant::now();
        while b.asleep_now.load(Ordering::Relaxed) == 0 {
            assert!(
                since.elapsed() < Duration::from_secs(60),
                "no writer went to sleep"
            );
            std::thread::yield_now();
        }
    }

    /// A writer held up behind another's turn: it yields while the window lasts, and sleeps
    /// when the window is shorter than the wait.
    fn queue_behind_a_turn(yield_wait: Duration, min_queued: u32, sleeps: bool) -> IoStatsSnapshot {
        queue_behind_a_turn_with(
            FileOptions::default()
                .with_yield_wait(yield_wait)
                .with_yield_min_queued(min_queued),
            sleeps,
        )
    }

    /// The turn ahead lasts until the writer sleeps when it is expected to (so a slow
    /// scheduler cannot end the turn first), and 20 ms otherwise: a writer expected to yield
    /// all along has windows no run can outlast, so its count is the same however long the
    /// turn lasts.
    fn queue_behind_a_turn_with(options: FileOptions, sleeps: bool) -> IoStatsSnapshot {
        queue_behind_a_turn_while(options, |b| {
            if sleeps {
                wait_until_asleep(b);
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    }

    /// The same, with `meanwhile` run while the writer waits (once it has queued), before the
    /// turn ahead ends.
    fn queue_behind_a_turn_while(
        options: FileOptions,
        meanwhile: impl FnOnce(&FileBackend),
    ) -> IoStatsSnapshot {
        let dir = tempfile::tempdir().unwrap();
        let b = FileBackend::open_with(dir.path().join("f"), options).unwrap();
        std::thread::scope(|s| {
            let held = b.write_turn();
            let writer = s.spawn(|| b.write_at(&[2; 4096], 4096).unwrap());
            while b.last_queued_turn.load(Ordering::Relaxed) == 0 {
                std::thread::yield_now();
            }
            meanwhile(&b);
            drop(held);
            writer.join().unwrap();
        });
        let mut page = [0u8; 4096];
        b.read_at(&mut page, 4096).unwrap();
        assert_eq!(page, [2; 4096], "the queued write landed");
        b.stats().snapshot()
    }

    #[test]
    fn a_queued_writer_yields_within_its_window_and_only_behind_enough_others() {
        let s = queue_behind_a_turn(Duration::from_secs(600), 1, false);
        assert_eq!(
            (s.write_lock_turns, s.write_lock_queued, s.write_lock_parked),
            (2, 1, 0),
            "yielded all along"
        );
        let s = queue_behind_a_turn(Duration::ZERO, 1, true);
        assert_eq!(
            (s.write_lock_turns, s.write_lock_queued, s.write_lock_parked),
            (2, 1, 1),
            "slept at once"
        );
        let s = queue_behind_a_turn(Duration::from_secs(600), 2, true);
        assert_eq!(
            (s.write_lock_turns, s.write_lock_queued, s.write_lock_parked),
            (2, 1, 1),
            "one waiter of the two needed to yield: slept at once"
        );
    }

    /// With no bystanders a lone waiter yields whatever `yield_min_queued` says, for
    /// `lone_yield_wait`, unless the turn under way has lasted `yield_wait`; with one it
    /// follows `yield_min_queued` and `yield_wait`. A zero window still sleeps at once.
    #[test]
    fn a_queued_writer_yields_from_the_first_waiter_while_no_bystander_runs() {
        let count = Arc::new(Bystanders::new());
        let options = |wait: Duration, lone_wait: Duration, min_queued: u32| {
            FileOptions::default()
                .with_yield_wait(wait)
                .with_lone_yield_wait(lone_wait)
                .with_yield_min_queued(min_queued)
                .with_bystanders(count.clone())
        };
        let (forever, zero, five_ms) = (Duration::from_secs(600), Duration::ZERO, Duration::from_millis(5));
        // (yield_wait, lone_yield_wait, yield_min_queued, a bystander reading, times slept, why).
        // The turn ahead lasts until the writer sleeps, or 20 ms where it yields throughout.
        let cases = [
            (forever, forever, 2, false, 0, "yielded through the lone window"),
            (forever, zero, 2, false, 1, "no lone window: slept at once"),
            (
                five_ms,
                forever,
                2,
                false,
                1,
                "the turn under way outlasted yield_wait: slept",
            ),
            (
                forever,
                forever,
                2,
                true,
                1,
                "a bystander: one waiter of the two needed, so it slept",
            ),
            (
                zero,
                forever,
                1,
                true,
                1,
                "a bystander: the window is yield_wait's, zero, so it slept",
            ),
            (
                forever,
                zero,
                1,
                true,
                0,
                "a bystander: yielded through yield_wait's window",
            ),
        ];
        for (wait, lone_wait, min_queued, reading, parked, why) in cases {
            let shard = reading.then(|| count.enter());
            let s = queue_behind_a_turn_with(options(wait, lone_wait, min_queued), parked == 1);
            assert_eq!(
                (s.write_lock_turns, s.write_lock_queued, s.write_lock_parked),
                (2, 1, parked),
                "{why}"
            );
            if let Some(shard) = shard {
                count.leave(shard);
            }
        }
    }

    /// The rule is read again after each yield: a bystander arriving while a writer yields
    /// through the lone window ends it, and the writer sleeps.
    #[test]
    fn a_bystander_arriving_ends_a_lone_window() {
        let count = Arc::new(Bystanders::new());
        // With the bystander, two waiters are needed to yield.
        let options = FileOptions::default()
            .with_yield_wait(Duration::from_secs(600))
            .with_lone_yield_wait(Duration::from_secs(600))
            .with_yield_min_queued(2)
            .with_bystanders(count.clone());
        let s = queue_behind_a_turn_while(options, |b| {
            // The writer yields now, and can yield for ten minutes without a bystander.
            std::thread::sleep(Duration::from_millis(20));
            count.enter();
            wait_until_asleep(b);
        });
        assert_eq!(
            (s.write_lock_turns, s.write_lock_queued, s.write_lock_parked),
            (2, 1, 1),
            "yielded, then slept once the bystander came"
        );
    }

    #[test]
    fn a_batch_takes_one_turn_and_writes_every_call_in_order() {
        let (_dir, b) = backend();
        let (x, y, z) = ([1u8; 4096], [2u8; 4096], [3u8; 100]);
        let pair = [IoSlice::new(&x), IoSlice::new(&y)];
        let one = [IoSlice::new(&z)];
        let calls = [
            WriteCall {
                offset: 8192,
                bufs: &pair,
            },
            WriteCall {
                offset: 0,
                bufs: &one,
            },
            // Overlaps the first call: written after it, so it wins.
            WriteCall {
                offset: 12288,
                bufs: &one,
            },
        ];
        b.write_batch(&calls).unwrap();
        let s = b.stats().snapshot();
        assert_eq!(s.write_lock_turns, 1);
        assert_eq!((s.vectored_calls, s.write_calls), (1, 2));
        let mut all = vec![0u8; 16384];
        b.read_at(&mut all, 0).unwrap();
        assert_eq!(&all[..100], &z[..]);
        assert!(all[100..8192].iter().all(|&v| v == 0));
        assert!(all[8192..12288].iter().all(|&v| v == 1));
        assert_eq!(&all[12288..12388], &z[..]);
        assert!(all[12388..].iter().all(|&v| v == 2));

        // A call out of the file's range fails the batch before any write.
        let bad = [
            WriteCall {
                offset: 0,
                bufs: &pair,
            },
            WriteCall {
                offset: u64::MAX - 10,
                bufs: &one,
            },
        ];
        assert!(matches!(
            b.write_batch(&bad),
            Err(FlushError::OffsetOverflow { .. })
        ));
        assert_eq!(b.stats().snapshot().write_syscalls(), 3, "nothing written");
    }
}
