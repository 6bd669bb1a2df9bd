//! `per-page`: one write call per dirty page, in buffer order; the "before" baseline.

use super::FlushPolicy;
use crate::{DirtyPages, FlushConfig, GapOracle, RunShape, WritePlan};

/// One `pwrite` per page, in the order the pages were dirtied. Never merges, never sorts:
/// the behaviour that made multi-writer throughput collapse, kept to measure against.
#[derive(Debug, Clone, Copy, Default)]
pub struct PerPage;

impl FlushPolicy for PerPage {
    fn config(&self) -> FlushConfig {
        FlushConfig::PerPage
    }

    fn plan(&self, pages: &DirtyPages<'_>, _gaps: &dyn GapOracle) -> WritePlan {
        let mut plan = WritePlan::with_capacity(pages.len(), pages.len());
        for (index, page) in pages.in_buffer_order().iter().enumerate() {
            plan.start_run(page.offset, RunShape::Copy);
            plan.push_page(index, page.data.len() as u64);
        }
        plan
    }
}
