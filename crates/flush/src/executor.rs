//! `PlanExecutor`: the one place a `WritePlan` becomes I/O on a `Backend`.

use std::io::IoSlice;

use crate::{Backend, DirtyPages, FlushPolicy, GapOracle, Result, RunShape, Segment, WriteCall, WritePlan};

/// Gap slices of vectored runs point into this buffer (in `.rodata`), so zero fill costs no
/// allocation and no copy. A gap wider than it takes several slices.
static ZEROS: [u8; ZERO_CHUNK] = [0; ZERO_CHUNK];
const ZERO_CHUNK: usize = 64 << 10;

/// The copy buffer is kept between flushes unless it grew past this.
const KEEP_SCRATCH_BYTES: usize = 8 << 20;

/// What one flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Runs written (write calls before `IOV_MAX` splits or short-write continuations).
    pub runs: u64,
    /// Dirty-page bytes written.
    pub page_bytes: u64,
    /// Zero-fill bytes written into free gaps.
    pub gap_bytes: u64,
}

/// Carries out write plans. Owns the scratch buffers (copy buffer, plan-check bitmap) so a
/// writer that keeps one executor allocates nothing per flush in steady state.
#[derive(Debug, Default)]
pub struct PlanExecutor {
    scratch: Vec<u8>,
    seen: Vec<bool>,
}

impl PlanExecutor {
    /// A new executor with empty scratch buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Plans `pages` with `policy` and executes the plan.
    pub fn flush(
        &mut self,
        policy: &dyn FlushPolicy,
        pages: &DirtyPages<'_>,
        gaps: &dyn GapOracle,
        backend: &dyn Backend,
    ) -> Result<FlushReport> {
        let plan = policy.plan(pages, gaps);
        self.execute(&plan, pages, gaps, backend)
    }

    /// Checks `plan` against `pages` and `gaps` (see [`WritePlan::check`]) and, only if it
    /// passes, writes it as one [`Backend::write_batch`] of one call per run, in plan order.
    /// A run of one page is written from the page; a `Copy` run is concatenated into the
    /// scratch buffer (every copied run side by side) and written from there; a `Vectored`
    /// run is one vectored call over the pages and the shared zero buffer.
    /// Records runs, gap bytes and the flush in the backend's [`crate::IoStats`].
    ///
    /// On an error, runs before the failing one are written and the rest are not.
    pub fn execute(
        &mut self,
        plan: &WritePlan,
        pages: &DirtyPages<'_>,
        gaps: &dyn GapOracle,
        backend: &dyn Backend,
    ) -> Result<FlushReport> {
        plan.check(pages, gaps, &mut self.seen)?;
        let page = |i: usize| pages.get(i).expect("checked plan names only existing pages").data;
        // Copy runs are concatenated into the scratch buffer first, one after another, so
        // the whole flush can go to the backend as one batch (one turn at a shared file).
        self.scratch.clear();
        let mut copied = Vec::new();
        for run in plan.runs() {
            if let (RunShape::Copy, segments) = (run.shape, run.segments) {
                if let [Segment::Page(_)] = segments {
                    continue;
                }
                let start = self.scratch.len();
                self.scratch.reserve(run.len as usize);
                for seg in segments {
                    match *seg {
                        Segment::Page(i) => self.scratch.extend_from_slice(page(i)),
                        Segment::Gap(n) => self.scratch.resize(self.scratch.len() + n as usize, 0),
                    }
                }
                copied.push(start..self.scratch.len());
            }
        }
        let mut copied = copied.into_iter();
        let mut iov: Vec<IoSlice<'_>> = Vec::new();
        let mut spans = Vec::with_capacity(plan.runs().len());
        for run in plan.runs() {
            let start = iov.len();
            match (run.shape, run.segments) {
                (_, &[Segment::Page(i)]) => iov.push(IoSlice::new(page(i))),
                (RunShape::Copy, _) => {
                    let range = copied.next().expect("one scratch range per copied run");
                    iov.push(IoSlice::new(&self.scratch[range]));
                }
                (RunShape::Vectored, segments) => {
                    for seg in segments {
                        match *seg {
                            Segment::Page(i) => iov.push(IoSlice::new(page(i))),
                            Segment::Gap(mut n) => {
                                while n > 0 {
                                    let take = n.min(ZERO_CHUNK as u64);
                                    iov.push(IoSlice::new(&ZEROS[..take as usize]));
                                    n -= take;
                                }
                            }
                        }
                    }
                }
            }
            spans.push((run.offset, start..iov.len()));
        }
        let calls: Vec<WriteCall<'_>> = spans
            .into_iter()
            .map(|(offset, range)| WriteCall {
                offset,
                bufs: &iov[range],
            })
            .collect();
        backend.write_batch(&calls)?;
        let mut report = FlushReport::default();
        for run in plan.runs() {
            let gap = run.gap_bytes();
            backend.stats().record_run(gap);
            report.runs += 1;
            report.gap_bytes += gap;
            report.page_bytes += run.len - gap;
        }
        if self.scratch.capacity() > KEEP_SCRATCH_BYTES {
            self.scratch = Vec::new();
        }
        backend.stats().record_flush();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DirtyPage, FlushError, FreeRanges, MemBackend, NoFreeSpace};

    fn two_pages(a: &[u8], b: &[u8]) -> DirtyPages<'static> {
        let a: &'static [u8] = Box::leak(a.to_vec().into_boxed_slice());
        let b: &'static [u8] = Box::leak(b.to_vec().into_boxed_slice());
        DirtyPages::new(vec![DirtyPage::new(0, a), DirtyPage::new(8, b)]).unwrap()
    }

    /// Each faulty plan is refused before any byte is written.
    #[test]
    fn faulty_plans_are_refused_without_io() {
        let pages = two_pages(&[1; 4], &[2; 4]);
        let mut free = FreeRanges::new();
        free.insert(4, 8);
        let faulty: Vec<(&str, WritePlan)> = vec![
            ("gap not free", {
                let mut p = WritePlan::new();
                p.start_run(0, RunShape::Copy);
                p.push_page(0, 4);
                p.push_gap(5);
                p.push_page(1, 4);
                p
            }),
            ("page twice", {
                let mut p = WritePlan::new();
                for _ in 0..2 {
                    p.start_run(0, RunShape::Copy);
                    p.push_page(0, 4);
                }
                p.start_run(8, RunShape::Copy);
                p.push_page(1, 4);
                p
            }),
            ("page missing", {
                let mut p = WritePlan::new();
                p.start_run(0, RunShape::Vectored);
                p.push_page(0, 4);
                p
            }),
            ("wrong offset", {
                let mut p = WritePlan::new();
                p.start_run(0, RunShape::Vectored);
                p.push_page(0, 4);
                p.push_page(1, 4);
                p
            }),
            ("unknown page", {
                let mut p = WritePlan::new();
                p.start_run(0, RunShape::Copy);
                p.push_page(7, 4);
                p
            }),
            ("ends with a gap", {
                let mut p = WritePlan::new();
                p.start_run(0, RunShape::Copy);
                p.push_page(0, 4);
                p.push_gap(4);
                p.start_run(8, RunShape::Copy);
                p.push_page(1, 4);
                p
            }),
        ];
        for (what, plan) in faulty {
            let backend = MemBackend::new();
            let err = PlanExecutor::new()
                .execute(&plan, &pages, &free, &backend)
                .unwrap_err();
            assert!(matches!(err, FlushError::InvalidPlan(_)), "{what}: {err:?}");
            assert_eq!(backend.stats().snapshot().write_syscalls(), 0, "{what}: no I/O");
            assert_eq!(backend.len().unwrap(), 0, "{what}: nothing written");
        }
        // The well-formed version of the first plan passes and fills the gap with zeros.
        let mut ok = WritePlan::new();
        ok.start_run(0, RunShape::Vectored);
        ok.push_page(0, 4);
        ok.push_gap(4);
        ok.push_page(1, 4);
        let backend = MemBackend::new();
        let report = PlanExecutor::new().execute(&ok, &pages, &free, &backend).unwrap();
        assert_eq!(
            report,
            FlushReport {
                runs: 1,
                page_bytes: 8,
                gap_bytes: 4
            }
        );
        assert_eq!(backend.contents(), [1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 2, 2]);
        // Without free space the same plan is refused.
        let err = PlanExecutor::new()
            .execute(&ok, &pages, &NoFreeSpace, &MemBackend::new())
            .unwrap_err();
        assert!(matches!(err, FlushError::InvalidPlan(_)));
    }

    #[test]
    fn gaps_wider_than_the_zero_buffer_use_several_slices() {
        let pages = DirtyPages::new(vec![
            DirtyPage::new(0, &[1; 4]),
            DirtyPage::new(4 + 3 * ZERO_CHUNK as u64 + 5, &[2; 4]),
        ])
        .unwrap();
        let free = |_: u64, _: u64| true;
        let plan = crate::VectoredGap { max_gap: u64::MAX }.plan(&pages, &free);
        let backend = MemBackend::from_bytes(vec![9; 4 * ZERO_CHUNK]);
        let report = PlanExecutor::new()
            .execute(&plan, &pages, &free, &backend)
            .unwrap();
        assert_eq!(report.gap_bytes, 3 * ZERO_CHUNK as u64 + 5);
        let file = backend.contents();
        let end = 3 * ZERO_CHUNK + 13;
        assert_eq!(&file[..4], &[1; 4]);
        assert!(file[4..end - 4].iter().all(|&b| b == 0));
        assert_eq!(&file[end - 4..end], &[2; 4]);
        assert!(file[end..].iter().all(|&b| b == 9), "nothing past the run");
        assert_eq!(backend.stats().snapshot().vectored_calls, 1);
    }
}
