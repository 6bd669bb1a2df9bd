//! `summary.md`: per workload and durability, ops/s tables (median and min-max over rounds,
//! the best median in bold), ratio tables, and an I/O and latency table; plus the pure
//! arithmetic they use (median, min-max, ratio, best), which the tests pin down.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::config::{variant, Matrix, CF_ENGINES, PEERS};
use super::run::{BenchResult, Outcome, RunRecord};

/// The median of `values` (the mean of the middle two for an even count); `None` if empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// The smallest and largest of `values`; `None` if empty.
pub fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let first = *values.first()?;
    Some(
        values
            .iter()
            .fold((first, first), |(lo, hi), &v| (lo.min(v), hi.max(v))),
    )
}

/// `num / den`, or `None` when `den` is not positive or either is not finite.
pub fn ratio(num: f64, den: f64) -> Option<f64> {
    (num.is_finite() && den.is_finite() && den > 0.0).then(|| num / den)
}

/// The index of the largest value (the first of equals), skipping `None`s.
pub fn best(values: &[Option<f64>]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = *v {
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((i, v));
            }
        }
    }
    best.map(|(i, _)| i)
}

/// Median and range of one cell's samples over rounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// How many samples.
    pub n: usize,
}

impl Spread {
    /// The spread of `values`; `None` if empty.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let (min, max) = min_max(values)?;
        Some(Spread {
            median: median(values)?,
            min,
            max,
            n: values.len(),
        })
    }

    /// Whether the two min-max ranges overlap (then a ratio of medians is within the noise).
    pub fn overlaps(&self, other: &Spread) -> bool {
        self.min <= other.max && other.min <= self.max
    }
}

/// A ratio of medians, and whether it is beyond the noise (the ranges do not overlap).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio {
    /// `a.median / b.median`.
    pub value: f64,
    /// The two min-max ranges do not overlap.
    pub beyond_noise: bool,
}

/// `a` over `b`: median over median; `None` if either is missing or `b` is not positive. It is
/// beyond the noise when both have at least two samples and their ranges do not overlap (one
/// sample has no range to judge by).
pub fn ratio_of(a: Option<Spread>, b: Option<Spread>) -> Option<Ratio> {
    let (a, b) = (a?, b?);
    Some(Ratio {
        value: ratio(a.median, b.median)?,
        beyond_noise: a.n >= 2 && b.n >= 2 && !a.overlaps(&b),
    })
}

/// Three significant digits, without a unit: `0.54`, `12.3`, `339`, `1234`.
pub fn sig3(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a < 10.0 {
        format!("{v:.2}")
    } else if a < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// A count or rate with a k/M/G suffix and three significant digits: `546k`, `1.23M`.
pub fn short(v: f64) -> String {
    let a = v.abs();
    for (scale, unit) in [(1e9, "G"), (1e6, "M"), (1e3, "k")] {
        if a >= scale {
            return format!("{}{unit}", sig3(v / scale));
        }
    }
    sig3(v)
}

/// `546k (493k-570k)`.
pub fn spread_cell(s: &Spread) -> String {
    format!("{} ({}-{})", short(s.median), short(s.min), short(s.max))
}

/// `1.52x`, with `*` when beyond the noise; `-` when missing.
pub fn ratio_cell(r: Option<Ratio>) -> String {
    match r {
        None => "-".into(),
        Some(r) if r.beyond_noise => format!("{:.2}x*", r.value),
        Some(r) => format!("{:.2}x", r.value),
    }
}

/// A metric of one run.
type Metric = fn(&BenchResult) -> Option<f64>;

fn ops_per_sec(r: &BenchResult) -> Option<f64> {
    Some(r.ops_per_sec)
}

/// Samples of finished runs, keyed by (workload, durability, variant, threads).
#[derive(Debug, Default)]
pub struct Samples<'a> {
    by_cell: HashMap<(&'a str, &'a str, &'a str, u32), Vec<&'a BenchResult>>,
}

impl<'a> Samples<'a> {
    /// Indexes `records`.
    pub fn new(records: &'a [RunRecord]) -> Self {
        let mut by_cell: HashMap<_, Vec<&BenchResult>> = HashMap::new();
        for r in records {
            let key = (
                r.workload.as_str(),
                r.result.durability.as_str(),
                r.variant.as_str(),
                r.result.threads,
            );
            by_cell.entry(key).or_default().push(&r.result);
        }
        Samples { by_cell }
    }

    /// The spread of `metric` over the runs of one cell (runs that report it).
    pub fn spread(
        &self,
        workload: &str,
        durability: &str,
        variant: &str,
        threads: u32,
        metric: Metric,
    ) -> Option<Spread> {
        let runs = self.by_cell.get(&(workload, durability, variant, threads))?;
        let values: Vec<f64> = runs
            .iter()
            .filter_map(|r| metric(r))
            .filter(|v| v.is_finite())
            .collect();
        Spread::of(&values)
    }

    /// Whether any run of this variant finished in this workload and durability.
    pub fn has(&self, workload: &str, durability: &str, variant: &str) -> bool {
        self.by_cell
            .keys()
            .any(|(w, d, v, _)| *w == workload && *d == durability && *v == variant)
    }
}

/// One markdown table.
struct Table {
    header: Vec<String>,
    /// Columns after the first `left` are right-aligned (numbers).
    left: usize,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: Vec<String>, left: usize) -> Self {
        Table {
            header,
            left,
            rows: Vec::new(),
        }
    }

    fn render(&self, out: &mut String) {
        let line = |cells: &[String]| {
            format!(
                "| {} |\n",
                cells.iter().map(|c| escape(c)).collect::<Vec<_>>().join(" | ")
            )
        };
        out.push_str(&line(&self.header));
        let align: Vec<String> = (0..self.header.len())
            .map(|i| {
                if i < self.left {
                    "---".into()
                } else {
                    "---:".into()
                }
            })
            .collect();
        out.push_str(&format!("|{}|\n", align.join("|")));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out.push('\n');
    }
}

/// A table cell's text with `|` and newlines made safe.
fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The text at the top of `summary.md`: what the columns mean.
pub const HOW_TO_READ: &str = "\
How to read these tables:

- **ops/s**: inserts per second of one run, all writer threads together (T = threads). Each \
cell is the median over rounds, then (min-max) over rounds. The min-max range is the noise: \
on a shared machine times drift between rounds, so read every ratio against it.
- **Bold**: the best median in its column.
- **Ratios** are median over median, same workload, durability and thread count; above 1.00x \
the first one named is faster. Within a round, each engine runs right beside its twin at \
each thread count (cf-store beside cf-store-files with the same policy, raw beside raw-files), \
a pair runs its thread counts in turn, and every second round runs in reverse. `*` marks a \
ratio whose two min-max ranges do not overlap: only those are beyond the noise (never marked \
with a single round).
- **write calls/commit**: write system calls (`pwrite` + `pwritev`) per commit; \
**syscalls/commit**: all counted I/O system calls per commit, syncs included; \
**syncs/commit**: `fdatasync`/`fsync` calls per commit (below 1 when group commit shares a \
sync); for peers these come from the source in `syscall_source`, or are `-` when not \
reported. **write amp**: bytes written / bytes inserted. **p50/p99 commit**: commit latency in \
microseconds. **peak RSS**: the run's peak resident memory. All are medians over rounds.
- `-`: not run, failed, or not reported.
";

/// Renders `summary.md`.
pub fn render(matrix: &Matrix, outcome: &Outcome) -> String {
    let samples = Samples::new(&outcome.records);
    let mut out = String::new();
    let planned = matrix.run_count();
    let _ = writeln!(out, "# Sweep summary\n");
    let _ = writeln!(
        out,
        "Matrix: {}; {} cells x {} rounds = {planned} runs; {} finished, {} failed{}.\n",
        matrix.source,
        matrix.cells().len(),
        matrix.rounds,
        outcome.records.len(),
        outcome.failures.len(),
        if outcome.interrupted {
            "; **interrupted by Ctrl-C**: the tables hold the runs finished before it"
        } else {
            ""
        }
    );
    if matrix.warm_up.0 > 0 {
        let _ = writeln!(
            out,
            "Before each run the sweep wrote {} of zeros to a file and deleted it (`warm_up`), \
             so that no run starts on memory the machine handed back to its host.\n",
            matrix.warm_up
        );
    }
    let _ = writeln!(
        out,
        "Engines: {}. Policies (cf-store engines): {}. Threads: {}. Durability: {}. Seed: {}.\n",
        matrix.engines.join(", "),
        matrix.policy_forms().join(", "),
        matrix
            .threads
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        matrix.durability.join(", "),
        matrix.seed
    );
    out.push_str(HOW_TO_READ);
    out.push('\n');

    for workload in &matrix.workloads {
        for durability in &matrix.durability {
            let _ = writeln!(out, "## {}, durability {durability}\n", workload.name);
            let _ = writeln!(out, "{}.\n", workload.describe());
            let block = Block {
                matrix,
                samples: &samples,
                workload: &workload.name,
                durability,
            };
            block.render(&mut out);
        }
    }

    if !outcome.failures.is_empty() {
        let _ = writeln!(out, "## Failures ({})\n", outcome.failures.len());
        out.push_str("Full commands and stderr tails are in `results.json`.\n\n");
        let mut t = Table::new(vec!["round".into(), "cell".into(), "error".into()], 3);
        for f in &outcome.failures {
            t.rows.push(vec![
                f.round.to_string(),
                f.what.clone(),
                f.error.lines().next().unwrap_or_default().to_owned(),
            ]);
        }
        t.render(&mut out);
    }
    out
}

/// One workload x durability section.
struct Block<'a> {
    matrix: &'a Matrix,
    samples: &'a Samples<'a>,
    workload: &'a str,
    durability: &'a str,
}

impl Block<'_> {
    fn spread(&self, variant: &str, threads: u32, metric: Metric) -> Option<Spread> {
        self.samples
            .spread(self.workload, self.durability, variant, threads, metric)
    }

    fn thread_header(&self, first: &[&str]) -> Vec<String> {
        first
            .iter()
            .map(|s| (*s).to_owned())
            .chain(self.matrix.threads.iter().map(|t| format!("T={t}")))
            .collect()
    }

    /// A ratio row `a / b` over every thread count, or `None` if no column has both.
    fn ratio_row(&self, a: &str, b: &str) -> Option<Vec<String>> {
        let cells: Vec<Option<Ratio>> = self
            .matrix
            .threads
            .iter()
            .map(|&t| ratio_of(self.spread(a, t, ops_per_sec), self.spread(b, t, ops_per_sec)))
            .collect();
        cells
            .iter()
            .any(Option::is_some)
            .then(|| cells.into_iter().map(ratio_cell).collect())
    }

    fn render(&self, out: &mut String) {
        let variants: Vec<String> = self
            .matrix
            .variants()
            .iter()
            .map(|(e, p)| variant(e, p.as_deref()))
            .filter(|v| self.samples.has(self.workload, self.durability, v))
            .collect();
        if variants.is_empty() {
            out.push_str("No finished runs.\n\n");
            return;
        }
        let threads = &self.matrix.threads;

        // ops/s, best median per column in bold.
        out.push_str("### ops/s: median (min-max) over rounds\n\n");
        let mut t = Table::new(self.thread_header(&["engine/policy"]), 1);
        let grid: Vec<Vec<Option<Spread>>> = variants
            .iter()
            .map(|v| {
                threads
                    .iter()
                    .map(|&th| self.spread(v, th, ops_per_sec))
                    .collect()
            })
            .collect();
        let bests: Vec<Option<usize>> = (0..threads.len())
            .map(|c| {
                best(
                    &grid
                        .iter()
                        .map(|row| row[c].map(|s| s.median))
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        for (r, v) in variants.iter().enumerate() {
            let mut row = vec![v.clone()];
            for (c, cell) in grid[r].iter().enumerate() {
                row.push(match cell {
                    None => "-".into(),
                    Some(s) if bests[c] == Some(r) => format!("**{}**", spread_cell(s)),
                    Some(s) => spread_cell(s),
                });
            }
            t.rows.push(row);
        }
        t.render(out);

        let policies = self.matrix.policy_forms();
        let ran = |v: &str| variants.iter().any(|x| x == v);

        // cf-store policy vs per-page, same engine.
        let mut t = Table::new(self.thread_header(&["engine", "policy"]), 2);
        for engine in CF_ENGINES {
            let base = variant(engine, Some("per-page"));
            for p in policies.iter().filter(|p| *p != "per-page") {
                let v = variant(engine, Some(p));
                if let Some(cells) = self.ratio_row(&v, &base) {
                    t.rows
                        .push([engine.to_owned(), p.clone()].into_iter().chain(cells).collect());
                }
            }
        }
        section(
            out,
            "cf-store policies vs per-page (same engine): ops/s ratio",
            &t,
        );

        // cf-store vs cf-store-files, same policy.
        let mut t = Table::new(self.thread_header(&["policy"]), 1);
        for p in &policies {
            let one = variant("cf-store", Some(p));
            let files = variant("cf-store-files", Some(p));
            if let Some(cells) = self.ratio_row(&one, &files) {
                t.rows.push(std::iter::once(p.clone()).chain(cells).collect());
            }
        }
        section(
            out,
            "cf-store (one file) vs cf-store-files (a file per thread), same policy",
            &t,
        );

        // The same ratio for plain pwrites: what the kernel alone charges for one file.
        let mut t = Table::new(self.thread_header(&["engines"]), 1);
        if ran("raw") && ran("raw-files") {
            if let Some(cells) = self.ratio_row("raw", "raw-files") {
                t.rows.push(
                    std::iter::once("raw vs raw-files".to_owned())
                        .chain(cells)
                        .collect(),
                );
            }
        }
        section(
            out,
            "raw (one file) vs raw-files (a file per thread): the kernel's own one-file ratio",
            &t,
        );

        // cf-store (each policy) vs each peer.
        let mut t = Table::new(self.thread_header(&["cf-store policy", "peer"]), 2);
        for peer in PEERS.iter().filter(|p| ran(p)) {
            for p in &policies {
                if let Some(cells) = self.ratio_row(&variant("cf-store", Some(p)), peer) {
                    t.rows
                        .push([p.clone(), (*peer).to_owned()].into_iter().chain(cells).collect());
                }
            }
        }
        section(out, "cf-store vs peers: ops/s ratio", &t);

        // cf-store vs raw.
        let mut t = Table::new(self.thread_header(&["cf-store policy"]), 1);
        for p in &policies {
            if let Some(cells) = self.ratio_row(&variant("cf-store", Some(p)), "raw") {
                t.rows.push(std::iter::once(p.clone()).chain(cells).collect());
            }
        }
        section(out, "cf-store vs raw (the pwrite ceiling): ops/s ratio", &t);

        // I/O and latency medians.
        out.push_str("### I/O and latency (medians over rounds)\n\n");
        let header = [
            "engine/policy",
            "T",
            "write calls/commit",
            "syscalls/commit",
            "syncs/commit",
            "write amp",
            "p50 commit us",
            "p99 commit us",
            "cores busy",
            "peak RSS MiB",
        ];
        let metrics: [Metric; 8] = [
            |r| r.write_calls_per_commit,
            |r| r.syscalls_per_commit,
            |r| r.syncs_per_commit,
            |r| r.write_amplification,
            |r| r.p50_commit_us,
            |r| r.p99_commit_us,
            |r| r.cpu_utilization,
            |r| r.peak_rss_kb.map(|kb| kb as f64 / 1024.0),
        ];
        let mut t = Table::new(header.iter().map(|h| (*h).to_owned()).collect(), 1);
        for v in &variants {
            for &th in threads {
                let cells: Vec<String> = metrics
                    .iter()
                    .map(|m| {
                        self.spread(v, th, *m)
                            .map_or_else(|| "-".into(), |s| short(s.median))
                    })
                    .collect();
                if self.spread(v, th, ops_per_sec).is_some() {
                    t.rows
                        .push([v.clone(), th.to_string()].into_iter().chain(cells).collect());
                }
            }
        }
        t.render(out);
    }
}

/// A `###` heading and its table, or nothing when the table is empty.
fn section(out: &mut String, title: &str, table: &Table) {
    if table.rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "### {title}\n");
    table.render(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::config;
    use crate::sweep::run::tests::result_for;
    use crate::sweep::run::Failure;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[5.0]), Some(5.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[1.0, 100.0, 2.0, 2.0, 3.0]), Some(2.0));
    }

    #[test]
    fn min_max_and_spreads() {
        assert_eq!(min_max(&[]), None);
        assert_eq!(min_max(&[2.0, -1.0, 7.0]), Some((-1.0, 7.0)));
        let s = Spread::of(&[10.0, 30.0, 20.0]).unwrap();
        assert_eq!(
            s,
            Spread {
                median: 20.0,
                min: 10.0,
                max: 30.0,
                n: 3
            }
        );
        assert!(s.overlaps(&Spread::of(&[30.0, 40.0]).unwrap()));
        assert!(!s.overlaps(&Spread::of(&[31.0, 40.0]).unwrap()));
        assert_eq!(Spread::of(&[]), None);
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(3.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
        let a = Spread::of(&[300.0, 310.0, 320.0]);
        let b = Spread::of(&[100.0, 200.0, 400.0]);
        let c = Spread::of(&[100.0, 150.0]);
        assert_eq!(
            ratio_of(a, b),
            Some(Ratio {
                value: 310.0 / 200.0,
                beyond_noise: false
            })
        );
        assert_eq!(ratio_of(a, c).map(|r| r.beyond_noise), Some(true));
        assert_eq!(ratio_of(a, None), None);
        // One sample each: no range, so never marked beyond the noise.
        let one = ratio_of(Spread::of(&[10.0]), Spread::of(&[5.0])).unwrap();
        assert_eq!((one.value, one.beyond_noise), (2.0, false));
        assert_eq!(ratio_cell(ratio_of(a, b)), "1.55x");
        assert_eq!(ratio_cell(ratio_of(a, c)), "2.48x*");
        assert_eq!(ratio_cell(None), "-");
    }

    #[test]
    fn best_picks_the_largest_first_of_equals() {
        assert_eq!(best(&[]), None);
        assert_eq!(best(&[None, None]), None);
        assert_eq!(best(&[Some(1.0), None, Some(3.0), Some(2.0)]), Some(2));
        assert_eq!(best(&[Some(3.0), Some(3.0)]), Some(0));
        assert_eq!(best(&[None, Some(-1.0)]), Some(1));
    }

    #[test]
    fn number_formats() {
        assert_eq!(short(546_123.0), "546k");
        assert_eq!(short(1_234_567.0), "1.23M");
        assert_eq!(short(12_345.0), "12.3k");
        assert_eq!(short(339.0), "339");
        assert_eq!(short(0.54), "0.54");
        assert_eq!(short(0.0), "0");
        assert_eq!(sig3(1.1), "1.10");
        let s = Spread::of(&[493e3, 546e3, 570e3]).unwrap();
        assert_eq!(spread_cell(&s), "546k (493k-570k)");
    }

    /// A matrix of cf-store and cf-store-files (per-page, vectored), raw and redb, T = 1, 2;
    /// records with chosen ops/s over 3 rounds.
    fn fixture() -> (Matrix, Outcome) {
        let mut m = config::quick();
        m.engines = vec![
            "cf-store".into(),
            "cf-store-files".into(),
            "raw".into(),
            "redb".into(),
        ];
        m.policies = vec!["per-page".into(), "vectored".into()];
        m.threads = vec![1, 2];
        m.durability = vec!["none".into()];
        m.rounds = 3;
        // ops/s per (variant, threads): three rounds each.
        let table: HashMap<(&str, u32), [f64; 3]> = [
            (("cf-store/per-page", 1), [100e3, 110e3, 90e3]),
            (("cf-store/per-page", 2), [150e3, 160e3, 140e3]),
            (("cf-store/vectored", 1), [200e3, 210e3, 190e3]),
            (("cf-store/vectored", 2), [400e3, 500e3, 300e3]),
            (("cf-store-files/per-page", 1), [100e3, 100e3, 100e3]),
            (("cf-store-files/per-page", 2), [300e3, 300e3, 300e3]),
            (("cf-store-files/vectored", 1), [250e3, 260e3, 240e3]),
            (("cf-store-files/vectored", 2), [200e3, 200e3, 200e3]),
            (("raw", 1), [1e6, 1e6, 1e6]),
            (("raw", 2), [2.5e6, 2.5e6, 2.5e6]),
            (("redb", 1), [50e3, 50e3, 50e3]),
            (("redb", 2), [75e3, 75e3, 75e3]),
        ]
        .into_iter()
        .collect();
        let mut records = Vec::new();
        for round in 1..=3u32 {
            for (i, cell) in m.cells().iter().enumerate() {
                let ops = table[&(cell.variant().as_str(), cell.threads)][round as usize - 1];
                records.push(RunRecord {
                    round,
                    cell: i,
                    workload: cell.workload_name.clone(),
                    variant: cell.variant(),
                    result: result_for(&m, cell, ops),
                });
            }
        }
        let outcome = Outcome {
            records,
            failures: vec![Failure {
                round: 3,
                cell: 0,
                what: "W1 none T=1 cf-store/per-page".into(),
                command: "bench".into(),
                error: "bench exited with exit status: 3; stderr:\nboom | bang".into(),
            }],
            interrupted: false,
        };
        (m, outcome)
    }

    /// The table under `### {title}` as rows of trimmed cells (header first).
    fn table(text: &str, title: &str) -> Vec<Vec<String>> {
        let start = text
            .find(&format!("### {title}"))
            .unwrap_or_else(|| panic!("no table {title}"));
        text[start..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .filter(|l| !l.starts_with("|---"))
            .map(|l| {
                l.trim_matches('|')
                    .split(" | ")
                    .map(|c| c.trim().to_owned())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_ops_table_has_medians_ranges_and_bold_bests() {
        let (m, outcome) = fixture();
        let text = render(&m, &outcome);
        assert!(
            text.contains("12 cells x 3 rounds = 36 runs; 36 finished, 1 failed"),
            "{text}"
        );
        assert!(text.contains("## W1, durability none"));
        assert!(text.contains("min-max range is the noise"));
        let t = table(&text, "ops/s");
        assert_eq!(t[0], ["engine/policy", "T=1", "T=2"]);
        assert_eq!(
            t[1],
            ["cf-store/per-page", "100k (90.0k-110k)", "150k (140k-160k)"]
        );
        assert_eq!(
            t[2],
            ["cf-store/vectored", "200k (190k-210k)", "400k (300k-500k)"]
        );
        assert_eq!(
            t[5],
            ["raw", "**1.00M (1.00M-1.00M)**", "**2.50M (2.50M-2.50M)**"]
        );
        assert_eq!(t.len(), 7);
        let bold = t.iter().flatten().filter(|c| c.starts_with("**")).count();
        assert_eq!(bold, 2, "one bold cell per column");
    }

    #[test]
    fn ratio_tables_divide_medians() {
        let (m, outcome) = fixture();
        let text = render(&m, &outcome);
        let t = table(&text, "cf-store policies vs per-page");
        assert_eq!(t[1], ["cf-store", "vectored", "2.00x*", "2.67x*"]);
        assert_eq!(t[2], ["cf-store-files", "vectored", "2.50x*", "0.67x*"]);
        let t = table(&text, "cf-store (one file) vs cf-store-files");
        assert_eq!(t[0], ["policy", "T=1", "T=2"]);
        assert_eq!(t[1], ["per-page", "1.00x", "0.50x*"]);
        assert_eq!(t[2], ["vectored", "0.80x*", "2.00x*"]);
        let t = table(&text, "cf-store vs peers");
        assert_eq!(t[1], ["per-page", "redb", "2.00x*", "2.00x*"]);
        assert_eq!(t[2], ["vectored", "redb", "4.00x*", "5.33x*"]);
        assert_eq!(t.len(), 3, "only peers that ran");
        let t = table(&text, "cf-store vs raw");
        assert_eq!(t[1], ["per-page", "0.10x*", "0.06x*"]);
        assert_eq!(t[2], ["vectored", "0.20x*", "0.16x*"]);
    }

    #[test]
    fn the_io_table_and_failures() {
        let (m, outcome) = fixture();
        let text = render(&m, &outcome);
        let t = table(&text, "I/O and latency");
        assert_eq!(
            t[0][..4],
            ["engine/policy", "T", "write calls/commit", "syscalls/commit"]
        );
        assert_eq!(
            t[1],
            [
                "cf-store/per-page",
                "1",
                "3.00",
                "4.00",
                "1.00",
                "2.00",
                "100",
                "250",
                "1.25",
                "9.77"
            ]
        );
        let redb = t.iter().find(|r| r[0] == "redb").unwrap();
        assert_eq!(redb[4], "-", "peers report no syncs");
        assert_eq!(t.len(), 1 + 6 * 2);
        assert!(text.contains("## Failures (1)"));
        assert!(
            text.contains("boom \\| bang") || text.contains("exit status: 3"),
            "{text}"
        );
    }

    #[test]
    fn missing_variants_leave_tables_out() {
        let (mut m, mut outcome) = fixture();
        outcome.records.retain(|r| r.variant.starts_with("cf-store/"));
        m.rounds = 3;
        let text = render(&m, &outcome);
        assert!(text.contains("### cf-store policies vs per-page"));
        assert!(!text.contains("### cf-store vs peers"));
        assert!(!text.contains("### cf-store vs raw"));
        assert!(!text.contains("### cf-store (one file)"));
        outcome.records.clear();
        outcome.interrupted = true;
        let text = render(&m, &outcome);
        assert!(text.contains("No finished runs") && text.contains("interrupted by Ctrl-C"));
    }
}
