//! `xtask`: the project's automation, run as `cargo xtask <command>` (an alias in
//! `.cargo/config.toml`). It depends on no engine crate: it builds the `bench` binaries in
//! release mode with Cargo and runs them as subprocesses, one process per measurement, so a
//! benchmark never shares an address space, allocator or page cache warm-up with another.
//!
//! Commands:
//! - `sweep`: the engine sweep. Runs a matrix of workloads x durabilities x thread counts x
//!   engines (x flush policies for cf-store), one `bench` process per run over interleaved
//!   rounds, and writes `results.csv`, `results.json`, `summary.md` and SVG charts under
//!   `target/sweep/<UTC timestamp>/` (or `--out DIR`). The matrix is `sweep.toml` at the
//!   workspace root, `--config FILE`, or the small built-in `--quick` one.
//! - `flush-compare`: the flush-policy comparison on a real file (the `flush-compare` binary).
//! - `crash`, `soak`: the crash-point driver and the soak (the `torture` binary).
//! - `fuzz`: the cargo-fuzz targets in `fuzz/` (nightly).

mod flush_compare;
mod sweep;
mod torture;
mod workspace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Project automation for cf-store.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build `bench` in release, run the engine matrix (one process per run, interleaved
    /// rounds), and write results.csv, results.json, summary.md and SVG charts.
    Sweep(sweep::SweepArgs),
    /// Build and run the flush-policy comparison (`flush-compare`), writing summary.md and
    /// results.json.
    FlushCompare(flush_compare::FlushCompareArgs),
    /// Crash seeded workloads at every I/O call and verify every crash image; prints a
    /// one-line replay command for a failure.
    Crash(torture::CrashArgs),
    /// Writers, snapshot-checking readers and verified reopens for a bounded time.
    Soak(torture::SoakArgs),
    /// Run the cargo-fuzz targets for a bounded time each (needs nightly and cargo-fuzz).
    Fuzz(torture::FuzzArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sweep(args) => sweep::run(&args),
        Command::FlushCompare(args) => flush_compare::run(&args),
        Command::Crash(args) => torture::crash(&args),
        Command::Soak(args) => torture::soak(&args),
        Command::Fuzz(args) => torture::fuzz(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sweep_arguments_parse() {
        let cli = Cli::try_parse_from(["xtask", "sweep", "--quick", "--rounds", "2", "--out", "x"]).unwrap();
        let Command::Sweep(args) = cli.command else {
            panic!("not sweep")
        };
        assert!(args.quick && !args.dry_run);
        assert_eq!(args.rounds, Some(2));
        assert_eq!(args.out.as_deref(), Some(Path::new("x")));
        let cli = Cli::try_parse_from(["xtask", "sweep", "--config", "m.toml", "--dry-run"]).unwrap();
        let Command::Sweep(args) = cli.command else {
            panic!("not sweep")
        };
        assert_eq!(args.config.as_deref(), Some(Path::new("m.toml")));
        assert!(args.dry_run);
        assert!(Cli::try_parse_from(["xtask", "sweep", "--rounds", "0"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "sweep", "--quick", "--config", "m.toml"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "frobnicate"]).is_err());
    }

    #[test]
    fn flush_compare_arguments_parse() {
        let cli = Cli::try_parse_from(["xtask", "flush-compare", "--quick", "--rounds", "3"]).unwrap();
        let Command::FlushCompare(args) = cli.command else {
            panic!("not flush-compare")
        };
        assert!(args.quick);
        assert_eq!(args.rounds, Some(3));
    }
}
