//! The `FlushPolicy` trait and the coalescing planner that the merging policies share.

mod gap_merge;
mod per_page;
mod sorted_merge;
mod vectored;
mod vectored_gap;

pub use gap_merge::GapMerge;
pub use per_page::PerPage;
pub use sorted_merge::SortedMerge;
pub use vectored::Vectored;
pub use vectored_gap::VectoredGap;

use crate::{DirtyPages, FlushConfig, GapOracle, RunShape, WritePlan};

/// Decides how one flush's dirty pages reach the file. A policy only *plans*: it returns a
/// [`WritePlan`] and never does I/O; [`crate::PlanExecutor`] carries the plan out. A plan may
/// fill a gap between pages only where `gaps` says the range is free.
pub trait FlushPolicy: Send + Sync + std::fmt::Debug {
    /// The config that builds this policy (for reports and for writing next to results).
    fn config(&self) -> FlushConfig;

    /// The runs to write for `pages`.
    fn plan(&self, pages: &DirtyPages<'_>, gaps: &dyn GapOracle) -> WritePlan;
}

/// The rule of a coalescing planner: pages in ascending offset order join the current run
/// when they touch it, or when the hole between is at most `max_gap` bytes *and* free; a run
/// never grows past `max_run_bytes` (but always takes at least one page).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Coalesce {
    pub max_gap: u64,
    pub max_run_bytes: u64,
    pub shape: RunShape,
}

impl Coalesce {
    pub(crate) fn plan(self, pages: &DirtyPages<'_>, gaps: &dyn GapOracle) -> WritePlan {
        let mut plan = WritePlan::with_capacity(1, pages.len());
        // (start, end) of the run being built.
        let mut open: Option<(u64, u64)> = None;
        for (index, page) in pages.by_offset() {
            let len = page.data.len() as u64;
            if let Some((start, end)) = open {
                let hole = page.offset - end;
                let joins = page.end() - start <= self.max_run_bytes
                    && (hole == 0 || (hole <= self.max_gap && gaps.is_free(end, page.offset)));
                if joins {
                    if hole > 0 {
                        plan.push_gap(hole);
                    }
                    plan.push_page(index, len);
                    open = Some((start, page.end()));
                    continue;
                }
            }
            plan.start_run(page.offset, self.shape);
            plan.push_page(index, len);
            open = Some((page.offset, page.end()));
        }
        plan
    }
}
