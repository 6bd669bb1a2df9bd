//! `cargo xtask flush-compare`: build the `flush-compare` binary of `bench` in release, run it
//! once, and write its tables (`summary.md`) and raw results (`results.json`).
//!
//! This is the flush-policy comparison on a real file (no store), kept reachable beside the
//! engine sweep. Its stderr (progress) streams to ours; its stdout (markdown tables) is
//! captured into `summary.md` and printed at the end.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use anyhow::{bail, Context};

use crate::workspace::{absolute, build_bench, show, target_dir, utc_timestamp, workspace_root};

/// The `bench` binary this command runs.
const BIN: &str = "flush-compare";

/// Options of `cargo xtask flush-compare`.
#[derive(Debug, clap::Args)]
pub struct FlushCompareArgs {
    /// A short run: fewer sizes, rounds and flushes (well under a minute).
    #[arg(long)]
    pub quick: bool,

    /// Where to write `summary.md` and `results.json` [default:
    /// target/flush-compare/<UTC timestamp, e.g. 20261124T031500Z>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Rounds (each round measures every policy once, interleaved) [default: the binary's own].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: Option<u32>,
}

/// The arguments `flush-compare` gets, writing its raw results to `results`.
pub fn bench_args(args: &FlushCompareArgs, results: &Path) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    if args.quick {
        out.push("--quick".into());
    }
    if let Some(rounds) = args.rounds {
        out.push("--rounds".into());
        out.push(rounds.to_string().into());
    }
    out.push("--json".into());
    out.push(results.into());
    out
}

/// Runs the comparison.
pub fn run(args: &FlushCompareArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let root = workspace_root();
    let target = target_dir(&root);
    let out = match &args.out {
        Some(dir) => absolute(dir)?,
        None => target
            .join("flush-compare")
            .join(utc_timestamp(SystemTime::now())),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    build_bench(&root, &[BIN], &[])?;

    let results = out.join("results.json");
    let mut cmd = Command::new(target.join("release").join(BIN));
    cmd.args(bench_args(args, &results)).current_dir(&root);
    let mut summary = run_capturing_stdout(cmd)?;
    if !summary.ends_with('\n') {
        summary.push('\n');
    }
    let summary_path = out.join("summary.md");
    std::fs::write(&summary_path, &summary).with_context(|| format!("writing {}", summary_path.display()))?;

    print!("{summary}");
    println!();
    println!(
        "flush-compare finished in {:.1} s; files written:",
        started.elapsed().as_secs_f64()
    );
    for path in [&summary_path, &results] {
        println!("  {}", path.display());
    }
    Ok(())
}

/// Runs `cmd` with stderr streaming to ours and returns its stdout; a failure to start or a
/// non-zero exit is an error naming the command.
fn run_capturing_stdout(mut cmd: Command) -> anyhow::Result<String> {
    let shown = show(&cmd);
    eprintln!("xtask: {shown}");
    let output = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !output.status.success() {
        bail!("`{shown}` failed ({})", output.status);
    }
    String::from_utf8(output.stdout).with_context(|| format!("`{shown}` printed output that is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_pass_quick_rounds_and_the_results_path() {
        let results = Path::new("/tmp/fc/results.json");
        let args = FlushCompareArgs {
            quick: true,
            out: None,
            rounds: Some(4),
        };
        let shown: Vec<String> = bench_args(&args, results)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            shown,
            ["--quick", "--rounds", "4", "--json", "/tmp/fc/results.json"]
        );
        let plain = FlushCompareArgs {
            quick: false,
            out: None,
            rounds: None,
        };
        assert_eq!(bench_args(&plain, results).len(), 2);
    }

    #[test]
    fn a_failing_child_is_an_error_naming_the_command() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; exit 3"]);
        let err = run_capturing_stdout(cmd).unwrap_err().to_string();
        assert!(
            err.contains("sh -c echo out; exit 3") && err.contains('3'),
            "{err}"
        );
        let mut ok = Command::new("sh");
        ok.args(["-c", "echo table"]);
        assert_eq!(run_capturing_stdout(ok).unwrap(), "table\n");
    }
}
