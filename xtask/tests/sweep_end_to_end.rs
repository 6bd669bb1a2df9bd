//! End to end: the `xtask` binary runs `sweep` against a fake `bench` (a shell script named by
//! `XTASK_BENCH_BIN`, so nothing is built) and every output file is checked. One ignored test
//! runs the real `bench` (built in release) on a 2-cell matrix:
//! `cargo test -p xtask --test sweep_end_to_end -- --ignored`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A fresh scratch directory holding the fake `bench` (`fake-bench`), its control files and
/// the configs.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xtask-e2e-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let bench = dir.join("fake-bench");
        std::fs::write(&bench, include_str!("fake_bench.sh")).unwrap();
        std::fs::set_permissions(&bench, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Lines the fake bench logged: one per run it was started for.
    fn calls(&self) -> usize {
        std::fs::read_to_string(self.path("calls.log")).map_or(0, |t| t.lines().count())
    }

    /// `xtask sweep ARGS` with the fake bench.
    /// `sweep --config <config> --out <out>` with the fake bench.
    fn sweep_to(&self, config: &Path, out: &Path) -> Command {
        self.sweep(&[
            "--config",
            config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    }

    fn sweep(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.arg("sweep")
            .args(args)
            .env("XTASK_BENCH_BIN", self.path("fake-bench"))
            .stdin(Stdio::null());
        cmd
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("xtask runs")
}

/// Two workloads, both durabilities, T = 1, 2, cf-store and cf-store-files with per-page,
/// vectored and gap-merge at two gaps, plus raw and redb; 2 rounds.
/// Variants: 2 x 4 + 2 = 10; cells: 2 x 2 x 2 x 10 = 80; runs: 160.
const TINY: &str = r#"
rounds = 2
[matrix]
engines = ["cf-store", "cf-store-files", "raw", "redb"]
policies = ["per-page", "vectored", "gap-merge"]
gaps = ["4KiB", "16KiB"]
threads = [1, 2]
durability = ["none", "immediate"]

[[workload]]
name = "W1"
keys = "sequential"
value_size = 1024
ops_per_txn = 1000
txns = 2

[[workload]]
name = "small"
keys = "random"
value_size = "64B"
ops_per_txn = 10
txns = 3
"#;
const TINY_RUNS: usize = 160;

fn csv_rows(path: &Path) -> Vec<csv::StringRecord> {
    csv::Reader::from_path(path)
        .unwrap()
        .records()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_sweep_writes_every_output() {
    let s = Scratch::new("full");
    let config = s.write("tiny.toml", TINY);
    let out = s.path("out");
    let o = run(s.sweep_to(&config, &out));
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(s.calls(), TINY_RUNS, "one process per run");
    assert!(stderr.contains("80 cells x 2 rounds = 160 runs"), "{stderr}");

    // results.csv: a header and one row per run.
    let rows = csv_rows(&out.join("results.csv"));
    assert_eq!(rows.len(), TINY_RUNS);
    let header = csv::Reader::from_path(out.join("results.csv"))
        .unwrap()
        .headers()
        .unwrap()
        .clone();
    assert_eq!(&header[0], "round");
    assert_eq!(&header[1], "workload");
    assert!(header.iter().any(|h| h == "syscall_source"));
    // Round-robin: every round-1 row comes before any round-2 row.
    let rounds: Vec<&str> = rows.iter().map(|r| r.get(0).unwrap()).collect();
    assert!(rounds[..80].iter().all(|r| *r == "1") && rounds[80..].iter().all(|r| *r == "2"));

    // results.json: every run, the matrix used.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["runs"].as_array().unwrap().len(), TINY_RUNS);
    assert_eq!(json["matrix"]["rounds"], 2);
    assert_eq!(
        json["policy_forms"],
        serde_json::json!(["per-page", "vectored", "gap-merge:4KiB", "gap-merge:16KiB"])
    );
    assert_eq!(json["runs"][0]["engine"], "cf-store");
    assert_eq!(json["runs"][0]["workload"], "W1");
    assert_eq!(json["interrupted"], false);

    // summary.md: the tables, and printed to stdout.
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    for heading in [
        "## W1, durability none",
        "## small, durability immediate",
        "### ops/s: median (min-max) over rounds",
        "### cf-store policies vs per-page",
        "### cf-store (one file) vs cf-store-files",
        "### cf-store vs peers",
        "### cf-store vs raw",
        "### I/O and latency",
    ] {
        assert!(summary.contains(heading), "{heading} missing:\n{summary}");
    }
    assert!(summary.contains("| cf-store/gap-merge:16KiB |"));
    assert!(summary.contains("**"), "best medians in bold");
    assert!(stdout.contains(summary.trim_end()), "summary printed to stdout");

    // Charts: two per workload and durability, all SVG.
    for w in ["W1", "small"] {
        for d in ["none", "immediate"] {
            for kind in ["ops", "syscalls"] {
                let path = out.join(format!("{kind}_{w}_{d}.svg"));
                let svg =
                    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(svg.trim_start().starts_with("<svg"), "{}", path.display());
                assert!(stdout.contains(&path.display().to_string()), "path printed");
            }
        }
    }
    for name in ["results.csv", "results.json", "summary.md"] {
        assert!(stdout.contains(&out.join(name).display().to_string()));
    }
    // Every run's directory was removed, and tmp/ with them.
    assert!(!out.join("tmp").exists());
}

#[test]
fn failing_runs_are_reported_and_the_rest_still_written() {
    let s = Scratch::new("fail");
    let config = s.write("tiny.toml", TINY);
    s.write("fail-raw-2", "");
    let out = s.path("out");
    let o = run(s.sweep_to(&config, &out));
    let stderr = text(&o.stderr);
    assert!(!o.status.success());
    // raw at T=2: 2 workloads x 2 durabilities x 2 rounds.
    assert!(stderr.contains("8 of 160 runs failed"), "{stderr}");
    assert!(stderr.contains("raw"), "{stderr}");
    assert_eq!(csv_rows(&out.join("results.csv")).len(), TINY_RUNS - 8);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["failures"].as_array().unwrap().len(), 8);
    assert!(json["failures"][0]["error"]
        .as_str()
        .unwrap()
        .contains("told to fail"));
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("## Failures (8)"));
}

#[test]
fn a_bad_config_runs_nothing() {
    let s = Scratch::new("bad");
    let out = s.path("out");
    for (from, to, expect) in [
        (r#""redb"]"#, r#""rocksdb"]"#, "matrix.engines[3]"),
        ("threads = [1, 2]", "threads = [0, 2]", "matrix.threads[0]"),
        (
            "txns = 2",
            "txns = 2\ncolour = \"blue\"",
            "unknown field `colour`",
        ),
        (r#""64B""#, r#""64 bits""#, "workload[1].value_size"),
    ] {
        let config = s.write("bad.toml", &TINY.replacen(from, to, 1));
        let o = run(s.sweep_to(&config, &out));
        let stderr = text(&o.stderr);
        assert!(!o.status.success(), "{to}");
        assert!(
            stderr.contains("bad.toml") && stderr.contains(expect),
            "{expect}: {stderr}"
        );
        assert_eq!(s.calls(), 0);
        assert!(!out.exists(), "nothing written before validation");
    }
    let o = run(s.sweep(&["--config", s.path("missing.toml").to_str().unwrap()]));
    assert!(!o.status.success() && text(&o.stderr).contains("missing.toml"));
}

#[test]
fn an_unwritable_out_runs_nothing() {
    let s = Scratch::new("unwritable");
    let config = s.write("tiny.toml", TINY);
    let file = s.write("plain-file", "x");
    let out = file.join("out");
    let o = run(s.sweep_to(&config, &out));
    let stderr = text(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("--out") && stderr.contains("plain-file/out"),
        "{stderr}"
    );
    assert_eq!(s.calls(), 0);
}

#[test]
fn dry_run_lists_the_cells_and_runs_nothing() {
    let s = Scratch::new("dry");
    let config = s.write("tiny.toml", TINY);
    let o = run(s.sweep(&["--config", config.to_str().unwrap(), "--dry-run", "--rounds", "3"]));
    let stdout = text(&o.stdout);
    assert!(o.status.success());
    assert!(stdout.contains("80 cells x 3 rounds = 240 runs"), "{stdout}");
    assert!(stdout.contains("W1 none T=1 cf-store/gap-merge:4KiB"));
    assert_eq!(s.calls(), 0);
    let o = run(s.sweep(&["--quick", "--dry-run"]));
    assert!(text(&o.stdout).contains("88 cells x 2 rounds = 176 runs"));
}

#[test]
fn ctrl_c_stops_after_the_current_run_and_writes_what_finished() {
    let s = Scratch::new("sigint");
    let config = s.write("tiny.toml", TINY);
    s.write("sleep", "0.5");
    let out = s.path("out");
    let child = s
        .sweep_to(&config, &out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first run has started, then press Ctrl-C (SIGINT to xtask only; the run
    // is in its own process group, as it would be at a terminal).
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.calls() == 0 {
        assert!(Instant::now() < deadline, "the first run never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    let stderr = text(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(stderr.contains("interrupted by Ctrl-C"), "{stderr}");
    let rows = csv_rows(&out.join("results.csv")).len();
    assert!((1..TINY_RUNS).contains(&rows), "{rows} rows");
    assert_eq!(rows, s.calls(), "the run in progress finished and was kept");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["interrupted"], true);
    assert!(std::fs::read_to_string(out.join("summary.md"))
        .unwrap()
        .contains("interrupted by Ctrl-C"));
    assert!(out.join("ops_W1_none.svg").exists());
}

/// The real thing: builds `bench` in release (`--features peers`) and sweeps 2 cells of
/// cf-store (per-page and vectored, W1 at 5 txns, T = 1, durability none, 1 round).
#[test]
#[ignore = "builds and runs the real bench in release; run with --ignored"]
fn real_bench_two_cells() {
    let s = Scratch::new("real");
    let config = s.write(
        "two.toml",
        r#"
rounds = 1
[matrix]
engines = ["cf-store"]
policies = ["per-page", "vectored"]
threads = [1]
durability = ["none"]

[[workload]]
name = "W1"
keys = "sequential"
value_size = 1024
ops_per_txn = 1000
txns = 5
"#,
    );
    let out = s.path("out");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args([
        "sweep",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .env_remove("XTASK_BENCH_BIN")
    .stdin(Stdio::null());
    let o = run(cmd);
    assert!(
        o.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let rows = csv_rows(&out.join("results.csv"));
    assert_eq!(rows.len(), 2);
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("cf-store/vectored") && summary.contains("### cf-store policies vs per-page"));
}
