//! `bench`: runs ONE measurement cell (one engine, one workload, one thread count) and prints
//! ONE JSON object on one line on stdout; progress goes to stderr. Every option defaults to
//! the seed workload W1 (`../shared/DESIGN.md`): 1 thread, 100 transactions x 1,000 inserts
//! of 1 KiB values under sequential u64 keys, `Durability::None`, on cf-store.
//!
//! `cargo xtask sweep` runs this binary as a subprocess per cell and collects the lines; the
//! fields are described on [`Report`] (schema 1).

mod cell;
mod engines;
mod keys;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use flush::FlushConfig;
use serde::Serialize;

use crate::cell::{CellConfig, Durability, EngineKind, Populate, ReadPath};
use crate::keys::KeyMode;

/// The version of the JSON object's shape; bumped whenever a field changes meaning or goes.
const SCHEMA: u32 = 1;

/// Run one benchmark cell and print its measurement as one JSON line.
#[derive(Debug, Parser)]
#[command(name = "bench", version)]
struct Cli {
    /// The engine: cf-store (T column families in one file), cf-store-files (one file per
    /// thread), raw (plain pwrite of the same bytes: the ceiling), or a peer (redb, manifold,
    /// fjall; needs a build with `--features peers`).
    #[arg(long, value_enum, default_value_t = EngineKind::CfStore)]
    engine: EngineKind,
    /// Flush policy of the cf-store engines, as a short form (`per-page`, `sorted-merge[:RUN]`,
    /// `gap-merge[:GAP[:RUN]]`, `vectored`, `vectored-gap[:GAP]`) [default: vectored].
    #[arg(long, value_name = "POLICY")]
    policy: Option<FlushConfig>,
    /// Page size of the cf-store engines' files, in bytes: a power of two from 512 to 65536
    /// [default: 4096, the store's default].
    #[arg(long, value_name = "BYTES", value_parser = parse_page_size)]
    page_size: Option<u32>,
    /// Most pages a B+tree leaf of the cf-store engines grows to by appends, 1 to 16
    /// [default: 16, the store's default].
    #[arg(long, value_name = "PAGES", value_parser = clap::value_parser!(u64).range(1..=cf_store::MAX_LEAF_PAGES as u64))]
    leaf_pages: Option<u64>,
    /// Most bytes one write call of the cf-store engines carries (`FileOptions::
    /// max_bytes_per_call`), at least 4096; longer runs are written in several calls
    /// [default: no cap, the store's default].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(4096..=0x7fff_f000))]
    max_write_bytes: Option<u64>,
    /// Most decoded branches a column family of the cf-store engines keeps for its next
    /// transactions (`DbBuilder::kept_branches`; 0 keeps none) [default: 256, the store's
    /// default].
    #[arg(long, value_name = "BRANCHES", value_parser = clap::value_parser!(u64).range(0..=1 << 20))]
    kept_branches: Option<u64>,
    /// Most bytes of commits without durability a column family of the cf-store engines
    /// holds in memory before writing them (`DbBuilder::hold_bytes`; 0 writes every commit)
    /// [default: the store's default]. Held pages left at the end are written inside the
    /// timed phase.
    #[arg(long, value_name = "BYTES", value_parser = parse_hold_bytes)]
    hold_bytes: Option<u64>,
    /// Where the cf-store engines read committed pages from (`DbBuilder::read_path`): the
    /// read cache (`pread`) or a memory map [default: cache, the store's default].
    #[arg(long, value_enum)]
    read_path: Option<ReadPath>,
    /// How the cf-store engines ready new extents' pages before writing them
    /// (`DbBuilder::populate`): allocate their blocks ahead, also fill the page cache
    /// (always, or while writes to the file queue), or neither [default: allocate, the
    /// store's default].
    #[arg(long, value_enum)]
    populate: Option<Populate>,
    /// Writer threads, each with its own column family, file or keyspace.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=4096))]
    threads: u64,
    /// Transactions per thread.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    txns: u64,
    /// Inserts per transaction.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    ops_per_txn: u64,
    /// Bytes of each value (at most 1 GiB).
    #[arg(long, value_name = "BYTES", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(0..=cf_store::MAX_VALUE_LEN as u64))]
    value_size: u64,
    /// Keys: sequential (u64 big-endian txn*ops_per_txn + i), random (a seeded random u64 per
    /// insert), overwrite (an untimed preload of the sequential keys, then timed transactions
    /// rewriting keys drawn uniformly from them).
    #[arg(long, value_enum, default_value_t = KeyMode::Sequential)]
    keys: KeyMode,
    /// Commit durability: none (written to the OS, no sync) or immediate (synced per commit).
    #[arg(long, value_enum, default_value_t = Durability::None)]
    durability: Durability,
    /// End the timed phase only once every writer's commits are durable (each engine's own
    /// sync: cf-store's `ColumnFamily::sync`, a durable commit of redb and manifold,
    /// fjall's `persist`). Without it the phase ends when the commits are in the OS, as far
    /// as the engine lets the bench say so: redb keeps commits without durability in memory
    /// until a durable one, and writes them after the phase.
    #[arg(long)]
    durable_end: bool,
    /// Directory under which the cell makes (and afterwards removes) its own temporary
    /// directory for the files [default: the system temp dir].
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,
    /// Seed of the random keys and of the value bytes.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

impl Cli {
    /// Checks what clap cannot and makes the cell's configuration.
    fn into_config(self) -> Result<CellConfig> {
        engines::check_available(self.engine)?;
        let threads = self.threads;
        let per_thread = self
            .txns
            .checked_mul(self.ops_per_txn)
            .context("--txns x --ops-per-txn overflows a u64 key space")?;
        let total = per_thread
            .checked_mul(threads)
            .context("--threads x --txns x --ops-per-txn overflows a u64")?;
        let entry = self.value_size + 8;
        total
            .checked_mul(entry)
            .context("the bytes inserted (ops x (8 + --value-size)) overflow a u64")?;
        let commit_bytes = self
            .ops_per_txn
            .checked_mul(entry)
            .context("--ops-per-txn x (8 + --value-size) overflows a u64")?;
        if usize::try_from(commit_bytes).is_err() || usize::try_from(self.ops_per_txn).is_err() {
            bail!("--ops-per-txn x (8 + --value-size) = {commit_bytes} bytes does not fit this machine");
        }
        let policy = cf_store_option(self.engine, "--policy", self.policy, FlushConfig::default());
        let page_size = cf_store_option(
            self.engine,
            "--page-size",
            self.page_size,
            cf_store::DEFAULT_PAGE_SIZE,
        );
        let leaf_pages = cf_store_option(
            self.engine,
            "--leaf-pages",
            self.leaf_pages.map(|p| p as usize),
            cf_store::MAX_LEAF_PAGES,
        );
        let kept_branches = cf_store_option(
            self.engine,
            "--kept-branches",
            self.kept_branches.map(|b| b as usize),
            cf_store::DEFAULT_KEPT_BRANCHES,
        );
        let hold_bytes = cf_store_option(
            self.engine,
            "--hold-bytes",
            self.hold_bytes,
            cf_store::DEFAULT_HOLD_BYTES,
        );
        let read_path = cf_store_option(self.engine, "--read-path", self.read_path, ReadPath::Cache);
        let populate = cf_store_option(self.engine, "--populate", self.populate, Populate::Allocate);
        if let (Some(bytes), false) = (self.max_write_bytes, self.engine.is_cf_store()) {
            eprintln!(
                "bench: note: --max-write-bytes {bytes} is ignored by engine {} (it applies to cf-store engines)",
                self.engine.name()
            );
        }
        let max_write_bytes = self
            .max_write_bytes
            .filter(|_| self.engine.is_cf_store())
            .map(|b| b as usize);
        Ok(CellConfig {
            engine: self.engine,
            policy,
            page_size,
            leaf_pages,
            max_write_bytes,
            kept_branches,
            hold_bytes,
            read_path,
            populate,
            threads: threads as usize,
            txns: self.txns,
            ops_per_txn: self.ops_per_txn,
            value_size: self.value_size as usize,
            keys: self.keys,
            durability: self.durability,
            durable_end: self.durable_end,
            seed: self.seed,
            dir: self.dir,
        })
    }
}

/// An option of the cf-store engines: `given` or `default` for them; `None` for the other
/// engines, with a note on stderr when it was given.
fn cf_store_option<T: std::fmt::Display>(
    engine: EngineKind,
    flag: &str,
    given: Option<T>,
    default: T,
) -> Option<T> {
    if engine.is_cf_store() {
        return Some(given.unwrap_or(default));
    }
    if let Some(value) = given {
        eprintln!(
            "bench: note: {flag} {value} is ignored by engine {} (it applies to cf-store engines)",
            engine.name()
        );
    }
    None
}

/// `--page-size`: a power of two the page cache accepts.
fn parse_page_size(text: &str) -> std::result::Result<u32, String> {
    let range = pagecache::MIN_PAGE_SIZE..=pagecache::MAX_PAGE_SIZE;
    match text.trim().parse::<u32>() {
        Ok(bytes) if bytes.is_power_of_two() && range.contains(&bytes) => Ok(bytes),
        _ => Err(format!(
            "`{text}` is not a power of two from {} to {} bytes",
            range.start(),
            range.end()
        )),
    }
}

/// `--hold-bytes`: a byte count, binary units allowed ("16MiB").
fn parse_hold_bytes(text: &str) -> std::result::Result<u64, String> {
    text.parse::<flush::ByteSize>()
        .map(|b| b.0)
        .map_err(|e| format!("`{text}` is not a byte count: {e}"))
}

/// The one JSON line of a cell (schema 1). Counts of system calls and bytes are deltas over
/// the timed phase only (the overwrite preload and the setup are not in them).
#[derive(Debug, Serialize)]
struct Report {
    /// [`SCHEMA`].
    schema: u32,
    engine: &'static str,
    /// The flush policy's short form for the cf-store engines, `null` for the others.
    policy: Option<String>,
    /// The page size of the cf-store engines' files, `null` for the others.
    page_size: Option<u32>,
    /// The most pages a leaf of the cf-store engines grows to, `null` for the others.
    leaf_pages: Option<usize>,
    /// The cf-store engines' cap on bytes per write call; `null`: no cap, or not cf-store.
    max_write_bytes: Option<usize>,
    /// The most decoded branches a column family of the cf-store engines keeps, `null` for
    /// the others.
    kept_branches: Option<usize>,
    /// The most bytes of commits without durability a column family of the cf-store engines
    /// holds unwritten, `null` for the others.
    hold_bytes: Option<u64>,
    /// Where the cf-store engines read committed pages from ("cache" or "mmap"), `null` for
    /// the others.
    read_path: Option<&'static str>,
    /// How the cf-store engines ready new extents' pages ("never", "allocate",
    /// "when-contended" or "always"), `null` for the others.
    populate: Option<&'static str>,
    threads: usize,
    /// Transactions per thread.
    txns: u64,
    ops_per_txn: u64,
    value_size: usize,
    keys: &'static str,
    durability: &'static str,
    /// Whether the timed phase ended with every writer's commits durable (`--durable-end`).
    durable_end: bool,
    seed: u64,
    /// Inserts timed: threads x txns x ops_per_txn.
    ops: u64,
    /// Wall time from the start barrier to the last thread's last commit.
    secs: f64,
    ops_per_sec: f64,
    /// Commits timed: threads x txns.
    commits: u64,
    /// `pwrite`-type calls. For peers (`syscall_source` "proc-self-io") every write-type
    /// system call of the process (`syscw`), vectored ones included.
    write_calls: u64,
    /// `pwritev` calls; 0 for peers, whose vectored calls are counted in `write_calls`.
    vectored_calls: u64,
    /// `fdatasync` calls. `null` for peers: /proc/self/io does not count syncs.
    sync_calls: Option<u64>,
    /// (write_calls + vectored_calls) / commits.
    write_calls_per_commit: f64,
    /// `fallocate` and `readahead` calls that readied new pages before they were written
    /// (cf-store's `Populate`); `null` for peers.
    populate_calls: Option<u64>,
    /// (write_calls + vectored_calls + sync_calls + populate_calls) / commits; `null` where
    /// sync_calls is.
    syscalls_per_commit: Option<f64>,
    /// sync_calls / commits; `null` where sync_calls is.
    syncs_per_commit: Option<f64>,
    /// Bytes handed to write calls (for peers `wchar`: every write-type call's bytes).
    bytes_written: u64,
    /// ops x (8 + value_size): the key and value bytes the transactions inserted.
    bytes_inserted: u64,
    /// bytes_written / bytes_inserted.
    write_amplification: f64,
    /// CPU time (user + system) of the whole process over the timed phase, in seconds:
    /// from just before the start barrier to after the last writer joined, a window a
    /// little wider than `secs` (0 if `getrusage` failed).
    cpu_secs: f64,
    /// cpu_secs / secs: how many cores the timed phase kept busy on average.
    cpu_utilization: f64,
    /// Median commit latency (begin of the transaction to the return of its commit), over
    /// every commit of every thread, in microseconds.
    p50_commit_us: f64,
    /// 99th percentile (nearest rank) of the same.
    p99_commit_us: f64,
    /// Peak resident set of the process (`getrusage(RUSAGE_SELF).ru_maxrss`), in KiB.
    peak_rss_kb: u64,
    /// "iostats" (the backend's `flush::IoStats`: cf-store engines and raw) or
    /// "proc-self-io" (peers).
    syscall_source: &'static str,
}

fn report(config: &CellConfig, m: &cell::Measurement) -> Report {
    let commits = config.threads as u64 * config.txns;
    let ops = commits * config.ops_per_txn;
    let bytes_inserted = ops * (8 + config.value_size as u64);
    let per_commit = |n: u64| n as f64 / commits as f64;
    let io = &m.io;
    let writes = io.write_calls + io.vectored_calls;
    Report {
        schema: SCHEMA,
        engine: config.engine.name(),
        policy: config.policy.map(|p| p.to_string()),
        page_size: config.page_size,
        leaf_pages: config.leaf_pages,
        max_write_bytes: config.max_write_bytes,
        kept_branches: config.kept_branches,
        hold_bytes: config.hold_bytes,
        read_path: config.read_path.map(ReadPath::name),
        populate: config.populate.map(Populate::name),
        threads: config.threads,
        txns: config.txns,
        ops_per_txn: config.ops_per_txn,
        value_size: config.value_size,
        keys: config.keys.name(),
        durability: config.durability.name(),
        durable_end: config.durable_end,
        seed: config.seed,
        ops,
        secs: m.secs,
        ops_per_sec: ops as f64 / m.secs,
        commits,
        write_calls: io.write_calls,
        vectored_calls: io.vectored_calls,
        sync_calls: io.sync_calls,
        write_calls_per_commit: per_commit(writes),
        populate_calls: io.populate_calls,
        syscalls_per_commit: io
            .sync_calls
            .map(|s| per_commit(writes + s + io.populate_calls.unwrap_or(0))),
        syncs_per_commit: io.sync_calls.map(per_commit),
        bytes_written: io.bytes_written,
        bytes_inserted,
        write_amplification: io.bytes_written as f64 / bytes_inserted as f64,
        cpu_secs: m.cpu_secs,
        cpu_utilization: m.cpu_secs / m.secs,
        p50_commit_us: m.p50_us,
        p99_commit_us: m.p99_us,
        peak_rss_kb: peak_rss_kb(),
        syscall_source: io.source.name(),
    }
}

/// The process's peak resident set in KiB (Linux reports `ru_maxrss` in KiB); 0 if unknown.
fn peak_rss_kb() -> u64 {
    cell::self_usage().map_or(0, |u| u64::try_from(u.ru_maxrss).unwrap_or(0))
}

fn run(cli: Cli) -> Result<()> {
    let config = cli.into_config()?;
    let m = cell::run(&config)?;
    let line = serde_json::to_string(&report(&config, &m)).context("encoding the report")?;
    println!("{line}");
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> std::result::Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
    }

    fn config(args: &[&str]) -> Result<CellConfig> {
        parse(args)?.into_config()
    }

    #[test]
    fn defaults_are_the_seed_workload() {
        let c = config(&[]).unwrap();
        assert_eq!(c.engine, EngineKind::CfStore);
        assert_eq!(c.policy, Some(FlushConfig::default()));
        assert_eq!(c.page_size, Some(4096));
        assert_eq!(c.leaf_pages, Some(16));
        assert_eq!(c.max_write_bytes, None);
        assert_eq!(c.kept_branches, Some(256));
        assert_eq!(c.read_path, Some(ReadPath::Cache));
        assert_eq!(c.populate, Some(Populate::Allocate));
        assert_eq!(c.threads, 1);
        assert_eq!(c.txns, 100);
        assert_eq!(c.ops_per_txn, 1000);
        assert_eq!(c.value_size, 1024);
        assert_eq!(c.keys, KeyMode::Sequential);
        assert_eq!(c.durability, Durability::None);
        assert!(!c.durable_end, "the timed phase ends with the commits in the OS");
        assert_eq!(c.seed, 42);
        assert_eq!(c.dir, None);
    }

    #[test]
    fn every_option_parses() {
        let c = config(&[
            "--engine",
            "cf-store-files",
            "--policy",
            "gap-merge:32KiB",
            "--page-size",
            "8192",
            "--leaf-pages",
            "2",
            "--max-write-bytes",
            "262144",
            "--kept-branches",
            "0",
            "--read-path",
            "mmap",
            "--populate",
            "when-contended",
            "--threads",
            "4",
            "--txns",
            "7",
            "--ops-per-txn",
            "3",
            "--value-size",
            "0",
            "--keys",
            "overwrite",
            "--durability",
            "immediate",
            "--dir",
            "/tmp/x",
            "--seed",
            "9",
        ])
        .unwrap();
        assert_eq!(c.engine, EngineKind::CfStoreFiles);
        assert_eq!(c.policy.unwrap().to_string(), "gap-merge:32KiB");
        assert_eq!(c.page_size, Some(8192));
        assert_eq!(c.leaf_pages, Some(2));
        assert_eq!(c.max_write_bytes, Some(262_144));
        assert_eq!(c.kept_branches, Some(0));
        assert_eq!(c.read_path, Some(ReadPath::Mmap));
        assert_eq!(c.populate, Some(Populate::WhenContended));
        assert_eq!((c.threads, c.txns, c.ops_per_txn, c.value_size), (4, 7, 3, 0));
        assert_eq!(c.keys, KeyMode::Overwrite);
        assert_eq!(c.durability, Durability::Immediate);
        assert_eq!(c.dir, Some(PathBuf::from("/tmp/x")));
        assert_eq!(c.seed, 9);
        let engines: &[&str] = if cfg!(feature = "peers") {
            &["cf-store", "raw", "raw-files", "redb", "manifold", "fjall"]
        } else {
            &["cf-store", "raw", "raw-files"]
        };
        for &engine in engines {
            assert_eq!(config(&["--engine", engine]).unwrap().engine.name(), engine);
        }
        for keys in ["sequential", "random"] {
            assert_eq!(config(&["--keys", keys]).unwrap().keys.name(), keys);
        }
    }

    #[test]
    fn policy_is_null_for_other_engines() {
        assert_eq!(config(&["--engine", "raw"]).unwrap().policy, None);
        assert_eq!(
            config(&["--engine", "raw", "--policy", "per-page"])
                .unwrap()
                .policy,
            None
        );
        let c = config(&["--policy", "per-page"]).unwrap();
        assert_eq!(c.policy, Some(FlushConfig::PerPage));
        assert_eq!(
            config(&["--engine", "raw", "--page-size", "8192"])
                .unwrap()
                .page_size,
            None
        );
    }

    #[test]
    fn bad_values_are_rejected_naming_the_flag() {
        let cases: &[(&[&str], &str)] = &[
            (&["--engine", "rocksdb"], "--engine"),
            (&["--policy", "fastest"], "--policy"),
            (&["--policy", "gap-merge:1.5KiB"], "--policy"),
            (&["--page-size", "4000"], "--page-size"),
            (&["--page-size", "256"], "--page-size"),
            (&["--page-size", "131072"], "--page-size"),
            (&["--page-size", "4K"], "--page-size"),
            (&["--leaf-pages", "0"], "--leaf-pages"),
            (&["--leaf-pages", "17"], "--leaf-pages"),
            (&["--threads", "0"], "--threads"),
            (&["--threads=-1"], "--threads"),
            (&["--txns", "0"], "--txns"),
            (&["--txns", "many"], "--txns"),
            (&["--ops-per-txn", "0"], "--ops-per-txn"),
            (&["--value-size", "2000000000"], "--value-size"),
            (&["--keys", "zipf"], "--keys"),
            (&["--durability", "eventual"], "--durability"),
            (&["--seed", "x"], "--seed"),
            (&["--frobnicate"], "--frobnicate"),
        ];
        for (args, flag) in cases {
            let err = parse(args).expect_err(&format!("{args:?} must be refused"));
            let text = err.to_string();
            assert!(text.contains(flag), "{args:?}: {text}");
        }
        // Accepted values are listed for the enumerations.
        let text = parse(&["--keys", "zipf"]).unwrap_err().to_string();
        assert!(
            text.contains("sequential") && text.contains("overwrite"),
            "{text}"
        );
        let text = parse(&["--durability", "x"]).unwrap_err().to_string();
        assert!(text.contains("none") && text.contains("immediate"), "{text}");
    }

    #[cfg(not(feature = "peers"))]
    #[test]
    fn peers_without_the_feature_name_it() {
        for engine in ["redb", "manifold", "fjall"] {
            let err = config(&["--engine", engine]).unwrap_err().to_string();
            assert!(err.contains("--features peers") && err.contains(engine), "{err}");
        }
    }

    #[test]
    fn overflowing_sizes_are_errors() {
        let err = config(&["--txns", "18446744073709551615", "--ops-per-txn", "2"]).unwrap_err();
        assert!(err.to_string().contains("--txns"), "{err}");
        let err = config(&[
            "--threads",
            "4096",
            "--txns",
            "4611686018427387904",
            "--ops-per-txn",
            "1",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("--threads"), "{err}");
    }

    #[test]
    fn durable_end_is_a_flag_reported_in_the_json() {
        let c = config(&["--durable-end", "--engine", "raw"]).unwrap();
        assert!(c.durable_end);
        let m = cell::Measurement {
            secs: 1.0,
            p50_us: 0.0,
            p99_us: 0.0,
            cpu_secs: 0.0,
            io: engines::IoCounters {
                write_calls: 1,
                vectored_calls: 0,
                sync_calls: Some(1),
                bytes_written: 4096,
                write_lock: None,
                populate_calls: None,
                source: engines::SyscallSource::IoStats,
            },
        };
        let json = serde_json::to_value(report(&c, &m)).unwrap();
        assert_eq!(json["durable_end"], serde_json::Value::Bool(true));
    }
}
