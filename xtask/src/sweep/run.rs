//! Running the matrix: one `bench` process per run, round-robin over the cells (each round in
//! [`Matrix::round_order`]), each in a fresh directory; parsing and checking its one JSON
//! line; and writing `results.csv` and `results.json`.

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::config::{Cell, Matrix};

/// The JSON schema version of `bench` output this sweep reads.
pub const SCHEMA: u32 = 1;

/// What one `bench` run prints: one JSON object on one line (schema 1). Counters a peer
/// cannot report are null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    pub schema: u32,
    pub engine: String,
    #[serde(default)]
    pub policy: Option<String>,
    pub threads: u32,
    pub txns: u64,
    pub ops_per_txn: u64,
    pub value_size: u64,
    pub keys: String,
    pub durability: String,
    /// Absent in lines of a `bench` older than `--durable-end`: false.
    #[serde(default)]
    pub durable_end: bool,
    pub seed: u64,
    pub ops: u64,
    pub secs: f64,
    pub ops_per_sec: f64,
    pub commits: u64,
    #[serde(default)]
    pub write_calls: Option<u64>,
    #[serde(default)]
    pub vectored_calls: Option<u64>,
    #[serde(default)]
    pub sync_calls: Option<u64>,
    #[serde(default)]
    pub populate_calls: Option<u64>,
    #[serde(default)]
    pub write_calls_per_commit: Option<f64>,
    #[serde(default)]
    pub syscalls_per_commit: Option<f64>,
    #[serde(default)]
    pub syncs_per_commit: Option<f64>,
    #[serde(default)]
    pub bytes_written: Option<u64>,
    #[serde(default)]
    pub bytes_inserted: Option<u64>,
    #[serde(default)]
    pub write_amplification: Option<f64>,
    #[serde(default)]
    pub cpu_secs: Option<f64>,
    #[serde(default)]
    pub cpu_utilization: Option<f64>,
    #[serde(default)]
    pub p50_commit_us: Option<f64>,
    #[serde(default)]
    pub p99_commit_us: Option<f64>,
    #[serde(default)]
    pub peak_rss_kb: Option<u64>,
    #[serde(default)]
    pub syscall_source: Option<String>,
}

/// The fields of [`BenchResult`], in output order (the CSV columns after `round, workload`).
pub const FIELDS: [&str; 31] = [
    "schema",
    "engine",
    "policy",
    "threads",
    "txns",
    "ops_per_txn",
    "value_size",
    "keys",
    "durability",
    "durable_end",
    "seed",
    "ops",
    "secs",
    "ops_per_sec",
    "commits",
    "write_calls",
    "vectored_calls",
    "sync_calls",
    "populate_calls",
    "write_calls_per_commit",
    "syscalls_per_commit",
    "syncs_per_commit",
    "bytes_written",
    "bytes_inserted",
    "write_amplification",
    "cpu_secs",
    "cpu_utilization",
    "p50_commit_us",
    "p99_commit_us",
    "peak_rss_kb",
    "syscall_source",
];

/// One finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Round, from 1.
    pub round: u32,
    /// Index of its cell in [`Matrix::cells`].
    pub cell: usize,
    /// Workload name.
    pub workload: String,
    /// `engine/policy` as the sweep asked for it.
    pub variant: String,
    /// What `bench` printed.
    #[serde(flatten)]
    pub result: BenchResult,
}

/// One run that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Round, from 1.
    pub round: u32,
    /// Index of its cell in [`Matrix::cells`].
    pub cell: usize,
    /// The cell, as `W1 none T=4 cf-store/vectored`.
    pub what: String,
    /// The command line.
    pub command: String,
    /// Why: exit status or parse error, and the tail of its stderr.
    pub error: String,
}

/// What a sweep produced.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Every finished run, in the order run.
    pub records: Vec<RunRecord>,
    /// Every failed run.
    pub failures: Vec<Failure>,
    /// Set when Ctrl-C stopped the sweep early.
    pub interrupted: bool,
}

/// Where and how runs happen.
#[derive(Debug)]
pub struct Runner<'a> {
    /// The `bench` executable.
    pub bench: &'a Path,
    /// Working directory of each run.
    pub cwd: &'a Path,
    /// Parent of each run's fresh `--dir` (`<out>/tmp`).
    pub tmp: &'a Path,
    /// Ctrl-C presses so far: 1 stops after the current run, 2 kills it.
    pub interrupts: &'a AtomicUsize,
}

/// How often a running child is checked for exit (and a second Ctrl-C).
const POLL: Duration = Duration::from_millis(5);
/// How much of a failed run's stderr is kept.
const STDERR_TAIL_LINES: usize = 15;

impl Runner<'_> {
    /// Runs every cell once per round, round-robin (round 1 runs every cell, then round 2, ...),
    /// each round in [`Matrix::round_order`] (twins side by side), calling
    /// `before(runs_done, round, cell)` before each run and `after(outcome, failure)` after
    /// each.
    /// Failures are recorded and the sweep goes on; Ctrl-C stops it after the current run.
    pub fn run_all(
        &self,
        matrix: &Matrix,
        mut before: impl FnMut(usize, u32, &Cell),
        mut after: impl FnMut(&Outcome, Option<&Failure>),
    ) -> Outcome {
        let cells = matrix.cells();
        let mut outcome = Outcome::default();
        let mut done = 0;
        'rounds: for round in 1..=matrix.rounds {
            for index in matrix.round_order(round) {
                let cell = &cells[index];
                if self.interrupts.load(Ordering::SeqCst) > 0 {
                    outcome.interrupted = true;
                    break 'rounds;
                }
                before(done, round, cell);
                let workload = &matrix.workloads[cell.workload];
                let dir = self.tmp.join(format!("r{round}-c{index:04}"));
                let args = cell.bench_args(workload, matrix.seed, &dir);
                let command = shell_line(self.bench, &args);
                let result = warm_up(self.tmp, matrix.warm_up.0)
                    .and_then(|()| self.run_one(&dir, &args))
                    .and_then(|r| check_echo(&r, cell, matrix).map(|()| r));
                done += 1;
                match result {
                    Ok(result) => {
                        outcome.records.push(RunRecord {
                            round,
                            cell: index,
                            workload: cell.workload_name.clone(),
                            variant: cell.variant(),
                            result,
                        });
                        after(&outcome, None);
                    }
                    Err(RunError::Killed) => {
                        outcome.interrupted = true;
                        break 'rounds;
                    }
                    Err(RunError::Failed(error)) => {
                        let failure = Failure {
                            round,
                            cell: index,
                            what: cell.describe(),
                            command,
                            error,
                        };
                        outcome.failures.push(failure.clone());
                        after(&outcome, Some(&failure));
                    }
                }
            }
        }
        if self.interrupts.load(Ordering::SeqCst) > 0 && done < cells.len() * matrix.rounds as usize {
            outcome.interrupted = true;
        }
        outcome
    }

    /// One `bench` process in a fresh `dir` (removed afterwards).
    fn run_one(&self, dir: &Path, args: &[OsString]) -> Result<BenchResult, RunError> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .map_err(|e| RunError::Failed(format!("cannot clear {}: {e}", dir.display())))?;
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| RunError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        let result = self.spawn_and_wait(args);
        if let Err(e) = std::fs::remove_dir_all(dir) {
            if result.is_ok() {
                return Err(RunError::Failed(format!("cannot remove {}: {e}", dir.display())));
            }
        }
        result
    }

    fn spawn_and_wait(&self, args: &[OsString]) -> Result<BenchResult, RunError> {
        let mut cmd = Command::new(self.bench);
        cmd.args(args)
            .current_dir(self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Its own process group: a Ctrl-C at the terminal reaches only us, so the run in
        // progress finishes (a second Ctrl-C kills it).
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .spawn()
            .map_err(|e| RunError::Failed(format!("cannot start {}: {e}", self.bench.display())))?;
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if self.interrupts.load(Ordering::SeqCst) >= 2 => {
                    // The whole process group (anything the run started), then the run itself.
                    #[cfg(unix)]
                    let _ = Command::new("kill")
                        .args(["-KILL", "--", &format!("-{}", child.id())])
                        .stderr(Stdio::null())
                        .status();
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(RunError::Killed);
                }
                Ok(None) => std::thread::sleep(POLL),
                Err(e) => return Err(RunError::Failed(format!("waiting for bench: {e}"))),
            }
        };
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        let tail = tail(&String::from_utf8_lossy(&stderr), STDERR_TAIL_LINES);
        if !status.success() {
            return Err(RunError::Failed(format!(
                "bench exited with {status}; stderr:\n{tail}"
            )));
        }
        parse_output(&String::from_utf8_lossy(&stdout))
            .map_err(|e| RunError::Failed(format!("{e}; stderr:\n{tail}")))
    }
}

/// Writes `bytes` of zeros to a file in `tmp` and deletes it ([`Matrix::warm_up`]; 0: does
/// nothing). Not synced: the point is the page cache it fills and frees.
pub(crate) fn warm_up(tmp: &Path, bytes: u64) -> Result<(), RunError> {
    if bytes == 0 {
        return Ok(());
    }
    let path = tmp.join("warm-up");
    let failed = |e: std::io::Error| RunError::Failed(format!("warm-up in {}: {e}", path.display()));
    let written = (|| {
        std::fs::create_dir_all(tmp)?;
        let mut file = std::fs::File::create(&path)?;
        let chunk = vec![0u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            std::io::Write::write_all(&mut file, &chunk[..n])?;
            left -= n as u64;
        }
        Ok(())
    })();
    let removed = std::fs::remove_file(&path);
    written.map_err(failed)?;
    removed.map_err(failed)
}

/// Why a run produced no result.
#[derive(Debug)]
pub enum RunError {
    /// Killed by a second Ctrl-C: not a failure, not a result.
    Killed,
    Failed(String),
}

/// Reads a pipe to its end on a thread (so neither pipe can fill and stall the child).
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// The last `lines` lines of `text`, or `(empty)`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let out = all[start..].join("\n");
    if out.trim().is_empty() {
        "(empty)".into()
    } else {
        out
    }
}

/// The command as a shell-like line.
fn shell_line(program: &Path, args: &[OsString]) -> String {
    std::iter::once(program.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses `bench` stdout: its last non-empty line is the JSON object, of schema 1.
pub fn parse_output(stdout: &str) -> Result<BenchResult, RunError> {
    let Some(line) = stdout.lines().rev().find(|l| !l.trim().is_empty()) else {
        return Err(RunError::Failed("bench printed nothing on stdout".into()));
    };
    let result: BenchResult = serde_json::from_str(line.trim()).map_err(|e| {
        RunError::Failed(format!(
            "bench output is not a schema-{SCHEMA} result ({e}): {line}"
        ))
    })?;
    if result.schema != SCHEMA {
        return Err(RunError::Failed(format!(
            "bench printed schema {}, this sweep reads schema {SCHEMA}",
            result.schema
        )));
    }
    Ok(result)
}

/// Checks that `bench` measured the cell it was asked for.
fn check_echo(r: &BenchResult, cell: &Cell, matrix: &Matrix) -> Result<(), RunError> {
    let w = &matrix.workloads[cell.workload];
    let asked = (
        cell.engine.as_str(),
        cell.threads,
        cell.durability.as_str(),
        w.keys.as_str(),
        w.txns,
        w.ops_per_txn,
        w.value_size,
        w.durable_end,
    );
    let got = (
        r.engine.as_str(),
        r.threads,
        r.durability.as_str(),
        r.keys.as_str(),
        r.txns,
        r.ops_per_txn,
        r.value_size,
        r.durable_end,
    );
    if asked != got {
        return Err(RunError::Failed(format!(
            "bench measured another cell: asked (engine, threads, durability, keys, txns, ops_per_txn, \
             value_size, durable_end) = {asked:?}, got {got:?}"
        )));
    }
    Ok(())
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Killed => f.write_str("killed by Ctrl-C"),
            RunError::Failed(e) => f.write_str(e),
        }
    }
}

/// Writes `results.csv`: a header `round, workload, <FIELDS>`, then one row per run; nulls are
/// empty cells.
pub fn write_csv(path: &Path, records: &[RunRecord]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("creating {}", path.display()))?;
    let mut header = vec!["round", "workload"];
    header.extend(FIELDS);
    w.write_record(&header)?;
    for r in records {
        let value = serde_json::to_value(&r.result)?;
        let mut row = vec![r.round.to_string(), r.workload.clone()];
        for field in FIELDS {
            row.push(match value.get(field) {
                None | Some(serde_json::Value::Null) => String::new(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            });
        }
        w.write_record(&row)?;
    }
    w.flush().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// What `results.json` holds.
#[derive(Debug, Serialize)]
pub struct JsonReport<'a> {
    /// Format of this file.
    pub schema: u32,
    /// The matrix as validated.
    pub matrix: &'a Matrix,
    /// The policy short forms it expanded to.
    pub policy_forms: Vec<String>,
    /// Cells per round.
    pub cells: usize,
    /// Runs planned (cells x rounds).
    pub planned_runs: usize,
    /// Whether Ctrl-C stopped the sweep early.
    pub interrupted: bool,
    /// Every finished run.
    pub runs: &'a [RunRecord],
    /// Every failed run.
    pub failures: &'a [Failure],
}

/// Writes `results.json`: the matrix used and every run (and failure).
pub fn write_json(path: &Path, matrix: &Matrix, outcome: &Outcome) -> anyhow::Result<()> {
    let cells = matrix.cells().len();
    let report = JsonReport {
        schema: 1,
        matrix,
        policy_forms: matrix.policy_forms(),
        cells,
        planned_runs: matrix.run_count(),
        interrupted: outcome.interrupted,
        runs: &outcome.records,
        failures: &outcome.failures,
    };
    let mut text = serde_json::to_string_pretty(&report)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A unique scratch directory for tests (no tempfile dependency).
#[cfg(test)]
pub fn scratch_dir(tag: &str) -> std::path::PathBuf {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "xtask-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sweep::config;

    /// A result as `bench` would print it for `cell` of `m`, with `ops_per_sec`.
    pub fn result_for(m: &Matrix, cell: &Cell, ops_per_sec: f64) -> BenchResult {
        let w = &m.workloads[cell.workload];
        let ops = u64::from(cell.threads) * w.txns * w.ops_per_txn;
        let commits = u64::from(cell.threads) * w.txns;
        let peer = cell.policy.is_none();
        BenchResult {
            schema: 1,
            engine: cell.engine.clone(),
            policy: cell.policy.clone(),
            threads: cell.threads,
            txns: w.txns,
            ops_per_txn: w.ops_per_txn,
            value_size: w.value_size,
            keys: w.keys.clone(),
            durability: cell.durability.clone(),
            durable_end: w.durable_end,
            seed: m.seed,
            ops,
            secs: ops as f64 / ops_per_sec,
            ops_per_sec,
            commits,
            write_calls: Some(commits * 3),
            vectored_calls: Some(0),
            sync_calls: if peer { None } else { Some(commits) },
            populate_calls: if peer { None } else { Some(0) },
            write_calls_per_commit: Some(3.0),
            syscalls_per_commit: if peer { None } else { Some(4.0) },
            syncs_per_commit: if peer { None } else { Some(1.0) },
            bytes_written: Some(ops * w.value_size * 2),
            bytes_inserted: Some(ops * w.value_size),
            write_amplification: Some(2.0),
            p50_commit_us: Some(100.0),
            p99_commit_us: Some(250.25),
            cpu_secs: Some(0.5),
            cpu_utilization: Some(1.25),
            peak_rss_kb: Some(10_000),
            syscall_source: Some("iostats".into()),
        }
    }

    pub fn tiny_matrix() -> Matrix {
        let mut m = config::quick();
        m.engines = vec!["cf-store".into(), "raw".into()];
        m.policies = vec!["per-page".into(), "vectored".into()];
        m.threads = vec![1, 2];
        m.durability = vec!["none".into()];
        m.workloads[0].txns = 2;
        m
    }

    /// The warm-up writes its bytes and leaves nothing behind; 0 writes nothing.
    #[test]
    fn warm_up_writes_and_removes_its_file() {
        let dir = scratch_dir("warm-up");
        let tmp = dir.join("tmp");
        warm_up(&tmp, 0).unwrap();
        assert!(!tmp.exists(), "no warm-up, no directory");
        warm_up(&tmp, (3 << 20) + 5).unwrap();
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
        // A file where the directory should be: a failure naming the warm-up.
        let blocked = dir.join("file");
        std::fs::write(&blocked, b"x").unwrap();
        match warm_up(&blocked, 1) {
            Err(RunError::Failed(e)) => assert!(e.contains("warm-up"), "{e}"),
            other => panic!("expected a failure, got {other:?}"),
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn fields_list_every_json_field_in_order() {
        let m = tiny_matrix();
        let r = result_for(&m, &m.cells()[0], 1000.0);
        let value = serde_json::to_value(&r).unwrap();
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        let mut fields = FIELDS.to_vec();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        fields.sort_unstable();
        assert_eq!(sorted, fields);
    }

    #[test]
    fn output_parsing_takes_the_last_line_and_checks_the_schema() {
        let m = tiny_matrix();
        let r = result_for(&m, &m.cells()[0], 1000.0);
        let line = serde_json::to_string(&r).unwrap();
        let parsed = parse_output(&format!("warming up\n{line}\n\n")).unwrap();
        assert_eq!(parsed, r);
        assert!(parse_output("").unwrap_err().to_string().contains("nothing"));
        assert!(parse_output("{\"schema\": 1}")
            .unwrap_err()
            .to_string()
            .contains("missing field"));
        let v2 = line.replacen("\"schema\":1", "\"schema\":2", 1);
        assert!(parse_output(&v2).unwrap_err().to_string().contains("schema 2"));
        // Nulls where a peer has no counter are fine.
        let peer = result_for(&m, m.cells().last().unwrap(), 5.0);
        assert_eq!(peer.sync_calls, None);
        let text = serde_json::to_string(&peer).unwrap();
        assert!(text.contains("\"sync_calls\":null"));
        assert_eq!(parse_output(&text).unwrap(), peer);
    }

    #[test]
    fn a_result_for_another_cell_is_refused() {
        let m = tiny_matrix();
        let cells = m.cells();
        let r = result_for(&m, &cells[1], 1000.0);
        assert!(check_echo(&r, &cells[1], &m).is_ok());
        let e = check_echo(&r, &cells[0], &m).unwrap_err().to_string();
        assert!(e.contains("another cell"), "{e}");
    }

    #[test]
    fn stderr_tails_keep_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("", 2), "(empty)");
    }

    /// One run record per cell of `m`, with distinct results (for the summary and chart tests).
    pub(crate) fn records(m: &Matrix) -> Vec<RunRecord> {
        m.cells()
            .iter()
            .enumerate()
            .map(|(i, c)| RunRecord {
                round: 1,
                cell: i,
                workload: c.workload_name.clone(),
                variant: c.variant(),
                result: result_for(m, c, 1000.0 * (i + 1) as f64),
            })
            .collect()
    }

    #[test]
    fn csv_has_a_header_and_one_row_per_run() {
        let m = tiny_matrix();
        let recs = records(&m);
        let dir = scratch_dir("csv");
        let path = dir.join("results.csv");
        write_csv(&path, &recs).unwrap();
        let mut reader = csv::Reader::from_path(&path).unwrap();
        let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
        assert_eq!(header[..2], ["round", "workload"]);
        assert_eq!(header[2..], FIELDS);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), recs.len());
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        assert_eq!(&rows[0][col("engine")], "cf-store");
        assert_eq!(&rows[0][col("policy")], "per-page");
        assert_eq!(&rows[0][col("ops_per_sec")], "1000.0");
        let raw = rows.iter().find(|r| &r[col("engine")] == "raw").unwrap();
        assert_eq!(&raw[col("policy")], "");
        assert_eq!(&raw[col("sync_calls")], "");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn json_holds_the_matrix_and_every_run() {
        let m = tiny_matrix();
        let outcome = Outcome {
            records: records(&m),
            failures: vec![Failure {
                round: 2,
                cell: 0,
                what: "x".into(),
                command: "bench".into(),
                error: "boom".into(),
            }],
            interrupted: false,
        };
        let dir = scratch_dir("json");
        let path = dir.join("results.json");
        write_json(&path, &m, &outcome).unwrap();
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["matrix"]["engines"], serde_json::json!(["cf-store", "raw"]));
        assert_eq!(v["matrix"]["gaps"], serde_json::json!(["16KiB"]));
        assert_eq!(v["cells"], 6);
        assert_eq!(v["planned_runs"], 12);
        let runs = v["runs"].as_array().unwrap();
        assert_eq!(runs.len(), outcome.records.len());
        let back: RunRecord = serde_json::from_value(runs[0].clone()).unwrap();
        assert_eq!(back, outcome.records[0]);
        assert_eq!(v["failures"][0]["error"], "boom");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
