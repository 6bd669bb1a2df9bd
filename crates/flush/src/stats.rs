//! `IoStats`: the atomic I/O counters every backend keeps, and their plain snapshot.

use std::iter::Sum;
use std::ops::{Add, Sub};
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the I/O a backend carried out. Every [`crate::Backend`] keeps one; the
/// executor adds the per-flush figures (runs, gap bytes, flushes). All updates are relaxed
/// atomics: the counters are exact once the threads that did the I/O have been joined.
///
/// `write_calls`, `vectored_calls`, `sync_calls` and `read_calls` count system calls as
/// issued (a short write that needs a second call counts twice), so they can be compared
/// with `strace -c`.
#[derive(Debug, Default)]
pub struct IoStats {
    write_calls: AtomicU64,
    vectored_calls: AtomicU64,
    sync_calls: AtomicU64,
    read_calls: AtomicU64,
    bytes_written: AtomicU64,
    bytes_read: AtomicU64,
    gap_bytes_written: AtomicU64,
    runs: AtomicU64,
    flushes: AtomicU64,
    write_lock_wait_ns: AtomicU64,
    write_lock_hold_ns: AtomicU64,
    write_lock_turns: AtomicU64,
    write_lock_queued: AtomicU64,
    write_lock_parked: AtomicU64,
    populate_calls: AtomicU64,
    populated_bytes: AtomicU64,
}

/// How a turn at a file's write lock began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteLockWait {
    /// The lock was free.
    Free,
    /// The lock was taken; the writer yielded its core until it was free.
    Yielded,
    /// The lock stayed taken for the whole yield window (or the writer did not yield); the
    /// writer then blocked on the lock, asleep unless it came free at that moment.
    Parked,
}

/// A plain copy of [`IoStats`] at one instant. Subtract two to get the I/O between them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IoStatsSnapshot {
    /// `pwrite` calls (or `write_at` calls on an in-memory backend).
    pub write_calls: u64,
    /// `pwritev` calls.
    pub vectored_calls: u64,
    /// `fdatasync` calls.
    pub sync_calls: u64,
    /// `pread` calls.
    pub read_calls: u64,
    /// Bytes handed to the kernel by write calls, gap fill included.
    pub bytes_written: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Of `bytes_written`, the zero bytes written into free gaps between dirty pages.
    pub gap_bytes_written: u64,
    /// Runs (contiguous writes) carried out by the plan executor.
    pub runs: u64,
    /// Flushes (plans) carried out by the plan executor.
    pub flushes: u64,
    /// Nanoseconds writers waited for a file's write lock (`FileOptions::serialize_writes`),
    /// summed over writers: time lost to sharing one file.
    #[serde(default)]
    pub write_lock_wait_ns: u64,
    /// Nanoseconds the write lock was held, wall clock: the write calls, and any time their
    /// thread was preempted inside them (which makes everyone behind it wait).
    #[serde(default)]
    pub write_lock_hold_ns: u64,
    /// Turns taken at the write lock: one per write call, or one per
    /// [`crate::Backend::write_batch`] (a whole flush).
    #[serde(default)]
    pub write_lock_turns: u64,
    /// Of `write_lock_turns`, those that found the lock taken and had to wait.
    #[serde(default)]
    pub write_lock_queued: u64,
    /// Of `write_lock_queued`, those that did not get the lock by yielding (the window
    /// passed, or too few writers waited to yield) and blocked on it, asleep unless it came
    /// free at that moment.
    #[serde(default)]
    pub write_lock_parked: u64,
    /// System calls that readied never-written ranges for writing (`fallocate`, see
    /// [`crate::Backend::allocate`], and `readahead`, see [`crate::Backend::populate`]),
    /// failed ones included.
    #[serde(default)]
    pub populate_calls: u64,
    /// Bytes of the ranges readied that way (counted once per range, when allocated).
    #[serde(default)]
    pub populated_bytes: u64,
}

impl IoStatsSnapshot {
    /// Write system calls of both kinds.
    pub fn write_syscalls(&self) -> u64 {
        self.write_calls + self.vectored_calls
    }
}

impl IoStatsSnapshot {
    /// `f` applied to each pair of same-named fields: the one place that lists them for
    /// arithmetic.
    fn zip_with(self, rhs: Self, f: fn(u64, u64) -> u64) -> Self {
        IoStatsSnapshot {
            write_calls: f(self.write_calls, rhs.write_calls),
            vectored_calls: f(self.vectored_calls, rhs.vectored_calls),
            sync_calls: f(self.sync_calls, rhs.sync_calls),
            read_calls: f(self.read_calls, rhs.read_calls),
            bytes_written: f(self.bytes_written, rhs.bytes_written),
            bytes_read: f(self.bytes_read, rhs.bytes_read),
            gap_bytes_written: f(self.gap_bytes_written, rhs.gap_bytes_written),
            runs: f(self.runs, rhs.runs),
            flushes: f(self.flushes, rhs.flushes),
            write_lock_wait_ns: f(self.write_lock_wait_ns, rhs.write_lock_wait_ns),
            write_lock_hold_ns: f(self.write_lock_hold_ns, rhs.write_lock_hold_ns),
            write_lock_turns: f(self.write_lock_turns, rhs.write_lock_turns),
            write_lock_queued: f(self.write_lock_queued, rhs.write_lock_queued),
            write_lock_parked: f(self.write_lock_parked, rhs.write_lock_parked),
            populate_calls: f(self.populate_calls, rhs.populate_calls),
            populated_bytes: f(self.populated_bytes, rhs.populated_bytes),
        }
    }
}

impl Sub for IoStatsSnapshot {
    type Output = IoStatsSnapshot;

    /// Field-wise difference, saturating at zero (a `reset` between the two reads).
    fn sub(self, rhs: Self) -> Self {
        self.zip_with(rhs, u64::saturating_sub)
    }
}

impl Add for IoStatsSnapshot {
    type Output = IoStatsSnapshot;

    /// Field-wise sum, saturating (the I/O of several backends together).
    fn add(self, rhs: Self) -> Self {
        self.zip_with(rhs, u64::saturating_add)
    }
}

impl Sum for IoStatsSnapshot {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), |a, b| a + b)
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl IoStats {
    /// New counters, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// One write call that moved `bytes`.
    pub fn record_write(&self, bytes: u64) {
        bump(&self.write_calls, 1);
        bump(&self.bytes_written, bytes);
    }

    /// One vectored write call that moved `bytes`.
    pub fn record_vectored_write(&self, bytes: u64) {
        bump(&self.vectored_calls, 1);
        bump(&self.bytes_written, bytes);
    }

    /// One read call that moved `bytes`.
    pub fn record_read(&self, bytes: u64) {
        bump(&self.read_calls, 1);
        bump(&self.bytes_read, bytes);
    }

    /// One sync call.
    pub fn record_sync(&self) {
        bump(&self.sync_calls, 1);
    }

    /// One run written by the executor, of which `gap_bytes` were zero fill.
    pub fn record_run(&self, gap_bytes: u64) {
        bump(&self.runs, 1);
        bump(&self.gap_bytes_written, gap_bytes);
    }

    /// One plan carried out by the executor.
    pub fn record_flush(&self) {
        bump(&self.flushes, 1);
    }

    /// One turn at a file's write lock: waited `wait_ns` for it (`queued`: it found the
    /// lock taken; `parked`: it then slept), held it `hold_ns`.
    pub fn record_write_lock(&self, wait: WriteLockWait, wait_ns: u64, hold_ns: u64) {
        bump(&self.write_lock_turns, 1);
        match wait {
            WriteLockWait::Free => {}
            WriteLockWait::Yielded => bump(&self.write_lock_queued, 1),
            WriteLockWait::Parked => {
                bump(&self.write_lock_queued, 1);
                bump(&self.write_lock_parked, 1);
            }
        }
        bump(&self.write_lock_wait_ns, wait_ns);
        bump(&self.write_lock_hold_ns, hold_ns);
    }

    /// `calls` system calls that readied `bytes` of never-written file for writing.
    pub fn record_populate(&self, calls: u64, bytes: u64) {
        bump(&self.populate_calls, calls);
        bump(&self.populated_bytes, bytes);
    }

    /// Every counter read by `read`: the one place that lists them for reading.
    fn read_with(&self, read: impl Fn(&AtomicU64) -> u64) -> IoStatsSnapshot {
        IoStatsSnapshot {
            write_calls: read(&self.write_calls),
            vectored_calls: read(&self.vectored_calls),
            sync_calls: read(&self.sync_calls),
            read_calls: read(&self.read_calls),
            bytes_written: read(&self.bytes_written),
            bytes_read: read(&self.bytes_read),
            gap_bytes_written: read(&self.gap_bytes_written),
            runs: read(&self.runs),
            flushes: read(&self.flushes),
            write_lock_wait_ns: read(&self.write_lock_wait_ns),
            write_lock_hold_ns: read(&self.write_lock_hold_ns),
            write_lock_turns: read(&self.write_lock_turns),
            write_lock_queued: read(&self.write_lock_queued),
            write_lock_parked: read(&self.write_lock_parked),
            populate_calls: read(&self.populate_calls),
            populated_bytes: read(&self.populated_bytes),
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> IoStatsSnapshot {
        self.read_with(|c| c.load(Ordering::Relaxed))
    }

    /// Sets every counter to zero and returns what they held.
    pub fn reset(&self) -> IoStatsSnapshot {
        self.read_with(|c| c.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reset_and_difference() {
        let s = IoStats::new();
        s.record_write(4096);
        s.record_vectored_write(8192);
        s.record_sync();
        s.record_run(4096);
        s.record_flush();
        s.record_populate(2, 1 << 20);
        let a = s.snapshot();
        assert_eq!((a.populate_calls, a.populated_bytes), (2, 1 << 20));
        assert_eq!(a.write_syscalls(), 2);
        assert_eq!(a.bytes_written, 12288);
        assert_eq!(a.gap_bytes_written, 4096);
        s.record_write(1);
        let b = s.snapshot();
        let d = b - a;
        assert_eq!(d.write_calls, 1);
        assert_eq!(d.bytes_written, 1);
        assert_eq!(d.vectored_calls, 0);
        assert_eq!(s.reset(), b);
        assert_eq!(s.snapshot(), IoStatsSnapshot::default());
        // Sums undo differences, field by field, and a sum of one is itself.
        assert_eq!(a + d, b);
        s.record_write_lock(WriteLockWait::Parked, 5, 7);
        s.record_write_lock(WriteLockWait::Yielded, 1, 2);
        s.record_write_lock(WriteLockWait::Free, 0, 3);
        let c = s.snapshot();
        assert_eq!(
            [a, d, c].into_iter().sum::<IoStatsSnapshot>(),
            IoStatsSnapshot {
                write_lock_wait_ns: 6,
                write_lock_hold_ns: 12,
                write_lock_turns: 3,
                write_lock_queued: 2,
                write_lock_parked: 1,
                ..b
            }
        );
        assert_eq!(std::iter::once(b).sum::<IoStatsSnapshot>(), b);
    }
}
