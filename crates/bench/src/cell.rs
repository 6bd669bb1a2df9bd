//! One measurement cell: opens the engine, preloads (overwrite keys only, untimed), starts T
//! writer threads on a barrier, times them to the last thread's end, records every commit's
//! latency, and takes the I/O counters' deltas over exactly that phase.
//!
//! Nothing is printed between the two I/O snapshots: for the peers the counters are the whole
//! process's write system calls, and a line to stderr would be one of them.

use std::path::PathBuf;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use clap::ValueEnum;
use flush::FlushConfig;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

use crate::engines::{self, IoCounters, Writer};
use crate::keys::{self, KeyGen, KeyMode};

/// Which engine a cell measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    /// One file, one column family per thread.
    CfStore,
    /// One file (one `Db` with one column family) per thread.
    CfStoreFiles,
    /// Plain `pwrite`s of the same bytes into one file, a region per thread: the ceiling.
    Raw,
    /// Plain `pwrite`s of the same bytes, a file per thread: the ceiling of separate files.
    RawFiles,
    /// redb 4: one file per thread (peer; `--features peers`).
    Redb,
    /// manifold-db 3: its column families in one file, WAL off (peer; `--features peers`).
    Manifold,
    /// fjall 3: one keyspace per thread (peer; `--features peers`).
    Fjall,
}

impl EngineKind {
    /// The name on the command line and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::CfStore => "cf-store",
            EngineKind::CfStoreFiles => "cf-store-files",
            EngineKind::Raw => "raw",
            EngineKind::RawFiles => "raw-files",
            EngineKind::Redb => "redb",
            EngineKind::Manifold => "manifold",
            EngineKind::Fjall => "fjall",
        }
    }

    /// Whether `--policy` applies.
    pub fn is_cf_store(self) -> bool {
        matches!(self, EngineKind::CfStore | EngineKind::CfStoreFiles)
    }
}

/// A commit's durability, as every engine is asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Durability {
    /// No sync: the commit is handed to the OS (or kept in memory) and may be lost by a crash.
    None,
    /// Durable when the commit returns: synced per commit.
    Immediate,
}

impl Durability {
    /// The name on the command line and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Durability::None => "none",
            Durability::Immediate => "immediate",
        }
    }
}

/// Where the cf-store engines read committed pages from (`DbBuilder::read_path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReadPath {
    /// `pread` into the shared read cache (the store's default).
    Cache,
    /// A read-only shared mapping of the file.
    Mmap,
}

impl ReadPath {
    /// The name on the command line and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            ReadPath::Cache => "cache",
            ReadPath::Mmap => "mmap",
        }
    }
}

impl std::fmt::Display for ReadPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the cf-store engines ready new extents' pages before writing them
/// (`DbBuilder::populate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Populate {
    /// Nothing: every write allocates its own blocks and pages.
    Never,
    /// `fallocate` ahead (the store's default).
    Allocate,
    /// `fallocate` ahead, and `readahead` too while writes to the file queue.
    WhenContended,
    /// `fallocate` and `readahead` ahead.
    Always,
}

impl Populate {
    /// The name on the command line and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Populate::Never => "never",
            Populate::Allocate => "allocate",
            Populate::WhenContended => "when-contended",
            Populate::Always => "always",
        }
    }
}

impl std::fmt::Display for Populate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A validated cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellConfig {
    pub engine: EngineKind,
    /// `Some` exactly for the cf-store engines.
    pub policy: Option<FlushConfig>,
    /// `Some` exactly for the cf-store engines: the page size of their files.
    pub page_size: Option<u32>,
    /// `Some` exactly for the cf-store engines: the most pages a leaf grows to.
    pub leaf_pages: Option<usize>,
    /// The cf-store engines' cap on bytes per write call; `None`: no cap (the default), or
    /// not a cf-store engine.
    pub max_write_bytes: Option<usize>,
    /// `Some` exactly for the cf-store engines: the most decoded branches a column family
    /// keeps.
    pub kept_branches: Option<usize>,
    /// `Some` exactly for the cf-store engines: the most bytes of non-durable commits a
    /// column family holds unwritten.
    pub hold_bytes: Option<u64>,
    /// `Some` exactly for the cf-store engines: where they read committed pages from.
    pub read_path: Option<ReadPath>,
    /// `Some` exactly for the cf-store engines: how they ready new extents' pages.
    pub populate: Option<Populate>,
    pub threads: usize,
    pub txns: u64,
    pub ops_per_txn: u64,
    pub value_size: usize,
    pub keys: KeyMode,
    pub durability: Durability,
    /// The timed phase ends once every writer's commits are durable (`Writer::settle`).
    pub durable_end: bool,
    pub seed: u64,
    /// Parent of the cell's temporary directory (`None`: the system temp dir).
    pub dir: Option<PathBuf>,
}

/// What a cell measured.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub secs: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// CPU time (user + system) of the process over the timed phase.
    pub cpu_secs: f64,
    /// Deltas over the timed phase.
    pub io: IoCounters,
}

/// What one writer thread timed.
struct ThreadTimes {
    start: Instant,
    end: Instant,
    commits: Vec<Duration>,
}

/// The value every insert writes: `value_size` seeded random bytes, so that nothing along the
/// way (a compressing peer, a deduplicating file system) gets them cheaper than the B+tree.
pub fn value_bytes(value_size: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; value_size];
    SmallRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// Runs the cell in a fresh temporary directory, removed afterwards.
pub fn run(config: &CellConfig) -> Result<Measurement> {
    let tmp = match &config.dir {
        Some(parent) => {
            std::fs::create_dir_all(parent).with_context(|| format!("--dir {}", parent.display()))?;
            tempfile::Builder::new()
                .prefix("bench-cell-")
                .tempdir_in(parent)
                .with_context(|| format!("making a temporary directory in --dir {}", parent.display()))?
        }
        None => tempfile::Builder::new()
            .prefix("bench-cell-")
            .tempdir()
            .context("making a temporary directory")?,
    };
    eprintln!(
        "bench: {} x{} threads, {} txns x {} ops x {} B, keys {}, durability {}{} in {}",
        config.engine.name(),
        config.threads,
        config.txns,
        config.ops_per_txn,
        config.value_size,
        config.keys.name(),
        config.durability.name(),
        config.policy.map(|p| format!(", policy {p}")).unwrap_or_default(),
        tmp.path().display()
    );
    let mut engine = engines::open(config, tmp.path())?;
    let writers = engine.writers()?;
    let result = drive(config, &*engine, writers);
    let closed = engine.finish();
    let m = result?;
    closed.context("closing the engine")?;
    tmp.close().context("removing the cell's temporary directory")?;
    eprintln!(
        "bench: {:.3} s ({:.2} cores busy), p50 {:.0} us, p99 {:.0} us per commit{}",
        m.secs,
        m.cpu_secs / m.secs,
        m.p50_us,
        m.p99_us,
        m.io.write_lock
            .map(|l| format!(
                "; write lock: {} turns, {} queued, {} slept; waited {:.1} ms, held {:.1} ms \
                 (all writers)",
                l.turns,
                l.queued,
                l.parked,
                l.wait_ns as f64 / 1e6,
                l.hold_ns as f64 / 1e6
            ))
            .unwrap_or_default()
    );
    Ok(m)
}

/// Preloads, times the writers and snapshots the counters around the timed phase.
fn drive(
    config: &CellConfig,
    engine: &dyn engines::Engine,
    writers: Vec<Box<dyn Writer>>,
) -> Result<Measurement> {
    let threads = writers.len();
    let value = value_bytes(config.value_size, config.seed);
    // Main thread and writers meet twice: after the preload (main then snapshots the
    // counters), and to start.
    let ready = Barrier::new(threads + 1);
    let go = Barrier::new(threads + 1);
    if config.keys.preloads() {
        eprintln!(
            "bench: preloading {} keys per thread (untimed)",
            config.txns * config.ops_per_txn
        );
    }
    let (before, cpu_before, results) = std::thread::scope(|s| {
        let handles: Vec<_> = writers
            .into_iter()
            .enumerate()
            .map(|(t, writer)| {
                let (ready, go, value) = (&ready, &go, &value[..]);
                s.spawn(move || writer_thread(config, t as u64, writer, value, ready, go))
            })
            .collect();
        ready.wait();
        let before = engine.io();
        let cpu_before = process_cpu_secs();
        go.wait();
        let results: Vec<Result<ThreadTimes>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a writer thread panicked")))
            })
            .collect();
        (before, cpu_before, results)
    });
    let cpu_after = process_cpu_secs();
    // The last writer is done: this snapshot closes the timed phase.
    let after = engine.io();
    let before = before.context("reading the I/O counters before the timed phase")?;
    let after = after.context("reading the I/O counters after the timed phase")?;
    let mut times = Vec::with_capacity(threads);
    for (t, r) in results.into_iter().enumerate() {
        times.push(r.with_context(|| format!("writer thread {t}"))?);
    }
    let start = times.iter().map(|t| t.start).min().context("no writer threads")?;
    let end = times.iter().map(|t| t.end).max().context("no writer threads")?;
    let secs = end.duration_since(start).as_secs_f64().max(1e-9);
    let mut lat: Vec<Duration> = times.into_iter().flat_map(|t| t.commits).collect();
    lat.sort_unstable();
    Ok(Measurement {
        secs,
        p50_us: percentile_us(&lat, 50.0),
        p99_us: percentile_us(&lat, 99.0),
        cpu_secs: (cpu_after - cpu_before).max(0.0),
        io: after.since(&before),
    })
}

/// One writer: the preload (overwrite only), the barriers, then `txns` timed commits.
fn writer_thread(
    config: &CellConfig,
    thread: u64,
    mut writer: Box<dyn Writer>,
    value: &[u8],
    ready: &Barrier,
    go: &Barrier,
) -> Result<ThreadTimes> {
    let mut batch = Vec::with_capacity(config.ops_per_txn as usize);
    let preloaded = preload(config, &mut *writer, value).context("preloading");
    // Meet the others even after a failure, so that no thread waits forever.
    ready.wait();
    go.wait();
    preloaded?;
    let mut gen = KeyGen::new(config.keys, thread, config.txns, config.ops_per_txn, config.seed);
    let mut commits = Vec::with_capacity(config.txns as usize);
    let start = Instant::now();
    for txn in 0..config.txns {
        gen.fill(txn, &mut batch);
        let begin = Instant::now();
        writer
            .commit(&batch, value, config.durability)
            .with_context(|| format!("timed commit {txn}"))?;
        commits.push(begin.elapsed());
    }
    // What the engine still holds of the timed commits goes to the OS inside the timed phase.
    writer.end_timed().context("ending the timed phase")?;
    if config.durable_end {
        writer.settle().context("making the timed commits durable")?;
    }
    let end = Instant::now();
    Ok(ThreadTimes { start, end, commits })
}

/// The overwrite preload (other key modes: nothing): the sequential keys, committed without
/// durability, then made durable once.
fn preload(config: &CellConfig, writer: &mut dyn Writer, value: &[u8]) -> Result<()> {
    if !config.keys.preloads() {
        return Ok(());
    }
    let mut keys = Vec::with_capacity(config.ops_per_txn as usize);
    for txn in 0..config.txns {
        keys::sequential(txn, config.ops_per_txn, &mut keys);
        writer.commit(&keys, value, Durability::None)?;
    }
    writer.settle()
}

/// `getrusage(RUSAGE_SELF)`: the whole process's resource use so far; `None` if the call
/// fails.
pub fn self_usage() -> Option<libc::rusage> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid, writable `rusage`-sized buffer for the duration of the
    // call, and `RUSAGE_SELF` is a valid `who`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    // SAFETY: on success getrusage filled the struct (and it was zeroed before).
    (rc == 0).then(|| unsafe { usage.assume_init() })
}

/// User plus system CPU seconds the process has used so far (0 if unknown).
fn process_cpu_secs() -> f64 {
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    self_usage().map_or(0.0, |u| secs(u.ru_utime) + secs(u.ru_stime))
}

/// The nearest-rank percentile of sorted latencies, in microseconds (0 when empty).
fn percentile_us(sorted: &[Duration], pct: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let us = |n: u64| Duration::from_micros(n);
        let v: Vec<Duration> = (1..=100).map(us).collect();
        assert_eq!(percentile_us(&v, 50.0), 50.0);
        assert_eq!(percentile_us(&v, 99.0), 99.0);
        assert_eq!(percentile_us(&[us(7)], 99.0), 7.0);
        assert_eq!(percentile_us(&[us(1), us(9)], 50.0), 1.0);
        assert_eq!(percentile_us(&[], 50.0), 0.0);
    }

    #[test]
    fn values_are_seeded_and_incompressible_looking() {
        let v = value_bytes(1024, 42);
        assert_eq!(v.len(), 1024);
        assert_eq!(v, value_bytes(1024, 42));
        assert_ne!(v, value_bytes(1024, 43));
        let distinct: std::collections::HashSet<u8> = v.iter().copied().collect();
        assert!(distinct.len() > 200, "random bytes, not a fill pattern");
        assert!(value_bytes(0, 1).is_empty());
    }
}
