//! Gap merging and placement: a column family's commit is placed so that it never leaves a
//! free gap between its runs (so the gap policies find nothing to bridge and write exactly
//! what `vectored` writes), a sequential commit is about two runs, and a flush of held pages
//! (several commits, less the pages they freed) has free gaps that the gap policies bridge.

use std::sync::Arc;

use cf_store::{u64_key, CfOptions, ColumnFamily, Db, Durability};
use flush::{Backend, MemBackend};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Runs, gap bytes and page bytes all commits of a churning workload flushed with `policy`:
/// three column families, random keys inserted and removed, small, medium and overflow
/// values, mixed durabilities.
fn churn(policy: &str, hold_bytes: u64) -> (u64, u64, u64) {
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let db = Db::builder()
        .flush(policy.parse().unwrap())
        .hold_bytes(hold_bytes)
        .initial_extent_pages(4)
        .open_backend(backend, "gaps")
        .unwrap();
    let cfs: Vec<ColumnFamily> = (0..3)
        .map(|i| db.create_cf(&format!("cf{i}"), CfOptions::default()).unwrap())
        .collect();
    let mut rng = SmallRng::seed_from_u64(5);
    for round in 0..400u64 {
        let cf = &cfs[rng.gen_range(0..cfs.len())];
        let mut txn = cf.begin_write().unwrap();
        txn.set_durability(if rng.gen_bool(0.5) {
            Durability::Immediate
        } else {
            Durability::None
        });
        {
            let mut t = txn.open_table("t").unwrap();
            for _ in 0..rng.gen_range(1..30) {
                let k = u64_key(rng.gen_range(0..500));
                if rng.gen_bool(0.45) {
                    t.remove(&k).unwrap();
                } else {
                    let len = match rng.gen_range(0..10) {
                        0 => rng.gen_range(4_000..20_000),
                        1..=3 => rng.gen_range(500..2_000),
                        _ => rng.gen_range(0..100),
                    };
                    t.insert(&k, &vec![round as u8; len]).unwrap();
                }
            }
        }
        txn.commit().unwrap();
    }
    cfs.iter().fold((0, 0, 0), |(r, g, p), cf| {
        let s = cf.stats();
        (
            r + s.flushed_runs,
            g + s.flushed_gap_bytes,
            p + s.flushed_page_bytes,
        )
    })
}

/// If placement ever left a wholly free gap between two runs of a commit, the gap policies
/// would bridge it (gap bytes > 0, fewer runs than `vectored`) and ARCHITECTURE.md's
/// argument for `vectored` as the default would be out of date.
#[test]
fn commits_leave_no_free_gap_for_the_gap_policies_to_bridge() {
    let (runs, gaps, pages) = churn("vectored", 0);
    assert_eq!(gaps, 0);
    assert!(runs > 400, "{runs} runs in 400 commits");
    for policy in ["gap-merge:16MiB", "vectored-gap:16MiB"] {
        assert_eq!(churn(policy, 0), (runs, 0, pages), "{policy}");
    }
}

/// Held pages change that: a flush writes what several commits held, less the pages they
/// freed meanwhile, and those lie free between the rest. The gap policies bridge them: fewer
/// runs than `vectored`, the same page bytes (the held pages and placement do not depend on
/// the policy), plus zeros over free pages.
#[test]
fn held_pages_leave_free_gaps_that_the_gap_policies_bridge() {
    let hold = 1 << 20;
    let (runs, gaps, pages) = churn("vectored", hold);
    assert_eq!(gaps, 0);
    for policy in ["gap-merge:16MiB", "vectored-gap:16MiB"] {
        let (r, g, p) = churn(policy, hold);
        assert_eq!(p, pages, "{policy}");
        assert!(
            g > 0 && r < runs,
            "{policy}: {r} runs, {g} gap bytes; vectored {runs} runs"
        );
    }
}

/// W1 in small: sequential 1 KiB values, no sync. Each commit rewrites the previous one's
/// spine, which ends that commit's run (nodes are placed after their children) and so comes
/// back as one hole: a commit is that hole and the tail, two runs. With nodes placed before
/// their children the spine came back as a hole per level, about 4 runs a commit.
#[test]
fn sequential_commits_are_about_two_runs_each() {
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let db = Db::builder()
        .flush("vectored".parse().unwrap())
        .open_backend(backend, "w1")
        .unwrap();
    let cf = db.create_cf("w1", CfOptions::default()).unwrap();
    let value = vec![7u8; 1024];
    let commits = 60u64;
    for txn_no in 0..commits {
        let mut txn = cf.begin_write().unwrap();
        txn.set_durability(Durability::None);
        {
            let mut t = txn.open_table("t").unwrap();
            for i in 0..300u64 {
                t.insert(&u64_key(txn_no * 300 + i), &value).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let s = cf.stats();
    assert_eq!(s.commits, commits);
    assert_eq!(s.flushed_gap_bytes, 0);
    // The first commits, while extents are small, take a few more.
    assert!(
        s.flushed_runs <= 2 * commits + 10,
        "{} runs in {commits} commits",
        s.flushed_runs
    );
}
