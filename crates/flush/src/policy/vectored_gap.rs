//! `vectored-gap`: gap merging through `pwritev`, free gaps pointing at one shared zero page.

use super::{Coalesce, FlushPolicy};
use crate::{DirtyPages, FlushConfig, GapOracle, RunShape, WritePlan};

/// Like [`crate::Vectored`], but runs separated by at most `max_gap` free bytes are joined;
/// the gap's slices point at a static zero buffer, so neither pages nor zeros are copied:
/// the fewest calls of any policy. Default `max_gap` 16 KiB, as for [`crate::GapMerge`].
#[derive(Debug, Clone, Copy)]
pub struct VectoredGap {
    /// The widest free gap bridged.
    pub max_gap: u64,
}

impl VectoredGap {
    /// Default widest bridged gap: 16 KiB.
    pub const DEFAULT_MAX_GAP: u64 = 16 << 10;
}

impl Default for VectoredGap {
    fn default() -> Self {
        Self {
            max_gap: Self::DEFAULT_MAX_GAP,
        }
    }
}

impl FlushPolicy for VectoredGap {
    fn config(&self) -> FlushConfig {
        FlushConfig::VectoredGap {
            max_gap: self.max_gap.into(),
        }
    }

    fn plan(&self, pages: &DirtyPages<'_>, gaps: &dyn GapOracle) -> WritePlan {
        Coalesce {
            max_gap: self.max_gap,
            max_run_bytes: u64::MAX,
            shape: RunShape::Vectored,
        }
        .plan(pages, gaps)
    }
}
