//! `crash`, `soak` and `fuzz`: build the `torture` binary (or the fuzz targets) and run them.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::workspace::{build_release, show, target_dir, workspace_root};

/// `cargo xtask crash`.
#[derive(Debug, Args)]
pub struct CrashArgs {
    /// Crash points to run at least, per workload.
    #[arg(long, default_value_t = 2000)]
    pub points: u64,
    /// First script seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Workload: mixed, growth, catalog, or all.
    #[arg(long, default_value = "all")]
    pub workload: String,
    /// Seeded torn images per crash point (besides "nothing unsynced" and "all kept").
    #[arg(long, default_value_t = 2)]
    pub images: u64,
    /// Replay one crash point (needs --workload, --seed and --image-seed).
    #[arg(long)]
    pub point: Option<u64>,
    /// The image seed of the point to replay.
    #[arg(long)]
    pub image_seed: Option<u64>,
}

/// `cargo xtask soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// How long to run (it stops by itself).
    #[arg(long, default_value_t = 20)]
    pub secs: u64,
    /// Writer threads, one column family each.
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
    /// Reader threads checking snapshot invariants.
    #[arg(long, default_value_t = 2)]
    pub readers: usize,
    /// Seconds between verified close-and-reopen cycles.
    #[arg(long, default_value_t = 5)]
    pub reopen_secs: u64,
    /// Seed of the writers' and readers' choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `cargo xtask fuzz`.
#[derive(Debug, Args)]
pub struct FuzzArgs {
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    pub secs: u64,
    /// One target (open_bytes, ops_model, flush_config); default all three.
    #[arg(long)]
    pub target: Option<String>,
}

/// The fuzz targets in `fuzz/`.
pub const FUZZ_TARGETS: [&str; 3] = ["open_bytes", "ops_model", "flush_config"];

fn run_torture(root: &Path, args: Vec<String>) -> Result<()> {
    build_release(root, "torture", &["torture"], &[])?;
    let bin = target_dir(root).join("release").join("torture");
    let mut cmd = Command::new(&bin);
    cmd.args(&args).current_dir(root).stdin(Stdio::null());
    let shown = show(&cmd);
    eprintln!("xtask: {shown}");
    let status = cmd.status().with_context(|| format!("cannot start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` found a failure ({status}); its output above has the replay command");
    }
    Ok(())
}

/// Crash points: every mutating I/O call of seeded workloads, every image verified.
pub fn crash(a: &CrashArgs) -> Result<()> {
    let mut args: Vec<String> = vec![
        "crash".into(),
        format!("--points={}", a.points),
        format!("--seed={}", a.seed),
        format!("--workload={}", a.workload),
        format!("--images={}", a.images),
    ];
    if let Some(p) = a.point {
        args.push(format!("--point={p}"));
    }
    if let Some(i) = a.image_seed {
        args.push(format!("--image-seed={i}"));
    }
    run_torture(&workspace_root(), args)
}

/// A bounded soak with snapshot checks and verified reopens.
pub fn soak(a: &SoakArgs) -> Result<()> {
    if a.writers == 0 {
        bail!("--writers must be at least 1");
    }
    let args = vec![
        "soak".into(),
        format!("--secs={}", a.secs),
        format!("--writers={}", a.writers),
        format!("--readers={}", a.readers),
        format!("--reopen-secs={}", a.reopen_secs),
        format!("--seed={}", a.seed),
    ];
    run_torture(&workspace_root(), args)
}

/// Runs each fuzz target for `secs` seconds with cargo-fuzz (nightly toolchain).
pub fn fuzz(a: &FuzzArgs) -> Result<()> {
    let targets: Vec<&str> = match &a.target {
        Some(t) if FUZZ_TARGETS.contains(&t.as_str()) => vec![t.as_str()],
        Some(t) => bail!("unknown fuzz target {t:?}; accepted: {}", FUZZ_TARGETS.join(", ")),
        None => FUZZ_TARGETS.to_vec(),
    };
    let fuzz_dir = workspace_root().join("fuzz");
    let probe = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output();
    if !matches!(&probe, Ok(o) if o.status.success()) {
        bail!("cargo-fuzz with a nightly toolchain is needed: `rustup toolchain install nightly` and `cargo install cargo-fuzz`");
    }
    for target in targets {
        let mut cmd = Command::new("cargo");
        cmd.args(["+nightly", "fuzz", "run", target, "--"])
            .arg(format!("-max_total_time={}", a.secs))
            .current_dir(&fuzz_dir)
            .stdin(Stdio::null());
        let shown = show(&cmd);
        eprintln!("xtask: {shown}");
        let status = cmd.status().with_context(|| format!("cannot start `{shown}`"))?;
        if !status.success() {
            bail!("fuzz target {target} found a failure ({status}): see fuzz/artifacts/{target}/; turn it into a regression test under tests/");
        }
    }
    Ok(())
}
