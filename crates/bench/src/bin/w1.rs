//! The seed workload W1 on cf-store: T threads, each committing to its own column family in
//! one file; prints ops/s and write calls per commit for each policy, interleaved rounds.

use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use anyhow::{Context, Result};
use cf_store::{u64_key, CfOptions, Db, Durability, FlushConfig};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Seed workload W1: T writers, one column family each, one file")]
struct Args {
    /// Flush policies (short forms), compared in the same run.
    #[arg(long, value_delimiter = ',', default_value = "per-page,vectored")]
    policies: Vec<FlushConfig>,
    /// Thread counts.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    threads: Vec<usize>,
    /// Transactions per thread.
    #[arg(long, default_value_t = 100)]
    txns: u64,
    /// Inserts per transaction.
    #[arg(long, default_value_t = 1000)]
    ops: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Commit durability: none or immediate.
    #[arg(long, default_value = "none")]
    durability: String,
    /// Rounds (each cell once per round, order rotated).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Where the database files go (default: a temp dir in the current directory).
    #[arg(long)]
    dir: Option<PathBuf>,
}

struct Cell {
    ops_per_sec: f64,
    write_calls_per_commit: f64,
    syncs_per_commit: f64,
    bytes_per_insert_byte: f64,
}

fn run_cell(
    dir: &std::path::Path,
    policy: FlushConfig,
    threads: usize,
    a: &Args,
    durability: Durability,
) -> Result<Cell> {
    let path = dir.join(format!("w1-{}-{threads}.cf", policy.kind()));
    let _ = std::fs::remove_file(&path);
    let db = Db::builder().flush(policy).open(&path).context("open")?;
    let cfs: Vec<_> = (0..threads)
        .map(|t| db.create_cf(&format!("cf{t}"), CfOptions::default()))
        .collect::<Result<_, _>>()?;
    let before = db.stats()?.io;
    let barrier = Arc::new(Barrier::new(threads + 1));
    let value = vec![0xA5u8; a.value_size];
    let handles: Vec<_> = cfs
        .into_iter()
        .map(|cf| {
            let (barrier, value) = (barrier.clone(), value.clone());
            let (txns, ops) = (a.txns, a.ops);
            std::thread::spawn(move || -> Result<()> {
                barrier.wait();
                for txn_no in 0..txns {
                    let mut txn = cf.begin_write()?;
                    txn.set_durability(durability);
                    {
                        let mut t = txn.open_table("w1")?;
                        for i in 0..ops {
                            t.insert(&u64_key(txn_no * 1000 + i), &value)?;
                        }
                    }
                    txn.commit()?;
                }
                Ok(())
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().expect("writer thread")?;
    }
    let secs = start.elapsed().as_secs_f64();
    let io = db.stats()?.io - before;
    let commits = (threads as u64 * a.txns) as f64;
    let inserted = commits * a.ops as f64 * (a.value_size + 8) as f64;
    drop(db);
    let _ = std::fs::remove_file(&path);
    Ok(Cell {
        ops_per_sec: commits * a.ops as f64 / secs,
        write_calls_per_commit: io.write_syscalls() as f64 / commits,
        syncs_per_commit: io.sync_calls as f64 / commits,
        bytes_per_insert_byte: io.bytes_written as f64 / inserted,
    })
}

fn main() -> Result<()> {
    let a = Args::parse();
    let durability = match a.durability.as_str() {
        "none" => Durability::None,
        "immediate" => Durability::Immediate,
        other => anyhow::bail!("--durability {other:?}: accepted values are none, immediate"),
    };
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir_in(".").context("temp dir")?;
            tmp.path().to_path_buf()
        }
    };
    let cells: Vec<(FlushConfig, usize)> = a
        .policies
        .iter()
        .flat_map(|p| a.threads.iter().map(move |t| (*p, *t)))
        .collect();
    let mut results: Vec<Vec<Cell>> = cells.iter().map(|_| Vec::new()).collect();
    for round in 0..a.rounds {
        for k in 0..cells.len() {
            let i = (k + round) % cells.len();
            let (policy, threads) = cells[i];
            eprintln!("round {}/{}: {policy} x{threads}", round + 1, a.rounds);
            results[i].push(run_cell(&dir, policy, threads, &a, durability)?);
        }
    }
    println!(
        "W1: {} txns x {} inserts of {} B per thread, durability {}, {} rounds (median, min-max)\n",
        a.txns, a.ops, a.value_size, a.durability, a.rounds
    );
    println!("| policy | threads | ops/s median (min-max) | write calls/commit | syncs/commit | bytes written / inserted |");
    println!("|---|---:|---:|---:|---:|---:|");
    for ((policy, threads), runs) in cells.iter().zip(&results) {
        let mut ops: Vec<f64> = runs.iter().map(|c| c.ops_per_sec).collect();
        ops.sort_by(f64::total_cmp);
        let median = ops[ops.len() / 2];
        let r = &runs[0];
        println!(
            "| {policy} | {threads} | {:.0} ({:.0}-{:.0}) | {:.1} | {:.2} | {:.2} |",
            median,
            ops[0],
            ops[ops.len() - 1],
            r.write_calls_per_commit,
            r.syncs_per_commit,
            r.bytes_per_insert_byte
        );
    }
    Ok(())
}
