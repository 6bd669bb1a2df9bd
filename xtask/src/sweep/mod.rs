//! `cargo xtask sweep`: the engine sweep. Validates a matrix (a TOML file, by default
//! `sweep.toml` at the workspace root, or the built-in `--quick` one), builds `bench` once in
//! release, runs every cell once per round as its own process (round-robin, so machine drift
//! spreads evenly over the cells; twins side by side, [`config::Matrix::round_order`]), and
//! writes `results.csv`, `results.json`, `summary.md` and SVG charts into one output
//! directory.
//!
//! The quick matrix is 88 cells x 2 rounds = 176 runs of W1 at 20 transactions a thread
//! (20 x 1,000 x 1 KiB = 20 MiB a thread). At 0.05-0.5 s a run plus process start, that is
//! about 1 to 1.5 minutes on the 2-core machine, plus the build check of `bench`.
//!
//! Setting `XTASK_BENCH_BIN` to an executable skips the build and runs that instead of
//! `target/release/bench` (the tests point it at a fake `bench` script).

pub mod charts;
pub mod config;
pub mod run;
pub mod summary;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};

use crate::workspace::{absolute, build_bench, target_dir, utc_timestamp, workspace_root};
use config::Matrix;
use run::{Outcome, Runner};

/// The environment variable naming a `bench` executable to use instead of building one.
pub const BENCH_BIN_ENV: &str = "XTASK_BENCH_BIN";

/// Options of `cargo xtask sweep`.
#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// Run the small built-in matrix (W1 at 20 txns, all engines, per-page/vectored/
    /// vectored-gap, T = 1,2,4,8, both durabilities, 2 rounds: 176 runs, a few minutes).
    #[arg(long, conflicts_with = "config")]
    pub quick: bool,

    /// The matrix to run [default: sweep.toml at the workspace root].
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,

    /// Where to write the results [default: target/sweep/<UTC timestamp, e.g.
    /// 20261124T031500Z>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Rounds, overriding the matrix's own (each round runs every cell once).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rounds: Option<u32>,

    /// Validate the matrix and list its cells, without building or running anything.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs the sweep.
pub fn run(args: &SweepArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let root = workspace_root();

    // Everything is checked before the first run: the matrix, the output directory, the binary.
    let mut matrix = if args.quick {
        config::quick()
    } else {
        let path = match &args.config {
            Some(p) => absolute(p)?,
            None => root.join("sweep.toml"),
        };
        config::load(&path)?
    };
    if let Some(rounds) = args.rounds {
        matrix.rounds = rounds;
    }
    let cells = matrix.cells();
    let total = matrix.run_count();
    if args.dry_run {
        println!(
            "{}: {} cells x {} rounds = {total} runs",
            matrix.source,
            cells.len(),
            matrix.rounds
        );
        for cell in &cells {
            println!("  {}", cell.describe());
        }
        return Ok(());
    }
    let out = match &args.out {
        Some(dir) => absolute(dir)?,
        None => target_dir(&root)
            .join("sweep")
            .join(utc_timestamp(SystemTime::now())),
    };
    let tmp = prepare_out(&out)?;
    let given = std::env::var_os(BENCH_BIN_ENV).map(PathBuf::from);
    if let Some(bench) = &given {
        if !bench.is_file() {
            bail!("{BENCH_BIN_ENV}={}: no such file", bench.display());
        }
    }

    let interrupts = install_ctrlc();
    let bench = match given {
        Some(bench) => absolute(&bench)?,
        None => {
            build_bench(&root, &["bench"], &["peers"])?;
            let bench = target_dir(&root).join("release").join("bench");
            if !bench.is_file() {
                bail!("the build finished but {} is missing", bench.display());
            }
            bench
        }
    };

    eprintln!(
        "xtask: sweep {}: {} cells x {} rounds = {total} runs; bench {}; outputs in {}",
        matrix.source,
        cells.len(),
        matrix.rounds,
        bench.display(),
        out.display()
    );
    let outcome = run_matrix(&matrix, &bench, &root, &tmp, interrupts);
    if let Err(e) = std::fs::remove_dir_all(&tmp) {
        eprintln!("xtask: warning: cannot remove {}: {e}", tmp.display());
    }

    let (summary, written) = write_outputs(&matrix, &outcome, &out)?;
    print!("{summary}");
    println!();
    println!(
        "sweep: {} of {total} runs finished, {} failed, in {:.1} s; files written:",
        outcome.records.len(),
        outcome.failures.len(),
        started.elapsed().as_secs_f64()
    );
    for path in &written {
        println!("  {}", path.display());
    }

    if outcome.interrupted {
        bail!(
            "interrupted by Ctrl-C after {} of {total} runs; the files above hold the runs that finished",
            outcome.records.len() + outcome.failures.len()
        );
    }
    if !outcome.failures.is_empty() {
        let list: Vec<String> = outcome
            .failures
            .iter()
            .map(|f| {
                format!(
                    "  round {} {}: {}",
                    f.round,
                    f.what,
                    f.error.lines().next().unwrap_or_default()
                )
            })
            .collect();
        bail!(
            "{} of {total} runs failed (stderr tails in results.json):\n{}",
            outcome.failures.len(),
            list.join("\n")
        );
    }
    Ok(())
}

/// Creates `out` and `out/tmp` and checks that `out` takes files; returns `out/tmp`.
pub fn prepare_out(out: &Path) -> anyhow::Result<PathBuf> {
    let unwritable = |e: &dyn std::fmt::Display| {
        anyhow::anyhow!(
            "--out {}: the output directory is not writable ({e}); give a directory that can be created \
             and written",
            out.display()
        )
    };
    std::fs::create_dir_all(out).map_err(|e| unwritable(&e))?;
    let probe = out.join(".xtask-write-check");
    std::fs::write(&probe, b"ok").map_err(|e| unwritable(&e))?;
    std::fs::remove_file(&probe).map_err(|e| unwritable(&e))?;
    let tmp = out.join("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| unwritable(&e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| unwritable(&e))?;
    Ok(tmp)
}

/// Ctrl-C presses, counted by a handler installed once per process: the first stops the
/// sweep after the current run, the second kills that run, the third exits at once.
fn install_ctrlc() -> &'static AtomicUsize {
    static PRESSES: AtomicUsize = AtomicUsize::new(0);
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let handler = || match PRESSES.fetch_add(1, Ordering::SeqCst) + 1 {
            1 => eprintln!(
                "\nxtask: Ctrl-C: stopping after the current run, then writing the results so far \
                 (Ctrl-C again stops the current run now)"
            ),
            2 => eprintln!("\nxtask: Ctrl-C again: stopping the current run"),
            _ => std::process::exit(130),
        };
        if let Err(e) = ctrlc::set_handler(handler) {
            eprintln!("xtask: warning: cannot catch Ctrl-C ({e}); it will stop the sweep without results");
        }
    });
    &PRESSES
}

/// Runs every cell once per round with a progress bar (or, when stderr is not a terminal, a
/// line per run).
fn run_matrix(matrix: &Matrix, bench: &Path, cwd: &Path, tmp: &Path, interrupts: &AtomicUsize) -> Outcome {
    let total = matrix.run_count() as u64;
    let plain = !std::io::stderr().is_terminal();
    let bar = if plain {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} runs, ETA {eta}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let runner = Runner {
        bench,
        cwd,
        tmp,
        interrupts,
    };
    let rounds = matrix.rounds;
    let outcome = runner.run_all(
        matrix,
        |done, round, cell| {
            let what = format!("round {round}/{rounds}: {}", cell.describe());
            if plain {
                eprintln!("xtask: [{}/{total}] {what}", done + 1);
            }
            bar.set_message(what);
        },
        |_, failure| {
            if let Some(f) = failure {
                let line = format!(
                    "xtask: run failed: round {} {}: {}",
                    f.round,
                    f.what,
                    f.error.lines().next().unwrap_or_default()
                );
                if plain {
                    eprintln!("{line}");
                } else {
                    bar.println(line);
                }
            }
            bar.inc(1);
        },
    );
    bar.finish_and_clear();
    outcome
}

/// Writes every output file; returns `summary.md`'s text and the paths written.
pub fn write_outputs(
    matrix: &Matrix,
    outcome: &Outcome,
    out: &Path,
) -> anyhow::Result<(String, Vec<PathBuf>)> {
    let mut written = Vec::new();
    let csv = out.join("results.csv");
    run::write_csv(&csv, &outcome.records)?;
    written.push(csv);
    let json = out.join("results.json");
    run::write_json(&json, matrix, outcome)?;
    written.push(json);
    let text = summary::render(matrix, outcome);
    let md = out.join("summary.md");
    std::fs::write(&md, &text).with_context(|| format!("writing {}", md.display()))?;
    written.push(md);
    written.extend(charts::write_all(matrix, &outcome.records, out)?);
    Ok((text, written))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::run::scratch_dir;
    use super::run::tests::tiny_matrix;
    use super::*;

    /// A fake `bench` that answers for the cell it is asked, and fails on `raw` at T=2.
    fn fake_bench(dir: &Path) -> PathBuf {
        let path = dir.join("fake-bench");
        std::fs::write(&path, include_str!("../../tests/fake_bench.sh")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn runs_go_round_robin_and_failures_do_not_stop_the_sweep() {
        let dir = scratch_dir("runner");
        let bench = fake_bench(&dir);
        let tmp = prepare_out(&dir.join("out")).unwrap();
        let presses = AtomicUsize::new(0);
        let runner = Runner {
            bench: &bench,
            cwd: &dir,
            tmp: &tmp,
            interrupts: &presses,
        };
        let mut m = tiny_matrix();
        m.rounds = 2;
        std::fs::write(dir.join("fail-raw-2"), b"").unwrap();
        let mut order = Vec::new();
        let outcome = runner.run_all(
            &m,
            |_, round, cell| order.push((round, cell.describe())),
            |_, _| {},
        );
        let cells = m.cells();
        // Round 1 runs every cell, then round 2, each in its round's order.
        let planned: Vec<(u32, String)> = [1, 2]
            .into_iter()
            .flat_map(|round| m.round_order(round).into_iter().map(move |i| (round, i)))
            .map(|(round, i)| (round, cells[i].describe()))
            .collect();
        assert_eq!(order, planned);
        assert_ne!(order[0].1, order[cells.len()].1, "round 2 runs in reverse");
        assert_eq!(outcome.failures.len(), 2, "raw at T=2, each round");
        assert!(
            outcome.failures[0].error.contains("exit status"),
            "{:?}",
            outcome.failures[0]
        );
        assert!(outcome.failures[0].error.contains("fake bench: told to fail"));
        assert_eq!(outcome.records.len(), 2 * cells.len() - 2);
        assert!(!outcome.interrupted);
        // Every run's directory is gone again.
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn ctrl_c_stops_after_the_current_run() {
        let dir = scratch_dir("interrupt");
        let bench = fake_bench(&dir);
        let out = dir.join("out");
        let tmp = prepare_out(&out).unwrap();
        let presses = AtomicUsize::new(0);
        let runner = Runner {
            bench: &bench,
            cwd: &dir,
            tmp: &tmp,
            interrupts: &presses,
        };
        let m = tiny_matrix();
        // The "press" lands while the second run is going.
        let outcome = runner.run_all(
            &m,
            |done, _, _| {
                if done == 1 {
                    presses.store(1, Ordering::SeqCst);
                }
            },
            |_, _| {},
        );
        assert!(outcome.interrupted);
        assert_eq!(outcome.records.len(), 2, "the run in progress finishes");
        let (text, written) = write_outputs(&m, &outcome, &out).unwrap();
        assert!(text.contains("interrupted by Ctrl-C"));
        assert_eq!(written.len(), 3 + 2);
        let rows = csv::Reader::from_path(out.join("results.csv"))
            .unwrap()
            .records()
            .count();
        assert_eq!(rows, 2);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unwritable_out_is_refused_before_anything_runs() {
        let dir = scratch_dir("unwritable");
        let file = dir.join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let e = prepare_out(&file.join("sub")).unwrap_err().to_string();
        assert!(
            e.contains("--out") && e.contains("a-file/sub") && e.contains("not writable"),
            "{e}"
        );
        let e = prepare_out(&file).unwrap_err().to_string();
        assert!(e.contains("not writable"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
