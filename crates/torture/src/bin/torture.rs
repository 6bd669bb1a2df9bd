//! `torture crash`: crash scripted workloads at every I/O call and verify every image; or
//! replay one failing crash point exactly.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use flush::testing::CrashBackend;
use torture::crash::{run_to_crash, total_calls, verify_image};
use torture::{explore, replay_command, Kind, Script};

#[derive(Parser, Debug)]
#[command(about = "Torture drivers for cf-store")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Crash workloads at every I/O call and verify each crash image.
    Crash(CrashArgs),
    /// Open and read many mutations of a valid file: each must work or fail typed.
    Corrupt(CorruptArgs),
    /// Writers, readers checking snapshot invariants, periodic reopen; bounded in time.
    Soak(SoakArgs),
}

#[derive(Parser, Debug)]
struct SoakArgs {
    /// How long to run.
    #[arg(long, default_value_t = 20)]
    secs: u64,
    /// Writer threads (one column family each).
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Reader threads.
    #[arg(long, default_value_t = 2)]
    readers: usize,
    /// Seconds between close-and-reopen cycles.
    #[arg(long, default_value_t = 5)]
    reopen_secs: u64,
    /// Seed of the writers' and readers' choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Parser, Debug)]
struct CorruptArgs {
    /// Mutation seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Mutations to try.
    #[arg(long, default_value_t = 10_000)]
    count: u64,
}

#[derive(Parser, Debug)]
struct CrashArgs {
    /// Workload: mixed, growth, catalog, or all.
    #[arg(long, default_value = "all")]
    workload: String,
    /// First script seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Crash points to run at least (scripts of successive seeds until reached).
    #[arg(long, default_value_t = 2000)]
    points: u64,
    /// Seeded crash images per point, besides "nothing unsynced kept" and "all kept".
    #[arg(long, default_value_t = 2)]
    images: u64,
    /// Replay only this crash point (with --workload, --seed and --image-seed).
    #[arg(long)]
    point: Option<u64>,
    /// The image seed of the point to replay.
    #[arg(long)]
    image_seed: Option<u64>,
}

fn image_seeds(script_seed: u64, extra: u64) -> Vec<u64> {
    let mut seeds = vec![0, u64::MAX];
    seeds.extend((1..=extra).map(|i| script_seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(i)));
    seeds
}

fn crash(a: &CrashArgs) -> Result<bool> {
    let kinds: Vec<Kind> = if a.workload == "all" {
        Kind::ALL.to_vec()
    } else {
        vec![a.workload.parse().map_err(anyhow::Error::msg)?]
    };
    if let Some(point) = a.point {
        let [kind] = kinds[..] else {
            bail!("--point replays one workload: give --workload mixed|growth|catalog")
        };
        let Some(image_seed) = a.image_seed else {
            bail!("--point needs --image-seed")
        };
        let script = Script::new(kind, a.seed);
        let backend = Arc::new(CrashBackend::new());
        backend.crash_after(point);
        let history = run_to_crash(&script, backend.clone());
        return match verify_image(backend.crash_image(image_seed), &history) {
            Ok(()) => {
                println!(
                    "{} seed {} point {point} image {image_seed}: verified",
                    kind.name(),
                    a.seed
                );
                Ok(true)
            }
            Err(message) => {
                println!(
                    "{} seed {} point {point} image {image_seed}: FAILED: {message}",
                    kind.name(),
                    a.seed
                );
                Ok(false)
            }
        };
    }
    let start = Instant::now();
    for kind in kinds {
        let (mut points, mut images, mut seed, mut dropped) = (0u64, 0u64, a.seed, 0u64);
        while points < a.points {
            let script = Script::new(kind, seed);
            let (calls, held_dropped) = total_calls(&script);
            dropped += held_dropped;
            match explore(&script, 0..=calls, &image_seeds(seed, a.images)) {
                Ok(checked) => images += checked,
                Err(f) => {
                    println!(
                        "FAILED: {} seed {} point {} image {}: {}",
                        kind.name(),
                        f.seed,
                        f.point,
                        f.image_seed,
                        f.message
                    );
                    println!("replay: {}", replay_command(&f));
                    return Ok(false);
                }
            }
            points += calls + 1;
            seed += 1;
        }
        println!(
            "{}: {points} crash points (seeds {}..{}), {images} images verified, 0 failures; \
             {dropped} bytes of held pages dropped unwritten in the uncrashed runs",
            kind.name(),
            a.seed,
            seed - 1
        );
    }
    println!("done in {:.1} s", start.elapsed().as_secs_f64());
    Ok(true)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Crash(a) => crash(a),
        Command::Soak(a) => {
            if a.writers == 0 {
                eprintln!("torture: --writers must be at least 1");
                return ExitCode::from(2);
            }
            let r = torture::soak::soak(
                a.secs,
                a.writers,
                a.readers,
                std::time::Duration::from_secs(a.reopen_secs.max(1)),
                a.seed,
            );
            println!(
                "soak {} s, {} writers, {} readers: {} commits, {} ops, {} invariant checks, {} reopens, {} errors, peak RSS {} KiB",
                a.secs,
                a.writers,
                a.readers,
                r.commits,
                r.ops,
                r.checks,
                r.reopens,
                r.errors.len(),
                r.peak_rss_kb
            );
            for e in r.errors.iter().take(20) {
                println!("error: {e}");
            }
            Ok(r.errors.is_empty())
        }
        Command::Corrupt(a) => {
            let start = Instant::now();
            // Panics are caught and reported by the sweep; keep their default message quiet.
            std::panic::set_hook(Box::new(|_| {}));
            match torture::corrupt::mutation_sweep(a.seed, a.count) {
                Ok((opened, refused)) => {
                    println!(
                        "{} mutations (seed {}): {opened} opened and read consistently, {refused} refused with a typed error, 0 panics ({:.1} s)",
                        a.count,
                        a.seed,
                        start.elapsed().as_secs_f64()
                    );
                    Ok(true)
                }
                Err(e) => {
                    println!(
                        "FAILED: {e}\nreplay: cargo run --release -p torture -- corrupt --seed {} --count {}",
                        a.seed, a.count
                    );
                    Ok(false)
                }
            }
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("torture: {e:#}");
            ExitCode::from(2)
        }
    }
}
