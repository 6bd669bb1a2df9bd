//! `vectored`: sorted runs of touching pages, each written with `pwritev` straight from the pages.

use super::{Coalesce, FlushPolicy};
use crate::{DirtyPages, FlushConfig, GapOracle, RunShape, WritePlan};

/// Sorts the pages and writes each run of touching pages with one `pwritev` whose slices
/// point at the pages themselves: no copy, no run cap. The backend splits a run of more than
/// `IOV_MAX` (1,024 on Linux) pages into several calls.
#[derive(Debug, Clone, Copy, Default)]
pub struct Vectored;

impl FlushPolicy for Vectored {
    fn config(&self) -> FlushConfig {
        FlushConfig::Vectored
    }

    fn plan(&self, pages: &DirtyPages<'_>, gaps: &dyn GapOracle) -> WritePlan {
        Coalesce {
            max_gap: 0,
            max_run_bytes: u64::MAX,
            shape: RunShape::Vectored,
        }
        .plan(pages, gaps)
    }
}
