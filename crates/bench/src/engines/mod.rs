//! The engines a cell can measure, behind one interface: an [`Engine`] makes one [`Writer`]
//! per thread and reports its I/O counters; a writer commits one transaction of inserts.
//!
//! Every engine inserts the same bytes: the key as 8 big-endian bytes, the cell's value.

mod cf_store;
#[cfg(feature = "peers")]
mod fjall;
#[cfg(feature = "peers")]
mod manifold;
mod raw;
#[cfg(feature = "peers")]
mod redb;

use std::path::Path;

use anyhow::{anyhow, Result};

use crate::cell::{CellConfig, Durability, EngineKind};

/// The table (or tree) name every engine writes to.
pub const TABLE: &str = "bench";

/// An open engine for one cell.
pub trait Engine {
    /// One writer per thread (called once, before the timed phase).
    fn writers(&mut self) -> Result<Vec<Box<dyn Writer>>>;

    /// The I/O counters now (subtract two readings for a phase).
    fn io(&self) -> Result<IoCounters>;

    /// Closes the engine (makes it durable where it does that on close); after the cell.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// One thread's handle on its column family, file or keyspace.
pub trait Writer: Send {
    /// One transaction: inserts `value` under each key of `keys` (8 bytes big-endian) and
    /// commits with `durability`.
    fn commit(&mut self, keys: &[u64], value: &[u8], durability: Durability) -> Result<()>;

    /// Ends the untimed preload: makes everything committed so far durable, so that the timed
    /// phase does not pay for the preload's writeback.
    fn settle(&mut self) -> Result<()>;

    /// Ends the timed phase: hands the OS what the engine's commits without durability still
    /// hold in memory by its own choice (cf-store's held pages), so that the timed phase
    /// pays for writing every commit. Peers that keep such commits in memory until a durable
    /// commit (redb) or flush them in the background (fjall) are left as they are: redb
    /// then writes them after the timed phase, at its drop. `--durable-end` times every
    /// engine to the same point instead, its commits durable (`settle`).
    fn end_timed(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Where the system-call counts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyscallSource {
    /// The backend's `flush::IoStats`: every call the store (or raw) made on its files.
    IoStats,
    /// `/proc/self/io` (`syscw`, `wchar`): every write-type system call of the process.
    #[cfg_attr(not(feature = "peers"), allow(dead_code))]
    ProcSelfIo,
}

impl SyscallSource {
    /// The name in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            SyscallSource::IoStats => "iostats",
            SyscallSource::ProcSelfIo => "proc-self-io",
        }
    }
}

/// I/O counters at one instant, or (after [`IoCounters::since`]) over a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoCounters {
    /// `pwrite` calls (for `ProcSelfIo`: every write-type call, `syscw`).
    pub write_calls: u64,
    /// `pwritev` calls (0 for `ProcSelfIo`, whose count is in `write_calls`).
    pub vectored_calls: u64,
    /// `fdatasync` calls; `None` for `ProcSelfIo`, which does not count them.
    pub sync_calls: Option<u64>,
    /// Bytes handed to write calls (for `ProcSelfIo`: `wchar`).
    pub bytes_written: u64,
    /// Turns at a file's write lock and the time waited for and held it, summed over
    /// writers (`None` for `ProcSelfIo`).
    pub write_lock: Option<WriteLockCounts>,
    /// `fallocate` and `readahead` calls that readied new pages (`None` for `ProcSelfIo`).
    pub populate_calls: Option<u64>,
    pub source: SyscallSource,
}

/// A file's write-lock turns (`flush::IoStats`), summed over writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteLockCounts {
    /// Turns taken.
    pub turns: u64,
    /// Turns that found the lock taken.
    pub queued: u64,
    /// Queued turns that blocked on the lock (the yield window passed, or too few writers
    /// waited to yield).
    pub parked: u64,
    /// Nanoseconds waited.
    pub wait_ns: u64,
    /// Nanoseconds held.
    pub hold_ns: u64,
}

impl WriteLockCounts {
    /// The counts from `before` to `self`.
    fn since(&self, before: &WriteLockCounts) -> WriteLockCounts {
        WriteLockCounts {
            turns: self.turns.saturating_sub(before.turns),
            queued: self.queued.saturating_sub(before.queued),
            parked: self.parked.saturating_sub(before.parked),
            wait_ns: self.wait_ns.saturating_sub(before.wait_ns),
            hold_ns: self.hold_ns.saturating_sub(before.hold_ns),
        }
    }
}

impl IoCounters {
    /// From the counters of `flush` backends.
    pub fn from_iostats(io: flush::IoStatsSnapshot) -> Self {
        Self {
            write_calls: io.write_calls,
            vectored_calls: io.vectored_calls,
            sync_calls: Some(io.sync_calls),
            bytes_written: io.bytes_written,
            write_lock: Some(WriteLockCounts {
                turns: io.write_lock_turns,
                queued: io.write_lock_queued,
                parked: io.write_lock_parked,
                wait_ns: io.write_lock_wait_ns,
                hold_ns: io.write_lock_hold_ns,
            }),
            populate_calls: Some(io.populate_calls),
            source: SyscallSource::IoStats,
        }
    }

    /// The counters from `before` to `self`.
    pub fn since(&self, before: &IoCounters) -> IoCounters {
        IoCounters {
            write_calls: self.write_calls.saturating_sub(before.write_calls),
            vectored_calls: self.vectored_calls.saturating_sub(before.vectored_calls),
            sync_calls: self
                .sync_calls
                .zip(before.sync_calls)
                .map(|(a, b)| a.saturating_sub(b)),
            bytes_written: self.bytes_written.saturating_sub(before.bytes_written),
            write_lock: self
                .write_lock
                .zip(before.write_lock)
                .map(|(now, then)| now.since(&then)),
            populate_calls: self
                .populate_calls
                .zip(before.populate_calls)
                .map(|(a, b)| a.saturating_sub(b)),
            source: self.source,
        }
    }

    /// The process's write-type system calls and their bytes, from `/proc/self/io`. Counts
    /// every thread of the process (the peers' background threads too).
    #[cfg(any(feature = "peers", test))]
    pub fn proc_self_io() -> Result<Self> {
        use anyhow::Context;
        let text = std::fs::read_to_string("/proc/self/io").context("reading /proc/self/io")?;
        Self::parse_proc_io(&text)
    }

    /// Parses the text of `/proc/<pid>/io`.
    #[cfg(any(feature = "peers", test))]
    fn parse_proc_io(text: &str) -> Result<Self> {
        use anyhow::Context;
        let field = |name: &str| -> Result<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .with_context(|| format!("/proc/self/io has no `{name}` line"))?
                .trim()
                .parse()
                .with_context(|| format!("/proc/self/io: `{name}` is not a number"))
        };
        Ok(Self {
            write_calls: field("syscw")?,
            vectored_calls: 0,
            sync_calls: None,
            bytes_written: field("wchar")?,
            write_lock: None,
            populate_calls: None,
            source: SyscallSource::ProcSelfIo,
        })
    }
}

/// Whether this build has `engine`: the peers need the cargo feature `peers`.
pub fn check_available(engine: EngineKind) -> Result<()> {
    let peer = matches!(
        engine,
        EngineKind::Redb | EngineKind::Manifold | EngineKind::Fjall
    );
    if peer && !cfg!(feature = "peers") {
        return Err(peer_missing(engine));
    }
    Ok(())
}

/// The error for a peer engine in a build without the feature `peers`.
fn peer_missing(engine: EngineKind) -> anyhow::Error {
    anyhow!(
        "--engine {name}: the peer engines (redb, manifold, fjall) are behind the cargo feature \
         `peers`, which this build lacks; rebuild with `--features peers` \
         (cargo run --release -p bench --features peers -- --engine {name})",
        name = engine.name()
    )
}

/// Opens the cell's engine in `dir` (empty, owned by the cell).
pub fn open(config: &CellConfig, dir: &Path) -> Result<Box<dyn Engine>> {
    match config.engine {
        EngineKind::CfStore | EngineKind::CfStoreFiles => Ok(Box::new(cf_store::CfStore::open(config, dir)?)),
        EngineKind::Raw => Ok(Box::new(raw::Raw::open(config, dir, false)?)),
        EngineKind::RawFiles => Ok(Box::new(raw::Raw::open(config, dir, true)?)),
        #[cfg(feature = "peers")]
        EngineKind::Redb => Ok(Box::new(redb::Redb::open(config, dir)?)),
        #[cfg(feature = "peers")]
        EngineKind::Manifold => Ok(Box::new(manifold::Manifold::open(config, dir)?)),
        #[cfg(feature = "peers")]
        EngineKind::Fjall => Ok(Box::new(fjall::Fjall::open(config, dir)?)),
        #[cfg(not(feature = "peers"))]
        EngineKind::Redb | EngineKind::Manifold | EngineKind::Fjall => Err(peer_missing(config.engine)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_io_parses_and_counts_this_process() {
        let text = "rchar: 10\nwchar: 2048\nsyscr: 3\nsyscw: 5\nread_bytes: 0\nwrite_bytes: 4096\n\
                    cancelled_write_bytes: 0\n";
        let io = IoCounters::parse_proc_io(text).unwrap();
        assert_eq!((io.write_calls, io.bytes_written), (5, 2048));
        assert_eq!((io.vectored_calls, io.sync_calls), (0, None));
        assert!(IoCounters::parse_proc_io("rchar: 1\n").is_err());
        assert!(IoCounters::parse_proc_io("syscw: x\nwchar: 1\n").is_err());

        let before = IoCounters::proc_self_io().unwrap();
        let f = tempfile::tempfile().unwrap();
        std::os::unix::fs::FileExt::write_at(&f, &[1u8; 100], 0).unwrap();
        let d = IoCounters::proc_self_io().unwrap().since(&before);
        assert!(d.write_calls >= 1 && d.bytes_written >= 100, "{d:?}");
        assert_eq!(d.source, SyscallSource::ProcSelfIo);
    }

    #[test]
    fn deltas_subtract_field_by_field() {
        let at = |w, v, s, b| IoCounters {
            write_calls: w,
            vectored_calls: v,
            sync_calls: Some(s),
            bytes_written: b,
            write_lock: Some(WriteLockCounts {
                turns: w,
                queued: v,
                parked: s,
                wait_ns: b * 2,
                hold_ns: b * 3,
            }),
            populate_calls: Some(s * 2),
            source: SyscallSource::IoStats,
        };
        assert_eq!(at(10, 5, 3, 100).since(&at(4, 1, 1, 40)), at(6, 4, 2, 60));
    }
}
