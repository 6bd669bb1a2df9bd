//! `sorted-merge`: sort by offset, copy each contiguous run into one buffer, one `pwrite` a run.

use super::{Coalesce, FlushPolicy};
use crate::{DirtyPages, FlushConfig, GapOracle, RunShape, WritePlan};

/// Sorts the pages and writes each run of touching pages with one `pwrite` of a buffer the
/// run is copied into. A run is cut at `max_run_bytes` (default 4 MiB: a 1 MiB commit of
/// 4 KiB pages, even with a page-sized free gap between every pair, still fits in one call,
/// while the copy buffer stays bounded).
#[derive(Debug, Clone, Copy)]
pub struct SortedMerge {
    /// The longest run one call writes.
    pub max_run_bytes: u64,
}

impl SortedMerge {
    /// Default cap on one run: 4 MiB.
    pub const DEFAULT_MAX_RUN: u64 = 4 << 20;
}

impl Default for SortedMerge {
    fn default() -> Self {
        Self {
            max_run_bytes: Self::DEFAULT_MAX_RUN,
        }
    }
}

impl FlushPolicy for SortedMerge {
    fn config(&self) -> FlushConfig {
        FlushConfig::SortedMerge {
            max_run_bytes: self.max_run_bytes.into(),
        }
    }

    fn plan(&self, pages: &DirtyPages<'_>, gaps: &dyn GapOracle) -> WritePlan {
        Coalesce {
            max_gap: 0,
            max_run_bytes: self.max_run_bytes,
            shape: RunShape::Copy,
        }
        .plan(pages, gaps)
    }
}
