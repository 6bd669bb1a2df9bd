//! `gap-merge`: sorted-merge that also bridges small *free* gaps with zeros (I/O aggregation).

use super::{Coalesce, FlushPolicy};
use crate::{DirtyPages, FlushConfig, GapOracle, RunShape, WritePlan};

/// Like [`crate::SortedMerge`], but two runs separated by at most `max_gap` bytes that the
/// gap oracle reports free become one write, the gap filled with zeros copied into the
/// buffer. A gap that is not free is never merged. Defaults: `max_gap` 16 KiB (four 4 KiB
/// pages: a syscall costs about as much as copying and writing a few pages), `max_run_bytes`
/// 4 MiB (as for [`crate::SortedMerge`]).
#[derive(Debug, Clone, Copy)]
pub struct GapMerge {
    /// The widest free gap bridged.
    pub max_gap: u64,
    /// The longest run (pages plus gaps) one call writes.
    pub max_run_bytes: u64,
}

impl GapMerge {
    /// Default widest bridged gap: 16 KiB.
    pub const DEFAULT_MAX_GAP: u64 = 16 << 10;
    /// Default cap on one run: 4 MiB.
    pub const DEFAULT_MAX_RUN: u64 = 4 << 20;
}

impl Default for GapMerge {
    fn default() -> Self {
        Self {
            max_gap: Self::DEFAULT_MAX_GAP,
            max_run_bytes: Self::DEFAULT_MAX_RUN,
        }
    }
}

impl FlushPolicy for GapMerge {
    fn config(&self) -> FlushConfig {
        FlushConfig::GapMerge {
            max_gap: self.max_gap.into(),
            max_run_bytes: self.max_run_bytes.into(),
        }
    }

    fn plan(&self, pages: &DirtyPages<'_>, gaps: &dyn GapOracle) -> WritePlan {
        Coalesce {
            max_gap: self.max_gap,
            max_run_bytes: self.max_run_bytes,
            shape: RunShape::Copy,
        }
        .plan(pages, gaps)
    }
}
