//! Property: for any dirty set, free map and policy, executing the plan leaves the file as
//! writing each page alone would, except inside free gaps; writes touch only dirty pages and
//! free gaps; every dirty byte is written exactly once.

use flush::testing::RecordingBackend;
use flush::{Backend, ByteSize, DirtyPage, DirtyPages, FlushConfig, FreeRanges, MemBackend, PlanExecutor};
use proptest::prelude::*;

/// Small pages keep cases fast; the planners never look at the page size.
const UNIT: u64 = 512;
const SENTINEL: u8 = 0xEE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Start of a dirty page `len` units long (the following `len - 1` slots are `Cont`).
    Dirty(u64),
    Cont,
    /// Free: may be overwritten.
    Free,
    /// Live data that is not dirty: must never be written.
    Used,
}

fn layout() -> impl Strategy<Value = Vec<Slot>> {
    prop::collection::vec((0u8..10, 1u64..=3), 1..80).prop_map(|raw| {
        let mut slots = Vec::new();
        for (kind, len) in raw {
            match kind {
                0..=3 => {
                    slots.push(Slot::Dirty(len));
                    slots.extend(std::iter::repeat_n(Slot::Cont, len as usize - 1));
                }
                4..=6 => slots.push(Slot::Free),
                _ => slots.push(Slot::Used),
            }
        }
        slots
    })
}

fn policy() -> impl Strategy<Value = FlushConfig> {
    let size = || (0u64..6 * UNIT).prop_map(ByteSize);
    let cap = || (1u64..12 * UNIT).prop_map(ByteSize);
    prop_oneof![
        Just(FlushConfig::PerPage),
        cap().prop_map(|max_run_bytes| FlushConfig::SortedMerge { max_run_bytes }),
        (size(), cap()).prop_map(|(max_gap, max_run_bytes)| FlushConfig::GapMerge {
            max_gap,
            max_run_bytes
        }),
        Just(FlushConfig::Vectored),
        size().prop_map(|max_gap| FlushConfig::VectoredGap { max_gap }),
    ]
}

fn page_bytes(slot: usize, len: u64) -> Vec<u8> {
    (0..len * UNIT)
        .map(|i| (slot as u64 * 31 + i % 251) as u8 % 200 + 1)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn plans_write_exactly_the_dirty_pages(
        slots in layout(),
        config in policy(),
        order_seed in any::<u64>(),
    ) {
        let region = slots.len() as u64 * UNIT;
        let mut free = FreeRanges::new();
        let mut owned: Vec<(u64, Vec<u8>)> = Vec::new();
        for (i, s) in slots.iter().enumerate() {
            let at = i as u64 * UNIT;
            match *s {
                Slot::Dirty(len) => owned.push((at, page_bytes(i, len))),
                Slot::Free => free.insert(at, at + UNIT),
                Slot::Cont | Slot::Used => {}
            }
        }
        // Buffer order: a deterministic shuffle.
        let n = owned.len();
        for i in (1..n).rev() {
            let j = (order_seed.wrapping_mul(i as u64 + 7).rotate_left(13) % (i as u64 + 1)) as usize;
            owned.swap(i, j);
        }
        let pages = DirtyPages::new(owned.iter().map(|(o, d)| DirtyPage::new(*o, d)).collect()).unwrap();

        let backend = RecordingBackend::new(MemBackend::from_bytes(vec![SENTINEL; region as usize]));
        let policy = config.build();
        let plan = policy.plan(&pages, &free);
        let report = PlanExecutor::new().execute(&plan, &pages, &free, &backend).unwrap();
        let file = backend.inner().contents();
        prop_assert_eq!(file.len() as u64, region);

        // Bytes: as if each page were written alone, except inside free gaps.
        let mut expected = vec![SENTINEL; region as usize];
        for (o, d) in &owned {
            expected[*o as usize..*o as usize + d.len()].copy_from_slice(d);
        }
        for (i, s) in slots.iter().enumerate() {
            let r = i * UNIT as usize..(i + 1) * UNIT as usize;
            if *s == Slot::Free {
                let gap = &file[r];
                prop_assert!(gap.iter().all(|&b| b == SENTINEL) || gap.iter().all(|&b| b == 0),
                    "free slot {} is neither untouched nor zero-filled", i);
            } else {
                prop_assert_eq!(&file[r.clone()], &expected[r], "slot {} differs", i);
            }
        }

        // Coverage: dirty bytes exactly once, free bytes at most once, used bytes never.
        let mut cover = vec![0u32; slots.len()];
        let log = backend.take_log();
        for w in &log {
            prop_assert!(w.offset % UNIT == 0 && w.len % UNIT == 0);
            for u in w.offset / UNIT..(w.offset + w.len) / UNIT {
                cover[u as usize] += 1;
            }
        }
        for (i, s) in slots.iter().enumerate() {
            match s {
                Slot::Dirty(_) | Slot::Cont => prop_assert_eq!(cover[i], 1, "dirty slot {} written {} times", i, cover[i]),
                Slot::Free => prop_assert!(cover[i] <= 1),
                Slot::Used => prop_assert_eq!(cover[i], 0, "used slot {} was written", i),
            }
        }

        // Counters agree with the plan and with what was written.
        let stats = backend.stats().snapshot();
        prop_assert_eq!(stats.write_syscalls(), plan.run_count() as u64);
        prop_assert_eq!(stats.write_syscalls(), log.len() as u64);
        prop_assert_eq!(stats.runs, report.runs);
        prop_assert_eq!(stats.gap_bytes_written, plan.gap_bytes());
        prop_assert_eq!(stats.bytes_written, pages.total_bytes() + plan.gap_bytes());
        prop_assert_eq!(stats.flushes, 1);

        // Shape of each policy's plan.
        let groups = contiguous_groups(&slots);
        match config {
            FlushConfig::PerPage => prop_assert_eq!(plan.run_count(), n),
            FlushConfig::Vectored => prop_assert_eq!(plan.run_count(), groups),
            FlushConfig::SortedMerge { .. } => prop_assert!(plan.run_count() >= groups),
            _ => prop_assert!(plan.run_count() <= n),
        }
        if matches!(config, FlushConfig::PerPage | FlushConfig::SortedMerge { .. } | FlushConfig::Vectored) {
            prop_assert_eq!(plan.gap_bytes(), 0);
        }
    }
}

/// Number of maximal runs of touching dirty slots.
fn contiguous_groups(slots: &[Slot]) -> usize {
    let dirty = |s: &Slot| matches!(s, Slot::Dirty(_) | Slot::Cont);
    let mut groups = 0;
    let mut prev = false;
    for s in slots {
        let d = dirty(s);
        if d && !prev {
            groups += 1;
        }
        prev = d;
    }
    groups
}

#[test]
fn empty_flush_writes_nothing() {
    let backend = MemBackend::new();
    let pages = DirtyPages::new(Vec::new()).unwrap();
    for config in FlushConfig::all_defaults() {
        let report = PlanExecutor::new()
            .flush(&*config.build(), &pages, &FreeRanges::new(), &backend)
            .unwrap();
        assert_eq!(report.runs, 0);
    }
    assert_eq!(backend.stats().snapshot().write_syscalls(), 0);
    assert_eq!(backend.len().unwrap(), 0);
}
