//! Write-call counts per policy for the shapes the issue names, on `MemBackend` and a real file.

use flush::{
    Backend, DirtyPage, DirtyPages, FileBackend, FlushConfig, FreeRanges, GapOracle, IoStatsSnapshot,
    MemBackend, NoFreeSpace, PlanExecutor,
};

const PAGE: u64 = 4096;

/// `count` pages, page `i` at `i * stride` pages, with distinct contents.
fn pages(count: u64, stride: u64) -> Vec<(u64, Vec<u8>)> {
    (0..count)
        .map(|i| (i * stride * PAGE, vec![(i % 250) as u8 + 1; PAGE as usize]))
        .collect()
}

/// Free map: every page between the dirty ones (stride - 1 pages after each).
fn holes(count: u64, stride: u64) -> FreeRanges {
    let mut f = FreeRanges::new();
    for i in 0..count {
        let after = (i * stride + 1) * PAGE;
        f.insert(after, after + (stride - 1) * PAGE);
    }
    f
}

fn flush_with(
    policy: &str,
    data: &[(u64, Vec<u8>)],
    gaps: &dyn GapOracle,
    backend: &dyn Backend,
) -> IoStatsSnapshot {
    let config: FlushConfig = policy.parse().unwrap();
    let dirty = DirtyPages::new(data.iter().map(|(o, d)| DirtyPage::new(*o, d)).collect()).unwrap();
    let before = backend.stats().snapshot();
    PlanExecutor::new()
        .flush(&*config.build(), &dirty, gaps, backend)
        .unwrap();
    // Every page reads back.
    for (o, d) in data {
        let mut buf = vec![0; d.len()];
        backend.read_at(&mut buf, *o).unwrap();
        assert_eq!(&buf, d, "{policy}: page at {o} reads back wrong");
    }
    let done = backend.stats().snapshot() - before;
    // A real file's writers take turns: a whole flush takes one.
    let turns = u64::from(backend.file().is_some() && done.write_syscalls() > 0);
    assert_eq!(done.write_lock_turns, turns, "{policy}: turns at the write lock");
    done
}

/// Runs `check` against a fresh in-memory backend and a fresh real file.
fn on_each_backend(check: impl Fn(&dyn Backend)) {
    check(&MemBackend::new());
    let dir = tempfile::tempdir().unwrap();
    check(&FileBackend::open(dir.path().join("f")).unwrap());
}

#[test]
fn contiguous_256_pages() {
    on_each_backend(|b| {
        let data = pages(256, 1);
        assert_eq!(flush_with("per-page", &data, &NoFreeSpace, b).write_calls, 256);
        let s = flush_with("sorted-merge", &data, &NoFreeSpace, b);
        assert_eq!((s.write_calls, s.vectored_calls), (1, 0));
        let s = flush_with("vectored", &data, &NoFreeSpace, b);
        assert_eq!((s.write_calls, s.vectored_calls), (0, 1));
        let s = flush_with("gap-merge", &data, &NoFreeSpace, b);
        assert_eq!(s.write_syscalls(), 1);
        let s = flush_with("vectored-gap", &data, &NoFreeSpace, b);
        assert_eq!(s.write_syscalls(), 1);
    });
}

#[test]
fn pages_separated_by_one_free_page() {
    on_each_backend(|b| {
        let data = pages(256, 2);
        let free = holes(256, 2);
        let s = flush_with("gap-merge:4KiB", &data, &free, b);
        assert_eq!(s.write_calls, 1);
        assert_eq!(s.gap_bytes_written, 255 * PAGE);
        assert_eq!(s.bytes_written, 511 * PAGE);
        assert_eq!(flush_with("sorted-merge", &data, &free, b).write_calls, 256);
        assert_eq!(
            flush_with("vectored", &data, &free, b).vectored_calls,
            0,
            "single pages use pwrite"
        );
        assert_eq!(flush_with("vectored", &data, &free, b).write_calls, 256);
        let s = flush_with("vectored-gap:4KiB", &data, &free, b);
        assert_eq!(
            (s.write_calls, s.vectored_calls, s.gap_bytes_written),
            (0, 1, 255 * PAGE)
        );
        // A threshold below the gap merges nothing.
        assert_eq!(flush_with("gap-merge:4095", &data, &free, b).write_calls, 256);
        assert_eq!(flush_with("vectored-gap:4095", &data, &free, b).write_calls, 256);
    });
}

#[test]
fn a_gap_that_is_not_free_is_never_merged() {
    on_each_backend(|b| {
        let data = pages(256, 2);
        // Live data in the holes: must survive every policy.
        for i in 0..256u64 {
            b.write_at(&[0xAB; PAGE as usize], (2 * i + 1) * PAGE).unwrap();
        }
        let s = flush_with("gap-merge:1MiB", &data, &NoFreeSpace, b);
        assert_eq!((s.write_calls, s.gap_bytes_written), (256, 0));
        let s = flush_with("vectored-gap:1MiB", &data, &NoFreeSpace, b);
        assert_eq!((s.write_syscalls(), s.gap_bytes_written), (256, 0));
        // Only every fourth hole free: only those are bridged (64 pairs of pages + their gaps
        // form runs of two pages; the rest stand alone).
        let free = |start: u64, end: u64| end - start == PAGE && (start / PAGE) % 8 == 1;
        let s = flush_with("gap-merge:4KiB", &data, &free, b);
        assert_eq!(s.write_calls, 256 - 64);
        assert_eq!(s.gap_bytes_written, 64 * PAGE);
        let mut hole = vec![0; PAGE as usize];
        for i in 0..256u64 {
            b.read_at(&mut hole, (2 * i + 1) * PAGE).unwrap();
            let expect = if (2 * i + 1) % 8 == 1 { 0 } else { 0xAB };
            assert!(
                hole.iter().all(|&x| x == expect),
                "hole {i} holds the wrong bytes"
            );
        }
    });
}

#[test]
fn vectored_splits_at_iov_max_on_a_real_file() {
    let dir = tempfile::tempdir().unwrap();
    let b = FileBackend::open(dir.path().join("f")).unwrap();
    let iov_max = b.iov_max() as u64;
    let data = pages(2 * iov_max + 10, 1);
    let s = flush_with("vectored", &data, &NoFreeSpace, &b);
    assert_eq!(s.vectored_calls, 3);
    assert_eq!(s.runs, 1);
    // On the in-memory backend the same run is one call: the split is the file backend's.
    let m = MemBackend::new();
    assert_eq!(flush_with("vectored", &data, &NoFreeSpace, &m).vectored_calls, 1);
}
