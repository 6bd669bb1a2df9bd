//! `xtask`: the project's automation, run as `cargo xtask <command>` (an alias in
//! `.cargo/config.toml`). It depends on no engine crate: it builds the `bench` binaries in
//! release mode with Cargo and runs them as subprocesses, one process per measurement, so a
//! benchmark never shares an address space, allocator or page cache warm-up with another.
//!
//! Commands:
//! - `sweep`: build `flush-compare`, run it, and write `summary.md` and `results.json` under
//!   `target/sweep/<UTC timestamp>/` (or `--out DIR`).

mod sweep;

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
    /// Build the benchmarks in release mode, run them, and write a summary and raw results.
    Sweep(sweep::SweepArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sweep(args) => sweep::run(&args),
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
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sweep_arguments_parse() {
        let cli = Cli::try_parse_from(["xtask", "sweep", "--quick", "--rounds", "2", "--out", "x"]).unwrap();
        let Command::Sweep(args) = cli.command;
        assert!(args.quick);
        assert_eq!(args.rounds, Some(2));
        assert_eq!(args.out.as_deref(), Some(std::path::Path::new("x")));
        assert!(Cli::try_parse_from(["xtask", "sweep", "--rounds", "0"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "frobnicate"]).is_err());
    }
}
