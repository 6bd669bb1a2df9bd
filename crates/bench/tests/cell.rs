//! The `bench` binary end to end: tiny cells of every engine this build has, run as
//! subprocesses, their one JSON line parsed and checked field by field; bad input exits
//! non-zero without a panic.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Map, Value};

/// Every field of schema 1, in order.
const FIELDS: [&str; 38] = [
    "schema",
    "engine",
    "policy",
    "page_size",
    "leaf_pages",
    "max_write_bytes",
    "kept_branches",
    "hold_bytes",
    "read_path",
    "populate",
    "threads",
    "txns",
    "ops_per_txn",
    "value_size",
    "keys",
    "durability",
    "durable_end",
    "seed",
    "ops",
    "secs",
    "ops_per_sec",
    "commits",
    "write_calls",
    "vectored_calls",
    "sync_calls",
    "populate_calls",
    "write_calls_per_commit",
    "syscalls_per_commit",
    "syncs_per_commit",
    "bytes_written",
    "bytes_inserted",
    "write_amplification",
    "cpu_secs",
    "cpu_utilization",
    "p50_commit_us",
    "p99_commit_us",
    "peak_rss_kb",
    "syscall_source",
];

fn bench(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("run the bench binary")
}

/// Runs a tiny cell (2 threads x 2 txns x 10 ops) and returns its JSON object.
fn cell(engine: &str, extra: &[&str]) -> Map<String, Value> {
    cell_of(engine, "10", extra)
}

/// [`cell`] with `ops` inserts per transaction.
fn cell_of(engine: &str, ops: &str, extra: &[&str]) -> Map<String, Value> {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--engine",
        engine,
        "--txns",
        "2",
        "--ops-per-txn",
        ops,
        "--threads",
        "2",
    ];
    args.extend_from_slice(extra);
    let out = bench(&args, dir.path());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {}\n{stderr}", out.status);
    assert_eq!(stdout.lines().count(), 1, "one line on stdout: {stdout}");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "the cell removes its files"
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    v.as_object().unwrap().clone()
}

fn num(o: &Map<String, Value>, k: &str) -> f64 {
    o[k].as_f64().unwrap_or_else(|| panic!("{k} is a number: {o:?}"))
}

fn int(o: &Map<String, Value>, k: &str) -> u64 {
    o[k].as_u64()
        .unwrap_or_else(|| panic!("{k} is a whole number: {o:?}"))
}

/// The checks every engine's line passes.
fn check(o: &Map<String, Value>, engine: &str, durability: &str, value_size: u64) {
    let mut sorted_fields = FIELDS.to_vec();
    sorted_fields.sort_unstable();
    let mut sorted_keys: Vec<&str> = o.keys().map(String::as_str).collect();
    sorted_keys.sort_unstable();
    assert_eq!(sorted_keys, sorted_fields, "exactly the schema's fields");

    assert_eq!(int(o, "schema"), 1);
    assert_eq!(o["engine"], engine);
    assert_eq!(o["durability"], durability);
    assert_eq!(o["keys"].as_str().map(str::is_empty), Some(false));
    let (threads, txns, ops_per_txn) = (int(o, "threads"), int(o, "txns"), int(o, "ops_per_txn"));
    assert_eq!(
        (threads, txns, ops_per_txn, int(o, "value_size")),
        (2, 2, 10, value_size)
    );
    assert_eq!(int(o, "seed"), 42);
    let commits = int(o, "commits");
    assert_eq!(commits, threads * txns);
    let ops = int(o, "ops");
    assert_eq!(ops, commits * ops_per_txn);
    assert_eq!(int(o, "bytes_inserted"), ops * (8 + value_size));

    let secs = num(o, "secs");
    assert!(secs > 0.0 && secs < 60.0, "secs {secs}");
    let rate = num(o, "ops_per_sec");
    assert!((rate - ops as f64 / secs).abs() <= 1e-6 * rate, "ops_per_sec");

    let writes = int(o, "write_calls") + int(o, "vectored_calls");
    assert!(writes > 0, "some write calls: {o:?}");
    let wpc = num(o, "write_calls_per_commit");
    assert!((wpc - writes as f64 / commits as f64).abs() < 1e-9);
    let written = int(o, "bytes_written");
    assert!(written > 0);
    let wa = num(o, "write_amplification");
    assert!((wa - written as f64 / int(o, "bytes_inserted") as f64).abs() < 1e-9);

    let (p50, p99) = (num(o, "p50_commit_us"), num(o, "p99_commit_us"));
    assert!(p50 > 0.0 && p99 >= p50, "p50 {p50} p99 {p99}");
    assert!(int(o, "peak_rss_kb") > 1000, "peak RSS in KiB");
    // Process CPU time over the timed phase: rusage ticks are coarse, so a tiny cell may
    // read 0, but never negative, and utilization is exactly cpu_secs / secs.
    let cpu = num(o, "cpu_secs");
    assert!(cpu >= 0.0, "cpu_secs {cpu}");
    assert!((num(o, "cpu_utilization") - cpu / secs).abs() <= 1e-9 * (1.0 + cpu / secs));

    let peer = matches!(engine, "redb" | "manifold" | "fjall");
    if peer {
        assert_eq!(o["syscall_source"], "proc-self-io");
        assert_eq!(o["policy"], Value::Null);
        assert_eq!(o["page_size"], Value::Null);
        assert_eq!(o["leaf_pages"], Value::Null);
        assert_eq!(o["max_write_bytes"], Value::Null);
        assert_eq!(o["kept_branches"], Value::Null);
        assert_eq!(o["hold_bytes"], Value::Null);
        assert_eq!(o["read_path"], Value::Null);
        assert_eq!(o["populate"], Value::Null);
        // /proc/self/io does not count syncs.
        for k in [
            "sync_calls",
            "populate_calls",
            "syscalls_per_commit",
            "syncs_per_commit",
        ] {
            assert_eq!(o[k], Value::Null, "{k}");
        }
    } else {
        assert_eq!(o["syscall_source"], "iostats");
        let syncs = int(o, "sync_calls");
        assert!((num(o, "syncs_per_commit") - syncs as f64 / commits as f64).abs() < 1e-9);
        let populates = int(o, "populate_calls");
        let spc = num(o, "syscalls_per_commit");
        assert!((spc - (writes + syncs + populates) as f64 / commits as f64).abs() < 1e-9);
        if durability == "immediate" {
            assert!(syncs > 0, "immediate commits sync");
        }
        if engine == "raw" {
            // Each commit is 10 x 1032 bytes: one pwrite, plus one fdatasync when immediate.
            assert_eq!(o["policy"], Value::Null);
            assert_eq!(o["page_size"], Value::Null);
            assert_eq!(o["leaf_pages"], Value::Null);
            assert_eq!(o["max_write_bytes"], Value::Null);
            assert_eq!(o["kept_branches"], Value::Null);
            assert_eq!(o["hold_bytes"], Value::Null);
            assert_eq!(o["read_path"], Value::Null);
            assert_eq!(o["populate"], Value::Null);
            assert_eq!(int(o, "write_calls"), commits);
            assert_eq!(int(o, "vectored_calls"), 0);
            assert_eq!(written, int(o, "bytes_inserted"));
            assert_eq!(syncs, if durability == "immediate" { commits } else { 0 });
        } else {
            assert!(o["policy"].is_string());
            assert!(o["page_size"].is_u64());
            assert!(o["leaf_pages"].is_u64());
        }
    }
}

#[test]
fn cf_store_engines_and_raw_report_every_field() {
    for engine in ["cf-store", "cf-store-files", "raw"] {
        for durability in ["none", "immediate"] {
            let o = cell(engine, &["--durability", durability]);
            check(&o, engine, durability, 1024);
            if engine != "raw" {
                assert_eq!(o["policy"], "vectored", "the default policy");
                assert_eq!(int(&o, "page_size"), 4096, "the store's default page size");
                assert_eq!(int(&o, "leaf_pages"), 16, "the store's default leaf growth");
                assert_eq!(o["max_write_bytes"], Value::Null, "no cap by default");
                assert_eq!(int(&o, "kept_branches"), 256, "the store's default");
                assert_eq!(int(&o, "hold_bytes"), 64 << 20, "the store's default");
                assert_eq!(o["read_path"], "cache", "the store's default");
                assert_eq!(o["populate"], "allocate", "the store's default");
            }
        }
    }
}

#[test]
fn options_reach_the_cell() {
    let o = cell(
        "cf-store",
        &["--policy", "per-page", "--value-size", "100", "--keys", "random"],
    );
    check(&o, "cf-store", "none", 100);
    assert_eq!(o["policy"], "per-page");
    assert_eq!(o["keys"], "random");
    assert!(
        int(&o, "write_calls") > 0 && int(&o, "vectored_calls") == 0,
        "per-page: pwrite only"
    );

    let o = cell(
        "cf-store-files",
        &["--keys", "overwrite", "--durability", "immediate"],
    );
    check(&o, "cf-store-files", "immediate", 1024);
    assert_eq!(o["keys"], "overwrite");
    // The preload is untimed: 2 commits per thread are measured, not 4.
    assert_eq!(int(&o, "commits"), 4);

    // Every commit writes at least one whole page: 64 KiB pages show in the bytes written
    // (10 inserts of 1032 bytes need well under 64 KiB at the default page size).
    let o = cell("cf-store", &["--page-size", "65536"]);
    check(&o, "cf-store", "none", 1024);
    assert_eq!(int(&o, "page_size"), 65536);
    assert!(
        int(&o, "bytes_written") >= int(&o, "commits") * 65536,
        "64 KiB pages: {o:?}"
    );

    // Leaves grow by appends: 1 KiB values in one-page leaves write more bytes than in
    // four-page ones (3 entries a page against 15 in four).
    let grown = cell_of("cf-store", "200", &[]);
    let flat = cell_of("cf-store", "200", &["--leaf-pages", "1"]);
    assert_eq!(int(&flat, "leaf_pages"), 1);
    assert!(
        num(&flat, "write_amplification") > 1.2 * num(&grown, "write_amplification"),
        "{flat:?} against {grown:?}"
    );

    // A cap on bytes per write call splits the runs: no call carries more than it, where
    // without it the calls carry several pages each.
    let calls = |o: &Map<String, Value>| int(o, "write_calls") + int(o, "vectored_calls");
    let capped = cell_of("cf-store", "200", &["--max-write-bytes", "4096"]);
    assert_eq!(int(&capped, "max_write_bytes"), 4096);
    assert!(
        calls(&capped) * 4096 >= int(&capped, "bytes_written"),
        "{capped:?}"
    );
    assert!(calls(&grown) * 4096 < int(&grown, "bytes_written"), "{grown:?}");

    // No kept branches: the same tree, page for page, so the same bytes written.
    let unkept = cell_of("cf-store", "200", &["--kept-branches", "0", "--keys", "random"]);
    let kept = cell_of("cf-store", "200", &["--keys", "random"]);
    assert_eq!(int(&unkept, "kept_branches"), 0);
    assert_eq!(int(&unkept, "bytes_written"), int(&kept, "bytes_written"));

    // Reads through a memory map: the same tree, so the same bytes written.
    let mapped = cell_of("cf-store", "200", &["--read-path", "mmap", "--keys", "random"]);
    assert_eq!(mapped["read_path"], "mmap");
    assert_eq!(int(&mapped, "bytes_written"), int(&kept, "bytes_written"));

    // Held pages: small transactions of random keys rewrite the same branches and leaves,
    // so holding (the default budget) writes fewer bytes than writing every commit; what is
    // still held at the end is written inside the timed phase, so the bytes written cover
    // the final tree.
    let small_txns = |hold: &str| {
        let dir = tempfile::tempdir().unwrap();
        let args = [
            "--engine",
            "cf-store",
            "--threads",
            "1",
            "--txns",
            "60",
            "--ops-per-txn",
            "10",
            "--keys",
            "random",
            "--hold-bytes",
            hold,
        ];
        let out = bench(&args, dir.path());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
        v.as_object().unwrap().clone()
    };
    let (held, plain) = (small_txns("64MiB"), small_txns("0"));
    assert_eq!(int(&held, "hold_bytes"), 64 << 20);
    assert_eq!(int(&plain, "hold_bytes"), 0);
    assert!(
        int(&held, "bytes_written") >= int(&held, "bytes_inserted"),
        "{held:?}"
    );
    assert!(
        int(&held, "bytes_written") * 2 < int(&plain, "bytes_written"),
        "{held:?} against {plain:?}"
    );

    let o = cell(
        "raw",
        &[
            "--keys",
            "overwrite",
            "--policy",
            "per-page",
            "--page-size",
            "8192",
        ],
    );
    check(&o, "raw", "none", 1024);
    assert_eq!(o["policy"], Value::Null, "--policy is ignored by raw");
}

#[test]
fn bad_input_exits_non_zero_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--engine", "rocksdb"], "--engine"),
        (&["--threads", "0"], "--threads"),
        (&["--policy", "nope"], "--policy"),
        (&["--page-size", "3000"], "--page-size"),
        (&["--keys", "zipf"], "--keys"),
        (&["--durability", "sometimes"], "--durability"),
        (
            &["--txns", "18446744073709551615", "--ops-per-txn", "3"],
            "--txns",
        ),
    ];
    for (args, flag) in cases {
        let out = bench(args, dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    if !cfg!(feature = "peers") {
        let out = bench(&["--engine", "redb"], dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("--features peers"), "{stderr}");
    }
}

#[cfg(feature = "peers")]
#[test]
fn peers_report_every_field() {
    for engine in ["redb", "manifold", "fjall"] {
        for durability in ["none", "immediate"] {
            let o = cell(engine, &["--durability", durability]);
            check(&o, engine, durability, 1024);
        }
    }
}

/// `--durable-end` puts each writer's sync inside the timed phase: its `fdatasync` calls are
/// counted, where without it a `Durability::None` run makes none.
#[test]
fn durable_end_syncs_inside_the_timed_phase() {
    for engine in ["cf-store", "cf-store-files", "raw"] {
        let plain = cell(engine, &[]);
        assert_eq!(plain["durable_end"], false);
        assert_eq!(int(&plain, "sync_calls"), 0, "{engine}: no sync without it");
        let durable = cell(engine, &["--durable-end"]);
        assert_eq!(durable["durable_end"], true);
        assert!(
            int(&durable, "sync_calls") >= 1,
            "{engine}: the writers' syncs are in the timed phase: {durable:?}"
        );
    }
}
