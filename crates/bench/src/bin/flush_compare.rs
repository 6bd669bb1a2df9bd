//! `flush-compare`: times every flush policy on a real file, for several dirty-page patterns
//! and sizes, and prints one markdown table per (pattern, pages) cell.
//!
//! Each cell has its own file (a [`FileBackend`] in a temporary directory), pre-extended with
//! `set_len` to the cell's region so no flush grows it, and re-used by every round and policy.
//! Measurements are interleaved: every round visits every cell and, in each, runs every
//! policy once, the policy order rotated by one each round so that drift (page-cache state,
//! writeback, frequency) spreads evenly over the policies. One measurement is `--flushes`
//! flushes (plan + execute) timed together; the backend's `IoStats` are reset before it.
//! After the rounds every policy's output is verified once per cell: the file is zeroed, the
//! policy flushes once, and every dirty page is read back and compared (and every other byte
//! of the region must still be zero).
//!
//! Tables go to stdout, progress to stderr, raw measurements to `--json PATH`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{ensure, Context};
use bench::{Pattern, Spread, Workload, PAGE_SIZE};
use clap::Parser;
use flush::{Backend, FileBackend, FlushConfig, FlushPolicy, IoStatsSnapshot, PlanExecutor};
use serde::Serialize;

/// The most pages one cell may have (4 GiB of dirty data at 4 KiB pages).
const MAX_PAGES: u64 = 1 << 20;
const MIB: f64 = (1u64 << 20) as f64;
const KIB: f64 = 1024.0;

/// Compare flush policies on a real file: write syscalls, bytes and time per flush.
#[derive(Debug, Parser)]
#[command(name = "flush-compare", version)]
struct Cli {
    /// Flush policies, comma separated short forms such as `per-page,gap-merge:16KiB`
    /// [default: the five policies with default parameters].
    #[arg(long, value_delimiter = ',', value_name = "POLICY,...")]
    policies: Option<Vec<FlushConfig>>,

    /// Dirty-page patterns: `contiguous`, `every-other`, `random` [default: all three].
    #[arg(long, value_delimiter = ',', value_name = "PATTERN,...")]
    patterns: Option<Vec<Pattern>>,

    /// Dirty pages per flush, comma separated [default: 256,16384; with --quick 256,4096].
    #[arg(long, value_delimiter = ',', value_name = "N,...",
          value_parser = clap::value_parser!(u64).range(1..=MAX_PAGES))]
    pages: Option<Vec<u64>>,

    /// Rounds; each round measures every policy once in every cell [default: 5; with --quick 3].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    rounds: Option<u32>,

    /// Flushes timed together in one measurement [default: enough for about 64 MiB of dirty
    /// pages, at least 3; with --quick about 32 MiB, at least 3].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    flushes: Option<u64>,

    /// Directory for the temporary files [default: a temporary directory under ./target if
    /// it exists, else under the system temp directory]. Removed at exit.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// Also write every raw measurement, and the summary rows, as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,

    /// A short run (pages 256,4096, 3 rounds, small flush counts): well under a minute.
    #[arg(long)]
    quick: bool,

    /// Seed of the page layouts (buffer order, random pages).
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// The run's parameters, defaults filled in.
#[derive(Debug, Serialize)]
struct Settings {
    policies: Vec<FlushConfig>,
    policy_names: Vec<String>,
    patterns: Vec<Pattern>,
    pages: Vec<usize>,
    rounds: u32,
    /// `Some` when `--flushes` was given; else each cell's count follows from `target_bytes`.
    flushes: Option<u64>,
    target_bytes: u64,
    min_flushes: u64,
    page_size: usize,
    seed: u64,
    quick: bool,
}

impl Settings {
    fn from_cli(cli: &Cli) -> anyhow::Result<Self> {
        let policies = dedup(
            cli.policies
                .clone()
                .unwrap_or_else(|| FlushConfig::all_defaults().to_vec()),
        );
        let patterns = dedup(cli.patterns.clone().unwrap_or_else(|| Pattern::ALL.to_vec()));
        let default_pages: &[u64] = if cli.quick { &[256, 4096] } else { &[256, 16384] };
        let pages = dedup(cli.pages.clone().unwrap_or_else(|| default_pages.to_vec()))
            .into_iter()
            .map(|p| usize::try_from(p).context("page count too large for this machine"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        ensure!(!policies.is_empty(), "--policies lists no policy");
        ensure!(!patterns.is_empty(), "--patterns lists no pattern");
        ensure!(!pages.is_empty(), "--pages lists no page count");
        Ok(Self {
            policy_names: policies.iter().map(ToString::to_string).collect(),
            policies,
            patterns,
            pages,
            rounds: cli.rounds.unwrap_or(if cli.quick { 3 } else { 5 }),
            flushes: cli.flushes,
            target_bytes: if cli.quick { 32 << 20 } else { 64 << 20 },
            min_flushes: 3,
            page_size: PAGE_SIZE,
            seed: cli.seed,
            quick: cli.quick,
        })
    }

    /// Flushes per measurement for a cell of `pages` pages.
    fn flushes_for(&self, pages: usize) -> u64 {
        self.flushes.unwrap_or_else(|| {
            let per_flush = pages as u64 * self.page_size as u64;
            self.target_bytes.div_ceil(per_flush).max(self.min_flushes)
        })
    }
}

/// Keeps the first of each repeated value.
fn dedup<T: Eq + Hash + Clone>(values: Vec<T>) -> Vec<T> {
    let mut seen = HashSet::new();
    values.into_iter().filter(|v| seen.insert(v.clone())).collect()
}

/// One (pattern, pages) cell: its workload, its file and one executor per policy.
struct Cell {
    pattern: Pattern,
    pages: usize,
    flushes: u64,
    workload: Workload,
    backend: FileBackend,
    executors: Vec<PlanExecutor>,
}

/// One timed measurement: `flushes` flushes of one policy in one cell.
#[derive(Debug, Clone, Serialize)]
struct Measurement {
    round: u32,
    /// Position of this policy in the round's (rotated) order within the cell.
    slot: usize,
    pattern: Pattern,
    pages: usize,
    page_size: usize,
    policy: String,
    config: FlushConfig,
    flushes: u64,
    elapsed_ns: u64,
    ns_per_flush: f64,
    write_syscalls_per_flush: f64,
    bytes_written_per_flush: f64,
    gap_bytes_per_flush: f64,
    io: IoStatsSnapshot,
}

/// One table row: a policy's results in one cell over all rounds.
#[derive(Debug, Clone, Serialize)]
struct SummaryRow {
    pattern: Pattern,
    pages: usize,
    policy: String,
    flushes_per_measurement: u64,
    rounds: usize,
    write_syscalls_per_flush: f64,
    mib_written_per_flush: f64,
    gap_kib_per_flush: f64,
    us_per_flush: Spread,
    /// per-page median / this median: how many times faster than the baseline.
    speedup_vs_per_page: Option<f64>,
}

#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    tool: &'static str,
    settings: &'a Settings,
    dir: String,
    cells: Vec<CellInfo>,
    measurements: &'a [Measurement],
    summary: &'a [SummaryRow],
}

#[derive(Debug, Serialize)]
struct CellInfo {
    pattern: Pattern,
    pages: usize,
    flushes_per_measurement: u64,
    region_bytes: u64,
    dirty_bytes: u64,
    free_bytes: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flush-compare: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let started = Instant::now();
    let settings = Settings::from_cli(cli)?;
    let policies: Vec<Box<dyn FlushPolicy>> = settings.policies.iter().map(FlushConfig::build).collect();
    let tmp = temp_dir(cli.dir.as_deref())?;
    let cell_count = settings.patterns.len() * settings.pages.len();
    eprintln!(
        "flush-compare: {cell_count} cells x {} policies x {} rounds; files in {}",
        policies.len(),
        settings.rounds,
        tmp.path().display()
    );

    let mut cells = Vec::with_capacity(cell_count);
    for &pattern in &settings.patterns {
        for &pages in &settings.pages {
            cells.push(setup_cell(&settings, tmp.path(), pattern, pages)?);
        }
    }

    // Warm-up: one untimed flush per policy and cell, so page-cache and block allocation
    // for every byte any policy writes happen before the first measurement.
    eprintln!("warm-up: one untimed flush per policy and cell");
    for cell in &mut cells {
        let pages = cell.workload.dirty_pages()?;
        for (policy, executor) in policies.iter().zip(&mut cell.executors) {
            executor
                .flush(&**policy, &pages, cell.workload.free(), &cell.backend)
                .with_context(|| {
                    format!(
                        "warm-up flush of {} on {}",
                        policy.config(),
                        cell_name(cell.pattern, cell.pages)
                    )
                })?;
        }
    }

    let mut measurements = Vec::new();
    for round in 0..settings.rounds {
        let round_start = Instant::now();
        for cell in &mut cells {
            let pages = cell.workload.dirty_pages()?;
            let n = policies.len();
            for slot in 0..n {
                let p = (slot + round as usize) % n;
                let policy = &*policies[p];
                let executor = &mut cell.executors[p];
                let stats = cell.backend.stats();
                stats.reset();
                let start = Instant::now();
                for _ in 0..cell.flushes {
                    executor
                        .flush(policy, &pages, cell.workload.free(), &cell.backend)
                        .with_context(|| {
                            format!(
                                "flush of {} on {}",
                                settings.policy_names[p],
                                cell_name(cell.pattern, cell.pages)
                            )
                        })?;
                }
                let elapsed = start.elapsed();
                let io = stats.snapshot();
                ensure!(
                    io.flushes == cell.flushes,
                    "IoStats counted {} flushes, expected {}",
                    io.flushes,
                    cell.flushes
                );
                let per = |v: u64| v as f64 / cell.flushes as f64;
                let elapsed_ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
                measurements.push(Measurement {
                    round,
                    slot,
                    pattern: cell.pattern,
                    pages: cell.pages,
                    page_size: settings.page_size,
                    policy: settings.policy_names[p].clone(),
                    config: settings.policies[p],
                    flushes: cell.flushes,
                    elapsed_ns,
                    ns_per_flush: per(elapsed_ns),
                    write_syscalls_per_flush: per(io.write_syscalls()),
                    bytes_written_per_flush: per(io.bytes_written),
                    gap_bytes_per_flush: per(io.gap_bytes_written),
                    io,
                });
            }
        }
        eprintln!(
            "round {}/{} done in {:.2} s",
            round + 1,
            settings.rounds,
            round_start.elapsed().as_secs_f64()
        );
    }

    eprintln!("verifying: every policy once per cell, on a zeroed file");
    for cell in &mut cells {
        let pages = cell.workload.dirty_pages()?;
        let region = cell.workload.layout().region_len;
        let cell_name = cell_name(cell.pattern, cell.pages);
        for ((policy, executor), name) in policies
            .iter()
            .zip(&mut cell.executors)
            .zip(&settings.policy_names)
        {
            let what = || format!("verifying {name} on {cell_name}");
            cell.backend.set_len(0).with_context(what)?;
            cell.backend.set_len(region).with_context(what)?;
            executor
                .flush(&**policy, &pages, cell.workload.free(), &cell.backend)
                .with_context(what)?;
            cell.workload.verify(&cell.backend).with_context(what)?;
        }
    }

    let summary = summarize(&settings, &cells, &measurements);
    print!("{}", render(&settings, &summary));

    if let Some(path) = &cli.json {
        let report = JsonReport {
            tool: "flush-compare",
            settings: &settings,
            dir: tmp.path().display().to_string(),
            cells: cells
                .iter()
                .map(|c| CellInfo {
                    pattern: c.pattern,
                    pages: c.pages,
                    flushes_per_measurement: c.flushes,
                    region_bytes: c.workload.layout().region_len,
                    dirty_bytes: c.workload.layout().dirty_bytes(),
                    free_bytes: c.workload.layout().free_bytes(),
                })
                .collect(),
            measurements: &measurements,
            summary: &summary,
        };
        write_json(path, &report)?;
        eprintln!("raw measurements written to {}", path.display());
    }
    eprintln!("flush-compare: done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// How progress and errors name a cell.
fn cell_name(pattern: Pattern, pages: usize) -> String {
    format!("{pattern} x {pages} pages")
}

fn temp_dir(dir: Option<&Path>) -> anyhow::Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("flush-compare-");
    match dir {
        Some(dir) => builder
            .tempdir_in(dir)
            .with_context(|| format!("cannot create a temporary directory in {}", dir.display())),
        None if Path::new("target").is_dir() => builder
            .tempdir_in("target")
            .context("cannot create a temporary directory in ./target"),
        None => builder.tempdir().context("cannot create a temporary directory"),
    }
}

fn setup_cell(settings: &Settings, dir: &Path, pattern: Pattern, pages: usize) -> anyhow::Result<Cell> {
    let workload = Workload::new(pattern, pages, settings.page_size, settings.seed)?;
    let path = dir.join(format!("{pattern}-{pages}.dat"));
    let backend = FileBackend::open(&path)?;
    backend
        .set_len(workload.layout().region_len)
        .with_context(|| format!("pre-extending {}", path.display()))?;
    let flushes = settings.flushes_for(pages);
    eprintln!(
        "cell {pattern} x {pages} pages: {:.1} MiB dirty in a {:.1} MiB region, {flushes} flushes per measurement",
        workload.layout().dirty_bytes() as f64 / MIB,
        workload.layout().region_len as f64 / MIB,
    );
    Ok(Cell {
        pattern,
        pages,
        flushes,
        workload,
        backend,
        executors: settings.policies.iter().map(|_| PlanExecutor::new()).collect(),
    })
}

fn summarize(settings: &Settings, cells: &[Cell], measurements: &[Measurement]) -> Vec<SummaryRow> {
    let mut rows = Vec::new();
    for cell in cells {
        let mut cell_rows: Vec<SummaryRow> = Vec::new();
        for name in &settings.policy_names {
            let ms: Vec<&Measurement> = measurements
                .iter()
                .filter(|m| m.pattern == cell.pattern && m.pages == cell.pages && &m.policy == name)
                .collect();
            let us: Vec<f64> = ms.iter().map(|m| m.ns_per_flush / 1000.0).collect();
            let Some(us_per_flush) = Spread::of(&us) else {
                continue;
            };
            let mean = |f: fn(&Measurement) -> f64| ms.iter().map(|m| f(m)).sum::<f64>() / ms.len() as f64;
            cell_rows.push(SummaryRow {
                pattern: cell.pattern,
                pages: cell.pages,
                policy: name.clone(),
                flushes_per_measurement: cell.flushes,
                rounds: ms.len(),
                write_syscalls_per_flush: mean(|m| m.write_syscalls_per_flush),
                mib_written_per_flush: mean(|m| m.bytes_written_per_flush) / MIB,
                gap_kib_per_flush: mean(|m| m.gap_bytes_per_flush) / KIB,
                us_per_flush,
                speedup_vs_per_page: None,
            });
        }
        let baseline = cell_rows
            .iter()
            .find(|r| r.policy == FlushConfig::PerPage.to_string())
            .map(|r| r.us_per_flush.median);
        for row in &mut cell_rows {
            row.speedup_vs_per_page = baseline.map(|b| b / row.us_per_flush.median);
        }
        rows.extend(cell_rows);
    }
    rows
}

fn render(settings: &Settings, rows: &[SummaryRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Flush policies on a real file\n");
    let _ = writeln!(
        out,
        "Page size {} B; {} rounds, interleaved, policy order rotated each round; seed {}{}. \
         Times are per flush (plan + execute, buffered writes, no sync): median (min-max) over rounds. \
         `vs per-page` = per-page median / this median (higher is faster).",
        settings.page_size,
        settings.rounds,
        settings.seed,
        if settings.quick { "; quick run" } else { "" },
    );
    let mut cells: Vec<(Pattern, usize, u64)> = Vec::new();
    for r in rows {
        if !cells.iter().any(|&(p, n, _)| p == r.pattern && n == r.pages) {
            cells.push((r.pattern, r.pages, r.flushes_per_measurement));
        }
    }
    for (pattern, pages, flushes) in cells {
        let _ = writeln!(
            out,
            "\n## {pattern}, {pages} pages ({:.1} MiB dirty, {flushes} flushes per measurement)\n",
            (pages * settings.page_size) as f64 / MIB
        );
        let _ = writeln!(
            out,
            "| policy | write calls/flush | MiB written/flush | gap KiB/flush | median us/flush (min-max) | vs per-page |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
        for r in rows.iter().filter(|r| r.pattern == pattern && r.pages == pages) {
            let s = r.us_per_flush;
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} | {:.1} | {} ({}-{}) | {} |",
                r.policy,
                count(r.write_syscalls_per_flush),
                r.mib_written_per_flush,
                r.gap_kib_per_flush,
                micros(s.median),
                micros(s.min),
                micros(s.max),
                r.speedup_vs_per_page
                    .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}x")),
            );
        }
    }
    out
}

/// A per-flush count: whole numbers without decimals.
fn count(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Microseconds with three significant-ish digits.
fn micros(us: f64) -> String {
    if us >= 100.0 {
        format!("{us:.0}")
    } else {
        format!("{us:.1}")
    }
}

fn write_json(path: &Path, report: &JsonReport<'_>) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let text = serde_json::to_string_pretty(report).context("encoding the measurements as JSON")?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_and_quick() {
        let s = Settings::from_cli(&Cli::parse_from(["flush-compare"])).unwrap();
        assert_eq!(s.policies, FlushConfig::all_defaults().to_vec());
        assert_eq!(s.patterns, Pattern::ALL.to_vec());
        assert_eq!(s.pages, vec![256, 16384]);
        assert_eq!(s.rounds, 5);
        assert_eq!(s.flushes_for(256), 64);
        assert_eq!(s.flushes_for(16384), 3);
        let q = Settings::from_cli(&Cli::parse_from(["flush-compare", "--quick", "--rounds", "2"])).unwrap();
        assert_eq!((q.pages.clone(), q.rounds), (vec![256, 4096], 2));
        assert_eq!(q.flushes_for(4096), 3);
        assert_eq!(q.flushes_for(256), 32);
        let f = Settings::from_cli(&Cli::parse_from(["x", "--flushes", "7"])).unwrap();
        assert_eq!(f.flushes_for(16384), 7);
    }

    #[test]
    fn lists_parse_and_dedup() {
        let cli = Cli::parse_from([
            "x",
            "--policies",
            "per-page,gap-merge:64KiB,per-page",
            "--patterns",
            "random,every-other",
            "--pages",
            "8,8,16",
        ]);
        let s = Settings::from_cli(&cli).unwrap();
        assert_eq!(s.policy_names, vec!["per-page", "gap-merge:64KiB"]);
        assert_eq!(s.patterns, vec![Pattern::Random, Pattern::EveryOther]);
        assert_eq!(s.pages, vec![8, 16]);
    }

    #[test]
    fn bad_input_is_a_clap_error_with_the_reason() {
        let err = Cli::try_parse_from(["x", "--policies", "gap-merge:lots"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("lots") && text.contains("accepted forms"), "{text}");
        let err = Cli::try_parse_from(["x", "--patterns", "zigzag"]).unwrap_err();
        assert!(err.to_string().contains("every-other"), "{err}");
        assert!(Cli::try_parse_from(["x", "--pages", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "--rounds", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "--flushes", "-1"]).is_err());
    }

    #[test]
    fn a_tiny_run_measures_verifies_and_writes_json() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("out/results.json");
        let cli = Cli::parse_from([
            "x".as_ref(),
            "--pages".as_ref(),
            "4,16".as_ref(),
            "--rounds".as_ref(),
            "2".as_ref(),
            "--flushes".as_ref(),
            "2".as_ref(),
            "--dir".as_ref(),
            dir.path().as_os_str(),
            "--json".as_ref(),
            json.as_os_str(),
        ]);
        run(&cli).unwrap();
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(v["measurements"].as_array().unwrap().len(), 2 * 3 * 2 * 5);
        assert_eq!(v["summary"].as_array().unwrap().len(), 3 * 2 * 5);
        let first = &v["summary"][0];
        assert_eq!(first["policy"], "per-page");
        assert_eq!(first["write_syscalls_per_flush"], 4.0);
    }
}
