//! `IoStats` agrees with the kernel: the same flushes, traced by `strace -c -f`, show as many
//! `pwrite64` and `pwritev` calls as the counters say.
//!
//! The parent test re-runs this binary's `strace_child` test under strace. When strace is
//! missing or cannot trace here (no ptrace in the sandbox), the test says so and passes
//! without checking, unless `CF_REQUIRE_STRACE=1` (set by `.ci/run`) makes that a failure.

use std::path::Path;
use std::process::Command;

use flush::{
    Backend, DirtyPage, DirtyPages, FileBackend, FileOptions, FlushConfig, FreeRanges, PlanExecutor,
};

const CHILD_ENV: &str = "CF_STRACE_CHILD";
const PAGE: u64 = 4096;

/// The traced work: every policy on two shapes, a run longer than IOV_MAX, capped calls.
fn io_workload(dir: &Path) -> (u64, u64) {
    let backend = FileBackend::open(dir.join("traced")).unwrap();
    let capped = FileBackend::open_with(
        dir.join("capped"),
        FileOptions::default().with_max_bytes_per_call(10_000),
    )
    .unwrap();
    let data: Vec<Vec<u8>> = (0..1500u64)
        .map(|i| vec![(i % 250) as u8 + 1; PAGE as usize])
        .collect();
    let mut free = FreeRanges::new();
    for i in 0..1500u64 {
        free.insert((2 * i + 1) * PAGE, (2 * i + 2) * PAGE);
    }
    let mut exec = PlanExecutor::new();
    for config in FlushConfig::all_defaults() {
        let policy = config.build();
        for stride in [1u64, 2] {
            let pages = DirtyPages::new(
                data.iter()
                    .enumerate()
                    .map(|(i, d)| DirtyPage::new(i as u64 * stride * PAGE, d))
                    .collect(),
            )
            .unwrap();
            exec.flush(&*policy, &pages, &free, &backend).unwrap();
            let few = DirtyPages::new(
                data[..3]
                    .iter()
                    .enumerate()
                    .map(|(i, d)| DirtyPage::new(i as u64 * stride * PAGE, d))
                    .collect(),
            )
            .unwrap();
            exec.flush(&*policy, &few, &free, &capped).unwrap();
        }
    }
    let (a, b) = (backend.stats().snapshot(), capped.stats().snapshot());
    (a.write_calls + b.write_calls, a.vectored_calls + b.vectored_calls)
}

#[test]
#[ignore = "run by `stats_match_strace` under strace"]
fn strace_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (writes, vectored) = io_workload(dir.path());
    println!("IOSTATS {writes} {vectored}");
}

/// strace's `-c` table: the `calls` column of the named syscall (0 when absent).
fn calls_of(table: &str, syscall: &str) -> u64 {
    table
        .lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols.last() == Some(&syscall) && cols.len() >= 5).then(|| cols[3].parse::<u64>().ok())?
        })
        .sum()
}

#[test]
fn stats_match_strace() {
    if !flush::testing::strace_usable("stats_match_strace") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let table_path = dir.path().join("strace.txt");
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("strace")
        .args(["-f", "-c", "-e", "trace=pwrite64,pwritev,pwritev2", "-o"])
        .arg(&table_path)
        .arg(&exe)
        .args([
            "--ignored",
            "--exact",
            "strace_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // libtest may print `test strace_child ... ` on the same line first.
    let line = stdout
        .split("IOSTATS ")
        .nth(1)
        .expect("child printed its counters");
    let nums: Vec<u64> = line
        .split_whitespace()
        .take(2)
        .map(|n| n.parse().unwrap())
        .collect();
    let table = std::fs::read_to_string(&table_path).unwrap();
    let kernel_writes = calls_of(&table, "pwrite64");
    let kernel_vectored = calls_of(&table, "pwritev") + calls_of(&table, "pwritev2");
    assert!(
        nums[0] > 1000 && nums[1] > 10,
        "the workload exercises both calls: {nums:?}"
    );
    assert_eq!(kernel_writes, nums[0], "pwrite64: strace vs IoStats\n{table}");
    assert_eq!(kernel_vectored, nums[1], "pwritev: strace vs IoStats\n{table}");
    eprintln!("stats_match_strace: pwrite64 {kernel_writes}, pwritev {kernel_vectored}: equal to IoStats");
}

#[test]
fn strace_table_parsing() {
    let table = "% time     seconds  usecs/call     calls    errors syscall\n\
------ ----------- ----------- --------- --------- ----------------\n\
 93.10    0.010000           3      2911           pwrite64\n\
  6.90    0.000741          12        60         1 pwritev\n\
------ ----------- ----------- --------- --------- ----------------\n\
100.00    0.010741           3      2971         1 total\n";
    assert_eq!(calls_of(table, "pwrite64"), 2911);
    assert_eq!(calls_of(table, "pwritev"), 60);
    assert_eq!(calls_of(table, "pwritev2"), 0);
}
