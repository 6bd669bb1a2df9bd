//! Criterion micro-benchmarks of the flush policies.
//!
//! `flush/<pattern>/<pages>`: one flush (plan + execute) of every default policy, on a real
//! file ([`FileBackend`] in a temporary directory under Cargo's target tmp dir), pre-extended
//! so that no flush grows it; throughput is dirty bytes per flush. Page counts 256 and 16384,
//! patterns `contiguous`, `every-other` and `random` (see `bench::Pattern`).
//!
//! `plan/random/16384`: planning alone (`FlushPolicy::plan`) of 16384 random pages against
//! their `FreeRanges`.
//!
//! Quick check: `cargo bench -p bench --bench flush_policies -- --quick`.

use std::time::Duration;

use bench::{Pattern, Workload, PAGE_SIZE};
use criterion::{
    black_box, criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use flush::{Backend, FileBackend, FlushConfig, PlanExecutor};

const SEED: u64 = 42;
const PAGE_COUNTS: [usize; 2] = [256, 16384];

fn flush_policies(c: &mut Criterion) {
    let dir = tempfile::Builder::new()
        .prefix("flush-policies-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a temporary directory for the bench files");
    for pages in PAGE_COUNTS {
        for pattern in Pattern::ALL {
            let workload = Workload::new(pattern, pages, PAGE_SIZE, SEED).expect("workload");
            let dirty = workload.dirty_pages().expect("dirty pages");
            let backend =
                FileBackend::open(dir.path().join(format!("{pattern}-{pages}.dat"))).expect("bench file");
            backend
                .set_len(workload.layout().region_len)
                .expect("pre-extending the bench file");

            let mut group = c.benchmark_group(format!("flush/{pattern}/{pages}"));
            group.throughput(Throughput::Bytes(workload.layout().dirty_bytes()));
            if pages >= 4096 {
                // Tens of milliseconds a flush: few, equal-sized samples.
                group
                    .sample_size(10)
                    .sampling_mode(SamplingMode::Flat)
                    .warm_up_time(Duration::from_millis(500))
                    .measurement_time(Duration::from_secs(2));
            } else {
                group
                    .sample_size(20)
                    .warm_up_time(Duration::from_millis(300))
                    .measurement_time(Duration::from_secs(1));
            }
            for config in FlushConfig::all_defaults() {
                let policy = config.build();
                let mut executor = PlanExecutor::new();
                group.bench_function(BenchmarkId::from_parameter(config), |b| {
                    b.iter(|| {
                        executor
                            .flush(&*policy, &dirty, workload.free(), &backend)
                            .expect("flush")
                    })
                });
            }
            group.finish();
            // Every policy wrote the same pages; make sure they are really there.
            workload
                .verify_pages(&backend)
                .unwrap_or_else(|e| panic!("{pattern} x {pages}: {e:#}"));
        }
    }
}

fn plan_only(c: &mut Criterion) {
    let pages = 16384;
    let workload = Workload::new(Pattern::Random, pages, PAGE_SIZE, SEED).expect("workload");
    let dirty = workload.dirty_pages().expect("dirty pages");
    let mut group = c.benchmark_group(format!("plan/random/{pages}"));
    group
        .throughput(Throughput::Elements(pages as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for config in FlushConfig::all_defaults() {
        let policy = config.build();
        group.bench_function(BenchmarkId::from_parameter(config), |b| {
            b.iter(|| black_box(policy.plan(black_box(&dirty), workload.free())))
        });
    }
    group.finish();
}

criterion_group!(benches, flush_policies, plan_only);
criterion_main!(benches);
