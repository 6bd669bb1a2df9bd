//! `cargo xtask sweep`: build the benchmark binaries once in release mode, run each planned
//! benchmark as its own process, and collect the results in one output directory.
//!
//! The run is a list of [`Invocation`]s (today one: `flush-compare`), each a binary of the
//! `bench` crate with its arguments and its raw-results file. Every invocation's stderr
//! (progress) streams to ours; its stdout (markdown tables) is captured and appended to
//! `summary.md`. Growing the sweep into the full engine matrix means adding binaries to
//! [`BINARIES`] and invocations to [`plan`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};

/// The `bench` binaries the sweep runs; all built by one `cargo build`.
const BINARIES: &[&str] = &["flush-compare"];

/// Options of `cargo xtask sweep`.
#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// A short run: fewer sizes, rounds and flushes (well under a minute).
    #[arg(long)]
    pub quick: bool,

    /// Where to write `summary.md` and the raw results [default:
    /// target/sweep/<UTC timestamp, e.g. 20261124T031500Z>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Rounds per benchmark (each round measures every variant once, interleaved)
    /// [default: the benchmark's own].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: Option<u32>,
}

/// One benchmark process of a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The `bench` binary (one of [`BINARIES`]).
    pub bin: &'static str,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// The raw-results file it writes.
    pub results: PathBuf,
}

/// The benchmark processes a sweep runs, in order, writing into `out`.
pub fn plan(args: &SweepArgs, out: &Path) -> Vec<Invocation> {
    let results = out.join("results.json");
    let mut flush_args: Vec<OsString> = Vec::new();
    if args.quick {
        flush_args.push("--quick".into());
    }
    if let Some(rounds) = args.rounds {
        flush_args.push("--rounds".into());
        flush_args.push(rounds.to_string().into());
    }
    flush_args.push("--json".into());
    flush_args.push(results.clone().into());
    vec![Invocation {
        bin: "flush-compare",
        args: flush_args,
        results,
    }]
}

/// Runs the sweep.
pub fn run(args: &SweepArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let root = workspace_root();
    let target = target_dir(&root);
    let out = match &args.out {
        Some(dir) if dir.is_absolute() => dir.clone(),
        Some(dir) => std::env::current_dir()
            .context("reading the current directory")?
            .join(dir),
        None => target.join("sweep").join(utc_timestamp(SystemTime::now())),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    build(&root)?;

    let mut summary = String::new();
    let mut written = Vec::new();
    for invocation in plan(args, &out) {
        let program = target.join("release").join(invocation.bin);
        let mut cmd = Command::new(&program);
        cmd.args(&invocation.args).current_dir(&root);
        let stdout = run_capturing_stdout(cmd)?;
        if !summary.is_empty() && !summary.ends_with("\n\n") {
            summary.push('\n');
        }
        summary.push_str(&stdout);
        written.push(invocation.results);
    }

    let summary_path = out.join("summary.md");
    std::fs::write(&summary_path, &summary).with_context(|| format!("writing {}", summary_path.display()))?;
    written.insert(0, summary_path);

    print!("{summary}");
    if !summary.ends_with('\n') {
        println!();
    }
    println!();
    println!(
        "sweep finished in {:.1} s; files written:",
        started.elapsed().as_secs_f64()
    );
    for path in &written {
        println!("  {}", path.display());
    }
    Ok(())
}

/// Builds every sweep binary with one release build.
fn build(root: &Path) -> anyhow::Result<()> {
    let mut cmd = Command::new(cargo());
    cmd.args(["build", "--release", "--package", "bench"]);
    for bin in BINARIES {
        cmd.args(["--bin", bin]);
    }
    cmd.current_dir(root);
    let shown = show(&cmd);
    eprintln!("xtask: {shown}");
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
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

/// The command as a shell-like line, for messages.
fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Cargo as invoked us (`CARGO`), else `cargo` from `PATH`.
fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set, else `<root>/target`.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// `time` in UTC as `YYYYMMDDTHHMMSSZ` (e.g. `20261124T031500Z`); times before 1970 print
/// as the epoch.
pub fn utc_timestamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> String {
        utc_timestamp(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn timestamps_are_utc_calendar_times() {
        assert_eq!(at(0), "19700101T000000Z");
        assert_eq!(at(951_782_400), "20000229T000000Z");
        assert_eq!(at(1_700_000_000), "20231114T221320Z");
        assert_eq!(at(1_795_835_700), "20261128T031500Z");
        assert_eq!(at(4_102_444_799), "20991231T235959Z");
        assert_eq!(
            utc_timestamp(UNIX_EPOCH - Duration::from_secs(5)),
            "19700101T000000Z"
        );
    }

    #[test]
    fn plan_passes_quick_rounds_and_the_results_path() {
        let out = Path::new("/tmp/sweep-out");
        let args = SweepArgs {
            quick: true,
            out: None,
            rounds: Some(4),
        };
        let plan = plan(&args, out);
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].bin, "flush-compare");
        assert_eq!(plan[0].results, out.join("results.json"));
        let args: Vec<String> = plan[0]
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "--quick",
                "--rounds",
                "4",
                "--json",
                "/tmp/sweep-out/results.json"
            ]
        );
        let plain = super::plan(
            &SweepArgs {
                quick: false,
                out: None,
                rounds: None,
            },
            out,
        );
        assert_eq!(plain[0].args.len(), 2);
        for inv in plain {
            assert!(BINARIES.contains(&inv.bin));
        }
    }

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
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
